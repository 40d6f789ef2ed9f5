// The EventBus: the public API of DESIGN.md on top of one native port.
//
// Shape of the work:
// - Out: every emit, invoke, reply and (un)subscription of one JavaScript turn is written into one
//   ByteWriter as whole wire frames and handed to the port in one submit() at the end of the turn
//   (a microtask). Per-sender order is the order of the writes.
// - In: the port calls onFrames once per I/O batch with a buffer of whole frames; each frame is
//   dispatched here. Payloads are decoded lazily, once per frame, only if someone listens.
// - Invokes end exactly once: a reply, a remote error, a timeout, an abort, no handler, a lost
//   connection, or close(). `settle()` is the one place that ends them.
import { ByteWriter } from './bytes.js';
import { Deadlines, type DeadlineEntry, type DeadlineList } from './deadlines.js';
import { beginBatch, CodecError, DEFAULT_DECODE_LIMITS, type DecodeLimits, decode, encodeValue, endBatch } from './codec.js';
import type { ProcessKind } from './detect.js';
import {
  AbortError,
  BufferFullError,
  ClosedError,
  ConnectionLostError,
  InvalidArgumentError,
  NoEndpointError,
  NoHandlerError,
  OfflineQueueFullError,
  RemoteError,
  SwitchboardError,
  TimeoutError,
  ValidationError,
  errorFromCode,
  fromNative,
} from './errors.js';
import { checkSchema, validate, type StandardSchema } from './schema.js';
import { isPortLike, listen, MessagePortLink, type PortLike } from './message-port-link.js';
import type { NativeGrants, NativeHub, NativePort, NativePortState } from './native.js';
import { pid, platform } from './platform.js';
import { beginFrame, endFrame, Flag, Kind, readFrames, type Envelope } from './wire.js';
// The public types are declared once, in types/index.d.ts.
import type { ConnectionState, EventBusOptions, PeerInfo } from '../types/index.js';

export const ENV_ENDPOINT = 'SWITCHBOARD_ENDPOINT';
export const ENV_TOKEN = 'SWITCHBOARD_TOKEN';
/**
 * The process's bus, for code that cannot be handed one: `getBus()` of switchboard-ipc/next
 * (Next.js's module layers and hot reloads each load their own copy of this package, so a
 * module variable would not do). The first hub of a process puts itself here and takes itself
 * away on close; getBus() puts its client here when there is no hub.
 */
export const PROCESS_BUS = Symbol.for('switchboard-ipc.bus');

type AnyListener = (data: any, ctx?: any) => void;
type Handler = (req: any, ctx: any) => unknown;

/** An invoke sent to another process and not yet ended; its own node in the deadline lists. */
class PendingInvoke implements DeadlineEntry {
  onAbort: (() => void) | undefined = undefined;
  deadline = 0;
  seq = 0;
  list: DeadlineList | undefined = undefined;
  prevDue: DeadlineEntry | undefined = undefined;
  nextDue: DeadlineEntry | undefined = undefined;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly timeout: number,
    readonly resolve: (value: any) => void,
    readonly reject: (error: unknown) => void,
    readonly signal: AbortSignal | undefined,
  ) {}
}

/**
 * A handler threw or rejected in another process. The pending invoke is rejected with this, and
 * `withCallSite` turns it into the RemoteError the caller sees (see there).
 */
class RemoteFailure {
  constructor(
    readonly remote: PeerInfo,
    readonly original: unknown,
    readonly name: string,
  ) {}
}

/**
 * Where was the failed invoke called? A stack captured in invoke() itself costs 3–6 µs per call
 * on this machine even at Error.stackTraceLimit = 1 (V8's capture, not the formatting), a third
 * of the caller's JavaScript time per call in S3, for the rare call that fails remotely. So it is
 * captured when the failure is known, in this rejection handler of the promise that invoke()
 * returns: V8's async stack traces then give the code that awaits the call (`at async <fn>`
 * frames, through await, .then chains and Promise.all/race), which costs nothing until used.
 * What it cannot show is a synchronous caller that nobody awaits (see docs/API.md, RemoteError).
 */
function withCallSite(failure: unknown): never {
  throw failure instanceof RemoteFailure ? remoteError(failure, withCallSite) : failure;
}

/** `below`: the library's own function that asks; it and the frames above it are left out. */
function remoteError(failure: RemoteFailure, below: Function): RemoteError {
  const site: { stack?: string } = {};
  Error.captureStackTrace(site, below);
  const o = failure.original as { [SCHEMA_MARK]?: unknown; name?: unknown; message?: unknown; issues?: unknown } | null;
  // Marked by the callee's schema check (handle()'s options), so that a user's own error class
  // that happens to be named ValidationError stays a RemoteError.
  if (o !== null && typeof o === 'object' && o[SCHEMA_MARK] === true && o.name === 'ValidationError') {
    // The callee's schema refused the request: the caller gets the same typed error.
    const issues = Array.isArray(o.issues)
      ? o.issues.map((i: any) => ({ message: String(i?.message ?? ''), path: String(i?.path ?? '') }))
      : [];
    const error = new ValidationError(String(o.message ?? ''), issues, failure.remote);
    error.stack = `ValidationError: ${error.message}\n    --- invoke('${failure.name}') in pid ${pid()} ---\n${(site.stack ?? '')
      .split('\n')
      .filter((l) => /^\s+at /.test(l))
      .join('\n')}`;
    return error as unknown as RemoteError;
  }
  return new RemoteError(failure.remote, failure.original, failure.name, site.stack);
}

type Listening = AnyListener & { original?: AnyListener };

/** The own property that marks a schema's ValidationError on its way to the caller. */
const SCHEMA_MARK = 'switchboardSchema';

function markSchema(err: unknown): never {
  if (err instanceof ValidationError) {
    Object.defineProperty(err, SCHEMA_MARK, { value: true, enumerable: true, configurable: true });
  }
  throw err;
}

/** Aborts a served call's signal (made now, or when the handler first reads it). */
let abortServed: (ctx: ServeContext, reason: unknown) => void;

/**
 * `ctx` of one served call. Its `signal` is made on first read: an AbortController per call was
 * the callee's largest cost in S3 (~5 µs, plus the garbage collector's share), and most
 * handlers never look at it. A call cancelled before anyone read the signal hands out one that
 * is already aborted, with the same reason.
 */
