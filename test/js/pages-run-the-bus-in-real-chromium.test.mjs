// Promises (issue 12, "Real Chromium"): the page build runs in a real page (Debian's chromium,
// driven by playwright-core), joined to a real hub through a port main attached: events and
// invokes page <-> main and page <-> a worker, every value kind and error fidelity, grants, and a
// reload mid-invoke that fails main's call at once and frees the old page's subscriptions.
// Only the bridge is a stand-in: the page's MessagePort and the hub's port are joined through
// playwright (bytes as base64), as Electron joins them through MessageChannelMain.
//
// It also prints the figures: page -> worker events/s and invoke round trip p50/p99
// through main, beside the same traffic between two Node.js clients.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, isMainThread, parentPort } from 'node:worker_threads';
import { build } from 'esbuild';
import { ConnectionLostError, EventBus } from '../../dist/esm/index.js';
import { deadline } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const sanitized = Boolean(process.env.SWITCHBOARD_SANITIZER);

// --- A worker thread: a Node.js client of the hub ---------------------------------------------
if (!isMainThread) {
  const bus = new EventBus({ name: 'worker' });
  let got = 0;
  let first = 0;
  bus.on('w:tick', () => {
    if (got++ === 0) first = performance.now();
  });
  bus.handle('w:echo', (v) => v);
  bus.handle('w:ticks', () => ({ got, ms: performance.now() - first }));
  bus.handle('w:reset', () => {
    got = 0;
    return true;
  });
  await bus.ready();
  parentPort.postMessage('ready');
}

function toBase64(u8) {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64');
}

/** The page side of the bridge, installed before the bus script. */
const PAGE_BRIDGE = `
  const ch = new MessageChannel();
  const fromB64 = (s) => { const bin = atob(s); const u = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i); return u; };
  const toB64 = (u) => { let s = ''; for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000)); return btoa(s); };
  window.__fromHub = (m) => ch.port2.postMessage(m.b !== undefined ? fromB64(m.b) : m.o);
  ch.port2.onmessage = (ev) => { const d = ev.data; window.__toHub(d instanceof Uint8Array ? { b: toB64(d) } : { o: d }); };
  window.__busPort = ch.port1;
`;

