// Promise (DESIGN.md): a hub killed and restarted on the same endpoint and token gets its clients
// back. While the hub is down a client's emits wait in its bounded offline queue; the new hub
// probes and replaces the dead hub's stale socket file; clients report 'disconnected',
// 'reconnecting', then 'connected', re-subscribe by themselves, and the queued events reach the
// other client, all of them, in order.
//
// Here the hub itself is a child process, so the test process is only the orchestrator and
// holds no bus. Roles: 'main' (orchestrator), 'hub' (H1, then H2 on the same endpoint and token),
// 'client-a' (subscriber) and 'client-b' (emitter). Synchronised by child_process IPC messages and
// bus events; client-b is paused with SIGSTOP (not a sleep) so that client-a is back on the new hub
// before client-b's queued events go out.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import {
  closeOnRequest, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, isAlive,
  messageFrom, messagesFrom, requestClose,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const N = 1_000;

// --- Roles in child processes ------------------------------------------------------------------------

async function runHub() {
  const [endpoint, token, name] = process.argv.slice(3);
  let bus;
  try {
    bus = new EventBus({ role: 'hub', endpoint, token, name });
  } catch (err) {
    process.send({ type: 'error', name: err.name, code: err.code, message: err.message });
    process.disconnect();
    return;
  }
  // client-a emits 'a:back' when it is connected again: it re-subscribed first (per-sender order).
  // Subscribed in the turn that created the hub, so in force before client-a, which has been
  // knocking all along, is admitted (a hub admits peers from the end of that turn).
  bus.on('a:back', () => process.send({ type: 'a-back' }));
  await bus.ready();
  closeOnRequest(bus);
  process.send({ type: 'ready', env: bus.childEnv() });
}

async function runClient() {
  const bus = new EventBus({ role: 'client', name: role, reconnect: { initialMs: 20, maxMs: 200 } });
  let connects = 0;
  bus.on('connection', (ev) => {
    process.send({ type: 'state', state: ev.state, code: ev.code, message: ev.message });
    if (ev.state === 'connected' && ++connects > 1 && role === 'client-a') bus.emit('a:back');
  });
  if (role === 'client-a') {
    const items = [];
    bus.on('q:warmup', () => process.send({ type: 'warmup-received' }));
    bus.on('q:item', (data) => items.push(data.i));
    bus.on('q:end', (data) => {
      let firstBad = -1;
      for (let i = 0; i < items.length; i++) {
        if (items[i] !== i) {
          firstBad = i;
          break;
        }
      }
      process.send({ type: 'received', count: items.length, firstBad, expected: data.count });
    });
  }
  process.on('message', async (msg) => {
    if (msg.type === 'emit-warmup') {
      bus.emit('q:warmup');
    } else if (msg.type === 'emit-queue') {
      let threw = null;
      try {
        for (let i = 0; i < msg.n; i++) bus.emit('q:item', { i });
        bus.emit('q:end', { count: msg.n });
      } catch (err) {
        threw = `${err.name}: ${err.message}`;
      }
      await null; // the turn's batch is handed to the core in a microtask
      process.send({ type: 'queued', threw, state: bus.stats().state, offlineQueued: bus.stats().offlineQueued });
    } else if (msg.type === 'close') {
      const offlineQueued = bus.stats().offlineQueued;
      await bus.close();
      const s = bus.stats();
      process.send({ type: 'closed', pending: s.invokes.pending, serving: s.invokes.serving, state: s.state, offlineQueued });
    }
  });
  await bus.ready();
  process.send({ type: 'ready' });
}

// --- The orchestrator ---------------------------------------------------------------------------------

const states = (child) => messagesFrom(child).filter((m) => m.type === 'state').map((m) => m.state);

/** The 'connected' state that follows a 'reconnecting' one (the first 'connected' is logged too). */
function connectedAgain(child) {
  let reconnecting = false;
  return messageFrom(child, (m) => {
    if (m.type !== 'state') return false;
    if (m.state === 'reconnecting') reconnecting = true;
    return reconnecting && m.state === 'connected';
  });
}

