// Promise (DESIGN.md): no process dies because of the bus, not when a worker thread with an open
// bus is terminated at any moment. 504 client workers with an open bus and traffic in flight
// (listeners, a handler, a pending invoke, an event every 5 ms) are terminated, each at a point
// drawn in turn from POINTS, a random moment after it: while the module loads, before ready(),
// during an emit burst, with invokes pending, inside a handler, during close(), while replies
// are being delivered. The process hosting the hub must stay alive and print no fatal error,
// every call into a terminated worker must end with ConnectionLostError, and afterwards the hub's
// peer, subscription, handler and pending-invoke counts, the process's threads and its file
// descriptors are back to baseline. Also: process.exit() called while a bus is open exits with
// the requested code and prints no fatal error, from a hub, from a client, and from a worker.
// (The hub itself in a terminated worker: hub-worker-terminated-at-any-moment-crashes-nothing.)
//
// Roles: 'main' (node:test), 'host-client-workers' (a forked process: the hub in its main
// thread, the doomed workers its clients), the worker 'doomed-client', and the process.exit()
// roles 'exit-hub', 'exit-client' and 'exit-in-worker' (with the worker role 'exiting-worker').
// Synchronised by worker messages, child IPC and bus messages; the random delays only choose
// where the termination lands.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { ConnectionLostError, EventBus } from '../../dist/esm/index.js';
import {
  currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom,
  outputOf,
} from './support.mjs';
import {
  FATAL, POINTS, ROUNDS, busyHandler, differences, driveToPoint, hostRounds, jitter, processBaseline,
  processCounts,
  recordMessages, roundsLine, runRounds, settled, stressSeed, terminateAtPoint,
} from './termination-rounds.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

// --- The doomed worker ----------------------------------------------------------------------------

// A client bus with the traffic every round has, then whatever its point asks for. It posts
// 'at-point' when the point is reached; the host terminates it a random moment later.
async function runDoomedClient() {
  const { point, name } = workerData;
  const at = () => parentPort.postMessage('at-point');
  if (point === 'before-ready') at();
  const bus = new EventBus({ name });
  if (point === 'before-ready') bus.emit('tick', { early: true }); // waits in the offline queue
  await bus.ready();
  bus.on('host:tick', () => {});
  bus.on('doomed:*', () => {});
  bus.handle(`${name}:echo`, (x) => x);
  bus.invoke('host:hang', null, { timeout: 0 }).catch(() => {});
  const ticker = setInterval(() => bus.emit('doomed:tick', { name }), 5);
  if (point === 'in-handler') {
    bus.handle(`${name}:work`, busyHandler(bus, 'doomed:busy', at));
    // The hub has the registration once this reply is back (one connection, in order).
    await bus.invoke('host:echo', null);
    parentPort.postMessage('serving');
    return;
  }
  await driveToPoint(bus, point, at, ticker, 'doomed', 'host');
}

// --- The host (a forked process) ---------------------------------------------------------------------

