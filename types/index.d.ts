// The public API of switchboard-ipc: the contract of ../shared/DESIGN.md in types.
// lib/ implements it; lib/index.ts checks at compile time that the implementation satisfies it,
// and test/types/ checks that wrong topics and payloads fail to compile.

/** Where this code runs. */
export type ProcessKind = 'main' | 'preload' | 'renderer' | 'utility' | 'worker' | 'node';
export declare function detectProcess(): ProcessKind;

/** Topic name -> payload type. */
export type EventMap = { [topic: string]: unknown };
/** Handler name -> (request) => result. */
export type HandlerMap = { [name: string]: (req: any) => unknown };

export interface PeerInfo {
  /** The id the hub assigned to the process (or thread) that sent the message. */
  id: number;
  /** 'main', 'node', 'worker', 'utility', ... as that peer declared it. */
  role: string;
  name: string;
  /** From the kernel (SO_PEERCRED) where available. */
  pid: number;
  /** A page attached by main: its frame's origin, as main saw it (not as the page claims). */
  origin?: string;
  /** A page attached with attachWindow(): its window's webContents id. */
  window?: number;
}

export interface EventContext {
  sender: PeerInfo;
  topic: string;
}

export interface InvokeContext {
  sender: PeerInfo;
  name: string;
  /** Aborted when the caller cancels, times out or goes away. */
  signal: AbortSignal;
}

