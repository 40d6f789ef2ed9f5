// Promises (issue 13), without Next.js itself (test/next/ runs the real thing): getBus() keeps one
// bus per process across copies of the package (ES module and CommonJS) and returns the hub's own
// bus in a process that owns the hub; it fails with typed errors that say what to do (no hub, the
// Edge runtime); while the hub is away an invoke fails at once, and the same bus works again when
// the hub is back. withSwitchboard() keeps the user's config. startNextServer() runs a stand-in
// `next` (a script in a fake app's node_modules) with the hub's environment, prefixes its logs,
// reports its exit on the bus, and stops it when the bus closes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import * as edge from '../../dist/esm/next-edge.js';
import { getBus, isHubUnavailable, NEXT_EXIT_TOPIC, startNextServer, withSwitchboard } from '../../dist/esm/next.js';
import { deadline } from './support.mjs';

const require = createRequire(import.meta.url);
const cjs = require('../../dist/cjs/next.js');
const KEY = Symbol.for('switchboard-ipc.bus');
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs `code` (an ES module body) in a fresh node with `env` and returns its JSON output. */
function runIsolated(code, env = {}) {
  const base = { ...process.env };
  delete base.SWITCHBOARD_ENDPOINT;
  delete base.SWITCHBOARD_TOKEN;
  delete base.NODE_TEST_CONTEXT;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...base, ...env }, cwd: root });
  return JSON.parse(out.toString().trim().split('\n').pop());
}

describe('getBus()', () => {
  it("returns this process's hub, the same from the ES module and CommonJS copies, until it closes", async () => {
    const hub = new EventBus({ role: 'hub', name: 'owner' });
    assert.equal(globalThis[KEY], hub, 'the hub put itself on globalThis');
    assert.equal(getBus(), hub);
    assert.equal(cjs.getBus(), hub);
    assert.equal(getBus(), getBus());
    const second = new EventBus({ role: 'hub', name: 'second' });
    assert.equal(getBus(), hub, 'the first hub stays the process bus');
    await second.close();
    assert.equal(getBus(), hub);
    await hub.close();
    assert.equal(globalThis[KEY], undefined, 'a closed hub takes itself off');
  });

  it('without a hub to join it throws NoEndpointError saying how to start the server', () => {
    const r = runIsolated(`
      const { getBus } = await import('./dist/esm/next.js');
      try { getBus(); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`);
    assert.equal(r.name, 'NoEndpointError');
    assert.equal(r.code, 'E_NO_ENDPOINT');
    assert.match(r.message, /startNextServer\(\)/);
    assert.match(r.message, /childEnv\(\)/);
  });

  it("in the Edge runtime (NEXT_RUNTIME=edge, or the edge build) it throws UnsupportedRuntimeError naming runtime = 'nodejs'", () => {
    const r = runIsolated(`
      const { getBus } = await import('./dist/esm/next.js');
      try { getBus(); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`, { NEXT_RUNTIME: 'edge' });
    assert.equal(r.name, 'UnsupportedRuntimeError');
    assert.equal(r.code, 'E_UNSUPPORTED_RUNTIME');
    assert.match(r.message, /export const runtime = 'nodejs'/);
    assert.throws(() => edge.getBus(), { name: 'UnsupportedRuntimeError', code: 'E_UNSUPPORTED_RUNTIME', message: /Edge runtime/ });
    return assert.rejects(edge.startNextServer(), { code: 'E_UNSUPPORTED_RUNTIME' });
  });

  it('the edge build imports nothing from Node.js', () => {
    const files = ['next-edge.js', 'next-shared.js'];
    for (const f of files) {
      const src = fs.readFileSync(path.join(root, 'dist/esm', f), 'utf8');
      assert.doesNotMatch(src, /from 'node:|require\(/, f);
    }
  });

  it('while the hub is away an invoke fails at once with ConnectionLostError; the same bus works when it is back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-'));
    const endpoint = path.join(dir, 'hub.sock');
    const token = randomBytes(16).toString('hex');
    const r = runIsolated(`
      const { EventBus } = await import('./dist/esm/index.js');
      const { getBus, isHubUnavailable } = await import('./dist/esm/next.js');
      let hub = new EventBus({ role: 'hub', endpoint: ${JSON.stringify(endpoint)}, token: ${JSON.stringify(token)} });
      hub.handle('n', () => 1);
      // The hub is in this process: make getBus() a client of it, as in a Next.js server.
      delete globalThis[Symbol.for('switchboard-ipc.bus')];
      process.env.SWITCHBOARD_ENDPOINT = ${JSON.stringify(endpoint)};
      process.env.SWITCHBOARD_TOKEN = ${JSON.stringify(token)};
      const bus = getBus({ reconnect: { initialMs: 10, maxMs: 50 } });
      const out = { role: bus.role, first: await bus.invoke('n') };
      const away = new Promise((r) => bus.on('connection', (e) => e.state === 'reconnecting' && r()));
      await hub.close();
      await away;
      const t0 = performance.now();
      const err = await bus.invoke('n').catch((e) => e);
      out.away = { name: err.name, code: err.code, unavailable: isHubUnavailable(err), ms: performance.now() - t0 };
      hub = new EventBus({ role: 'hub', endpoint: ${JSON.stringify(endpoint)}, token: ${JSON.stringify(token)} });
      hub.handle('n', () => 2);
      await new Promise((r) => bus.on('connection', (e) => e.state === 'connected' && r()));
      out.back = await bus.invoke('n');
      out.same = getBus() === bus;
      await bus.close();
      out.replaced = getBus() !== bus;
      await getBus().close();
      await hub.close();
      console.log(JSON.stringify(out));`);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.role, 'client');
    assert.equal(r.first, 1);
    assert.equal(r.away.name, 'ConnectionLostError');
    assert.equal(r.away.code, 'E_CONNECTION_LOST');
    assert.equal(r.away.unavailable, true);
    assert.ok(r.away.ms < 100, `failed in ${r.away.ms} ms`);
    assert.equal(r.back, 2);
    assert.equal(r.same, true);
    assert.equal(r.replaced, true, 'a closed bus is replaced on the next call');
  });

  it('takes no role or port', () => {
    const r = runIsolated(`
      const { getBus } = await import('./dist/esm/next.js');
      try { getBus({ role: 'hub' }); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`);
    assert.equal(r.code, 'E_INVALID_ARGUMENT');
  });
});

