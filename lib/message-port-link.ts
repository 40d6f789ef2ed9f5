// The MessagePort link: a bus whose frames travel over a MessagePort-like object (Electron's
// MessagePortMain, a web MessagePort, a worker_threads MessagePort) to the hub's process, where
// main attached the other end with attachPort(). It stands where the native port stands for a
// socket client (lib/native.ts, NativePort), so the bus above it is the same.
//
// What crosses the port (docs/PROTOCOL.md, "MessagePort link"):
// - main -> page: first a welcome object { switchboard: 1, type: 'welcome', peerId }, then
//   Uint8Array batches of wire frames, exactly as on a socket (4-byte length, msgpack envelope);
//   and { switchboard: 1, type: 'ack', bytes } saying how many bytes of what the page sent the
//   hub has taken so far (flow control: what is posted and not acknowledged is the page's
//   outbound buffer, so its emit() returns false past its mark until acks come);
// - page -> main: Uint8Array batches of wire frames;
// - either side closes the port to leave; the other side sees 'close' where the port has one.
import type { NativePort, NativePortStats, OnFrames, OnState } from './native.js';

/** What the link needs of a port: any of the three kinds above. */
export interface PortLike {
  postMessage(message: unknown, transfer?: unknown[]): void;
  start?(): void;
  close?(): void;
  addEventListener?(type: string, listener: (event: any) => void): void;
  on?(type: string, listener: (event: any) => void): unknown;
  ref?(): void;
  unref?(): void;
}

export function isPortLike(v: unknown): v is PortLike {
  return v !== null && typeof v === 'object' && typeof (v as PortLike).postMessage === 'function';
}

/**
 * Calls `fn(data)` for every message of `port`, and `onClose` when it closes. Electron's
 * MessagePortMain is an EventEmitter whose 'message' carries { data }; a web MessagePort is an
 * EventTarget whose MessageEvent carries .data; worker_threads' MessagePort is both, and its
 * EventTarget side is used.
 */
export function listen(port: PortLike, fn: (data: unknown) => void, onClose: () => void): void {
  if (typeof port.addEventListener === 'function') {
    port.addEventListener('message', (ev: { data: unknown }) => fn(ev.data));
    port.addEventListener('close', () => onClose());
  } else if (typeof port.on === 'function') {
    port.on('message', (ev: { data: unknown }) => fn(ev?.data));
    port.on('close', () => onClose());
  } else {
    throw new TypeError('the port has neither addEventListener() nor on()');
  }
  port.start?.();
}

const closedStats = (): NativePortStats => ({
  state: 'closed',
  connects: 0,
  attempts: 0,
  offlineQueued: 0,
  inFlight: 0,
  framesIn: 0,
  framesOut: 0,
  writevCalls: 0,
});

export class MessagePortLink implements NativePort {
  #port: PortLike;
  #onFrames: OnFrames;
  #onState: OnState;
  #peerId = 0;
  #state: NativePortStats['state'] = 'connecting';
  #framesIn = 0;
  #framesOut = 0;
  #posts = 0;
  // Flow control: bytes posted, and bytes main says the hub has taken. The difference is this
  // bus's outbound buffer: emit() returns false past its mark and refuses past outbound.maxBytes.
  #posted = 0;
  #acked = 0;
  #drainBelow = -1; // notifyDrain()'s mark while it waits

  constructor(port: PortLike, onFrames: OnFrames, onState: OnState) {
    this.#port = port;
    this.#onFrames = onFrames;
    this.#onState = onState;
    listen(port, (data) => this.#receive(data), () => this.#lost('the port was closed by the other side'));
    // Like a socket client, the bus does not hold the process open until it is busy (ref()).
    port.unref?.();
  }

  #receive(data: unknown): void {
    if (this.#state === 'closed') return;
    if (data instanceof Uint8Array) {
      this.#framesIn++;
      // The bus reads views of what it is given (bulk values): this buffer is ours alone.
      this.#onFrames(data as Buffer);
      return;
    }
    const msg = data as { switchboard?: unknown; type?: unknown; peerId?: unknown } | null;
    const ackMsg = data as { switchboard?: unknown; type?: unknown; bytes?: unknown } | null;
    if (ackMsg?.switchboard === 1 && ackMsg.type === 'ack' && typeof ackMsg.bytes === 'number') {
      if (ackMsg.bytes > this.#acked) this.#acked = Math.min(ackMsg.bytes, this.#posted);
      if (this.#drainBelow >= 0 && this.outbound() <= this.#drainBelow) {
        this.#drainBelow = -1;
        this.#onState('drain', '', '');
      }
      return;
    }
    if (msg?.switchboard === 1 && msg.type === 'welcome' && typeof msg.peerId === 'number') {
      this.#peerId = msg.peerId;
      this.#state = 'connected';
      this.#onState('connected', '', '');
    }
  }

  #lost(message: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#onState('closed', 'E_CONNECTION_LOST', message);
  }

  submit(frames: Uint8Array): number {
    if (this.#state === 'closed') {
      const err = new Error('this bus is closed') as Error & { code: string };
      err.code = 'E_CLOSED';
      throw err;
    }
    // The bus reuses its batch buffer: the port gets a copy it owns.
    this.#port.postMessage(frames.slice());
    this.#posts++;
    this.#framesOut++;
    this.#posted += frames.byteLength;
    return this.outbound();
  }

  outbound(): number {
    // A MessagePort cannot say what it holds: what main has not acknowledged is still ours.
    return this.#posted - this.#acked;
  }

  notifyDrain(below: number): void {
    if (this.outbound() <= below) {
      queueMicrotask(() => this.#onState('drain', '', ''));
    } else {
      this.#drainBelow = below;
    }
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#port.close?.();
  }

  peerId(): number {
    return this.#peerId;
  }

  stats(): NativePortStats {
    if (this.#state === 'closed') return closedStats();
    return {
      state: this.#state,
      connects: this.#peerId ? 1 : 0,
      attempts: 1,
      offlineQueued: 0,
      inFlight: 0,
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      writevCalls: this.#posts,
    };
  }

  ref(): void {
    this.#port.ref?.();
  }

  unref(): void {
    this.#port.unref?.();
  }
}
