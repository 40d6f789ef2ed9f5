// Promise (issue 13, "next dev"): under `next dev` (Turbopack), two edits of a route file, each
// hit after it is made, reload the route's module (and the app's lib/bus.js with it), and the hub
// still sees exactly one connection from the dev server's process: getBus() keeps its bus on
// globalThis, not in a module that hot reload replaces.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventBus } from '../../dist/esm/index.js';
import { startNextServer } from '../../dist/esm/next.js';
import { appDir, getJson, killGroup, until } from './support.mjs';

const dir = appDir();
const route = join(dir, 'app/api/info/route.js');
const { serve } = await import(join(dir, 'hub-handlers.mjs'));

describe('next dev: edits reload the route, and the server keeps one connection', { timeout: 180_000 }, () => {
  let hub;
  let server;
  const original = readFileSync(route, 'utf8');

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'dev-hub' });
    serve(hub);
    await hub.ready();
    const t0 = performance.now();
    server = await startNextServer({ dir, bus: hub, dev: true, turbopack: true, env: { NEXT_DIST_DIR: '.next-dev' }, log: false });
    console.log(`# startNextServer({ dev: true }) -> first HTTP answer: ${Math.round(performance.now() - t0)} ms`);
  });

  after(async () => {
    writeFileSync(route, original); // the app is shared with the other files of test/next/
    await server?.stop().catch(() => {});
    await hub?.close();
    killGroup(server?.pid);
    rmSync(join(dir, '.next-dev'), { recursive: true, force: true });
  });

  /** Rewrites the route so that it also answers `edit: n`, then waits until it does. */
  async function edit(n) {
    const changed = original.replace(
      'return Response.json({ next:',
      `return Response.json({ edit: ${n}, next:`,
    );
    assert.notEqual(changed, original, 'the route file has the expected shape');
    writeFileSync(route, changed);
    return until(60_000, `edit ${n} served`, async () => {
      const r = await getJson(`${server.url}/api/info`);
      return r.status === 200 && r.body.edit === n ? r.body : undefined;
    }, 200);
  }

  it('two edits, each served, and one connection from the dev server', async () => {
    const first = await getJson(`${server.url}/api/info`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.edit, undefined);
    const devPid = first.body.next.pid; // next dev serves from a child of the process started
    const one = await edit(1);
    const two = await edit(2);
    assert.equal(one.next.pid, devPid);
    assert.equal(two.next.pid, devPid, 'the same server process after both edits');
    const peers = hub.stats().peers;
    assert.equal(peers.filter((p) => p.pid === devPid).length, 1, JSON.stringify(peers));
    assert.equal(peers.length, 1, `only the dev server is connected: ${JSON.stringify(peers)}`);
  });
});
