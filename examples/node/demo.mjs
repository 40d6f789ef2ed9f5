// Switchboard's main demo: one program, three roles, three processes.
//
//   node demo.mjs                  the hub (default): starts the bus, spawns the two others,
//                                  draws the jobs' progress, prints the stats, stops everyone
//   node demo.mjs --role server    serves 'math:fib' and 'text:shout'
//   node demo.mjs --role worker    runs three jobs, calling the server (child -> child through
//                                  the hub) and the hub ('hub:config'), reporting progress
//
// The roles synchronise by messages only: each child announces 'peer:ready' once its handlers
// and subscriptions are in place, the hub answers with 'demo:start', and 'demo:stop' ends it:
// each child then hands its stats to the hub with an invoke ('hub:goodbye'), whose reply tells
// it the hub has them, and closes its bus. The only timers are the jobs' pacing (so the bars are
// visible) and a deadline that fails a demo that hangs.
import { fork } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EventBus, RemoteError } from 'switchboard-ipc';

/**
 * @typedef {'server' | 'worker'} Role
 * @typedef {import('switchboard-ipc').BusStats} BusStats
 * @typedef {{ id: string, n: number, stepMs: number }} Job
 *
 * Topic -> payload. Every process uses the same maps, so a wrong topic or payload is a type error.
 * @typedef {{
 *   'peer:ready': { role: Role, pid: number },
 *   'demo:start': void,
 *   'demo:stop': void,
 *   'job:progress': { id: string, percent: number },
 *   'job:done': { id: string, n: number, fib: bigint, status: string },
 * }} Events
 *
 * Handler name -> (request) => result.
 * @typedef {{
 *   'math:fib': (n: number) => bigint,
 *   'text:shout': (text: string) => string,
 *   'hub:config': (req: void) => { steps: number, jobs: Job[] },
 *   'hub:goodbye': (req: { role: Role, stats: BusStats }) => void,
 * }} Handlers
 *
 * @typedef {import('switchboard-ipc').EventBus<Events, Handlers>} Bus
 */

const SELF = fileURLToPath(import.meta.url);
/** @type {readonly Role[]} */
const ROLES = ['server', 'worker'];
/** Served by the hub through 'hub:config': the jobs the worker runs, and how finely. */
const STEPS = 20;
/** @type {Job[]} */
const JOBS = [
  { id: 'alpha', n: 30, stepMs: 15 },
  { id: 'beta', n: 60, stepMs: 25 },
  { id: 'gamma', n: 90, stepMs: 35 },
];
/** A demo that has not finished by then has hung: fail it instead of waiting forever. */
const DEADLINE_MS = 20_000;

// --- Shared helpers --------------------------------------------------------------------------

/**
 * fib(n) for an integer n from 0 to 90, iteratively. A BigInt, because fib(79) is already above
 * Number.MAX_SAFE_INTEGER; BigInts cross the bus as they are.
 * @param {number} n
 */
