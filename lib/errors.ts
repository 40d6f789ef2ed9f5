// Typed errors. Codes come from the core (docs/PROTOCOL.md, "Errors") or from lib/; this file is
// the one place that turns a code into a class. Every message says what happened and what to do.
import { withClassHeader } from './error-header.js';

export class SwitchboardError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An invoke got no reply within its timeout. */
export class TimeoutError extends SwitchboardError {
  constructor(message: string) {
    super('E_TIMEOUT', message);
  }
}

/** Nobody serves the invoked name. Arrives at once from the hub, never as a timeout. */
export class NoHandlerError extends SwitchboardError {
  constructor(message: string) {
    super('E_NO_HANDLER', message);
  }
}

/** The connection that carried an invoke (or the process serving it) went away. */
export class ConnectionLostError extends SwitchboardError {
  constructor(message: string) {
    super('E_CONNECTION_LOST', message);
  }
}

/** The caller's AbortSignal fired. Named AbortError, like the platform's own. */
export class AbortError extends SwitchboardError {
  constructor(message: string, reason?: unknown) {
    super('E_ABORTED', message, reason === undefined ? undefined : { cause: reason });
    this.name = 'AbortError';
  }
}

/** The bus was closed, or closed while the operation was pending. */
export class ClosedError extends SwitchboardError {
  constructor(message: string) {
    super('E_CLOSED', message);
  }
}

/** A bad argument or option; the message names it and the accepted values. */
export class InvalidArgumentError extends SwitchboardError {
  constructor(message: string) {
    super('E_INVALID_ARGUMENT', message);
  }
}

/** Disconnected, and the bounded offline queue is full: the emit was not queued. */
export class OfflineQueueFullError extends SwitchboardError {
  constructor(message: string) {
    super('E_OFFLINE_QUEUE_FULL', message);
  }
}

/**
 * emit() would take this bus's outbound buffer past `outbound.maxBytes`: the publisher has been
 * ignoring emit()'s false for too long. The event was not sent; the ones before it were.
 */
export class BufferFullError extends SwitchboardError {
  constructor(message: string) {
    super('E_BUFFER_FULL', message);
  }
}

/**
 * A peer attached with grants (a page) tried to emit, subscribe to, invoke or serve a name its
 * grants do not list. Nothing was delivered; the message says how main grants it.
 */
export class ForbiddenError extends SwitchboardError {
  constructor(message: string) {
    super('E_FORBIDDEN', message);
  }
}

/** One failed check of a schema: its message and where in the value (`'items[2].id'`, '' at the top). */
export interface ValidationIssue {
  message: string;
  path: string;
}

/**
 * A value failed the schema given to handle() or on(). For an invoke, the check runs in the
 * callee's process and the caller receives this (with `remote`, who checked). `path` is where the
 * first issue is; `issues` lists them all.
 */
export class ValidationError extends SwitchboardError {
  readonly issues: ValidationIssue[];
  readonly path: string;
  /** For a caller: the process whose handler's schema refused the request. */
  remote?: RemotePeer;
  constructor(message: string, issues: ValidationIssue[] = [], remote?: RemotePeer) {
    super('E_VALIDATION', message);
    this.name = 'ValidationError';
    this.issues = issues;
    this.path = issues[0]?.path ?? '';
    if (remote) this.remote = remote;
  }
}

/**
 * A configured hub limit was reached (subscriptions, handlers or pending invokes per peer, or
 * connections). The message names the option to raise; the connection stays up.
 */
export class LimitError extends SwitchboardError {
  constructor(message: string) {
    super('E_LIMIT', message);
  }
}

/** This process has nothing to join and was not asked to be the hub. */
export class NoEndpointError extends SwitchboardError {
  constructor(message: string) {
    super('E_NO_ENDPOINT', message);
  }
}

/**
 * This code runs where the bus cannot: Next.js's Edge runtime (no sockets, no native code) or a
 * browser. The message says which runtime to use instead.
 */
export class UnsupportedRuntimeError extends SwitchboardError {
  constructor(message: string) {
    super('E_UNSUPPORTED_RUNTIME', message);
    this.name = 'UnsupportedRuntimeError'; // an Edge bundle is minified: the class's own name is not kept
  }
}

export interface RemotePeer {
  id: number;
  role: string;
  name: string;
  pid: number;
}

/**
 * A handler in another process threw. The error keeps the remote's name, message, `code`,
 * `cause`, own properties and stack; the remote frames are marked with the remote process, and
 * the local frames (where invoke() was called) follow.
 */
export class RemoteError extends SwitchboardError {
  /** Who threw it. */
  readonly remote: RemotePeer;
  /** The constructor name on the remote side, e.g. 'TypeError' or a user subclass. */
  readonly remoteClass: string;
  [key: string]: unknown;

