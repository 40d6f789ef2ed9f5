// Promise (issue 11; DESIGN.md, "Promises"): the hub pauses only the publishers whose events wait
// for a full subscriber. Publisher P1 feeds only a stopped subscriber, publisher P2 only a live
// one: while P1 is paused, P2 goes on at about its own rate. The test measures P2's rate alone and
// while P1 is paused (five runs each, medians), prints the ratio, and asserts a loose bound on it
// (the machine's noise on two cores is large; a P2 held up by P1 would be near 0).
//
// Replies are never held either: a callee answering a caller whose queue is full is not paused.
//
// Roles: 'main' (the test process and the hub) and 'peer' (flow-peers.mjs): P1, P2 and the two
// subscribers (or a caller, a callee, a publisher and a subscriber), forked. The stall timeout is
// set far out so that P1 stays paused (not released by a stall) while P2 is measured, and pings
// are off (the stopped subscriber does not answer them).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import { atRest, cleanUp, flowOf, forkPeer, held, KiB, MiB, quit, runPeer, sanitized, scaled, until } from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const SIZE = 64 * KiB;
const P2_COUNT = scaled(4000); // per measurement: 250 MiB, 0.5-1 s here
const RUNS = 5; // measurements each way; their medians are compared (single runs vary by 2x on two cores)
const P1_COUNT = 1000; // more than the buffers hold: P1 is paused for good until SIGCONT
const MIN_RATIO = 0.5;
const CALLS = 20; // calls held by B, then answered into the stopped caller's full queue
const CALL_SIZE = 256 * KiB;
const REPLY_FEED = 300; // B's own feed while the caller is stopped