async function runHostClientWorkers() {
  guardAgainstOrphaning();
  const seed = Number(process.argv[3]);
  const bus = new EventBus({ role: 'hub', name: 'host' });
  await bus.ready();
  bus.on('doomed:*', () => {});
  bus.handle('host:hang', () => new Promise(() => {}));
  bus.handle('host:echo', (x) => x);
  bus.handle('host:blob', (n) => new Uint8Array(n));
  // Deliveries into the workers all along (thread-safe calls in flight at termination).
  const ticker = setInterval(() => bus.emit('host:tick', { t: Date.now() }), 2);

  const hubCounts = () => {
    const s = bus.stats();
    return {
      peers: s.hub.peers,
      handshaking: s.hub.handshaking,
      subscriptions: s.hub.subscriptions,
      handlers: s.hub.handlers,
      pendingInvokes: s.hub.pendingInvokes,
      knownPeers: s.peers.length,
      pending: s.invokes.pending,
      serving: s.invokes.serving,
    };
  };
  // The host's own subscriptions and handlers reach the hub at the end of this turn.
  await new Promise(setImmediate);
  const hubBase = hubCounts();

  const round = async (i, point, rand) => {
    const name = `w${i}`;
    const failures = [];
    const worker = new Worker(thisFile, { workerData: { role: 'doomed-client', point, name } });
    const messages = recordMessages(worker);
    // A worker's own uncaught error would be a bug of the bus too (it is not a crash, but say so).
    worker.on('error', (err) => failures.push(`${name} (${point}) threw: ${err.stack ?? err}`));
    const gone = new Promise((resolve) => worker.once('exit', resolve));
    let call;
    if (point === 'in-handler') {
      await deadline(10_000, `${name} to serve`, messages.posted('serving'));
      call = bus.invoke(`${name}:work`, null, { timeout: 0 }).then(() => 'resolved', (err) => err);
    }
    await terminateAtPoint(worker, messages, point, rand, name);
    await gone;
    if (call) {
      const err = await deadline(5_000, `the call into ${name} to end`, call);
      if (!(err instanceof ConnectionLostError)) failures.push(`${name}: the call into it ended with ${err?.name ?? err}, not ConnectionLostError`);
    }
    return failures;
  };

  // One round of each point first, so that what Node.js starts once (its thread pool) is there
  // before the baseline of threads and descriptors is taken.
  const warm = await runRounds(POINTS.length, seed, round);
  await settled(10_000, () => differences(hubCounts(), hubBase));
  const procBase = processBaseline();
  const { counts, failures } = await runRounds(ROUNDS, seed + 1, round);
  failures.unshift(...warm.failures);
  clearInterval(ticker);
  let baseline = 'back to baseline';
  try {
    await settled(10_000, () => {
      const d = differences(processCounts(), procBase.counts);
      return differences(hubCounts(), hubBase) || (d && d + procBase.describe());
    });
  } catch (err) {
    baseline = err.message;
  }
  process.send({ type: 'done', counts, failures, baseline, hub: hubCounts(), proc: processCounts() });
  await bus.close();
  process.disconnect();
}

// --- process.exit() with an open bus ----------------------------------------------------------------------

// A hub with a client worker, events both ways and a call pending each way: exit(7) mid-traffic.
async function runExitHub() {
  const bus = new EventBus({ role: 'hub', name: 'exit-hub' });
  await bus.ready();
  bus.handle('host:hang', () => new Promise(() => {}));
  bus.handle('host:blob', (n) => new Uint8Array(n));
  bus.on('doomed:*', () => {});
  const worker = new Worker(thisFile, { workerData: { role: 'doomed-client', point: 'reply-delivery', name: 'x' } });
  await recordMessages(worker).posted('at-point');
  setInterval(() => bus.emit('host:tick', {}), 1);
  bus.invoke('x:echo', 'pending?', { timeout: 0 }).catch(() => {});
  await jitter(2);
  process.exit(7);
}

// A client process with traffic and pending calls: exit(9) mid-traffic.
async function runExitClient() {
  const bus = new EventBus({ role: 'client', name: 'exit-client' });
  await bus.ready();
  bus.on('host:*', () => {});
  bus.invoke('host:hang', null, { timeout: 0 }).catch(() => {});
  for (let k = 0; k < 1000; k++) bus.emit('doomed:burst', { k });
  bus.invoke('host:blob', 1 << 20).catch(() => {});
  await jitter(1);
  process.exit(9);
}

// A worker calls process.exit(3) with its bus open (that ends the worker only); the process
// then closes its own hub and ends normally.
async function runExitInWorker() {
  const bus = new EventBus({ role: 'hub', name: 'exit-in-worker' });
  await bus.ready();
  bus.handle('host:hang', () => new Promise(() => {}));
  bus.handle('host:blob', (n) => new Uint8Array(n));
  const worker = new Worker(thisFile, { workerData: { role: 'exiting-worker' } });
  const code = await new Promise((resolve) => worker.once('exit', resolve));
  process.send({ type: 'worker-exit', code, peers: bus.stats().hub.peers });
  await bus.close();
  process.disconnect();
}

