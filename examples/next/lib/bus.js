// The app's one bus, typed. getBus() returns the same bus to every route, server action and
// server component of this process (and after every hot reload); it connects on first use to
// the hub that started this server (startNextServer() put the endpoint in its environment).
import { getBus, isHubUnavailable } from 'switchboard-ipc/next';

/**
 * @typedef {{
 *   'job:start': { id: string, steps: number },
 *   'job:progress': { id: string, step: number, steps: number, percent: number },
 *   'job:done': { id: string, steps: number, percent: number },
 * }} Events
 * @typedef {{
 *   'app:info': () => { pid: number, name: string, started: Date, uptimeMs: number },
 *   'math:divide': (req: { a: number, b: number }) => number,
 * }} Handlers
 */

/** @returns {import('switchboard-ipc').EventBus<Events, Handlers>} */
export function bus() {
  return getBus();
}

/**
 * The answer for an error from the bus: 503 while the hub is away (the bus reconnects by itself;
 * the caller retries), 422 for a handler's own error, else 500. Always JSON with the error's
 * class, code and message.
 */
export function errorResponse(err) {
  const status = isHubUnavailable(err) ? 503 : err?.remote ? 422 : 500;
  const headers = status === 503 ? { 'retry-after': '1' } : {};
  return Response.json(
    { error: { name: err?.name ?? 'Error', code: err?.code ?? 'E_INTERNAL', message: String(err?.message ?? err) } },
    { status, headers },
  );
}

/**
 * Calls `fn` when this server is asked to stop (SIGTERM from startNextServer()'s stop() or the
 * hub's close, or Ctrl-C). `next start` then waits for every open response to end before it
 * exits, so a stream that never ends (Server-Sent Events) must end here, or the server is killed
 * after stop()'s timeout instead of exiting. Returns a function that forgets `fn`.
 */
export function onShutdown(fn) {
  const state = (globalThis[Symbol.for('switchboard-next-example.shutdown')] ??= { fns: new Set(), hooked: false, stopping: false });
  if (!state.hooked) {
    state.hooked = true;
    const run = () => {
      state.stopping = true;
      [...state.fns].forEach((f) => f());
    };
    process.once('SIGTERM', run);
    process.once('SIGINT', run);
  }
  // A stream opened while the server is already stopping (an EventSource reconnects a few seconds
  // after its stream ended) ends at once too: the signal has come and gone.
  if (state.stopping) {
    queueMicrotask(fn);
    return () => {};
  }
  state.fns.add(fn);
  return () => state.fns.delete(fn);
}
