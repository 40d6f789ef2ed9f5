// Promise (issue 5, "Faults"; API.md, "A process hangs or is stopped"): a process stopped with
// SIGSTOP keeps its socket open, so only the hub's liveness PINGs can tell. It is declared dead
// after `pingMisses` silent intervals of `pingIntervalMs`, and the invokes it was serving fail
// for their callers with ConnectionLostError. The options are the EventBus's own; with the
// defaults (5 s x 2) the same call would wait 10-15 s, far past this test's bound.
//
// Roles: 'main' (the test process and the hub) and 'sleeper' (a forked process serving a handler
// that never answers; the test stops it with SIGSTOP mid-call).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConnectionLostError, EventBus, InvalidArgumentError } from '../../dist/esm/index.js';
import { currentRole, deadline, forkRole, guardAgainstOrphaning, killLeftovers } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

async function runSleeper() {
  guardAgainstOrphaning();
  const bus = new EventBus({ name: 'sleeper' });
  await bus.ready();
  bus.handle('sleeper:hang', () => {
    bus.emit('sleeper:started');
    return new Promise(() => {});
  });
  bus.emit('sleeper:ready');
}

function runMain() {
  describe('a stopped process releases its callers', { timeout: 30_000 }, () => {
    const children = [];
    let hub;

    after(async () => {
      for (const c of children) {
        try {
          process.kill(c.pid, 'SIGCONT');
        } catch {
          // already gone
        }
      }
      killLeftovers(children);
      await hub?.close();
    });

    it('pingIntervalMs and pingMisses are checked like every option', () => {
      assert.throws(() => new EventBus({ role: 'hub', pingIntervalMs: -1 }), InvalidArgumentError);
      assert.throws(() => new EventBus({ role: 'hub', pingMisses: 0 }), InvalidArgumentError);
      assert.throws(() => new EventBus({ role: 'hub', pingIntervalMs: 1.5 }), InvalidArgumentError);
    });

    it('its pending invoke fails with ConnectionLostError after the missed pings', async () => {
      // 200 ms x 2: declared dead 400-600 ms after its last frame.
      hub = new EventBus({ role: 'hub', name: 'hub', pingIntervalMs: 200, pingMisses: 2 });
      await hub.ready();
      const ready = hub.once('sleeper:ready');
      const sleeper = forkRole(thisFile, 'sleeper', hub.childEnv());
      children.push(sleeper);
      await deadline(15_000, 'sleeper ready', ready);

      const started = hub.once('sleeper:started');
      const call = hub.invoke('sleeper:hang', null, { timeout: 0 }).then(
        (v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`),
        (err) => err,
      );
      await deadline(5_000, 'handler started', started);
      const t0 = performance.now();
      process.kill(sleeper.pid, 'SIGSTOP');
      const err = await deadline(8_000, 'the call to fail', call);
      const elapsed = performance.now() - t0;
      assert.ok(err instanceof ConnectionLostError, `a ConnectionLostError, got ${err?.name}: ${err?.message}`);
      // Declared dead within misses + 1 intervals of its last frame (600 ms), plus scheduling slack
      // on a loaded machine; the defaults would take 10 s at least.
      assert.ok(elapsed < 5_000, `released ${elapsed.toFixed(0)} ms after SIGSTOP`);
      console.log(`# released ${elapsed.toFixed(0)} ms after SIGSTOP (interval 200 ms, 2 misses)`);
      // The hub is unharmed: its own handlers still answer.
      hub.handle('hub:echo', (x) => x);
      assert.equal(await hub.invoke('hub:echo', 7), 7);
    });
  });
}

if (role === 'sleeper') await runSleeper();
else runMain();
