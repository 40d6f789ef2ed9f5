// The page's side of the preload handshake (lib/preload.ts): a port that becomes real when the
// preload posts one to this window. Until then what the bus sends waits here, in order, so that
// `new EventBus()` can be used at once, as in Node.js.
import type { PortLike } from './message-port-link.js';

const WINDOW_MESSAGE = 'switchboard:port';
const WINDOW_REQUEST = 'switchboard:want-port';

interface WindowLike {
  addEventListener(type: 'message', fn: (ev: { source: unknown; data: any; ports?: readonly any[] }) => void): void;
  postMessage(message: unknown, targetOrigin: string): void;
  location?: { origin?: string };
}

export class WindowPort implements PortLike {
  #port: PortLike | undefined;
  #waiting: unknown[] = [];
  #listeners: Array<[string, (ev: any) => void]> = [];
  #closed = false;

  constructor(win: WindowLike) {
    win.addEventListener('message', (ev) => {
      // Only from this window (the preload posts to its own window), and only once.
      if (this.#port || this.#closed || ev.source !== win || ev.data?.type !== WINDOW_MESSAGE) return;
      const port = ev.ports?.[0] as PortLike | undefined;
      if (!port) return;
      this.#port = port;
      for (const [type, fn] of this.#listeners) port.addEventListener!(type, fn);
      port.start?.();
      for (const m of this.#waiting.splice(0)) port.postMessage(m);
    });
    // The preload hands its port over when asked: before or after it got it from main.
    const origin = win.location?.origin;
    win.postMessage({ type: WINDOW_REQUEST }, origin && origin !== 'null' ? origin : '*');
  }

  postMessage(message: unknown): void {
    if (this.#closed) return;
    if (this.#port) this.#port.postMessage(message);
    else this.#waiting.push(message);
  }

  addEventListener(type: string, fn: (ev: any) => void): void {
    this.#listeners.push([type, fn]);
    this.#port?.addEventListener!(type, fn);
  }

  start(): void {}

  close(): void {
    this.#closed = true;
    this.#waiting = [];
    this.#port?.close?.();
  }
}
