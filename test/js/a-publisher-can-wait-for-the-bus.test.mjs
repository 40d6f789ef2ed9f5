// Promise (issue 11; DESIGN.md, "Promises"): a publisher can wait for the bus. emit() returns
// false once the bus's own outbound buffer is over its mark, and 'drain' / `await bus.drained()`
// say when it is below again, as with Node.js streams. A sender that honours that gets every
// event through the hub to a subscriber in another process, in order and byte-exact, while the
// hub keeps at most its high-water mark plus one message queued for the subscriber. The same
// holds for the hub's own bus (its in-process peer) and for a worker thread, and a drained()
// still pending keeps its process alive, and rejects with ClosedError when the bus closes.
//
// Roles: 'main' (the test process and the hub), 'keepalive' (below) and 'peer' (flow-peers.mjs),
// forked as the sender and the receiver, or started as a worker thread.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus, InvalidArgumentError } from '../../dist/esm/index.js';
import { checkClosed, currentRole, deadline, exitCode, forkRole, isAlive, messageFrom } from './support.mjs';
import {
  atRest, chunk, cleanUp, flowOf, forkPeer, held, KiB, MiB, publish, quit, runPeer, sanitized, scaled, sleep,
  until, workerPeer,
} from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const COUNT = scaled(512); // events of 1 MiB
const HELD_COUNT = 64; // events of 1 MiB for the stopped-receiver cases: more than the buffers hold
const MARK = 8 * MiB; // the hub's default highWaterMark (none is set here)
// One bulk event's frame: its 1 MiB of bytes, its number and topic, and the frame's header.
const ONE_MESSAGE = MiB + 4 * KiB;

/** The parts of a receiver's feed summary that say whether everything arrived intact. */
function intact(feed) {
  return { received: feed.received, backwards: feed.backwards, gaps: feed.gaps, corrupt: feed.corrupt };
}
const ALL = (n) => ({ received: n, backwards: 0, gaps: 0, corrupt: 0 });