if (isMainThread) {
  const available = existsSync(CHROMIUM);
  if (!available) console.log(`# chromium not found at ${CHROMIUM}: these tests are skipped here (.ci/deps installs it)`);
  describe('pages run the bus in real Chromium', { timeout: 120_000, skip: !available && `no chromium at ${CHROMIUM}` }, () => {
    let hub;
    let worker;
    let browser;
    let page;
    let code;
    let detachPage;
    let toPageChain = Promise.resolve();

    /** Attaches the current page: a fresh port pair, bridged to it. */
    async function attachPage() {
      const { port1, port2 } = new MessageChannel();
      detachPage = hub.attachPort(port1, {
        name: 'chromium',
        origin: 'http://page.test',
        allow: { emit: ['page:*', 'w:*'], subscribe: ['main:*'], invoke: ['app:*', 'w:*'], handle: ['page:*'] },
      });
      page.__bridge = port2;
      port2.on('message', (m) => {
        const msg = m instanceof Uint8Array ? { b: toBase64(m) } : { o: m };
        toPageChain = toPageChain.then(() => page.evaluate((x) => window.__fromHub?.(x), msg)).catch(() => {});
      });
      await page.addScriptTag({ content: PAGE_BRIDGE });
      await page.addScriptTag({ content: code });
      await page.evaluate(() => {
        window.bus = new Switchboard.EventBus({ port: window.__busPort, name: 'chromium' });
        return window.bus.ready();
      });
    }

    before(async () => {
      code = (
        await build({ entryPoints: ['switchboard-ipc/renderer'], bundle: true, platform: 'browser', format: 'iife', globalName: 'Switchboard', write: false, absWorkingDir: root, logLevel: 'silent' })
      ).outputFiles[0].text;
      hub = new EventBus({ role: 'hub', name: 'main' });
      await hub.ready();
      hub.handle('app:echo', (v) => v);
      hub.handle('app:fail', () => {
        throw Object.assign(new TypeError('bad input'), { code: 'E_BAD', field: 'x' });
      });
      hub.handle('app:hang', () => new Promise(() => {}));
      worker = new Worker(fileURLToPath(import.meta.url));
      await deadline(10_000, 'the worker', new Promise((r) => worker.once('message', r)));
      const { chromium } = await import('playwright-core');
      // Without the ASan runtime the sanitizer lane preloads into node: Chromium has its own allocator.
      const { LD_PRELOAD: _, ASAN_OPTIONS: __, ...env } = process.env;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], env });
      page = await browser.newPage();
      await page.exposeFunction('__toHub', (msg) => page.__bridge?.postMessage(msg.b !== undefined ? new Uint8Array(Buffer.from(msg.b, 'base64')) : msg.o));
      await page.goto('about:blank');
      await attachPage();
    });

    after(async () => {
      await browser?.close();
      await worker?.terminate();
      await hub?.close();
    });

    it('invokes and events cross page <-> main and page <-> worker, values and errors intact', async () => {
      const got = new Promise((resolve) => hub.once('page:hello', (v, ctx) => resolve({ v, ctx })));
      const r = await page.evaluate(async () => {
        const { RemoteError, ForbiddenError } = Switchboard;
        const value = { n: -1.5, big: 2n ** 70n, when: new Date(9), bytes: new Uint8Array([1, 2, 3]), map: new Map([[1, 'one']]), set: new Set(['s']), nested: { a: [null, undefined, true] } };
        const e = await bus.invoke('app:echo', value);
        const echoed = e.big === value.big && e.when.getTime() === 9 && e.bytes[2] === 3 && e.map.get(1) === 'one' && e.set.has('s') && e.nested.a[1] === undefined;
        const fail = await bus.invoke('app:fail').catch((err) => ({ remote: err instanceof RemoteError, name: err.name, code: err.code, field: err.field, message: err.message }));
        const forbidden = await bus.invoke('admin:wipe').catch((err) => err instanceof ForbiddenError && err.code);
        const viaWorker = await bus.invoke('w:echo', { deep: [1, 2n] });
        const ticks = [];
        bus.on('main:tick', (v) => ticks.push(v));
        await bus.invoke('app:echo', 'fence');
        bus.emit('page:hello', value);
        window.__ticks = ticks;
        return { echoed, fail, forbidden, viaWorker: viaWorker.deep[1] === 2n };
      });
      assert.deepEqual(r, { echoed: true, fail: { remote: true, name: 'TypeError', code: 'E_BAD', field: 'x', message: 'bad input' }, forbidden: 'E_FORBIDDEN', viaWorker: true });
      const { v, ctx } = await deadline(5000, 'page:hello at main', got);
      assert.equal(v.big, 2n ** 70n);
      assert.deepEqual(v.bytes, new Uint8Array([1, 2, 3]));
      assert.equal(ctx.sender.origin, 'http://page.test');
      hub.emit('main:tick', 'from main');
      let ticks = [];
      for (let i = 0; i < 100 && ticks.length === 0; i++) {
        await new Promise((res) => setTimeout(res, 20));
        ticks = await page.evaluate(() => window.__ticks);
      }
      assert.deepEqual(ticks, ['from main']);
    });

    it("figures: page -> worker events/s and invoke round trip through main, beside two Node.js clients", async () => {
      const N = sanitized ? 2000 : 20000;
      const CALLS = sanitized ? 100 : 500;
      const fromPage = await page.evaluate(
        async ({ N, CALLS }) => {
          const rtt = [];
          for (let i = 0; i < CALLS; i++) {
            const t = performance.now();
            await bus.invoke('w:echo', i);
            rtt.push(performance.now() - t);
          }
          rtt.sort((a, b) => a - b);
          await bus.invoke('w:reset');
          for (let i = 0; i < N; i++) {
            if (!bus.emit('w:tick', i)) await bus.drained();
            if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
          }
          return { p50: rtt[Math.floor(CALLS / 2)], p99: rtt[Math.floor(CALLS * 0.99)] };
        },
        { N, CALLS },
      );
      let ticks;
      for (let i = 0; i < 500; i++) {
        ticks = await hub.invoke('w:ticks');
        if (ticks.got >= N) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(ticks.got, N, 'every event reached the worker');
      const pageRate = N / (ticks.ms / 1000);
      // The same from a Node.js client (this thread's own client of the hub).
      const node = new EventBus({ role: 'client', endpoint: hub.childEnv().SWITCHBOARD_ENDPOINT, token: hub.childEnv().SWITCHBOARD_TOKEN, name: 'node' });
      await node.ready();
      const rtt = [];
      for (let i = 0; i < CALLS; i++) {
        const t = performance.now();
        await node.invoke('w:echo', i);
        rtt.push(performance.now() - t);
      }
      rtt.sort((a, b) => a - b);
      await node.invoke('w:reset');
      for (let i = 0; i < N; i++) {
        if (!node.emit('w:tick', i)) await node.drained();
        if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
      }
      for (let i = 0; i < 500; i++) {
        ticks = await node.invoke('w:ticks');
        if (ticks.got >= N) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await node.close();
      const nodeRate = N / (ticks.ms / 1000);
      console.log(
        `# page -> worker through main: ${Math.round(pageRate)} events/s, invoke p50 ${fromPage.p50.toFixed(2)} ms, p99 ${fromPage.p99.toFixed(2)} ms` +
          ` (bridged through playwright); Node.js client -> worker: ${Math.round(nodeRate)} events/s, invoke p50 ${rtt[Math.floor(CALLS / 2)].toFixed(2)} ms, p99 ${rtt[Math.floor(CALLS * 0.99)].toFixed(2)} ms`,
      );
      assert.ok(pageRate > 0 && nodeRate > 0);
    });

    it("a reload mid-invoke fails main's call at once and frees the old page's subscriptions", async () => {
      const base = hub.stats().hub;
      await page.evaluate(async () => {
        bus.handle('page:hang', () => new Promise(() => {}));
        bus.on('main:other', () => {});
        await bus.invoke('app:echo', 'fence');
      });
      const call = hub.invoke('page:hang', null, { timeout: 30_000 }).catch((e) => e);
      await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      // Main ends the old page's peer when the page navigates (attachWindow does it on
      // did-start-navigation; here the bridge does it on the frame's navigation).
      const navigated = new Promise((resolve) => page.once('framenavigated', resolve));
      const reloading = page.reload();
      await navigated;
      detachPage();
      const err = await call;
      assert.ok(err instanceof ConnectionLostError, String(err));
      assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
      await reloading;
      for (let i = 0; i < 100 && hub.stats().hub.subscriptions >= base.subscriptions + 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(hub.stats().hub.subscriptions < base.subscriptions + 1, 'the old page subscriptions are freed');
      await attachPage();
      assert.equal(await page.evaluate(() => bus.invoke('app:echo', 'again')), 'again');
    });
  });
}
