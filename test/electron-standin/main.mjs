// The stand-in's main-process side (see README.md): ipcMain, MessageChannelMain, webContents.
import { EventEmitter } from 'node:events';
import { MessageChannel } from 'node:worker_threads';

/** MessagePortMain over a worker_threads port: queued until start(), 'message' gets { data, ports }. */
class MessagePortMain extends EventEmitter {
  constructor(port) {
    super();
    this.port = port; // what a transfer to a renderer hands over (a web-like MessagePort)
    this.started = false;
    port.on('close', () => this.emit('close'));
  }
  start() {
    if (this.started) return;
    this.started = true;
    this.port.on('message', (data) => this.emit('message', { data, ports: [] }));
  }
  postMessage(message) {
    this.port.postMessage(message);
  }
  close() {
    this.port.close();
  }
}

export class MessageChannelMain {
  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port1 = new MessagePortMain(port1);
    this.port2 = new MessagePortMain(port2);
  }
}

export const ipcMain = new EventEmitter();

let nextId = 1;

/** A page: a fake window, its ipcRenderer, and the preload run in it. */
class Page {
  constructor(contents, url) {
    this.contents = contents;
    this.ipc = new EventEmitter(); // the renderer's ipcRenderer events
    const listeners = [];
    this.window = {
      location: { origin: new URL(url).origin, href: url },
      addEventListener: (type, fn) => type === 'message' && listeners.push(fn),
      postMessage: (data, _origin, transfer = []) => {
        queueMicrotask(() => {
          for (const fn of listeners) fn({ source: this.window, data, ports: transfer });
        });
      },
    };
    this.frame = {
      url,
      origin: new URL(url).origin,
      postMessage: (channel, message, transfer = []) => {
        if (this.gone) return;
        const ports = transfer.map((p) => p.port);
        queueMicrotask(() => this.ipc.emit(channel, { ports }, message));
      },
    };
    this.ipcRenderer = {
      send: (channel, ...args) => {
        if (this.gone) return;
        queueMicrotask(() => ipcMain.emit(channel, { sender: contents, senderFrame: this.frame }, ...args));
      },
      on: (channel, fn) => this.ipc.on(channel, fn),
    };
  }
}

export class WebContents extends EventEmitter {
  constructor(preload) {
    super();
    this.id = nextId++;
    this.preload = preload; // (page) => void: runs the preload bundle in the page
    this.page = undefined;
  }
  get mainFrame() {
    return this.page?.frame;
  }
  /** Loads `url` in a new page and runs the preload there. */
  load(url) {
    if (this.page) {
      this.emit('did-start-navigation', {}, url, false, true, 0, 0);
      this.page.gone = true;
    }
    this.page = new Page(this, url);
    this.preload(this.page);
    return this.page;
  }
  reload() {
    return this.load(this.page.frame.url);
  }
  /** An iframe of the current page sends a request of its own. */
  sendFromSubframe(channel) {
    const sub = { url: this.page.frame.url, origin: this.page.frame.origin, postMessage: () => {} };
    ipcMain.emit(channel, { sender: this, senderFrame: sub });
  }
  crash() {
    this.page.gone = true;
    this.emit('render-process-gone', {}, { reason: 'crashed', exitCode: 1 });
  }
  destroy() {
    if (this.page) this.page.gone = true;
    this.emit('destroyed');
  }
}

/** Installs the stand-in where switchboard-ipc/main looks for Electron. */
export function install() {
  globalThis[Symbol.for('switchboard-ipc.electron')] = { ipcMain, MessageChannelMain };
}
