// Main and preload code against the real `electron` package's declarations (installed with
// ELECTRON_SKIP_BINARY_DOWNLOAD=1, pinned).
import type { BrowserWindow } from 'electron';
import { expectTypeOf } from 'expect-type';
import { EventBus } from 'switchboard-ipc/main';
import { exposeBus } from 'switchboard-ipc/preload';

type Events = { 'job:progress': { percent: number } };
declare const win: BrowserWindow;
const bus = new EventBus<Events>({ role: 'hub' });
const stop = bus.attachWindow(win.webContents, { allow: { emit: ['job:*'], invoke: ['app:version'] }, origins: ['app://main'] });
expectTypeOf(stop).toEqualTypeOf<() => void>();
bus.emit('job:progress', { percent: 5 });
// @ts-expect-error: a BrowserWindow is not its webContents
bus.attachWindow(win);
// @ts-expect-error: grants are lists of names
bus.attachWindow(win.webContents, { allow: { emit: 'job:*' } });
expectTypeOf(exposeBus).toEqualTypeOf<() => void>();
