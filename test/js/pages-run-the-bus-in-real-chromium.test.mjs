// Promises (issue 12, "Real Chromium"): the page build runs in a real page (Debian's chromium,
// driven by playwright-core), joined to a real hub through a port main attached: events and
// invokes page <-> main, page <-> a utility-like child process and page <-> a worker thread, in
// both directions, every value kind and error fidelity, a schema failure each way, grants, the
// preload's exposeBus() handing its port to the page's world (with contextIsolation, from an
// isolated world), a page flooding a stopped utility (paused, while main's other peers go on),
// and a reload mid-invoke that fails main's call at once and frees the old page's subscriptions.
// Only the bridge is a stand-in: the page's MessagePort and the hub's port are joined through
// playwright (bytes as base64), as Electron joins them through MessageChannelMain.
//
// It also prints the figures: page -> utility events/s and invoke round trip p50/p99
// through main, beside the same traffic between two Node.js clients, and what main's JavaScript
// spends per page message (the time inside attachPort's message listener).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, isMainThread, parentPort } from 'node:worker_threads';
import { build } from 'esbuild';
import { z } from 'zod';
import { ConnectionLostError, EventBus, RemoteError, ValidationError } from '../../dist/esm/index.js';
import { currentRole, deadline, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const sanitized = Boolean(process.env.SWITCHBOARD_SANITIZER);

/**
 * A peer that counts ticks on `<p>:tick`, echoes on `<p>:echo`, fails on `<p>:fail`, calls the
 * page back on `<p>:askPage`, and on `<p>:progress` emits progress events the page listens to.
 */
function servePeer(bus, p) {
  let got = 0;
  let first = 0;
  bus.on(`${p}:tick`, () => {
    if (got++ === 0) first = performance.now();
  });
  bus.handle(`${p}:echo`, (v) => v);
  bus.handle(`${p}:fail`, () => {
    throw Object.assign(new RangeError(`out of range in ${p}`), { code: 'E_RANGE', limit: 10n });
  });
  bus.handle(`${p}:ticks`, () => ({ got, ms: performance.now() - first }));
  bus.handle(`${p}:reset`, () => {
    got = 0;
    return true;
  });
  // The other direction: this peer invokes the page, and reports what came back (or the error).
  bus.handle(`${p}:askPage`, async (arg) => {
    try {
      return { ok: await bus.invoke('page:double', arg) };
    } catch (err) {
      return { error: { cls: err.constructor.name, code: err.code, message: err.message } };
    }
  });
  bus.handle(`${p}:progress`, (n) => {
    for (let i = 1; i <= n; i++) bus.emit(`${p}:progress`, { step: i, of: n, at: new Date(i) });
    return n;
  });
}

// --- A worker thread and a utility-like child process: Node.js clients of the hub -------------
if (!isMainThread) {
  const bus = new EventBus({ name: 'worker' });
  servePeer(bus, 'w');
  await bus.ready();
  parentPort.postMessage('ready');
} else if (currentRole() === 'utility') {
  // As utilityProcess.fork() starts it: a child with main's childEnv(), joining as a client.
  guardAgainstOrphaning();
  const bus = new EventBus({ name: 'utility' });
  servePeer(bus, 'u');
  await bus.ready();
  process.send({ type: 'ready' });
  process.on('message', (m) => m.type === 'close' && bus.close().then(() => process.exit(0)));
}

/** `contents` bundled as a page's bundler makes it: for the browser, one script. */
async function bundleForBrowser(contents, options) {
  const out = await build({ stdin: { contents, resolveDir: root, loader: 'js' }, bundle: true, platform: 'browser', format: 'iife', write: false, absWorkingDir: root, logLevel: 'silent', ...options });
  return out.outputFiles[0].text;
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

/** The preload world's side of the bridge: a CDP binding out, Runtime.evaluate in. */
const PRELOAD_BRIDGE = `
  const fromB64 = (s) => { const bin = atob(s); const u = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i); return u; };
  const toB64 = (u) => { let s = ''; for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000)); return btoa(s); };
  // What main posts before the preload has asked for its port waits here, as in a port's queue.
  let port;
  const queued = [];
  globalThis.__fromHub = (m) => { const d = m.b !== undefined ? fromB64(m.b) : m.o; if (port) port.postMessage(d); else queued.push(d); };
  globalThis.__preloadBridge = (p) => {
    port = p;
    port.onmessage = (ev) => { const d = ev.data; __toHubFromPreload(JSON.stringify(d instanceof Uint8Array ? { b: toB64(d) } : { o: d })); };
    for (const d of queued.splice(0)) port.postMessage(d);
  };
`;

if (isMainThread && currentRole() === 'main') {
  const available = existsSync(CHROMIUM);
  if (!available) console.log(`# chromium not found at ${CHROMIUM}: these tests are skipped here (.ci/deps installs it)`);
  describe('pages run the bus in real Chromium', { timeout: 120_000, skip: !available && `no chromium at ${CHROMIUM}` }, () => {
    let hub;
    let worker;
    let utility;
    let browser;
    let page;
    let code;
    let preloadCode;
    let detachPage;
    let toPageChain = Promise.resolve();
    // What main's JavaScript spends on the page's messages: the time inside attachPort's listener.
    const linkCost = { ms: 0, messages: 0 };

    /** Attaches the current page: a fresh port pair, bridged to it. */
    async function attachPage() {
      const { port1, port2 } = new MessageChannel();
      const addEventListener = port1.addEventListener.bind(port1);
      port1.addEventListener = (type, fn) =>
        addEventListener(type, type !== 'message' ? fn : (ev) => {
          const t = performance.now();
          fn(ev);
          linkCost.ms += performance.now() - t;
          linkCost.messages++;
        });
      detachPage = hub.attachPort(port1, {
        name: 'chromium',
        origin: 'http://page.test',
        allow: { emit: ['page:*', 'w:*', 'u:*'], subscribe: ['main:*', 'u:progress', 'w:progress'], invoke: ['app:*', 'w:*', 'u:*'], handle: ['page:*'] },
      });
      page.__bridge = port2;
      // What main posts waits until the page's end of the bridge exists (a port queues, too).
      let bridged;
      const gate = new Promise((resolve) => (bridged = resolve));
      toPageChain = toPageChain.then(() => gate);
      port2.on('message', (m) => {
        const msg = m instanceof Uint8Array ? { b: toBase64(m) } : { o: m };
        toPageChain = toPageChain.then(() => page.evaluate((x) => window.__fromHub?.(x), msg)).catch(() => {});
      });
      await page.addScriptTag({ content: PAGE_BRIDGE });
      bridged();
      await page.addScriptTag({ content: code });
      await page.evaluate(() => {
        const { EventBus, v } = Switchboard;
        window.bus = new EventBus({ port: window.__busPort, name: 'chromium' });
        // The page serves too, with a valibot schema on what it takes.
        window.bus.handle('page:double', ({ n }) => ({ n: n * 2, big: BigInt(n) * 2n ** 64n }), { schema: v.object({ n: v.number() }) });
        return window.bus.ready();
      });
    }

    before(async () => {
      // The page build with valibot beside it (the page's own schemas), as a page's bundler makes
      // it; the preload as an app bundles it, with `electron` (here: chromium-ipc.mjs) its only import.
      code = await bundleForBrowser("export * from 'switchboard-ipc/renderer'; export * as v from 'valibot';", { globalName: 'Switchboard' });
      preloadCode = await bundleForBrowser("import { exposeBus } from 'switchboard-ipc/preload'; exposeBus();", {
        alias: { electron: fileURLToPath(new URL('../electron-standin/chromium-ipc.mjs', import.meta.url)) },
      });
      hub = new EventBus({ role: 'hub', name: 'main' });
      await hub.ready();
      hub.handle('app:echo', (v) => v);
      hub.handle('app:fail', () => {
        throw Object.assign(new TypeError('bad input'), { code: 'E_BAD', field: 'x' });
      });
      hub.handle('app:hang', () => new Promise(() => {}));
      // main checks what pages send it with a zod schema.
      hub.handle('app:resize', ({ width, height }) => width * height, { schema: z.object({ width: z.number().int(), height: z.number().int() }) });
      worker = new Worker(fileURLToPath(import.meta.url));
      await deadline(10_000, 'the worker', new Promise((r) => worker.once('message', r)));
      utility = forkRole(fileURLToPath(import.meta.url), 'utility', hub.childEnv());
      await deadline(10_000, 'the utility process', messageFrom(utility, (m) => m.type === 'ready'));
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
      killLeftovers([utility]);
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

    it('invokes and events cross page <-> a utility process, both ways, values and errors intact', async () => {
      const r = await page.evaluate(async () => {
        const { RemoteError } = Switchboard;
        const value = { big: -(2n ** 65n), when: new Date(42), bytes: new Uint8Array([9, 8]), map: new Map([['k', [1, 2]]]), inf: -Infinity, nan: NaN, nested: { u: undefined, n: null } };
        const e = await bus.invoke('u:echo', value);
        const echoed = e.big === value.big && e.when.getTime() === 42 && e.bytes[1] === 8 && e.map.get('k')[1] === 2 && e.inf === -Infinity && Number.isNaN(e.nan) && 'u' in e.nested && e.nested.n === null;
        const fail = await bus.invoke('u:fail').catch((err) => ({ remote: err instanceof RemoteError, name: err.name, code: err.code, limit: err.limit, message: err.message }));
        const progress = [];
        const off = bus.on('u:progress', (p, ctx) => progress.push([p.step, p.of, p.at.getTime(), ctx.sender.name]));
        const sent = await bus.invoke('u:progress', 3);
        for (let i = 0; i < 100 && progress.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
        off();
        return { echoed, fail, sent, progress };
      });
      assert.deepEqual(r, {
        echoed: true,
        fail: { remote: true, name: 'RangeError', code: 'E_RANGE', limit: 10n, message: 'out of range in u' },
        sent: 3,
        progress: [[1, 3, 1, 'utility'], [2, 3, 2, 'utility'], [3, 3, 3, 'utility']],
      });
      // The utility's events reached the page through main's hub, in order, and the page's emit
      // reaches the utility.
      await hub.invoke('u:reset');
      await page.evaluate(() => {
        for (let i = 0; i < 5; i++) bus.emit('u:tick', i);
      });
      let ticks;
      for (let i = 0; i < 100 && !(ticks?.got >= 5); i++) {
        await new Promise((res) => setTimeout(res, 10));
        ticks = await hub.invoke('u:ticks');
      }
      assert.equal(ticks.got, 5);
    });

    it('main, a worker and a utility process invoke the page, and a schema failure crosses each way', async () => {
      // Into the page: its valibot schema passes and refuses, for every kind of caller.
      assert.deepEqual(await hub.invoke('page:double', { n: 21 }), { n: 42, big: 21n * 2n ** 64n });
      assert.deepEqual(await hub.invoke('w:askPage', { n: 2 }), { ok: { n: 4, big: 2n * 2n ** 64n } });
      assert.deepEqual(await hub.invoke('u:askPage', { n: 3 }), { ok: { n: 6, big: 3n * 2n ** 64n } });
      const atMain = await hub.invoke('page:double', { n: 'two' }).catch((e) => e);
      assert.ok(atMain instanceof ValidationError, String(atMain));
      assert.ok(!(atMain instanceof RemoteError));
      assert.match(atMain.message, /\bn\b/, 'the message names the path');
      assert.equal(atMain.path, 'n');
      assert.equal(atMain.remote?.name, 'chromium', 'the page is the one that checked');
      for (const p of ['w', 'u']) {
        const { error } = await hub.invoke(`${p}:askPage`, { n: 'two' });
        assert.equal(error.cls, 'ValidationError', p);
        assert.equal(error.code, 'E_VALIDATION', p);
        assert.match(error.message, /\bn\b/, p);
      }
      // Out of the page: main's zod schema refuses, and the page gets a typed ValidationError.
      const fromPage = await page.evaluate(async () => {
        const { ValidationError } = Switchboard;
        const ok = await bus.invoke('app:resize', { width: 3, height: 4 });
        const err = await bus.invoke('app:resize', { width: 3, height: 4.5 }).catch((e) => e);
        return { ok, typed: err instanceof ValidationError, code: err.code, path: err.path, remote: err.remote?.name, message: err.message };
      });
      assert.equal(fromPage.ok, 12);
      assert.equal(fromPage.typed, true, fromPage.message);
      assert.equal(fromPage.code, 'E_VALIDATION');
      assert.equal(fromPage.path, 'height');
      assert.equal(fromPage.remote, 'main');
      assert.match(fromPage.message, /height/);
    });

    for (const isolated of [true, false]) {
      it(`a preload's exposeBus() hands the port to the page's own new EventBus() (contextIsolation ${isolated ? 'on' : 'off'})`, async () => {
        // With contextIsolation, Electron runs the preload in an isolated world of the page's frame:
        // here, a world made with CDP's Page.createIsolatedWorld. Without it, in the main world.
        const p = await browser.newPage();
        const cdp = await p.context().newCDPSession(p);
        try {
          await p.goto('about:blank');
          const { frameTree } = await cdp.send('Page.getFrameTree');
          await cdp.send('Runtime.enable');
          let contextId;
          if (isolated) {
            await cdp.send('Runtime.addBinding', { name: '__toHubFromPreload', executionContextName: 'preload' });
            ({ executionContextId: contextId } = await cdp.send('Page.createIsolatedWorld', { frameId: frameTree.frame.id, worldName: 'preload' }));
          } else {
            await cdp.send('Runtime.addBinding', { name: '__toHubFromPreload' });
          }
          const inPreload = (expression) => cdp.send('Runtime.evaluate', { expression, ...(contextId ? { contextId } : {}), awaitPromise: true, returnByValue: true });
          // main's end: attached as attachWindow attaches a window's port.
          const { port1, port2 } = new MessageChannel();
          const detach = hub.attachPort(port1, { name: 'preloaded', origin: 'http://page.test', allow: { invoke: ['app:*'], handle: ['page:*'] } });
          let bridged;
          let chain = new Promise((resolve) => (bridged = resolve));
          port2.on('message', (m) => {
            const msg = m instanceof Uint8Array ? { b: toBase64(m) } : { o: m };
            chain = chain.then(() => inPreload(`__fromHub(${JSON.stringify(msg)})`)).catch(() => {});
          });
          cdp.on('Runtime.bindingCalled', ({ name, payload }) => {
            if (name !== '__toHubFromPreload') return;
            const msg = JSON.parse(payload);
            port2.postMessage(msg.b !== undefined ? new Uint8Array(Buffer.from(msg.b, 'base64')) : msg.o);
          });
          // The preload runs first, as in Electron; then the page's scripts.
          await deadline(5000, 'the bridge in the preload world', inPreload(PRELOAD_BRIDGE));
          bridged();
          const ran = await deadline(5000, 'the preload', inPreload(preloadCode));
          assert.equal(ran.exceptionDetails, undefined, JSON.stringify(ran.exceptionDetails));
          await p.addScriptTag({ content: code });
          const r = await deadline(10_000, "the page's bus", p.evaluate(async () => {
            // No port given: the bus waits for the one the preload hands this window.
            const bus = new Switchboard.EventBus({ name: 'preloaded' });
            bus.handle('page:where', () => location.href);
            await bus.ready();
            const echoed = await bus.invoke('app:echo', { big: 7n, when: new Date(3) });
            return {
              echoed: echoed.big === 7n && echoed.when.getTime() === 3,
              // Nothing of Electron's, nor the preload's bridge, is in the page's world with isolation.
              leaked: ['ipcRenderer', '__preloadBridge', '__fromHub'].filter((k) => k in globalThis),
            };
          }));
          assert.equal(r.echoed, true);
          assert.deepEqual(r.leaked, isolated ? [] : ['__preloadBridge', '__fromHub'], 'the page world holds only what this world put there');
          assert.equal(await hub.invoke('page:where'), 'about:blank');
          detach();
        } finally {
          await p.close();
        }
      });
    }

    it("figures: page -> utility events/s and invoke round trip through main, beside two Node.js clients, and main's cost per page message", async () => {
      const N = sanitized ? 2000 : 20000;
      const CALLS = sanitized ? 100 : 500;
      const before = { ...linkCost };
      const fromPage = await page.evaluate(
        async ({ N, CALLS }) => {
          const rtt = [];
          for (let i = 0; i < CALLS; i++) {
            const t = performance.now();
            await bus.invoke('u:echo', i);
            rtt.push(performance.now() - t);
          }
          rtt.sort((a, b) => a - b);
          await bus.invoke('u:reset');
          for (let i = 0; i < N; i++) {
            if (!bus.emit('u:tick', i)) await bus.drained();
            if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
          }
          return { p50: rtt[Math.floor(CALLS / 2)], p99: rtt[Math.floor(CALLS * 0.99)] };
        },
        { N, CALLS },
      );
      let ticks;
      for (let i = 0; i < 500; i++) {
        ticks = await hub.invoke('u:ticks');
        if (ticks.got >= N) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(ticks.got, N, 'every event reached the utility process');
      const pageRate = N / (ticks.ms / 1000);
      const spent = { ms: linkCost.ms - before.ms, messages: linkCost.messages - before.messages };
      // The same from a Node.js client (this thread's own client of the hub).
      const node = new EventBus({ role: 'client', endpoint: hub.childEnv().SWITCHBOARD_ENDPOINT, token: hub.childEnv().SWITCHBOARD_TOKEN, name: 'node' });
      await node.ready();
      const rtt = [];
      for (let i = 0; i < CALLS; i++) {
        const t = performance.now();
        await node.invoke('u:echo', i);
        rtt.push(performance.now() - t);
      }
      rtt.sort((a, b) => a - b);
      await node.invoke('u:reset');
      for (let i = 0; i < N; i++) {
        if (!node.emit('u:tick', i)) await node.drained();
        if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
      }
      for (let i = 0; i < 500; i++) {
        ticks = await node.invoke('u:ticks');
        if (ticks.got >= N) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await node.close();
      const nodeRate = N / (ticks.ms / 1000);
      console.log(
        `# page -> utility through main: ${Math.round(pageRate)} events/s, invoke p50 ${fromPage.p50.toFixed(2)} ms, p99 ${fromPage.p99.toFixed(2)} ms` +
          ` (bridged through playwright); Node.js client -> utility: ${Math.round(nodeRate)} events/s, invoke p50 ${rtt[Math.floor(CALLS / 2)].toFixed(2)} ms, p99 ${rtt[Math.floor(CALLS * 0.99)].toFixed(2)} ms`,
      );
      // main's JavaScript per page message: what attachPort's listener costs for each batch the
      // page posted (calls and events alike), and per event or call sent.
      const sends = N + 2 * CALLS + 1;
      console.log(
        `# main's JavaScript per page message: ${((spent.ms * 1000) / spent.messages).toFixed(1)} µs for each of ${spent.messages} batches` +
          ` (${((spent.ms * 1000) / sends).toFixed(2)} µs per event or call sent; ${spent.ms.toFixed(1)} ms in all)`,
      );
      assert.ok(pageRate > 0 && nodeRate > 0);
      assert.ok(spent.messages > 0 && spent.messages <= sends, `${spent.messages} batches for ${sends} sends`);
    });

    it("a page that floods the bus is paused and does not stall main's other peers", async () => {
      // The utility process stops reading; the page floods it. The hub parks the page's frames,
      // main stops acknowledging them, and the page's emit() returns false; meanwhile main and
      // the worker go on calling each other.
      await hub.invoke('u:reset');
      utility.kill('SIGSTOP');
      try {
        const SIZE = 32 * 1024;
        const N = 1000; // 32 MiB: more than the utility's socket, its hub queue and the page's mark
        await page.evaluate(
          ({ SIZE, N }) => {
            window.__flood = { sent: 0, falses: 0, done: false };
            (async () => {
              for (let i = 0; i < N; i++) {
                const ok = bus.emit('u:tick', new Uint8Array(SIZE).fill(i & 255));
                window.__flood.sent++;
                if (!ok) {
                  window.__flood.falses++;
                  await bus.drained();
                }
              }
              window.__flood.done = true;
            })();
          },
          { SIZE, N },
        );
        const latencies = [];
        let flood;
        let peakParked = 0;
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          const t = performance.now();
          assert.equal(await hub.invoke('w:echo', t), t);
          latencies.push(performance.now() - t);
          peakParked = Math.max(peakParked, hub.stats().hub.parkedBytes);
          await new Promise((r) => setTimeout(r, 10));
        }
        flood = await page.evaluate(() => ({ ...window.__flood }));
        latencies.sort((a, b) => a - b);
        console.log(
          `# page flood to a stopped utility: ${flood.sent} of ${N} sent, emit() false ${flood.falses} times, hub parked at most ${(peakParked / 2 ** 20).toFixed(1)} MiB;` +
            ` meanwhile main -> worker: ${latencies.length} calls, p50 ${latencies[latencies.length >> 1].toFixed(2)} ms, max ${latencies.at(-1).toFixed(2)} ms`,
        );
        assert.ok(flood.falses > 0 && !flood.done, "the page's emit() returned false and it waits");
        assert.ok(latencies.length >= 20, `main's calls to the worker went on (${latencies.length} in 1.5 s)`);
        assert.ok(peakParked <= 8 * 2 ** 20 + 2 * SIZE * 64, `the hub parked ${peakParked} bytes for the page`);
        utility.kill('SIGCONT');
        for (let i = 0; i < 1000 && !flood.done; i++) {
          await new Promise((r) => setTimeout(r, 20));
          flood = await page.evaluate(() => ({ ...window.__flood }));
        }
        assert.ok(flood.done, 'the page sent everything once the utility read again');
        let ticks;
        for (let i = 0; i < 500 && !(ticks?.got >= N); i++) {
          await new Promise((r) => setTimeout(r, 20));
          ticks = await hub.invoke('u:ticks');
        }
        assert.equal(ticks.got, N, 'nothing was lost');
      } finally {
        utility.kill('SIGCONT');
      }
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