export interface InvokeOptions {
  /** Milliseconds before the call rejects with TimeoutError. Default: the bus's `timeout`. */
  timeout?: number;
  signal?: AbortSignal;
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'closed';

export interface ConnectionEvent {
  state: ConnectionState;
  /** Why, for 'disconnected' and 'closed' (an error code such as E_AUTH), else ''. */
  code: string;
  message: string;
}

/** Any MessagePort: Electron's MessagePortMain, a web MessagePort, a worker_threads MessagePort. */
export interface MessagePortLike {
  postMessage(message: any, transfer?: any[]): void;
  start?(): void;
  close?(): void;
}

/** What a page attached by main may do: names and 'prefix*' patterns. Nothing by default. */
export interface Grants {
  emit?: string[];
  subscribe?: string[];
  invoke?: string[];
  handle?: string[];
}

export interface EventBusOptions {
  /** Shown to other peers and in stats. Default: the process title. */
  name?: string;
  /**
   * Joins over a MessagePort whose other end main attached with attachPort() (a page, an
   * iframe, a web or worker thread), instead of a socket.
   */
  port?: MessagePortLike;
  /** 'auto' (default): hub in Electron main, client wherever an endpoint is known. */
  role?: 'auto' | 'hub' | 'client';
  /** The hub's socket path. A hub listens there; a client connects there. */
  endpoint?: string;
  /** The hub's token. A hub makes a random one unless given (a restarted hub reuses it). */
  token?: string;
  /** Default invoke timeout in milliseconds (30000). 0 means no timeout. */
  timeout?: number;
  /** Client: reconnect backoff (100 ms doubling to 5000 ms, jittered; never gives up). */
  reconnect?: { initialMs?: number; maxMs?: number; maxAttempts?: number };
  /** Client: how many emits wait while disconnected (10000 frames, 8 MiB). */
  offlineQueue?: { maxFrames?: number; maxBytes?: number };
  /** Hub: largest message in bytes (64 MiB). */
  maxFrame?: number;
  /**
   * This bus's own outbound buffer (docs/API.md, "Flow control"): emit() returns false above
   * `highWaterMark` (8 MiB) and 'drain' follows; an emit() that would pass `maxBytes` (64 MiB)
   * throws BufferFullError and is not sent.
   */
  outbound?: { highWaterMark?: number; maxBytes?: number };
  /**
   * Hub: bytes queued for one peer (8 MiB) above which the publishers feeding it are paused
   * (not read from) until it is at or below `lowWaterMark` (half of it).
   */
  highWaterMark?: number;
  /** Hub: the queue level at which paused publishers resume (highWaterMark / 2). */
  lowWaterMark?: number;
  /**
   * Hub: milliseconds a peer over its mark may go without taking a byte before it is stalled
   * (2000) and `overflow` applies to it.
   */
  stallTimeoutMs?: number;
  /**
   * Hub: what happens to a stalled peer: 'drop' (default; its events are dropped and counted, and
   * it gets one 'dropped' event when it reads again) or 'disconnect'.
   */
  overflow?: 'drop' | 'disconnect';
  /** Hub: milliseconds a new connection has to complete its handshake (2000). */
  handshakeTimeoutMs?: number;
  /** Hub: largest frame in bytes before a connection has authenticated (4096). */
  handshakeMaxFrame?: number;
  /** Hub: longest topic, handler name or pattern in bytes (1024). */
  maxTopic?: number;
  /** Hub: subscriptions (topics and patterns) one peer may hold (512); beyond: E_LIMIT. */
  maxSubscriptionsPerPeer?: number;
  /** Hub: handler names one peer may serve (512); beyond: E_LIMIT. */
  maxHandlersPerPeer?: number;
  /** Hub: invokes one peer may await at once (1024); beyond: E_LIMIT. */
  maxPendingInvokesPerPeer?: number;
  /** Hub: socket connections in all (256); a connection beyond is closed with E_LIMIT. */
  maxConnections?: number;
  /** Hub: connections that have not completed the handshake (64); beyond: closed with E_LIMIT. */
  maxHandshaking?: number;
  /**
   * Hub: milliseconds between liveness PINGs to every client (5000); 0 turns pings off. A client
   * answers on its own I/O thread, so a busy JavaScript thread is not silence.
   */
  pingIntervalMs?: number;
  /**
   * Hub: a client from which nothing arrives for this many ping intervals in a row (2) is declared
   * dead: disconnected, and the invokes it was serving fail with ConnectionLostError.
   */
  pingMisses?: number;
  /**
   * Decoding what other processes send: containers nested deeper than `maxDepth` (64) or more
   * than `maxNodes` values in one payload (1000000) fail with a CodecError (E_DECODE) instead of
   * reaching a listener or handler. The encoder refuses more than 64 levels whatever is set here.
   */
  decodeLimits?: { maxDepth?: number; maxNodes?: number };
}

export interface BusStats {
  role: 'hub' | 'client';
  name: string;
  state: ConnectionState;
  peerId: number;
  /** Other peers this bus knows of. */
  peers: PeerInfo[];
  emitted: number;
  received: number;
  invokes: { sent: number; pending: number; served: number; serving: number };
  subscriptions: number;
  handlers: number;
  /** Frames waiting for a reconnect. */
  offlineQueued: number;
  /** Bytes in this bus's outbound buffer now (flow control). */
  outbound: number;
  /** Events the hub told this bus it missed while it was stalled ('dropped' events). */
  dropped: number;
  /** Frames per writev on this process's connection (client) or the hub's sockets (hub). */
  framesPerWrite: number;
  /** Hub only: the hub's own figures. */
  hub?: {
    peers: number;
    /** Connections still in the handshake (not yet peers). */
    handshaking: number;
    /** Subscriptions the hub routes by, over all peers (one per topic or pattern per peer). */
    subscriptions: number;
    /** Names served, over all peers. */
    handlers: number;
    pendingInvokes: number;
    eventsRouted: number;
    eventsDropped: number;
    invokesRouted: number;
    rejected: number;
    /** Publishers the hub is not reading from now, because a receiver of theirs is full. */
    paused: number;
    /** Bytes of theirs the hub holds meanwhile. */
    parkedBytes: number;
    /** Peers stalled now (over their mark, no progress for stallTimeoutMs). */
    stalled: number;
    /** Times a publisher was paused, and a peer stalled, since the hub started. */
    pauses: number;
    stalls: number;
    /** Bytes queued for all peers now. */
    queuedBytes: number;
    /** The most bytes ever queued for one peer. */
    peakQueuedBytes: number;
  };
}

/**
 * A Standard Schema (https://standardschema.dev): what zod, valibot and arktype schemas are. Its
 * output type is what the listener or handler receives.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (
      value: unknown,
    ) =>
      | { readonly value: Output; readonly issues?: undefined }
      | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<unknown> }> }
      | Promise<
          | { readonly value: Output; readonly issues?: undefined }
          | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<unknown> }> }
        >;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** What a stalled bus missed: the 'dropped' bus event. */
export interface DroppedEvent {
  count: number;
  /** Missed events per topic (up to 64 topics; `count` covers them all). */
  topics: Record<string, number>;
}

type Listener<T> = (data: T, ctx: EventContext) => void;
type Req<F> = F extends (req: infer R, ...rest: any[]) => any ? R : never;
type Res<F> = F extends (...args: any[]) => infer R ? Awaited<R> : never;
/** A payload argument that may be omitted when its type admits undefined/void. */
type PayloadArgs<T> = [T] extends [void | undefined] ? [data?: T] : [data: T];
type InvokeArgs<T> = [T] extends [void | undefined]
  ? [req?: T, options?: InvokeOptions]
  : [req: T, options?: InvokeOptions];

export declare class EventBus<
  Events extends EventMap = EventMap,
  Handlers extends HandlerMap = HandlerMap,
> {
  constructor(options?: EventBusOptions);
  readonly name: string;
  /** The resolved role: this process is the hub, or a client of one. */
  readonly role: 'hub' | 'client';

  /** Resolves when listening (hub) or connected and welcomed (client). */
  ready(): Promise<void>;

  /** Listens to a topic, or a pattern such as 'job:*'. Returns a function that stops. */
  /**
   * `schema` (any Standard Schema) checks each payload in this process before the listener sees
   * it; a payload that fails is reported to on('error') as a ValidationError.
   */
  on<K extends keyof Events & string>(
    topic: K,
    listener: Listener<Events[K]>,
    options?: { schema?: StandardSchemaV1<unknown, Events[K]> },
  ): () => void;
  on(topic: `${string}*`, listener: Listener<Events[keyof Events]>): () => void;
  on(event: 'connection', listener: (event: ConnectionEvent) => void): () => void;
  on(event: 'error', listener: (error: Error) => void): () => void;
  /** After emit() returned false: the outbound buffer is at or below its mark again. */
  on(event: 'drain', listener: () => void): () => void;
  /** The hub dropped events for this bus while it was stalled; sent once it reads again. */
  on(event: 'dropped', listener: (event: DroppedEvent) => void): () => void;

  /** The next payload of a topic. */
  once<K extends keyof Events & string>(topic: K): Promise<Events[K]>;
  once<K extends keyof Events & string>(topic: K, listener: Listener<Events[K]>): () => void;

  off<K extends keyof Events & string>(topic: K, listener?: Listener<Events[K]>): void;
  off(topic: `${string}*` | 'connection' | 'error' | 'drain' | 'dropped', listener?: (...args: any[]) => void): void;

  /**
   * Fire-and-forget, batched per JavaScript turn; reaches local listeners too. Returns false once
   * this bus's outbound buffer is over `outbound.highWaterMark`: wait for 'drain' (or
   * drained()) before emitting more. Throws BufferFullError past `outbound.maxBytes`.
   */
  emit<K extends keyof Events & string>(topic: K, ...data: PayloadArgs<Events[K]>): boolean;

  /** Resolves when the outbound buffer is at or below its mark (at once if it is). */
  drained(): Promise<void>;

  /** Serves invokes of `name` from every process. Returns a function that stops serving. */
  handle<K extends keyof Handlers & string>(
    name: K,
    handler: (req: Req<Handlers[K]>, ctx: InvokeContext) => Res<Handlers[K]> | Promise<Res<Handlers[K]>>,
    /** `schema` checks each request here, in the callee; the caller gets a ValidationError. */
    options?: { schema?: StandardSchemaV1<unknown, Req<Handlers[K]>> },
  ): () => void;

  /** Calls the handler of `name`, wherever it runs. Ends exactly once: see the typed errors. */
  invoke<K extends keyof Handlers & string>(
    name: K,
    ...args: InvokeArgs<Req<Handlers[K]>>
  ): Promise<Res<Handlers[K]>>;

  /**
   * Hub only: makes a MessagePort a peer of this hub (its other end runs `new EventBus({ port })`),
   * allowed only what `allow` grants. Returns a function that detaches it.
   */
  attachPort(
    port: MessagePortLike,
    options?: { name?: string; role?: string; allow?: Grants; origin?: string; window?: number },
  ): () => void;

  /** Environment entries that let a process this one spawns join the bus. */
  childEnv(): Record<string, string>;
  stats(): BusStats;
  /** Flushes, fails what is pending with ClosedError, closes the connection (or the hub). */
  close(): Promise<void>;
}

export declare class SwitchboardError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown });
}
export declare class TimeoutError extends SwitchboardError {
  constructor(message: string);
}
export declare class NoHandlerError extends SwitchboardError {
  constructor(message: string);
}
export declare class ConnectionLostError extends SwitchboardError {
  constructor(message: string);
}
export declare class AbortError extends SwitchboardError {
  constructor(message: string, reason?: unknown);
}
export declare class ClosedError extends SwitchboardError {
  constructor(message: string);
}
export declare class InvalidArgumentError extends SwitchboardError {
  constructor(message: string);
}
export declare class OfflineQueueFullError extends SwitchboardError {
  constructor(message: string);
}
export declare class NoEndpointError extends SwitchboardError {
  constructor(message: string);
}
export interface ValidationIssue {
  message: string;
  /** Where in the value, e.g. 'items[2].id'; '' for the value itself. */
  path: string;
}
/**
 * A value failed a schema given to handle() or on() (code E_VALIDATION). A caller receives it
 * from the callee's check, with `remote` saying who checked.
 */
