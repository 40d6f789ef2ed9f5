// Promise (issue 13, withSwitchboard()): an app that does not wrap its config with
// withSwitchboard() gets switchboard-ipc bundled by Turbopack, which rewrites __dirname to
// '/ROOT/...', and no native binary is found there. The error then says to add withSwitchboard()
// (or serverExternalPackages), instead of only listing paths that do not exist.
// The app is test/next/fixture/bare: inside the test app's folder, sharing its node_modules.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventBus } from '../../dist/esm/index.js';
import { startNextServer } from '../../dist/esm/next.js';
import { appDir, getJson, killGroup } from './support.mjs';

const dir = join(appDir(), 'bare');

describe('without withSwitchboard(), the native loader says to add it (next dev --turbopack)', { timeout: 180_000 }, () => {
  let hub;
  let server;

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'bare-hub' });
    // No SWITCHBOARD_NATIVE: with it, even a bundled loader finds the binary.
    server = await startNextServer({ dir, bus: hub, dev: true, turbopack: true, env: { SWITCHBOARD_NATIVE: undefined }, log: false });
  });

  after(async () => {
    await server?.stop().catch(() => {});
    await hub?.close();
    killGroup(server?.pid);
    rmSync(join(dir, '.next'), { recursive: true, force: true });
  });

  it('a route that uses the bus fails with E_NATIVE_LOAD naming withSwitchboard() and serverExternalPackages', async () => {
    const { status, body } = await getJson(`${server.url}/api/info`);
    assert.equal(status, 500, JSON.stringify(body));
    assert.equal(body.error.code, 'E_NATIVE_LOAD');
    assert.match(body.error.message, /its folder is '\/ROOT\//, 'Turbopack rewrote __dirname');
    assert.match(body.error.message, /withSwitchboard\(\) from 'switchboard-ipc\/next'/);
    assert.match(body.error.message, /serverExternalPackages/);
  });
});
