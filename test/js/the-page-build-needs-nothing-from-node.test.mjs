// Promise (issue 12, part 1): the page build (switchboard-ipc/renderer, and what a browser
// bundler gets for `import 'switchboard-ipc'`) holds the bus, the codec and the errors, and
// nothing native: bundled by esbuild for the browser it needs no Node.js built-in and no .node
// file, and it runs where there is no `process`, `Buffer` or `require`, joined to a real hub
// over a MessagePort that main attached.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { MessageChannel } from 'node:worker_threads';
import { build } from 'esbuild';
import { EventBus, RemoteError } from '../../dist/esm/index.js';
import { deadline } from './support.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

async function bundle(entry, format = 'esm') {
  return build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format,
    globalName: format === 'iife' ? 'Switchboard' : undefined,
    write: false,
    metafile: true,
    logLevel: 'silent',
    absWorkingDir: root,
  });
}

describe('the page build needs nothing from Node.js', { timeout: 60_000 }, () => {
  it('bundles for the browser with no Node.js built-in and no native file', async () => {
    for (const entry of ['switchboard-ipc/renderer', 'switchboard-ipc']) {
      // Resolved as a browser bundler resolves the package: by its exports map.
      const out = await bundle(entry);
      assert.deepEqual(out.errors, []);
      const inputs = Object.keys(out.metafile.inputs);
      assert.ok(inputs.some((f) => f.endsWith('dist/esm/event-bus.js')), `${entry}: the bus is in it`);
      assert.ok(inputs.some((f) => f.endsWith('dist/esm/codec.js')), `${entry}: the codec is in it`);
      for (const f of inputs) {
        assert.ok(!f.startsWith('node:') && !/\.(node|cjs)$/.test(f) && !f.includes('native'), `${entry} pulls in ${f}`);
      }
      const text = out.outputFiles[0].text;
      assert.doesNotMatch(text, /require\(["']node:|from ["']node:|\.node["']/, `${entry}: no Node.js import left`);
      console.log(`# ${entry}: ${inputs.length} modules, ${(text.length / 1024).toFixed(0)} KiB unminified`);
    }
  });

  it('runs without process, Buffer or require, joined to a hub over a port', async () => {
    const code = (await bundle('switchboard-ipc/renderer', 'iife')).outputFiles[0].text;
    const hub = new EventBus({ role: 'hub', name: 'main' });
    try {
      await hub.ready();
      hub.handle('app:echo', (v) => v);
      hub.handle('app:fail', () => {
        throw Object.assign(new RangeError('too far'), { code: 'E_FAR' });
      });
      const fromPage = new Promise((resolve) => hub.once('page:hello', (v, ctx) => resolve({ v, sender: ctx.sender })));
      const { port1, port2 } = new MessageChannel();
      hub.attachPort(port1, { name: 'vm-page', allow: { emit: ['page:*'], invoke: ['app:*'], subscribe: ['main:*'] } });

      // A context with the web platform's globals a page has, and none of Node's.
      const results = [];
      const context = vm.createContext({
        console,
        setTimeout,
        clearTimeout,
        queueMicrotask,
        TextEncoder,
        TextDecoder,
        AbortController,
        performance,
        outerPort: port2,
        report: (r) => results.push(r),
      });
      assert.equal(vm.runInContext('typeof process + typeof Buffer + typeof require', context), 'undefinedundefinedundefined');
      vm.runInContext(code, context);
      vm.runInContext(
        `(async () => {
          // The port as a page sees it: messages are values of this realm.
          const port = {
            postMessage: (m) => outerPort.postMessage(m),
            addEventListener: (type, fn) => outerPort.addEventListener(type, (ev) =>
              fn({ data: ev.data && ev.data.BYTES_PER_ELEMENT === 1 ? new Uint8Array(ev.data) : ev.data })),
            start: () => outerPort.start(),
            close: () => outerPort.close(),
          };
          const { EventBus, ForbiddenError, RemoteError } = Switchboard;
          const bus = new EventBus({ port });
          try {
            await bus.ready();
            const ticks = [];
            bus.on('main:tick', (v) => ticks.push(v));
            const value = { n: 1.5, big: 2n ** 65n, when: new Date(7), bytes: new Uint8Array([9, 8]), map: new Map([['k', 1]]), set: new Set(['s']) };
            const echoed = await bus.invoke('app:echo', value);
            let failed;
            try { await bus.invoke('app:fail'); } catch (e) { failed = { remote: e instanceof RemoteError, name: e.name, code: e.code, message: e.message }; }
            let forbidden;
            try { await bus.invoke('admin:wipe'); } catch (e) { forbidden = e instanceof ForbiddenError; }
            bus.emit('page:hello', value);
            await bus.invoke('app:echo', 'fence');
            const same = { n: echoed.n === 1.5, big: echoed.big === value.big, when: echoed.when instanceof Date && echoed.when.getTime() === 7, bytes: echoed.bytes instanceof Uint8Array && echoed.bytes[1] === 8, map: echoed.map instanceof Map && echoed.map.get('k') === 1, set: echoed.set instanceof Set && echoed.set.has('s') };
            report({ same, failed, forbidden, name: bus.name });
            await new Promise((r) => setTimeout(r, 200));
            report({ ticks });
          } catch (e) {
            report({ error: String(e && e.stack || e) });
          } finally {
            await bus.close();
          }
        })()`,
        context,
      );
      const got = await deadline(10_000, 'the page in the vm', Promise.race([
        fromPage,
        new Promise((_, reject) => {
          const t = setInterval(() => results[0]?.error && (clearInterval(t), reject(new Error(results[0].error))), 20);
          t.unref();
        }),
      ]));
      assert.deepEqual(got.v.bytes, new Uint8Array([9, 8]));
      assert.equal(got.v.big, 2n ** 65n);
      assert.equal(got.sender.name, 'vm-page');
      hub.emit('main:tick', 42);
      for (let i = 0; i < 300 && results.length < 2 && !results[0]?.error; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(results[0]?.error, undefined, results[0]?.error);
      assert.deepEqual({ ...results[0].same }, { n: true, big: true, when: true, bytes: true, map: true, set: true }, 'values of every kind cross intact');
      assert.deepEqual({ ...results[0].failed }, { remote: true, name: 'RangeError', code: 'E_FAR', message: 'too far' });
      assert.equal(results[0].forbidden, true);
      assert.equal(results[0].name, 'page');
      assert.deepEqual([...results[1].ticks], [42]);
    } finally {
      await hub.close();
    }
  });

  it('the package sends a browser bundler to the page build', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.equal(pkg.exports['.'].browser, './dist/esm/renderer.js');
    assert.equal(pkg.exports['./renderer'].import, './dist/esm/renderer.js');
    const require = createRequire(import.meta.url);
    assert.equal(typeof require('switchboard-ipc/renderer').EventBus, 'function');
    void RemoteError;
  });
});
