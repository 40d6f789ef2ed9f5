// switchboard-ipc/preload: exposeBus() for a preload script, sandboxed (Electron's default) or
// not, with contextIsolation on or off. It asks main for a port on every page load and hands it
// to the page's main world with window.postMessage, where the page's `new EventBus()` takes it.
// Nothing else crosses: no ipcRenderer, no Electron object is exposed to the page.
//
// Bundle a sandboxed preload with `electron` as the only external; this file imports nothing else.
import { ipcRenderer } from 'electron';

const PORT_REQUEST = 'switchboard:port-request';
const PORT_CHANNEL = 'switchboard:port';
/** What the page's bus listens for (lib/window-port.ts). */
export const WINDOW_MESSAGE = 'switchboard:port';

/** What the page's bus posts to ask for the port (it may be made before or after the port comes). */
export const WINDOW_REQUEST = 'switchboard:want-port';

export function exposeBus(): void {
  let port: unknown;
  let wanted = false;
  const target = window.location.origin === 'null' ? '*' : window.location.origin;
  const handOver = (): void => {
    if (!port || !wanted) return;
    // Posted to this window only: the page checks that the message comes from its own window.
    window.postMessage({ type: WINDOW_MESSAGE }, target, [port as MessagePort]);
    port = undefined; // a port goes to one bus, once
  };
  // The page asks when its bus is made, which may be before or after main's answer arrives.
  window.addEventListener('message', (ev: MessageEvent) => {
    if (ev.source !== window || ev.data?.type !== WINDOW_REQUEST || wanted) return;
    wanted = true;
    handOver();
  });
  ipcRenderer.on(PORT_CHANNEL, (event: { ports: unknown[] }) => {
    if (!event.ports?.[0] || port) return;
    port = event.ports[0];
    handOver();
  });
  ipcRenderer.send(PORT_REQUEST);
}
