// Promise (issue 11; DESIGN.md, "Promises"): a publisher that ignores emit() === false keeps
// buffering up to a hard limit (`outbound.maxBytes`, 64 MiB by default), then gets a typed error,
// never a silent loss. So for a sender that emits 512 events of 1 MiB without looking at false,
// either every event arrives, or its emit() throws BufferFullError (code E_BUFFER_FULL) at the
// limit and every event before that one arrives, in order and byte-exact: no gap. A sender that
// catches the error can wait for drained() and send that event again, and then loses nothing.
//
// Roles: 'main' (the test process and the hub) and 'peer' (flow-peers.mjs): the sender and the
// receiver, forked.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BufferFullError, EventBus, SwitchboardError } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import { atRest, cleanUp, flowOf, forkPeer, MiB, quit, runPeer, sanitized, scaled, until } from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const COUNT = scaled(512); // events of 1 MiB
const LIMIT = 16 * MiB; // the sender's outbound.maxBytes where a small one is set
const DEFAULT_LIMIT = 64 * MiB;

function intact(feed) {
  return { received: feed.received, backwards: feed.backwards, gaps: feed.gaps, corrupt: feed.corrupt };
}
const ALL = (n) => ({ received: n, backwards: 0, gaps: 0, corrupt: 0 });