class ServeContext {
  #controller: AbortController | undefined = undefined;
  #aborted = false;
  #reason: unknown = undefined;
  constructor(
    readonly sender: PeerInfo,
    readonly name: string,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  static {
    abortServed = (ctx, reason) => {
      if (ctx.#aborted) return;
      ctx.#aborted = true;
      ctx.#reason = reason;
      ctx.#controller?.abort(reason);
    };
  }
}

/** A value that a promise would wait for (what `await` and Promise.resolve treat as a thenable). */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

const DEFAULT_TIMEOUT = 30_000;
const NO_OPTIONS = Object.freeze({});
const RESOLVED = Promise.resolve();
const DEFAULT_OFFLINE_FRAMES = 10_000;
// Bus events: listened to with on()/off() like topics, never sent as topics.
const RESERVED = new Set(['connection', 'error', 'drain', 'dropped']);
const DEFAULT_OUTBOUND_MARK = 8 * 1024 * 1024;
const DEFAULT_OUTBOUND_MAX = 64 * 1024 * 1024;
// attachPort(): how much of a page's traffic main acknowledges at once (docs/PROTOCOL.md 1.4).
const ACK_STEP = 256 * 1024;

/** What the hub told this bus it missed while it was stalled (the 'dropped' bus event). */
interface DroppedInfo {
  count: number;
  topics: Record<string, number>;
}

function checkName(what: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidArgumentError(`Expected the ${what} to be a non-empty string, got ${describe(name)}`);
  }
  const bytes = name.length > 341 ? utf8Length(name) : name.length * 3; // 3 bytes/unit at most
  if (bytes > 1024 && utf8Length(name) > 1024) {
    throw new InvalidArgumentError(
      `The ${what} '${name.slice(0, 40)}...' is ${utf8Length(name)} bytes in UTF-8; the limit is 1024`,
    );
  }
}

function checkTopic(topic: unknown, allowPattern: boolean): asserts topic is string {
  checkName('topic', topic);
  const star = topic.indexOf('*');
  if (star !== -1 && (!allowPattern || star !== topic.length - 1)) {
    throw new InvalidArgumentError(
      allowPattern
        ? `'*' may only end a pattern (as in 'job:*'), got '${topic}'`
        : `emit() takes a topic, not a pattern: '${topic}'`,
    );
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v}'`;
  return typeof v;
}

// The hub's limits that are plain positive integers (defaults in docs/SECURITY.md).
const HUB_LIMITS = [
  'handshakeTimeoutMs',
  'handshakeMaxFrame',
  'maxTopic',
  'maxSubscriptionsPerPeer',
  'maxHandlersPerPeer',
  'maxPendingInvokesPerPeer',
  'maxConnections',
  'maxHandshaking',
  'pingMisses',
  'lowWaterMark',
  'stallTimeoutMs',
] as const;

function checkPositive(name: string, v: unknown, allowZero = false): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0) || !Number.isInteger(v)) {
    throw new InvalidArgumentError(
      `Expected the "${name}" option to be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${describe(v)}`,
    );
  }
  return v;
}

/** attachPort()'s `allow`: four optional lists of names and 'prefix*' patterns. */
function checkAllow(allow: unknown): NativeGrants {
  if (allow === undefined) return {};
  if (allow === null || typeof allow !== 'object') {
    throw new InvalidArgumentError(`Expected "allow" to be an object such as { emit: ['job:*'] }, got ${describe(allow)}`);
  }
  const out: NativeGrants = {};
  for (const key of ['emit', 'subscribe', 'invoke', 'handle'] as const) {
    const list = (allow as Record<string, unknown>)[key];
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every((n) => typeof n === 'string' && n.length > 0)) {
      throw new InvalidArgumentError(`Expected "allow.${key}" to be an array of names or 'prefix*' patterns`);
    }
    out[key] = [...list];
  }
  for (const key of Object.keys(allow)) {
    if (!['emit', 'subscribe', 'invoke', 'handle'].includes(key)) {
      throw new InvalidArgumentError(`Unknown grant "allow.${key}": grants are emit, subscribe, invoke and handle`);
    }
  }
  return out;
}

/** UTF-8 length of a string, without Node's Buffer (the page build has none). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** A copy of raw payload bytes: a Buffer in Node.js, as before; a Uint8Array in a page. */
function copyBytes(bytes: Uint8Array): Uint8Array {
  const B = (globalThis as { Buffer?: { from(b: Uint8Array): Uint8Array } }).Buffer;
  return B ? B.from(bytes) : bytes.slice();
}

function matches(pattern: string, topic: string): boolean {
  return pattern.endsWith('*') ? topic.startsWith(pattern.slice(0, -1)) : pattern === topic;
}

export class EventBus {
  readonly name: string;
  readonly role: 'hub' | 'client';

  #hub: NativeHub | undefined;
  #port: NativePort;
  #state: ConnectionState = 'connecting';
  #closed = false;
  #endpoint: string;
  #token: string;
  #timeout: number;
  // Limits for decoding what other processes send (payloads, errors, peer info).
  #decodeLimits: DecodeLimits = DEFAULT_DECODE_LIMITS;
  #offlineMax: number;
  #offlineMaxBytes: number;
  #offlineCount = 0;
  #offlineBytes = 0;
  #kind: ProcessKind;

  #writer = new ByteWriter(16 * 1024);
  #flushScheduled = false;
  #localEvents: Array<{ topic: string; start: number; end: number }> = [];

  #listeners = new Map<string, Set<AnyListener>>();
  #patterns = new Map<string, Set<AnyListener>>();
  #connectionListeners = new Set<(ev: any) => void>();
  #errorListeners = new Set<(err: Error) => void>();
  #drainListeners = new Set<() => void>();
  #droppedListeners = new Set<(info: DroppedInfo) => void>();

