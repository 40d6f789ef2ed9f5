// Promise (issue 12, part 6; DESIGN.md "Who joins, and how"): detectProcess() tells Electron's
// processes apart by process.type ('browser' -> 'main', 'renderer' with Node.js -> 'preload',
// 'utility' -> 'utility'), and with role 'auto' main becomes the hub and a utility process joins
// as a socket client from the hub's childEnv(). Electron sets process.type; here the test sets it
// in a plain Node.js process, before the bus looks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus, detectProcess } from '../../dist/esm/index.js';
import { currentRole, deadline, forkRole, killLeftovers, messageFrom } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);

if (currentRole() === 'utility') {
  process.type = 'utility';
  const bus = new EventBus({ name: 'worker-pool' });
  await bus.ready();
  bus.handle('pool:kind', () => ({ kind: detectProcess(), role: bus.role }));
  await bus.invoke('main:ping');
  process.send({ type: 'ready' });
  process.on('message', async (m) => {
    if (m === 'close') {
      await bus.close();
      process.exit(0);
    }
  });
} else {
  describe("Electron's processes are detected", { timeout: 30_000 }, () => {
    it("process.type 'browser' is main, and main is the hub", async () => {
      const saved = process.type;
      process.type = 'browser';
      try {
        assert.equal(detectProcess(), 'main');
        const bus = new EventBus({ name: 'main' });
        assert.equal(bus.role, 'hub');
        await bus.close();
        process.type = 'renderer';
        assert.equal(detectProcess(), 'preload');
      } finally {
        process.type = saved;
      }
    });

    it('a utility process joins as a client from childEnv() and shows as utility', async () => {
      const saved = process.type;
      process.type = 'browser';
      const bus = new EventBus({ name: 'main' });
      process.type = saved;
      let child;
      try {
        await bus.ready();
        bus.handle('main:ping', () => 'pong');
        child = forkRole(thisFile, 'utility', bus.childEnv());
        await deadline(10_000, 'the utility process', messageFrom(child, (m) => m.type === 'ready'));
        assert.deepEqual(await bus.invoke('pool:kind'), { kind: 'utility', role: 'client' });
        const peer = bus.stats().peers.find((p) => p.name === 'worker-pool');
        assert.equal(peer?.role, 'utility');
        assert.equal(peer?.pid, child.pid);
        child.send('close');
      } finally {
        killLeftovers([child]);
        await bus.close();
      }
    });
  });
}
