// Promise (DESIGN.md, "Entry points"): ESM and CommonJS both work. This file loads the package
// only through require('../../dist/cjs/index.js') (via createRequire), in the test process and in
// a worker thread, and runs a small hub + worker exchange with it.
//
// Roles: 'main' (the test process and the hub) and 'worker' (a worker thread).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { currentRole, deadline, exitCode, startWorker } from './support.mjs';

const require = createRequire(import.meta.url);
const switchboard = require('../../dist/cjs/index.js');
const { EventBus, NoHandlerError, RemoteError, detectProcess } = switchboard;

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

async function runWorker() {
  const bus = new EventBus({ name: 'cjs-worker' });
  await bus.ready();
  bus.handle('cjs:whoami', (req, ctx) => ({ kind: detectProcess(), caller: ctx.sender.name, req }));
  const sum = await bus.invoke('cjs:add', { a: 40, b: 2 });
  bus.emit('cjs:hello', { sum, when: new Date(7) });
  await bus.once('cjs:bye');
  await bus.close();
}

function runMain() {
  describe('CommonJS: require(\'../../dist/cjs/index.js\') works', { timeout: 30_000 }, () => {
    it('exports the API', { timeout: 5_000 }, () => {
      assert.equal(typeof EventBus, 'function');
      assert.equal(typeof detectProcess, 'function');
      assert.equal(typeof NoHandlerError, 'function');
      assert.equal(detectProcess(), 'node');
    });

    it('a hub and a worker, both through require(), exchange events and invokes', { timeout: 15_000 }, async () => {
      const bus = new EventBus({ role: 'hub', name: 'cjs-hub' });
      await bus.ready();
      bus.handle('cjs:add', ({ a, b }) => a + b);
      bus.handle('cjs:fail', () => {
        throw new TypeError('from the hub');
      });
      const hello = bus.once('cjs:hello');
      const worker = startWorker(thisFile, 'worker');
      worker.on('error', (err) => console.error('worker error', err));

      const h = await deadline(10_000, 'hello from the worker', hello);
      assert.equal(h.sum, 42);
      assert.ok(h.when instanceof Date && h.when.getTime() === 7);
      assert.deepEqual(await deadline(5_000, 'hub -> worker', bus.invoke('cjs:whoami', 'hi')), { kind: 'worker', caller: 'cjs-hub', req: 'hi' });
      await assert.rejects(bus.invoke('cjs:nobody'), (err) => err instanceof NoHandlerError && err.code === 'E_NO_HANDLER');
      // A local handler's error is a RemoteError too, of this module's class.
      await assert.rejects(bus.invoke('cjs:fail'), (err) => err instanceof RemoteError && err.name === 'TypeError');

      bus.emit('cjs:bye');
      assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0, 'the worker closes and exits by itself');
      await bus.close();
      const s = bus.stats();
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role === 'main') runMain();
else await runWorker();