describe('withSwitchboard()', () => {
  it('adds the package to serverExternalPackages and keeps everything else', async () => {
    assert.deepEqual(withSwitchboard(), { serverExternalPackages: ['switchboard-ipc'] });
    const config = { reactStrictMode: true, serverExternalPackages: ['sharp'], env: { A: '1' } };
    assert.deepEqual(withSwitchboard(config), { reactStrictMode: true, serverExternalPackages: ['sharp', 'switchboard-ipc'], env: { A: '1' } });
    assert.deepEqual(config.serverExternalPackages, ['sharp'], "the user's object is not changed");
    assert.deepEqual(withSwitchboard({ serverExternalPackages: ['switchboard-ipc'] }).serverExternalPackages, ['switchboard-ipc']);
    const fn = withSwitchboard(async (phase) => ({ distDir: phase }));
    assert.deepEqual(await fn('phase-production-build', {}), { distDir: 'phase-production-build', serverExternalPackages: ['switchboard-ipc'] });
    assert.throws(() => withSwitchboard({ serverExternalPackages: 'sharp' }), { code: 'E_INVALID_ARGUMENT' });
    assert.equal(isHubUnavailable({ code: 'E_NO_ENDPOINT' }), true);
    assert.equal(isHubUnavailable({ code: 'E_TIMEOUT' }), false);
    assert.equal(isHubUnavailable(null), false);
  });
});

