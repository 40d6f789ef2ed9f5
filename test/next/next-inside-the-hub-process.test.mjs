// Promise (issue 13, "Next.js inside the hub's process"): a Node.js process that owns the hub
// serves Next.js programmatically (next({ dir }) and its request handler), as Electron apps do
// from main. A route's getBus() is that process's own hub: no second connection, and invokes
// reach the handlers in the same process.
//
// Roles: 'main' (this test), 'server' (the hub and Next.js in one process; it uses the package
// as the app installed it, from the tarball, as require('switchboard-ipc') in main would).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { currentRole, deadline, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom } from '../js/support.mjs';
import { appDir, getJson } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

if (role === 'server') {
  guardAgainstOrphaning();
  const dir = appDir();
  const require = createRequire(path.join(dir, 'package.json'));
  const { EventBus } = require('switchboard-ipc');
  const { serve } = await import(path.join(dir, 'hub-handlers.mjs'));
  const bus = new EventBus({ role: 'hub', name: 'main-with-next' });
  serve(bus);
  await bus.ready();
  const next = require('next');
  const app = next({ dir, dev: false, hostname: '127.0.0.1' });
  await app.prepare();
  const handle = app.getRequestHandler();
  const server = createServer((req, res) => handle(req, res));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.on('message', (m) => {
    if (m.type !== 'stats') return;
    const s = bus.stats();
    const registered = globalThis[Symbol.for('switchboard-ipc.bus')] === bus;
    process.send({ type: 'stats', peers: s.peers, hubPeers: s.hub.peers, handshaking: s.hub.handshaking, registered });
  });
  process.send({ type: 'ready', url: `http://127.0.0.1:${server.address().port}` });
} else {
  describe("Next.js inside the hub's process: getBus() is the hub's own bus", { timeout: 120_000 }, () => {
    let child;
    let url;

    before(async () => {
      child = forkRole(thisFile, 'server', { NODE_ENV: 'production' });
      ({ url } = await deadline(60_000, 'the hub serving Next.js', messageFrom(child, (m) => m.type === 'ready')));
    });

    after(() => killLeftovers([child]));

    const stats = async () => {
      child.send({ type: 'stats' });
      const seen = (stats.n = (stats.n ?? 0) + 1);
      let i = 0;
      return deadline(5000, 'stats', messageFrom(child, (m) => m.type === 'stats' && ++i === seen));
    };

    it("a route's invoke reaches the handler in the same process, over no connection", async () => {
      const before = await stats();
      assert.equal(before.registered, true, 'the hub put itself on globalThis');
      const info = await getJson(`${url}/api/info`);
      assert.equal(info.status, 200);
      assert.equal(info.body.next.pid, child.pid);
      assert.equal(info.body.next.role, 'hub', "getBus() returned the hub's bus");
      assert.equal(info.body.next.name, 'main-with-next');
      assert.equal(info.body.hub.pid, child.pid);
      const divided = await getJson(`${url}/api/divide?a=9&b=3`);
      assert.deepEqual(divided, { status: 200, body: { a: 9, b: 3, result: 3 } });
      const failed = await getJson(`${url}/api/divide?a=9&b=0`);
      assert.equal(failed.status, 422);
      assert.equal(failed.body.error.code, 'E_DIVIDE_BY_ZERO');
      const afterwards = await stats();
      assert.deepEqual(afterwards.peers, [], 'nobody connected to the hub');
      assert.equal(afterwards.hubPeers, before.hubPeers);
      assert.equal(afterwards.handshaking, 0);
    });
  });
}
