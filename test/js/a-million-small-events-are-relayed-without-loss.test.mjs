// Promise (issue 11; DESIGN.md, "Promises"): a live subscriber loses nothing, with the default
// options. A burst of 1,000,000 small events from one client, relayed through the hub to another
// client (whose JavaScript thread cannot keep up with the burst), all arrive, in order: the hub
// pauses the sender instead of dropping. This holds for a sender honouring emit() === false, and
// for one that ignores it and stays within the default hard limit (64 MiB of outbound buffer: a
// million small frames are well under it).
//
// Roles: 'main' (the test process and the hub, default options) and 'peer' (flow-peers.mjs): the
// sender and the receiver, forked, default options.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode } from './support.mjs';
import { atRest, cleanUp, flowOf, forkPeer, MiB, quit, runPeer, sanitized, scaled, until } from './flow-peers.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const COUNT = scaled(1_000_000, 5);

function runMain() {
  describe('a million small events are relayed without loss', { timeout: 120_000 }, () => {
    const peers = [];
    /** @type {EventBus | undefined} */
    let hub;

    after(async () => {
      cleanUp(peers);
      await hub?.close();
    });

    if (sanitized) console.log(`# under a sanitizer: ${COUNT} events instead of 1,000,000`);

    const cases = [
      { how: 'honouring false (await bus.drained())', pub: { mode: 'drained' } },
      // 10,000 emits per turn, as a sender producing over time; false is not looked at.
      { how: 'ignoring false, within the default hard limit', pub: { mode: 'ignore', yieldEvery: 10_000 } },
    ];
    for (const { how, pub } of cases) {
      it(`${COUNT} events, client -> hub -> client, default options, sender ${how}: 0 lost, in order`, { timeout: 90_000 }, async (t) => {
        await hub?.close();
        hub = new EventBus({ role: 'hub', name: 'hub' });
        await hub.ready();
        const receiver = await forkPeer(thisFile, hub, { name: 'receiver', sub: { topic: 'n' } });
        const sender = await forkPeer(thisFile, hub, { name: 'sender', pub: { topic: 'n', count: COUNT, ...pub } });
        peers.push(receiver, sender);
        const report = receiver.message('report');
        const t0 = performance.now();
        sender.send({ type: 'go' });
        const done = await deadline(75_000, 'the sender to finish', sender.message('done'));
        const r = await deadline(60_000, 'the receiver to report', report);
        const secs = (performance.now() - t0) / 1000;
        assert.equal(done.error, null, 'the sender was never refused');
        assert.equal(done.sent, COUNT);
        assert.deepEqual(
          { received: r.feed.received, backwards: r.feed.backwards, gaps: r.feed.gaps, firstGap: r.feed.firstGap },
          { received: COUNT, backwards: 0, gaps: 0, firstGap: -1 },
          'every event arrived once, in order',
        );
        const f = flowOf(hub);
        assert.equal(f.eventsDropped, 0, 'the hub dropped nothing');
        assert.equal(f.stalls, 0);
        t.diagnostic(
          `${COUNT} events in ${secs.toFixed(2)} s (${Math.round(COUNT / secs).toLocaleString('en')} events/s); emit() false ${done.falses} times; ` +
            `sender's outbound at most ${(done.maxOutbound / MiB).toFixed(1)} MiB; hub paused the sender ${f.pauses} times, peakQueuedBytes ${f.peakQueuedBytes}`,
        );
        for (const p of [sender, receiver]) {
          await quit(p);
          assert.deepEqual(await deadline(10_000, `${p.name} exit`, exitCode(p.child)), { code: 0, signal: null });
        }
        await until(5_000, 'the hub at rest', () => flowOf(hub), atRest);
      });
    }
  });
}

if (role === 'main') runMain();
else await runPeer();
