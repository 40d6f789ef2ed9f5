// switchboard-ipc/next: Next.js server code on the bus (getBus, withSwitchboard), and the hub's
// side of a Next.js server (startNextServer). The public types are types/next.d.ts.
//
// One bus per process, whatever loads this file: Next.js loads the package once per module layer
// (the server, RSC and SSR bundles, as CommonJS or ES modules) and again after a hot reload, so
// the bus lives on globalThis under PROCESS_BUS (lib/event-bus.ts), where a hub created in this
// process (Next.js served from Electron main) has already put itself.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type * as Public from '../types/next.js';
import type { ConnectionEvent, EventBusOptions } from '../types/index.js';
import { EventBus as BusImpl, PROCESS_BUS } from './event-bus.js';
import {
  ConnectionLostError,
  InvalidArgumentError,
  NoEndpointError,
  SwitchboardError,
  TimeoutError,
  UnsupportedRuntimeError,
} from './errors.js';
import { edgeMessage, isHubUnavailable, withSwitchboard } from './next-shared.js';
import './index.js'; // the Node.js platform (native addon, process detection)

export * from './index.js';
export { UnsupportedRuntimeError } from './errors.js';
export { isHubUnavailable, withSwitchboard };

/** The event the hub's bus emits when a server started by startNextServer() exits. */
export const NEXT_EXIT_TOPIC = 'switchboard:next-exit';

type Registry = Record<symbol, BusImpl | undefined>;
type AnyBus = BusImpl;

function assertNodeRuntime(what: string): void {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; versions?: { node?: string } } }).process;
  if (proc?.env?.NEXT_RUNTIME === 'edge' || !proc?.versions?.node) {
    throw new UnsupportedRuntimeError(edgeMessage(what));
  }
}

/**
 * getBus()'s client. While the hub is away (the bus is reconnecting), an invoke fails at once
 * with ConnectionLostError instead of waiting in the offline queue for its timeout: a request
 * handler should answer 503 now, not in 30 s. Emits still wait in the bounded offline queue and
 * go out after the reconnect, as on any client.
 */
class NextClientBus extends BusImpl {
  #away = false;
  #why = '';

  constructor(options: EventBusOptions) {
    super(options);
    this.on('connection', (ev: ConnectionEvent) => {
      this.#away = ev.state === 'disconnected' || ev.state === 'reconnecting';
      if (ev.message) this.#why = ev.message;
    });
  }

