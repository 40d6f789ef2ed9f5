// switchboard-ipc: one typed EventBus for every process of an Electron app.
// The public types are types/index.d.ts; this file exports the implementation and checks, at
// compile time, that it satisfies them.
import type * as Public from '../types/index.js';
import { EventBus as EventBusImpl } from './event-bus.js';
import { detectProcess } from './detect.js';
import { native } from './native.js';
import { setPlatform } from './platform.js';

// In Node.js (and Electron's main, preload and utility processes) the bus has the native addon.
setPlatform({ native, detectProcess });

export { detectProcess } from './detect.js';
export * from './errors-public.js';

/** The typed bus: `new EventBus<Events, Handlers>(options)`. */
export const EventBus = EventBusImpl as unknown as typeof Public.EventBus;
export type EventBus<
  Events extends Public.EventMap = Public.EventMap,
  Handlers extends Public.HandlerMap = Public.HandlerMap,
> = Public.EventBus<Events, Handlers>;

// Compile-time conformance: the implementation offers every public member with a compatible shape.
type Untyped = Public.EventBus<Public.EventMap, Public.HandlerMap>;
const _conforms = (bus: EventBusImpl): Pick<Untyped, 'ready' | 'close' | 'childEnv' | 'emit' | 'name' | 'role'> => bus;
const _detect: typeof Public.detectProcess = detectProcess;
void _conforms;
void _detect;
