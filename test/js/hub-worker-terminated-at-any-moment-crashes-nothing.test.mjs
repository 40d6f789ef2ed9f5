// Promise (DESIGN.md): no process dies because of the bus, not when the worker thread that runs
// the hub is terminated at any moment. 504 times a worker starts a hub, with the hosting
// process's main thread as its client and traffic both ways (events every 5 ms, a call pending
// each way), and is terminated at a point drawn in turn from POINTS, a random moment after it:
// while the module loads, before ready(), during an emit burst, with invokes pending, inside a
// handler, during close(), while replies are being delivered. The hosting process must stay
// alive and print no fatal error, every call its client made into the worker must end, and
// afterwards its client holds nothing pending and the process's threads and file descriptors
// are back to baseline. (Client workers: worker-terminated-at-any-moment-crashes-nothing.)
//
// Roles: 'main' (node:test), 'host-hub-workers' (a forked process; its main thread is the client
// of each round's hub) and the worker 'doomed-hub'. Synchronised by worker messages and bus
// messages; the random delays only choose where the termination lands.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { ConnectionLostError, EventBus, NoHandlerError } from '../../dist/esm/index.js';
import { currentRole, deadline, guardAgainstOrphaning, killLeftovers } from './support.mjs';
import {
  POINTS, ROUNDS, busyHandler, differences, driveToPoint, hostRounds, processBaseline, processCounts,
  recordMessages, roundsLine, runRounds, settled, stressSeed, terminateAtPoint,
} from './termination-rounds.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

// --- The doomed hub --------------------------------------------------------------------------------

// A hub in a worker, with clients' traffic going through it, then its point.
async function runDoomedHub() {
  const { point, endpoint, token } = workerData;
  const at = () => parentPort.postMessage('at-point');
  if (point === 'before-ready') at();
  const bus = new EventBus({ role: 'hub', name: 'doomed-hub', endpoint, token });
  bus.on('client:*', () => {});
  bus.handle('hubw:hang', () => new Promise(() => {}));
  bus.handle('hubw:work', busyHandler(bus, 'hub:busy', () => point === 'in-handler' && at()));
  await bus.ready();
  const ticker = setInterval(() => bus.emit('hub:tick', {}), 5);
  // The host's client says hello once it is connected and subscribed.
  await bus.once('client:hello');
  parentPort.postMessage('client-joined');
  await driveToPoint(bus, point, at, ticker, 'hub', 'client');
}

// --- The host (a forked process) ---------------------------------------------------------------------

async function runHostHubWorkers() {
  guardAgainstOrphaning();
  const seed = Number(process.argv[3]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-doomed-hub-'));
  fs.chmodSync(dir, 0o700);

  const round = async (i, point, rand) => {
    const failures = [];
    const endpoint = path.join(dir, `h${i}.sock`);
    const token = randomBytes(16).toString('hex');
    const worker = new Worker(thisFile, { workerData: { role: 'doomed-hub', point, endpoint, token } });
    const messages = recordMessages(worker);
    worker.on('error', (err) => failures.push(`hub ${i} (${point}) threw: ${err.stack ?? err}`));
    const gone = new Promise((resolve) => worker.once('exit', resolve));
    // The host's client: it keeps trying until the worker's hub listens (or the round ends).
    const client = new EventBus({
      role: 'client', name: `c${i}`, endpoint, token, reconnect: { initialMs: 5, maxMs: 20 },
    });
    client.on('hub:*', () => {});
    client.handle('client:hang', () => new Promise(() => {}));
    client.handle('client:blob', (n) => new Uint8Array(n));
    const calls = [];
    const joined = point === 'while-loading' || point === 'before-ready'
      ? null
      : deadline(10_000, `hub ${i} to see the client`, messages.posted('client-joined'));
    const connected = client.ready().then(async () => {
      // The hub's bus registered its handlers before its first tick (one local port, in order).
      await client.once('hub:tick');
      // Pending in the hub's worker when it goes.
      calls.push(client.invoke('hubw:hang', null, { timeout: 0 }).then(() => 'resolved', (err) => err));
      if (point === 'in-handler') {
        calls.push(client.invoke('hubw:work', null, { timeout: 0 }).then(() => 'resolved', (err) => err));
      }
      client.emit('client:hello');
    }, () => {});
    if (joined) await joined;
    // Calls made from here on may find the client already disconnected: they wait for a
    // reconnect (as documented) and end with close() below.
    let made = [];
    await terminateAtPoint(worker, messages, point, rand, `hub ${i}`, () => (made = calls.slice()));
    await gone;
    // Every call made into the hub's worker while it was there ends: with ConnectionLostError,
    // or with NoHandlerError when it reached the hub after the worker's own bus had left it
    // (the worker's port closes before its hub: the hub answers for a name nobody serves).
    for (const [k, call] of made.entries()) {
      const err = await deadline(5_000, `call ${k} into hub ${i} to end`, call);
      if (!(err instanceof ConnectionLostError || err instanceof NoHandlerError)) {
        failures.push(`hub ${i} (${point}): call ${k} ended with ${err?.name ?? err}, not ConnectionLostError`);
      }
    }
    await client.close();
    // (`connected` may never settle: a once() pending at close() stays pending, as documented.)
    void connected;
    const s = client.stats();
    if (s.invokes.pending !== 0 || s.invokes.serving !== 0) {
      failures.push(`hub ${i} (${point}): the client kept pending ${s.invokes.pending}, serving ${s.invokes.serving}`);
    }
    return failures;
  };

  const warm = await runRounds(POINTS.length, seed, round);
  const procBase = processBaseline();
  const { counts, failures } = await runRounds(ROUNDS, seed + 1, round);
  failures.unshift(...warm.failures);
  let baseline = 'back to baseline';
  try {
    await settled(10_000, () => {
      const d = differences(processCounts(), procBase.counts);
      return d && d + procBase.describe();
    });
  } catch (err) {
    baseline = err.message;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.send({ type: 'done', counts, failures, baseline, proc: processCounts() });
  process.disconnect();
}

// --- The test (main) --------------------------------------------------------------------------------

function runMain() {
  const seed = stressSeed();
  const children = [];

  describe('terminating the hub\'s worker at any moment crashes nothing', { timeout: 300_000 }, () => {
    after(() => killLeftovers(children));

    it(`${ROUNDS} hubs in workers terminated at random points: the process with their clients lives`, { timeout: 290_000 }, async () => {
      const started = Date.now();
      const result = await hostRounds(thisFile, 'host-hub-workers', seed, 280_000, children);
      console.log(roundsLine(seed, result, started));
      assert.deepEqual(result.failures, [], `seed ${seed}`);
      assert.equal(result.baseline, 'back to baseline', `seed ${seed}`);
      for (const p of POINTS) assert.ok(result.counts[p] >= Math.floor(ROUNDS / POINTS.length), `rounds at ${p}`);
    });
  });
}

const roles = { main: runMain, 'host-hub-workers': runHostHubWorkers, 'doomed-hub': runDoomedHub };
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