function fib(n) {
  if (!Number.isInteger(n) || n < 0 || n > 90) {
    throw Object.assign(new RangeError(`fib(n) takes an integer n from 0 to 90, got ${n}`), {
      code: 'E_FIB_RANGE',
    });
  }
  let a = 0n;
  let b = 1n;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

/**
 * @template [T=void]
 * @returns {{ promise: Promise<T>, resolve: (value: T) => void }}
 */
function deferred() {
  /** @type {(value: T) => void} */
  let resolve = () => {};
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * One place where a role fails. The first error wins; every wait of the role races against it,
 * so an error reported anywhere (bus.on('error'), a child that dies, a lost hub) ends the role's
 * main flow at once instead of leaving it waiting.
 */
function failure() {
  /** @type {(error: unknown) => void} */
  let reject = () => {};
  /** @type {Promise<never>} */
  const failed = new Promise((_, r) => {
    reject = r;
  });
  failed.catch(() => {}); // observed through until()
  let done = false;
  return {
    /** @param {unknown} error */
    fail(error) {
      if (done) return;
      done = true;
      reject(error);
    },
    /**
     * @template T
     * @param {Promise<T>} promise
     * @returns {Promise<T>}
     */
    until(promise) {
      return Promise.race([promise, failed]);
    },
  };
}

// --- Hub -------------------------------------------------------------------------------------

async function runHub() {
  /** @type {Bus} */
  const bus = new EventBus({ role: 'hub', name: 'demo-hub' });
  const { fail, until } = failure();
  bus.on('error', fail);
  const deadline = setTimeout(
    () => fail(new Error(`the demo did not finish within ${DEADLINE_MS / 1000} s`)),
    DEADLINE_MS,
  );
  deadline.unref();
  /** @type {Map<Role, import('node:child_process').ChildProcess>} */
  const children = new Map();
  let stopping = false;

  try {
    // Everything the children rely on is in place before they start: the hub's handler and its
    // subscriptions.
    bus.handle('hub:config', () => ({ steps: STEPS, jobs: JOBS }));

    const view = new ProgressView(JOBS, process.stdout);
    bus.on('job:progress', ({ id, percent }) => view.progress(id, percent));

    /** @type {Map<string, Events['job:done']>} */
    const results = new Map();
    const allDone = deferred();
    bus.on('job:done', (result) => {
      const expected = fib(result.n);
      if (result.fib !== expected) {
        fail(new Error(`job ${result.id}: fib(${result.n}) arrived as ${result.fib}, expected ${expected}`));
        return;
      }
      results.set(result.id, result);
      view.done(result);
      if (results.size === JOBS.length) allDone.resolve();
    });

    const allJoined = deferred();
    /** @type {Set<Role>} */
    const joined = new Set();
    bus.on('peer:ready', ({ role, pid }, ctx) => {
      console.log(`  ${role.padEnd(6)}  ${ctx.sender.name} (pid ${pid}) joined as peer ${ctx.sender.id}`);
      joined.add(role);
      if (joined.size === ROLES.length) allJoined.resolve();
    });

    /** @type {Map<Role, BusStats>} */
    const farewells = new Map();
    const allLeft = deferred();
    bus.handle('hub:goodbye', ({ role, stats }) => {
      farewells.set(role, stats);
      if (farewells.size === ROLES.length) allLeft.resolve();
    });

    await until(bus.ready());
    const env = bus.childEnv();
    console.log(`switchboard demo: hub '${bus.name}' (pid ${process.pid}) on ${env.SWITCHBOARD_ENDPOINT}`);

    // The children join with the endpoint and token in their environment (never in argv).
    const exits = ROLES.map((role) => {
      const child = fork(SELF, ['--role', role], { env: { ...process.env, ...env } });
      children.set(role, child);
      return /** @type {Promise<void>} */ (
        new Promise((resolve) => {
          child.on('error', (err) => fail(new Error(`could not start the ${role}: ${err.message}`)));
          child.on('exit', (code, signal) => {
            if (stopping && code === 0) {
              resolve();
              return;
            }
            const how = signal ? `on ${signal}` : `with code ${code}`;
            fail(new Error(`the ${role} (pid ${child.pid}) exited ${how}${stopping ? '' : ' before it was told to stop'}`));
          });
        })
      );
    });

    await until(allJoined.promise);
    view.start();
    bus.emit('demo:start');
    await until(allDone.promise);
    view.finish();

    // The hub calls the server too; a handler that throws comes back as a typed RemoteError.
    const fib90 = await until(bus.invoke('math:fib', 90));
    console.log(`hub -> server: fib(90) = ${fib90}`);
    const refused = await until(bus.invoke('math:fib', 91).then(() => undefined, (/** @type {unknown} */ err) => err));
    if (!(refused instanceof RemoteError)) {
      throw refused ?? new Error("math:fib answered fib(91); it should refuse n > 90");
    }
    console.log(
      `hub -> server: fib(91) refused: ${refused.name} [${refused.code}] from ${refused.remote.name}: ${refused.message}`,
    );

    const peers = bus.stats().peers;
    stopping = true;
    bus.emit('demo:stop');
    await until(allLeft.promise);
    await until(Promise.all(exits));

    printStats(bus.stats(), farewells, peers);
    await bus.close();
    console.log(
      `wall time ${(performance.now() / 1000).toFixed(2)} s; ` +
        `server and worker exited with code 0; bus closed`,
    );
  } catch (err) {
    for (const child of children.values()) {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }
    throw err;
  } finally {
    clearTimeout(deadline);
    await bus.close(); // does nothing if already closed
  }
}

/**
 * The jobs' progress: bars redrawn in place on a terminal; one line per 25 % step otherwise
 * (a pipe, a CI log), so the output stays readable.
 */
class ProgressView {
  /**
   * @param {readonly Job[]} jobs
   * @param {NodeJS.WriteStream} out
   */
  constructor(jobs, out) {
    this.out = out;
    this.tty = out.isTTY === true;
    /** @type {Map<string, { job: Job, percent: number, quarter: number, result: string }>} */
    this.rows = new Map(jobs.map((job) => [job.id, { job, percent: 0, quarter: 0, result: '' }]));
    this.drawn = false;
    this.scheduled = false;
  }

  start() {
    if (this.tty) this.draw();
  }

  /**
   * @param {string} id
   * @param {number} percent
   */
  progress(id, percent) {
    const row = this.rows.get(id);
    if (!row) return;
    row.percent = percent;
    if (this.tty) {
      this.schedule();
      return;
    }
    while (row.quarter < 4 && percent >= (row.quarter + 1) * 25) {
      row.quarter++;
      this.out.write(`  ${id.padEnd(5)}  ${String(row.quarter * 25).padStart(3)} %\n`);
    }
  }

  /** @param {Events['job:done']} result */
  done(result) {
    const row = this.rows.get(result.id);
    if (!row) return;
    row.result = `${result.status}  fib(${result.n}) = ${result.fib}`;
    if (this.tty) this.schedule();
    else this.out.write(`  ${result.id.padEnd(5)}  ${row.result}\n`);
  }

  finish() {
    if (this.tty) this.draw();
  }

  /** One redraw per batch of messages, not one per message. */
  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.draw());
  }

  draw() {
    this.scheduled = false;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    let text = this.drawn ? `\x1b[${this.rows.size}A\r` : '';
    for (const { job, percent, result } of this.rows.values()) {
      const filled = Math.round(percent / 5);
      const bar = '█'.repeat(filled) + '░'.repeat(20 - filled);
      const line = `  ${job.id.padEnd(5)}  ${bar} ${String(percent).padStart(3)} %  ${result}`;
      text += `\x1b[2K${line.slice(0, width)}\n`;
    }
    this.drawn = true;
    this.out.write(text);
  }
}