function runMain() {
  describe('a publisher that ignores false is told, never silently dropped', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${COUNT} events of 1 MiB instead of 512`);

    async function newHub(options = {}) {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub', ...options });
      await hub.ready();
      return hub;
    }

    async function closeAll(...list) {
      for (const p of list) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
    }

    it('BufferFullError is a SwitchboardError with code E_BUFFER_FULL', () => {
      const err = new BufferFullError('full');
      assert.ok(err instanceof SwitchboardError);
      assert.equal(err.code, 'E_BUFFER_FULL');
      assert.equal(err.name, 'BufferFullError');
    });

    /**
     * The outcome the promise allows: all arrived, or a BufferFullError at event `sent` with every
     * event before it delivered.
     */
    function checkOutcome(done, r, limit) {
      assert.deepEqual(r.end, { sent: done.sent, error: done.error }, 'the receiver saw the same end as the sender');
      if (done.error === null) {
        assert.equal(done.sent, COUNT);
        assert.deepEqual(intact(r.feed), ALL(COUNT), 'every event arrived, in order, with its bytes');
        return `all ${COUNT} arrived`;
      }
      assert.equal(done.error.bufferFull, true, `a BufferFullError, got ${done.error.name}: ${done.error.message}`);
      assert.equal(done.error.code, 'E_BUFFER_FULL');
      assert.ok(done.sent > 0 && done.sent < COUNT);
      // Refused at the limit, not before: what was taken is within one event of it.
      assert.ok(done.sent * MiB >= limit - 2 * MiB, `refused at event ${done.sent}, well before the limit of ${limit} bytes`);
      assert.deepEqual(intact(r.feed), ALL(done.sent), `every event before the refused one (${done.sent}) arrived, in order, with its bytes`);
      return `refused at event ${done.sent} (${done.error.code}: ${done.error.message}); events 0-${done.sent - 1} all arrived`;
    }

    it(`${COUNT} events of 1 MiB in one turn, default options: all arrive, or BufferFullError at 64 MiB and everything before it arrives`, { timeout: 60_000 }, async (t) => {
      await newHub();
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      const sender = await forkPeer(thisFile, hub, { name: 'sender', pub: { topic: 'bulk:data', count: COUNT, size: MiB, mode: 'ignore' } });
      peers.push(receiver, sender);
      const report = receiver.message('report');
      sender.send({ type: 'go' });
      const done = await deadline(45_000, 'the sender to finish', sender.message('done'));
      const r = await deadline(30_000, 'the receiver to report', report);
      const outcome = checkOutcome(done, r, DEFAULT_LIMIT);
      // 512 MiB in one turn cannot fit under 64 MiB: this one is always refused.
      assert.notEqual(done.error, null, 'refused: 512 MiB were emitted in one turn against a 64 MiB limit');
      assert.equal(flowOf(hub).eventsDropped, 0);
      t.diagnostic(`${outcome}; emit() returned false ${done.falses} times before`);
      await closeAll(sender, receiver);
    });

    it(`${COUNT} events of 1 MiB, one per turn, outbound.maxBytes 16 MiB, to a live receiver: all arrive, or the error and no gap`, { timeout: 60_000 }, async (t) => {
      await newHub();
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      const sender = await forkPeer(thisFile, hub, {
        name: 'sender',
        options: { outbound: { maxBytes: LIMIT } },
        pub: { topic: 'bulk:data', count: COUNT, size: MiB, mode: 'ignore', yieldEvery: 1 },
      });
      peers.push(receiver, sender);
      const report = receiver.message('report');
      sender.send({ type: 'go' });
      const done = await deadline(45_000, 'the sender to finish', sender.message('done'));
      const r = await deadline(30_000, 'the receiver to report', report);
      const outcome = checkOutcome(done, r, LIMIT);
      assert.equal(flowOf(hub).eventsDropped, 0);
      t.diagnostic(`${outcome}; emit() returned false ${done.falses} times; outbound at most ${(done.maxOutbound / MiB).toFixed(1)} MiB`);
      await closeAll(sender, receiver);
    });

    it('the same sender with its receiver stopped is refused at 16 MiB; every event before the refused one arrives after SIGCONT', { timeout: 60_000 }, async (t) => {
      await newHub({ stallTimeoutMs: 60_000, pingIntervalMs: 0 });
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      const sender = await forkPeer(thisFile, hub, {
        name: 'sender',
        options: { outbound: { maxBytes: LIMIT } },
        pub: { topic: 'bulk:data', count: COUNT, size: MiB, mode: 'ignore', yieldEvery: 1 },
      });
      peers.push(receiver, sender);
      const report = receiver.message('report');
      receiver.stop();
      sender.send({ type: 'go' });
      // The hub holds the feed (its mark for the stopped receiver is full), so the sender's own
      // buffer reaches its limit: that emit throws, with the receiver still stopped.
      const threw = await deadline(30_000, 'the sender to be refused', sender.message('threw'));
      assert.equal(threw.error.bufferFull, true, `a BufferFullError, got ${threw.error.name}: ${threw.error.message}`);
      assert.equal(threw.error.code, 'E_BUFFER_FULL');
      assert.ok(threw.outbound <= LIMIT, `the outbound buffer stayed within its limit (${threw.outbound} bytes)`);
      const f = flowOf(hub);
      receiver.cont();
      const done = await deadline(30_000, 'the sender to finish', sender.message('done'));
      const r = await deadline(30_000, 'the receiver to report', report);
      assert.equal(done.sent, threw.seq);
      const outcome = checkOutcome(done, r, LIMIT);
      assert.equal(flowOf(hub).eventsDropped, 0);
      t.diagnostic(
        `${outcome}; outbound ${(threw.outbound / MiB).toFixed(1)} MiB at the refusal; hub paused ${f.paused}, parked ${(f.parkedBytes / MiB).toFixed(1)} MiB`,
      );
      await closeAll(sender, receiver);
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    });

    it('a sender that catches BufferFullError, awaits drained() and sends that event again loses nothing', { timeout: 60_000 }, async (t) => {
      await newHub({ stallTimeoutMs: 60_000, pingIntervalMs: 0 });
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      const sender = await forkPeer(thisFile, hub, {
        name: 'sender',
        options: { outbound: { maxBytes: LIMIT } },
        pub: { topic: 'bulk:data', count: COUNT, size: MiB, mode: 'ignore', retry: true },
      });
      peers.push(receiver, sender);
      const report = receiver.message('report');
      sender.send({ type: 'go' });
      const done = await deadline(45_000, 'the sender to finish', sender.message('done'));
      const r = await deadline(30_000, 'the receiver to report', report);
      assert.equal(done.error, null);
      assert.ok(done.retries > 0, 'refused at least once (everything is emitted in one turn until refused)');
      assert.deepEqual(intact(r.feed), ALL(COUNT), 'every event arrived once, in order, with its bytes');
      t.diagnostic(`refused ${done.retries} times, each event sent again after drained(); all ${COUNT} arrived`);
      await closeAll(sender, receiver);
    });
  });
}

if (role === 'main') runMain();
else await runPeer();
