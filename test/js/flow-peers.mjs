// What the flow-control tests (issue 11; DESIGN.md, "Promises": a live subscriber loses nothing,
// and a publisher can wait for the bus) share. Not a test file itself.
//
// Every process or thread in these tests runs one role, 'peer', configured by the test: it may
// publish (one feed: numbered events on one topic, honouring emit() === false through
// `await bus.drained()` or the 'drain' event, or ignoring it), subscribe (count what arrives per
// sender, in order, and check each event's bytes), serve a handler that publishes, and echo what
// it receives. It talks to the test over its IPC channel (a forked process) or its parentPort (a
// worker thread), never over the bus: the bus is what is under test, and a publisher's own
// events wait behind its paused feed.
//
// Payloads: a bulk event is `{ seq, bytes }`, where `bytes` is `chunk(seq, size)`: a fixed 64 KiB
// pseudo-random tile repeated, each 4 KiB page stamped with the event's number and the page's, so
// a shifted, stale, foreign or truncated page shows when the receiver compares it with the bytes
// it rebuilds. A small event is its number alone.
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BufferFullError, ClosedError, EventBus } from '../../dist/esm/index.js';
import { checkClosed, forkRole, guardAgainstOrphaning, messageFrom, messagesFrom, startWorker } from './support.mjs';

export const MiB = 1 << 20;
export const KiB = 1 << 10;

// Under ASan everything costs 3-5 times as much: the sanitizer lane sends fewer events (the
// tests say so in their output); the promises checked are the same.
export const sanitized = Boolean(process.env.SWITCHBOARD_SANITIZER);

/** `n`, or `n / divisor` (at least `min`) under a sanitizer. */
export function scaled(n, divisor = 4, min = 1) {
  return sanitized ? Math.max(min, Math.round(n / divisor)) : n;
}

/** Milliseconds on a clock that every process of this machine shares. */
export function wall() {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- Payloads -------------------------------------------------------------------------------------------

const TILE = (() => {
  const tile = new Uint8Array(64 * KiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < tile.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    tile[i] = x >>> 24;
  }
  return tile;
})();

/** The `size` bytes of bulk event `seq` (see the top of this file). */
export function chunk(seq, size) {
  const p = new Uint8Array(size);
  for (let at = 0; at < size; at += TILE.length) p.set(TILE.subarray(0, Math.min(TILE.length, size - at)), at);
  const view = new DataView(p.buffer);
  for (let page = 0; page * 4096 + 8 <= size; page++) {
    view.setUint32(page * 4096, seq);
    view.setUint32(page * 4096 + 4, page);
  }
  return p;
}

function sameBytes(got, want) {
  if (!(got instanceof Uint8Array) || got.length !== want.length) return false;
  return Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want);
}

/**
 * What one receiver saw from one sender: how many events, whether any came back in time
 * (`backwards`) or skipped numbers (`gaps`), how many had wrong bytes, and the longest silence
 * between two events.
 */
export class Feed {
  received = 0;
  backwards = 0;
  gaps = 0;
  firstGap = -1;
  corrupt = 0;
  firstCorrupt = -1;
  last = -1;
  firstAt = 0;
  lastAt = 0;
  maxGapMs = 0;
  maxGapAt = 0;

  take(seq, bytes, size) {
    const now = wall();
    if (this.received === 0) this.firstAt = now;
    else if (now - this.lastAt > this.maxGapMs) {
      this.maxGapMs = now - this.lastAt;
      this.maxGapAt = this.lastAt;
    }
    this.lastAt = now;
    if (seq <= this.last) this.backwards++;
    else if (seq !== this.last + 1) {
      this.gaps++;
      if (this.firstGap === -1) this.firstGap = this.last + 1;
    }
    this.last = Math.max(this.last, seq);
    this.received++;
    if (size !== undefined && !sameBytes(bytes, chunk(seq, size))) {
      this.corrupt++;
      if (this.firstCorrupt === -1) this.firstCorrupt = seq;
    }
  }

  summary() {
    const { received, backwards, gaps, firstGap, corrupt, firstCorrupt, last, firstAt, lastAt, maxGapMs, maxGapAt } = this;
    return { received, backwards, gaps, firstGap, corrupt, firstCorrupt, last, firstAt, lastAt, maxGapMs, maxGapAt };
  }
}

