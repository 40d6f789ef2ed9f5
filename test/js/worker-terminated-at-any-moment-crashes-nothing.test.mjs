// Promise (DESIGN.md): no process dies because of the bus, not when a worker thread with an open
// bus is terminated at any moment. Hundreds of workers with an open bus and traffic in flight
// (listeners, a handler, a pending invoke, an event every 5 ms) are terminated, each at a point
// drawn in turn from POINTS, a random moment after it: while the module loads, before ready(),
// during an emit burst, with invokes pending, inside a handler, during close(), while replies
// are being delivered. Then the same with the hub itself in the terminated worker. The process
// hosting them must stay alive and print no fatal error, every call into a terminated worker
// must end with ConnectionLostError, and afterwards the hub's peer, subscription, handler and
// pending-invoke counts, the process's threads and its file descriptors are back to baseline.
// Also: process.exit() called while a bus is open exits with the requested code and prints no
// fatal error, from a hub, from a client, and from a worker.
//
// Why a separate process hosts the rounds: a crash of this kind aborts the whole process, and
// the test must see it as a failed exit with its stderr, not as a vanished test runner.
//
// Roles: 'main' (node:test), 'host-client-workers' (hub in its main thread; the doomed workers
// are clients), 'host-hub-workers' (each round a doomed worker runs the hub; the host's main
// thread is a client of it), the workers 'doomed-client' and 'doomed-hub', and the process.exit()
// roles 'exit-hub', 'exit-client' and 'exit-in-worker' (with the worker role 'exiting-worker').
// Synchronised by worker messages, child IPC and bus messages; the random delays only choose
// where the termination lands.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { ConnectionLostError, EventBus, NoHandlerError } from '../../dist/esm/index.js';
import {
  currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom,
  outputOf,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const POINTS = [
  'while-loading', 'before-ready', 'emit-burst', 'invoke-pending', 'in-handler', 'during-close',
  'reply-delivery',
];
// Under ASan each worker start costs several times as much; the sanitizer lane runs fewer rounds
// (and says so), the main lane the full count.
const sanitized = Boolean(process.env.SWITCHBOARD_SANITIZER);
const ROUNDS = sanitized ? 105 : 504;
const LANES = 3; // rounds in flight at once: more interleavings, and the run takes a third
// A crash report, in any of the forms Node.js, V8, libc or a sanitizer print one.
const FATAL = /FATAL ERROR|Aborted|Segmentation fault|core dumped|AddressSanitizer|runtime error:|terminate called/;

// --- Small helpers -----------------------------------------------------------------------------------

/** A seeded generator (mulberry32), so a failing run can be replayed with SWITCHBOARD_STRESS_SEED. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Waits `turns` turns of the event loop (a timer turn for odd, an immediate for even). */
async function jitter(turns) {
  for (let k = 0; k < turns; k++) {
    await new Promise((resolve) => (k % 2 ? setTimeout(resolve, 1) : setImmediate(resolve)));
  }
}

/**
 * Keeps every message `worker` posts from now on; `posted(text)` resolves once `text` has come,
 * before or after the call.
 */
function recordMessages(worker) {
  const seen = new Set();
  const waiters = [];
  worker.on('message', (msg) => {
    seen.add(msg);
    for (const w of waiters.filter((w) => w.text === msg)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return {
    posted: (text) => (seen.has(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ text, resolve }))),
  };
}

/** Threads and open file descriptors of this process (Linux: /proc). */
function processCounts() {
  return {
    threads: fs.readdirSync('/proc/self/task').length,
    fds: fs.readdirSync('/proc/self/fd').length,
  };
}

/**
 * Resolves once `check()` returns nothing (the counts it compares have settled), or rejects with
 * what it last returned. Peers leave a hub when it reads their socket's end, a moment after the
 * worker is gone: there is no event to wait for in another process's hub, so this looks again
 * every few milliseconds, with a deadline.
 */
async function settled(ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    const problem = check();
    if (!problem) return;
    if (Date.now() > end) throw new Error(`not back to baseline within ${ms} ms: ${problem}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function differences(now, base) {
  const out = [];
  for (const k of Object.keys(base)) if (now[k] !== base[k]) out.push(`${k} ${now[k]} (baseline ${base[k]})`);
  return out.join(', ');
}

// --- The doomed workers ---------------------------------------------------------------------------

/**
 * Drives `bus` to the points that clients and hubs share, then posts 'at-point' (`at`): its own
 * events go to `<prefix>:*`, its calls to the other side's `<other>:hang` and `<other>:blob`.
 */
async function driveToPoint(bus, point, at, ticker, prefix, other) {
  switch (point) {
    case 'emit-burst':
      at();
      for (let k = 0; ; k++) {
        for (let j = 0; j < 200; j++) bus.emit(`${prefix}:burst`, { k, j });
        await new Promise(setImmediate);
      }
    case 'invoke-pending':
      for (let k = 0; k < 16; k++) bus.invoke(`${other}:hang`, { k }, { timeout: 0 }).catch(() => {});
      at();
      break;
    case 'during-close':
      at();
      await jitter(Math.floor(Math.random() * 3));
      clearInterval(ticker);
      await bus.close();
      break;
    case 'reply-delivery': {
      let first = true;
      for (;;) {
        const calls = [];
        for (let k = 0; k < 16; k++) calls.push(bus.invoke(`${other}:blob`, 64 * 1024));
        await Promise.race(calls);
        if (first) at();
        first = false;
        await Promise.all(calls);
      }
    }
  }
}

/** A handler that keeps JavaScript running (and calling into the addon) for 50 ms, then hangs. */
function busyHandler(bus, topic, onEnter) {
  return () => {
    onEnter();
    const end = Date.now() + 50;
    while (Date.now() < end) bus.emit(topic, { t: Date.now() });
    return new Promise(() => {});
  };
}

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

// --- The hosts (forked processes) -----------------------------------------------------------------------

/**
 * Runs `rounds` rounds, `LANES` at a time; `round(i, point, rand)` resolves with a list of
 * failures (strings). Returns the failures and how many rounds ended at each point.
 */
async function runRounds(rounds, seed, round) {
  const rand = random(seed);
  const counts = Object.fromEntries(POINTS.map((p) => [p, 0]));
  const failures = [];
  let next = 0;
  async function lane() {
    while (next < rounds) {
      const i = next++;
      const point = POINTS[i % POINTS.length];
      try {
        failures.push(...(await round(i, point, rand)));
      } catch (err) {
        failures.push(`round ${i} (${point}): ${err.stack ?? err}`);
      }
      counts[point]++;
    }
  }
  await Promise.all(Array.from({ length: LANES }, lane));
  return { counts, failures };
}

/**
 * Terminates `worker` at `point`, a random moment after it got there. `justBefore` runs right
 * before the termination starts.
 */
async function terminateAtPoint(worker, messages, point, rand, what, justBefore = () => {}) {
  if (point === 'while-loading') {
    await jitter(Math.floor(rand() * 12)); // anywhere from before the import to the handshake
  } else {
    await deadline(10_000, `${what} to reach '${point}'`, messages.posted('at-point'));
    await jitter(Math.floor(rand() * 4));
  }
  justBefore();
  await worker.terminate();
}

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
  const procBase = processCounts();
  const { counts, failures } = await runRounds(ROUNDS, seed + 1, round);
  failures.unshift(...warm.failures);
  clearInterval(ticker);
  let baseline = 'back to baseline';
  try {
    await settled(10_000, () => differences(hubCounts(), hubBase) || differences(processCounts(), procBase));
  } catch (err) {
    baseline = err.message;
  }
  process.send({ type: 'done', counts, failures, baseline, hub: hubCounts(), proc: processCounts() });
  await bus.close();
  process.disconnect();
}

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
  const procBase = processCounts();
  const { counts, failures } = await runRounds(ROUNDS, seed + 1, round);
  failures.unshift(...warm.failures);
  let baseline = 'back to baseline';
  try {
    await settled(10_000, () => differences(processCounts(), procBase));
  } catch (err) {
    baseline = err.message;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.send({ type: 'done', counts, failures, baseline, proc: processCounts() });
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
  const seed = Number(process.env.SWITCHBOARD_STRESS_SEED) || (randomBytes(4).readUInt32LE(0) >>> 1);
  const children = [];
  let hubBus;

  /** Forks `host`, waits for its result and its exit, and checks that it died of nothing. */
  async function host(hostRole, ms, env = {}) {
    const child = forkRole(thisFile, hostRole, env, [String(seed)], { capture: true });
    children.push(child);
    const done = messageFrom(child, (m) => m.type === 'done');
    const exit = await deadline(ms, `${hostRole} to finish`, exitCode(child));
    const { stderr } = outputOf(child);
    assert.deepEqual(exit, { code: 0, signal: null }, `${hostRole} died (seed ${seed}):\n${stderr}`);
    assert.doesNotMatch(stderr, FATAL, `${hostRole} printed a crash report (seed ${seed})`);
    return done;
  }

  describe('terminating a worker at any moment crashes nothing', { timeout: 600_000 }, () => {
    after(() => {
      killLeftovers(children);
      return hubBus?.close();
    });

    it(`${ROUNDS} client workers terminated at random points: the hub's process lives, its counts return to baseline`, { timeout: 300_000 }, async () => {
      const started = Date.now();
      const result = await host('host-client-workers', 290_000);
      console.log(
        `# seed ${seed}${sanitized ? ' (sanitizer lane: fewer rounds)' : ''}: ${ROUNDS} rounds + ${POINTS.length} warm-up in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s; per point ${JSON.stringify(result.counts)}`,
      );
      assert.deepEqual(result.failures, [], `seed ${seed}`);
      assert.equal(result.baseline, 'back to baseline', `seed ${seed}`);
      for (const p of POINTS) assert.ok(result.counts[p] >= Math.floor(ROUNDS / POINTS.length), `rounds at ${p}`);
    });

    it(`${ROUNDS} hubs in workers terminated at random points: the process with their clients lives`, { timeout: 300_000 }, async () => {
      const started = Date.now();
      const result = await host('host-hub-workers', 290_000);
      console.log(
        `# seed ${seed}: ${ROUNDS} rounds + ${POINTS.length} warm-up in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s; per point ${JSON.stringify(result.counts)}`,
      );
      assert.deepEqual(result.failures, [], `seed ${seed}`);
      assert.equal(result.baseline, 'back to baseline', `seed ${seed}`);
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
  'host-hub-workers': runHostHubWorkers,
  'doomed-client': runDoomedClient,
  'doomed-hub': runDoomedHub,
  'exit-hub': runExitHub,
  'exit-client': runExitClient,
  'exit-in-worker': runExitInWorker,
  'exiting-worker': runExitingWorker,
};
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
