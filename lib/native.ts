// The native surface, declared once. Everything the addon (addon/*.cc) exports is typed here;
// the friendly API, option checks and typed errors live in the rest of lib/.
//
// Crossing rules (see addon/README.md):
// - Every crossing carries a batch. `submit` takes all frames of one JavaScript turn as one
//   buffer; `onFrames` receives every frame of one I/O turn as one buffer. A buffer holds whole
//   wire frames back to back: 4-byte big-endian length, then a msgpack envelope
//   (docs/PROTOCOL.md); lib/wire.ts reads and writes them.
// - Native calls throw an Error whose `code` is a protocol error name (E_ENDPOINT_IN_USE...);
//   lib/errors.ts turns it into a typed error.
// - Callbacks run on the JavaScript thread that created the object. A port or hub keeps the
//   event loop alive only while ref()'d.
import { loadNative } from './native-loader.cjs';

export type NativePortState = 'connecting' | 'connected' | 'reconnecting' | 'closed' | 'drain';

export type OnFrames = (frames: Buffer) => void;
/**
 * `code` and `message` explain a drop or a refusal; both are '' for a normal transition. 'drain'
 * is not a state: the port's outbound buffer fell to the mark given to notifyDrain().
 */
export type OnState = (state: NativePortState, code: string, message: string) => void;

export interface NativePeerEvent {
  type: 'joined' | 'left' | 'rejected';
  id: number;
  role: string;
  name: string;
  pid: number;
  code: string;
  message: string;
}

export interface NativePortStats {
  state: NativePortState;
  connects: number;
  attempts: number;
  offlineQueued: number;
  inFlight: number;
  framesIn: number;
  framesOut: number;
  writevCalls: number;
}

export interface NativeHubStats {
  peers: number;
  handshaking: number;
  subscriptions: number;
  handlers: number;
  pendingInvokes: number;
  eventsRouted: number;
  eventsDropped: number;
  invokesRouted: number;
  paused: number;
  parkedBytes: number;
  stalled: number;
  pauses: number;
  stalls: number;
  queuedBytes: number;
  peakQueuedBytes: number;
  framesIn: number;
  framesOut: number;
  writevCalls: number;
  rejected: number;
}

export interface NativePort {
  /**
   * Queues whole wire frames for the hub; returns at once with the bytes the port now holds
   * unsent (flow control). Throws E_CLOSED after close().
   */
  submit(frames: Uint8Array): number;
  /** Bytes submitted and not yet written (or, for the hub's own port, not yet routed). */
  outbound(): number;
  /** onState('drain') once outbound() <= below (at once if it is so already). */
  notifyDrain(below: number): void;
  /** Stops the I/O thread (joined before returning); no callback runs afterwards. Idempotent. */
  close(): void;
  /** The id the hub assigned; 0 until welcomed. */
  peerId(): number;
  stats(): NativePortStats;
  ref(): void;
  unref(): void;
}

export interface NativeHubOptions {
  endpoint?: string;
  token?: string;
  name?: string;
  maxFrame?: number;
  highWaterMark?: number;
  lowWaterMark?: number;
  stallTimeoutMs?: number;
  overflow?: 'drop' | 'disconnect';
  handshakeTimeoutMs?: number;
  handshakeMaxFrame?: number;
  maxTopic?: number;
  maxSubscriptionsPerPeer?: number;
  maxHandlersPerPeer?: number;
  maxPendingInvokesPerPeer?: number;
  maxConnections?: number;
  maxHandshaking?: number;
  pingIntervalMs?: number;
  pingMisses?: number;
  /** false: connections wait in the socket's backlog until acceptPeers(); default true. */
  acceptAtStart?: boolean;
}

export interface NativeHub {
  readonly endpoint: string;
  readonly token: string;
  /**
   * Joins this process to its own hub without a socket. With `grants`, the peer may do only
   * what they list (a page attached by main; core/grants.h).
   */
  connectLocal(
    role: string,
    name: string,
    onFrames: OnFrames,
    onState: OnState,
    grants?: NativeGrants,
    page?: { origin?: string; window?: number },
  ): NativePort;
  /**
   * Begins accepting connections (after acceptAtStart: false). What a local port submitted
   * before this call is routed before the first peer is accepted. Idempotent; a no-op once closed.
   */
  acceptPeers(): void;
  stats(): NativeHubStats;
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeGrants {
  emit?: string[];
  subscribe?: string[];
  invoke?: string[];
  handle?: string[];
}

export interface NativeClientOptions {
  endpoint: string;
  token: string;
  role: string;
  name: string;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  maxAttempts?: number;
  offlineMaxFrames?: number;
  offlineMaxBytes?: number;
  maxFrame?: number;
}

export interface NativeBinding {
  readonly protocolVersion: number;
  /** True where external (zero-copy) ArrayBuffers are allowed; false inside Electron. */
  readonly externalBuffers: boolean;
  startHub(options: NativeHubOptions, onPeer: ((event: NativePeerEvent) => void) | null): NativeHub;
  connect(options: NativeClientOptions, onFrames: OnFrames, onState: OnState): NativePort;
  /** Hubs running in this process (any thread): how a worker finds its process's hub. */
  localHubs(): Array<{ endpoint: string; token: string; name: string }>;
}

let cached: NativeBinding | undefined;

/** Loads the addon once per JavaScript environment (main thread or worker). */
export function native(): NativeBinding {
  cached ??= loadNative() as NativeBinding;
  return cached;
}
