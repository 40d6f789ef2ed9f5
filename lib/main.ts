// switchboard-ipc/main: the bus of Electron's main process, which owns the hub, plus
// attachWindow(): each page of a BrowserWindow joins as a peer with grants.
//
// The handshake with the preload (lib/preload.ts), on every page load:
//   preload --ipcRenderer.send('switchboard:port-request')--> main
//   main checks the sender (this webContents, its main frame, an allowed origin), makes a
//   MessageChannelMain, attaches one end as the page's peer (attachPort) and posts the other to
//   that frame ('switchboard:port'); the preload hands it to the page's main world.
// Reload, navigation to another document, render-process-gone and destroyed end the page's peer
// at once; the next page load asks again.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Public from '../types/main.js';
import { EventBus as BusImpl } from './event-bus.js';
import { InvalidArgumentError } from './errors.js';
import type { NativeGrants } from './native.js';
import './index.js'; // the Node.js platform (native addon, process detection)

export * from './index.js';

export const PORT_REQUEST = 'switchboard:port-request';
export const PORT_CHANNEL = 'switchboard:port';

// The few Electron main-process APIs used, as Electron documents them.
interface FrameLike {
  url: string;
  origin?: string;
  postMessage(channel: string, message: unknown, transfer?: unknown[]): void;
}
interface WebContentsLike {
  id: number;
  mainFrame: FrameLike;
  on(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  isDestroyed?(): boolean;
}
interface ElectronMain {
  ipcMain: {
    on(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
    removeListener(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
  };
  MessageChannelMain: new () => { port1: any; port2: any };
}

/**
 * Electron's main-process module. Tests put a stand-in under this symbol (test/electron-standin):
 * Electron itself cannot run on the machines that build this package.
 */
const STANDIN = Symbol.for('switchboard-ipc.electron');
function electron(): ElectronMain {
  const standin = (globalThis as Record<symbol, unknown>)[STANDIN];
  if (standin) return standin as ElectronMain;
  // 'electron' is a built-in module in Electron's main process, wherever this file lives.
  return createRequire(join(process.cwd(), 'noop.js'))('electron') as ElectronMain;
}

function originOf(frame: FrameLike): string {
  if (frame.origin) return frame.origin;
  try {
    return new URL(frame.url).origin;
  } catch {
    return 'null';
  }
}

export interface AttachWindowOptions {
  allow?: NativeGrants;
  /** Origins the page may have (default: any). A page of another origin gets no port. */
  origins?: string[];
}

/**
 * Joins every page that `webContents` loads to `bus`'s hub, with `allow`'s grants, through its
 * preload's exposeBus(). Returns a function that stops (and ends the current page's peer).
 */
export function attachWindow(bus: BusImpl, webContents: WebContentsLike, options: AttachWindowOptions = {}): () => void {
  if (!webContents || typeof webContents.on !== 'function' || typeof webContents.id !== 'number') {
    throw new InvalidArgumentError('attachWindow() takes a webContents (win.webContents)');
  }
  const { ipcMain, MessageChannelMain } = electron();
  let detachPage: (() => void) | undefined;
  let stopped = false;
  const endPage = (): void => {
    detachPage?.();
    detachPage = undefined;
  };
  const onRequest = (event: { sender: unknown; senderFrame?: FrameLike | null }): void => {
    // Every window's requests reach every attachWindow(): each answers its own, from its main
    // frame only (an iframe, even of the same origin, gets no port).
    if (stopped || event.sender !== webContents) return;
    const frame = event.senderFrame;
    if (!frame || frame !== webContents.mainFrame) return;
    const origin = originOf(frame);
    if (options.origins && !options.origins.includes(origin)) return;
    endPage(); // a reload's new page replaces the old one's peer
    const { port1, port2 } = new MessageChannelMain();
    detachPage = bus.attachPort(port1, {
      name: `${origin} #${webContents.id}`,
      role: 'renderer',
      allow: options.allow,
      origin,
      window: webContents.id,
    });
    frame.postMessage(PORT_CHANNEL, null, [port2]);
  };
  const onNavigation = (_event: unknown, _url: string, isInPlace: boolean, isMainFrame: boolean): void => {
    if (isMainFrame && !isInPlace) endPage();
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    endPage();
    ipcMain.removeListener(PORT_REQUEST, onRequest);
    webContents.removeListener('did-start-navigation', onNavigation);
    webContents.removeListener('render-process-gone', endPage);
    webContents.removeListener('destroyed', stop);
  };
  ipcMain.on(PORT_REQUEST, onRequest);
  webContents.on('did-start-navigation', onNavigation);
  webContents.on('render-process-gone', endPage);
  webContents.on('destroyed', stop);
  return stop;
}

/** The main process's bus: the hub, plus attachWindow(). */
export class EventBus extends BusImpl {
  attachWindow(webContents: WebContentsLike, options?: AttachWindowOptions): () => void {
    return attachWindow(this, webContents, options);
  }
}
void (null as unknown as typeof Public.EventBus);
