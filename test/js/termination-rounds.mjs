// What the tests of "a worker terminated at any moment crashes nothing" share: the points where
// a worker is terminated, driving a bus to them, running rounds a few at a time, and checking
// that a hosting process died of nothing and came back to its baseline. Used by
// worker-terminated-at-any-moment-crashes-nothing.test.mjs (client workers) and
// hub-worker-terminated-at-any-moment-crashes-nothing.test.mjs (hubs in workers); not a test
// file itself. Each host runs in a process of its own: a crash of this kind aborts the whole
// process, and the test must see it as a failed exit with its stderr, not as a vanished runner.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { deadline, exitCode, forkRole, messageFrom, outputOf } from './support.mjs';

export const POINTS = [
  'while-loading', 'before-ready', 'emit-burst', 'invoke-pending', 'in-handler', 'during-close',
  'reply-delivery',
];
// Under ASan each worker start costs several times as much; the sanitizer lane runs fewer rounds
// (and says so), the main lane the full count.
export const sanitized = Boolean(process.env.SWITCHBOARD_SANITIZER);
export const ROUNDS = sanitized ? 105 : 504;
const LANES = 3; // rounds in flight at once: more interleavings, and the run takes a third
// A crash report, in any of the forms Node.js, V8, libc or a sanitizer print one.
export const FATAL = /FATAL ERROR|Aborted|Segmentation fault|core dumped|AddressSanitizer|runtime error:|terminate called/;

// --- Small helpers -----------------------------------------------------------------------------------

/** A seeded generator (mulberry32), so a failing run can be replayed with SWITCHBOARD_STRESS_SEED. */
export function random(seed) {
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
export async function jitter(turns) {
  for (let k = 0; k < turns; k++) {
    await new Promise((resolve) => (k % 2 ? setTimeout(resolve, 1) : setImmediate(resolve)));
  }
}

/**
 * Keeps every message `worker` posts from now on; `posted(text)` resolves once `text` has come,
 * before or after the call.
 */
export function recordMessages(worker) {
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

/**
 * Threads of this process, and its descriptors of the kinds the bus opens: sockets, and the
 * epoll, eventfd and timerfd instances of its I/O threads (Linux: /proc). Files are left out: a
 * worker terminated while Node.js reads its modules can leave that file's descriptor open (seen
 * 1 run in 14: dist/esm/index.js, support.mjs, termination-rounds.mjs), a leak of Node.js's
 * module loader, not of the bus.
 */
export function processCounts() {
  let fds = 0;
  for (const what of openFds().values()) if (/^(socket|anon_inode):/.test(what)) fds++;
  return { threads: fs.readdirSync('/proc/self/task').length, fds };
}

/** Each open file descriptor of this process and what it is ('socket:[123]', a path...). */
function openFds() {
  const out = new Map();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed between the listing and the look (readdir's own descriptor among them)
    }
  }
  return out;
}

/**
 * processCounts() plus what is open: `processBaseline().describe()` later names the descriptors
 * opened since, for a failure message that says what leaked.
 */
export function processBaseline() {
  const counts = processCounts();
  const fds = openFds();
  return {
    counts,
    describe() {
      const now = openFds();
      const added = [...now]
        .filter(([fd, what]) => fds.get(fd) !== what && /^(socket|anon_inode):/.test(what))
        .map(([fd, what]) => `${fd} -> ${what}`);
      return added.length ? `; opened since the baseline: ${added.join(', ')}` : '';
    },
  };
}

/**
 * Resolves once `check()` returns nothing (the counts it compares have settled), or rejects with
 * what it last returned. Peers leave a hub when it reads their socket's end, a moment after the
 * worker is gone: there is no event to wait for in another process's hub, so this looks again
 * every few milliseconds, with a deadline.
 */
export async function settled(ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    const problem = check();
    if (!problem) return;
    if (Date.now() > end) throw new Error(`not back to baseline within ${ms} ms: ${problem}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function differences(now, base) {
  const out = [];
  for (const k of Object.keys(base)) if (now[k] !== base[k]) out.push(`${k} ${now[k]} (baseline ${base[k]})`);
  return out.join(', ');
}

// --- The doomed workers ---------------------------------------------------------------------------

/**
 * Drives `bus` to the points that clients and hubs share, then posts 'at-point' (`at`): its own
 * events go to `<prefix>:*`, its calls to the other side's `<other>:hang` and `<other>:blob`.
 */
export async function driveToPoint(bus, point, at, ticker, prefix, other) {
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
export function busyHandler(bus, topic, onEnter) {
  return () => {
    onEnter();
    const end = Date.now() + 50;
    while (Date.now() < end) bus.emit(topic, { t: Date.now() });
    return new Promise(() => {});
  };
}

// --- The hosts (forked processes) -----------------------------------------------------------------------

/**
 * Runs `rounds` rounds, `LANES` at a time; `round(i, point, rand)` resolves with a list of
 * failures (strings). Returns the failures and how many rounds ended at each point.
 */
export async function runRounds(rounds, seed, round) {
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
export async function terminateAtPoint(worker, messages, point, rand, what, justBefore = () => {}) {
  if (point === 'while-loading') {
    await jitter(Math.floor(rand() * 12)); // anywhere from before the import to the handshake
  } else {
    await deadline(10_000, `${what} to reach '${point}'`, messages.posted('at-point'));
    await jitter(Math.floor(rand() * 4));
  }
  justBefore();
  await worker.terminate();
}

/** The seed of this run: SWITCHBOARD_STRESS_SEED to replay one, else a fresh one. */
export function stressSeed() {
  return Number(process.env.SWITCHBOARD_STRESS_SEED) || randomBytes(4).readUInt32LE(0) >>> 1;
}

/**
 * Forks `file` in `hostRole` with `seed`, waits for its `{ type: 'done' }` result and its exit,
 * and checks that it died of nothing: exit code 0, no crash report on stderr. `children` gets the
 * child (for killLeftovers).
 */
export async function hostRounds(file, hostRole, seed, ms, children) {
  const child = forkRole(file, hostRole, {}, [String(seed)], { capture: true });
  children.push(child);
  const done = messageFrom(child, (m) => m.type === 'done');
  const exit = await deadline(ms, `${hostRole} to finish`, exitCode(child));
  const { stderr } = outputOf(child);
  assert.deepEqual(exit, { code: 0, signal: null }, `${hostRole} died (seed ${seed}):\n${stderr}`);
  assert.doesNotMatch(stderr, FATAL, `${hostRole} printed a crash report (seed ${seed})`);
  return done;
}

/** The line a host's result is reported with. */
export function roundsLine(seed, result, started) {
  return `# seed ${seed}${sanitized ? ' (sanitizer lane: fewer rounds)' : ''}: ${ROUNDS} rounds + ${POINTS.length} warm-up in ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s; per point ${JSON.stringify(result.counts)}`;
}
