// switchboard-ipc/next as Next.js's Edge runtime and browsers resolve it (the "edge-light",
// "worker" and "browser" conditions of package.json's exports): no Node.js, no native code. The
// bus cannot run there; every call that would need it throws UnsupportedRuntimeError saying to
// use the Node.js runtime, at the line that calls it.
import { UnsupportedRuntimeError } from './errors.js';
import { edgeMessage, isHubUnavailable, withSwitchboard } from './next-shared.js';

export * from './errors-public.js';
export { UnsupportedRuntimeError } from './errors.js';
export { isHubUnavailable, withSwitchboard };

export const NEXT_EXIT_TOPIC = 'switchboard:next-exit';

export function getBus(): never {
  throw new UnsupportedRuntimeError(edgeMessage('getBus()'));
}

export function startNextServer(): Promise<never> {
  return Promise.reject(new UnsupportedRuntimeError(edgeMessage('startNextServer()')));
}