/**
 * @param {BusStats} hub
 * @param {Map<Role, BusStats>} farewells
 * @param {import('switchboard-ipc').PeerInfo[]} peers
 */
function printStats(hub, farewells, peers) {
  /** @type {Array<[string, BusStats | undefined]>} */
  const columns = [['hub', hub], ['server', farewells.get('server')], ['worker', farewells.get('worker')]];
  /** @type {Array<[string, (s: BusStats) => string | number]>} */
  const rows = [
    ['events emitted', (s) => s.emitted],
    ['events received', (s) => s.received],
    ['invokes sent', (s) => s.invokes.sent],
    ['invokes served', (s) => s.invokes.served],
    ['frames per write', (s) => s.framesPerWrite.toFixed(2)],
  ];
  const cell = (/** @type {string | number} */ v) => String(v).padStart(8);
  console.log(`\n${'bus.stats()'.padEnd(18)}${columns.map(([name]) => cell(name)).join('')}`);
  for (const [label, get] of rows) {
    console.log(`  ${label.padEnd(16)}${columns.map(([, s]) => cell(s ? get(s) : '-')).join('')}`);
  }
  const h = hub.hub;
  const seen = peers.map((p) => `${p.name} (${p.role}, pid ${p.pid})`).join(', ') || 'none';
  console.log(`\nhub`);
  console.log(`  peers seen      ${peers.length}: ${seen}`);
  if (h) {
    console.log(`  events routed   ${h.eventsRouted} (dropped ${h.eventsDropped})`);
    console.log(`  invokes routed  ${h.invokesRouted} (pending ${h.pendingInvokes})`);
    console.log(`  rejected        ${h.rejected} connections`);
  }
}

