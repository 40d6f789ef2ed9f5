// Promise: an event reaches every subscriber (other processes, worker threads and the sender's own
// listeners) exactly once, in the order its sender emitted it; off() stops deliveries at the hub;
// a pattern such as 'job:*' matches by prefix.
//
// One program in four roles: 'main' (the test process and the hub), 'child-a' and 'child-b'
// (forked processes that join with the hub's childEnv()), 'worker' (a worker thread in the hub's
// process, which finds the hub by itself). Everything is synchronised by bus messages.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, workerData } from 'node:worker_threads';
import { EventBus } from '../../dist/esm/index.js';

const thisFile = fileURLToPath(import.meta.url);
const role = workerData?.role ?? process.argv[2] ?? 'main';
const PEERS = ['child-a', 'child-b', 'worker'];
const SEQ_COUNT = 10_000;

/** Fails with a clear message if `promise` has not settled within `ms` (a deadline, not a wait). */
/**
 * A forked role must not outlive the test process: orphaned by a crash or a runner timeout, it
 * would keep running and hold the runner's output pipe open. This watchdog only notices that; it
 * takes no part in the tests' synchronisation.
 */
function dieWithParent() {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  }, 250).unref();
}

function within(ms, what, promise) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Resolves with the payloads of the first `n` events on `topic` that pass `filter`. */
function collect(bus, topic, n, filter = () => true) {
  return new Promise((resolve) => {
    const got = [];
    const off = bus.on(topic, (data) => {
      if (!filter(data)) return;
      got.push(data);
      if (got.length === n) {
        off();
        resolve(got);
      }
    });
  });
}

function childEnv(bus) {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, ...bus.childEnv() };
}

// --- Peer roles: child-a, child-b (processes) and worker (thread) ---------------------------------

async function runPeer() {
  const bus = new EventBus({ name: role });
  await bus.ready();

  // Fan-out: acknowledge every delivery, with what arrived and from whom.
  bus.on('fan:out', (data, ctx) => bus.emit('fan:got', { role, data, sender: ctx.sender }));

  // Per-sender order: count and check 'seq:n' from the burst sender.
  const seq = { received: 0, outOfOrder: 0, firstBad: -1, senders: new Set() };
  bus.on('seq:n', (data, ctx) => {
    if (data.i !== seq.received && seq.firstBad === -1) {
      seq.firstBad = seq.received;
      seq.outOfOrder++;
    } else if (data.i !== seq.received) {
      seq.outOfOrder++;
    }
    seq.received++;
    seq.senders.add(ctx.sender.name);
  });
  bus.on('seq:end', (data) => {
    bus.emit('seq:report', { role, received: seq.received, outOfOrder: seq.outOfOrder, firstBad: seq.firstBad, senders: [...seq.senders], end: data });
  });
  bus.handle(`${role}:burst`, ({ count }) => {
    for (let i = 0; i < count; i++) bus.emit('seq:n', { i });
    bus.emit('seq:end', { count });
    return count;
  });

  // Unsubscribe: 'unsub:tick' until off(); the marker reports what arrived, and how many event
  // frames reached this process at all since off() (only the marker may).
  const ticks = [];
  const onTick = (data) => ticks.push(data.n);
  bus.on('unsub:tick', onTick);
  let receivedAtOff = -1;
  bus.handle(`${role}:off-tick`, () => {
    bus.off('unsub:tick', onTick);
    receivedAtOff = bus.stats().received;
    return receivedAtOff;
  });
  bus.on('unsub:marker', () => {
    bus.emit('unsub:report', { role, ticks, receivedSinceOff: bus.stats().received - receivedAtOff });
  });

  // Patterns: what 'job:*' and the exact 'job:start' saw, reported at the marker.
  const pattern = [];
  const exact = [];
  bus.on('job:*', (data, ctx) => pattern.push(ctx.topic));
  bus.on('job:start', (data, ctx) => exact.push(ctx.topic));
  bus.on('jobs-done', () => bus.emit('job-report', { role, pattern, exact }));
  bus.handle(`${role}:emit-jobs`, (topics) => {
    for (const t of topics) bus.emit(t, { from: role });
    bus.emit('jobs-done-from-peer');
    return topics.length;
  });

  // Teardown: close on request, then exit by itself; a dirty stats() fails the exit code.
  bus.on('test:quit', async () => {
    await bus.close();
    const s = bus.stats();
    if (s.invokes.pending !== 0 || s.invokes.serving !== 0 || s.state !== 'closed') {
      console.error(`${role}: unclean close`, JSON.stringify(s));
      process.exitCode = 1;
    }
  });
  bus.emit('peer:ready', { role, pid: process.pid });
}