async function runExitingWorker() {
  const bus = new EventBus({ name: 'exiting' });
  await bus.ready();
  bus.on('host:*', () => {});
  bus.invoke('host:hang', null, { timeout: 0 }).catch(() => {});
  const blob = bus.invoke('host:blob', 256 * 1024);
  setInterval(() => bus.emit('doomed:tick', {}), 1);
  await blob;
  for (let k = 0; k < 500; k++) bus.emit('doomed:burst', { k });
  process.exit(3);
}

// --- The tests (main) -------------------------------------------------------------------------------

function runMain() {
  const seed = stressSeed();
  const children = [];
  let hubBus;

  describe('terminating a client worker at any moment crashes nothing', { timeout: 300_000 }, () => {
    after(() => killLeftovers(children));

    it(`${ROUNDS} client workers terminated at random points: the hub's process lives, its counts return to baseline`, { timeout: 290_000 }, async () => {
      const started = Date.now();
      const result = await hostRounds(thisFile, 'host-client-workers', seed, 280_000, children);
      console.log(roundsLine(seed, result, started));
      assert.deepEqual(result.failures, [], `seed ${seed}`);
      assert.equal(result.baseline, 'back to baseline', `seed ${seed}`);
      for (const p of POINTS) assert.ok(result.counts[p] >= Math.floor(ROUNDS / POINTS.length), `rounds at ${p}`);
    });
  });

  describe('process.exit() with an open bus exits with its code', { timeout: 120_000 }, () => {
    after(() => {
      killLeftovers(children);
      return hubBus?.close();
    });

    it('from a hub with a worker client mid-traffic (5 times): code 7, no crash report', { timeout: 60_000 }, async () => {
      for (let n = 0; n < 5; n++) {
        const child = forkRole(thisFile, 'exit-hub', {}, [], { capture: true });
        children.push(child);
        const exit = await deadline(20_000, 'exit-hub to exit', exitCode(child));
        const { stderr } = outputOf(child);
        assert.deepEqual(exit, { code: 7, signal: null }, stderr);
        assert.doesNotMatch(stderr, FATAL);
      }
    });

    it('from a client process mid-traffic (5 times): code 9, no crash report; the hub goes on', { timeout: 60_000 }, async () => {
      hubBus = new EventBus({ role: 'hub', name: 'exit-test-hub' });
      await hubBus.ready();
      hubBus.handle('host:hang', () => new Promise(() => {}));
      hubBus.handle('host:blob', (n) => new Uint8Array(n));
      hubBus.on('doomed:*', () => {});
      const ticker = setInterval(() => hubBus.emit('host:tick', {}), 1);
      try {
        for (let n = 0; n < 5; n++) {
          const child = forkRole(thisFile, 'exit-client', hubBus.childEnv(), [], { capture: true });
          children.push(child);
          const exit = await deadline(20_000, 'exit-client to exit', exitCode(child));
          const { stderr } = outputOf(child);
          assert.deepEqual(exit, { code: 9, signal: null }, stderr);
          assert.doesNotMatch(stderr, FATAL);
        }
        assert.equal(await hubBus.invoke('host:blob', 3).then((b) => b.length), 3, 'the hub still serves');
      } finally {
        clearInterval(ticker);
      }
    });

    it('from a worker mid-traffic (5 times): the worker ends with code 3, its process with 0', { timeout: 60_000 }, async () => {
      for (let n = 0; n < 5; n++) {
        const child = forkRole(thisFile, 'exit-in-worker', {}, [], { capture: true });
        children.push(child);
        const report = messageFrom(child, (m) => m.type === 'worker-exit');
        const exit = await deadline(20_000, 'exit-in-worker to exit', exitCode(child));
        const { stderr } = outputOf(child);
        assert.deepEqual(exit, { code: 0, signal: null }, stderr);
        assert.doesNotMatch(stderr, FATAL);
        assert.equal((await report).code, 3);
      }
    });
  });
}

const roles = {
  main: runMain,
  'host-client-workers': runHostClientWorkers,
  'doomed-client': runDoomedClient,
  'exit-hub': runExitHub,
  'exit-client': runExitClient,
  'exit-in-worker': runExitInWorker,
  'exiting-worker': runExitingWorker,
};
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
