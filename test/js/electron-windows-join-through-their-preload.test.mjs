// Promises (issue 12, parts 2-4): bus.attachWindow(webContents, { allow }) in main, exposeBus()
// in the (bundled, sandbox-ready) preload and `new EventBus()` in the page put every page a
// window loads on the bus, with grants. Main answers only that webContents' main frame (and only
// allowed origins). Reload, navigation, render-process-gone and destroyed end the old page's peer
// at once: main's calls to it fail with ConnectionLostError, so do the page's own, and the hub's
// counts return to baseline, also after 200 reloads.
//
// Electron itself cannot run here: its APIs are the stand-in in test/electron-standin (README
// there lists what it imitates, from Electron's docs, and what it cannot). The hub, the addon,
// the preload bundle and the page build are the real ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { install, WebContents } from '../electron-standin/main.mjs';
import { ConnectionLostError, EventBus as MainBus } from '../../dist/esm/main.js';
import { EventBus as PageBus } from '../../dist/esm/renderer.js';
import { deadline } from './support.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const GRANTS = { emit: ['page:*'], subscribe: ['main:*'], invoke: ['app:*'], handle: ['page:*'] };

/** The preload as an app ships it: bundled for the browser, `electron` its only external. */
async function preloadBundle() {
  const out = await build({
    stdin: { contents: "import { exposeBus } from 'switchboard-ipc/preload'; exposeBus();", resolveDir: root },
    bundle: true,
    platform: 'browser',
    format: 'iife',
    write: false,
    logLevel: 'silent',
    alias: { electron: fileURLToPath(new URL('../electron-standin/renderer.mjs', import.meta.url)) },
  });
  return out.outputFiles[0].text;
}

/** The page's bus, made as a page makes it: no options, inside that page's window. */
function pageBus(page) {
  globalThis.window = page.window;
  try {
    return new PageBus({ name: 'page' });
  } finally {
    delete globalThis.window;
  }
}

