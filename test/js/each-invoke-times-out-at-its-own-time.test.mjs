// Promise (docs/API.md, "How an invoke ends"): an invoke that gets no reply within its `timeout`
// rejects with TimeoutError, never before that time, and the serving process hears of it. All
// pending invokes of a bus share one timer (lib/deadlines.ts) armed for the earliest deadline;
// these tests hold that mechanism to the semantics of a timer per call: every call ends at its
// own time, in deadline order across different timeouts, a reply stops its call's clock, and the
// shared timer never keeps a process alive.
//
// Roles: 'main' (the test process and the hub; the calls go from a client bus in the same process
// through the hub, as between processes), 'quick-caller' (a forked client whose only invoke has a
// long timeout and is answered at once; it must exit by itself long before that timeout).
// Time bounds: a call must not end before its timeout (the promise); how late it may end is
// bounded generously (1 s, for loaded CI machines), it is not a speed test.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus, TimeoutError } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const LATE_MS = 1_000;

async function runQuickCaller() {
  const bus = new EventBus({ name: 'quick-caller' });
  await bus.ready();
  const answer = await bus.invoke('hub:echo', 'hi', { timeout: 60_000 });
  process.send({ type: 'answered', answer, pending: bus.stats().invokes.pending });
  // Nothing else, no close(): with no listener, handler or pending call the bus is quiet, and the
  // shared deadline timer (still armed for 60 s) must not hold the process.
}

