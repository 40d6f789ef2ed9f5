// Promise (DESIGN.md, "Promises"): every invoke ends exactly once, with a result, a remote error,
// a timeout, no handler, aborted, or connection lost; a peer that dies fails its pending calls
// at once; nothing hangs. A cancelled call (timeout, abort, caller gone) aborts the handler's
// ctx.signal.
//
// Roles: 'main' (the test process and the hub), 'server' (a forked process serving handlers that
// never answer), 'victim' (a forked handler process killed mid-call) and 'caller-victim' (a
// forked caller killed mid-call). Synchronised by bus messages only.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  ConnectionLostError,
  EventBus,
  NoHandlerError,
  TimeoutError,
} from '../../dist/esm/index.js';
import {
  currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers, nextEvent,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

/** Settles to the rejection reason, and fails if the promise resolves. */
function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (err) => err,
  );
}

// --- Forked roles ------------------------------------------------------------------------------

async function runServer() {
  const bus = new EventBus({ name: 'server' });
  await bus.ready();
  // Never answers; reports when it starts and when its signal is aborted.
  bus.handle('server:never', (req, ctx) => {
    ctx.signal.addEventListener('abort', () => {
      bus.emit('never:aborted', { id: req.id, reason: ctx.signal.reason?.name, serving: bus.stats().invokes.serving });
    });
    bus.emit('never:started', { id: req.id, aborted: ctx.signal.aborted });
    return new Promise(() => {});
  });
  bus.handle('server:ping', () => 'pong');
  // Makes this process the caller and describes how its invoke ended.
  bus.handle('server:call', async ({ name, req, options }) => {
    const t0 = performance.now();
    try {
      return { resolved: await bus.invoke(name, req, options) };
    } catch (err) {
      return { name: err.name, code: err.code, message: err.message, elapsed: performance.now() - t0 };
    }
  });
  bus.on('test:quit', async () => {
    await bus.close();
    const s = bus.stats();
    if (s.invokes.pending !== 0 || s.invokes.serving !== 0) {
      console.error(`${role}: unclean close`, JSON.stringify(s));
      process.exitCode = 1;
    }
  });
  bus.emit('server:ready');
}

async function runVictim() {
  const bus = new EventBus({ name: 'victim' });
  await bus.ready();
  bus.handle('victim:hang', (req, ctx) => {
    bus.emit('victim:started', { caller: ctx.sender.name });
    return new Promise(() => {});
  });
  bus.emit('victim:ready');
}

async function runCallerVictim() {
  const bus = new EventBus({ name: 'caller-victim' });
  await bus.ready();
  // Still pending when this process is killed.
  bus.invoke('hub:hang', null, { timeout: 0 }).catch(() => {});
}

// --- The hub and the tests -------------------------------------------------------------------------

