// Promises (issue 12, parts 1 and 2; DESIGN.md "Security"): main makes any MessagePort a peer
// of its hub with bus.attachPort(port, { allow }), and the other end joins with
// new EventBus({ port }). The peer may emit, subscribe to, invoke and serve only what `allow`
// grants (nothing by default): the hub refuses the rest with ForbiddenError and delivers
// nothing, also for raw frames forged on the port. Detaching (the port closes, its thread is
// terminated) ends the peer at once: main's calls to it fail with ConnectionLostError and the
// hub's counts return to baseline.
//
// Here the "page" is a worker thread holding one end of a worker_threads MessageChannel: the
// same bus code a page runs, over the same MessagePort interface (real Chromium comes with the
// page build).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MessageChannel, Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { ConnectionLostError, EventBus, ForbiddenError, InvalidArgumentError } from '../../dist/esm/index.js';
import { currentRole, deadline, forkRole, killLeftovers, messageFrom } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const GRANTS = { emit: ['page:*'], subscribe: ['main:*'], invoke: ['app:*'], handle: ['page:*'] };

// --- A subscriber in its own process (to be stopped) ---------------------------------------------
if (isMainThread && currentRole() === 'subscriber') {
  const sub = new EventBus({ role: 'client', name: 'sub' });
  let n = 0;
  sub.on('page:bulk', (b) => {
    if (b.length === 1 << 20 && b[7] === (n & 255)) n++;
    else n = -1e9;
  });
  sub.handle('sub:count', () => n);
  await sub.ready();
  process.send({ type: 'ready' });
}

// --- The page (a worker thread) ------------------------------------------------------------------
if (!isMainThread) {
  const bus = new EventBus({ port: workerData.port, name: 'page' });
  const errors = [];
  bus.on('error', (e) => errors.push({ name: e.name, code: e.code, message: e.message }));
  const ticks = [];
  await bus.ready();
  bus.handle('page:echo', (v) => v);
  bus.handle('page:hang', () => new Promise(() => {}));
  bus.on('main:tick', (v, ctx) => ticks.push({ v, from: ctx.sender.name }));
  // A fence: the hub routes a peer's frames in order, so once this call is answered the
  // registrations and subscription above are in force.
  await bus.invoke('app:version');
  parentPort.on('message', async (cmd) => {
    try {
      if (cmd === 'emit') {
        bus.emit('page:hello', { at: 1, big: 2n ** 70n, when: new Date(5), bytes: new Uint8Array([1, 2]) });
        parentPort.postMessage({ ok: true });
      } else if (cmd === 'invoke') {
        parentPort.postMessage({ ok: await bus.invoke('app:version', { v: 1 }) });
      } else if (cmd === 'forbidden') {
        const out = {};
        bus.emit('secret:key', 'stolen');
        for (const [what, p] of [
          ['invoke', bus.invoke('admin:wipe', 'all')],
          ['subscribe', new Promise((resolve) => {
            bus.on('error', (e) => e.message.includes("subscribe to 'secret:*'") && resolve(e));
            bus.on('secret:*', () => {});
          })],
          ['handle', new Promise((resolve) => {
            bus.on('error', (e) => e.message.includes("handle 'admin:wipe'") && resolve(e));
            bus.handle('admin:wipe', () => 'pwned');
          })],
        ]) {
          const e = await Promise.resolve(p).then((v) => v, (err) => err);
          out[what] = { name: e?.name, code: e?.code, message: e?.message };
        }
        await new Promise((r) => setTimeout(r, 50));
        out.emit = errors.find((e) => e.message.includes("emit 'secret:key'"));
        parentPort.postMessage({ ok: out });
      } else if (cmd === 'ticks') {
        parentPort.postMessage({ ok: ticks });
      }
    } catch (err) {
      parentPort.postMessage({ error: `${err.name}: ${err.message}` });
    }
  });
  parentPort.postMessage({ ready: true });
}

// --- Main -----------------------------------------------------------------------------------------
function ask(worker, cmd) {
  return new Promise((resolve, reject) => {
    worker.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m.ok)));
    worker.postMessage(cmd);
  });
}

async function startPage(bus, allow = GRANTS) {
  const { port1, port2 } = new MessageChannel();
  const detach = bus.attachPort(port1, { name: 'page', allow });
  const worker = new Worker(thisFile, { workerData: { port: port2 }, transferList: [port2] });
  await deadline(10_000, 'the page to be ready', new Promise((r) => worker.once('message', r)));
  return { worker, detach };
}