function runMain() {
  describe('each invoke times out at its own time', { timeout: 60_000 }, () => {
    let hub;
    let client;
    const children = [];
    // Calls of 'hub:hold' wait until the test answers them (by their `id`); `reached(id)` resolves
    // once such a call has reached its handler.
    const held = new Map();
    const arrivals = new Map();
    const reached = (id) => {
      if (!arrivals.has(id)) {
        let resolve;
        arrivals.set(id, { promise: new Promise((r) => (resolve = r)), resolve });
        arrivals.get(id).resolve = resolve;
      }
      return arrivals.get(id).promise;
    };
    const cancelled = [];

    before(async () => {
      hub = new EventBus({ role: 'hub', name: 'hub' });
      await hub.ready();
      hub.handle('hub:echo', (x) => x);
      hub.handle('hub:hold', ({ id }, ctx) => {
        ctx.signal.addEventListener('abort', () => cancelled.push(id));
        reached(id);
        arrivals.get(id).resolve();
        return new Promise((resolve) => held.set(id, resolve));
      });
      const env = hub.childEnv();
      client = new EventBus({ role: 'client', name: 'caller', endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
      await client.ready();
      assert.equal(await client.invoke('hub:echo', 1), 1, 'the client reaches the hub');
    });

    after(async () => {
      killLeftovers(children);
      await client?.close();
      await hub?.close();
    });

    it('calls with different timeouts, sent in mixed order, each end at their own time and in deadline order', { timeout: 20_000 }, async () => {
      // Shorter calls sent after longer ones: the shared timer must be re-armed for them.
      const timeouts = [400, 150, 600, 150, 50, 300, 50, 500, 250, 150, 100, 350];
      const ended = [];
      const calls = timeouts.map((timeout, i) => {
        const t0 = performance.now();
        return client.invoke('hub:hold', { id: `t${i}` }, { timeout }).then(
          (value) => assert.fail(`call ${i} (timeout ${timeout} ms) resolved with ${JSON.stringify(value)}`),
          (err) => {
            ended.push(i);
            return { i, timeout, err, elapsed: performance.now() - t0 };
          },
        );
      });
      const results = await deadline(10_000, 'every call to end', Promise.all(calls));
      for (const { i, timeout, err, elapsed } of results) {
        assert.ok(err instanceof TimeoutError, `call ${i}: a TimeoutError, got ${err?.name}: ${err?.message}`);
        assert.equal(err.message, `invoke('hub:hold') got no reply within ${timeout} ms`);
        assert.ok(elapsed >= timeout, `call ${i} ended after ${elapsed.toFixed(1)} ms, before its ${timeout} ms`);
        assert.ok(elapsed < timeout + LATE_MS, `call ${i} ended after ${elapsed.toFixed(0)} ms, its timeout is ${timeout} ms`);
      }
      // Deadline order; calls with the same timeout in the order they were made.
      const expected = timeouts.map((timeout, i) => ({ timeout, i })).sort((a, b) => a.timeout - b.timeout || a.i - b.i).map((x) => x.i);
      assert.deepEqual(ended, expected, 'the calls ended in the order of their deadlines');
      // Every timed-out call was cancelled at the handler (one CANCEL per call, ahead of this
      // invoke from the same sender, so all have arrived when it is answered).
      assert.equal(await client.invoke('hub:echo', 'fence'), 'fence');
      assert.deepEqual([...cancelled].sort(), timeouts.map((_, i) => `t${i}`).sort());
      assert.equal(client.stats().invokes.pending, 0);
      cancelled.length = 0;
      held.clear();
    });

    it('an answered call stops its clock: it resolves, and the calls after it still time out on time', { timeout: 20_000 }, async () => {
      const t0 = performance.now();
      // The earliest deadline is answered before it is due; the timer armed for it must move on
      // to the next one instead of ending anything.
      const first = client.invoke('hub:hold', { id: 'answered' }, { timeout: 300 });
      const second = client.invoke('hub:hold', { id: 'late' }, { timeout: 600 }).then(
        () => assert.fail('resolved'),
        (err) => ({ err, elapsed: performance.now() - t0 }),
      );
      const third = client.invoke('hub:hold', { id: 'answered-too' }, { timeout: 900 });
      await deadline(5_000, 'the calls to reach the handler', Promise.all([reached('answered'), reached('late'), reached('answered-too')]));
      held.get('answered')('first');
      assert.equal(await deadline(5_000, 'the answer', first), 'first');
      const { err, elapsed } = await deadline(5_000, 'the timeout', second);
      assert.ok(err instanceof TimeoutError, `a TimeoutError, got ${err?.name}`);
      assert.ok(elapsed >= 600 && elapsed < 600 + LATE_MS, `timed out after ${elapsed.toFixed(0)} ms, expected 600`);
      held.get('answered-too')('third');
      assert.equal(await deadline(5_000, 'the third answer', third), 'third');
      assert.equal(await client.invoke('hub:echo', 'fence'), 'fence');
      assert.deepEqual(cancelled, ['late'], 'only the call that timed out was cancelled');
      assert.equal(client.stats().invokes.pending, 0);
    });

    it('a call with timeout 0 waits for as long as it takes, beside calls that time out', { timeout: 20_000 }, async () => {
      const patient = client.invoke('hub:hold', { id: 'patient' }, { timeout: 0 });
      const hasty = client.invoke('hub:hold', { id: 'hasty' }, { timeout: 50 });
      await assert.rejects(deadline(5_000, 'the hasty call', hasty), TimeoutError);
      await deadline(5_000, 'the patient call to reach the handler', reached('patient'));
      assert.equal(client.stats().invokes.pending, 1, 'the patient call is still pending');
      held.get('patient')('done');
      assert.equal(await deadline(5_000, 'the patient call', patient), 'done');
    });

    it('a timeout longer than setTimeout takes (2^31 ms) neither ends the call early nor warns', { timeout: 20_000 }, async () => {
      const warnings = [];
      const onWarning = (w) => warnings.push(w.name);
      process.on('warning', onWarning);
      try {
        const long = client.invoke('hub:hold', { id: 'long' }, { timeout: 2 ** 31 + 1000 });
        // A later, shorter call re-arms the shared timer below the long one and ends first.
        await assert.rejects(deadline(5_000, 'the short call', client.invoke('hub:hold', { id: 'short' }, { timeout: 100 })), TimeoutError);
        await deadline(5_000, 'the long call to reach the handler', reached('long'));
        assert.equal(client.stats().invokes.pending, 1, 'the long call is still pending');
        held.get('long')('still here');
        assert.equal(await deadline(5_000, 'the long call', long), 'still here');
        // Warnings are emitted on the next tick.
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(warnings.filter((name) => name === 'TimeoutOverflowWarning'), []);
      } finally {
        process.off('warning', onWarning);
      }
    });

    it('an answered call with a long timeout does not keep its process alive (the shared timer is unref\'d)', { timeout: 20_000 }, async () => {
      const child = forkRole(thisFile, 'quick-caller', hub.childEnv());
      children.push(child);
      const answered = new Promise((resolve) => child.on('message', (m) => m.type === 'answered' && resolve(m)));
      assert.deepEqual(await deadline(10_000, 'the answer', answered), { type: 'answered', answer: 'hi', pending: 0 });
      // Its timeout is 60 s; it must exit long before that (5 s: start-up margin for loaded CI).
      assert.deepEqual(await deadline(5_000, 'the caller to exit by itself', exitCode(child)), { code: 0, signal: null });
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else if (role === 'quick-caller') await runQuickCaller();
else throw new Error(`unknown role ${role}`);
