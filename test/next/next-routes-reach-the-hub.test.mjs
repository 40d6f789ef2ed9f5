// Promises (issue 13, "A production round trip", "The Edge runtime", "Packaging"): the example
// app, installed from npm pack's tarball and built once (test/next/run.mjs), runs under
// `next start` as a child of this process's hub (startNextServer). HTTP -> route -> invoke in the
// hub -> response, with values and a remote error; a server action's event reaches a hub
// subscriber and the SSE route brings the hub's events to real headless Chromium (Debian's
// chromium, driven by playwright-core), checked in the page; an Edge route gets the clear error;
// stop() and the bus's close end the server and say so on the bus.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventBus } from '../../dist/esm/index.js';
import { NEXT_EXIT_TOPIC, startNextServer } from '../../dist/esm/next.js';
import { appDir, browserEnv, CHROMIUM, getJson, killGroup, until } from './support.mjs';
import { deadline } from '../js/support.mjs';

const dir = appDir();
const { serve } = await import(join(dir, 'hub-handlers.mjs'));

describe('Next.js routes reach the hub (next start, a child of the hub)', { timeout: 180_000 }, () => {
  /** @type {EventBus} */
  let hub;
  let server;
  let browser;
  const pids = [];
  const output = []; // the server's lines, shown when an assertion about its exit fails

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'test-hub' });
    serve(hub, { stepMs: 30 });
    await hub.ready();
    const t0 = performance.now();
    server = await startNextServer({ dir, bus: hub, log: (line) => output.push(line) });
    pids.push(server.pid);
    console.log(`# startNextServer() -> first HTTP answer: ${Math.round(performance.now() - t0)} ms (next start)`);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await hub?.close();
    for (const pid of pids) killGroup(pid); // whatever a failed test left running
  });

  it('the app has the package from the tarball, as a copy, not a symlink', () => {
    const pkg = join(dir, 'node_modules/switchboard-ipc');
    assert.equal(lstatSync(pkg).isSymbolicLink(), false);
    assert.equal(lstatSync(pkg).isDirectory(), true);
    const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
    assert.equal(version, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    assert.equal(existsSync(join(pkg, 'core')), false, 'an installed package, not a checkout');
    assert.ok(existsSync(join(pkg, 'dist/cjs/next.js')) && existsSync(join(pkg, 'types/next.d.ts')));
    // withSwitchboard() put it in serverExternalPackages: the server loads it from node_modules.
    const config = JSON.parse(readFileSync(join(dir, '.next/required-server-files.json'), 'utf8')).config;
    assert.ok(config.serverExternalPackages.includes('switchboard-ipc'), 'withSwitchboard() in next.config.mjs');
  });

  it('a route invokes a handler in the hub and answers with its values, and with its remote error', async () => {
    assert.equal(server.mode, 'start');
    const ok = await getJson(`${server.url}/api/divide?a=7&b=2`);
    assert.deepEqual(ok, { status: 200, body: { a: 7, b: 2, result: 3.5 } });
    const failed = await getJson(`${server.url}/api/divide?a=1&b=0`);
    assert.equal(failed.status, 422);
    assert.deepEqual(failed.body.error, { name: 'DivisionByZeroError', code: 'E_DIVIDE_BY_ZERO', message: 'cannot divide 1 by zero' });
    const info = await getJson(`${server.url}/api/info`);
    assert.equal(info.status, 200);
    assert.equal(info.body.hub.pid, process.pid, 'the handler ran in the hub');
    assert.equal(info.body.hub.name, 'test-hub');
    assert.equal(info.body.next.role, 'client');
    // One connection from the Next.js server, whatever the routes and module layers did.
    const fromNext = hub.stats().peers.filter((p) => p.pid === info.body.next.pid);
    assert.equal(fromNext.length, 1, JSON.stringify(hub.stats().peers));
  });

  it('a route on the Edge runtime gets UnsupportedRuntimeError, which says to use the Node.js runtime', async () => {
    const { status, body } = await getJson(`${server.url}/api/edge`);
    assert.equal(status, 500);
    assert.equal(body.error.code, 'E_UNSUPPORTED_RUNTIME');
    assert.equal(body.error.name, 'UnsupportedRuntimeError');
    assert.match(body.error.message, /Edge runtime/);
    assert.match(body.error.message, /export const runtime = 'nodejs'/);
  });

  it("a server action's event reaches the hub, and the SSE route brings the hub's events to Chromium", async (t) => {
    if (!existsSync(CHROMIUM)) {
      // Not a pass: said plainly, and the lane's summary counts it as skipped.
      t.skip(`no chromium at ${CHROMIUM} (.ci/deps installs it)`);
      return;
    }
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], env: browserEnv() });
    const page = await browser.newPage();
    await page.goto(server.url);
    // The page's EventSource is open: the route has subscribed before it sent 'connected'.
    await page.waitForFunction(() => document.querySelector('#hub-state')?.textContent === 'connected', null, { timeout: 20_000 });
    const started = new Promise((resolve) => hub.once('job:start', (data, ctx) => resolve({ data, ctx })));
    await page.fill('input[type=number]', '4');
    await page.click('#start'); // the server action: startJob(4)
    const { data, ctx } = await deadline(20_000, "the server action's job:start at the hub", started);
    assert.equal(data.steps, 4);
    assert.equal(ctx.sender.pid, server.pid, 'emitted by the Next.js server');
    // The hub runs the job: 3 job:progress events and a job:done, through SSE into the page.
    const li = `li[data-job="${data.id}"][data-done="true"]`;
    await page.waitForSelector(li, { timeout: 20_000 });
    assert.equal(await page.getAttribute(li, 'data-percent'), '100');
    // Every progress event arrived in the page, in order.
    const seen = await page.evaluate(async (id) => {
      const got = [];
      const source = new EventSource('/api/events');
      await new Promise((resolve) => source.addEventListener('hub', resolve, { once: true }));
      source.addEventListener('job', (e) => got.push(JSON.parse(e.data)));
      window.__seen = got;
      return id;
    }, data.id);
    assert.equal(seen, data.id);
    hub.emit('job:progress', { id: 'from-hub', step: 1, steps: 2, percent: 50 });
    hub.emit('job:done', { id: 'from-hub', steps: 2, percent: 100 });
    await page.waitForFunction(() => window.__seen.length === 2, null, { timeout: 10_000 });
    assert.deepEqual(
      await page.evaluate(() => window.__seen.map((e) => `${e.topic} ${e.id} ${e.percent}`)),
      ['job:progress from-hub 50', 'job:done from-hub 100'],
    );
    await page.waitForSelector('li[data-job="from-hub"][data-done="true"]', { timeout: 10_000 });
  });

  it('stop() ends the server, gracefully with streams open, and the hub hears its exit on the bus', async () => {
    // Chromium's page (when it ran) still has its EventSource open: the SSE route ends its stream
    // on SIGTERM (examples/next/lib/bus.js, onShutdown), so `next start` exits by itself, code 0,
    // instead of waiting for it until stop()'s SIGKILL. A plain HTTP stream is open too.
    const open = new AbortController();
    const stream = await fetch(`${server.url}/api/events`, { signal: open.signal });
    const first = await stream.body.getReader().read();
    assert.match(new TextDecoder().decode(first.value), /^event: hub/);
    const heard = new Promise((resolve) => hub.once(NEXT_EXIT_TOPIC, resolve));
    const t0 = performance.now();
    const exit = await server.stop();
    const ms = performance.now() - t0;
    open.abort();
    assert.equal(exit.stopped, true);
    assert.equal(exit.signal, null, `ended by ${exit.signal} after ${ms.toFixed(0)} ms, not by itself:\n${output.join('\n')}`);
    assert.equal(exit.code, 0, `exit code ${exit.code}; its output:\n${output.join('\n')}`);
    assert.equal(exit.pid, server.pid);
    assert.deepEqual(await deadline(5000, NEXT_EXIT_TOPIC, heard), exit);
    // The hub hears the socket close on its I/O thread, independently of the child's exit.
    await until(5000, "the server's connection gone from the hub", () => hub.stats().peers.every((p) => p.pid !== server.pid));
  });

  it("closing the hub's bus stops the server it started", async () => {
    const other = new EventBus({ role: 'hub', name: 'closing-hub' });
    const s = await startNextServer({ dir, bus: other, log: false });
    pids.push(s.pid);
    assert.equal((await getJson(`${s.url}/api/ping`)).status, 200);
    await other.close();
    const exit = await deadline(10_000, 'the server after close()', s.exited);
    assert.equal(exit.stopped, true);
  });
});