  // Flow control (docs/API.md, "Flow control"). #outbound is what the port held unsent when last
  // asked (every submit answers it); this turn's frames in #writer come on top.
  #outboundMark: number;
  #outboundMax: number;
  #outbound = 0;
  #needDrain = false; // emit() said false; 'drain' is owed
  #drainNotified = false; // the port was asked to tell when it drains
  #drainWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  #dropped = 0;
  // Ports attached by attachPort(), each with the function that detaches it.
  #attached = new Set<() => void>();
  #handlers = new Map<string, Handler>();
  // Served calls whose handler has not answered yet (it returned a promise); a handler that
  // answers synchronously is never entered here, but close() from inside it still aborts its
  // signal through #servingNow.
  #serving = new Map<number, ServeContext>();
  #servingNow: ServeContext | undefined;
  #pending = new Map<number, PendingInvoke>();
  #deadlines = new Deadlines<PendingInvoke>((p) => {
    this.#cancel(p.id);
    this.#settle(p.id, undefined, new TimeoutError(`invoke('${p.name}') got no reply within ${p.timeout} ms`));
  });
  #localCalls = new Set<{ fail: (err: unknown) => void; controller: AbortController }>();
  #nextId = 1;
  #peers = new Map<number, PeerInfo>();
  #self: PeerInfo;
  #readyWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  #reffed = false;
  #stats = { emitted: 0, received: 0, sent: 0, served: 0 };

  constructor(options: EventBusOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError(`Expected the options to be an object, got ${describe(options)}`);
    }
    const role = options.role ?? 'auto';
    if (role !== 'auto' && role !== 'hub' && role !== 'client') {
      throw new InvalidArgumentError(`Expected the "role" option to be 'auto', 'hub' or 'client', got ${describe(role)}`);
    }
    if (options.name !== undefined) checkName('"name" option', options.name);
    if (options.overflow !== undefined && options.overflow !== 'drop' && options.overflow !== 'disconnect') {
      throw new InvalidArgumentError(`Expected the "overflow" option to be 'drop' or 'disconnect', got ${describe(options.overflow)}`);
    }
    this.#timeout = checkPositive('timeout', options.timeout, true) ?? DEFAULT_TIMEOUT;
    this.#offlineMax = checkPositive('offlineQueue.maxFrames', options.offlineQueue?.maxFrames) ?? DEFAULT_OFFLINE_FRAMES;
    this.#offlineMaxBytes = checkPositive('offlineQueue.maxBytes', options.offlineQueue?.maxBytes) ?? 8 * 1024 * 1024;
    checkPositive('reconnect.initialMs', options.reconnect?.initialMs);
    checkPositive('reconnect.maxMs', options.reconnect?.maxMs);
    checkPositive('reconnect.maxAttempts', options.reconnect?.maxAttempts, true);
    checkPositive('maxFrame', options.maxFrame);
    checkPositive('highWaterMark', options.highWaterMark);
    if (options.outbound !== undefined && (options.outbound === null || typeof options.outbound !== 'object')) {
      throw new InvalidArgumentError(`Expected the "outbound" option to be an object, got ${describe(options.outbound)}`);
    }
    this.#outboundMark = checkPositive('outbound.highWaterMark', options.outbound?.highWaterMark) ?? DEFAULT_OUTBOUND_MARK;
    this.#outboundMax = checkPositive('outbound.maxBytes', options.outbound?.maxBytes) ?? Math.max(DEFAULT_OUTBOUND_MAX, this.#outboundMark);
    if (this.#outboundMax < this.#outboundMark) {
      throw new InvalidArgumentError(
        `"outbound.maxBytes" (${this.#outboundMax}) must be at least "outbound.highWaterMark" (${this.#outboundMark})`,
      );
    }
    for (const name of HUB_LIMITS) checkPositive(name, options[name]);
    if (options.lowWaterMark !== undefined && options.lowWaterMark > (options.highWaterMark ?? DEFAULT_OUTBOUND_MARK)) {
      throw new InvalidArgumentError(
        `"lowWaterMark" (${options.lowWaterMark}) must not exceed "highWaterMark" (${options.highWaterMark ?? DEFAULT_OUTBOUND_MARK})`,
      );
    }
    checkPositive('pingIntervalMs', options.pingIntervalMs, true);
    if (options.decodeLimits !== undefined) {
      if (options.decodeLimits === null || typeof options.decodeLimits !== 'object') {
        throw new InvalidArgumentError(`Expected the "decodeLimits" option to be an object, got ${describe(options.decodeLimits)}`);
      }
      this.#decodeLimits = Object.freeze({
        maxDepth: checkPositive('decodeLimits.maxDepth', options.decodeLimits.maxDepth) ?? DEFAULT_DECODE_LIMITS.maxDepth,
        maxNodes: checkPositive('decodeLimits.maxNodes', options.decodeLimits.maxNodes) ?? DEFAULT_DECODE_LIMITS.maxNodes,
      });
    }

    this.#kind = platform().detectProcess();
    const proc = (globalThis as { process?: { title?: string; env?: Record<string, string | undefined> } }).process;
    this.name = options.name ?? (proc?.title || (this.#kind === 'renderer' ? 'page' : `pid-${pid()}`));
    const onFrames = (frames: Buffer) => this.#onFrames(frames);
    const onState = (state: NativePortState, code: string, message: string) => this.#onState(state, code, message);
    if (options.port !== undefined) {
      // A bus over a MessagePort whose other end main attached (attachPort): no socket, no
      // endpoint, nothing native.
      if (!isPortLike(options.port)) {
        throw new InvalidArgumentError(`Expected the "port" option to be a MessagePort, got ${describe(options.port)}`);
      }
      if (role === 'hub') throw new InvalidArgumentError('A bus over a "port" is a client of the hub in main, not a hub');
      this.role = 'client';
      this.#endpoint = '';
      this.#token = '';
      this.#port = new MessagePortLink(options.port as PortLike, onFrames, onState);
      this.#self = { id: 0, role: this.#kind, name: this.name, pid: pid() };
      this.#updateRef(); // held until ready
      return;
    }
    const binding = platform().native();

    // Who are we? An explicit role wins; 'auto' follows DESIGN.md's table.
    let endpoint = options.endpoint ?? proc?.env?.[ENV_ENDPOINT];
    let token = options.token ?? proc?.env?.[ENV_TOKEN];
    let resolved: 'hub' | 'client';
    if (role !== 'auto') {
      resolved = role;
    } else if (this.#kind === 'main') {
      resolved = options.endpoint ? 'client' : 'hub';
    } else if (endpoint) {
      resolved = 'client';
    } else if (this.#kind === 'worker' && binding.localHubs().length > 0) {
      resolved = 'client';
    } else {
      throw new NoEndpointError(
        `No hub to join from this ${this.#kind} process: start one here with new EventBus({ role: 'hub' }), ` +
          `start this process with the environment from the hub's bus.childEnv(), ` +
          `or pass { endpoint, token } explicitly.`,
      );
    }
    if (resolved === 'client' && !endpoint) {
      // A worker thread joins its own process's hub; the token never touches process.env.
      const local = binding.localHubs()[0];
      if (!local) {
        throw new NoEndpointError(
          "role 'client' needs an endpoint: pass { endpoint, token } or start this process with the hub's bus.childEnv()",
        );
      }
      endpoint = local.endpoint;
      token ??= local.token;
    }
    this.role = resolved;

    try {
      if (resolved === 'hub') {
        this.#hub = binding.startHub(
          {
            endpoint: options.endpoint,
            token: options.token,
            name: this.name,
            maxFrame: options.maxFrame,
            highWaterMark: options.highWaterMark,
            lowWaterMark: options.lowWaterMark,
            stallTimeoutMs: options.stallTimeoutMs,
            overflow: options.overflow,
            handshakeTimeoutMs: options.handshakeTimeoutMs,
            handshakeMaxFrame: options.handshakeMaxFrame,
            maxTopic: options.maxTopic,
            maxSubscriptionsPerPeer: options.maxSubscriptionsPerPeer,
            maxHandlersPerPeer: options.maxHandlersPerPeer,
            maxPendingInvokesPerPeer: options.maxPendingInvokesPerPeer,
            maxConnections: options.maxConnections,
            maxHandshaking: options.maxHandshaking,
            pingIntervalMs: options.pingIntervalMs,
            pingMisses: options.pingMisses,
            acceptAtStart: false,
          },
          () => {},
        );
        this.#endpoint = this.#hub.endpoint;
        this.#token = this.#hub.token;
        this.#port = this.#hub.connectLocal(this.#kind, this.name, onFrames, onState);
        const g = globalThis as Record<symbol, unknown>;
        g[PROCESS_BUS] ??= this;
        // Peers are admitted from the end of this turn, once what this process registers in it
        // (listeners, handlers) is in force: a restarted hub's clients are already knocking, and
        // the events and invokes they queued while it was down must not arrive before the
        // listeners and handlers set up right after `new EventBus()`. Queued before any flush of
        // this turn, so it runs first.
        RESOLVED.then(() => this.#admitPeers());
      } else {
        if (!token) {
          throw new InvalidArgumentError(
            `A client needs the hub's token: pass { token } or start this process with the hub's bus.childEnv()`,
          );
        }
        this.#endpoint = endpoint!;
        this.#token = token;
        this.#port = binding.connect(
          {
            endpoint: endpoint!,
            token,
            role: this.#kind,
            name: this.name,
            backoffInitialMs: options.reconnect?.initialMs,
            backoffMaxMs: options.reconnect?.maxMs,
            maxAttempts: options.reconnect?.maxAttempts,
            offlineMaxFrames: options.offlineQueue?.maxFrames,
            offlineMaxBytes: options.offlineQueue?.maxBytes,
            maxFrame: options.maxFrame,
          },
          onFrames,
          onState,
        );
      }
    } catch (err) {
      this.#hub?.close();
      throw fromNative(err);
    }
    this.#self = { id: 0, role: this.#kind, name: this.name, pid: pid() };
    this.#updateRef(); // held until ready
  }

  // --- Lifecycle ---------------------------------------------------------------------------

  ready(): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#closed) return Promise.reject(new ClosedError('this bus is closed'));
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    for (const [id] of this.#pending) {
      this.#settle(id, undefined, new ClosedError('the bus was closed before the reply arrived'));
    }
    this.#deadlines.stop();
    for (const call of this.#localCalls) call.fail(new ClosedError('the bus was closed before the reply arrived'));
    this.#abortServing(new ClosedError('the bus was closed'));
    for (const detach of [...this.#attached]) detach();
    this.#port.close();
    this.#hub?.close();
    this.#unregister();
    this.#setState('closed', '', '');
    for (const w of this.#readyWaiters.splice(0)) w.reject(new ClosedError('the bus was closed before it was ready'));
    this.#failDrainWaiters(new ClosedError('the bus was closed before its outbound buffer drained'));
  }

  /**
   * Resolves once this bus's outbound buffer is at or below `outbound.highWaterMark`: at once if
   * it is, else when 'drain' is emitted. Rejects with ClosedError if the bus closes first.
   */
  drained(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('this bus is closed; create a new EventBus'));
    if (!this.#needDrain) {
      if (this.#outbound + this.#writer.pos <= this.#outboundMark) return Promise.resolve();
      this.#needDrain = true;
      if (this.#writer.pos === 0) this.#checkDrain(); // else the turn's flush looks
    }
    return new Promise((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
      this.#updateRef();
    });
  }

  childEnv(): Record<string, string> {
    this.#assertOpen();
    if (!this.#endpoint) {
      throw new InvalidArgumentError('This bus runs over a MessagePort: it has no endpoint to hand on; call childEnv() on the hub or a socket client');
    }
    return { [ENV_ENDPOINT]: this.#endpoint, [ENV_TOKEN]: this.#token };
  }

  stats() {
    const port = this.#port.stats();
    const hub = this.#hub?.stats();
    let subscriptions = 0;
    for (const s of this.#listeners.values()) subscriptions += s.size;
    for (const s of this.#patterns.values()) subscriptions += s.size;
    const writes = hub ? hub.writevCalls : port.writevCalls;
    const frames = hub ? hub.framesOut : port.framesOut;
    return {
      role: this.role,
      name: this.name,
      state: this.#state,
      peerId: this.#self.id,
      peers: [...this.#peers.values()],
      emitted: this.#stats.emitted,
      received: this.#stats.received,
      invokes: {
        sent: this.#stats.sent,
        pending: this.#pending.size,
        served: this.#stats.served,
        // A handler running right now (stats() from inside it) is not in #serving yet.
        serving: this.#serving.size + (this.#servingNow ? 1 : 0),
      },
      subscriptions,
      handlers: this.#handlers.size,
      offlineQueued: port.offlineQueued,
      outbound: this.#closed ? 0 : this.#port.outbound() + this.#writer.pos,
      dropped: this.#dropped,
      framesPerWrite: writes > 0 ? frames / writes : 0,
      hub: hub && {
        peers: hub.peers,
        handshaking: hub.handshaking,
        subscriptions: hub.subscriptions,
        handlers: hub.handlers,
        pendingInvokes: hub.pendingInvokes,
        eventsRouted: hub.eventsRouted,
        eventsDropped: hub.eventsDropped,
        invokesRouted: hub.invokesRouted,
        rejected: hub.rejected,
        paused: hub.paused,
        parkedBytes: hub.parkedBytes,
        stalled: hub.stalled,
        pauses: hub.pauses,
        stalls: hub.stalls,
        queuedBytes: hub.queuedBytes,
        peakQueuedBytes: hub.peakQueuedBytes,
      },
    };
  }

  /**
   * Makes a MessagePort-like object (Electron's MessagePortMain, a web or worker_threads
   * MessagePort) one peer of this hub: a page, an iframe, a worker. Its other end runs
   * `new EventBus({ port })`. The peer may do only what `allow` grants (nothing by default); the
   * hub refuses the rest with ForbiddenError. Frames cross as bytes: main's thread never decodes
   * the page's payloads. Returns a function that detaches it (its subscriptions are freed, its
   * calls fail on both sides with ConnectionLostError); closing the port does the same.
   */
  attachPort(
    port: unknown,
    options: { name?: string; role?: string; allow?: NativeGrants; origin?: string; window?: number } = {},
  ): () => void {
    this.#assertOpen();
    if (!this.#hub) {
      throw new InvalidArgumentError(
        "attachPort() needs the hub: call it on the bus of the process that owns the hub (Electron main, role 'hub')",
      );
    }
    if (!isPortLike(port)) throw new InvalidArgumentError(`attachPort() takes a MessagePort, got ${describe(port)}`);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError(`Expected the attachPort options to be an object, got ${describe(options)}`);
    }
    const grants = checkAllow(options.allow);
    const name = options.name ?? 'page';
    checkName('"name" option', name);
    const role = options.role ?? 'renderer';
    checkName('"role" option', role);
    let peer: NativePort | undefined;
    let welcomed = false;
    let detached = false;
    // Flow control over the port (docs/PROTOCOL.md 1.4): a MessagePort cannot be left unread, so
    // the page counts what it posted and main acknowledges what the hub has taken (routed) of
    // it; the page's emit() returns false while more than its mark is unacknowledged. What the
    // hub holds for a page is thus at most that mark and one batch. A page that ignores it is
    // detached once twice main's hard limit waits.
    let received = 0;
    let acked = 0;
    let drainArmed = false;
    const ack = (held: number): void => {
      const taken = received - held;
      if (taken > acked) {
        acked = taken;
        port.postMessage({ switchboard: 1, type: 'ack', bytes: taken });
      }
      if (held > 0 && !drainArmed) {
        drainArmed = true;
        peer!.notifyDrain(0); // everything routed: acknowledge the rest
      }
    };
    const detach = (): void => {
      if (detached) return;
      detached = true;
      this.#attached.delete(detach);
      peer?.close();
      port.close?.();
    };
    const onState = (state: NativePortState): void => {
      if (state === 'connected' && peer && !welcomed && !detached) {
        welcomed = true;
        port.postMessage({ switchboard: 1, type: 'welcome', peerId: peer.peerId() });
      } else if (state === 'drain' && !detached) {
        drainArmed = false;
        ack(peer!.outbound());
      } else if (state === 'closed') {
        detach();
      }
    };
    // Each delivery is a fresh buffer the addon never touches again: it is posted as it is.
    const page = { origin: typeof options.origin === 'string' ? options.origin : undefined, window: typeof options.window === 'number' ? options.window : undefined };
    peer = this.#hub.connectLocal(role, name, (frames) => !detached && port.postMessage(frames), onState, grants, page);
    this.#attached.add(detach);
    listen(
      port,
      (data) => {
        if (detached || !(data instanceof Uint8Array)) return;
        try {
          received += data.byteLength;
          const held = peer!.submit(data);
          // Acknowledged in steps (a message per batch would double the port's traffic), and at
          // once when something waits: the page may be waiting for it.
          if (held > 0 || received - held - acked >= ACK_STEP) ack(held);
          if (held > 2 * this.#outboundMax) {
            detach();
            if (this.#errorListeners.size > 0) {
              this.#reportError(
                new BufferFullError(
                  `the page '${name}' went on sending while told to pause, with ${held} bytes waiting in the hub; it was detached`,
                ),
              );
            }
          }
        } catch (err) {
          // Bytes that are not whole frames: that peer is gone, and main goes on.
          detach();
          if (this.#errorListeners.size > 0) this.#reportError(fromNative(err) as Error);
        }
      },
      detach,
    );
    return detach;
  }

  // --- Events ------------------------------------------------------------------------------

  on(topic: string, listener: AnyListener, options?: { schema?: StandardSchema }): () => void {
    if (typeof listener !== 'function') {
      throw new InvalidArgumentError(`Expected the listener to be a function, got ${describe(listener)}`);
    }
    const schema = options?.schema;
    if (schema !== undefined && !RESERVED.has(topic)) {
      checkSchema(schema, `on('${topic}')`);
      const deliver = listener;
      const checked: Listening = (data, ctx) => {
        let value: unknown;
        try {
          value = validate(schema, data, `event '${ctx.topic}'`);
        } catch (err) {
          this.#reportError(err as Error); // no caller to tell: bus.on('error') hears it
          return;
        }
        if (isThenable(value)) {
          (value as Promise<unknown>).then((v) => deliver(v, ctx)).catch((err) => this.#reportError(err));
        } else {
          deliver(value, ctx);
        }
      };
      checked.original = deliver;
      listener = checked;
    }
    if (topic === 'connection') {
      this.#connectionListeners.add(listener);
      return () => this.#connectionListeners.delete(listener);
    }
    if (topic === 'error') {
      this.#errorListeners.add(listener);
      return () => this.#errorListeners.delete(listener);
    }
    if (topic === 'drain' || topic === 'dropped') {
      const set: Set<any> = topic === 'drain' ? this.#drainListeners : this.#droppedListeners;
      set.add(listener);
      return () => set.delete(listener);
    }
    this.#assertOpen();
    checkTopic(topic, true);
    const table = topic.endsWith('*') ? this.#patterns : this.#listeners;
    let set = table.get(topic);
    if (!set) {
      set = new Set();
      table.set(topic, set);
      this.#write(Kind.subscribe, this.#nextId++, topic, 0, null);
    }
    set.add(listener);
    this.#updateRef();
    return () => this.off(topic, listener);
  }

  once(topic: string, listener?: AnyListener): any {
    if (listener === undefined) {
      return new Promise((resolve) => {
        const off = this.on(topic, (data) => {
          off();
          resolve(data);
        });
      });
    }
    const off = this.on(topic, (data, ctx) => {
      off();
      listener(data, ctx);
    });
    return off;
  }

  off(topic: string, listener?: AnyListener): void {
    if (RESERVED.has(topic)) {
      const set: Set<any> =
        topic === 'connection'
          ? this.#connectionListeners
          : topic === 'error'
            ? this.#errorListeners
            : topic === 'drain'
              ? this.#drainListeners
              : this.#droppedListeners;
      if (listener) set.delete(listener);
      else set.clear();
      return;
    }
    const table = topic.endsWith('*') ? this.#patterns : this.#listeners;
    const set = table.get(topic);
    if (!set) return;
    if (listener) {
      if (!set.delete(listener)) {
        for (const l of set as Set<Listening>) if (l.original === listener) set.delete(l);
      }
    } else set.clear();
    if (set.size === 0) {
      table.delete(topic);
      if (!this.#closed) this.#write(Kind.unsubscribe, this.#nextId++, topic, 0, null);
      this.#updateRef();
    }
  }

  emit(topic: string, data?: unknown): boolean {
    this.#assertOpen();
    checkTopic(topic, false);
    if (RESERVED.has(topic)) {
      throw new InvalidArgumentError(`'${topic}' is a bus event, not a topic; choose another topic name`);
    }
    const start = this.#writer.pos;
    this.#writeQueued(Kind.event, 0, topic, data, "emit('%s') payload");
    let held = this.#outbound + this.#writer.pos;
    if (held > this.#outboundMax) {
      this.#outbound = this.#port.outbound(); // what the port holds now, not at the last submit
      held = this.#outbound + this.#writer.pos;
      const size = this.#writer.pos - start;
      // The limit bounds a backlog, not one message: an event alone may be larger.
      if (held > this.#outboundMax && held > size) {
        this.#writer.pos = start;
        this.#uncountOffline(size);
        throw new BufferFullError(
          `emit('${topic}') would take this bus's outbound buffer to ${held} bytes, past outbound.maxBytes ` +
            `(${this.#outboundMax}); the event was not sent. emit() has been returning false: wait for ` +
            `bus.on('drain') or await bus.drained() before emitting more, or raise outbound.maxBytes.`,
        );
      }
    }
    this.#stats.emitted++;
    if (this.#hasLocalListener(topic)) {
      this.#localEvents.push({ topic, start, end: this.#writer.pos });
    }
    if (held <= this.#outboundMark) return true;
    if (!this.#needDrain) {
      this.#outbound = this.#port.outbound();
      if (this.#outbound + this.#writer.pos <= this.#outboundMark) return true;
      this.#needDrain = true;
      this.#updateRef();
    }
    return false;
  }

  // --- Invoke ------------------------------------------------------------------------------

  handle(name: string, handler: Handler, options?: { schema?: StandardSchema }): () => void {
    this.#assertOpen();
    checkName('handler name', name);
    if (typeof handler !== 'function') {
      throw new InvalidArgumentError(`Expected the handler for '${name}' to be a function, got ${describe(handler)}`);
    }
    const schema = options?.schema;
    if (schema !== undefined) {
      checkSchema(schema, `handle('${name}')`);
      const serve = handler;
      // The request is checked here, in the callee: a refusal reaches the caller as ValidationError.
      handler = (req, ctx) => {
        let value: unknown;
        try {
          value = validate(schema, req, `invoke('${name}') request`);
        } catch (err) {
          markSchema(err);
        }
        return isThenable(value) ? (value as Promise<unknown>).then((v) => serve(v, ctx), markSchema) : serve(value, ctx);
      };
    }
    if (this.#handlers.has(name)) {
      throw new InvalidArgumentError(`'${name}' already has a handler in this process; stop it first`);
    }
    this.#handlers.set(name, handler);
    this.#write(Kind.register, this.#nextId++, name, 0, null);
    this.#updateRef();
    return () => {
      if (this.#handlers.get(name) !== handler) return;
      this.#handlers.delete(name);
      if (!this.#closed) this.#write(Kind.unregister, this.#nextId++, name, 0, null);
      this.#updateRef();
    };
  }

  invoke(name: string, req?: unknown, options: { timeout?: number; signal?: AbortSignal } = NO_OPTIONS): Promise<any> {
    try {
      this.#assertOpen();
      checkName('handler name', name);
      if (options === null || typeof options !== 'object') {
        throw new InvalidArgumentError(`Expected the invoke options to be an object, got ${describe(options)}`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const timeout = options.timeout ?? this.#timeout;
    try {
      checkPositive('timeout', timeout, true);
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = options.signal;
    if (signal?.aborted) {
      return Promise.reject(new AbortError(`invoke('${name}') was aborted before it was sent`, signal.reason));
    }
    const local = this.#handlers.get(name);
    if (local) return this.#invokeLocally(name, local, req, timeout, signal);

    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        this.#writeQueued(Kind.invoke, id, name, req, "invoke('%s') request");
      } catch (err) {
        reject(err);
        return;
      }
      this.#stats.sent++;
      const pending = new PendingInvoke(id, name, timeout, resolve, reject, signal);
      if (timeout > 0) this.#deadlines.add(pending, timeout);
      if (signal) {
        pending.onAbort = () => {
          this.#cancel(id);
          this.#settle(id, undefined, new AbortError(`invoke('${name}') was aborted`, signal.reason));
        };
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.#pending.set(id, pending);
      if (this.#pending.size === 1) this.#updateRef();
    }).then(undefined, withCallSite);
  }

  /**
   * A handler in this very process: no round trip, but the same copy semantics and the same
   * outcomes (a throw or an unencodable result is a RemoteError; close() ends it with ClosedError).
   */
  async #invokeLocally(name: string, handler: Handler, req: unknown, timeout: number, signal?: AbortSignal): Promise<any> {
    const controller = new AbortController();
    const copy = decode(encodeOne(req, `invoke('${name}') request`));
    const ctx = { sender: this.#self, name, signal: controller.signal };
    let fail!: (err: unknown) => void;
    const ended = new Promise<never>((_, reject) => (fail = reject));
    const local = { fail, controller };
    this.#localCalls.add(local);
    this.#updateRef();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeout > 0) {
      timer = setTimeout(() => fail(new TimeoutError(`invoke('${name}') got no reply within ${timeout} ms`)), timeout);
    }
    const onAbort = () => fail(new AbortError(`invoke('${name}') was aborted`, signal!.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#stats.sent++;
    this.#stats.served++;
    const work = Promise.resolve()
      .then(() => handler(copy, ctx))
      .then((v) => decode(encodeOne(v, `result of '${name}'`)))
      .catch((err) => {
        throw new RemoteFailure(this.#self, decode(encodeOne(err, 'error')), name);
      });
    try {
      return await Promise.race([work, ended]);
    } catch (err) {
      // Made here, in this async function, for the same call-site frames as a remote call's.
      const error = err instanceof RemoteFailure ? remoteError(err, this.#invokeLocally) : err;
      controller.abort(error);
      throw error;
    } finally {
      this.#localCalls.delete(local);
      this.#updateRef();
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  #cancel(id: number): void {
    if (!this.#closed && this.#pending.has(id)) this.#write(Kind.cancel, id, '', 0, null);
  }

  /** Ends invoke `id` once; later calls for the same id do nothing. */
  #settle(id: number, value: unknown, error?: unknown): void {
    const p = this.#pending.get(id);
    if (p) this.#settlePending(p, value, error);
  }

  #settlePending(p: PendingInvoke, value: unknown, error?: unknown): void {
    this.#pending.delete(p.id);
    this.#deadlines.remove(p);
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    if (this.#pending.size === 0) this.#updateRef();
    if (error !== undefined) p.reject(error);
    else p.resolve(value);
  }

  // --- Writing -----------------------------------------------------------------------------

  #write(kind: number, id: number, topic: string, flags: number, value: unknown, what?: string): void {
    const w = this.#writer;
    const start = w.pos;
    try {
      const at = beginFrame(w, kind, id, topic, flags);
      // `what` names the payload in a refusal; '%s' in it stands for the topic.
      if (value !== null || what !== undefined) encodeValue(w, value, what ?? 'payload', topic);
      endFrame(w, start, at);
    } catch (err) {
      w.pos = start; // drop the partial frame
      throw err;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // A reaction of a settled promise, not queueMicrotask(): the same queue, but Node.js's
      // queueMicrotask makes an AsyncResource per call (~150 ns more per flush here).
      RESOLVED.then(this.#flushBound);
    }
  }

  readonly #flushBound = (): void => this.#flush();

  /** A hub's first turn is over: route what it registered, then let peers in (see the constructor). */
  #admitPeers(): void {
    if (this.#closed) return;
    this.#flush();
    this.#hub?.acceptPeers();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const w = this.#writer;
    if (w.pos === 0) return;
    const batch = w.view_();
    // Local listeners get a decoded copy, like every other process.
    const locals = this.#localEvents;
    this.#localEvents = [];
    if (!this.#closed) {
      try {
        this.#outbound = this.#port.submit(batch);
      } catch (err) {
        this.#reportError(fromNative(err) as Error);
      }
    }
    for (const ev of locals) {
      readFrames(batch.subarray(ev.start, ev.end), (env) => this.#dispatchEvent(env, this.#self));
    }
    w.reset();
    if (this.#needDrain) this.#checkDrain();
  }

  // --- Flow control ------------------------------------------------------------------------

  /** 'drain' is owed: emits it if the buffer is at or below the mark, else asks the port to tell. */
  #checkDrain(): void {
    if (this.#closed || !this.#needDrain) return;
    if (this.#outbound + this.#writer.pos > this.#outboundMark) {
      if (this.#writer.pos > 0) return; // the turn's flush submits it and looks again
      if (!this.#drainNotified) {
        this.#drainNotified = true;
        this.#port.notifyDrain(this.#outboundMark);
      }
      return;
    }
    this.#needDrain = false;
    this.#updateRef();
    // Asynchronously, as a stream's 'drain': never from inside the emit() or flush that caused it.
    setTimeout(() => this.#emitDrain(), 0);
  }

  /** The port says its buffer fell to the mark. */
  #onDrain(): void {
    this.#drainNotified = false;
    if (this.#closed) return;
    this.#outbound = this.#port.outbound();
    this.#checkDrain();
  }

  #emitDrain(): void {
    if (this.#closed || this.#needDrain) return; // over the mark again meanwhile: a later 'drain'
    const waiters = this.#drainWaiters.splice(0);
    this.#updateRef();
    for (const w of waiters) w.resolve();
    for (const l of [...this.#drainListeners]) {
      try {
        l();
      } catch (err) {
        this.#reportError(err as Error);
      }
    }
  }

  #failDrainWaiters(error: unknown): void {
    this.#needDrain = false;
    for (const w of this.#drainWaiters.splice(0)) w.reject(error);
  }

  /** A DROPPED notice: what the hub dropped for this bus while it was stalled. */
  #onDropped(env: Envelope): void {
    let info: any;
    try {
      info = decode(env.payload, this.#decodeLimits);
    } catch {
      return;
    }
    if (!info || typeof info.count !== 'number') return;
    const topics: Record<string, number> = {};
    if (info.topics && typeof info.topics === 'object') {
      for (const [topic, n] of Object.entries(info.topics)) if (typeof n === 'number') topics[topic] = n;
    }
    this.#dropped += info.count;
    const event: DroppedInfo = { count: info.count, topics };
    for (const l of [...this.#droppedListeners]) {
      try {
        l(event);
      } catch (err) {
        this.#reportError(err as Error);
      }
    }
  }

  /**
   * While not connected, emits and invokes wait in the core's bounded offline queue. Counting
   * them here too makes a full queue fail loudly and synchronously, in emit() or invoke(), rather
   * than later at the end of the turn. `bytes` is the frame just written.
   */
  #countOffline(bytes: number): void {
    if (this.#state === 'connected') return;
    if (this.#offlineCount + 1 > this.#offlineMax || this.#offlineBytes + bytes > this.#offlineMaxBytes) {
      throw new OfflineQueueFullError(
        `Not connected to the hub (state '${this.#state}') and the offline queue is full ` +
          `(${this.#offlineCount} messages, ${this.#offlineBytes} bytes; limits offlineQueue.maxFrames = ` +
          `${this.#offlineMax}, maxBytes = ${this.#offlineMaxBytes}). Wait for bus.on('connection') ` +
          `to report 'connected', or raise the limits.`,
      );
    }
    this.#offlineCount++;
    this.#offlineBytes += bytes;
  }

  /** Undoes #countOffline() for a frame taken back. */
  #uncountOffline(bytes: number): void {
    if (this.#state === 'connected') return;
    this.#offlineCount--;
    this.#offlineBytes -= bytes;
  }

  /** Writes one frame that counts against the offline queue; undoes it if the queue is full. */
  #writeQueued(kind: number, id: number, topic: string, value: unknown, what: string): void {
    const start = this.#writer.pos;
    this.#write(kind, id, topic, 0, value, what);
    try {
      this.#countOffline(this.#writer.pos - start);
    } catch (err) {
      this.#writer.pos = start;
      throw err;
    }
  }

  // --- Reading -----------------------------------------------------------------------------

  #onFrames(frames: Buffer): void {
    // The addon makes a buffer per delivery and never touches it again: bulk values may be
    // views of it (codec.ts, bulkBytes).
    beginBatch(frames);
    try {
      readFrames(frames, this.#dispatchBound);
    } catch (err) {
      this.#reportError(new SwitchboardError('E_PROTOCOL', `malformed frame from the hub: ${(err as Error).message}`));
    } finally {
      endBatch(frames);
    }
  }

  readonly #dispatchBound = (env: Envelope): void => this.#dispatch(env);

  #dispatch(env: Envelope): void {
    switch (env.kind) {
      case Kind.event:
        this.#stats.received++;
        this.#dispatchEvent(env, this.#peer(env.sender));
        break;
      case Kind.invoke:
        this.#serve(env);
        break;
      case Kind.result: {
        const p = this.#pending.get(env.id);
        if (p) this.#settlePending(p, this.#decodePayload(env, 'result', p.name));
        break;
      }
      case Kind.error:
        this.#onError(env);
        break;
      case Kind.cancel: {
        const ctx = this.#serving.get(env.id);
        if (ctx) {
          this.#serving.delete(env.id);
          abortServed(ctx, new AbortError('the caller cancelled the invoke'));
        }
        break;
      }
      case Kind.peer:
        this.#onPeer(env);
        break;
      case Kind.dropped:
        this.#onDropped(env);
        break;
      default:
        break;
    }
  }

  /** `what` of `name` names the payload in an error message, built only on failure. */
  #decodePayload(env: Envelope, what: string, name: string): unknown {
    if (env.flags & Flag.rawPayload) return copyBytes(env.payload);
    if (env.payload.length === 0) return undefined;
    try {
      return decode(env.payload, this.#decodeLimits);
    } catch (err) {
      if (err instanceof CodecError) err.message = `could not decode the ${what} of '${name}': ${err.message}`;
      throw err;
    }
  }

  #dispatchEvent(env: Envelope, sender: PeerInfo): void {
    const exact = this.#listeners.get(env.topic);
    let targets: AnyListener[] | undefined;
    if (exact) targets = [...exact];
    for (const [pattern, set] of this.#patterns) {
      if (matches(pattern, env.topic)) (targets ??= []).push(...set);
    }
    if (!targets || targets.length === 0) return;
    let data: unknown;
    try {
      data = this.#decodePayload(env, 'payload', env.topic);
    } catch (err) {
      this.#reportError(err as Error);
      return;
    }
    const ctx = { sender, topic: env.topic };
    for (const listener of targets) {
      try {
        listener(data, ctx);
      } catch (err) {
        // One listener's throw does not stop the others; it is reported (see #reportError).
        this.#reportError(err as Error);
      }
    }
  }

  #onError(env: Envelope): void {
    const p = this.#pending.get(env.id);
    if (!p) {
      if (env.id === 0 || env.flags & Flag.fromHub) {
        // A refused subscription or registration (E_ALREADY_REGISTERED...), or an id we no longer track.
        if (env.topic !== 'E_CONNECTION_LOST') {
          let message = '';
          try {
            message = String(decode(env.payload, this.#decodeLimits));
          } catch {
            message = env.topic;
          }
          this.#reportError(errorFromCode(env.topic, message));
        }
      }
      return;
    }
    if (env.flags & Flag.fromHub) {
      let message = env.topic;
      try {
        message = String(decode(env.payload, this.#decodeLimits));
      } catch {
        // keep the code as the message
      }
      this.#settle(env.id, undefined, errorFromCode(env.topic, `invoke('${p.name}'): ${message}`));
      return;
    }
    if (env.topic === 'E_NO_HANDLER') {
      // A callee whose handler stopped just before the call arrived (see #serve).
      this.#settle(env.id, undefined, new NoHandlerError(`invoke('${p.name}'): ${String(this.#safeDecode(env))}`));
      return;
    }
    let original: unknown;
    try {
      original = this.#decodePayload(env, 'error', p.name);
    } catch (err) {
      original = err;
    }
    this.#settle(env.id, undefined, new RemoteFailure(this.#peer(env.sender), original, p.name));
  }

  #serve(env: Envelope): void {
    const id = env.id;
    const handler = this.#handlers.get(env.topic);
    if (!handler) {
      // Stopped between the hub routing the call and its arrival: answer as the hub would.
      this.#write(Kind.error, id, 'E_NO_HANDLER', 0, `'${env.topic}' is no longer served by the process it was sent to`, 'error');
      return;
    }
    const ctx = new ServeContext(this.#peer(env.sender), env.topic);
    this.#stats.served++;
    // A plain return value is answered at once; only a thenable waits for a promise round.
    let result: unknown;
    const outer = this.#servingNow;
    this.#servingNow = ctx;
    try {
      result = handler(this.#decodePayload(env, 'request', env.topic), ctx);
      if (isThenable(result)) {
        this.#serving.set(id, ctx);
        Promise.resolve(result).then(
          (value) => this.#finishServing(id, ctx, Kind.result, value),
          (err) => this.#finishServing(id, ctx, Kind.error, err),
        );
        return;
      }
    } catch (err) {
      // The handler threw, its request could not be decoded, or its result's `then` getter threw.
      if (!this.#closed) this.#reply(Kind.error, id, err);
      return;
    } finally {
      this.#servingNow = outer;
    }
    if (!this.#closed) this.#reply(Kind.result, id, result);
  }

  #finishServing(id: number, ctx: ServeContext, kind: number, value: unknown): void {
    if (this.#serving.get(id) !== ctx) return; // cancelled, or the bus closed
    this.#serving.delete(id);
    if (this.#closed) return;
    this.#reply(kind, id, value);
  }

  /** close() or a lost connection: every handler still running has its signal aborted. */
  #abortServing(reason: unknown): void {
    for (const ctx of this.#serving.values()) abortServed(ctx, reason);
    this.#serving.clear();
    if (this.#servingNow) abortServed(this.#servingNow, reason);
  }

  #reply(kind: number, id: number, value: unknown): void {
    try {
      const topic = kind === Kind.error ? errorName(value) : '';
      this.#write(kind, id, topic, 0, value, kind === Kind.error ? 'error' : 'result');
    } catch (err) {
      // The result could not be encoded: the caller gets that error instead of a hang.
      this.#write(Kind.error, id, 'CodecError', 0, err, 'error');
    }
  }

  #onPeer(env: Envelope): void {
    let info: any;
    try {
      info = decode(env.payload, this.#decodeLimits);
    } catch {
      return;
    }
    if (!info || typeof info.id !== 'number') return;
    if (info.up) {
      const peer: PeerInfo = { id: info.id, role: String(info.role), name: String(info.name), pid: Number(info.pid) };
      // A page attached by main: its frame's origin and its window, as main stamped them.
      if (typeof info.origin === 'string') peer.origin = info.origin;
      if (typeof info.window === 'number') peer.window = info.window;
      this.#peers.set(info.id, peer);
    } else {
      this.#peers.delete(info.id);
    }
  }

  #safeDecode(env: Envelope): unknown {
    try {
      return decode(env.payload, this.#decodeLimits);
    } catch {
      return env.topic;
    }
  }

  #peer(id: number): PeerInfo {
    if (id === this.#self.id) return this.#self;
    return this.#peers.get(id) ?? { id, role: 'unknown', name: '', pid: 0 };
  }

  #onState(state: NativePortState, code: string, message: string): void {
    if (state === 'drain') {
      this.#onDrain();
    } else if (state === 'connected') {
      this.#self.id = this.#port.peerId();
      this.#offlineCount = 0;
      this.#offlineBytes = 0;
      this.#setState('connected', '', '');
      this.#connectedOnce = true;
      const waiters = this.#readyWaiters.splice(0);
      this.#updateRef();
      for (const w of waiters) w.resolve();
    } else if (state === 'reconnecting') {
      if (this.#state === 'connected') this.#setState('disconnected', code, message);
      this.#setState('reconnecting', code, message);
    } else if (state === 'closed' && !this.#closed) {
      // The hub refused us for good (wrong token, wrong version, attempts exhausted): the bus is
      // over, as after close(), and says why; it no longer holds the process.
      const error = errorFromCode(code || 'E_CLOSED', message || 'the connection was closed');
      this.#closed = true;
      for (const w of this.#readyWaiters.splice(0)) w.reject(error);
      for (const [id] of this.#pending) this.#settle(id, undefined, new ConnectionLostError(error.message));
      this.#deadlines.stop();
      for (const call of this.#localCalls) call.fail(new ConnectionLostError(error.message));
      this.#abortServing(error);
      this.#failDrainWaiters(new ClosedError(error.message));
      this.#setState('closed', code, message);
      this.#port.close(); // safe here: the I/O thread never waits for this thread
      this.#hub?.close();
      this.#unregister();
      this.#reffed = false;
    }
  }

  #connectedOnce = false;

  /** No longer the process's bus (PROCESS_BUS) once closed. */
  #unregister(): void {
    const g = globalThis as Record<symbol, unknown>;
    if (g[PROCESS_BUS] === this) delete g[PROCESS_BUS];
  }

  #setState(state: ConnectionState, code: string, message: string): void {
    if (this.#state === state) return;
    this.#state = state;
    const ev = { state, code, message };
    for (const l of [...this.#connectionListeners]) {
      try {
        l(ev);
      } catch (err) {
        this.#reportError(err as Error);
      }
    }
  }

  // --- Helpers -----------------------------------------------------------------------------

  #hasLocalListener(topic: string): boolean {
    if (this.#listeners.has(topic)) return true;
    for (const pattern of this.#patterns.keys()) if (matches(pattern, topic)) return true;
    return false;
  }

  /**
   * Asynchronous failures (a throwing listener, a refused registration) go to bus.on('error');
   * with no 'error' listener they are thrown as an uncaught exception, as Node.js does for an
   * EventEmitter 'error' event nobody handles.
   */
  #reportError(err: Error): void {
    if (this.#errorListeners.size > 0) {
      for (const l of [...this.#errorListeners]) {
        try {
          l(err);
        } catch (inner) {
          queueMicrotask(() => {
            throw inner;
          });
        }
      }
      return;
    }
    queueMicrotask(() => {
      throw err;
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('this bus is closed; create a new EventBus');
  }

  /**
   * Keeps the process alive while the bus has work: connecting for the first time, an invoke
   * waiting for its reply, or a listener or handler waiting for input (like a listening server).
   * A quiet bus (none of these) and a closed bus never keep a process alive.
   */
  #updateRef(): void {
    const busy =
      !this.#closed &&
      (!this.#connectedOnce ||
        this.#pending.size > 0 ||
        this.#localCalls.size > 0 ||
        this.#needDrain ||
        this.#drainWaiters.length > 0 ||
        this.#handlers.size > 0 ||
        this.#listeners.size > 0 ||
        this.#patterns.size > 0);
    if (busy === this.#reffed) return;
    this.#reffed = busy;
    if (busy) this.#port.ref();
    else this.#port.unref();
  }
}

function errorName(value: unknown): string {
  if (value instanceof Error) return value.name || 'Error';
  return 'Error';
}

function encodeOne(value: unknown, what: string): Uint8Array {
  const w = new ByteWriter(256);
  encodeValue(w, value, what);
  return w.view_();
}
