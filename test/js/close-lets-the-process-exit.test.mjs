// Promise: after `await bus.close()` nothing of the bus keeps a process alive, in a client
// process and in a hub process, with no process.exit(); close() delivers what was emitted before
// it and fails pending invokes with ClosedError. (Worker termination: see
// worker-terminate-crashes-nothing.test.mjs.)
//
// Roles: 'main' (the test process; the hub for 'closer', the orchestrator for the rest),
// 'closer' (a forked client), 'hub-proc' (a forked hub process) with 'hub-worker' (its worker
// thread), and 'lingering' (a forked client of hub-proc).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ClosedError, EventBus } from '../../dist/esm/index.js';
import {
  checkClosed, closeOnRequest, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning,
  killLeftovers, messageFrom, messagesFrom, requestClose, startWorker,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

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
  const worker = startWorker(thisFile, 'hub-worker');
  const workerExit = exitCode(worker);
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
  closeOnRequest(bus);
}

// --- The tests ----------------------------------------------------------------------------------------

function runMain() {
  const children = [];
  let bus;

  after(async () => {
    killLeftovers(children);
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

      const closer = forkRole(thisFile, 'closer', bus.childEnv());
      children.push(closer);
      assert.deepEqual(await deadline(10_000, 'closer hello', hello), { sum: 5 });
      assert.deepEqual(await deadline(5_000, 'hub -> closer invoke', bus.invoke('closer:echo', [1, 'two'])), [1, 'two']);
      bus.emit('closer:tick');
      bus.emit('closer:go');

      await deadline(5_000, 'closing', messageFrom(closer, (m) => m.type === 'closing'));
      assert.deepEqual(await deadline(5_000, 'closer to exit after close()', exitCode(closer)), { code: 0, signal: null });
      assert.deepEqual(await deadline(2_000, 'the last emit before close()', last), { last: true }, 'close() delivered the last emit');
      assert.equal(await deadline(2_000, 'the pending call to be cancelled', aborted), 'closer');
      assert.equal(bus.stats().invokes.serving, 0);
      assert.equal(bus.stats().hub.pendingInvokes, 0);
    });

    it('a hub process exits by itself within 5 s of close(), code 0, with a client still connected', { timeout: 20_000 }, async () => {
      const hub = forkRole(thisFile, 'hub-proc');
      children.push(hub);
      const { env } = await deadline(10_000, 'hub-proc env', messageFrom(hub, (m) => m.type === 'env'));
      const lingering = forkRole(thisFile, 'lingering', env);
      children.push(lingering);

      const closing = await deadline(10_000, 'hub-proc closing', messageFrom(hub, (m) => m.type === 'closing'));
      assert.equal(closing.workerExitCode, 0, 'its worker closed cleanly and exited by itself');
      assert.deepEqual(closing.hellos, [{ sum: 42 }], 'the worker\'s emit right before close() arrived');
      assert.deepEqual(await deadline(5_000, 'hub-proc to exit after close()', exitCode(hub)), { code: 0, signal: null });

      // The client left behind notices, and can still close and exit by itself.
      await deadline(5_000, 'lingering reconnecting', messageFrom(lingering, (m) => m.type === 'state' && m.state === 'reconnecting'));
      const seen = messagesFrom(lingering).filter((m) => m.type === 'state').map((m) => m.state);
      assert.deepEqual(seen, ['connected', 'disconnected', 'reconnecting']);
      assert.deepEqual(await deadline(5_000, 'lingering closed', requestClose(lingering)), { type: 'closed', pending: 0, serving: 0, state: 'closed' });
      lingering.disconnect();
      assert.deepEqual(await deadline(5_000, 'lingering to exit', exitCode(lingering)), { code: 0, signal: null });
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

if (role !== 'main') guardAgainstOrphaning();
const roles = {
  main: runMain,
  closer: runCloser,
  'hub-proc': runHubProc,
  'hub-worker': runHubWorker,
  lingering: runLingering,
};
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
