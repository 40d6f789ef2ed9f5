// Promise (issue 11; DESIGN.md, "Promises"): a live subscriber loses nothing. A subscriber that
// stops reading for a second (less than the stall timeout, 2 s by default) holds up the publisher
// that feeds it: the hub pauses the publisher instead of dropping. When it reads again it gets
// every event, and so do the other subscribers of the same feed, in order and byte-exact. A
// process stopped with SIGSTOP and one whose JavaScript thread is busy are the same to the hub, and
// so are a worker thread of the hub's process and the hub's own bus when their JavaScript is busy.
// The same holds for invokes: a callee that stops for a second pauses its caller, and every call
// is answered.
//
// Roles: 'main' (the test process and the hub, default options) and 'peer' (flow-peers.mjs): the
// publisher and three subscribers (or a caller and a callee), forked, or the slow one in a worker.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import { atRest, cleanUp, Feed, flowOf, forkPeer, KiB, MiB, quit, runPeer, sanitized, scaled, sleep, until, workerPeer } from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const SIZE = 256 * KiB;
const COUNT = scaled(400); // 100 MiB per subscriber: far more than the mark (8 MiB) and the buffers
const STOP_MS = 1_000;
const CALLS = 40; // invokes of 1 MiB at once: 40 MiB, far more than the mark

function intact(feed) {
  return { received: feed.received, backwards: feed.backwards, gaps: feed.gaps, corrupt: feed.corrupt };
}
const ALL = (n) => ({ received: n, backwards: 0, gaps: 0, corrupt: 0 });

