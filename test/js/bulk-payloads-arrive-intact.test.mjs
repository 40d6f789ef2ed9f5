// Promise: bulk binary payloads (1 MiB, 16 MiB) cross the bus intact in both directions, and
// what a listener receives is its own: it keeps its bytes after more traffic and garbage
// collection (the memory under it is recycled by the addon only once it is unreachable), writes
// to it reach no one else, and it pins little more than itself. The same holds where the runtime
// refuses external buffers (Electron's memory cage): SWITCHBOARD_EXTERNAL_BUFFERS=0 makes the
// addon take that refusal path, which copies.
//
// One program in two roles: 'main' (the test process and the hub) and 'receiver' (a forked
// process, started once with external buffers and once with the refusal simulated).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EventBus } from '../../dist/esm/index.js';
import {
  checkClosed, collectEvents, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning,
  killLeftovers, nextEvent,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const MiB = 1 << 20;

/**
 * `size` bytes that depend on `seed`: a 64 KiB pseudo-random tile, each 4 KiB page stamped with
 * its index and the seed, so a stale, shifted or foreign page shows (and 16 MiB takes no time).
 */
function pattern(size, seed) {
  const tile = new Uint8Array(64 * 1024);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < tile.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    tile[i] = x >>> 24;
  }
  const p = new Uint8Array(size);
  for (let at = 0; at < size; at += tile.length) p.set(tile.subarray(0, Math.min(tile.length, size - at)), at);
  const view = new DataView(p.buffer);
  for (let page = 0; page * 4096 + 8 <= size; page++) {
    view.setUint32(page * 4096, page);
    view.setUint32(page * 4096 + 4, seed);
  }
  return p;
}

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** What a receiver reports about one payload. */
function describePayload(p) {
  return {
    type: Buffer.isBuffer(p) ? 'Buffer' : p?.constructor?.name,
    length: p.length,
    sha: sha(p),
    // The memory a kept payload pins: its ArrayBuffer.
    pinned: p.buffer.byteLength,
  };
}

// --- The receiver (a forked process) ---------------------------------------------------------------

async function runReceiver() {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  const bus = new EventBus({ name: 'receiver' });
  await bus.ready();

  const got = [];
  let kept = null;
  bus.on('bulk:data', (p) => {
    if (kept === null) kept = { bytes: p, sha: sha(p) };
    got.push(describePayload(p));
  });
  bus.handle('bulk:report', () => got.splice(0));
  // Writes to one received payload must not show in the next one, even of the same bytes.
  bus.handle('bulk:mutate-first', () => {
    const before = kept.sha;
    kept.bytes.fill(0xee, 0, 4096);
    const changed = sha(kept.bytes);
    kept.bytes.set(pattern(4096, 1), 0); // restore (the payload with seed 1 is the kept one)
    return { before, changed, restored: sha(kept.bytes) };
  });
  bus.handle('bulk:gc', () => {
    gc();
    gc();
    return true;
  });
  bus.handle('bulk:kept', () => ({ sha: sha(kept.bytes), first: kept.sha }));
  bus.handle('bulk:send', ({ sizes }) => {
    for (const [i, size] of sizes.entries()) bus.emit('bulk:back', pattern(size, 100 + i));
    return sizes.length;
  });
  bus.on('test:quit', async () => {
    await bus.close();
    checkClosed(bus, role);
  });
  bus.emit('receiver:ready', { pid: process.pid });
}

// --- The hub and the tests ---------------------------------------------------------------------------

