// The stand-in's renderer side: what `require('electron')` gives a preload. A preload bundle is
// run by main.mjs's WebContents with the current page's ipcRenderer in scope.
export const ipcRenderer = {
  send: (...args) => globalThis.__standinPage.ipcRenderer.send(...args),
  on: (...args) => globalThis.__standinPage.ipcRenderer.on(...args),
};
