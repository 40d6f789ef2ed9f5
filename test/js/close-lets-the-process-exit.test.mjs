// Promise: after `await bus.close()` nothing of the bus keeps a process alive, in a client
// process and in a hub process, with no process.exit(); close() delivers what was emitted before
// it and fails pending invokes with ClosedError. (Worker termination: see
// worker-terminate-crashes-nothing.test.mjs.)
//
// Roles: 'main' (the test process; the hub for 'closer', the orchestrator for the rest),
// 'closer' (a forked client), 'hub-proc' (a forked hub process) with 'hub-worker' (its worker
// thread), and 'lingering' (a forked client of hub-proc).
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, workerData } from 'node:worker_threads';
import { ClosedError, EventBus } from '../../dist/esm/index.js';

const thisFile = fileURLToPath(import.meta.url);
const role = workerData?.role ?? process.argv[2] ?? 'main';

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

function baseEnv() {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return env;
}

/** Forks a role, keeps every IPC message it sends, and records how it exits. */
function start(roleName, env) {
  const child = fork(thisFile, [roleName], { env: { ...baseEnv(), ...env } });
  child.log = [];
  child.waiters = [];
  child.on('message', (msg) => {
    child.log.push(msg);
    for (const w of [...child.waiters]) {
      if (w.pred(msg)) {
        child.waiters.splice(child.waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return child;
}

function message(child, pred) {
  const seen = child.log.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => child.waiters.push({ pred, resolve }));
}

const isAlive = (child) => child && child.exitCode === null && child.signalCode === null;

/** Sets process.exitCode (never process.exit) when a bus did not close cleanly. */
function checkClosed(bus, who) {
  const s = bus.stats();
  if (s.invokes.pending !== 0 || s.invokes.serving !== 0 || s.state !== 'closed') {
    console.error(`${who}: unclean close`, JSON.stringify(s));
    process.exitCode = 1;
  }
}

// --- Roles ------------------------------------------------------------------------------------------

async function runCloser() {
  const bus = new EventBus({ name: 'closer' });
  bus.on('connection', () => {});
  bus.on('error', () => {});
  await bus.ready();
  bus.on('closer:tick', () => {});
  bus.on('closer:*', () => {});
  bus.once('never:comes', () => {});
  bus.handle('closer:echo', (x) => x);
  const go = bus.once('closer:go');
  const sum = await bus.invoke('hub:add', { a: 2, b: 3 });
  bus.emit('closer:hello', { sum });
  await go; // the hub has invoked closer:echo by now
  // Still pending at close(): must end with ClosedError.
  const pending = bus.invoke('hub:hang', null, { timeout: 0 }).then(() => 'resolved', (err) => err);
  bus.emit('closer:last', { last: true }); // close() must still deliver this
  process.send({ type: 'closing' });
  await bus.close();
  const err = await pending;
  if (!(err instanceof ClosedError)) {
    console.error('closer: the pending invoke ended with', err);
    process.exitCode = 3;
  }
  checkClosed(bus, 'closer');
  // Nothing else: the process must exit by itself.
}

async function runHubProc() {
  const bus = new EventBus({ role: 'hub', name: 'hub-proc' });
  await bus.ready();
  bus.handle('hp:add', ({ a, b }) => a + b);
  const hellos = [];
  bus.on('hp:hello', (data) => hellos.push(data));
  bus.on('hp:*', () => {});
  let workerLeft;
  const workerGone = new Promise((resolve) => {
    workerLeft = resolve;
  });
  bus.handle('hp:hang', (req, ctx) => {
    ctx.signal.addEventListener('abort', () => workerLeft());
    return new Promise(() => {});
  });
  const lingeringReady = bus.once('lingering:ready');
  const worker = new Worker(thisFile, { workerData: { role: 'hub-worker' } });
  const workerExit = new Promise((resolve) => worker.once('exit', resolve));
  process.send({ type: 'env', env: bus.childEnv() });
  await lingeringReady;
  const workerExitCode = await workerExit;
  await workerGone; // the hub read everything the worker sent before its connection ended
  process.send({ type: 'closing', workerExitCode, hellos, peers: bus.stats().hub.peers });
  await bus.close();
  checkClosed(bus, 'hub-proc');
  // Nothing else: the process must exit by itself, although 'lingering' is still connected.
}

async function runHubWorker() {
  const bus = new EventBus({ name: 'hub-worker' });
  await bus.ready();
  bus.on('hp:tick', () => {});
  bus.handle('hw:noop', () => null);
  const pending = bus.invoke('hp:hang', null, { timeout: 0 }).catch((err) => err);
  const sum = await bus.invoke('hp:add', { a: 20, b: 22 });
  bus.emit('hp:hello', { sum });
  await bus.close();
  if (!((await pending) instanceof ClosedError)) process.exitCode = 3;
  checkClosed(bus, 'hub-worker');
}

async function runLingering() {
  const bus = new EventBus({ name: 'lingering', reconnect: { initialMs: 20, maxMs: 200 } });
  bus.on('connection', (ev) => process.send({ type: 'state', state: ev.state, code: ev.code }));
  bus.on('hp:tick', () => {});
  await bus.ready();
  bus.emit('lingering:ready');
  process.on('message', async (msg) => {
    if (msg.type !== 'close') return;
    await bus.close();
    const s = bus.stats();
    process.send({ type: 'closed', pending: s.invokes.pending, serving: s.invokes.serving, state: s.state });
  });
}

// --- The tests ----------------------------------------------------------------------------------------

function runMain() {
  const children = [];
  let bus;

  after(async () => {
    for (const child of children) if (isAlive(child)) child.kill('SIGKILL');
    await bus?.close();
  });

  describe('close lets the process exit', { timeout: 60_000 }, () => {
    it('a client process exits by itself within 5 s of close(), code 0', { timeout: 20_000 }, async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      bus.handle('hub:add', ({ a, b }) => a + b);
      bus.handle('hub:echo', (x) => x);
      let hangAborted;
      const aborted = new Promise((resolve) => {
        hangAborted = resolve;
      });
      bus.handle('hub:hang', (req, ctx) => {
        ctx.signal.addEventListener('abort', () => hangAborted(ctx.sender.name));
        return new Promise(() => {});
      });
      const last = bus.once('closer:last');
      const hello = bus.once('closer:hello');

      const closer = start('closer', bus.childEnv());
      children.push(closer);
      assert.deepEqual(await within(10_000, 'closer hello', hello), { sum: 5 });
      assert.deepEqual(await within(5_000, 'hub -> closer invoke', bus.invoke('closer:echo', [1, 'two'])), [1, 'two']);
      bus.emit('closer:tick');
      bus.emit('closer:go');

      await within(5_000, 'closing', message(closer, (m) => m.type === 'closing'));
      assert.deepEqual(await within(5_000, 'closer to exit after close()', closer.exited), { code: 0, signal: null });
      assert.deepEqual(await within(2_000, 'the last emit before close()', last), { last: true }, 'close() delivered the last emit');
      assert.equal(await within(2_000, 'the pending call to be cancelled', aborted), 'closer');
      assert.equal(bus.stats().invokes.serving, 0);
      assert.equal(bus.stats().hub.pendingInvokes, 0);
    });

    it('a hub process exits by itself within 5 s of close(), code 0, with a client still connected', { timeout: 20_000 }, async () => {
      const hub = start('hub-proc');
      children.push(hub);
      const { env } = await within(10_000, 'hub-proc env', message(hub, (m) => m.type === 'env'));
      const lingering = start('lingering', env);
      children.push(lingering);

      const closing = await within(10_000, 'hub-proc closing', message(hub, (m) => m.type === 'closing'));
      assert.equal(closing.workerExitCode, 0, 'its worker closed cleanly and exited by itself');
      assert.deepEqual(closing.hellos, [{ sum: 42 }], 'the worker\'s emit right before close() arrived');
      assert.deepEqual(await within(5_000, 'hub-proc to exit after close()', hub.exited), { code: 0, signal: null });

      // The client left behind notices, and can still close and exit by itself.
      await within(5_000, 'lingering reconnecting', message(lingering, (m) => m.type === 'state' && m.state === 'reconnecting'));
      const seen = lingering.log.filter((m) => m.type === 'state').map((m) => m.state);
      assert.deepEqual(seen, ['connected', 'disconnected', 'reconnecting']);
      const closed = message(lingering, (m) => m.type === 'closed');
      lingering.send({ type: 'close' });
      assert.deepEqual(await within(5_000, 'lingering closed', closed), { type: 'closed', pending: 0, serving: 0, state: 'closed' });
      lingering.disconnect();
      assert.deepEqual(await within(5_000, 'lingering to exit', lingering.exited), { code: 0, signal: null });
    });

    it('the hub closes with nothing pending', { timeout: 5_000 }, async () => {
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main' && !workerData) dieWithParent();
const roles = {
  main: runMain,
  closer: runCloser,
  'hub-proc': runHubProc,
  'hub-worker': runHubWorker,
  lingering: runLingering,
};
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