function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** The topic that ends a feed on `topic` ('x:end'; for a pattern 'x:*', 'x:end'). */
export function endOf(topic) {
  return topic.endsWith('*') ? `${topic.slice(0, -1)}end` : `${topic}:end`;
}

// --- Publishing ---------------------------------------------------------------------------------------

/** The next 'drain' of `bus`. */
export function drainEvent(bus) {
  return new Promise((resolve) => {
    const off = bus.on('drain', () => {
      off();
      resolve();
    });
  });
}

function describeError(err) {
  return {
    name: err?.name,
    code: err?.code,
    message: String(err?.message),
    bufferFull: err instanceof BufferFullError,
    closedError: err instanceof ClosedError,
  };
}

/**
 * Publishes one feed: `count` events on `topic` (bulk events of `size` bytes, or small ones when
 * `size` is 0), then `<topic>:end` with what was sent. `mode` says what it does when emit()
 * returns false: 'drained' awaits bus.drained(), 'drain' awaits the 'drain' event, 'ignore' goes
 * on. With `yieldEvery` it lets the event loop turn after that many emits (as a sender that
 * produces over time would); without it a sender ignoring false emits everything in one turn.
 * With `progress`, `report` gets `{ type: 'waiting' }` when it starts to wait and
 * `{ type: 'resumed' }` when it goes on. An emit that throws is reported at once
 * (`{ type: 'threw' }`) and ends the feed: the result says which event and why (the event that
 * threw was not sent); with `retry`, a BufferFullError is waited out instead (drained()) and the
 * same event sent again.
 */