// --- Children --------------------------------------------------------------------------------

/**
 * A child joins the hub that spawned it: role 'auto' finds SWITCHBOARD_ENDPOINT and
 * SWITCHBOARD_TOKEN in the environment. The bus would reconnect forever if the hub went away
 * (so that a restarted hub gets its clients back); this demo's hub never restarts, so losing it
 * is an error here.
 * @param {string} name
 */
function joinHub(name) {
  /** @type {Bus} */
  const bus = new EventBus({ name });
  const { fail, until } = failure();
  bus.on('error', fail);
  bus.on('connection', ({ state, code, message }) => {
    if (state === 'disconnected' || state === 'reconnecting') {
      fail(new Error(`lost the hub (${code || state}${message ? `: ${message}` : ''})`));
    }
  });
  return { bus, until };
}

async function runServer() {
  const { bus, until } = joinHub('demo-server');
  try {
    bus.handle('math:fib', (n) => fib(n));
    bus.handle('text:shout', (text) => `${text.toUpperCase()}!`);
    const stop = bus.once('demo:stop');
    await until(bus.ready());
    // Sent after the handlers' registration on the same connection, so it arrives after it.
    bus.emit('peer:ready', { role: 'server', pid: process.pid });
    await until(stop);
    // An invoke, not an emit: its reply proves the hub has the figures before close(). (In this
    // version a client's frames sent in the same turn as close() can be lost; docs/API.md,
    // "Known issues".)
    await until(bus.invoke('hub:goodbye', { role: 'server', stats: bus.stats() }));
  } finally {
    await bus.close();
  }
}

async function runWorker() {
  const { bus, until } = joinHub('demo-worker');
  try {
    const start = bus.once('demo:start');
    const stop = bus.once('demo:stop');
    await until(bus.ready());
    bus.emit('peer:ready', { role: 'worker', pid: process.pid });
    await until(start);
    const { steps, jobs } = await until(bus.invoke('hub:config'));
    await until(Promise.all(jobs.map((job) => runJob(bus, job, steps))));
    await until(stop);
    await until(bus.invoke('hub:goodbye', { role: 'worker', stats: bus.stats() }));
  } finally {
    await bus.close();
  }
}

/**
 * One job: `steps` calls to the server's 'math:fib', climbing to fib(job.n), with a progress
 * event after each; then 'text:shout' for its status word and 'job:done' with the result.
 * @param {Bus} bus
 * @param {Job} job
 * @param {number} steps
 */
async function runJob(bus, job, steps) {
  let value = 0n;
  for (let i = 1; i <= steps; i++) {
    value = await bus.invoke('math:fib', Math.round((job.n * i) / steps));
    bus.emit('job:progress', { id: job.id, percent: Math.round((100 * i) / steps) });
    if (i < steps) await delay(job.stepMs); // pacing, so the bars are visible
  }
  const status = await bus.invoke('text:shout', 'done');
  bus.emit('job:done', { id: job.id, n: job.n, fib: value, status });
}

// --- Entry -----------------------------------------------------------------------------------

/** @type {Record<string, () => Promise<void>>} */
const roles = { hub: runHub, server: runServer, worker: runWorker };
let role = 'hub';
try {
  role = parseArgs({ options: { role: { type: 'string', default: 'hub' } } }).values.role ?? 'hub';
  const run = roles[role];
  if (!run) throw new Error(`unknown --role '${role}'; expected hub, server or worker`);
  await run();
} catch (err) {
  // No process.exit(): the bus is closed and the children are gone or going, so the process ends
  // by itself, with this code.
  process.exitCode = 1;
  const what = err instanceof Error ? `${err.message}` : String(err);
  console.error(`demo ${role}: ${what}`);
  if (process.env.DEBUG_DEMO && err instanceof Error) console.error(err.stack);
}
