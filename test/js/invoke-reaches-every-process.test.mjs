// Promise: invoke() reaches its handler wherever it runs, in every direction (child -> hub,
// hub -> child, child -> child through the hub, worker -> child, ...), replies go back to the
// right caller, and the handler sees who called (ctx.sender).
//
// Roles: 'main' (the test process and the hub), 'child-a' and 'child-b' (forked processes),
// 'worker' (a worker thread in the hub's process). Synchronised by bus messages only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import {
  checkClosed, collectEvents, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning,
  killLeftovers, startWorker,
} from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const PEERS = ['child-a', 'child-b', 'worker'];

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
    checkClosed(bus, role);
  });
  bus.emit('peer:ready', { role, pid: process.pid });
}

// --- The hub and the tests -------------------------------------------------------------------------

function runMain() {
  describe('invoke reaches every process', { timeout: 60_000 }, () => {
    let bus;
    const children = {};
    let worker;
    const pid = {};

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      serveWhoami(bus, 'hub');
      const ready = collectEvents(bus, 'peer:ready', PEERS.length);
      for (const name of ['child-a', 'child-b']) {
        children[name] = forkRole(thisFile, name, bus.childEnv());
      }
      worker = startWorker(thisFile, 'worker');
      worker.on('error', (err) => console.error('worker error', err));
      for (const r of await deadline(15_000, 'peers ready', ready)) pid[r.role] = r.pid;
      assert.equal(pid['child-a'], children['child-a'].pid);
      assert.equal(pid['child-b'], children['child-b'].pid);
      assert.equal(pid.worker, process.pid, 'a worker shares the hub\'s process');
    });

    after(async () => {
      killLeftovers(Object.values(children));
      await worker?.terminate();
      await bus?.close();
    });

    it('child -> hub', { timeout: 10_000 }, async () => {
      const { caller, result } = await deadline(5_000, 'invoke', bus.invoke('child-a:call', { name: 'hub:whoami', req: { x: 1 } }));
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
      const result = await deadline(5_000, 'invoke', bus.invoke('child-b:whoami', { y: 2 }));
      assert.equal(result.role, 'child-b');
      assert.equal(result.pid, children['child-b'].pid);
      assert.deepEqual(result.req, { y: 2 });
      assert.equal(result.sender.name, 'hub');
      assert.equal(result.sender.pid, process.pid);
      assert.equal(result.sender.id, bus.stats().peerId);
    });

    it('child -> child, through the hub', { timeout: 10_000 }, async () => {
      const routedBefore = bus.stats().hub.invokesRouted;
      const { caller, result } = await deadline(5_000, 'invoke', bus.invoke('child-a:call', { name: 'child-b:whoami', req: 'hi' }));
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
      const { caller, result } = await deadline(5_000, 'invoke', bus.invoke('worker:call', { name: 'child-a:whoami', req: [1, 2] }));
      assert.equal(caller, 'worker');
      assert.equal(result.role, 'child-a');
      assert.equal(result.pid, children['child-a'].pid);
      assert.deepEqual(result.req, [1, 2]);
      assert.equal(result.sender.name, 'worker');
      assert.equal(result.sender.role, 'worker');
      assert.equal(result.sender.pid, process.pid);
    });

    it('child -> worker and hub -> worker', { timeout: 10_000 }, async () => {
      const { result } = await deadline(5_000, 'invoke', bus.invoke('child-b:call', { name: 'worker:whoami', req: null }));
      assert.equal(result.role, 'worker');
      assert.equal(result.sender.name, 'child-b');
      const direct = await deadline(5_000, 'invoke', bus.invoke('worker:whoami', 'x'));
      assert.equal(direct.role, 'worker');
      assert.equal(direct.sender.name, 'hub');
    });

    it('hub -> its own handler (in-process, same copy semantics)', { timeout: 10_000 }, async () => {
      const req = { when: new Date(5) };
      const result = await deadline(5_000, 'invoke', bus.invoke('hub:whoami', req));
      assert.equal(result.role, 'hub');
      assert.notEqual(result.req, req, 'the handler got a copy');
      assert.deepEqual(result.req, req);
    });

    it('500 concurrent child -> child invokes each get their own reply', { timeout: 15_000 }, async () => {
      const squares = await deadline(10_000, 'call-many', bus.invoke('child-a:call-many', { name: 'child-b:square', count: 500 }));
      assert.equal(squares.length, 500);
      for (let i = 0; i < 500; i++) assert.equal(squares[i], i * i, `reply ${i}`);
      const fromWorker = await deadline(10_000, 'call-many', bus.invoke('worker:call-many', { name: 'child-a:square', count: 200 }));
      assert.deepEqual(fromWorker, Array.from({ length: 200 }, (_, i) => i * i));
    });

    it('closes: every peer exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      for (const [name, child] of Object.entries(children)) {
        assert.deepEqual(await deadline(5_000, `${name} exit`, exitCode(child)), { code: 0, signal: null }, `${name} closed cleanly and exited`);
      }
      assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0);
      await bus.close();
      const s = bus.stats();
      assert.equal(s.state, 'closed');
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else await runPeer();