// --- The hub and the tests ------------------------------------------------------------------------

function runMain() {
  describe('events reach every subscriber, in order', { timeout: 60_000 }, () => {
    let bus;
    const children = {};
    let worker;
    let workerExit;

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      const ready = collect(bus, 'peer:ready', PEERS.length);
      for (const name of ['child-a', 'child-b']) {
        const child = fork(thisFile, [name], { env: childEnv(bus) });
        child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
        children[name] = child;
      }
      worker = new Worker(thisFile, { workerData: { role: 'worker' } });
      workerExit = new Promise((resolve) => worker.once('exit', resolve));
      worker.on('error', (err) => console.error('worker error', err));
      const roles = (await within(15_000, 'peers ready', ready)).map((r) => r.role).sort();
      assert.deepEqual(roles, [...PEERS].sort());
    });

    after(async () => {
      // Only reached with live peers when a test failed: do not leave them behind.
      for (const child of Object.values(children)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await worker?.terminate();
      await bus?.close();
    });

    it('one emit reaches both children, the worker and the hub\'s own listeners, once each', { timeout: 10_000 }, async () => {
      const local = [];
      const offLocal = bus.on('fan:out', (data, ctx) => local.push({ data, sender: ctx.sender }));
      const acks = collect(bus, 'fan:got', PEERS.length * 2);
      const when = new Date(1_700_000_000_000);
      bus.emit('fan:out', { n: 1, when });
      // A second emit: a duplicate of the first would be acknowledged before it (per-sender order).
      bus.emit('fan:out', { n: 2, when });
      const got = await within(5_000, 'fan-out acknowledgements', acks);
      offLocal();

      for (const peer of PEERS) {
        const mine = got.filter((a) => a.role === peer);
        assert.deepEqual(mine.map((a) => a.data.n), [1, 2], `${peer} got each emit exactly once, in order`);
        assert.ok(mine[0].data.when instanceof Date && mine[0].data.when.getTime() === when.getTime());
        assert.equal(mine[0].sender.name, 'hub');
        assert.equal(mine[0].sender.pid, process.pid);
        assert.equal(mine[0].sender.id, bus.stats().peerId);
      }
      assert.deepEqual(local.map((l) => l.data.n), [1, 2], 'the hub\'s own listener got each emit once');
      assert.equal(local[0].sender.name, 'hub');
      // Local listeners get a copy, like every other process.
      assert.ok(local[0].data.when instanceof Date);
    });

    it(`${SEQ_COUNT} numbered events from one child arrive in order at the hub, the other child and the worker`, { timeout: 30_000 }, async () => {
      let received = 0;
      let outOfOrder = 0;
      let firstBad = -1;
      const offSeq = bus.on('seq:n', (data, ctx) => {
        assert.equal(ctx.sender.name, 'child-a');
        if (data.i !== received) {
          outOfOrder++;
          if (firstBad === -1) firstBad = received;
        }
        received++;
      });
      const hubEnd = bus.once('seq:end');
      const reports = collect(bus, 'seq:report', 2, (r) => r.role === 'child-b' || r.role === 'worker');
      const droppedBefore = bus.stats().hub.eventsDropped;

      assert.equal(await within(10_000, 'burst invoke', bus.invoke('child-a:burst', { count: SEQ_COUNT })), SEQ_COUNT);
      assert.deepEqual(await within(20_000, 'seq:end at the hub', hubEnd), { count: SEQ_COUNT });
      offSeq();
      assert.deepEqual({ received, outOfOrder, firstBad }, { received: SEQ_COUNT, outOfOrder: 0, firstBad: -1 }, 'at the hub');

      for (const r of await within(20_000, 'order reports', reports)) {
        assert.deepEqual(
          { role: r.role, received: r.received, outOfOrder: r.outOfOrder, firstBad: r.firstBad, senders: r.senders },
          { role: r.role, received: SEQ_COUNT, outOfOrder: 0, firstBad: -1, senders: ['child-a'] },
          `at ${r.role}`,
        );
      }
      assert.equal(bus.stats().hub.eventsDropped, droppedBefore, 'a burst under the high-water mark is never dropped');
    });

    it('after off() a child gets no more deliveries (the hub stops routing to it)', { timeout: 10_000 }, async () => {
      const report = collect(bus, 'unsub:report', 1, (r) => r.role === 'child-b');
      // Tick 1 is delivered. The off-tick invoke goes after it (per-sender order), so child-b has
      // seen tick 1 before it calls off(); its reply comes after its UNSUBSCRIBE reached the hub.
      bus.emit('unsub:tick', { n: 1 });
      await within(5_000, 'off-tick', bus.invoke('child-b:off-tick'));
      bus.emit('unsub:tick', { n: 2 });
      bus.emit('unsub:tick', { n: 3 });
      bus.emit('unsub:marker');
      const [r] = await within(5_000, 'unsubscribe report', report);
      assert.deepEqual(r.ticks, [1], 'no tick after off()');
      assert.equal(r.receivedSinceOff, 1, 'only the marker reached child-b after off(): the hub stopped routing ticks to it');
    });

    it('after off() the hub\'s own listener gets nothing more', { timeout: 10_000 }, async () => {
      const ticks = [];
      const listener = (data, ctx) => ticks.push(ctx.sender.name);
      bus.on('hubunsub:tick', listener);
      // child-a emits a tick, then a marker: when the marker is here, so is the tick.
      let marker = bus.once('hubunsub:marker');
      await within(5_000, 'tick and marker', bus.invoke('child-a:emit-jobs', ['hubunsub:tick', 'hubunsub:marker']));
      await within(5_000, 'marker 1', marker);
      assert.deepEqual(ticks, ['child-a']);

      bus.off('hubunsub:tick', listener);
      const receivedAtOff = bus.stats().received;
      marker = bus.once('hubunsub:marker');
      await within(5_000, 'tick and marker', bus.invoke('child-a:emit-jobs', ['hubunsub:tick', 'hubunsub:marker']));
      await within(5_000, 'marker 2', marker);
      assert.deepEqual(ticks, ['child-a'], 'no tick after off()');
      assert.equal(bus.stats().received - receivedAtOff, 1, 'only the marker reached the hub\'s bus after off()');
    });

    it('a pattern subscription (\'job:*\') matches by prefix, once per event', { timeout: 10_000 }, async () => {
      // Hub -> child-b: the child's pattern and exact listeners.
      const report = collect(bus, 'job-report', 1, (r) => r.role === 'child-b');
      for (const topic of ['job:start', 'job:progress', 'jobs:x', 'job', 'other:job:x', 'job:deep:nested']) {
        bus.emit(topic, { topic });
      }
      bus.emit('jobs-done');
      const [r] = await within(5_000, 'job report', report);
      assert.deepEqual(r.pattern, ['job:start', 'job:progress', 'job:deep:nested']);
      assert.deepEqual(r.exact, ['job:start']);

      // child-a -> the hub's own pattern listener, with ctx.topic and ctx.sender.
      const seen = [];
      const off = bus.on('job:*', (data, ctx) => seen.push([ctx.topic, ctx.sender.name, data.from]));
      const done = bus.once('jobs-done-from-peer');
      await within(5_000, 'emit-jobs', bus.invoke('child-a:emit-jobs', ['job:a', 'nojob:a', 'job:b', 'job']));
      await within(5_000, 'jobs-done-from-peer', done);
      off();
      assert.deepEqual(seen, [
        ['job:a', 'child-a', 'child-a'],
        ['job:b', 'child-a', 'child-a'],
      ]);
    });

    it('closes: every peer exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      for (const [name, child] of Object.entries(children)) {
        assert.deepEqual(await within(5_000, `${name} exit`, child.exited), { code: 0, signal: null }, `${name} closed cleanly and exited`);
      }
      assert.equal(await within(5_000, 'worker exit', workerExit), 0);
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main' && !workerData) dieWithParent();
if (role === 'main') runMain();
else await runPeer();
