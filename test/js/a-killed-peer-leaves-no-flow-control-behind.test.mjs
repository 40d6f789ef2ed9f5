// Promise (issue 11; DESIGN.md, "Promises", and "No process dies because of the bus"): a peer
// killed with SIGKILL in the middle of flow control leaves nothing behind. Two publishers feed a
// stopped subscriber (and a live one) until the hub pauses both; then
//   - the first publisher is killed: the other goes on when the subscriber reads again, and what
//     the dead one had sent arrives as a prefix of its feed, in order;
//   - or the stopped subscriber is killed: both publishers go on at once (long before the stall
//     timeout), and the live subscriber gets everything.
// The same for a worker thread of the hub's own process terminated while the hub holds its feed.
// Every time, the hub's figures return to their baseline: nobody paused, nothing parked, nobody
// stalled, nothing queued.
//
// Roles: 'main' (the test process and the hub) and 'peer' (flow-peers.mjs), forked or in a worker
// thread. The stall timeout is set far out so that only the kill can release the publishers, and
// pings are off.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import { atRest, cleanUp, flowOf, forkPeer, held, KiB, MiB, quit, runPeer, sanitized, scaled, until, workerPeer } from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const SIZE = 64 * KiB;
const COUNT = scaled(600, 2); // per publisher: ~38 MiB, far more than the mark and the buffers
const STALL_MS = 120_000;

function orderly(feed) {
  return { backwards: feed.backwards, gaps: feed.gaps, corrupt: feed.corrupt };
}