function runMain() {
  describe('every invoke ends exactly once', { timeout: 60_000 }, () => {
    let bus;
    let server;
    const others = [];
    const hang = { started: undefined, aborted: undefined };

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      bus.handle('hub:hang', (req, ctx) => {
        hang.started?.(ctx.sender);
        ctx.signal.addEventListener('abort', () => hang.aborted?.(ctx.signal.reason));
        return new Promise(() => {});
      });
      bus.handle('hub:never-local', (req, ctx) => {
        ctx.signal.addEventListener('abort', () => bus.emit('local:aborted', { reason: ctx.signal.reason?.name }));
        return new Promise(() => {});
      });
      const ready = bus.once('server:ready');
      server = forkRole(thisFile, 'server', bus.childEnv());
      await deadline(15_000, 'server ready', ready);
    });

    after(async () => {
      killLeftovers([server, ...others]);
      await bus?.close();
    });

    it('timeout: TimeoutError (E_TIMEOUT), and the CANCEL aborts the handler\'s signal', { timeout: 10_000 }, async () => {
      const started = nextEvent(bus, 'never:started', (d) => d.id === 'timeout');
      const aborted = nextEvent(bus, 'never:aborted', (d) => d.id === 'timeout');
      const t0 = performance.now();
      const err = await deadline(5_000, 'invoke', rejection(bus.invoke('server:never', { id: 'timeout' }, { timeout: 200 })));
      const elapsed = performance.now() - t0;
      assert.ok(err instanceof TimeoutError, `a TimeoutError, got ${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'E_TIMEOUT');
      assert.ok(elapsed >= 190 && elapsed < 1_500, `rejected after ${elapsed.toFixed(0)} ms, expected about 200`);
      assert.deepEqual(await deadline(2_000, 'handler started', started), { id: 'timeout', aborted: false });
      const a = await deadline(2_000, 'the handler\'s signal to abort', aborted);
      assert.equal(a.reason, 'AbortError');
      assert.equal(a.serving, 0, 'the server no longer counts the call as serving');
      assert.equal(bus.stats().invokes.pending, 0);
      assert.equal(bus.stats().hub.pendingInvokes, 0, 'the hub forgot the call');
    });

    it('timeout of a handler in the same process aborts its signal too', { timeout: 10_000 }, async () => {
      const aborted = bus.once('local:aborted');
      const err = await deadline(5_000, 'invoke', rejection(bus.invoke('hub:never-local', 1, { timeout: 200 })));
      assert.ok(err instanceof TimeoutError, `a TimeoutError, got ${err?.name}`);
      assert.equal(err.code, 'E_TIMEOUT');
      assert.ok((await deadline(2_000, 'local abort', aborted)).reason, 'the signal has a reason');
    });

    it('abort before the call: AbortError, and nothing is sent', { timeout: 10_000 }, async () => {
      const ac = new AbortController();
      const reason = new Error('the user gave up');
      ac.abort(reason);
      const sentBefore = bus.stats().invokes.sent;
      const routedBefore = bus.stats().hub.invokesRouted;
      const err = await deadline(5_000, 'invoke', rejection(bus.invoke('server:never', { id: 'pre' }, { signal: ac.signal })));
      assert.ok(err instanceof AbortError, `an AbortError, got ${err?.name}`);
      assert.equal(err.name, 'AbortError');
      assert.equal(err.code, 'E_ABORTED');
      assert.equal(err.cause, reason, 'the signal\'s reason is the cause');
      assert.equal(bus.stats().invokes.sent, sentBefore);
      assert.equal(await deadline(5_000, 'ping', bus.invoke('server:ping')), 'pong');
      assert.equal(bus.stats().hub.invokesRouted - routedBefore, 1, 'only the ping reached the hub');
    });

    it('abort during the call: AbortError at once, and the handler\'s signal is aborted', { timeout: 10_000 }, async () => {
      const ac = new AbortController();
      const started = nextEvent(bus, 'never:started', (d) => d.id === 'during');
      const aborted = nextEvent(bus, 'never:aborted', (d) => d.id === 'during');
      const call = rejection(bus.invoke('server:never', { id: 'during' }, { signal: ac.signal, timeout: 0 }));
      await deadline(5_000, 'handler started', started);
      const t0 = performance.now();
      ac.abort(new Error('stop'));
      const err = await deadline(2_000, 'invoke', call);
      const elapsed = performance.now() - t0;
      assert.ok(err instanceof AbortError, `an AbortError, got ${err?.name}`);
      assert.equal(err.code, 'E_ABORTED');
      assert.ok(elapsed < 100, `rejected ${elapsed.toFixed(0)} ms after abort()`);
      const a = await deadline(2_000, 'the handler\'s signal to abort', aborted);
      assert.equal(a.serving, 0);
      assert.equal(bus.stats().hub.pendingInvokes, 0);
    });

    it('no handler: NoHandlerError (E_NO_HANDLER) in under 300 ms, from the hub and from a child', { timeout: 10_000 }, async () => {
      const t0 = performance.now();
      const err = await deadline(5_000, 'invoke', rejection(bus.invoke('nobody:home', 1)));
      const elapsed = performance.now() - t0;
      assert.ok(err instanceof NoHandlerError, `a NoHandlerError, got ${err?.name}`);
      assert.equal(err.code, 'E_NO_HANDLER');
      assert.ok(elapsed < 300, `took ${elapsed.toFixed(1)} ms`);

      const d = await deadline(5_000, 'invoke', bus.invoke('server:call', { name: 'nobody:home', req: 2 }));
      assert.equal(d.name, 'NoHandlerError');
      assert.equal(d.code, 'E_NO_HANDLER');
      assert.ok(d.elapsed < 300, `took ${d.elapsed.toFixed(1)} ms in the child`);
    });

    it('the handler\'s process is killed mid-call: every caller gets ConnectionLostError within 1 s', { timeout: 15_000 }, async () => {
      const ready = bus.once('victim:ready');
      const victim = forkRole(thisFile, 'victim', bus.childEnv());
      others.push(victim);
      await deadline(10_000, 'victim ready', ready);

      const startedFromHub = nextEvent(bus, 'victim:started', (d) => d.caller === 'hub');
      const startedFromServer = nextEvent(bus, 'victim:started', (d) => d.caller === 'server');
      const fromHub = rejection(bus.invoke('victim:hang', null, { timeout: 30_000 }));
      const fromServer = bus.invoke('server:call', { name: 'victim:hang', options: { timeout: 30_000 } });
      await deadline(5_000, 'both calls reached the victim', Promise.all([startedFromHub, startedFromServer]));

      const t0 = performance.now();
      victim.kill('SIGKILL');
      const err = await deadline(2_000, 'hub caller', fromHub);
      const hubElapsed = performance.now() - t0;
      const d = await deadline(2_000, 'server caller', fromServer);
      const serverElapsed = performance.now() - t0;

      assert.ok(err instanceof ConnectionLostError, `a ConnectionLostError, got ${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'E_CONNECTION_LOST');
      assert.ok(hubElapsed < 1_000, `the hub's call ended ${hubElapsed.toFixed(0)} ms after the kill`);
      assert.equal(d.name, 'ConnectionLostError');
      assert.equal(d.code, 'E_CONNECTION_LOST');
      assert.ok(serverElapsed < 1_000, `the child's call ended ${serverElapsed.toFixed(0)} ms after the kill`);
      assert.deepEqual(await deadline(5_000, 'victim exit', exitCode(victim)), { code: null, signal: 'SIGKILL' });
      assert.equal(bus.stats().hub.pendingInvokes, 0);
      assert.equal(bus.stats().invokes.pending, 0);
    });

    it('the caller\'s process is killed mid-call: the handler\'s signal is aborted within 1 s', { timeout: 15_000 }, async () => {
      const started = new Promise((resolve) => {
        hang.started = resolve;
      });
      const aborted = new Promise((resolve) => {
        hang.aborted = resolve;
      });
      const callerVictim = forkRole(thisFile, 'caller-victim', bus.childEnv());
      others.push(callerVictim);
      const sender = await deadline(10_000, 'the call from caller-victim', started);
      assert.equal(sender.name, 'caller-victim');
      assert.equal(sender.pid, callerVictim.pid);
      assert.equal(bus.stats().invokes.serving, 1);

      const t0 = performance.now();
      callerVictim.kill('SIGKILL');
      const reason = await deadline(2_000, 'the handler\'s signal to abort', aborted);
      const elapsed = performance.now() - t0;
      assert.ok(elapsed < 1_000, `aborted ${elapsed.toFixed(0)} ms after the kill`);
      assert.ok(reason instanceof Error, 'the signal has an Error reason');
      assert.equal(bus.stats().invokes.serving, 0);
      assert.equal(bus.stats().hub.pendingInvokes, 0);
      await deadline(5_000, 'caller-victim exit', exitCode(callerVictim));
    });

    it('closes: the server exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      assert.deepEqual(await deadline(5_000, 'server exit', exitCode(server)), { code: 0, signal: null });
      await bus.close();
      const s = bus.stats();
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else if (role === 'server') await runServer();
else if (role === 'victim') await runVictim();
else if (role === 'caller-victim') await runCallerVictim();
else throw new Error(`unknown role ${role}`);
