// Promise (issue 13, "Hub death"): the hub's process is killed with SIGKILL while the Next.js
// server it started runs on. A route that uses the bus answers 503 JSON with the typed error's
// code at once (no 30 s wait in the offline queue). A new hub on the same endpoint and token
// gets the same Next.js process back, with no restart of it: the route works again.
//
// Roles: 'main' (this test: orchestrates, holds no bus), 'hub' (H1 starts Next.js with
// startNextServer() and reports its pid and URL; H2 only serves).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { startNextServer } from '../../dist/esm/next.js';
import { currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom } from '../js/support.mjs';
import { alive, appDir, getJson, killGroup, until } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

if (role === 'hub') {
  guardAgainstOrphaning();
  const [endpoint, token, name, withNext] = process.argv.slice(3);
  const dir = appDir();
  const { serve } = await import(path.join(dir, 'hub-handlers.mjs'));
  const bus = new EventBus({ role: 'hub', endpoint, token, name });
  serve(bus);
  await bus.ready();
  if (withNext === 'next') {
    const server = await startNextServer({ dir, bus, log: false });
    process.send({ type: 'next', url: server.url, pid: server.pid });
  }
  process.send({ type: 'ready' });
} else {
  describe('a route answers 503 while the hub is away, and works again when it is back', { timeout: 180_000 }, () => {
    let tmp;
    let endpoint;
    let token;
    const hubs = [];
    let next;

    before(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-next-'));
      endpoint = path.join(tmp, 'hub.sock');
      token = randomBytes(16).toString('hex');
      const h1 = forkRole(thisFile, 'hub', {}, [endpoint, token, 'hub-1', 'next']);
      hubs.push(h1);
      next = await deadline(90_000, 'H1 starting Next.js', messageFrom(h1, (m) => m.type === 'next'));
    });

    after(async () => {
      killGroup(next?.pid); // detached from H1: it outlives H1's SIGKILL by design
      await killLeftovers(hubs);
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('the route reaches H1', async () => {
      const info = await getJson(`${next.url}/api/info`);
      assert.equal(info.status, 200);
      assert.equal(info.body.hub.pid, hubs[0].pid);
      assert.equal(info.body.next.pid, next.pid);
    });

    it('with H1 killed (SIGKILL) the route answers 503 JSON with E_CONNECTION_LOST, at once', async () => {
      hubs[0].kill('SIGKILL');
      assert.deepEqual(await exitCode(hubs[0]), { code: null, signal: 'SIGKILL' });
      assert.ok(alive(next.pid), 'Next.js outlives its hub');
      const t0 = performance.now();
      const { status, body } = await getJson(`${next.url}/api/divide?a=1&b=4`);
      const ms = performance.now() - t0;
      assert.equal(status, 503, JSON.stringify(body));
      assert.equal(body.error.code, 'E_CONNECTION_LOST');
      assert.equal(body.error.name, 'ConnectionLostError');
      assert.match(body.error.message, /hub/);
      assert.ok(ms < 5000, `answered in ${ms.toFixed(0)} ms, not after an invoke timeout`);
      console.log(`# 503 while the hub is away, answered in ${ms.toFixed(0)} ms`);
    });

    it('H2 on the same endpoint and token: the same Next.js process works again, no restart', async () => {
      const h2 = forkRole(thisFile, 'hub', {}, [endpoint, token, 'hub-2']);
      hubs.push(h2);
      await deadline(10_000, 'H2 ready', messageFrom(h2, (m) => m.type === 'ready'));
      const t0 = performance.now();
      // The client reconnects with backoff (at most 5 s between attempts): ask until it is back.
      const ok = await until(15_000, 'the route through H2', async () => {
        const r = await getJson(`${next.url}/api/divide?a=1&b=4`);
        return r.status === 200 ? r : undefined;
      }, 100);
      console.log(`# back through H2 after ${(performance.now() - t0).toFixed(0)} ms`);
      assert.deepEqual(ok.body, { a: 1, b: 4, result: 0.25 });
      const info = await getJson(`${next.url}/api/info`);
      assert.equal(info.body.hub.pid, h2.pid, 'answered by H2');
      assert.equal(info.body.hub.name, 'hub-2');
      assert.equal(info.body.next.pid, next.pid, 'the same Next.js process');
      assert.ok(alive(next.pid));
    });
  });
}