function runMain() {
  describe('a live subscriber loses nothing', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${COUNT} events of 256 KiB instead of 400`);

    /**
     * A publisher sends COUNT events of 256 KiB to 'slow', 'fast-1' and 'fast-2'; `slowDown(slow)`
     * makes 'slow' stop reading for about a second once the feed has started. Every subscriber
     * must get everything, nothing is dropped or stalled, and the publisher was paused meanwhile.
     */
    async function oneSlowSubscriber(t, how, slowCfg, slowDown, { slowInWorker = false } = {}) {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub' }); // defaults: mark 8 MiB, stall after 2 s
      await hub.ready();
      const subs = [];
      for (const name of ['slow', 'fast-1', 'fast-2']) {
        const cfg = { name, sub: { topic: 'live:data', size: SIZE, ...(name === 'slow' ? slowCfg : {}) } };
        subs.push(name === 'slow' && slowInWorker ? await workerPeer(thisFile, hub, cfg) : await forkPeer(thisFile, hub, cfg));
      }
      peers.push(...subs);
      const publisher = await forkPeer(thisFile, hub, { name: 'publisher', pub: { topic: 'live:data', count: COUNT, size: SIZE, mode: 'drained' } });
      peers.push(publisher);
      const reports = subs.map((s) => s.message('report'));

      const t0 = performance.now();
      const slowness = await slowDown(subs[0], publisher);
      const done = await deadline(60_000, 'the publisher to finish', publisher.message('done'));
      const secs = (performance.now() - t0) / 1000;
      assert.equal(done.error, null);
      assert.equal(done.sent, COUNT);
      for (const [i, r] of (await deadline(30_000, 'the subscribers to report', Promise.all(reports))).entries()) {
        assert.deepEqual(intact(r.feed), ALL(COUNT), `${subs[i].name}: every event, once, in order, with its bytes`);
        assert.equal(r.dropped, 0, `${subs[i].name} was told of no loss`);
      }
      assert.equal(subs[0].log.filter((m) => m.type === 'dropped').length, 0, "no 'dropped' notice");

      const f = flowOf(hub);
      assert.equal(f.eventsDropped, 0, 'the hub dropped nothing');
      assert.equal(f.stalls, 0, 'nobody was declared stalled');
      assert.ok(f.pauses >= 1, `the hub paused the publisher rather than drop (pauses ${f.pauses})`);
      const feedGaps = subs.map((s) => `${s.name} ${(s.log.find((m) => m.type === 'report').feed.maxGapMs).toFixed(0)} ms`).join(', ');
      t.diagnostic(
        `${how}: ${slowness}; ${COUNT} x 256 KiB to 3 subscribers in ${secs.toFixed(2)} s; publisher paused ${f.pauses} times, ` +
          `emit() false ${done.falses} times; longest silence per subscriber: ${feedGaps}; hub peakQueuedBytes ${f.peakQueuedBytes}`,
      );

      for (const p of [publisher, ...subs]) {
        await quit(p);
        if (p.worker) assert.equal(await deadline(10_000, `${p.name} exit`, exitCode(p.worker)), 0);
        else assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    }

    it(`a subscriber stopped with SIGSTOP for ${STOP_MS} ms loses nothing; the others get everything once it resumes`, { timeout: 90_000 }, async (t) => {
      await oneSlowSubscriber(t, 'SIGSTOP', {}, async (slow, publisher) => {
        slow.stop();
        const stoppedAt = performance.now();
        publisher.send({ type: 'go' });
        // The stimulus: how long the subscriber reads nothing (not a synchronisation).
        await sleep(STOP_MS);
        const f = flowOf(hub);
        slow.cont();
        const stopped = performance.now() - stoppedAt;
        assert.ok(f.paused >= 1, `the publisher was paused while the subscriber was stopped (paused ${f.paused})`);
        assert.equal(f.stalled, 0);
        return `stopped ${stopped.toFixed(0)} ms; at SIGCONT the hub had paused ${f.paused}, parked ${(f.parkedBytes / MiB).toFixed(1)} MiB, ${(f.queuedBytes / MiB).toFixed(1)} MiB queued`;
      });
    });

    it(`a subscriber whose JavaScript thread is busy for ${STOP_MS} ms loses nothing; the others get everything`, { timeout: 90_000 }, async (t) => {
      await oneSlowSubscriber(t, 'busy thread', { busyMs: STOP_MS }, async (slow, publisher) => {
        publisher.send({ type: 'go' });
        const busy = await deadline(20_000, 'the subscriber to be busy', slow.message('busy'));
        const idle = await deadline(20_000, 'the subscriber to be idle', slow.message('idle'));
        return `busy ${(idle.at - busy.at).toFixed(0)} ms`;
      });
    });

    it(`a subscriber in a worker thread of the hub's process, busy for ${STOP_MS} ms, loses nothing; the others get everything`, { timeout: 90_000 }, async (t) => {
      await oneSlowSubscriber(
        t,
        'busy worker thread',
        { busyMs: STOP_MS },
        async (slow, publisher) => {
          publisher.send({ type: 'go' });
          const busy = await deadline(20_000, 'the worker to be busy', slow.message('busy'));
          const idle = await deadline(20_000, 'the worker to be idle', slow.message('idle'));
          return `busy ${(idle.at - busy.at).toFixed(0)} ms`;
        },
        { slowInWorker: true },
      );
    });

    it(`the hub's own bus, its JavaScript busy for ${STOP_MS} ms, loses nothing; the other subscriber gets everything`, { timeout: 90_000 }, async (t) => {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub' });
      await hub.ready();
      const own = new Feed();
      let busyFor = 0;
      const offData = hub.on('live:data', (data, ctx) => {
        if (own.received === 0) {
          // The hub's JavaScript thread reads nothing for a second (its I/O thread goes on).
          const t0 = performance.now();
          while (performance.now() - t0 < STOP_MS);
          busyFor = performance.now() - t0;
        }
        own.take(data.seq, data.bytes, SIZE);
      });
      const ownEnd = new Promise((resolve) => {
        const off = hub.on('live:data:end', (data) => {
          off();
          resolve(data);
        });
      });
      const other = await forkPeer(thisFile, hub, { name: 'other', sub: { topic: 'live:data', size: SIZE } });
      const publisher = await forkPeer(thisFile, hub, { name: 'publisher', pub: { topic: 'live:data', count: COUNT, size: SIZE, mode: 'drained' } });
      peers.push(other, publisher);
      const report = other.message('report');
      publisher.send({ type: 'go' });
      const done = await deadline(60_000, 'the publisher to finish', publisher.message('done'));
      assert.equal(done.error, null);
      await deadline(30_000, "the hub's own end of the feed", ownEnd);
      const r = await deadline(30_000, "'other' to report", report);
      offData();
      assert.deepEqual(intact(own.summary()), ALL(COUNT), "the hub's own listener got every event, once, in order, with its bytes");
      assert.deepEqual(intact(r.feed), ALL(COUNT), "'other' got every event");
      const f = flowOf(hub);
      assert.equal(f.eventsDropped, 0);
      assert.equal(f.stalls, 0);
      assert.ok(f.pauses >= 1, `the hub paused the publisher for its own busy JavaScript (pauses ${f.pauses})`);
      t.diagnostic(`the hub's JavaScript busy ${busyFor.toFixed(0)} ms; publisher paused ${f.pauses} times; hub peakQueuedBytes ${f.peakQueuedBytes}`);
      for (const p of [publisher, other]) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    });

    it(`a callee stopped for ${STOP_MS} ms loses no call: its caller is paused, every call is answered`, { timeout: 60_000 }, async (t) => {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub' });
      await hub.ready();
      const callee = await forkPeer(thisFile, hub, { name: 'callee', answer: { name: 'callee:echo' } });
      const caller = await forkPeer(thisFile, hub, { name: 'caller' });
      peers.push(callee, caller);
      const calls = CALLS;
      callee.stop();
      caller.send({ type: 'calls', name: 'callee:echo', count: calls, size: MiB });
      await deadline(20_000, 'the caller to send its calls', caller.message('calling'));
      await sleep(STOP_MS);
      const f = flowOf(hub);
      callee.cont();
      const called = await deadline(40_000, 'every call to end', caller.message('called'));
      assert.deepEqual({ ok: called.ok, failures: called.failures }, { ok: calls, failures: [] }, 'every call was answered with what it sent');
      assert.ok(f.paused >= 1, `the hub paused the caller while the callee was stopped (paused ${f.paused})`);
      const after = flowOf(hub);
      assert.equal(after.stalls, 0);
      assert.equal(after.eventsDropped, 0);
      t.diagnostic(
        `${calls} calls of 1 MiB to a callee stopped ${STOP_MS} ms: at SIGCONT the hub had paused ${f.paused}, parked ${(f.parkedBytes / MiB).toFixed(1)} MiB, ` +
          `${(f.queuedBytes / MiB).toFixed(1)} MiB queued; all answered; hub peakQueuedBytes ${after.peakQueuedBytes}`,
      );
      for (const p of [caller, callee]) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    });
  });
}

if (role === 'main') runMain();
else await runPeer();
