// Shared by every bench/js role: the payloads, the control channel to the orchestrator, the
// chunked emit loop and the receive-side counters. Each contender's process runs the same code
// around its own transport, so the figures differ only by the transport and codec.

export const TOPIC = 'progress';
export const METHOD = 'inc';
/** Events per macrotask turn in S1 (then setImmediate, so the event loop breathes). */
export const CHUNK = 1000;

/** The S1 event; every contender builds it the same way, inside the timed loop. */
export function makeEvent(id) {
  return { id, ts: Date.now(), name: 'progress', values: [1, 2, 3], ok: true, note: 'hello world' };
}

/** Messages from the orchestrator (fork IPC; control only, never on the measured path). */
export function control(handlers) {
  process.on('message', async (msg) => {
    const fn = handlers[msg.type];
    if (!fn) return;
    try {
      await fn(msg);
    } catch (err) {
      send({ type: 'error', message: String(err?.stack ?? err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

export function send(msg) {
  // Every report carries this process's CPU time (all threads) and context switches so far.
  if (msg.type === 'report') {
    const u = process.resourceUsage();
    msg.cpuUs = u.userCPUTime + u.systemCPUTime;
    msg.ctxSwitches = u.voluntaryContextSwitches + u.involuntaryContextSwitches;
  }
  process.send?.(msg);
}

export const now = () => process.hrtime.bigint();
export const maxRssKiB = () => process.resourceUsage().maxRSS;

/**
 * S1 sender loop: `n` events in chunks of CHUNK per macrotask. `emit(ev)` queues one event;
 * `flowControl()` may return a promise to wait on (a full socket) before the next chunk.
 * Resolves with the hrtime at which the last event was handed over.
 */
export function emitAll(n, emit, flowControl) {
  return new Promise((resolve) => {
    let i = 0;
    const step = () => {
      const end = Math.min(n, i + CHUNK);
      for (; i < end; i++) emit(makeEvent(i));
      if (i >= n) {
        setImmediate(() => resolve(now()));
        return;
      }
      const wait = flowControl?.();
      if (wait) wait.then(() => setImmediate(step));
      else setImmediate(step);
    };
    step();
  });
}

/**
 * S1 receiver: counts events, checks order and content, and counts JavaScript-side batches (one
 * microtask checkpoint per delivered batch: every delivery runs its listeners synchronously and
 * microtasks run after it returns).
 */
export class Receiver {
  constructor(n, onDone) {
    this.n = n;
    this.onDone = onDone;
    this.count = 0;
    this.first = 0n;
    this.last = 0n;
    this.batches = 0;
    this.outOfOrder = 0;
    this.bad = 0;
    this.expect = 0;
    this.batchOpen = false;
    this.closeBatch = () => {
      this.batchOpen = false;
    };
  }
  receive(ev) {
    const t = now();
    if (this.count === 0) this.first = t;
    this.last = t;
    if (!this.batchOpen) {
      this.batchOpen = true;
      this.batches++;
      queueMicrotask(this.closeBatch);
    }
    if (ev.id !== this.expect) this.outOfOrder++;
    this.expect = ev.id + 1;
    if (ev.name !== 'progress' || ev.note !== 'hello world' || ev.values?.[2] !== 3 || ev.ok !== true) this.bad++;
    if (++this.count === this.n) this.onDone(this.report());
  }
  report() {
    return {
      count: this.count,
      first: String(this.first),
      last: String(this.last),
      batches: this.batches,
      outOfOrder: this.outOfOrder,
      bad: this.bad,
    };
  }
}

/** S2 caller loop: `warmup` untimed calls, then `n` timed ones; returns per-call µs. */
export async function invokeAll(n, warmup, call) {
  for (let i = 0; i < warmup; i++) {
    const r = await call(i);
    if (r?.n !== i + 1) throw new Error(`warm-up call ${i}: wrong result ${JSON.stringify(r)}`);
  }
  const us = new Float64Array(n);
  let wrong = 0;
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const s = now();
    const r = await call(i);
    us[i] = Number(now() - s) / 1000;
    if (r?.n !== i + 1) wrong++;
  }
  const total = Number(now() - t0) / 1000;
  return { us, wrong, totalUs: total };
}

export function percentiles(us) {
  const s = Float64Array.from(us).sort();
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  let sum = 0;
  for (const v of s) sum += v;
  return { p50: at(50), p90: at(90), p99: at(99), max: s[s.length - 1], mean: sum / s.length };
}
