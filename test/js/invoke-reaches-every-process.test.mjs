// Promise: invoke() reaches its handler wherever it runs, in every direction (child -> hub,
// hub -> child, child -> child through the hub, worker -> child, ...), replies go back to the
// right caller, and the handler sees who called (ctx.sender).
//
// Roles: 'main' (the test process and the hub), 'child-a' and 'child-b' (forked processes),
// 'worker' (a worker thread in the hub's process). Synchronised by bus messages only.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker, workerData } from 'node:worker_threads';
import { EventBus } from '../../dist/esm/index.js';

const thisFile = fileURLToPath(import.meta.url);
const role = workerData?.role ?? process.argv[2] ?? 'main';
const PEERS = ['child-a', 'child-b', 'worker'];

/**
 * A forked role must not outlive the test process: orphaned by a crash or a runner timeout, it
 * would keep running and hold the runner's output pipe open. This watchdog only notices that; it
 * takes no part in the tests' synchronisation.
 */
function dieWithParent() {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  }, 250).unref();
}

function within(ms, what, promise) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function collect(bus, topic, n) {
  return new Promise((resolve) => {
    const got = [];
    const off = bus.on(topic, (data) => {
      got.push(data);
      if (got.length === n) {
        off();
        resolve(got);
      }
    });
  });
}

function childEnv(bus) {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, ...bus.childEnv() };
}

/** Every role serves the same two handlers under its own name. */
function serveWhoami(bus, me) {
  bus.handle(`${me}:whoami`, (req, ctx) => ({ role: me, pid: process.pid, sender: ctx.sender, name: ctx.name, req }));
  bus.handle(`${me}:square`, async (n) => {
    await null; // an async handler
    return n * n;
  });
}

// --- Peer roles ----------------------------------------------------------------------------------

async function runPeer() {
  const bus = new EventBus({ name: role });
  await bus.ready();
  serveWhoami(bus, role);
  // Makes this process the caller: invoke `name` from here and return what came back.
  bus.handle(`${role}:call`, async ({ name, req }) => ({ caller: role, result: await bus.invoke(name, req) }));
  bus.handle(`${role}:call-many`, async ({ name, count }) => {
    const calls = [];
    for (let i = 0; i < count; i++) calls.push(bus.invoke(name, i));
    return Promise.all(calls);
  });
  bus.on('test:quit', async () => {
    await bus.close();
    const s = bus.stats();
    if (s.invokes.pending !== 0 || s.invokes.serving !== 0 || s.state !== 'closed') {
      console.error(`${role}: unclean close`, JSON.stringify(s));
      process.exitCode = 1;
    }
  });
  bus.emit('peer:ready', { role, pid: process.pid });
}

// --- The hub and the tests -------------------------------------------------------------------------