describe('startNextServer() with a stand-in next', () => {
  const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-fake-next-'));
  after(() => fs.rmSync(apps, { recursive: true, force: true }));

  /** A folder that looks like a Next.js app whose `next` binary is `script`. */
  function fakeApp(name, script) {
    const dir = path.join(apps, name);
    fs.mkdirSync(path.join(dir, 'node_modules/next/dist/bin'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"fake","private":true}');
    fs.writeFileSync(path.join(dir, 'node_modules/next/package.json'), '{"name":"next","version":"0.0.0"}');
    fs.writeFileSync(path.join(dir, 'node_modules/next/dist/bin/next'), script);
    return dir;
  }

  // Answers HTTP on PORT with what it was started with; stays up until it is signalled.
  const SERVER = `
    const http = require('node:http');
    const [mode, dir, , port, , host] = process.argv.slice(2);
    console.log('starting ' + mode);
    console.error('a warning');
    http.createServer((req, res) => res.end(JSON.stringify({
      mode, port, host, endpoint: process.env.SWITCHBOARD_ENDPOINT, token: Boolean(process.env.SWITCHBOARD_TOKEN), pid: process.pid,
    }))).listen(Number(port), host, () => console.log('ready'));`;

  it('starts it with the hub environment, waits for HTTP, prefixes its logs, and reports its exit on the bus', async () => {
    const hub = new EventBus({ role: 'hub', name: 'starter' });
    const dir = fakeApp('serves', SERVER);
    const lines = [];
    const server = await startNextServer({ dir, log: (line, stream) => lines.push(`${stream}: ${line}`) });
    try {
      assert.equal(server.mode, 'start');
      const answer = await (await fetch(server.url)).json();
      assert.equal(answer.mode, 'start');
      assert.equal(answer.port, String(server.port));
      assert.equal(answer.host, '127.0.0.1');
      assert.equal(answer.endpoint, hub.childEnv().SWITCHBOARD_ENDPOINT);
      assert.equal(answer.token, true);
      assert.equal(answer.pid, server.pid);
      assert.ok(lines.includes('stdout: starting start') && lines.includes('stderr: a warning'), lines.join('\n'));
      const heard = new Promise((resolve) => hub.once(NEXT_EXIT_TOPIC, resolve));
      const exit = await server.stop();
      assert.equal(exit.stopped, true);
      assert.equal(exit.signal, 'SIGTERM');
      assert.deepEqual(await deadline(5000, NEXT_EXIT_TOPIC, heard), exit);
    } finally {
      await server.stop();
      await hub.close();
    }
  });

  it('closing the bus stops it; dev mode runs `next dev`', async () => {
    const hub = new EventBus({ role: 'hub' });
    const server = await startNextServer({ dir: fakeApp('dev', SERVER), dev: true, log: false });
    assert.equal(server.mode, 'dev');
    assert.equal((await (await fetch(server.url)).json()).mode, 'dev');
    await hub.close();
    const exit = await deadline(10_000, 'the server after close()', server.exited);
    assert.equal(exit.stopped, true);
  });

  it("a build with output: 'standalone' runs its server.js, with PORT and HOSTNAME", async () => {
    const hub = new EventBus({ role: 'hub' });
    const dir = fakeApp('standalone', 'process.exit(3)'); // `next start` must not be used
    fs.mkdirSync(path.join(dir, '.next/standalone'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, '.next/standalone/server.js'),
      `require('node:http').createServer((q, s) => s.end(JSON.stringify({ cwd: process.cwd(), endpoint: process.env.SWITCHBOARD_ENDPOINT })))
        .listen(Number(process.env.PORT), process.env.HOSTNAME);`,
    );
    const server = await startNextServer({ dir, log: false });
    try {
      assert.equal(server.mode, 'standalone');
      const answer = await (await fetch(server.url)).json();
      assert.equal(answer.cwd, fs.realpathSync(path.join(dir, '.next/standalone')));
      assert.equal(answer.endpoint, hub.childEnv().SWITCHBOARD_ENDPOINT);
    } finally {
      await server.stop();
      await hub.close();
    }
  });

  it('a server that exits before it answers rejects with E_NEXT_EXITED and its last lines', async () => {
    const hub = new EventBus({ role: 'hub' });
    try {
      const dir = fakeApp('fails', `console.error('Could not find a production build'); process.exit(1);`);
      await assert.rejects(startNextServer({ dir, log: false }), (err) => {
        assert.equal(err.code, 'E_NEXT_EXITED');
        assert.match(err.message, /Could not find a production build/);
        assert.match(err.message, /next build/);
        return true;
      });
    } finally {
      await hub.close();
    }
  });

  it('says what is missing: no hub, no app, no next, bad options', async () => {
    await assert.rejects(startNextServer({ dir: apps }), { code: 'E_INVALID_ARGUMENT', message: /needs the hub's bus/ });
    const hub = new EventBus({ role: 'hub' });
    try {
      await assert.rejects(startNextServer({ dir: path.join(apps, 'nowhere') }), { code: 'E_INVALID_ARGUMENT', message: /no package.json/ });
      const bare = path.join(apps, 'bare');
      fs.mkdirSync(bare);
      fs.writeFileSync(path.join(bare, 'package.json'), '{}');
      await assert.rejects(startNextServer({ dir: bare }), { code: 'E_INVALID_ARGUMENT', message: /npm install next/ });
      await assert.rejects(startNextServer({ dir: bare, port: -1 }), { code: 'E_INVALID_ARGUMENT' });
      await assert.rejects(startNextServer({}), { code: 'E_INVALID_ARGUMENT' });
    } finally {
      await hub.close();
    }
  });
});
