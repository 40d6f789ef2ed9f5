// Promise: bus.on('connection') tells where a bus stands: 'connected' on start (hub, worker and
// client process alike); for a client whose hub dies, 'disconnected' (with a reason code) then
// 'reconnecting', and its in-flight invokes fail at once with ConnectionLostError; 'closed' after
// close(), even while reconnecting, and the process then exits by itself.
//
// Roles: 'main' (the test process; a hub for the worker test, else the orchestrator), 'worker'
// (a worker thread), 'hub' (a forked hub process) and 'client' (a forked client of it).
// Synchronised by worker and child_process messages.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { EventBus } from '../../dist/esm/index.js';

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

function start(roleName, env = {}) {
  const { NODE_TEST_CONTEXT: _, ...base } = process.env;
  const child = fork(thisFile, [roleName], { env: { ...base, ...env } });
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

// --- Roles -------------------------------------------------------------------------------------------

async function runWorker() {
  const bus = new EventBus({ name: 'worker' });
  const states = [];
  bus.on('connection', (ev) => states.push(ev.state));
  await bus.ready();
  parentPort.postMessage({ states: [...states], stats: bus.stats().state });
  await bus.close();
  parentPort.postMessage({ states: [...states] });
}

async function runHub() {
  const bus = new EventBus({ role: 'hub', name: 'doomed-hub' });
  await bus.ready();
  bus.handle('hub:hang', () => {
    process.send({ type: 'hang-called' });
    return new Promise(() => {});
  });
  process.send({ type: 'env', env: bus.childEnv() });
}

async function runClient() {
  const bus = new EventBus({ name: 'client', reconnect: { initialMs: 20, maxMs: 200 } });
  bus.on('connection', (ev) => process.send({ type: 'state', ...ev }));
  bus.on('anything', () => {}); // a listener: the bus would keep the process alive until close()
  await bus.ready();
  bus.invoke('hub:hang', null, { timeout: 0 }).then(
    () => process.send({ type: 'invoke-ended', name: 'resolved' }),
    (err) => process.send({ type: 'invoke-ended', name: err.name, code: err.code, message: err.message, state: bus.stats().state }),
  );
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
  after(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  describe('connection state is reported', { timeout: 60_000 }, () => {
    it('a hub\'s own bus and a worker report \'connected\' on start, \'closed\' after close()', { timeout: 10_000 }, async () => {
      const bus = new EventBus({ role: 'hub', name: 'hub' });
      const events = [];
      bus.on('connection', (ev) => events.push(ev));
      await within(5_000, 'hub ready', bus.ready());
      assert.deepEqual(events, [{ state: 'connected', code: '', message: '' }]);
      assert.equal(bus.stats().state, 'connected');

      const worker = new Worker(thisFile, { workerData: { role: 'worker' } });
      const messages = [];
      const done = new Promise((resolve, reject) => {
        worker.on('message', (m) => {
          messages.push(m);
          if (messages.length === 2) resolve();
        });
        worker.once('error', reject);
      });
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      await within(10_000, 'worker reports', done);
      assert.deepEqual(messages[0], { states: ['connected'], stats: 'connected' });
      assert.deepEqual(messages[1], { states: ['connected', 'closed'] });
      assert.equal(await within(5_000, 'worker exit', exited), 0, 'the worker exits by itself after close()');

      await bus.close();
      assert.deepEqual(events.map((e) => e.state), ['connected', 'closed']);
      assert.equal(bus.stats().invokes.pending, 0);
      assert.equal(bus.stats().invokes.serving, 0);
    });

    it('a client process whose hub dies: \'disconnected\' then \'reconnecting\'; its invoke fails at once; close() still works', { timeout: 20_000 }, async () => {
      const hub = start('hub');
      children.push(hub);
      const { env } = await within(10_000, 'hub env', message(hub, (m) => m.type === 'env'));
      const client = start('client', env);
      children.push(client);
      await within(10_000, 'client connected and calling', Promise.all([
        message(client, (m) => m.type === 'state' && m.state === 'connected'),
        message(hub, (m) => m.type === 'hang-called'),
      ]));

      hub.kill('SIGKILL');
      const ended = await within(2_000, 'the in-flight invoke to end', message(client, (m) => m.type === 'invoke-ended'));
      assert.equal(ended.name, 'ConnectionLostError', `${ended.name}: ${ended.message}`);
      assert.equal(ended.code, 'E_CONNECTION_LOST');
      await within(5_000, 'reconnecting', message(client, (m) => m.type === 'state' && m.state === 'reconnecting'));
      const states = client.log.filter((m) => m.type === 'state');
      assert.deepEqual(states.map((s) => s.state), ['connected', 'disconnected', 'reconnecting']);
      assert.equal(states[0].code, '');
      assert.ok(typeof states[1].code === 'string' && states[1].code.length > 0, `'disconnected' says why (code '${states[1].code}')`);
      assert.deepEqual(await within(5_000, 'hub exit', hub.exited), { code: null, signal: 'SIGKILL' });

      const closed = message(client, (m) => m.type === 'closed');
      client.send({ type: 'close' });
      assert.deepEqual(await within(5_000, 'client closed', closed), { type: 'closed', pending: 0, serving: 0, state: 'closed' });
      assert.equal(client.log.filter((m) => m.type === 'state').at(-1).state, 'closed');
      client.disconnect();
      assert.deepEqual(await within(5_000, 'client exit', client.exited), { code: 0, signal: null }, 'exits by itself');
    });
  });
}

if (role !== 'main' && !workerData) dieWithParent();
const roles = { main: runMain, worker: runWorker, hub: runHub, client: runClient };
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
