// The harness shared by the multi-process tests in test/js/. Each test file is one program that
// runs in named roles: 'main' (the node:test process) re-executes the same file as forked
// processes (`forkRole`) and worker threads (`startWorker`), and the role is read back with
// `currentRole()`. This module offers:
//   - roles:     currentRole(), forkRole(), startWorker(), guardAgainstOrphaning()
//   - endings:   exitCode(), isAlive(), killLeftovers(), outputOf() (a captured child's output)
//   - messages:  messageFrom(), messagesFrom() (child_process IPC, none missed), and the
//                close handshake closeOnRequest() (in a role) / requestClose() (in the parent)
//   - the bus:   collectEvents(), nextEvent(), checkClosed()
//   - time:      deadline(): fails with a clear message; it is never a wait.
// It never imports the package itself (commonjs-require-works.test.mjs loads it only through
// require()), and it is not a test file: `node --test test/js/` runs only *.test.mjs.
import { fork } from 'node:child_process';
import { Worker, isMainThread, workerData } from 'node:worker_threads';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */
/** @typedef {import('../../types/index.js').EventBus} EventBus */
/** @typedef {{ code: number | null, signal: NodeJS.Signals | null }} ProcessExit */

/**
 * What `forkRole()` keeps about a child: every IPC message it sent, the `messageFrom()` calls
 * still waiting, and how it exits.
 * @typedef {{
 *   log: any[],
 *   waiters: { pred: (msg: any) => boolean, resolve: (msg: any) => void }[],
 *   output: { stdout: string, stderr: string },
 *   exited: Promise<ProcessExit>,
 * }} ChildRecord
 */

/** @type {WeakMap<ChildProcess, ChildRecord>} */
const children = new WeakMap();
/** @type {WeakMap<Worker, Promise<number>>} */
const workerExits = new WeakMap();

// --- Roles --------------------------------------------------------------------------------------------

/**
 * The role this copy of a test file runs in: the `role` of a worker's workerData, else the first
 * argument of a forked process, else 'main' (the test process itself).
 * @returns {string}
 */
export function currentRole() {
  return workerData?.role ?? process.argv[2] ?? 'main';
}

/**
 * Forks `file` (a test file: pass its own path) in `role`, with the test process's environment
 * minus NODE_TEST_CONTEXT (so the child runs its role, not node:test's reporter), plus `env`
 * (typically `bus.childEnv()`, which lets the child join the bus). `args` follow the role name in
 * its argv. From the moment of the fork, every IPC message it sends is kept (`messageFrom`,
 * `messagesFrom`) and its exit is recorded (`exitCode`).
 * With `{ capture: true }` its stdout and stderr are kept for `outputOf()` instead of going to
 * the test's own output.
 * @param {string} file
 * @param {string} role
 * @param {Record<string, string>} [env]
 * @param {string[]} [args]
 * @param {{ capture?: boolean }} [options]
 * @returns {ChildProcess}
 */
