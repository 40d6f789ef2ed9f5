// switchboard-ipc/next: Next.js server code on the bus, and the hub's side of a Next.js server.
import { EventBus, SwitchboardError, type EventBusOptions, type EventMap, type HandlerMap } from './index.js';

export * from './index.js';

/**
 * Thrown where the bus cannot run: Next.js's Edge runtime (`runtime = 'edge'`, middleware) or a
 * browser. The message says to use the Node.js runtime (`export const runtime = 'nodejs'`).
 */
export declare class UnsupportedRuntimeError extends SwitchboardError {
  constructor(message: string);
}

/**
 * This process's one bus. The first call connects (lazily, to the hub named by
 * SWITCHBOARD_ENDPOINT / SWITCHBOARD_TOKEN, which startNextServer() or `bus.childEnv()` put in
 * the environment); every later call, from any module layer or after a hot reload, returns the
 * same bus. In a process that owns the hub (Next.js served from Electron main or a Node.js hub),
 * it returns that hub's bus. `options` count on the first call only.
 *
 * While the hub is away, `invoke()` fails at once with ConnectionLostError (answer 503; see
 * isHubUnavailable()); the bus reconnects by itself. Throws NoEndpointError when there is no hub
 * to join, UnsupportedRuntimeError in the Edge runtime.
 */
export declare function getBus<Events extends EventMap = EventMap, Handlers extends HandlerMap = HandlerMap>(
  options?: Omit<EventBusOptions, 'role' | 'port'>,
): EventBus<Events, Handlers>;

/** True for ConnectionLostError, NoEndpointError and ClosedError (by `code`): answer 503. */
export declare function isHubUnavailable(err: unknown): boolean;

/** The Next.js config with 'switchboard-ipc' added to `serverExternalPackages` (object or function). */
export declare function withSwitchboard<C>(config?: C): C;

/** The topic the hub's bus emits (a NextExit) when a server started by startNextServer() exits. */
export declare const NEXT_EXIT_TOPIC: 'switchboard:next-exit';

export interface StartNextServerOptions {
  /** The Next.js app's folder (with its package.json, node_modules and, for start, its build). */
  dir: string;
  /** Default: a free port. */
  port?: number;
  /** Default: '127.0.0.1'. */
  hostname?: string;
  /** `next dev` instead of `next start` (or the standalone server.js when the build has one). */
  dev?: boolean;
  /** With `dev`: `next dev --turbopack`. */
  turbopack?: boolean;
  /** The hub's bus. Default: the hub created in this process. */
  bus?: EventBus<any, any>;
  /** More environment for the server (the bus's childEnv() and PORT/HOSTNAME come on top). */
  env?: Record<string, string | undefined>;
  /** Put in front of each line of the server's output (default '[next] '). */
  prefix?: string;
  /** Where the server's output lines go (default: this process's stdout/stderr, prefixed); false: nowhere. */
  log?: false | ((line: string, stream: 'stdout' | 'stderr') => void);
  /** How long to wait for the first HTTP answer (60 s; 120 s with `dev`). */
  readyTimeoutMs?: number;
  /** The path asked until the server answers (any status counts). */
  readyPath?: string;
  /** stop(): milliseconds between SIGTERM and SIGKILL (5000). */
  stopTimeoutMs?: number;
}

export interface NextExit {
  pid: number;
  code: number | null;
  signal: string | null;
  /** true when stop(), or the close of the bus, ended it. */
  stopped: boolean;
}

export interface NextServer {
  /** e.g. 'http://127.0.0.1:41234' */
  url: string;
  port: number;
  pid: number;
  mode: 'start' | 'standalone' | 'dev';
  /** Resolves when the server process exits (also emitted on the bus as NEXT_EXIT_TOPIC). */
  exited: Promise<NextExit>;
  /** SIGTERM to the server's process group, SIGKILL after stopTimeoutMs. Idempotent. */
  stop(): Promise<NextExit>;
}

/**
 * On the hub's side: starts the Next.js app in `dir` as a child process that joins this bus
 * (`next start`, the standalone server.js, or `next dev`), pipes its output with a prefix, and
 * resolves once it answers HTTP. Its exit is emitted on the bus as NEXT_EXIT_TOPIC; closing the
 * bus stops it. Inside Electron the child runs as Node.js (ELECTRON_RUN_AS_NODE).
 */
export declare function startNextServer(options: StartNextServerOptions): Promise<NextServer>;