function runMain() {
  describe('a publisher can wait for the bus', { timeout: 120_000 }, () => {
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
        if (p.child) assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
        else assert.equal(await deadline(10_000, `${p.name} exit`, exitCode(p.worker)), 0);
      }
    }

    for (const mode of ['drained', 'drain']) {
      const how = mode === 'drained' ? 'await bus.drained()' : "the 'drain' event";
      it(`${COUNT} events of 1 MiB from a client honouring false with ${how} all arrive, in order and byte-exact; the hub queues at most the mark plus one message`, { timeout: 90_000 }, async (t) => {
        await newHub(); // default options: highWaterMark 8 MiB
        const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
        peers.push(receiver);
        const sender = await forkPeer(thisFile, hub, { name: 'sender', pub: { topic: 'bulk:data', count: COUNT, size: MiB, mode } });
        peers.push(sender);

        const report = receiver.message('report', (m) => m.from === 'sender');
        const t0 = performance.now();
        sender.send({ type: 'go' });
        const done = await deadline(60_000, 'the sender to finish', sender.message('done'));
        const r = await deadline(30_000, 'the receiver to report', report);
        const secs = (performance.now() - t0) / 1000;

        assert.equal(done.error, null, 'the sender was never refused');
        assert.equal(done.sent, COUNT);
        assert.deepEqual(r.end, { sent: COUNT, error: null });
        assert.deepEqual(intact(r.feed), ALL(COUNT), 'every event arrived once, in order, with its bytes');
        // More than 8 MiB emitted in one turn is over the mark whatever the hub does.
        assert.ok(done.falses > 0, 'emit() returned false at least once');
        if (mode === 'drain') assert.equal(done.drains, done.falses, "one 'drain' for each false");

        const f = flowOf(hub);
        assert.ok(
          f.peakQueuedBytes <= MARK + ONE_MESSAGE,
          `the hub queued at most the mark plus one message for a peer: peak ${f.peakQueuedBytes} bytes, mark ${MARK}`,
        );
        assert.equal(f.eventsDropped, 0);
        assert.equal(f.stalls, 0);
        t.diagnostic(
          `${COUNT} MiB in ${secs.toFixed(2)} s (${(COUNT / secs).toFixed(0)} MiB/s); emit() false ${done.falses} times, ` +
            `'drain' ${done.drains} times; sender's outbound at most ${(done.maxOutbound / MiB).toFixed(1)} MiB; ` +
            `hub peakQueuedBytes ${f.peakQueuedBytes} (${(f.peakQueuedBytes / MiB).toFixed(2)} MiB; mark + one message = ${MARK + ONE_MESSAGE}); ` +
            `publisher pauses ${f.pauses}`,
        );

        await closeAll(sender, receiver);
        await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
      });
    }

    it('the flow-control options are checked like every option', () => {
      for (const options of [
        { outbound: 5 },
        { outbound: { highWaterMark: -1 } },
        { outbound: { highWaterMark: 1.5 } },
        { outbound: { maxBytes: 0 } },
        { outbound: { highWaterMark: 1024, maxBytes: 512 } },
        { stallTimeoutMs: 0 },
        { stallTimeoutMs: -1 },
        { highWaterMark: 1024, lowWaterMark: 2048 },
        { overflow: 'block' },
      ]) {
        assert.throws(() => new EventBus({ role: 'hub', ...options }), InvalidArgumentError, JSON.stringify(options));
      }
    });

    it('drained() resolves at once on a bus that is not over its mark', { timeout: 10_000 }, async () => {
      await newHub();
      assert.equal(hub.emit('small:event', { n: 1 }), true);
      const first = await Promise.race([
        hub.drained().then(() => 'resolved'),
        new Promise((resolve) => setImmediate(() => resolve('still pending after a turn'))),
      ]);
      assert.equal(first, 'resolved');
    });

    /**
     * A publisher (the hub's own bus, a worker thread or a forked client) sends HELD_COUNT events
     * of 1 MiB to a receiver stopped with SIGSTOP: it must come to wait (a 'waiting' with nothing
     * after it for 500 ms) before the end, the hub holding its feed; after SIGCONT it goes on and
     * everything arrives. The hub's stall timeout is set far out so that this stop is no stall,
     * and pings are off (a stopped process does not answer them).
     */
    async function heldThenReleased(t, who, start) {
      await newHub({ stallTimeoutMs: 60_000, pingIntervalMs: 0 });
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      peers.push(receiver);
      const report = receiver.message('report');
      receiver.stop();
      const { log, result, from, finish } = await start();
      const waiting = await deadline(20_000, `${who} to be held`, held(log, 500, who));
      const f = flowOf(hub);
      assert.ok(waiting.seq < HELD_COUNT - 1, `${who} was held before its last event (at event ${waiting.seq})`);
      assert.ok(f.paused >= 1, `the hub holds the publisher (paused ${f.paused})`);
      assert.ok(f.parkedBytes > 0, `frames are parked (${f.parkedBytes} bytes)`);
      const tc = performance.now();
      receiver.cont();
      const done = await deadline(30_000, `${who} to finish`, result);
      const resumedAfter = (log.find((m) => m.type === 'resumed' && m.seq === waiting.seq)?.at ?? NaN) - (performance.timeOrigin + tc);
      const r = await deadline(30_000, 'the receiver to report', report);
      assert.equal(r.from, from);
      assert.equal(done.error, null);
      assert.deepEqual(intact(r.feed), ALL(HELD_COUNT), 'every event arrived once, in order, with its bytes');
      assert.equal(done.drains, done.falses, "one 'drain' for each false");
      const after = flowOf(hub);
      assert.ok(after.peakQueuedBytes <= MARK + ONE_MESSAGE, `peak queued ${after.peakQueuedBytes} bytes`);
      assert.equal(after.eventsDropped, 0);
      t.diagnostic(
        `${who}: held at event ${waiting.seq} of ${HELD_COUNT} with ${(waiting.outbound / MiB).toFixed(1)} MiB in its outbound buffer, ` +
          `hub paused ${f.paused}, parked ${(f.parkedBytes / MiB).toFixed(1)} MiB; went on ${resumedAfter.toFixed(0)} ms after SIGCONT; ` +
          `emit() false ${done.falses} times, 'drain' ${done.drains} times; hub peakQueuedBytes ${after.peakQueuedBytes}`,
      );
      await finish();
      await closeAll(receiver);
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    }

    it("the hub's own bus: emit() returns false and 'drain' fires while a client subscriber is stopped", { timeout: 60_000 }, async (t) => {
      await heldThenReleased(t, "the hub's bus", async () => {
        const log = [];
        const result = publish(hub, { topic: 'bulk:data', count: HELD_COUNT, size: MiB, mode: 'drain', progress: true }, (m) => log.push(m));
        return { log, result, from: 'hub', finish: async () => {} };
      });
    });

    it("a worker thread: emit() returns false and 'drain' fires while a client subscriber is stopped", { timeout: 60_000 }, async (t) => {
      await heldThenReleased(t, 'a worker', async () => {
        const worker = await workerPeer(thisFile, hub, { name: 'worker', pub: { topic: 'bulk:data', count: HELD_COUNT, size: MiB, mode: 'drain', progress: true } });
        peers.push(worker);
        worker.send({ type: 'go' });
        return { log: worker.log, result: worker.message('done'), from: 'worker', finish: () => closeAll(worker) };
      });
    });

    it('a client process: await bus.drained() waits while a subscriber is stopped', { timeout: 60_000 }, async (t) => {
      await heldThenReleased(t, 'a client', async () => {
        const sender = await forkPeer(thisFile, hub, { name: 'sender', pub: { topic: 'bulk:data', count: HELD_COUNT, size: MiB, mode: 'drain', progress: true } });
        peers.push(sender);
        sender.send({ type: 'go' });
        return { log: sender.log, result: sender.message('done'), from: 'sender', finish: () => closeAll(sender) };
      });
    });

    it('a pending drained() keeps its process alive until the bus drains', { timeout: 60_000 }, async (t) => {
      await newHub({ stallTimeoutMs: 60_000, pingIntervalMs: 0 });
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      peers.push(receiver);
      const report = receiver.message('report');
      receiver.stop();
      const child = forkRole(thisFile, 'keepalive', hub.childEnv());
      const waiting = await deadline(20_000, 'the keepalive process to wait', messageFrom(child, (m) => m.type === 'waiting'));
      // Held while the receiver is stopped: the process must still be there.
      await sleep(1_000);
      assert.ok(isAlive(child), `the process waiting in drained() is still alive (exited ${JSON.stringify({ code: child.exitCode, signal: child.signalCode })})`);
      receiver.cont();
      assert.deepEqual(await deadline(20_000, 'the keepalive process to exit', exitCode(child)), { code: 0, signal: null });
      const r = await deadline(20_000, 'the receiver to report', report);
      assert.deepEqual(intact(r.feed), ALL(waiting.seq), 'everything it emitted arrived');
      t.diagnostic(`held after ${waiting.seq} events of 1 MiB; alive while held, exited 0 once drained`);
      await closeAll(receiver);
    });

    it('a drained() still pending when its bus closes rejects with ClosedError', { timeout: 60_000 }, async (t) => {
      await newHub({ stallTimeoutMs: 60_000, pingIntervalMs: 0 });
      const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'bulk:data', size: MiB } });
      peers.push(receiver);
      receiver.stop();
      const worker = await workerPeer(thisFile, hub, { name: 'worker', pub: { topic: 'bulk:data', count: HELD_COUNT, size: MiB, mode: 'drained', progress: true } });
      peers.push(worker);
      worker.send({ type: 'go' });
      const waiting = await deadline(20_000, 'the worker to be held', held(worker.log, 300, 'the worker'));
      worker.send({ type: 'close' });
      const done = await deadline(10_000, 'the pending drained() to settle', worker.message('done'));
      assert.ok(done.waitError, 'drained() rejected');
      assert.equal(done.waitError.closedError, true, `with ClosedError, got ${done.waitError.name}: ${done.waitError.message}`);
      t.diagnostic(`held at event ${waiting.seq}; drained() rejected with ${done.waitError.name}: ${done.waitError.message}`);
      receiver.cont();
      await closeAll(worker, receiver);
      // The worker's parked frames went with it; nothing is held for anyone.
      await until(10_000, 'the hub at rest', () => flowOf(hub), atRest);
    });
  });
}

/**
 * The role 'keepalive': emits to a stopped subscriber until it is held, lets go of its IPC
 * channel, and awaits drained() at the top level. Only the pending drained() can keep the process
 * alive (an idle bus does not); were it not to, Node.js would exit with code 13 (an unsettled
 * top-level await) before the subscriber reads again.
 */
async function runKeepAlive() {
  const bus = new EventBus({ name: 'keepalive' });
  await bus.ready();
  // Emits, honouring false, until a drained() is still pending after 300 ms: the hub holds the
  // feed for the stopped subscriber.
  let seq = 0;
  let pending;
  for (;;) {
    while (bus.emit('bulk:data', { seq: seq++, bytes: chunk(seq - 1, MiB) }));
    pending = bus.drained();
    const first = await Promise.race([pending.then(() => 'drained'), sleep(300).then(() => 'held')]);
    if (first === 'held') break;
  }
  await new Promise((resolve) => process.send?.({ type: 'waiting', seq }, resolve));
  process.channel?.unref();
  await pending;
  bus.emit('bulk:data:end', { sent: seq, error: null });
  await bus.close();
  checkClosed(bus, 'keepalive');
}

if (role === 'main') runMain();
else if (role === 'keepalive') await runKeepAlive();
else await runPeer();
