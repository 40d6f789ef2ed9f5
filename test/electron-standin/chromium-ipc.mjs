// ipcRenderer for a preload bundle that runs in a real Chromium page
// (test/js/pages-run-the-bus-in-real-chromium.test.mjs), in an isolated world as with
// contextIsolation, or in the main world without it. Asked for a port, it makes a
// MessageChannel in the preload's world, hands one end to the harness's bridge to the hub
// (globalThis.__preloadBridge, installed by the test in that world) and answers on
// 'switchboard:port' with the other end in `event.ports`, as main's webContents.postMessage(channel,
// null, [port]) arrives in Electron.
const listeners = new Map();

export const ipcRenderer = {
  on(channel, fn) {
    listeners.set(channel, fn);
    return ipcRenderer;
  },
  send(channel) {
    if (channel !== 'switchboard:port-request') return;
    const { port1, port2 } = new MessageChannel();
    globalThis.__preloadBridge(port2);
    // Main's answer comes in a later task, as an IPC message would.
    setTimeout(() => listeners.get('switchboard:port')?.({ ports: [port1] }), 0);
  },
};