async function settle(bus, pred, what) {
  for (let i = 0; i < 200; i++) {
    if (pred(bus.stats().hub)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`${what}: ${JSON.stringify(bus.stats().hub)}`);
}

if (isMainThread && currentRole() === 'main') {
  describe('a port-attached peer does only what it is granted', { timeout: 90_000 }, () => {
    let bus;
    let baseline;

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'main' });
      await bus.ready();
      bus.handle('app:version', (req) => ({ version: '1.0', req }));
      bus.handle('admin:wipe', () => 'wiped');
      bus.on('secret:*', () => assert.fail('a refused event was delivered'));
      await bus.invoke('app:version'); // after one round trip the registrations are in force
      baseline = bus.stats().hub;
      assert.deepEqual([baseline.peers, baseline.handlers, baseline.subscriptions], [1, 2, 1]);
    });

    after(async () => {
      await bus?.close();
    });

    it('events and invokes cross both ways, values intact, with the sender stamped', async () => {
      const { worker } = await startPage(bus);
      try {
        const got = new Promise((resolve) => bus.once('page:hello', (v, ctx) => resolve({ v, ctx })));
        await ask(worker, 'emit');
        const { v, ctx } = await deadline(5000, 'page:hello', got);
        assert.deepEqual(v, { at: 1, big: 2n ** 70n, when: new Date(5), bytes: new Uint8Array([1, 2]) });
        assert.equal(ctx.sender.role, 'renderer');
        assert.equal(ctx.sender.name, 'page');
        assert.deepEqual(await ask(worker, 'invoke'), { version: '1.0', req: { v: 1 } });
        assert.deepEqual(await bus.invoke('page:echo', [1, 'two', null]), [1, 'two', null]);
        bus.emit('main:tick', 7);
        let ticks = [];
        for (let i = 0; i < 100 && ticks.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 10));
          ticks = await ask(worker, 'ticks');
        }
        assert.deepEqual(ticks, [{ v: 7, from: 'main' }]);
      } finally {
        await worker.terminate();
      }
      await settle(bus, (h) => h.peers === baseline.peers, 'peers back to baseline');
    });

    it('what is not granted is refused with ForbiddenError, and nothing is delivered', async () => {
      const { worker } = await startPage(bus);
      try {
        const out = await ask(worker, 'forbidden');
        for (const what of ['emit', 'invoke', 'subscribe', 'handle']) {
          assert.equal(out[what]?.name, 'ForbiddenError', `${what}: ${JSON.stringify(out[what])}`);
          assert.equal(out[what].code, 'E_FORBIDDEN');
          assert.match(out[what].message, /grant it in main with allow/);
        }
        assert.equal(await bus.invoke('app:version').then((r) => r.version), '1.0');
        assert.equal(bus.stats().hub.handlers, baseline.handlers + 2, "page:echo and page:hang, not admin:wipe");
      } finally {
        await worker.terminate();
      }
      await settle(bus, (h) => h.peers === baseline.peers && h.handlers === baseline.handlers, 'baseline');
    });

    it('the default grants nothing', async () => {
      const { port1, port2 } = new MessageChannel();
      bus.attachPort(port1, { name: 'bare' });
      const page = new EventBus({ port: port2, name: 'bare' });
      try {
        await page.ready();
        const err = await page.invoke('app:version').catch((e) => e);
        assert.ok(err instanceof ForbiddenError, String(err));
      } finally {
        await page.close();
      }
      await settle(bus, (h) => h.peers === baseline.peers, 'peers back to baseline');
    });

    it('forged raw frames are held to the same grants, and bytes that are not frames detach the port', async () => {
      // Frames as a bus writes them, taken off a port nobody attached.
      const rec = new MessageChannel();
      const forger = new EventBus({ port: rec.port1, name: 'forger' });
      const batches = [];
      rec.port2.on('message', (m) => batches.push(m));
      forger.emit('secret:key', 'stolen');
      forger.emit('page:fine', 1);
      await new Promise((r) => setTimeout(r, 50));
      await forger.close();
      assert.ok(batches.length >= 1);

      const { port1, port2 } = new MessageChannel();
      bus.attachPort(port1, { name: 'forged', allow: GRANTS });
      const fine = new Promise((resolve) => bus.once('page:fine', resolve));
      const answers = [];
      port2.on('message', (m) => answers.push(m));
      for (const b of batches) port2.postMessage(b);
      assert.equal(await deadline(5000, 'the granted forged event', fine), 1);
      await settle(bus, (h) => h.peers === baseline.peers + 1, 'the forger is a peer');
      port2.postMessage(new Uint8Array([0, 0, 0, 9, 1, 2]));
      await settle(bus, (h) => h.peers === baseline.peers, 'garbage detached the port');
      assert.ok(answers.some((a) => a instanceof Uint8Array), 'the refusal went back as frames');
      port2.close();
    });

    it("a terminated page fails main's calls to it at once and leaves nothing behind", async () => {
      const { worker } = await startPage(bus);
      const hanging = bus.invoke('page:hang', null, { timeout: 30_000 }).catch((e) => e);
      let t0;
      try {
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(bus.stats().hub.pendingInvokes, 1);
      } finally {
        t0 = Date.now();
        await worker.terminate();
      }
      const err = await hanging;
      assert.ok(err instanceof ConnectionLostError, String(err));
      assert.ok(Date.now() - t0 < 2000, `failed after ${Date.now() - t0} ms`);
      await settle(bus, (h) => h.peers === baseline.peers && h.subscriptions === baseline.subscriptions && h.pendingInvokes === 0, 'baseline');
    });

    it('50 attach / terminate rounds return every count to baseline', async () => {
      for (let i = 0; i < 50; i++) {
        const { worker } = await startPage(bus);
        await worker.terminate();
      }
      await settle(
        bus,
        (h) => h.peers === baseline.peers && h.subscriptions === baseline.subscriptions && h.handlers === baseline.handlers && h.pendingInvokes === 0,
        'baseline after 50 rounds',
      );
    });

    it("a page that floods a stopped subscriber is paused: the hub's memory stays bounded", async () => {
      const sub = forkRole(fileURLToPath(import.meta.url), 'subscriber', bus.childEnv());
      const { port1, port2 } = new MessageChannel();
      bus.attachPort(port1, { name: 'flooder', allow: { emit: ['page:*'] } });
      const page = new EventBus({ port: port2, name: 'flooder' });
      try {
        await deadline(10_000, 'the subscriber', messageFrom(sub, (m) => m.type === 'ready'));
        await page.ready();
        sub.kill('SIGSTOP');
        let falses = 0;
        let peakParked = 0;
        const N = 64;
        const sending = (async () => {
          for (let i = 0; i < N; i++) {
            const b = new Uint8Array(1 << 20).fill(i & 255);
            if (!page.emit('page:bulk', b)) {
              falses++;
              await page.drained();
            }
          }
          await page.drained();
        })();
        for (let t = 0; t < 100; t++) {
          peakParked = Math.max(peakParked, bus.stats().hub.parkedBytes);
          await new Promise((r) => setTimeout(r, 10));
        }
        sub.kill('SIGCONT');
        await deadline(30_000, 'the page to send everything', sending);
        let got = 0;
        for (let i = 0; i < 300 && got !== N; i++) {
          got = await bus.invoke('sub:count');
          await new Promise((r) => setTimeout(r, 20));
        }
        console.log(`# page held back: emit() false ${falses} times; hub parked at most ${(peakParked / 2 ** 20).toFixed(1)} MiB; subscriber got ${got} of ${N}`);
        assert.equal(got, N, 'every event arrived, in order, intact');
        assert.ok(falses > 0, "the page's emit() returned false");
        // At most what the page may have unacknowledged: its 8 MiB mark, plus one event.
        assert.ok(peakParked <= 8 * 2 ** 20 + 2 * 2 ** 20, `the hub parked ${peakParked} bytes for the page`);
      } finally {
        sub.kill('SIGCONT');
        await page.close();
        killLeftovers([sub]);
      }
      await settle(bus, (h) => h.peers === baseline.peers && h.subscriptions === baseline.subscriptions, 'baseline');
    });

    it('attachPort is for the hub, with a port and grants it understands', async () => {
      const { port1 } = new MessageChannel();
      assert.throws(() => bus.attachPort({}), InvalidArgumentError);
      assert.throws(() => bus.attachPort(port1, { allow: { emit: 'job:*' } }), InvalidArgumentError);
      assert.throws(() => bus.attachPort(port1, { allow: { publish: ['x'] } }), InvalidArgumentError);
      port1.close();
    });
  });
}
