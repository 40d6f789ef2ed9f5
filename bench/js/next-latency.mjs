// The Next.js figures of issue 13:
//   1. the latency the bus adds to a route: HTTP p50/p99 (autocannon) of /api/divide (invokes a
//      handler in the hub's process) against /api/ping (does not touch the bus);
//   2. the time from startNextServer() to the first HTTP answer (next start; and next dev);
//   3. the Next.js server's memory (RSS) before and after its bus is loaded and used.
//
//   npm --prefix bench install --ignore-scripts && npm run build:ts
//   node bench/js/next-latency.mjs [--app <dir>] [--duration <s>] [--connections 1,10]
//
// --app names an app prepared by examples/next/prepare.mjs --build; without it one is prepared
// in a temporary folder (npm install + next build, about a minute) and removed afterwards. The
// hub runs in a child process ('hub' role of this file), as in an app; autocannon runs here.
import { fork, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(import.meta.dirname, '../..');
const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);

if (args[0] === 'hub') {
  // --- the hub's process -------------------------------------------------------------------
  const app = args[1];
  const { EventBus } = await import(join(root, 'dist/esm/index.js'));
  const { startNextServer } = await import(join(root, 'dist/esm/next.js'));
  const { serve } = await import(join(app, 'hub-handlers.mjs'));
  const bus = new EventBus({ role: 'hub', name: 'bench-hub' });
  serve(bus);
  await bus.ready();
  const servers = [];
  process.on('message', async (m) => {
    if (m.type === 'start') {
      const t0 = performance.now();
      const s = await startNextServer({ dir: app, bus, dev: m.dev, turbopack: m.dev, log: false, env: m.dev ? { NEXT_DIST_DIR: '.next-bench-dev' } : {} });
      const ms = performance.now() - t0;
      servers.push(s);
      process.send({ type: 'started', url: s.url, pid: s.pid, ms });
    } else if (m.type === 'stop') {
      for (const s of servers.splice(0)) await s.stop();
      process.send({ type: 'stopped' });
    }
  });
  process.on('disconnect', async () => {
    for (const s of servers.splice(0)) await s.stop();
    await bus.close();
  });
  process.send({ type: 'ready', env: bus.childEnv() });
} else if (args[0] === 'probe') {
  // --- what the bus alone costs a Node.js process: RSS before the package is loaded, and after
  // getBus() connected and made 1000 invokes (the package as the app installed it).
  const app = args[1];
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  const { getBus } = await import(join(app, 'node_modules/switchboard-ipc/dist/esm/next.js'));
  const bus = getBus();
  for (let i = 0; i < 1000; i++) await bus.invoke('math:divide', { a: i, b: 2 });
  globalThis.gc?.();
  const after = process.memoryUsage().rss;
  await bus.close();
  process.send({ type: 'probe', before, after });
} else {
  // --- the orchestrator --------------------------------------------------------------------
  let autocannon;
  try {
    autocannon = (await import(join(root, 'bench/node_modules/autocannon/autocannon.js'))).default;
  } catch {
    console.error('next-latency: autocannon is missing: npm --prefix bench install --ignore-scripts');
    process.exit(1);
  }
  const duration = Number(arg('--duration', 10));
  const connectionList = String(arg('--connections', '1,10')).split(',').map(Number);
  let app = arg('--app', process.env.SWITCHBOARD_NEXT_APP);
  let scratch;
  if (!app) {
    scratch = mkdtempSync(join(tmpdir(), 'sb-next-bench-'));
    app = join(scratch, 'app');
    const r = spawnSync(process.execPath, [join(root, 'examples/next/prepare.mjs'), '--into', app, '--build'], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(1);
  }
  app = resolve(app);
  const hub = fork(fileURLToPath(import.meta.url), ['hub', app], { env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' } });
  const inbox = [];
  const waiters = [];
  hub.on('message', (m) => {
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else inbox.push(m);
  });
  const next = (type) => {
    const i = inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
    return new Promise((resolve) => waiters.push({ type, resolve }));
  };
  const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  /** n requests one after another; returns each one's time in ms. */
  const hit = async (url, n) => {
    const times = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await fetch(url);
      if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
      await res.arrayBuffer();
      times.push(performance.now() - t0);
    }
    return times;
  };
  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  const cannon = (url, connections, seconds = duration) =>
    new Promise((resolve, reject) =>
      autocannon({ url, connections, duration: seconds }, (err, r) => (err ? reject(err) : resolve(r))),
    );
  try {
    const { env: hubEnv } = await next('ready');
    // The bus alone, in a plain Node.js process.
    const probe = fork(fileURLToPath(import.meta.url), ['probe', app], { env: { ...process.env, ...hubEnv }, execArgv: ['--expose-gc'] });
    const probed = await new Promise((resolve) => probe.once('message', resolve));
    await new Promise((r) => probe.once('exit', r));
    // 2. startNextServer() -> first answer, next start, three times.
    const starts = [];
    for (let i = 0; i < 3; i++) {
      hub.send({ type: 'start', dev: false });
      const s = await next('started');
      starts.push(s.ms);
      if (i < 2) {
        hub.send({ type: 'stop' });
        await next('stopped');
      }
    }
    hub.send({ type: 'stop' });
    await next('stopped');
    // 3. RSS, and latency one request at a time: a fresh server per route and round, 1000
    //    requests to that route only (the first 200 are warm-up for the latency figures).
    const fresh = { ping: [], divide: [] };
    const seq = { ping: [], divide: [] };
    for (let round = 0; round < 2; round++) {
      for (const [name, path] of [['ping', '/api/ping'], ['divide', '/api/divide?a=1&b=2']]) {
        hub.send({ type: 'start', dev: false });
        const f = await next('started');
        const times = await hit(f.url + path, 1000);
        seq[name].push(...times.slice(200));
        fresh[name].push(rssKiB(f.pid));
        hub.send({ type: 'stop' });
        await next('stopped');
      }
    }
    hub.send({ type: 'start', dev: false });
    const s = await next('started');
    // 1. Latency: warm-up, then each route for `duration` s.
    await cannon(`${s.url}/api/divide?a=1&b=2`, 10, 3);
    await cannon(`${s.url}/api/ping`, 10, 3);
    const runs = [];
    for (const c of connectionList) {
      runs.push({ c, name: '/api/ping (no bus)', r: await cannon(`${s.url}/api/ping`, c) });
      runs.push({ c, name: '/api/divide (invoke in the hub)', r: await cannon(`${s.url}/api/divide?a=1&b=2`, c) });
    }
    hub.send({ type: 'stop' });
    await next('stopped');
    hub.send({ type: 'start', dev: true });
    const dev = await next('started');
    hub.send({ type: 'stop' });
    await next('stopped');

    const row = ({ c, name, r }) =>
      `| ${name} | ${c} | ${r.latency.p50} | ${r.latency.p99} | ${Math.round(r.requests.average)} | ${r.non2xx} | ${r.errors} |`;
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`\nNext.js ${JSON.parse(readFileSync(join(app, 'node_modules/next/package.json'), 'utf8')).version}, Node.js ${process.versions.node}, autocannon ${duration} s per row\n`);
    console.log('| route | connections | p50 ms | p99 ms | req/s | non-2xx | errors |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const run of runs) console.log(row(run));
    console.log(`\nstartNextServer() -> first HTTP answer: next start ${starts.map((x) => x.toFixed(0)).join(', ')} ms (median ${median(starts).toFixed(0)}); next dev --turbopack ${dev.ms.toFixed(0)} ms`);
    const mib = (k) => (k / 1024).toFixed(1);
    console.log(`the bus alone in a Node.js process: RSS ${mib(probed.before / 1024)} MiB before the package is loaded, ${mib(probed.after / 1024)} MiB after getBus() and 1000 invokes (+${mib((probed.after - probed.before) / 1024)} MiB)`);
    console.log(`one request at a time (1600 per route, fresh servers): /api/ping p50 ${pct(seq.ping, 50).toFixed(2)} ms, p99 ${pct(seq.ping, 99).toFixed(2)} ms; /api/divide p50 ${pct(seq.divide, 50).toFixed(2)} ms, p99 ${pct(seq.divide, 99).toFixed(2)} ms`);
    console.log(`Next.js server RSS after 1000 requests (a fresh server each, two rounds): /api/ping only (bus never loaded) ${fresh.ping.map(mib).join(', ')} MiB; /api/divide (bus loaded and used) ${fresh.divide.map(mib).join(', ')} MiB`);
  } finally {
    hub.disconnect();
    await new Promise((r) => hub.once('exit', r));
    rmSync(join(app, '.next-bench-dev'), { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