function runMain() {
  describe('a killed peer leaves no flow control behind', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${COUNT} events of 64 KiB per publisher instead of 600`);

    /** A hub, 'slow' and 'fast' subscribers, and P1 and P2, both paused behind the stopped 'slow'. */
    async function bothPaused() {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub', stallTimeoutMs: STALL_MS, pingIntervalMs: 0 });
      await hub.ready();
      const slow = await forkPeer(thisFile, hub, { name: 'slow', sub: { topic: 'k:data', size: SIZE } });
      const fast = await forkPeer(thisFile, hub, { name: 'fast', sub: { topic: 'k:data', size: SIZE } });
      const p1 = await forkPeer(thisFile, hub, { name: 'p1', pub: { topic: 'k:data', count: COUNT, size: SIZE, mode: 'drained', progress: true } });
      const p2 = await forkPeer(thisFile, hub, { name: 'p2', pub: { topic: 'k:data', count: COUNT, size: SIZE, mode: 'drained', progress: true } });
      peers.push(slow, fast, p1, p2);
      // The 'peer:ready' events may still be on their way to the hub's own bus.
      const baseline = await until(5_000, 'the hub at rest before the test', () => flowOf(hub), atRest);

      slow.stop();
      p1.send({ type: 'go' });
      p2.send({ type: 'go' });
      await deadline(20_000, 'both publishers to be held', Promise.all([held(p1.log, 300, 'P1'), held(p2.log, 300, 'P2')]));
      const paused = await until(5_000, 'the hub to pause both', () => flowOf(hub), (f) => f.paused === 2);
      assert.ok(paused.parkedBytes > 0);
      assert.equal(paused.stalled, 0);
      return { slow, fast, p1, p2, baseline, paused };
    }

    async function closeAll(list) {
      for (const p of list) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
    }

    /** Back to rest with `peers` peers: nobody paused, parked, stalled or queued for. */
    function backToBaseline(baseline, peerCount) {
      return until(10_000, 'the hub back to its baseline', () => flowOf(hub), (f) => atRest(f) && f.peers === peerCount);
    }

    it('SIGKILL of a paused publisher: the other publisher goes on, what the dead one sent arrives in order, the hub returns to baseline', { timeout: 90_000 }, async (t) => {
      const { slow, fast, p1, p2, baseline, paused } = await bothPaused();
      const p2Fast = fast.message('report', (m) => m.from === 'p2');
      const p2Slow = slow.message('report', (m) => m.from === 'p2');

      p1.child.kill('SIGKILL');
      await deadline(10_000, 'P1 to die', exitCode(p1.child));
      // What the hub had read from P1 before it died was sent: the hub may deliver it when the
      // subscriber reads again (it does not drop what a peer sent before it went), so P1 may stay
      // paused until then. Nothing else waits for P1.
      const afterKill = flowOf(hub);

      slow.cont();
      const done = await deadline(60_000, 'P2 to finish', p2.message('done'));
      assert.equal(done.error, null);
      assert.equal(done.sent, COUNT);
      for (const [who, r] of [['fast', await deadline(30_000, "'fast' to report", p2Fast)], ['slow', await deadline(30_000, "'slow' to report", p2Slow)]]) {
        assert.deepEqual({ received: r.feed.received, ...orderly(r.feed) }, { received: COUNT, backwards: 0, gaps: 0, corrupt: 0 }, `'${who}' got all of P2's feed`);
      }
      const settled = await backToBaseline(baseline, baseline.peers - 1);
      // What arrived of the killed publisher's feed is a prefix: in order, without a gap. Both
      // subscribers got the same prefix (the hub routes each event to both or holds it for both).
      const got = {};
      for (const sub of [slow, fast]) {
        const from = sub.log.length;
        sub.send({ type: 'feeds' });
        const { feeds } = await deadline(10_000, `${sub.name}'s feeds`, sub.after(from, 'feeds'));
        got[sub.name] = feeds.p1?.received ?? 0;
        if (feeds.p1) assert.deepEqual(orderly(feeds.p1), { backwards: 0, gaps: 0, corrupt: 0 }, `what '${sub.name}' got from P1 is a prefix of its feed`);
      }
      const lastWait = p1.log.filter((m) => m.type === 'waiting').at(-1);
      t.diagnostic(
        `both paused with ${(paused.parkedBytes / MiB).toFixed(1)} MiB parked; after P1's death: paused ${afterKill.paused}, peers ${afterKill.peers} ` +
          `(baseline ${baseline.peers}), ${(afterKill.parkedBytes / MiB).toFixed(1)} MiB parked; P1 had emitted ${lastWait.seq + 1} events, ` +
          `'slow' got ${got.slow} of them, 'fast' ${got.fast}; at the end ${JSON.stringify(settled)}`,
      );
      await closeAll([p2, slow, fast]);
    });

    it('SIGKILL of the stopped subscriber: both paused publishers go on at once, the hub returns to baseline', { timeout: 90_000 }, async (t) => {
      const { slow, fast, p1, p2, baseline, paused } = await bothPaused();
      const reports = [p1, p2].map((p) => fast.message('report', (m) => m.from === p.name));
      const marks = [p1.log.length, p2.log.length];
      const killedAt = performance.now();
      slow.child.kill('SIGKILL');
      await deadline(10_000, "'slow' to die", exitCode(slow.child));
      const dones = await deadline(60_000, 'both publishers to finish', Promise.all([p1.message('done'), p2.message('done')]));
      const finished = performance.now() - killedAt;
      // P1 or P2's first 'resumed' after the kill: when the hub let go of them.
      const resumed = Math.min(...[p1, p2].map((p, i) => p.log.find((m, k) => k >= marks[i] && m.type === 'resumed')?.at ?? Infinity));
      for (const d of dones) {
        assert.equal(d.error, null);
        assert.equal(d.sent, COUNT);
      }
      assert.ok(finished < STALL_MS / 4, `released by the kill, not by the stall timeout (${finished.toFixed(0)} ms)`);
      for (const [i, r] of (await deadline(30_000, "'fast' to report", Promise.all(reports))).entries()) {
        assert.deepEqual({ received: r.feed.received, ...orderly(r.feed) }, { received: COUNT, backwards: 0, gaps: 0, corrupt: 0 }, `'fast' got all of P${i + 1}'s feed`);
      }
      const settled = await backToBaseline(baseline, baseline.peers - 1);
      assert.equal(settled.stalls, 0);
      assert.equal(settled.eventsDropped, 0);
      t.diagnostic(
        `both paused with ${(paused.parkedBytes / MiB).toFixed(1)} MiB parked; after 'slow' was killed, a publisher went on ` +
          `${(resumed - (performance.timeOrigin + killedAt)).toFixed(0)} ms later and both finished in ${finished.toFixed(0)} ms; at the end ${JSON.stringify(settled)}`,
      );
      await closeAll([p1, p2, fast]);
    });

    it('a worker thread terminated while the hub holds its feed leaves nothing behind', { timeout: 90_000 }, async (t) => {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub', stallTimeoutMs: STALL_MS, pingIntervalMs: 0 });
      await hub.ready();
      const slow = await forkPeer(thisFile, hub, { name: 'slow', sub: { topic: 'k:data', size: SIZE } });
      const worker = await workerPeer(thisFile, hub, { name: 'worker', pub: { topic: 'k:data', count: COUNT, size: SIZE, mode: 'drained', progress: true } });
      peers.push(slow, worker);
      const baseline = await until(5_000, 'the hub at rest before the test', () => flowOf(hub), atRest);
      slow.stop();
      worker.send({ type: 'go' });
      await deadline(20_000, 'the worker to be held', held(worker.log, 300, 'the worker'));
      const paused = await until(5_000, 'the hub to pause the worker', () => flowOf(hub), (f) => f.paused === 1);
      assert.equal(await worker.worker.terminate(), 1);
      slow.cont();
      const settled = await backToBaseline(baseline, baseline.peers - 1);
      const from = slow.log.length;
      slow.send({ type: 'feeds' });
      const { feeds } = await deadline(10_000, "'slow''s feeds", slow.after(from, 'feeds'));
      if (feeds.worker) assert.deepEqual(orderly(feeds.worker), { backwards: 0, gaps: 0, corrupt: 0 }, "what 'slow' got from the worker is a prefix of its feed");
      t.diagnostic(
        `paused with ${(paused.parkedBytes / MiB).toFixed(1)} MiB parked; after terminate(): 'slow' got ${feeds.worker?.received ?? 0} events; at the end ${JSON.stringify(settled)}`,
      );
      await closeAll([slow]);
    });
  });
}

if (role === 'main') runMain();
else await runPeer();