function runMain() {
  describe('clients survive a hub restart', { timeout: 60_000 }, () => {
    let dir;
    let endpoint;
    let token;
    let h1;
    let h2;
    let a;
    let b;
    let clientEnv;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-'));
      endpoint = path.join(dir, 'hub.sock');
      token = randomBytes(16).toString('hex');
      h1 = forkRole(thisFile, 'hub', {}, [endpoint, token, 'hub-1']);
      const ready = await deadline(10_000, 'H1 ready', messageFrom(h1, (m) => m.type === 'ready' || m.type === 'error'));
      assert.equal(ready.type, 'ready', `H1 failed to start: ${ready.message}`);
      clientEnv = ready.env;
      assert.ok(Object.values(clientEnv).includes(endpoint), 'childEnv() names the fixed endpoint');
      assert.ok(Object.values(clientEnv).includes(token), 'childEnv() carries the fixed token');
      a = forkRole(thisFile, 'client-a', clientEnv);
      b = forkRole(thisFile, 'client-b', clientEnv);
      await deadline(10_000, 'clients ready', Promise.all([messageFrom(a, (m) => m.type === 'ready'), messageFrom(b, (m) => m.type === 'ready')]));
    });

    after(() => {
      for (const child of [a, b, h1, h2]) {
        if (isAlive(child)) {
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }
      }
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('clients report \'connected\' on start, and events flow through H1', { timeout: 10_000 }, async () => {
      assert.deepEqual(states(a), ['connected']);
      assert.deepEqual(states(b), ['connected']);
      const got = messageFrom(a, (m) => m.type === 'warmup-received');
      b.send({ type: 'emit-warmup' });
      await deadline(5_000, 'warm-up event at client-a', got);
    });

    it('H1 is killed: each client reports \'disconnected\' then \'reconnecting\'', { timeout: 10_000 }, async () => {
      h1.kill('SIGKILL');
      assert.deepEqual(await deadline(5_000, 'H1 exit', exitCode(h1)), { code: null, signal: 'SIGKILL' });
      await deadline(5_000, 'clients reconnecting', Promise.all([
        messageFrom(a, (m) => m.type === 'state' && m.state === 'reconnecting'),
        messageFrom(b, (m) => m.type === 'state' && m.state === 'reconnecting'),
      ]));
      assert.deepEqual(states(a), ['connected', 'disconnected', 'reconnecting']);
      assert.deepEqual(states(b), ['connected', 'disconnected', 'reconnecting']);
      const disconnected = messagesFrom(a).find((m) => m.type === 'state' && m.state === 'disconnected');
      assert.equal(typeof disconnected.code, 'string');
    });

    it(`while the hub is down, ${N} emits wait in the offline queue`, { timeout: 10_000 }, async () => {
      const queued = messageFrom(b, (m) => m.type === 'queued');
      b.send({ type: 'emit-queue', n: N });
      const q = await deadline(5_000, 'queued', queued);
      assert.equal(q.threw, null, 'emit() does not throw while the queue has room');
      assert.equal(q.state, 'reconnecting');
      assert.equal(q.offlineQueued, N + 1, 'every item and the end marker wait in the queue');
    });

    it('H2 starts on the same endpoint and token, replacing the stale socket file', { timeout: 10_000 }, async () => {
      assert.ok(fs.statSync(endpoint).isSocket(), 'the dead hub left its socket file behind');
      // Hold client-b's queue back until client-a is subscribed on H2 (see the file comment).
      assert.ok(b.kill('SIGSTOP'));
      h2 = forkRole(thisFile, 'hub', {}, [endpoint, token, 'hub-2']);
      const ready = await deadline(5_000, 'H2 ready', messageFrom(h2, (m) => m.type === 'ready' || m.type === 'error'));
      assert.equal(ready.type, 'ready', `H2 failed to start on the stale endpoint: ${ready.code} ${ready.message}`);
      assert.deepEqual(ready.env, clientEnv, 'same endpoint and token');
    });

    it('clients reconnect and re-subscribe; the queued events reach the other client, all in order', { timeout: 15_000 }, async () => {
      await deadline(5_000, 'client-a back on H2', messageFrom(h2, (m) => m.type === 'a-back'));
      const received = messageFrom(a, (m) => m.type === 'received');
      assert.ok(b.kill('SIGCONT'));
      const r = await deadline(10_000, 'queued events at client-a', received);
      assert.deepEqual(r, { type: 'received', count: N, firstBad: -1, expected: N });
      assert.deepEqual(states(a), ['connected', 'disconnected', 'reconnecting', 'connected']);
      // client-b's queued events reaching client-a do not mean that its 'connected' has reached
      // this process yet: the two come by different pipes.
      await deadline(5_000, 'client-b connected', connectedAgain(b));
      assert.deepEqual(states(b), ['connected', 'disconnected', 'reconnecting', 'connected']);
    });

    it('every process closes with nothing pending and exits by itself', { timeout: 15_000 }, async () => {
      for (const [name, child] of [['client-a', a], ['client-b', b], ['H2', h2]]) {
        const c = await deadline(5_000, `${name} closed`, requestClose(child));
        assert.equal(c.pending, 0, `${name}: invokes.pending`);
        assert.equal(c.serving, 0, `${name}: invokes.serving`);
        assert.equal(c.state, 'closed');
        if ('offlineQueued' in c) assert.equal(c.offlineQueued, 0, `${name}: offline queue drained`);
        child.disconnect(); // the IPC channel was the last thing that could keep it alive
        assert.deepEqual(await deadline(5_000, `${name} exit`, exitCode(child)), { code: 0, signal: null }, `${name} exits by itself`);
      }
      assert.equal(fs.existsSync(endpoint), false, 'H2 removed its socket file on close');
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else if (role === 'hub') await runHub();
else await runClient();