export async function publish(bus, feed, report = () => {}) {
  const { topic, count, size = 0, mode = 'drained', yieldEvery = 0, progress = false, retry = false } = feed;
  let falses = 0;
  let retries = 0;
  let drains = 0;
  let maxOutbound = 0;
  const offDrain = bus.on('drain', () => drains++);
  const t0 = performance.now();
  let sent = count;
  let error;
  for (let seq = 0; seq < count; seq++) {
    const data = size > 0 ? { seq, bytes: chunk(seq, size) } : seq;
    let ok;
    try {
      ok = bus.emit(topic, data);
    } catch (err) {
      const why = describeError(err);
      report({ type: 'threw', seq, error: why, outbound: bus.stats().outbound, at: wall() });
      if (retry && why.bufferFull) {
        // The caller was told that this event was not taken: it waits and sends it again.
        retries++;
        await bus.drained();
        seq--;
        continue;
      }
      sent = seq;
      error = why;
      break;
    }
    if (ok === false) {
      falses++;
      maxOutbound = Math.max(maxOutbound, bus.stats().outbound);
      if (mode !== 'ignore') {
        if (progress) report({ type: 'waiting', seq, at: wall(), outbound: bus.stats().outbound });
        try {
          if (mode === 'drained') await bus.drained();
          else await drainEvent(bus);
        } catch (err) {
          // drained() rejects when the bus closes under it: the feed ends there (the event that
          // returned false was taken; nothing more is sent, not even the end).
          offDrain();
          return { sent: seq + 1, error: null, waitError: describeError(err), falses, drains, retries, maxOutbound, ms: performance.now() - t0 };
        }
        if (progress) report({ type: 'resumed', seq, at: wall() });
      }
    } else if (ok !== true) {
      throw new Error(`emit() returned ${String(ok)}, not a boolean`);
    }
    if (yieldEvery > 0 && (seq + 1) % yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  // Whatever happened, what was sent is followed by the end of the feed (after a full buffer
  // has drained, so that this one emit is taken).
  await bus.drained();
  bus.emit(endOf(topic), { sent, error: error ?? null });
  await bus.drained();
  const ms = performance.now() - t0;
  offDrain();
  return { sent, error: error ?? null, falses, drains, retries, maxOutbound, ms };
}

// --- The peer role ------------------------------------------------------------------------------------

/**
 * What a peer does, as the test configures it (all parts optional):
 * @typedef {{
 *   name: string,
 *   options?: Record<string, unknown>,
 *   sub?: { topic: string, size?: number, busyMs?: number, spinMs?: number },
 *   pub?: { topic: string, count: number, size?: number, mode?: string, yieldEvery?: number, progress?: boolean, retry?: boolean },
 *   echo?: { topic: string },
 *   serve?: { name: string },
 *   answer?: { name: string, hold?: boolean },
 * }} PeerConfig
 */

function toParent(msg) {
  if (isMainThread) process.send?.(msg);
  else parentPort?.postMessage(msg);
}

function fromParent(fn) {
  if (isMainThread) process.on('message', fn);
  else parentPort?.on('message', fn);
}

/** The role 'peer' (a forked process: its config is argv[3]; a worker: workerData.cfg). */
export async function runPeer() {
  guardAgainstOrphaning();
  /** @type {PeerConfig} */
  const cfg = isMainThread ? JSON.parse(process.argv[3]) : workerData.cfg;
  const bus = new EventBus({ name: cfg.name, ...(cfg.options ?? {}) });
  await bus.ready();

  /** @type {Map<string, Feed>} */
  const feeds = new Map();
  const feedOf = (name) => {
    let f = feeds.get(name);
    if (!f) feeds.set(name, (f = new Feed()));
    return f;
  };
  const snapshot = () => Object.fromEntries([...feeds].map(([k, f]) => [k, f.summary()]));

  if (cfg.sub) {
    const { topic, size, busyMs = 0, spinMs = 0 } = cfg.sub;
    let busy = busyMs > 0;
    // An echo is sent by a pump that honours false; a listener cannot wait.
    const echoQueue = [];
    let pumping = false;
    const pump = async () => {
      pumping = true;
      while (echoQueue.length > 0) {
        if (!bus.emit(cfg.echo.topic, echoQueue.shift())) await bus.drained();
      }
      pumping = false;
    };
    bus.on(topic, (data, ctx) => {
      if (busy) {
        // A JavaScript thread that is busy (here once, for busyMs) reads nothing meanwhile.
        busy = false;
        toParent({ type: 'busy', at: wall() });
        spin(busyMs);
        toParent({ type: 'idle', at: wall() });
      }
      if (spinMs > 0) spin(spinMs);
      const small = typeof data === 'number';
      feedOf(ctx.sender.name).take(small ? data : data.seq, small ? undefined : data.bytes, small ? undefined : size);
      if (cfg.echo) {
        echoQueue.push(data);
        if (!pumping) void pump();
      }
    });
    // The end of a feed: reported, and counting for that sender starts again (a publisher may
    // send its feed more than once).
    bus.on(endOf(topic), (data, ctx) => {
      toParent({ type: 'report', from: ctx.sender.name, end: data, feed: feedOf(ctx.sender.name).summary(), dropped: bus.stats().dropped, at: wall() });
      feeds.delete(ctx.sender.name);
    });
  }
  bus.on('dropped', (info) => toParent({ type: 'dropped', info, statsDropped: bus.stats().dropped, feeds: snapshot(), at: wall() }));
  bus.on('connection', (e) => toParent({ type: 'connection', state: e.state, code: e.code, message: e.message, at: wall() }));

  if (cfg.serve) {
    // A handler that publishes a feed of its own before it answers.
    bus.handle(cfg.serve.name, async (feed) => publish(bus, feed));
  }
  // Calls held until the test sends 'release' (answer.hold).
  const holding = [];
  if (cfg.answer) {
    // A handler that answers with what it was sent, and when; with `hold`, only on 'release'.
    bus.handle(cfg.answer.name, (req) => {
      if (!cfg.answer.hold) return { req, at: wall() };
      return new Promise((resolve) => {
        holding.push(() => resolve({ req, at: wall() }));
        toParent({ type: 'holding', count: holding.length });
      });
    });
  }

  const runPub = async (extra = {}) => {
    const result = await publish(bus, { ...cfg.pub, ...extra }, toParent);
    toParent({ type: 'done', ...result, outbound: bus.stats().outbound });
  };

  fromParent(async (msg) => {
    try {
      if (msg.type === 'go') await runPub(msg.feed);
      else if (msg.type === 'emit') {
        bus.emit(msg.topic, msg.data);
        await bus.drained();
        toParent({ type: 'emitted', topic: msg.topic });
      } else if (msg.type === 'invoke') {
        const result = await bus.invoke(msg.name, msg.req, { timeout: 0 });
        toParent({ type: 'invoked', result });
      } else if (msg.type === 'calls') {
        // `count` invokes of `name` at once, each with bulk event `seq`'s bytes; the handler
        // answers with what it got, which is checked here.
        const calls = [];
        for (let seq = 0; seq < msg.count; seq++) {
          calls.push(
            bus.invoke(msg.name, { seq, bytes: chunk(seq, msg.size) }, { timeout: 0 }).then(
              (answer) => (answer.req.seq === seq && sameBytes(answer.req.bytes, chunk(seq, msg.size)) ? 'ok' : 'wrong answer'),
              (err) => `${err?.name}: ${err?.message}`,
            ),
          );
        }
        toParent({ type: 'calling', count: msg.count, outbound: bus.stats().outbound });
        const outcomes = await Promise.all(calls);
        const ok = outcomes.filter((o) => o === 'ok').length;
        toParent({ type: 'called', ok, failures: outcomes.filter((o) => o !== 'ok').slice(0, 5) });
      } else if (msg.type === 'release') {
        const n = holding.length;
        for (const answer of holding.splice(0)) answer();
        await bus.drained();
        toParent({ type: 'released', count: n });
      } else if (msg.type === 'feeds') {
        toParent({ type: 'feeds', feeds: snapshot(), dropped: bus.stats().dropped });
      } else if (msg.type === 'close') {
        // Closes the bus, whatever is waiting on it (a publisher's drained(), for one).
        await bus.close();
        toParent({ type: 'bus-closed' });
      } else if (msg.type === 'quit') {
        await bus.close();
        checkClosed(bus, cfg.name);
        const last = { type: 'closed', feeds: snapshot() };
        // The last message, then the channel closes so that the role can exit by itself.
        if (isMainThread) process.send?.(last, () => process.disconnect?.());
        else {
          parentPort?.postMessage(last);
          parentPort?.close();
        }
      }
    } catch (err) {
      toParent({ type: 'failed', during: msg.type, error: describeError(err), stack: err?.stack });
    }
  });
  // Over the bus as well: the hub reads this after the subscriptions above (one connection, in
  // order), so when the test has it they are in force. The IPC message alone could come first.
  bus.emit('peer:ready', { name: cfg.name });
  toParent({ type: 'ready', pid: process.pid, peerId: bus.stats().peerId });
}

// --- The test's side ------------------------------------------------------------------------------------

/**
 * One peer as the test sees it: `log` (every message it sent, live), `next(pred)` (the first
 * message, before or after the call, that matches), `send(msg)`, `pid`, and `child` or `worker`.
 */
class PeerHandle {
  constructor(name, child, worker) {
    this.name = name;
    this.child = child;
    this.worker = worker;
    if (worker) {
      this.log = [];
      this.waiters = [];
      worker.on('message', (msg) => {
        this.log.push(msg);
        for (const w of [...this.waiters]) {
          if (w.pred(msg)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(msg);
          }
        }
      });
    } else {
      this.log = messagesFrom(child);
    }
  }

  next(pred) {
    if (this.child) return messageFrom(this.child, pred);
    const seen = this.log.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /**
   * The first message of `type` (and matching `pred`) from now on or already sent; rejects if
   * the peer reports instead that a request failed (with that error).
   */
  message(type, pred = () => true) {
    return this.#orFailure(this.next((m) => m.type === type && pred(m)));
  }

  /** The first message of `type` sent after the `from`-th message (or a failure, as above). */
  after(from, type, pred = () => true) {
    return this.#orFailure(this.next((m) => m.type === type && this.log.indexOf(m) >= from && pred(m)));
  }

  #orFailure(promise) {
    const failed = this.next((m) => m.type === 'failed').then((m) => {
      throw new Error(`${this.name}: '${m.during}' failed: ${m.error.name}: ${m.error.message}\n${m.stack}`);
    });
    return Promise.race([promise, failed]);
  }

  send(msg) {
    if (this.child) this.child.send(msg);
    else this.worker.postMessage(msg);
  }

  get pid() {
    return this.child?.pid;
  }

  stop() {
    process.kill(this.child.pid, 'SIGSTOP');
  }

  cont() {
    process.kill(this.child.pid, 'SIGCONT');
  }
}

/** Forks `file` as a peer with `cfg` (see PeerConfig), joined to `hub`. Resolves once it is ready. */
export async function forkPeer(file, hub, cfg) {
  const onBus = readyOnBus(hub, cfg.name);
  const child = forkRole(file, 'peer', hub.childEnv(), [JSON.stringify(cfg)]);
  const peer = new PeerHandle(cfg.name, child, undefined);
  await withDeadline(15_000, `${cfg.name} ready`, Promise.all([peer.message('ready'), onBus]));
  return peer;
}

/** Starts `file` as a peer in a worker thread of this process, whose bus `hub` is. */
export async function workerPeer(file, hub, cfg) {
  const onBus = readyOnBus(hub, cfg.name);
  const worker = startWorker(file, 'peer', { cfg });
  worker.on('error', (err) => console.error(`${cfg.name} (worker) error`, err));
  const peer = new PeerHandle(cfg.name, undefined, worker);
  await withDeadline(15_000, `${cfg.name} ready`, Promise.all([peer.message('ready'), onBus]));
  return peer;
}

/** The peer's 'peer:ready' at the hub: its subscriptions are in force from then on. */
function readyOnBus(hub, name) {
  return new Promise((resolve) => {
    const off = hub.on('peer:ready', (data) => {
      if (data.name !== name) return;
      off();
      resolve(data);
    });
  });
}

function withDeadline(ms, what, promise) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Asks a peer to close its bus; resolves with its 'closed' message. */
export function quit(peer) {
  const closed = peer.message('closed');
  peer.send({ type: 'quit' });
  return withDeadline(15_000, `${peer.name} closed`, closed);
}

/** SIGCONTs and SIGKILLs whatever is left of `peers` (for an after() hook). */
export function cleanUp(peers) {
  for (const p of peers) {
    if (!p) continue;
    if (p.child && p.child.exitCode === null && p.child.signalCode === null) {
      try {
        process.kill(p.child.pid, 'SIGCONT');
      } catch {
        // gone
      }
      p.child.kill('SIGKILL');
    }
    if (p.worker) void p.worker.terminate();
  }
}

/**
 * Resolves with `probe()`'s value once `pred` holds for it, looking every `every` ms; rejects
 * after `ms` with the last value seen. For a hub's stats, which no event announces.
 */
export async function until(ms, what, probe, pred, every = 10) {
  const end = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (pred(v)) return v;
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms; last ${JSON.stringify(v)}`);
    await sleep(every);
  }
}

/**
 * Resolves once a publisher's last progress message is 'waiting' and nothing more has come for
 * `quietMs`: it is held. Rejects after `ms`.
 */
export async function held(log, quietMs, what, ms = 15_000) {
  const end = performance.now() + ms;
  let seen = -1;
  let since = performance.now();
  for (;;) {
    if (log.length !== seen) {
      seen = log.length;
      since = performance.now();
    }
    const last = log.at(-1);
    if (last?.type === 'waiting' && performance.now() - since >= quietMs) return last;
    if (performance.now() > end) throw new Error(`${what}: not held within ${ms} ms; last ${JSON.stringify(last)}`);
    await sleep(20);
  }
}

/** The flow-control figures of a hub bus's stats(). */
export function flowOf(hub) {
  const h = hub.stats().hub;
  return {
    peers: h.peers,
    paused: h.paused,
    parkedBytes: h.parkedBytes,
    stalled: h.stalled,
    stalls: h.stalls,
    pauses: h.pauses,
    queuedBytes: h.queuedBytes,
    peakQueuedBytes: h.peakQueuedBytes,
    eventsDropped: h.eventsDropped,
  };
}

/** A hub's figures are back to rest: nobody paused, parked, stalled or queued for. */
export function atRest(f) {
  return f.paused === 0 && f.parkedBytes === 0 && f.stalled === 0 && f.queuedBytes === 0;
}

export { isMainThread };
