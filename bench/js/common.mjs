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
  return emitInChunks(n, CHUNK, makeEvent, emit, flowControl);
}

// `n` messages made by `make(i)`, `chunk` per macrotask, waiting on flowControl() between chunks.
function emitInChunks(n, chunk, make, emit, flowControl) {
  return new Promise((resolve) => {
    let i = 0;
    const step = () => {
      const end = Math.min(n, i + chunk);
      for (; i < end; i++) emit(make(i));
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
      at: String(now()),
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

// --- The suite's other scenarios (bench/js/run.mjs) ----------------------------------------------

/** S4: the topic and size of a bulk message; its first 4 bytes carry the id, its last a check byte. */
export const BULK_TOPIC = 'bulk';
export const BULK_SIZE = 1 << 20;
/** Bulk messages per macrotask turn (1 MiB each). */
export const BULK_CHUNK = 4;

/** One fresh 1 MiB payload per message, as an application hands over new data each time. */
export function makeBulk(id) {
  const p = new Uint8Array(BULK_SIZE);
  p[0] = id >>> 24;
  p[1] = (id >>> 16) & 255;
  p[2] = (id >>> 8) & 255;
  p[3] = id & 255;
  p[BULK_SIZE - 1] = 0xab;
  return p;
}

/** S4 receiver: the same counters as Receiver, over bulk payloads. */
export class BulkReceiver extends Receiver {
  receive(p) {
    const ok = p instanceof Uint8Array && p.length === BULK_SIZE && p[BULK_SIZE - 1] === 0xab;
    const id = ok ? ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0 : -1;
    super.receive({ id, name: ok ? 'progress' : 'bad', note: 'hello world', values: [1, 2, 3], ok: true });
  }
}

/** S4 sender loop: like emitAll, BULK_CHUNK messages per turn. */
export function emitBulk(n, emit, flowControl) {
  return emitInChunks(n, BULK_CHUNK, makeBulk, emit, flowControl);
}

/** S3: `n` invokes with `window` in flight; returns calls/s and the wrong results. */
export async function invokeWindow(n, window, warmup, call) {
  for (let i = 0; i < warmup; i++) {
    const r = await call(i);
    if (r?.n !== i + 1) throw new Error(`warm-up call ${i}: wrong result ${JSON.stringify(r)}`);
  }
  let next = 0;
  let wrong = 0;
  const t0 = now();
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const r = await call(i);
      if (r?.n !== i + 1) wrong++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
  const totalUs = Number(now() - t0) / 1000;
  return { wrong, totalUs, callsPerSec: (n * 1e6) / totalUs };
}

/**
 * S5b: keeps this thread busy `onMs`, idle `offMs`, until stop() (seen in an idle slice), so
 * whatever the process relays in JavaScript only moves in the idle slices.
 */
export function busyCycle(onMs = 2000, offMs = 100) {
  let stopped = false;
  let busyMs = 0;
  const cycle = () => {
    if (stopped) return;
    const end = performance.now() + onMs;
    while (performance.now() < end) {
      // spin: the JavaScript thread is taken, as by a long synchronous task in Electron's main
    }
    busyMs += onMs;
    setTimeout(cycle, offMs);
  };
  setImmediate(cycle);
  return {
    stop() {
      stopped = true;
      return busyMs;
    },
  };
}

/** Parses BENCH_INFO, the server's connection details handed to every client. */
export const benchInfo = () => JSON.parse(process.env.BENCH_INFO ?? '{}');

/**
 * One role of one scenario, the same for every contender. `transport` gives:
 *   serve(): in A. Resolves with { info, emit, invoke, flow?, stats?, control? }; relays between
 *     clients; `control` adds handlers for the orchestrator's messages (fork: spawn, to).
 *   join(info): in B and C. Resolves with { on(topic, fn), handle(name, fn), emit, flow?, stats? },
 *     where on/handle resolve once the subscription or handler is in place at the server.
 * Roles: 'a' (the server, hub or JS relay: sender in S1/S4/S6, caller in S2/S3, relay in S5),
 * 'b' (receiver or handler; eight of them in S6), 'c' (S5's sender, a client of A).
 */
export async function runRole(role, scenario, n, transport) {
  const events = scenario !== 's2' && scenario !== 's3';
  const topic = scenario === 's4' ? BULK_TOPIC : TOPIC;
  if (role === 'a') {
    const srv = await transport.serve();
    send({ type: 'ready', info: srv.info });
    let busy = null;
    control({
      ...srv.control,
      go: async (msg) => {
        if (scenario === 's2') {
          const { us, wrong, totalUs } = await invokeAll(n, msg.warmup, (i) => srv.invoke(METHOD, { n: i }));
          send({ type: 'done', ...percentiles(us), wrong, totalUs, maxRSS: maxRssKiB() });
        } else if (scenario === 's3') {
          const r = await invokeWindow(n, 64, msg.warmup, (i) => srv.invoke(METHOD, { n: i }));
          send({ type: 'done', ...r, maxRSS: maxRssKiB() });
        } else {
          const t0 = now();
          send({ type: 'started', t0: String(t0) });
          const tEnd = scenario === 's4' ? await emitBulk(n, (p) => srv.emit(topic, p), srv.flow) : await emitAll(n, (ev) => srv.emit(topic, ev), srv.flow);
          send({ type: 'sent', t0: String(t0), tEnd: String(tEnd) });
        }
      },
      busy: () => {
        send({ type: 'busy' });
        busy = busyCycle();
      },
      stop: () => send({ type: 'stop', busyMs: busy?.stop() ?? 0 }),
      report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: srv.stats?.() }),
    });
  } else if (role === 'b') {
    const cl = await transport.join(benchInfo());
    let receiver = null;
    if (events) {
      const R = scenario === 's4' ? BulkReceiver : Receiver;
      receiver = new R(n, (rep) => send({ type: 'done', ...rep, maxRSS: maxRssKiB() }));
      await cl.on(topic, (ev) => receiver.receive(ev));
    } else {
      await cl.handle(METHOD, (req) => ({ n: req.n + 1 }));
    }
    send({ type: 'ready' });
    control({ report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: cl.stats?.(), ...receiver?.report() }) });
  } else if (role === 'c') {
    const cl = await transport.join(benchInfo());
    send({ type: 'ready' });
    control({
      go: async () => {
        const t0 = now();
        send({ type: 'started', t0: String(t0) });
        const tEnd = await emitAll(n, (ev) => cl.emit(topic, ev), cl.flow);
        send({ type: 'sent', t0: String(t0), tEnd: String(tEnd) });
      },
      report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: cl.stats?.() }),
    });
  } else {
    throw new Error(`unknown role ${role}`);
  }
}
