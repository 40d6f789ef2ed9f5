// What both builds of switchboard-ipc/next share: the Node.js one (lib/next.ts) and the one
// Next.js's Edge runtime and browsers get (lib/next-edge.ts). Nothing here imports Node.js.
import { InvalidArgumentError } from './errors.js';

export const PACKAGE = 'switchboard-ipc';

export function edgeMessage(what: string): string {
  return (
    `${what}: switchboard-ipc needs the Node.js runtime, and this code runs in Next.js's Edge runtime ` +
    '(or a browser), which has no sockets and cannot load native code. Add ' +
    "`export const runtime = 'nodejs'` to this route or page (or remove `runtime = 'edge'`), and call " +
    "getBus() only from server code; a page joins the bus with 'switchboard-ipc/renderer'."
  );
}

/**
 * True for the errors that mean "the hub is not there right now" (ConnectionLostError,
 * NoEndpointError, ClosedError): a route answers them with 503. Compares codes, not classes,
 * because Next.js may load this package more than once (ES module and CommonJS copies).
 */
export function isHubUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'E_CONNECTION_LOST' || code === 'E_NO_ENDPOINT' || code === 'E_CLOSED';
}

type Config = Record<string, unknown> & { serverExternalPackages?: string[] };
type ConfigFunction = (phase: string, context: unknown) => Config | Promise<Config>;

/**
 * The Next.js config with 'switchboard-ipc' in `serverExternalPackages`, so that the server
 * loads it with Node.js's own require (the native addon is found next to it) instead of bundling
 * it. Keeps every other setting and the packages already listed; takes a config object or a
 * config function.
 */
export function withSwitchboard<C>(config?: C): C {
  if (typeof config === 'function') {
    const fn = config as unknown as ConfigFunction;
    return (async (phase: string, context: unknown) => withSwitchboard(await fn(phase, context))) as unknown as C;
  }
  const base = (config ?? {}) as Config;
  if (typeof base !== 'object' || base === null) {
    throw new InvalidArgumentError('withSwitchboard() takes a Next.js config object or config function');
  }
  const list = base.serverExternalPackages ?? [];
  if (!Array.isArray(list)) {
    throw new InvalidArgumentError(`Expected "serverExternalPackages" to be an array of package names, got ${typeof list}`);
  }
  return { ...base, serverExternalPackages: list.includes(PACKAGE) ? [...list] : [...list, PACKAGE] } as C;
}