async function settle(bus, pred, what) {
  for (let i = 0; i < 300; i++) {
    if (pred(bus.stats().hub)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`${what}: ${JSON.stringify(bus.stats().hub)}`);
}

describe('Electron windows join through their preload', { timeout: 90_000 }, () => {
  let bus;
  let preload;
  let baseline;

  before(async () => {
    install();
    const code = await preloadBundle();
    assert.doesNotMatch(code, /require\(/, 'the preload bundle needs no require but electron (aliased here)');
    preload = (page) => {
      globalThis.__standinPage = page;
      new Function('window', code)(page.window);
    };
    bus = new MainBus({ role: 'hub', name: 'main' });
    await bus.ready();
    bus.handle('app:version', () => '1.0');
    bus.handle('app:hang', () => new Promise(() => {}));
    await bus.invoke('app:version');
    baseline = bus.stats().hub;
  });

  after(async () => {
    await bus?.close();
  });

  it("a page's bus joins with its window's grants, and main sees which window and origin", async () => {
    const contents = new WebContents(preload);
    const stop = bus.attachWindow(contents, { allow: GRANTS });
    const page = contents.load('https://app.example/index.html');
    const pb = pageBus(page);
    try {
      await deadline(5000, 'the page bus ready', pb.ready());
      assert.equal(await pb.invoke('app:version'), '1.0');
      const hello = new Promise((resolve) => bus.once('page:hello', (v, ctx) => resolve(ctx.sender)));
      pb.emit('page:hello', 1);
      const sender = await deadline(5000, 'page:hello', hello);
      assert.equal(sender.role, 'renderer');
      assert.equal(sender.name, `https://app.example #${contents.id}`);
      assert.equal(sender.origin, 'https://app.example', "the frame's origin, stamped by main");
      assert.equal(sender.window, contents.id, "the window's webContents id");
      const refused = await pb.invoke('admin:wipe').catch((e) => e);
      assert.equal(refused.code, 'E_FORBIDDEN');
    } finally {
      await pb.close();
      stop();
    }
    await settle(bus, (h) => h.peers === baseline.peers, 'baseline');
  });

  it('a reload mid-invoke fails the calls at once on both sides and frees the old subscriptions', async () => {
    const contents = new WebContents(preload);
    const stop = bus.attachWindow(contents, { allow: GRANTS });
    const pb = pageBus(contents.load('https://app.example/'));
    try {
      await pb.ready();
      pb.handle('page:hang', () => new Promise(() => {}));
      pb.on('main:tick', () => {});
      await pb.invoke('app:version'); // in force now
      const mainCall = bus.invoke('page:hang', null, { timeout: 30_000 }).catch((e) => e);
      const pageCall = pb.invoke('app:hang', null, { timeout: 30_000 }).catch((e) => e);
      await settle(bus, (h) => h.pendingInvokes === 2, 'both calls pending');
      const t0 = Date.now();
      const next = contents.reload();
      const [m, p] = await Promise.all([mainCall, pageCall]);
      assert.ok(m instanceof ConnectionLostError, `main's call: ${m}`);
      assert.equal(p?.code, 'E_CONNECTION_LOST', `the page's call: ${p}`);
      assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
      await settle(bus, (h) => h.subscriptions === baseline.subscriptions && h.pendingInvokes === 0, 'freed within 3 s');
      assert.ok(Date.now() - t0 < 1000, `subscriptions freed after ${Date.now() - t0} ms`);
      const again = pageBus(next);
      await again.ready();
      assert.equal(await again.invoke('app:version'), '1.0');
      await again.close();
    } finally {
      await pb.close();
      stop();
    }
    await settle(bus, (h) => h.peers === baseline.peers, 'baseline');
  });

  it('200 reloads leave the hub at its baseline', async () => {
    const contents = new WebContents(preload);
    const stop = bus.attachWindow(contents, { allow: GRANTS });
    let page = contents.load('https://app.example/');
    for (let i = 0; i < 200; i++) {
      const pb = pageBus(page);
      await pb.ready();
      pb.on('main:tick', () => {});
      pb.handle('page:echo', (v) => v);
      page = contents.reload();
    }
    contents.destroy();
    await settle(
      bus,
      (h) => h.peers === baseline.peers && h.subscriptions === baseline.subscriptions && h.handlers === baseline.handlers && h.pendingInvokes === 0,
      'baseline after 200 reloads',
    );
    stop();
  });

  it('render-process-gone and destroyed end the page at once', async () => {
    for (const end of ['crash', 'destroy']) {
      const contents = new WebContents(preload);
      const stop = bus.attachWindow(contents, { allow: GRANTS });
      const pb = pageBus(contents.load('https://app.example/'));
      await pb.ready();
      pb.handle('page:hang', () => new Promise(() => {}));
      await pb.invoke('app:version');
      const call = bus.invoke('page:hang').catch((e) => e);
      await settle(bus, (h) => h.pendingInvokes === 1, 'pending');
      contents[end]();
      assert.ok((await call) instanceof ConnectionLostError, end);
      await settle(bus, (h) => h.peers === baseline.peers, `${end}: baseline`);
      stop();
    }
  });

  it('only the main frame of an allowed origin gets a port', async () => {
    const contents = new WebContents(preload);
    const stop = bus.attachWindow(contents, { allow: GRANTS, origins: ['https://app.example'] });
    const pb = pageBus(contents.load('https://app.example/'));
    await pb.ready();
    const peers = bus.stats().hub.peers;
    contents.sendFromSubframe('switchboard:port-request');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(bus.stats().hub.peers, peers, 'an iframe got no port');
    await pb.close();
    const foreign = pageBus(contents.load('https://evil.example/'));
    const state = await Promise.race([foreign.ready().then(() => 'ready'), new Promise((r) => setTimeout(() => r('waiting'), 200))]);
    assert.equal(state, 'waiting', 'a page of another origin got no port');
    await foreign.close();
    stop();
    await settle(bus, (h) => h.peers === baseline.peers, 'baseline');
  });
});