function runMain() {
  describe('pausing is per feed', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${P2_COUNT} events of 64 KiB per measurement instead of 4000`);

    it(`a publisher feeding only a live subscriber keeps its rate (> ${MIN_RATIO} of it) while another feeding a stopped one is paused`, { timeout: 100_000 }, async (t) => {
      hub = new EventBus({ role: 'hub', name: 'hub', stallTimeoutMs: 120_000, pingIntervalMs: 0 });
      await hub.ready();
      const slow = await forkPeer(thisFile, hub, { name: 'slow', sub: { topic: 'feed:slow', size: SIZE } });
      const fast = await forkPeer(thisFile, hub, { name: 'fast', sub: { topic: 'feed:fast', size: SIZE } });
      const p1 = await forkPeer(thisFile, hub, { name: 'p1', pub: { topic: 'feed:slow', count: P1_COUNT, size: SIZE, mode: 'drained', progress: true } });
      const p2 = await forkPeer(thisFile, hub, { name: 'p2', pub: { topic: 'feed:fast', count: P2_COUNT, size: SIZE, mode: 'drained' } });
      peers.push(slow, fast, p1, p2);

      /** One run of P2's feed to 'fast': events per second, from 'go' to 'fast' having them all. */
      async function measureP2(what) {
        const from = fast.log.length;
        const fromP2 = p2.log.length;
        const report = fast.after(from, 'report', (m) => m.from === 'p2');
        const t0 = performance.now();
        p2.send({ type: 'go' });
        const r = await deadline(60_000, `P2's feed (${what})`, report);
        const secs = (performance.now() - t0) / 1000;
        const done = await deadline(10_000, `P2 done (${what})`, p2.after(fromP2, 'done'));
        assert.equal(done.error, null);
        assert.deepEqual(
          { received: r.feed.received, backwards: r.feed.backwards, gaps: r.feed.gaps, corrupt: r.feed.corrupt },
          { received: P2_COUNT, backwards: 0, gaps: 0, corrupt: 0 },
          `'fast' got all of P2's feed (${what})`,
        );
        return P2_COUNT / secs;
      }

      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      // Warm-up (connections, code paths), then P2 alone.
      await measureP2('warm-up');
      const aloneRuns = [];
      for (let i = 0; i < RUNS; i++) aloneRuns.push(await measureP2('alone'));
      const alone = median(aloneRuns);

      // P1 feeds the stopped subscriber until the hub pauses it and it waits.
      slow.stop();
      p1.send({ type: 'go' });
      const waiting = await deadline(20_000, 'P1 to be held', held(p1.log, 300, 'P1'));
      const before = flowOf(hub);
      assert.ok(before.paused >= 1, `P1 is paused (paused ${before.paused})`);
      const p1Waits = p1.log.length;

      const pausedRuns = [];
      for (let i = 0; i < RUNS; i++) pausedRuns.push(await measureP2('while P1 is paused'));
      const whilePaused = median(pausedRuns);
      const during = flowOf(hub);
      assert.equal(p1.log.length, p1Waits, 'P1 stayed held while P2 was measured');
      assert.equal(during.paused, 1, 'after P2\'s feed only P1 is paused');
      assert.equal(during.stalls, 0);

      const ratio = whilePaused / alone;
      const list = (xs) => xs.map((x) => Math.round(x)).join(', ');
      t.diagnostic(
        `P2 alone ${list(aloneRuns)} events/s, while P1 is paused ${list(pausedRuns)} events/s (medians compared); ` +
        `P2 alone ${Math.round(alone)} events/s (${((alone * SIZE) / MiB).toFixed(0)} MiB/s); while P1 is paused ${Math.round(whilePaused)} events/s ` +
          `(${((whilePaused * SIZE) / MiB).toFixed(0)} MiB/s); ratio ${ratio.toFixed(2)}; P1 held at event ${waiting.seq} of ${P1_COUNT}, ` +
          `hub parked ${(during.parkedBytes / MiB).toFixed(1)} MiB for it`,
      );
      assert.ok(ratio > MIN_RATIO, `P2's rate while P1 is paused is ${ratio.toFixed(2)} of its rate alone`);

      // The stopped subscriber reads again: P1 goes on, and 'slow' gets all of it.
      const slowReport = slow.message('report', (m) => m.from === 'p1');
      slow.cont();
      const p1Done = await deadline(60_000, 'P1 to finish', p1.message('done'));
      assert.equal(p1Done.error, null);
      const sr = await deadline(30_000, "'slow' to report", slowReport);
      assert.deepEqual(
        { received: sr.feed.received, backwards: sr.feed.backwards, gaps: sr.feed.gaps, corrupt: sr.feed.corrupt },
        { received: P1_COUNT, backwards: 0, gaps: 0, corrupt: 0 },
        "'slow' got all of P1's feed",
      );
      assert.equal(flowOf(hub).eventsDropped, 0);
      for (const p of [p1, p2, slow, fast]) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    });

    it('replies are never held: a callee answering a caller whose queue is full is not paused, and goes on with its own feed', { timeout: 60_000 }, async (t) => {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub', stallTimeoutMs: 120_000, pingIntervalMs: 0 });
      await hub.ready();
      // 'caller' subscribes to a flood from P and calls B, whose handler holds the calls; B also
      // publishes a feed of its own to 'fast'.
      const caller = await forkPeer(thisFile, hub, { name: 'caller', sub: { topic: 'flood:caller', size: SIZE } });
      const fast = await forkPeer(thisFile, hub, { name: 'fast', sub: { topic: 'feed:b', size: SIZE } });
      const b = await forkPeer(thisFile, hub, {
        name: 'b',
        answer: { name: 'b:echo', hold: true },
        pub: { topic: 'feed:b', count: REPLY_FEED, size: SIZE, mode: 'drained' },
      });
      const p = await forkPeer(thisFile, hub, { name: 'p', pub: { topic: 'flood:caller', count: P1_COUNT, size: SIZE, mode: 'drained', progress: true } });
      peers.push(caller, fast, b, p);

      caller.send({ type: 'calls', name: 'b:echo', count: CALLS, size: CALL_SIZE });
      await deadline(20_000, 'B to hold every call', b.message('holding', (m) => m.count === CALLS));
      // The caller stops reading; P's flood fills its queue and P is paused.
      caller.stop();
      p.send({ type: 'go' });
      await deadline(20_000, 'P to be held', held(p.log, 300, 'P'));
      const before = await until(5_000, 'the hub to pause P', () => flowOf(hub), (f) => f.paused === 1);

      // B answers into the full queue, then sends its own feed: neither waits for the caller.
      b.send({ type: 'release' });
      await deadline(20_000, 'B to answer', b.message('released'));
      const feed = fast.message('report', (m) => m.from === 'b');
      b.send({ type: 'go' });
      const done = await deadline(30_000, "B's feed to finish while the caller is stopped", b.message('done'));
      assert.equal(done.error, null);
      const r = await deadline(30_000, "'fast' to report", feed);
      assert.deepEqual(
        { received: r.feed.received, backwards: r.feed.backwards, gaps: r.feed.gaps, corrupt: r.feed.corrupt },
        { received: REPLY_FEED, backwards: 0, gaps: 0, corrupt: 0 },
        "'fast' got all of B's feed",
      );
      const during = flowOf(hub);
      assert.equal(during.paused, 1, 'only P is paused; B, which answered the stopped caller, is not');
      assert.ok(
        during.queuedBytes >= before.queuedBytes + CALLS * CALL_SIZE - MiB,
        `the replies wait in the caller's queue, past its mark (queued ${before.queuedBytes} -> ${during.queuedBytes} bytes)`,
      );

      caller.cont();
      const called = await deadline(30_000, 'every call to end', caller.message('called'));
      assert.deepEqual({ ok: called.ok, failures: called.failures }, { ok: CALLS, failures: [] }, 'every call was answered with what it sent');
      const pDone = await deadline(30_000, 'P to finish', p.message('done'));
      assert.equal(pDone.error, null);
      const flood = await deadline(30_000, "the caller's flood report", caller.message('report', (m) => m.from === 'p'));
      assert.equal(flood.feed.received, P1_COUNT);
      assert.equal(flowOf(hub).eventsDropped, 0);
      t.diagnostic(
        `${CALLS} replies of ${CALL_SIZE / KiB} KiB queued for the stopped caller (queued ${(before.queuedBytes / MiB).toFixed(1)} -> ${(during.queuedBytes / MiB).toFixed(1)} MiB, ` +
          `mark 8 MiB) while only P was paused; B's feed of ${REPLY_FEED} events went on meanwhile`,
      );
      for (const peer of [p, b, caller, fast]) {
        await quit(peer);
        assert.deepEqual(await deadline(10_000, `${peer.name} exit`, exitCode(peer.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    });
  });
}

if (role === 'main') runMain();
else await runPeer();