function runMain() {
  describe('invoke reaches every process', { timeout: 60_000 }, () => {
    let bus;
    const children = {};
    let worker;
    let workerExit;
    const pid = {};

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      serveWhoami(bus, 'hub');
      const ready = collect(bus, 'peer:ready', PEERS.length);
      for (const name of ['child-a', 'child-b']) {
        const child = fork(thisFile, [name], { env: childEnv(bus) });
        child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
        children[name] = child;
      }
      worker = new Worker(thisFile, { workerData: { role: 'worker' } });
      workerExit = new Promise((resolve) => worker.once('exit', resolve));
      worker.on('error', (err) => console.error('worker error', err));
      for (const r of await within(15_000, 'peers ready', ready)) pid[r.role] = r.pid;
      assert.equal(pid['child-a'], children['child-a'].pid);
      assert.equal(pid['child-b'], children['child-b'].pid);
      assert.equal(pid.worker, process.pid, 'a worker shares the hub\'s process');
    });

    after(async () => {
      for (const child of Object.values(children)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await worker?.terminate();
      await bus?.close();
    });

    it('child -> hub', { timeout: 10_000 }, async () => {
      const { caller, result } = await within(5_000, 'invoke', bus.invoke('child-a:call', { name: 'hub:whoami', req: { x: 1 } }));
      assert.equal(caller, 'child-a');
      assert.equal(result.role, 'hub');
      assert.equal(result.pid, process.pid);
      assert.equal(result.name, 'hub:whoami');
      assert.deepEqual(result.req, { x: 1 });
      assert.equal(result.sender.name, 'child-a');
      assert.equal(result.sender.pid, children['child-a'].pid);
      assert.equal(result.sender.role, 'node');
    });

    it('hub -> child', { timeout: 10_000 }, async () => {
      const result = await within(5_000, 'invoke', bus.invoke('child-b:whoami', { y: 2 }));
      assert.equal(result.role, 'child-b');
      assert.equal(result.pid, children['child-b'].pid);
      assert.deepEqual(result.req, { y: 2 });
      assert.equal(result.sender.name, 'hub');
      assert.equal(result.sender.pid, process.pid);
      assert.equal(result.sender.id, bus.stats().peerId);
    });

    it('child -> child, through the hub', { timeout: 10_000 }, async () => {
      const routedBefore = bus.stats().hub.invokesRouted;
      const { caller, result } = await within(5_000, 'invoke', bus.invoke('child-a:call', { name: 'child-b:whoami', req: 'hi' }));
      assert.equal(caller, 'child-a');
      assert.equal(result.role, 'child-b');
      assert.equal(result.pid, children['child-b'].pid);
      assert.equal(result.req, 'hi');
      assert.equal(result.sender.name, 'child-a');
      assert.equal(result.sender.pid, children['child-a'].pid);
      // The hub routed two calls: ours to child-a, and child-a's to child-b.
      assert.equal(bus.stats().hub.invokesRouted - routedBefore, 2);
    });

    it('worker -> child', { timeout: 10_000 }, async () => {
      const { caller, result } = await within(5_000, 'invoke', bus.invoke('worker:call', { name: 'child-a:whoami', req: [1, 2] }));
      assert.equal(caller, 'worker');
      assert.equal(result.role, 'child-a');
      assert.equal(result.pid, children['child-a'].pid);
      assert.deepEqual(result.req, [1, 2]);
      assert.equal(result.sender.name, 'worker');
      assert.equal(result.sender.role, 'worker');
      assert.equal(result.sender.pid, process.pid);
    });

    it('child -> worker and hub -> worker', { timeout: 10_000 }, async () => {
      const { result } = await within(5_000, 'invoke', bus.invoke('child-b:call', { name: 'worker:whoami', req: null }));
      assert.equal(result.role, 'worker');
      assert.equal(result.sender.name, 'child-b');
      const direct = await within(5_000, 'invoke', bus.invoke('worker:whoami', 'x'));
      assert.equal(direct.role, 'worker');
      assert.equal(direct.sender.name, 'hub');
    });

    it('hub -> its own handler (in-process, same copy semantics)', { timeout: 10_000 }, async () => {
      const req = { when: new Date(5) };
      const result = await within(5_000, 'invoke', bus.invoke('hub:whoami', req));
      assert.equal(result.role, 'hub');
      assert.notEqual(result.req, req, 'the handler got a copy');
      assert.deepEqual(result.req, req);
    });

    it('500 concurrent child -> child invokes each get their own reply', { timeout: 15_000 }, async () => {
      const squares = await within(10_000, 'call-many', bus.invoke('child-a:call-many', { name: 'child-b:square', count: 500 }));
      assert.equal(squares.length, 500);
      for (let i = 0; i < 500; i++) assert.equal(squares[i], i * i, `reply ${i}`);
      const fromWorker = await within(10_000, 'call-many', bus.invoke('worker:call-many', { name: 'child-a:square', count: 200 }));
      assert.deepEqual(fromWorker, Array.from({ length: 200 }, (_, i) => i * i));
    });

    it('closes: every peer exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      for (const [name, child] of Object.entries(children)) {
        assert.deepEqual(await within(5_000, `${name} exit`, child.exited), { code: 0, signal: null }, `${name} closed cleanly and exited`);
      }
      assert.equal(await within(5_000, 'worker exit', workerExit), 0);
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main' && !workerData) dieWithParent();
if (role === 'main') runMain();
else await runPeer();