  constructor(remote: RemotePeer, original: unknown, handlerName: string, localStack?: string) {
    const src = (original ?? {}) as Record<string, unknown>;
    const message = typeof src.message === 'string' ? src.message : String(original);
    super(typeof src.code === 'string' ? src.code : 'E_REMOTE', message);
    this.remote = remote;
    // The sender's class: the decoder keeps a class it does not rebuild in `remoteClass`. A
    // thrown non-Error (a string, a number) is named by its type.
    const from = src.remoteClass;
    this.remoteClass =
      original === null || typeof original !== 'object'
        ? original === null ? 'null' : typeof original
        : typeof from === 'string' && from !== ''
          ? from
          : typeof src.constructor === 'function' && src.constructor !== Object
            ? src.constructor.name
            : 'Error';
    this.name = typeof src.name === 'string' ? src.name : 'Error';
    if (src.code !== undefined) (this as { code: unknown }).code = src.code;
    if (src.cause !== undefined) this.cause = src.cause;
    for (const key of Object.keys(src)) {
      if (key === 'message' || key === 'name' || key === 'stack' || key === 'code' || key === 'cause') continue;
      (this as Record<string, unknown>)[key] = src[key];
    }
    const where = `[remote ${remote.role || 'peer'} ${remote.name ? `'${remote.name}' ` : ''}pid ${remote.pid}]`;
    const remoteFrames = typeof src.stack === 'string'
      ? src.stack.split('\n').filter((l) => /^\s+at /.test(l)).map((l) => `    ${where} ${l.trim()}`)
      : [];
    const localFrames = (localStack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
    // The first line as util.inspect shows the sender's error: "QuotaError: over quota" for a
    // subclass that inherits the name "Error" (lib/error-header.ts).
    const header = withClassHeader(message === '' ? this.name : `${this.name}: ${message}`, this.remoteClass, this.name);
    this.stack = [
      header,
      ...remoteFrames,
      `    --- invoke('${handlerName}') in pid ${(globalThis as { process?: { pid?: number } }).process?.pid ?? 0} ---`,
      ...localFrames,
    ].join('\n');
  }
}

// Node.js's util.inspect would put "RemoteError" in front of a stack that starts with the
// error's name ("RemoteError [TypeError]: ..."). A RemoteError is shown as the sender's error is
// shown where it was thrown, first line included; its frames say that it is remote.
const inspectCustom = Symbol.for('nodejs.util.inspect.custom');
type Inspect = (value: unknown, options: object) => string;

Object.defineProperty(RemoteError.prototype, inspectCustom, {
  value: function inspect(this: RemoteError, depth: number, options: object, inspect: Inspect): string {
    // The default rendering: this object without the custom function (shadowed, then removed;
    // a frozen RemoteError cannot take the shadow, and is rendered without custom functions).
    let text: string;
    if (Object.isExtensible(this)) {
      Object.defineProperty(this, inspectCustom, { value: undefined, configurable: true });
      try {
        text = inspect(this, { ...options, depth });
      } finally {
        delete (this as unknown as Record<symbol, unknown>)[inspectCustom];
      }
    } else {
      text = inspect(this, { ...options, depth, customInspect: false });
    }
    const stack = String(this.stack);
    const header = stack.split('\n', 1)[0];
    const nl = text.indexOf('\n');
    const first = nl < 0 ? text : text.slice(0, nl);
    // Only the start of the first line differs ("RemoteError [TypeError]" for "TypeError").
    if (first !== header && first.endsWith(header.slice(this.name.length))) {
      return header + text.slice(first.length);
    }
    return text;
  },
  writable: true,
  configurable: true,
});

const byCode: Record<string, new (message: string) => SwitchboardError> = {
  E_TIMEOUT: TimeoutError,
  E_NO_HANDLER: NoHandlerError,
  E_CONNECTION_LOST: ConnectionLostError,
  E_CLOSED: ClosedError,
  E_INVALID_ARGUMENT: InvalidArgumentError,
  E_OFFLINE_QUEUE_FULL: OfflineQueueFullError,
  E_NO_ENDPOINT: NoEndpointError,
  E_LIMIT: LimitError,
  E_BUFFER_FULL: BufferFullError,
  E_VALIDATION: ValidationError,
  E_FORBIDDEN: ForbiddenError,
  E_UNSUPPORTED_RUNTIME: UnsupportedRuntimeError,
};

/** Turns a code from the core or the addon into its typed error. */
export function errorFromCode(code: string, message: string): SwitchboardError {
  const Class = byCode[code];
  return Class ? new Class(message) : new SwitchboardError(code || 'E_INTERNAL', message);
}

/** Re-throws an Error thrown by the addon (which carries `code`) as its typed error. */
export function fromNative(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { code?: unknown }).code === 'string') {
    return errorFromCode((err as unknown as { code: string }).code, err.message);
  }
  return err;
}