export declare class ValidationError extends SwitchboardError {
  readonly issues: ValidationIssue[];
  /** The first issue's path. */
  readonly path: string;
  remote?: PeerInfo;
  constructor(message: string, issues?: ValidationIssue[], remote?: PeerInfo);
}
/** A page tried what its grants do not allow (code E_FORBIDDEN); nothing was delivered. */
export declare class ForbiddenError extends SwitchboardError {
  constructor(message: string);
}
/** emit() would pass `outbound.maxBytes` (code E_BUFFER_FULL); that event was not sent. */
export declare class BufferFullError extends SwitchboardError {
  constructor(message: string);
}
/** A hub limit was reached (code E_LIMIT); the message names the option to raise. */
export declare class LimitError extends SwitchboardError {
  constructor(message: string);
}
/**
 * A handler in another process threw. Keeps the remote's name, message, `code` (whatever type the
 * remote used), `cause`, own properties and stack (remote frames marked with the remote process).
 */
export declare class RemoteError extends SwitchboardError {
  readonly code: any;
  readonly remote: PeerInfo;
  /** The constructor name on the remote side, e.g. 'TypeError' or a user subclass. */
  readonly remoteClass: string;
  [key: string]: unknown;
  constructor(remote: PeerInfo, original: unknown, handlerName: string, localStack?: string);
}
/** A value that cannot cross (a function, a symbol, a cycle), or bytes that do not decode. */
export declare class CodecError extends Error {
  readonly code: 'E_UNSERIALIZABLE' | 'E_DECODE';
  /** Where the bad value is, e.g. "payload.items[3].fn" (encoding), or '' (decoding). */
  readonly path: string;
  constructor(code: 'E_UNSERIALIZABLE' | 'E_DECODE', message: string, path?: string);
}
