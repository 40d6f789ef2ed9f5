// switchboard-ipc/main: the bus of Electron's main process, with attachWindow().
import type { WebContents } from 'electron';
import { EventBus as BaseBus, type EventMap, type Grants, type HandlerMap } from './index.js';

export * from './index.js';

export interface AttachWindowOptions {
  /** What the window's pages may do (nothing by default). */
  allow?: Grants;
  /** Origins a page may have to get a port (default: any). */
  origins?: string[];
}

export declare class EventBus<Events extends EventMap = EventMap, Handlers extends HandlerMap = HandlerMap> extends BaseBus<
  Events,
  Handlers
> {
  /**
   * Joins every page `webContents` loads (through its preload's exposeBus()) as a peer with
   * `allow`'s grants. Reload, navigation, render-process-gone and destroyed end the old page's
   * peer at once. Returns a function that stops.
   */
  attachWindow(webContents: WebContents, options?: AttachWindowOptions): () => void;
}
export declare function attachWindow(bus: BaseBus, webContents: WebContents, options?: AttachWindowOptions): () => void;
