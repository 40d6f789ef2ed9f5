// switchboard-ipc/renderer: the bus for a page (and an iframe or a web worker). The same EventBus
// as in Node.js, over a MessagePort only: `new EventBus({ port })`. This entry, and everything it
// imports, uses no Node.js built-in and no native addon, so a bundler for the browser takes it
// as it is (test/js/the-page-build-needs-nothing-from-node.test.mjs checks that with esbuild).
import type * as Public from '../types/index.js';
import { EventBus as EventBusImpl } from './event-bus.js';
import { WindowPort } from './window-port.js';

export * from './errors-public.js';

/**
 * The page's bus. Without a `port`, it waits for the one its preload's exposeBus() hands to this
 * window (switchboard-ipc/preload); with one, it joins over that (an iframe, a web worker).
 */
class PageBus extends EventBusImpl {
  constructor(options: ConstructorParameters<typeof EventBusImpl>[0] = {}) {
    const win = (globalThis as { window?: unknown }).window;
    super(options?.port === undefined && win ? { ...options, port: new WindowPort(win as never) } : options);
  }
}

/** The typed bus: `new EventBus<Events, Handlers>()` (through the preload) or `({ port })`. */
export const EventBus = PageBus as unknown as typeof Public.EventBus;
export type EventBus<
  Events extends Public.EventMap = Public.EventMap,
  Handlers extends Public.HandlerMap = Public.HandlerMap,
> = Public.EventBus<Events, Handlers>;

/** Where this bus runs: always 'renderer' in the page build. */
export function detectProcess(): 'renderer' {
  return 'renderer';
}
