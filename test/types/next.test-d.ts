// switchboard-ipc/next's types: getBus<Events, Handlers>() is the typed bus; wrong topics,
// payloads and handler names fail to compile; withSwitchboard keeps the config's type.
import { expectTypeOf } from 'expect-type';
import {
  type EventBus,
  type NextExit,
  type NextServer,
  NEXT_EXIT_TOPIC,
  UnsupportedRuntimeError,
  getBus,
  isHubUnavailable,
  startNextServer,
  withSwitchboard,
} from 'switchboard-ipc/next';

type Events = { 'job:start': { id: string; steps: number }; 'job:progress': { id: string; percent: number } };
type Handlers = { 'math:divide': (req: { a: number; b: number }) => number; 'app:version': (req: void) => string };

const bus = getBus<Events, Handlers>();
expectTypeOf(bus).toEqualTypeOf<EventBus<Events, Handlers>>();
expectTypeOf(bus.invoke('math:divide', { a: 1, b: 2 })).toEqualTypeOf<Promise<number>>();
expectTypeOf(bus.invoke('app:version')).toEqualTypeOf<Promise<string>>();
bus.emit('job:start', { id: 'a', steps: 3 });
bus.on('job:progress', (p) => expectTypeOf(p.percent).toEqualTypeOf<number>());
// @ts-expect-error: unknown topic
bus.emit('job:stat', { id: 'a', steps: 3 });
// @ts-expect-error: wrong payload
bus.emit('job:start', { id: 'a', steps: '3' });
// @ts-expect-error: unknown handler
bus.invoke('math:divid', { a: 1, b: 2 });
// @ts-expect-error: wrong request
bus.invoke('math:divide', { a: 1 });
// @ts-expect-error: getBus() joins as a client or returns the hub: no role
getBus({ role: 'hub' });
getBus({ name: 'web', timeout: 2000 });

const config = withSwitchboard({ reactStrictMode: true, serverExternalPackages: ['sharp'] });
expectTypeOf(config.reactStrictMode).toEqualTypeOf<boolean>();
expectTypeOf(isHubUnavailable(new Error())).toEqualTypeOf<boolean>();
expectTypeOf(NEXT_EXIT_TOPIC).toEqualTypeOf<'switchboard:next-exit'>();
expectTypeOf<UnsupportedRuntimeError['code']>().toEqualTypeOf<string>();

declare const hub: EventBus<{ 'switchboard:next-exit': NextExit }>;
const server = startNextServer({ dir: './web', bus: hub, dev: true, port: 3000 });
expectTypeOf(server).toEqualTypeOf<Promise<NextServer>>();
// @ts-expect-error: dir is required
startNextServer({ port: 3000 });
// @ts-expect-error: port is a number
startNextServer({ dir: './web', port: '3000' });
