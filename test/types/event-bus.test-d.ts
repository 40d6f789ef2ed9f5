// Type-level tests of the public API: payload and result types are inferred from the Events and
// Handlers maps, and wrong names or payloads fail to compile (each @ts-expect-error below must
// really be an error, or tsc fails with "Unused '@ts-expect-error' directive").
import { expectTypeOf } from 'expect-type';
import {
  EventBus,
  LimitError,
  NoHandlerError,
  RemoteError,
  detectProcess,
  type BusStats,
  type ConnectionEvent,
  type EventContext,
  type InvokeContext,
  type ProcessKind,
} from 'switchboard-ipc';

type Events = {
  'job:progress': { id: string; percent: number };
  'job:done': { id: string };
  'app:tick': void;
};
type Handlers = {
  'app:version': (req: void) => string;
  'fs:read': (req: { path: string }) => Uint8Array;
  'math:add': (req: { a: number; b: number }) => Promise<number>;
};

declare const bus: EventBus<Events, Handlers>;

// --- emit ---------------------------------------------------------------------------------
bus.emit('job:progress', { id: 'a', percent: 5 });
bus.emit('app:tick');
// @ts-expect-error: unknown topic
bus.emit('job:progres', { id: 'a', percent: 5 });
// @ts-expect-error: wrong payload type
bus.emit('job:progress', { id: 'a', percent: '5' });
// @ts-expect-error: missing payload field
bus.emit('job:progress', { id: 'a' });
// @ts-expect-error: payload required
bus.emit('job:done');

// --- on / once / off ------------------------------------------------------------------------
bus.on('job:progress', (data, ctx) => {
  expectTypeOf(data).toEqualTypeOf<{ id: string; percent: number }>();
  expectTypeOf(ctx).toEqualTypeOf<EventContext>();
  expectTypeOf(ctx.sender.pid).toBeNumber();
});
expectTypeOf(bus.on('job:done', () => {})).toEqualTypeOf<() => void>();
// @ts-expect-error: unknown topic
bus.on('job:nope', () => {});
bus.on('job:progress', (data) => {
  // @ts-expect-error: no such field on the payload
  data.total;
});
bus.on('connection', (ev) => expectTypeOf(ev).toEqualTypeOf<ConnectionEvent>());
bus.on('error', (err) => expectTypeOf(err).toEqualTypeOf<Error>());
bus.on('job:*', () => {});
expectTypeOf(bus.once('job:done')).toEqualTypeOf<Promise<{ id: string }>>();
bus.off('job:done');

// --- handle / invoke ------------------------------------------------------------------------
bus.handle('fs:read', async ({ path }, ctx) => {
  expectTypeOf(path).toBeString();
  expectTypeOf(ctx).toEqualTypeOf<InvokeContext>();
  return new Uint8Array(4);
});
bus.handle('app:version', () => '1.0.0');
bus.handle('math:add', ({ a, b }) => a + b);
// @ts-expect-error: wrong result type
bus.handle('app:version', () => 42);
// @ts-expect-error: unknown handler name
bus.handle('app:versions', () => '1');
// @ts-expect-error: wrong request type in the handler
bus.handle('fs:read', ({ file }: { file: string }) => new Uint8Array());

expectTypeOf(bus.invoke('app:version')).toEqualTypeOf<Promise<string>>();
expectTypeOf(bus.invoke('app:version', undefined, { timeout: 2000 })).toEqualTypeOf<Promise<string>>();
expectTypeOf(bus.invoke('fs:read', { path: '/etc/hosts' })).toEqualTypeOf<Promise<Uint8Array>>();
expectTypeOf(bus.invoke('math:add', { a: 1, b: 2 })).toEqualTypeOf<Promise<number>>();
bus.invoke('math:add', { a: 1, b: 2 }, { signal: new AbortController().signal });
// @ts-expect-error: unknown handler name
bus.invoke('math:sub', { a: 1, b: 2 });
// @ts-expect-error: wrong request type
bus.invoke('math:add', { a: 1, b: '2' });
// @ts-expect-error: request required
bus.invoke('fs:read');
// @ts-expect-error: bad option
bus.invoke('app:version', undefined, { timeout: '2s' });

// --- the rest ---------------------------------------------------------------------------------
expectTypeOf(bus.ready()).toEqualTypeOf<Promise<void>>();
expectTypeOf(bus.close()).toEqualTypeOf<Promise<void>>();
expectTypeOf(bus.childEnv()).toEqualTypeOf<Record<string, string>>();
expectTypeOf(bus.stats()).toEqualTypeOf<BusStats>();
expectTypeOf(bus.role).toEqualTypeOf<'hub' | 'client'>();
expectTypeOf(detectProcess()).toEqualTypeOf<ProcessKind>();
new EventBus<Events, Handlers>({ name: 'x', role: 'hub', timeout: 1000 });
// @ts-expect-error: not a role
new EventBus({ role: 'server' });
// The hub's limits (docs/SECURITY.md).
new EventBus({
  role: 'hub',
  maxSubscriptionsPerPeer: 1000,
  maxHandlersPerPeer: 100,
  maxPendingInvokesPerPeer: 4096,
  maxConnections: 64,
  maxHandshaking: 16,
  maxTopic: 256,
  handshakeMaxFrame: 8192,
  handshakeTimeoutMs: 5000,
  decodeLimits: { maxDepth: 16, maxNodes: 10000 },
});
// @ts-expect-error: a limit is a number
new EventBus({ role: 'hub', maxConnections: '64' });
expectTypeOf(new LimitError('x').code).toBeString();
const err = new NoHandlerError('x');
expectTypeOf(err.code).toBeString();
declare const remote: RemoteError;
expectTypeOf(remote.remote.pid).toBeNumber();

// An untyped bus accepts any names.
const loose = new EventBus();
loose.emit('anything', { x: 1 });

// --- flow control ---------------------------------------------------------------------------
expectTypeOf(bus.emit('app:tick')).toEqualTypeOf<boolean>();
expectTypeOf(bus.drained()).toEqualTypeOf<Promise<void>>();
bus.on('drain', () => {});
bus.on('dropped', (e) => {
  expectTypeOf(e.count).toEqualTypeOf<number>();
  expectTypeOf(e.topics).toEqualTypeOf<Record<string, number>>();
});
// @ts-expect-error: 'drain' passes no payload
bus.on('drain', (x: number) => x);
new EventBus({ outbound: { highWaterMark: 1 << 20, maxBytes: 1 << 26 }, lowWaterMark: 1, stallTimeoutMs: 500 });
// @ts-expect-error: outbound limits are numbers
new EventBus({ outbound: { maxBytes: '64M' } });
