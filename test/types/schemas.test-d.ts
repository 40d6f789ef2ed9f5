// Schemas (Standard Schema: zod, valibot) on listeners and handlers: the schema's output type must
// be the topic's payload or the handler's request, or the call does not compile.
import { expectTypeOf } from 'expect-type';
import * as v from 'valibot';
import { z } from 'zod';
import { EventBus, ValidationError } from 'switchboard-ipc';

type Events = { 'job:progress': { id: string; percent: number } };
type Handlers = { 'math:add': (req: { a: number; b: number }) => number };
declare const bus: EventBus<Events, Handlers>;

bus.on('job:progress', (d) => expectTypeOf(d.percent).toEqualTypeOf<number>(), {
  schema: z.object({ id: z.string(), percent: z.number() }),
});
bus.on('job:progress', () => {}, { schema: v.object({ id: v.string(), percent: v.number() }) });
bus.handle('math:add', ({ a, b }) => a + b, { schema: v.object({ a: v.number(), b: v.number() }) });
bus.handle('math:add', ({ a, b }) => a + b, { schema: z.object({ a: z.number(), b: z.number() }) });
// @ts-expect-error: the schema's output is not the topic's payload
bus.on('job:progress', () => {}, { schema: z.object({ id: z.number() }) });
// @ts-expect-error: the schema's output is not the handler's request
bus.handle('math:add', ({ a, b }) => a + b, { schema: v.object({ a: v.string(), b: v.number() }) });
// @ts-expect-error: not a schema
bus.handle('math:add', ({ a, b }) => a + b, { schema: { parse: () => 1 } });

declare const err: ValidationError;
expectTypeOf(err.path).toEqualTypeOf<string>();
expectTypeOf(err.issues[0]!.message).toEqualTypeOf<string>();
