// Promise: terminating a worker thread that has an open bus (listeners, a handler, a pending
// invoke in each direction) crashes nothing. The hub's process goes on; the hub sees the worker's
// peer leave; the call into the worker ends with ConnectionLostError and the worker's own call is
// cancelled (the handler's signal aborts); another worker can join afterwards.
//
// Each worker here is terminated once it is idle: its JavaScript has run to the end and awaits.
// That is why this file never saw the crash of a worker terminated while its JavaScript still
// runs (a timer, a burst, a handler) and calls into the addon:
// worker-terminated-at-any-moment-crashes-nothing.test.mjs covers those moments.
//
// Roles: 'main' (the test process and the hub), 'doomed' (worker threads that get terminated)
// and 'joiner' (a worker thread that joins afterwards). Synchronised by bus messages.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { workerData } from 'node:worker_threads';
import { ConnectionLostError, EventBus } from '../../dist/esm/index.js';
import { checkClosed, currentRole, deadline, exitCode, startWorker } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

// --- Roles ------------------------------------------------------------------------------------------

async function runDoomed() {
  const bus = new EventBus({ name: workerData.name });
  await bus.ready();
  bus.on('doomed:tick', () => {});
  bus.on('doomed:*', () => {});
  bus.handle(`${workerData.name}:hang`, () => {
    bus.emit('doomed:hang-started', { name: workerData.name });
    return new Promise(() => {});
  });
  // Pending when the worker is terminated. The hub's handler learns who we are from this call,
  // and by then our handler is registered (same batch, in order).
  bus.invoke('hub:hang-w', null, { timeout: 0 }).catch(() => {});
  for (let i = 0; i < 100; i++) bus.emit('doomed:chatter', { i });
}

async function runJoiner() {
  const bus = new EventBus({ name: 'joiner' });
  await bus.ready();
  const echoed = await bus.invoke('hub:echo', { joined: true });
  bus.emit('joiner:hello', { echoed });
  await bus.once('joiner:bye');
  await bus.close();
  checkClosed(bus, 'joiner');
}

// --- The tests ----------------------------------------------------------------------------------------

function runMain() {
  const workers = [];
  let bus;

  describe('terminating a worker crashes nothing', { timeout: 60_000 }, () => {
    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      bus.handle('hub:echo', (x) => x);
    });

    after(async () => {
      for (const w of workers) await w.terminate();
      await bus?.close();
    });

    it('terminating a worker with an open bus crashes nothing; its peer leaves; another worker joins', { timeout: 20_000 }, async () => {
      let callStarted;
      let callAborted;
      const started = new Promise((resolve) => {
        callStarted = resolve;
      });
      const aborted = new Promise((resolve) => {
        callAborted = resolve;
      });
      const stopHangW = bus.handle('hub:hang-w', (req, ctx) => {
        callStarted(ctx.sender);
        ctx.signal.addEventListener('abort', () => callAborted(ctx.signal.reason));
        return new Promise(() => {});
      });
      try {
        const peersBefore = bus.stats().hub.peers;

        const doomed = startWorker(thisFile, 'doomed', { name: 'doomed' });
        workers.push(doomed);
        const sender = await deadline(10_000, 'the doomed worker\'s call', started);
        assert.equal(sender.name, 'doomed');
        assert.equal(sender.role, 'worker');
        assert.equal(bus.stats().hub.peers, peersBefore + 1);
        assert.ok(bus.stats().peers.some((p) => p.id === sender.id), 'the hub\'s bus knows the worker');
        // A call into the worker, pending (it has reached the handler) when the worker goes.
        const hangStarted = bus.once('doomed:hang-started');
        const intoWorker = bus.invoke('doomed:hang', null, { timeout: 0 }).then(() => 'resolved', (err) => err);
        await deadline(5_000, 'the call into the worker to start', hangStarted);

        await doomed.terminate();
        const err = await deadline(2_000, 'the call into the worker to end', intoWorker);
        assert.ok(err instanceof ConnectionLostError, `ConnectionLostError, got ${err?.name ?? err}`);
        await deadline(2_000, 'the worker\'s call to be cancelled', aborted);
        assert.equal(bus.stats().hub.peers, peersBefore, 'the worker\'s peer left');
        assert.ok(!bus.stats().peers.some((p) => p.id === sender.id), 'the hub\'s bus forgot the worker');
        assert.equal(bus.stats().invokes.pending, 0);
        assert.equal(bus.stats().invokes.serving, 0);
        assert.equal(bus.stats().hub.pendingInvokes, 0);

        // A second worker joins and works.
        const hello = bus.once('joiner:hello');
        const joiner = startWorker(thisFile, 'joiner');
        workers.push(joiner);
        assert.deepEqual(await deadline(10_000, 'joiner hello', hello), { echoed: { joined: true } });
        bus.emit('joiner:bye');
        assert.equal(await deadline(5_000, 'joiner exit', exitCode(joiner)), 0);
        // The hub hears the joiner's socket close on its own I/O thread, after the worker exits:
        // its peer leaves soon after, not at once (the next test counts from here).
        for (let i = 0; i < 200 && bus.stats().hub.peers !== peersBefore; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(bus.stats().hub.peers, peersBefore, "the joiner's peer left");
      } finally {
        stopHangW(); // also when an assertion failed: the next test registers it again
      }
    });

    it('terminating five workers in a row, each mid-traffic, leaves the hub clean', { timeout: 20_000 }, async () => {
      const peersBefore = bus.stats().hub.peers;
      for (let n = 0; n < 5; n++) {
        const name = `doomed-${n}`;
        let callStarted;
        let callAborted;
        const started = new Promise((resolve) => {
          callStarted = resolve;
        });
        const aborted = new Promise((resolve) => {
          callAborted = resolve;
        });
        const stop = bus.handle('hub:hang-w', (req, ctx) => {
          if (ctx.sender.name !== name) return null;
          callStarted();
          ctx.signal.addEventListener('abort', () => callAborted());
          return new Promise(() => {});
        });
        try {
          const w = startWorker(thisFile, 'doomed', { name });
          workers.push(w);
          await deadline(10_000, `${name} call`, started);
          await w.terminate();
          await deadline(2_000, `${name} call cancelled`, aborted);
        } finally {
          stop();
        }
      }
      assert.equal(bus.stats().hub.peers, peersBefore);
      assert.equal(bus.stats().hub.pendingInvokes, 0);
      assert.equal(bus.stats().invokes.serving, 0);
    });

    it('the hub closes with nothing pending', { timeout: 5_000 }, async () => {
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

const roles = { main: runMain, doomed: runDoomed, joiner: runJoiner };
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