function suite(title, env) {
  describe(title, { timeout: 120_000 }, () => {
    let bus;
    let child;

    before(async () => {
      // Default options: the bursts (a 16 MiB event right behind a 1 MiB one) are larger than the
      // per-peer mark of 8 MiB, and flow control makes their sender wait instead of dropping.
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      const ready = nextEvent(bus, 'receiver:ready');
      child = forkRole(thisFile, 'receiver', { ...bus.childEnv(), ...env });
      await deadline(15_000, 'receiver ready', ready);
    });

    after(async () => {
      killLeftovers([child]);
      await bus?.close();
    });

    it('1 MiB and 16 MiB payloads, Uint8Array and Buffer, arrive intact and in order', { timeout: 60_000 }, async () => {
      const sent = [
        pattern(MiB, 1),
        pattern(16 * MiB, 2),
        Buffer.from(pattern(MiB, 3).buffer),
        pattern(200 * 1024, 4),
        pattern(10, 5),
        pattern(MiB + 1, 6),
      ];
      for (const p of sent) bus.emit('bulk:data', p);
      // The receiver handles one peer's frames in order: the reply comes after every payload.
      let got = [];
      for (let asked = 0; got.length < sent.length && asked < 5; asked++) {
        got = got.concat(await deadline(30_000, 'bulk report', bus.invoke('bulk:report')));
      }
      assert.deepEqual(got.map((g) => g.length), sent.map((p) => p.length));
      for (const [i, p] of sent.entries()) {
        assert.equal(got[i].length, p.length, `payload ${i}: length`);
        assert.equal(got[i].sha, sha(p), `payload ${i}: bytes`);
        assert.equal(got[i].type, Buffer.isBuffer(p) ? 'Buffer' : 'Uint8Array', `payload ${i}: type`);
        if (p.length >= 64 * 1024) {
          // A view of its own frame or a copy: either way it pins at most about twice itself.
          assert.ok(got[i].pinned <= 2 * p.length, `payload ${i} pins ${got[i].pinned} bytes for ${p.length}`);
        }
      }
    });

    it('a kept payload keeps its bytes after more bulk traffic and garbage collection', { timeout: 60_000 }, async () => {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 12; i++) bus.emit('bulk:data', pattern(MiB, 1000 + round * 12 + i));
        await bus.invoke('bulk:report');
        // Frees the other payloads' memory, which the addon then reuses for the next round.
        await bus.invoke('bulk:gc');
      }
      const kept = await bus.invoke('bulk:kept');
      assert.equal(kept.first, sha(pattern(MiB, 1)), 'the kept payload is the first one sent');
      assert.equal(kept.sha, kept.first, 'its bytes did not change');
    });

    it('writes to a received payload reach no one else', { timeout: 30_000 }, async () => {
      const r = await bus.invoke('bulk:mutate-first');
      assert.notEqual(r.changed, r.before);
      assert.equal(r.restored, r.before);
      // The same bytes again: the new delivery does not see the write made to the kept one.
      bus.emit('bulk:data', pattern(MiB, 1));
      const [again] = await bus.invoke('bulk:report');
      assert.equal(again.sha, sha(pattern(MiB, 1)));
    });

    it('payloads sent to the hub arrive intact in its own process', { timeout: 60_000 }, async () => {
      const sizes = [MiB, 16 * MiB, 300 * 1024];
      const arrived = collectEvents(bus, 'bulk:back', sizes.length);
      await bus.invoke('bulk:send', { sizes });
      const got = await deadline(30_000, 'payloads at the hub', arrived);
      for (const [i, size] of sizes.entries()) {
        assert.equal(got[i].length, size);
        assert.equal(sha(got[i]), sha(pattern(size, 100 + i)), `payload ${i}`);
      }
    });

    it('a payload the hub sends to itself is a copy that later emits do not overwrite', { timeout: 30_000 }, async () => {
      // Local listeners decode from the sender's write buffer, which the next turn reuses.
      const first = nextEvent(bus, 'bulk:self');
      bus.emit('bulk:self', pattern(MiB, 7));
      const p = await first;
      const second = nextEvent(bus, 'bulk:self');
      bus.emit('bulk:self', pattern(MiB, 8));
      await second;
      assert.equal(sha(p), sha(pattern(MiB, 7)));
    });

    it('the receiver closes cleanly', { timeout: 20_000 }, async () => {
      bus.emit('test:quit');
      assert.deepEqual(await deadline(15_000, 'receiver exit', exitCode(child)), { code: 0, signal: null });
    });
  });
}

function runMain() {
  suite('bulk payloads arrive intact (external buffers where the runtime allows them)', {});
  suite('bulk payloads arrive intact (external buffers refused, as in Electron: copies)', {
    SWITCHBOARD_EXTERNAL_BUFFERS: '0',
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else await runReceiver();