export function forkRole(file, role, env = {}, args = [], options = {}) {
  const { NODE_TEST_CONTEXT: _, ...base } = process.env;
  const child = fork(file, [role, ...args], {
    env: { ...base, ...env },
    ...(options.capture ? { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] } : {}),
  });
  /** @type {ChildRecord} */
  const record = {
    log: [],
    waiters: [],
    output: { stdout: '', stderr: '' },
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  if (options.capture) {
    child.stdout?.setEncoding('utf8').on('data', (s) => (record.output.stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s) => (record.output.stderr += s));
    // 'exit' can come before the pipes are drained: settle once both have ended too.
    const ended = (stream) => new Promise((resolve) => (stream ? stream.once('close', resolve) : resolve()));
    const exited = record.exited;
    record.exited = Promise.all([exited, ended(child.stdout), ended(child.stderr)]).then(([e]) => e);
  }
  child.on('message', (msg) => {
    record.log.push(msg);
    for (const w of [...record.waiters]) {
      if (w.pred(msg)) {
        record.waiters.splice(record.waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  children.set(child, record);
  return child;
}

/**
 * Starts `file` in a worker thread in `role` (its workerData is `{ role, ...data }`); its exit is
 * recorded (`exitCode`). No 'error' listener is added: the caller decides what a worker's error does.
 * @param {string} file
 * @param {string} role
 * @param {Record<string, unknown>} [data]
 * @returns {Worker}
 */
export function startWorker(file, role, data = {}) {
  const worker = new Worker(file, { workerData: { role, ...data } });
  workerExits.set(worker, new Promise((resolve) => worker.once('exit', resolve)));
  return worker;
}

/**
 * For a forked role: a role must not outlive the test process. Orphaned by a crash or a runner
 * timeout, it would keep running and hold the runner's output pipe open, so it kills itself once
 * its parent is gone. This watchdog only notices that; it takes no part in the tests'
 * synchronisation, and keeps nothing alive. In a worker thread it does nothing (the thread goes
 * with its process).
 */
export function guardAgainstOrphaning() {
  if (!isMainThread) return;
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  }, 250).unref();
}

// --- Endings ------------------------------------------------------------------------------------------

/**
 * How a child started by `forkRole` or `startWorker` exits, even if it already has: a process's
 * `{ code, signal }`, a worker's exit code.
 * @overload
 * @param {ChildProcess} child
 * @returns {Promise<ProcessExit>}
 */
/**
 * @overload
 * @param {Worker} child
 * @returns {Promise<number>}
 */
/**
 * @param {ChildProcess | Worker} child
 * @returns {Promise<ProcessExit | number>}
 */
export function exitCode(child) {
  const exited = child instanceof Worker ? workerExits.get(child) : children.get(child)?.exited;
  if (!exited) throw new TypeError('exitCode(): not started by forkRole() or startWorker()');
  return exited;
}

/**
 * What a child forked with `{ capture: true }` printed so far (all of it once `exitCode()` has
 * resolved).
 * @param {ChildProcess} child
 * @returns {{ stdout: string, stderr: string }}
 */
export function outputOf(child) {
  const record = children.get(child);
  if (!record) throw new TypeError('outputOf(): not started by forkRole()');
  return record.output;
}

/**
 * Whether a forked child exists and has not exited yet.
 * @param {ChildProcess | undefined} child
 * @returns {child is ChildProcess}
 */
export function isAlive(child) {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * SIGKILLs every child still alive: for an after() hook, where live children are only left when
 * a test failed. Undefined entries (a child never started) are skipped.
 * @param {Iterable<ChildProcess | undefined>} list
 */
export function killLeftovers(list) {
  for (const child of list) if (isAlive(child)) child.kill('SIGKILL');
}

// --- Messages from forked roles --------------------------------------------------------------------

/**
 * The first IPC message from `child` (already received or still to come) that matches `pred`.
 * @param {ChildProcess} child started by `forkRole`
 * @param {(msg: any) => boolean} pred
 * @returns {Promise<any>}
 */
export function messageFrom(child, pred) {
  const record = children.get(child);
  if (!record) throw new TypeError('messageFrom(): not started by forkRole()');
  const seen = record.log.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => record.waiters.push({ pred, resolve }));
}

/**
 * Every IPC message `child` has sent so far, in order (a live array: do not modify it).
 * @param {ChildProcess} child started by `forkRole`
 * @returns {readonly any[]}
 */
export function messagesFrom(child) {
  const record = children.get(child);
  if (!record) throw new TypeError('messagesFrom(): not started by forkRole()');
  return record.log;
}

/**
 * In a forked role: when the parent sends `{ type: 'close' }`, closes `bus` and answers
 * `{ type: 'closed', pending, serving, state }` from its stats() (see `requestClose`).
 * @param {EventBus} bus
 */
export function closeOnRequest(bus) {
  const send = process.send?.bind(process);
  if (!send) throw new Error('closeOnRequest(): not a forked role (no IPC channel)');
  process.on('message', async (/** @type {any} */ msg) => {
    if (msg.type !== 'close') return;
    await bus.close();
    const s = bus.stats();
    send({ type: 'closed', pending: s.invokes.pending, serving: s.invokes.serving, state: s.state });
  });
}

/**
 * In the parent: asks a forked role to close its bus (`{ type: 'close' }`) and resolves with its
 * `{ type: 'closed', ... }` answer.
 * @param {ChildProcess} child started by `forkRole`
 * @returns {Promise<any>}
 */
export function requestClose(child) {
  const closed = messageFrom(child, (m) => m.type === 'closed');
  child.send({ type: 'close' });
  return closed;
}

// --- The bus ------------------------------------------------------------------------------------------

/**
 * Resolves with the payloads of the first `n` events on `topic` that pass `filter`, then stops
 * listening.
 * @param {EventBus} bus
 * @param {string} topic
 * @param {number} n
 * @param {(data: any) => boolean} [filter]
 * @returns {Promise<any[]>}
 */
export function collectEvents(bus, topic, n, filter = () => true) {
  return new Promise((resolve) => {
    /** @type {any[]} */
    const got = [];
    const off = bus.on(topic, (data) => {
      if (!filter(data)) return;
      got.push(data);
      if (got.length === n) {
        off();
        resolve(got);
      }
    });
  });
}

/**
 * The next payload on `topic` that passes `filter`, then stops listening.
 * @param {EventBus} bus
 * @param {string} topic
 * @param {(data: any) => boolean} [filter]
 * @returns {Promise<any>}
 */
export function nextEvent(bus, topic, filter = () => true) {
  return new Promise((resolve) => {
    const off = bus.on(topic, (data) => {
      if (!filter(data)) return;
      off();
      resolve(data);
    });
  });
}

/**
 * In a role, after `await bus.close()`: sets process.exitCode to 1 (never process.exit) and says
 * why on stderr when the bus did not close cleanly (an invoke pending or serving, or a state
 * other than 'closed'), so the parent sees a non-zero exit.
 * @param {EventBus} bus
 * @param {string} who
 */
export function checkClosed(bus, who) {
  const s = bus.stats();
  if (s.invokes.pending !== 0 || s.invokes.serving !== 0 || s.state !== 'closed') {
    console.error(`${who}: unclean close`, JSON.stringify(s));
    process.exitCode = 1;
  }
}

// --- Time ---------------------------------------------------------------------------------------------

/**
 * `promise`, unless it has not settled within `ms`: then rejects with "<what>: nothing within
 * <ms> ms". A deadline that fails the test, never a wait; its timer is cleared either way.
 * @template T
 * @param {number} ms
 * @param {string} what
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
export function deadline(ms, what, promise) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
