// Promise (issue 11; DESIGN.md, "Promises"): flow control never deadlocks. A publisher waiting for
// the bus still reads what comes to it, so pauses that form a cycle undo themselves: two processes
// flooding each other while both are slow, three flooding in a cycle (A -> B -> C -> A), the hub's
// own bus flooding a client that publishes everything back, and a handler that floods its caller
// while that caller is paused all finish, with nothing lost and nothing hung. The stall timeout
// would break a real cycle of pauses, but by dropping: so "nothing dropped, nobody stalled" is
// what shows that no cycle needed breaking.
//
// Roles: 'main' (the test process and the hub, default options) and 'peer' (flow-peers.mjs),
// forked. "Slow" is a subscriber that spends 2 ms of its JavaScript thread on each 256 KiB event
// (128 MiB/s), slower than a publisher.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import {
  atRest, cleanUp, Feed, flowOf, forkPeer, KiB, publish, quit, runPeer, sanitized, scaled, until,
} from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const SIZE = 256 * KiB;
const COUNT = scaled(160, 2); // 40 MiB each way: five times the mark (20 MiB under a sanitizer)
const SPIN_MS = 2;

const intact = (feed) => ({ received: feed.received, backwards: feed.backwards, gaps: feed.gaps, corrupt: feed.corrupt });
const ALL = (n) => ({ received: n, backwards: 0, gaps: 0, corrupt: 0 });

function runMain() {
  describe('no cycle of pauses deadlocks', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${COUNT} events of 256 KiB each way instead of 160`);

    async function newHub() {
      await hub?.close();
      hub = new EventBus({ role: 'hub', name: 'hub' });
      await hub.ready();
    }

    /** Peer i publishes `topic(i)` and subscribes to `topic(source(i))`, slowly. */
    async function ring(names, source) {
      const list = [];
      for (const [i, name] of names.entries()) {
        list.push(
          await forkPeer(thisFile, hub, {
            name,
            pub: { topic: `ring:${name}`, count: COUNT, size: SIZE, mode: 'drained' },
            sub: { topic: `ring:${names[source(i)]}`, size: SIZE, spinMs: SPIN_MS },
          }),
        );
      }
      peers.push(...list);
      return list;
    }

    async function checkHubAndClose(t, what, list, secs) {
      const f = flowOf(hub);
      assert.equal(f.stalls, 0, 'nobody was stalled: no cycle needed the stall timeout');
      assert.equal(f.eventsDropped, 0);
      t.diagnostic(`${what}: finished in ${secs.toFixed(2)} s; the hub paused publishers ${f.pauses} times; peakQueuedBytes ${f.peakQueuedBytes}`);
      for (const p of list) {
        await quit(p);
        assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
      }
      await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
    }

    async function runRing(t, names) {
      await newHub();
      const list = await ring(names, (i) => (i + names.length - 1) % names.length);
      const reports = list.map((p, i) => p.message('report', (m) => m.from === names[(i + names.length - 1) % names.length]));
      const t0 = performance.now();
      for (const p of list) p.send({ type: 'go' });
      const dones = await deadline(60_000, 'every publisher to finish', Promise.all(list.map((p) => p.message('done'))));
      const got = await deadline(30_000, 'every subscriber to report', Promise.all(reports));
      const secs = (performance.now() - t0) / 1000;
      for (const [i, d] of dones.entries()) {
        assert.equal(d.error, null);
        assert.equal(d.sent, COUNT);
        assert.deepEqual(intact(got[i].feed), ALL(COUNT), `${names[i]} got all of ${got[i].from}'s feed`);
      }
      await checkHubAndClose(t, names.join(' -> ') + ` -> ${names[0]}`, list, secs);
    }

    it('two processes flood each other while both are slow: both finish, nothing lost', { timeout: 90_000 }, async (t) => {
      await runRing(t, ['a', 'b']);
    });

    it('three processes flood in a cycle (A -> B -> C -> A): all finish, nothing lost', { timeout: 90_000 }, async (t) => {
      await runRing(t, ['a', 'b', 'c']);
    });

    it("the hub's own bus floods a slow client that publishes everything back: all arrive both ways", { timeout: 90_000 }, async (t) => {
      await newHub();
      const client = await forkPeer(thisFile, hub, { name: 'client', sub: { topic: 'echo:out', size: SIZE, spinMs: SPIN_MS }, echo: { topic: 'echo:back' } });
      peers.push(client);
      const back = new Feed();
      const offBack = hub.on('echo:back', (data) => back.take(data.seq, data.bytes, SIZE));
      const report = client.message('report');
      const t0 = performance.now();
      const done = await deadline(60_000, "the hub's feed to finish", publish(hub, { topic: 'echo:out', count: COUNT, size: SIZE, mode: 'drained' }));
      const r = await deadline(30_000, 'the client to report', report);
      await until(30_000, 'every echo back at the hub', () => back.received, (n) => n >= COUNT);
      const secs = (performance.now() - t0) / 1000;
      offBack();
      assert.equal(done.error, null);
      assert.deepEqual(intact(r.feed), ALL(COUNT), "the client got all of the hub's feed");
      assert.deepEqual(intact(back.summary()), ALL(COUNT), 'the hub got every echo back');
      t.diagnostic(`the hub's emit() returned false ${done.falses} times`);
      await checkHubAndClose(t, 'hub -> client -> hub', [client], secs);
    });

    it('a handler that floods its caller while the caller is paused: the call ends, both feeds arrive', { timeout: 90_000 }, async (t) => {
      await newHub();
      const a = await forkPeer(thisFile, hub, {
        name: 'a',
        pub: { topic: 'call:ab', count: COUNT, size: SIZE, mode: 'drained', progress: true },
        sub: { topic: 'call:ba', size: SIZE },
      });
      const b = await forkPeer(thisFile, hub, { name: 'b', sub: { topic: 'call:ab', size: SIZE, spinMs: SPIN_MS }, serve: { name: 'b:flood' } });
      peers.push(a, b);
      const aGot = a.message('report', (m) => m.from === 'b');
      const bGot = b.message('report', (m) => m.from === 'a');
      const t0 = performance.now();
      a.send({ type: 'go' });
      // A waits for the bus (B is slow); now A calls B, whose handler floods A before it answers.
      await deadline(20_000, 'A to wait for the bus', a.message('waiting'));
      a.send({ type: 'invoke', name: 'b:flood', req: { topic: 'call:ba', count: COUNT, size: SIZE, mode: 'drained' } });
      const invoked = await deadline(60_000, "the call to B's handler to end", a.message('invoked'));
      const done = await deadline(60_000, "A's feed to finish", a.message('done'));
      const [ra, rb] = await deadline(30_000, 'both to report', Promise.all([aGot, bGot]));
      const secs = (performance.now() - t0) / 1000;
      assert.equal(invoked.result.error, null);
      assert.equal(invoked.result.sent, COUNT);
      assert.equal(done.error, null);
      assert.deepEqual(intact(ra.feed), ALL(COUNT), "A got all of the handler's feed");
      assert.deepEqual(intact(rb.feed), ALL(COUNT), "B got all of A's feed");
      await checkHubAndClose(t, "A -> B's handler -> A", [a, b], secs);
    });
  });
}

if (role === 'main') runMain();
else await runPeer();
