// Promise: bus.on('connection') tells where a bus stands: 'connected' on start (hub, worker and
// client process alike); for a client whose hub dies, 'disconnected' (with a reason code) then
// 'reconnecting', and its in-flight invokes fail at once with ConnectionLostError; 'closed' after
// close(), even while reconnecting, and the process then exits by itself.
//
// Roles: 'main' (the test process; a hub for the worker test, else the orchestrator), 'worker'
// (a worker thread), 'hub' (a forked hub process) and 'client' (a forked client of it).
// Synchronised by worker and child_process messages.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { EventBus } from '../../dist/esm/index.js';
import {
  closeOnRequest, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers,
  messageFrom, messagesFrom, requestClose, startWorker,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

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
  closeOnRequest(bus);
}

// --- The tests ----------------------------------------------------------------------------------------

function runMain() {
  const children = [];
  after(() => {
    killLeftovers(children);
  });

  describe('connection state is reported', { timeout: 60_000 }, () => {
    it('a hub\'s own bus and a worker report \'connected\' on start, \'closed\' after close()', { timeout: 10_000 }, async () => {
      const bus = new EventBus({ role: 'hub', name: 'hub' });
      const events = [];
      bus.on('connection', (ev) => events.push(ev));
      await deadline(5_000, 'hub ready', bus.ready());
      assert.deepEqual(events, [{ state: 'connected', code: '', message: '' }]);
      assert.equal(bus.stats().state, 'connected');

      const worker = startWorker(thisFile, 'worker');
      const messages = [];
      const done = new Promise((resolve, reject) => {
        worker.on('message', (m) => {
          messages.push(m);
          if (messages.length === 2) resolve();
        });
        worker.once('error', reject);
      });
      await deadline(10_000, 'worker reports', done);
      assert.deepEqual(messages[0], { states: ['connected'], stats: 'connected' });
      assert.deepEqual(messages[1], { states: ['connected', 'closed'] });
      assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0, 'the worker exits by itself after close()');

      await bus.close();
      assert.deepEqual(events.map((e) => e.state), ['connected', 'closed']);
      assert.equal(bus.stats().invokes.pending, 0);
      assert.equal(bus.stats().invokes.serving, 0);
    });

    it('a client process whose hub dies: \'disconnected\' then \'reconnecting\'; its invoke fails at once; close() still works', { timeout: 20_000 }, async () => {
      const hub = forkRole(thisFile, 'hub');
      children.push(hub);
      const { env } = await deadline(10_000, 'hub env', messageFrom(hub, (m) => m.type === 'env'));
      const client = forkRole(thisFile, 'client', env);
      children.push(client);
      await deadline(10_000, 'client connected and calling', Promise.all([
        messageFrom(client, (m) => m.type === 'state' && m.state === 'connected'),
        messageFrom(hub, (m) => m.type === 'hang-called'),
      ]));

      hub.kill('SIGKILL');
      const ended = await deadline(2_000, 'the in-flight invoke to end', messageFrom(client, (m) => m.type === 'invoke-ended'));
      assert.equal(ended.name, 'ConnectionLostError', `${ended.name}: ${ended.message}`);
      assert.equal(ended.code, 'E_CONNECTION_LOST');
      await deadline(5_000, 'reconnecting', messageFrom(client, (m) => m.type === 'state' && m.state === 'reconnecting'));
      const states = messagesFrom(client).filter((m) => m.type === 'state');
      assert.deepEqual(states.map((s) => s.state), ['connected', 'disconnected', 'reconnecting']);
      assert.equal(states[0].code, '');
      assert.ok(typeof states[1].code === 'string' && states[1].code.length > 0, `'disconnected' says why (code '${states[1].code}')`);
      assert.deepEqual(await deadline(5_000, 'hub exit', exitCode(hub)), { code: null, signal: 'SIGKILL' });

      assert.deepEqual(await deadline(5_000, 'client closed', requestClose(client)), { type: 'closed', pending: 0, serving: 0, state: 'closed' });
      assert.equal(messagesFrom(client).filter((m) => m.type === 'state').at(-1).state, 'closed');
      client.disconnect();
      assert.deepEqual(await deadline(5_000, 'client exit', exitCode(client)), { code: 0, signal: null }, 'exits by itself');
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
const roles = { main: runMain, worker: runWorker, hub: runHub, client: runClient };
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
