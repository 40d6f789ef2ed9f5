// What the bus needs from where it runs, set once by the entry point that is loaded: the Node.js
// entry (lib/index.ts) installs the native addon and Node's process detection; the page entry
// (lib/renderer.ts) leaves the defaults, so that a browser bundle of the bus pulls in no Node.js
// built-in and no .node file (a page joins only over a MessagePort).
import { NoEndpointError } from './errors.js';
import type { ProcessKind } from './detect.js';
import type { NativeBinding } from './native.js';

export interface Platform {
  native(): NativeBinding;
  detectProcess(): ProcessKind;
}

let current: Platform = {
  native() {
    throw new NoEndpointError(
      "A page has no socket and no hub: join with new EventBus({ port }) over the port main attached (bus.attachPort), or through the preload's exposeBus()",
    );
  },
  detectProcess: () => 'renderer',
};

export function setPlatform(platform: Platform): void {
  current = platform;
}

export function platform(): Platform {
  return current;
}

/** This process's id where there is one (a page has none: 0). */
export function pid(): number {
  return (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;
}