  override invoke(name: string, req?: unknown, options?: { timeout?: number; signal?: AbortSignal }): Promise<any> {
    if (this.#away) {
      return Promise.reject(
        new ConnectionLostError(
          `invoke('${name}'): the hub is not reachable${this.#why ? ` (${this.#why})` : ''}; nothing was sent. ` +
            'The bus reconnects by itself when the hub is back on the same endpoint and token: answer this request ' +
            'with 503 (isHubUnavailable(err) says when to) and let the caller retry.',
        ),
      );
    }
    return super.invoke(name, req, options);
  }
}

export function getBus(options: Omit<EventBusOptions, 'role' | 'port'> = {}): AnyBus {
  assertNodeRuntime('getBus()');
  const registry = globalThis as unknown as Registry;
  const current = registry[PROCESS_BUS];
  if (current) return current; // a closed bus takes itself off (lib/event-bus.ts)
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`Expected getBus()'s options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  if ('role' in options || 'port' in options) {
    throw new InvalidArgumentError(
      "getBus() always joins as a client (or returns this process's hub): it takes no \"role\" or \"port\" option",
    );
  }
  let bus: AnyBus;
  try {
    bus = new NextClientBus({ ...options, role: 'client' });
  } catch (err) {
    if (err instanceof NoEndpointError) {
      throw new NoEndpointError(
        'getBus(): this Next.js server has no hub to join (SWITCHBOARD_ENDPOINT is not set, and no hub runs in this ' +
          "process). Start it from the hub's process with startNextServer() from 'switchboard-ipc/next', or spawn it " +
          "with the hub's bus.childEnv() in its environment, or serve Next.js from inside the process that owns the hub.",
      );
    }
    throw err;
  }
  registry[PROCESS_BUS] = bus;
  return bus;
}

// --- The hub's side: startNextServer() --------------------------------------------------------

export interface StartNextServerOptions {
  dir: string;
  port?: number;
  hostname?: string;
  dev?: boolean;
  turbopack?: boolean;
  bus?: AnyBus;
  env?: Record<string, string | undefined>;
  prefix?: string;
  log?: false | ((line: string, stream: 'stdout' | 'stderr') => void);
  readyTimeoutMs?: number;
  readyPath?: string;
  stopTimeoutMs?: number;
}

export interface NextExit {
  pid: number;
  code: number | null;
  signal: string | null;
  /** true when stop() (or the bus's close) ended it. */
  stopped: boolean;
}

export interface NextServer {
  url: string;
  port: number;
  pid: number;
  mode: 'start' | 'standalone' | 'dev';
  exited: Promise<NextExit>;
  stop(): Promise<NextExit>;
}

function freePort(hostname: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, hostname, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function checkOptions(options: StartNextServerOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('startNextServer() takes an options object such as { dir: "./web" }');
  }
  if (typeof options.dir !== 'string' || options.dir.length === 0) {
    throw new InvalidArgumentError('Expected the "dir" option of startNextServer() to be the Next.js app\'s folder (a string)');
  }
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) {
    throw new InvalidArgumentError(`Expected the "port" option to be an integer from 0 to 65535 (0: a free port), got ${String(options.port)}`);
  }
  for (const key of ['readyTimeoutMs', 'stopTimeoutMs'] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isInteger(v) || v <= 0)) {
      throw new InvalidArgumentError(`Expected the "${key}" option to be a positive integer, got ${String(v)}`);
    }
  }
  if (options.log !== undefined && options.log !== false && typeof options.log !== 'function') {
    throw new InvalidArgumentError('Expected the "log" option to be a function (line, stream) or false');
  }
}

export async function startNextServer(options: StartNextServerOptions): Promise<NextServer> {
  assertNodeRuntime('startNextServer()');
  checkOptions(options);
  const registered = (globalThis as unknown as Registry)[PROCESS_BUS];
  const bus = options.bus ?? (registered?.role === 'hub' ? registered : undefined);
  if (!bus) {
    throw new InvalidArgumentError(
      "startNextServer() needs the hub's bus: create it first (new EventBus({ role: 'hub' }), or the bus of " +
        "'switchboard-ipc/main' in Electron) or pass it as { bus }",
    );
  }
  const busEnv = bus.childEnv(); // throws ClosedError on a closed bus
  const dir = resolve(options.dir);
  if (!existsSync(join(dir, 'package.json'))) {
    throw new InvalidArgumentError(`startNextServer(): ${dir} is not a Next.js app (it has no package.json)`);
  }
  const hostname = options.hostname ?? '127.0.0.1';
  const port = options.port ? options.port : await freePort(hostname);
  const standalone = join(dir, '.next', 'standalone', 'server.js');
  const mode: NextServer['mode'] = options.dev ? 'dev' : existsSync(standalone) ? 'standalone' : 'start';
  let args: string[];
  let cwd = dir;
  if (mode === 'standalone') {
    args = [standalone];
    cwd = dirname(standalone);
  } else {
    let bin: string;
    try {
      bin = createRequire(join(dir, 'package.json')).resolve('next/dist/bin/next');
    } catch {
      throw new InvalidArgumentError(`startNextServer(): Next.js is not installed in ${dir}: run \`npm install next\` there`);
    }
    args = [bin, mode, dir, '--port', String(port), '--hostname', hostname, ...(mode === 'dev' && options.turbopack ? ['--turbopack'] : [])];
  }
  const electron = Boolean((process.versions as Record<string, string | undefined>).electron);
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...options.env,
    ...busEnv,
    PORT: String(port),
    HOSTNAME: hostname,
    // Inside Electron, process.execPath is Electron itself: run it as plain Node.js.
    ...(electron ? { ELECTRON_RUN_AS_NODE: '1' } : {}),
  };
  // Its own process group, so that stop() also ends what it forks (next dev runs its server in a
  // child process).
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid ?? 0;
  const prefix = options.prefix ?? '[next] ';
  const tail: string[] = [];
  const log =
    options.log === false
      ? () => {}
      : (options.log ?? ((line: string, stream: 'stdout' | 'stderr') => (stream === 'stdout' ? process.stdout : process.stderr).write(`${prefix}${line}\n`)));
  for (const stream of ['stdout', 'stderr'] as const) {
    const source = child[stream];
    if (!source) continue;
    createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      log(line, stream);
    });
  }

  let stopping = false;
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  };
  const onProcessExit = (): void => signalGroup('SIGTERM');
  const onBusState = (ev: ConnectionEvent): void => {
    if (ev.state === 'closed') void stop();
  };
  const exited = new Promise<NextExit>((resolveExit) => {
    child.once('error', (err) => {
      tail.push(String(err));
    });
    child.once('exit', (code, signal) => {
      process.removeListener('exit', onProcessExit);
      bus.off('connection', onBusState);
      const info: NextExit = { pid, code, signal, stopped: stopping };
      try {
        bus.emit(NEXT_EXIT_TOPIC, info);
      } catch {
        // the bus is closed: nobody to tell
      }
      resolveExit(info);
    });
  });
  process.on('exit', onProcessExit);
  bus.on('connection', onBusState);

  const stopTimeout = options.stopTimeoutMs ?? 5000;
  const stop = async (): Promise<NextExit> => {
    if (!stopping && child.exitCode === null && child.signalCode === null) {
      stopping = true;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), stopTimeout);
      void exited.then(() => clearTimeout(timer));
    }
    return exited;
  };

  // Ready: any HTTP answer (a 404 included) from the server.
  const url = `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`;
  const readyPath = options.readyPath ?? '/_next/static/switchboard-ready';
  const limit = options.readyTimeoutMs ?? (mode === 'dev' ? 120_000 : 60_000);
  const started = Date.now();
  let exitedEarly: NextExit | undefined;
  void exited.then((info) => (exitedEarly = info));
  for (;;) {
    if (exitedEarly) {
      throw new SwitchboardError(
        'E_NEXT_EXITED',
        `startNextServer(): \`next ${mode}\` in ${dir} exited (code ${exitedEarly.code}, signal ${exitedEarly.signal}) ` +
          `before it answered HTTP. Its last lines:\n  ${tail.join('\n  ')}` +
          (mode === 'start' ? '\n(Has the app been built? Run `next build` in it first.)' : ''),
      );
    }
    if (Date.now() - started > limit) {
      await stop();
      throw new TimeoutError(
        `startNextServer(): \`next ${mode}\` in ${dir} did not answer HTTP on ${url} within ${limit} ms; it was stopped. ` +
          `Raise readyTimeoutMs if it is just slow. Its last lines:\n  ${tail.join('\n  ')}`,
      );
    }
    try {
      const res = await fetch(url + readyPath, { signal: AbortSignal.timeout(5000), redirect: 'manual' });
      await res.body?.cancel();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, port, pid, mode, exited, stop };
}

// Compile-time conformance with types/next.d.ts.
const _get: typeof Public.getBus = getBus as unknown as typeof Public.getBus;
const _start: (o: Public.StartNextServerOptions) => Promise<Public.NextServer> = startNextServer as never;
void _get;
void _start;
