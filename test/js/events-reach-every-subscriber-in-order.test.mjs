// Promise: an event reaches every subscriber (other processes, worker threads and the sender's own
// listeners) exactly once, in the order its sender emitted it; off() stops deliveries at the hub;
// a pattern such as 'job:*' matches by prefix.
//
// One program in four roles: 'main' (the test process and the hub), 'child-a' and 'child-b'
// (forked processes that join with the hub's childEnv()), 'worker' (a worker thread in the hub's
// process, which finds the hub by itself). Everything is synchronised by bus messages.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import {
  checkClosed, collectEvents, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning,
  killLeftovers, startWorker,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const PEERS = ['child-a', 'child-b', 'worker'];
const SEQ_COUNT = 10_000;

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
    checkClosed(bus, role);
  });
  bus.emit('peer:ready', { role, pid: process.pid });
}

// --- The hub and the tests ------------------------------------------------------------------------

function runMain() {
  describe('events reach every subscriber, in order', { timeout: 60_000 }, () => {
    let bus;
    const children = {};
    let worker;

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      const ready = collectEvents(bus, 'peer:ready', PEERS.length);
      for (const name of ['child-a', 'child-b']) {
        children[name] = forkRole(thisFile, name, bus.childEnv());
      }
      worker = startWorker(thisFile, 'worker');
      worker.on('error', (err) => console.error('worker error', err));
      const roles = (await deadline(15_000, 'peers ready', ready)).map((r) => r.role).sort();
      assert.deepEqual(roles, [...PEERS].sort());
    });

    after(async () => {
      // Only reached with live peers when a test failed: do not leave them behind.
      killLeftovers(Object.values(children));
      await worker?.terminate();
      await bus?.close();
    });

    it('one emit reaches both children, the worker and the hub\'s own listeners, once each', { timeout: 10_000 }, async () => {
      const local = [];
      const offLocal = bus.on('fan:out', (data, ctx) => local.push({ data, sender: ctx.sender }));
      const acks = collectEvents(bus, 'fan:got', PEERS.length * 2);
      const when = new Date(1_700_000_000_000);
      bus.emit('fan:out', { n: 1, when });
      // A second emit: a duplicate of the first would be acknowledged before it (per-sender order).
      bus.emit('fan:out', { n: 2, when });
      const got = await deadline(5_000, 'fan-out acknowledgements', acks);
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
      const reports = collectEvents(bus, 'seq:report', 2, (r) => r.role === 'child-b' || r.role === 'worker');
      const droppedBefore = bus.stats().hub.eventsDropped;

      assert.equal(await deadline(10_000, 'burst invoke', bus.invoke('child-a:burst', { count: SEQ_COUNT })), SEQ_COUNT);
      assert.deepEqual(await deadline(20_000, 'seq:end at the hub', hubEnd), { count: SEQ_COUNT });
      offSeq();
      assert.deepEqual({ received, outOfOrder, firstBad }, { received: SEQ_COUNT, outOfOrder: 0, firstBad: -1 }, 'at the hub');

      for (const r of await deadline(20_000, 'order reports', reports)) {
        assert.deepEqual(
          { role: r.role, received: r.received, outOfOrder: r.outOfOrder, firstBad: r.firstBad, senders: r.senders },
          { role: r.role, received: SEQ_COUNT, outOfOrder: 0, firstBad: -1, senders: ['child-a'] },
          `at ${r.role}`,
        );
      }
      assert.equal(bus.stats().hub.eventsDropped, droppedBefore, 'a live subscriber loses nothing');
    });

    it('after off() a child gets no more deliveries (the hub stops routing to it)', { timeout: 10_000 }, async () => {
      const report = collectEvents(bus, 'unsub:report', 1, (r) => r.role === 'child-b');
      // Tick 1 is delivered. The off-tick invoke goes after it (per-sender order), so child-b has
      // seen tick 1 before it calls off(); its reply comes after its UNSUBSCRIBE reached the hub.
      bus.emit('unsub:tick', { n: 1 });
      await deadline(5_000, 'off-tick', bus.invoke('child-b:off-tick'));
      bus.emit('unsub:tick', { n: 2 });
      bus.emit('unsub:tick', { n: 3 });
      bus.emit('unsub:marker');
      const [r] = await deadline(5_000, 'unsubscribe report', report);
      assert.deepEqual(r.ticks, [1], 'no tick after off()');
      assert.equal(r.receivedSinceOff, 1, 'only the marker reached child-b after off(): the hub stopped routing ticks to it');
    });

    it('after off() the hub\'s own listener gets nothing more', { timeout: 10_000 }, async () => {
      const ticks = [];
      const listener = (data, ctx) => ticks.push(ctx.sender.name);
      bus.on('hubunsub:tick', listener);
      // child-a emits a tick, then a marker: when the marker is here, so is the tick.
      let marker = bus.once('hubunsub:marker');
      await deadline(5_000, 'tick and marker', bus.invoke('child-a:emit-jobs', ['hubunsub:tick', 'hubunsub:marker']));
      await deadline(5_000, 'marker 1', marker);
      assert.deepEqual(ticks, ['child-a']);

      bus.off('hubunsub:tick', listener);
      const receivedAtOff = bus.stats().received;
      marker = bus.once('hubunsub:marker');
      await deadline(5_000, 'tick and marker', bus.invoke('child-a:emit-jobs', ['hubunsub:tick', 'hubunsub:marker']));
      await deadline(5_000, 'marker 2', marker);
      assert.deepEqual(ticks, ['child-a'], 'no tick after off()');
      assert.equal(bus.stats().received - receivedAtOff, 1, 'only the marker reached the hub\'s bus after off()');
    });

    it('a pattern subscription (\'job:*\') matches by prefix, once per event', { timeout: 10_000 }, async () => {
      // Hub -> child-b: the child's pattern and exact listeners.
      const report = collectEvents(bus, 'job-report', 1, (r) => r.role === 'child-b');
      for (const topic of ['job:start', 'job:progress', 'jobs:x', 'job', 'other:job:x', 'job:deep:nested']) {
        bus.emit(topic, { topic });
      }
      bus.emit('jobs-done');
      const [r] = await deadline(5_000, 'job report', report);
      assert.deepEqual(r.pattern, ['job:start', 'job:progress', 'job:deep:nested']);
      assert.deepEqual(r.exact, ['job:start']);

      // child-a -> the hub's own pattern listener, with ctx.topic and ctx.sender.
      const seen = [];
      const off = bus.on('job:*', (data, ctx) => seen.push([ctx.topic, ctx.sender.name, data.from]));
      const done = bus.once('jobs-done-from-peer');
      await deadline(5_000, 'emit-jobs', bus.invoke('child-a:emit-jobs', ['job:a', 'nojob:a', 'job:b', 'job']));
      await deadline(5_000, 'jobs-done-from-peer', done);
      off();
      assert.deepEqual(seen, [
        ['job:a', 'child-a', 'child-a'],
        ['job:b', 'child-a', 'child-a'],
      ]);
    });

    it('closes: every peer exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      for (const [name, child] of Object.entries(children)) {
        assert.deepEqual(await deadline(5_000, `${name} exit`, exitCode(child)), { code: 0, signal: null }, `${name} closed cleanly and exited`);
      }
      assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0);
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else await runPeer();
