// The page build's types: the same typed EventBus, joined over a port.
import { expectTypeOf } from 'expect-type';
import { EventBus, ForbiddenError, detectProcess } from 'switchboard-ipc/renderer';

type Events = { 'job:progress': { id: string; percent: number } };
type Handlers = { 'app:version': (req: void) => string };
declare const port: MessagePort;
const bus = new EventBus<Events, Handlers>({ port });
expectTypeOf(bus.invoke('app:version')).toEqualTypeOf<Promise<string>>();
expectTypeOf(detectProcess()).toEqualTypeOf<'renderer'>();
expectTypeOf<ForbiddenError['code']>().toEqualTypeOf<string>();
// @ts-expect-error: unknown topic
bus.emit('job:progres', { id: 'a', percent: 1 });
