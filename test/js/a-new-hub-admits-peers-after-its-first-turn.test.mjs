// Promise: what a hub's process registers in the turn that creates the hub (listeners, handlers)
// is in force before any peer is admitted. A client that was knocking before the hub existed (a
// restarted hub on the same endpoint and token) loses none of the events it queued meanwhile, and
// its queued invoke finds the hub's handler instead of E_NO_HANDLER.
//
// Before this promise, a hub admitted peers from the moment it listened, on its I/O thread, while
// its process was still setting up: in clients-survive-hub-restart, a client's event reached the
// restarted hub before the hub's own subscription and was dropped (1 run in about 30 under load).
// Here the hub's first turn is made long on purpose, as a busy process makes it: the hub stays in
// that turn until the client's invoke has been answered, which a hub that admits peers during the
// turn does at once, with E_NO_HANDLER, or for FIRST_TURN_MS, time enough for such a hub to admit
// the client and route its queue. Without the promise this test fails every time; with it, the
// client is admitted after the turn, whatever the turn's length.
//
// Roles: 'main' (the test process: the hub) and 'knocking' (a worker thread: the client). The
// worker signals the end of its invoke through a SharedArrayBuffer, because the hub's thread is
// blocked in its first turn and cannot take a message; everything else is worker messages.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { EventBus } from '../../dist/esm/index.js';
import { checkClosed, currentRole, deadline, exitCode, startWorker } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const FIRST_TURN_MS = 500;

// --- The worker -------------------------------------------------------------------------------------

async function runKnocking() {
  const { endpoint, token, answered } = workerData;
  const bus = new EventBus({ role: 'client', name: 'knocking', endpoint, token, reconnect: { initialMs: 1, maxMs: 5 } });
  bus.on('connection', (ev) => parentPort.postMessage({ type: 'state', state: ev.state }));
  bus.emit('early', { n: 1 });
  bus
    .invoke('hub:greet', 'knocking', { timeout: 20_000 })
    .then(
      (result) => ({ result }),
      (err) => ({ error: `${err.name}: ${err.message}` }),
    )
    .then((outcome) => {
      const flag = new Int32Array(answered);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      parentPort.postMessage({ type: 'greeted', ...outcome });
    });
  await null; // the turn's batch reaches the core in a microtask
  parentPort.postMessage({ type: 'queued', offlineQueued: bus.stats().offlineQueued });
  parentPort.on('message', async (msg) => {
    if (msg.type === 'emit-again') {
      bus.emit('early', { n: 2 });
    } else if (msg.type === 'close') {
      await bus.close();
      checkClosed(bus, 'knocking');
      parentPort.close();
    }
  });
}

// --- The test ---------------------------------------------------------------------------------------

/** Keeps every message of `worker`; `next(pred)` resolves with the first that matches, seen or to come. */
function messagesOf(worker) {
  const log = [];
  const waiters = [];
  worker.on('message', (msg) => {
    log.push(msg);
    for (const w of [...waiters]) {
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  return {
    next(pred) {
      const seen = log.find(pred);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

function runMain() {
  describe('a new hub admits peers after its first turn', { timeout: 30_000 }, () => {
    let dir;
    let hub;
    let worker;

    after(async () => {
      await worker?.terminate();
      await hub?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('a client knocking before the hub existed finds the listeners and handlers of its first turn', { timeout: 20_000 }, async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-'));
      const endpoint = path.join(dir, 'hub.sock');
      const token = randomBytes(16).toString('hex');
      const answered = new SharedArrayBuffer(4);
      worker = startWorker(thisFile, 'knocking', { endpoint, token, answered });
      const messages = messagesOf(worker);
      const queued = await deadline(5_000, 'client queued', messages.next((m) => m.type === 'queued'));
      assert.equal(queued.offlineQueued, 2, 'the event and the invoke wait in the offline queue');
      await deadline(5_000, 'client knocking', messages.next((m) => m.type === 'state' && m.state === 'reconnecting'));

      // The hub's first turn, made long: see the file comment.
      hub = new EventBus({ role: 'hub', name: 'restarted', endpoint, token });
      const answeredInFirstTurn = Atomics.wait(new Int32Array(answered), 0, 0, FIRST_TURN_MS) === 'ok';
      const admittedInFirstTurn = hub.stats().hub.peers - 1; // less the hub's own bus
      const early = [];
      let second;
      const secondArrived = new Promise((resolve) => {
        second = resolve;
      });
      hub.on('early', (data) => {
        early.push(data.n);
        if (data.n === 2) second();
      });
      hub.handle('hub:greet', (who) => `hello ${who}`);
      // The turn ends here.

      const greeted = await deadline(10_000, 'invoke answered', messages.next((m) => m.type === 'greeted'));
      worker.postMessage({ type: 'emit-again' });
      await deadline(5_000, 'second event at the hub', secondArrived);
      assert.deepEqual(
        { admittedInFirstTurn, answeredInFirstTurn, greeted: greeted.result ?? greeted.error, early },
        { admittedInFirstTurn: 0, answeredInFirstTurn: false, greeted: 'hello knocking', early: [1, 2] },
      );

      worker.postMessage({ type: 'close' });
      assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0, 'the worker closed cleanly');
      worker = undefined;
      const s = hub.stats();
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
      await hub.close();
      assert.equal(hub.stats().state, 'closed');
      assert.equal(fs.existsSync(endpoint), false, 'the hub removed its socket file on close');
    });
  });
}

if (role === 'main') runMain();
else if (role === 'knocking') await runKnocking();
