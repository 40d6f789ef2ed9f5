// The benchmark suite of issue 4: Switchboard against what Electron apps use today, and against
// the limit (a C++ program on a raw Unix socket, bench/limit.cc), in one run.
//
//   npm run bench                          the full suite: 3 repetitions, interleaved
//   npm run bench -- --quick               smoke run (~1–2 min): small N, 1 repetition
//   node bench/js/run.mjs [--reps N] [--only key,key] [--scenarios s1,s5b] [--name NAME]
//                         [--events N] [--calls N] [--hwm BYTES] [--no-limit] [--baseline-tree DIR]
//   node bench/js/run.mjs --profile [--scenario s3] [--contender KEY]   under --cpu-prof (JS self time)
//   node bench/js/run.mjs --perf [--scenario s2] [--contender KEY]   under `perf record`
//
// Scenarios (docs/PERFORMANCE.md, "Benchmark suite", says exactly what each measures):
//   S1 small events A -> B; S2 sequential invoke A -> B; S3 invokes with 64 in flight; S4 1 MiB
//   payloads A -> B; S5 events C -> (hub or JS relay in A) -> B; S5b S5 while A's JavaScript is
//   busy 2 s on / 100 ms off; S6 fan-out A -> 8 subscribers.
// Every (contender, scenario, repetition) runs in fresh processes; repetitions interleave the
// contenders; figures are medians with the min–max spread. Lost, reordered or corrupt events
// fail the run; a missed target never does. Results: bench/results/<name>.json and suite.svg.
// --baseline-tree DIR adds the contender 'switchboard-before': this switchboard.mjs on another
// checkout's build (DIR/dist and DIR/build-rel/addon/switchboard.node, built as in
// docs/PERFORMANCE.md), to measure a change before and after in one interleaved run.
import { fork, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir, cpus, totalmem, release, loadavg } from 'node:os';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { renderChart } from './chart.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const benchRequire = createRequire(path.join(root, 'bench', 'package.json'));
const pkgVersion = (name) => JSON.parse(readFileSync(path.join(root, 'bench', 'node_modules', name, 'package.json'), 'utf8')).version;
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};

const quick = flag('--quick');
const profile = flag('--profile');
const events = Number(option('--events', quick ? 20_000 : 200_000));
const calls = Number(option('--calls', quick ? 1_000 : 10_000));
const config = {
  quick,
  events,
  calls,
  warmup: Number(option('--warmup', quick ? 100 : 1_000)),
  reps: Number(option('--reps', quick ? 1 : 3)),
  // N per scenario: S3 runs 5x S2's calls; S4 sends 1 MiB messages; S6 delivers 8 copies of each.
  n: {
    s1: events,
    s2: calls,
    s3: calls * 5,
    s4: quick ? 32 : 256,
    s5: events,
    s5b: events,
    s6: Math.max(1000, Math.round(events / 10)),
  },
  // S5b stops watching after two busy/idle cycles: a JavaScript relay moves events only in the
  // 100 ms idle slices, and 200,000 events would take minutes through some of them.
  s5bWindowMs: 4200,
  // The hub's per-peer high-water mark: 0 (the default) keeps the library's default, 8 MiB. Since
  // issue 11 the hub pauses publishers whose receivers are over the mark instead of dropping
  // events, and the senders honour emit() === false / drained() as the other contenders honour
  // their sockets' back-pressure, so no raised mark is needed for a lossless run. `--hwm BYTES`
  // still sets one (the suite before issue 11 ran with 1 GiB to hold a whole burst).
  hubHighWaterMark: Number(option('--hwm', 0)) || undefined,
  // A checkout to measure as 'switchboard-before' (see the top of this file).
  baselineTree: option('--baseline-tree', '') ? path.resolve(option('--baseline-tree', '')) : null,
};
// The mark 'switchboard-before' runs with: the code before issue 11 dropped events over the mark,
// so, as the suite then did, it gets one that holds a whole burst (S4's 256 MiB included).
const BASELINE_HWM = 1024 * 1024 * 1024;

const ALL = ['s1', 's2', 's3', 's4', 's5', 's5b', 's6'];
const SCENARIO = {
  s1: { title: 'S1 small events A→B', unit: 'events/s', metric: 'rate', limit: 'stream', higher: true },
  s2: { title: 'S2 sequential invoke, p50', unit: 'µs', metric: 'p50', limit: 'pingpong', higher: false },
  s3: { title: 'S3 invokes, 64 in flight', unit: 'calls/s', metric: 'rate', limit: 'pipelined', higher: true },
  s4: { title: 'S4 1 MiB payloads A→B', unit: 'MB/s', metric: 'mbPerSec', limit: 'bulk', higher: true },
  s5: { title: 'S5 C→A(hub/relay)→B', unit: 'events/s', metric: 'rate', limit: 'stream', higher: true },
  s5b: { title: 'S5b same, A busy 2 s/100 ms', unit: 'events/s', metric: 'rate', limit: 'stream', higher: true },
  s6: { title: 'S6 fan-out 1→8, total', unit: 'events/s', metric: 'rate', limit: 'stream', higher: true },
};

const script = (f) => path.join(here, f);
const CONTENDERS = [
  { key: 'switchboard', label: 'Switchboard (hub in A)', script: script('switchboard.mjs'), scenarios: ALL },
  {
    key: 'switchboard-hub',
    label: 'Switchboard, hub process (A→hub→B)',
    script: script('switchboard.mjs'),
    hubProcess: true,
    variant: true,
    scenarios: ['s1', 's2', 's3', 's4', 's6'],
    na: { s5: 'hub not in A; its S1 is this topology', s5b: 'hub not in A' },
  },
  ...(config.baselineTree
    ? [
        {
          key: 'switchboard-before',
          label: `Switchboard before (${path.basename(config.baselineTree)}, hwm 1 GiB)`,
          script: script('switchboard.mjs'),
          scenarios: ALL,
          hubHighWaterMark: BASELINE_HWM,
          env: {
            SWITCHBOARD_NATIVE: path.join(config.baselineTree, 'build-rel', 'addon', 'switchboard.node'),
            BENCH_SWITCHBOARD_DIST: path.join(config.baselineTree, 'dist'),
          },
        },
      ]
    : []),
  { key: 'ndjson', label: 'net + NDJSON, JS relay', script: script('net-ndjson.mjs'), scenarios: ALL },
  { key: 'fork', label: "fork, serialization 'advanced'", script: script('fork-advanced.mjs'), viaA: true, scenarios: ALL },
  { key: 'msgpackr', label: 'net + msgpackr, JS relay', script: script('net-msgpackr.mjs'), argv: ['standard'], scenarios: ALL },
  {
    key: 'msgpackr-records',
    label: 'net + msgpackr records, JS relay',
    script: script('net-msgpackr.mjs'),
    argv: ['records'],
    variant: true,
    scenarios: ['s1', 's2', 's3', 's5', 's6'],
    na: { s4: 'one binary value: records change nothing', s5b: 'measured with the standard codec' },
  },
  { key: 'zeromq', label: 'zeromq.js (ROUTER/DEALER), JS relay', script: script('zeromq.mjs'), scenarios: ALL },
];
const isPeer = (c) => !c.key.startsWith('switchboard');

function zeromqAvailable() {
  try {
    const zmq = benchRequire('zeromq');
    return { ok: true, version: `${pkgVersion('zeromq')} (libzmq ${zmq.version})` };
  } catch (err) {
    return { ok: false, why: String(err?.message ?? err).split('\n')[0] };
  }
}

const only = option('--only', '');
const scenarios = option('--scenarios', '') ? option('--scenarios', '').split(',') : ALL;
for (const s of scenarios) if (!SCENARIO[s]) throw new Error(`unknown scenario '${s}' (known: ${ALL.join(', ')})`);
const zmqState = zeromqAvailable();
// --quick leaves out the two variants (a separate hub process, msgpackr records) unless --only names them.
let contenders = only ? CONTENDERS.filter((c) => only.split(',').includes(c.key)) : quick ? CONTENDERS.filter((c) => !c.variant) : CONTENDERS;
const unavailable = [];
if (!zmqState.ok && contenders.some((c) => c.key === 'zeromq')) {
  unavailable.push({ key: 'zeromq', why: zmqState.why });
  contenders = contenders.filter((c) => c.key !== 'zeromq');
}

// --- Process plumbing ---------------------------------------------------------------------------

function start(script, argv, env, execArgv = []) {
  const child = fork(script, argv, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.inbox = [];
  child.waiters = [];
  child.virtuals = new Map();
  // A send to a process that has exited: the waiter fails on 'exit'; nothing to do here.
  child.on('error', () => {});
  child.on('message', (msg) => {
    if (msg.type === 'from') {
      const v = child.virtuals.get(msg.id);
      if (v && msg.msg.type === 'exit') fail(v, `exited (${msg.msg.code ?? msg.msg.signal})`);
      else if (v) deliver(v, msg.msg);
    } else deliver(child, msg);
  });
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.exited.then(({ code, signal }) => {
    fail(child, `exited (${code ?? signal})`);
    for (const v of child.virtuals.values()) fail(v, `lost its parent (${code ?? signal})`);
  });
  return child;
}

function deliver(child, msg) {
  const i = child.waiters.findIndex((w) => w.type === msg.type || msg.type === 'error');
  if (i === -1) child.inbox.push(msg);
  else child.waiters.splice(i, 1)[0].resolve(msg);
}

function fail(child, why) {
  for (const w of child.waiters.splice(0)) w.reject(new Error(`${child.role} ${why} while we waited for '${w.type}'`));
}

/** A process that `parent` forks and proxies control messages for (the fork contender's B and C). */
function startVia(parent, id, argv, env) {
  const v = { role: id, inbox: [], waiters: [], virtual: true, spawnargs: argv, send: (msg) => parent.send({ type: 'to', id, msg }) };
  v.exited = parent.exited;
  parent.virtuals.set(id, v);
  parent.send({ type: 'spawn', id, argv, env });
  return v;
}

function waitFor(child, type, ms = 15_000) {
  const i = child.inbox.findIndex((m) => m.type === type || m.type === 'error');
  const got = i === -1 ? null : child.inbox.splice(i, 1)[0];
  const p = got
    ? Promise.resolve(got)
    : new Promise((resolve, reject) => {
        const w = { type, resolve, reject };
        child.waiters.push(w);
        setTimeout(() => {
          const j = child.waiters.indexOf(w);
          if (j !== -1) {
            child.waiters.splice(j, 1);
            reject(new Error(`timed out after ${ms} ms waiting for '${type}' from ${child.role} (${child.spawnargs.slice(-4).join(' ')})`));
          }
        }, ms).unref();
      });
  return p.then((m) => {
    if (m.type === 'error') throw new Error(`child reported: ${m.message}`);
    return m;
  });
}

async function ask(child, type = 'report') {
  if (!child.virtual && !child.connected) throw new Error(`${child.role} has exited`);
  child.send({ type });
  return waitFor(child, type);
}

async function stop(all) {
  const children = all.filter((c) => !c.virtual);
  for (const c of children) if (c.connected) c.disconnect();
  const timer = setTimeout(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')), 5000);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(timer);
}

const ns = (a, b) => Number(BigInt(b) - BigInt(a));
const mib = (kib) => kib / 1024;
const hrnow = () => process.hrtime.bigint();

// --- One run: fresh processes for one contender and one scenario --------------------------------

async function runOnce(c, scenario, execArgv = [], hooks = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-bench-'));
  const n = config.n[scenario];
  const isEvents = scenario !== 's2' && scenario !== 's3';
  const children = [];
  const spawn = (role, env) => {
    const child = start(c.script, [role, scenario, String(n), ...(c.argv ?? [])], { BENCH_DIR: dir, ...c.env, ...env }, execArgv);
    child.role = role;
    children.push(child);
    return child;
  };
  try {
    const hwmBytes = c.hubHighWaterMark ?? config.hubHighWaterMark;
    const hwm = hwmBytes ? { BENCH_HWM: String(hwmBytes) } : {};
    let hub = null;
    let hubEnv = {};
    if (c.hubProcess) {
      hub = spawn('hub', hwm);
      hubEnv = { BENCH_HUB_ENV: JSON.stringify((await waitFor(hub, 'ready')).info) };
    }
    const a = spawn('a', { ...hwm, ...hubEnv });
    const { info } = await waitFor(a, 'ready');
    const client = (role, index) => {
      const env = { BENCH_INFO: JSON.stringify(info), BENCH_INDEX: String(index) };
      if (!c.viaA) return spawn(role, env);
      const v = startVia(a, `${role}${index}`, [role, scenario, String(n)], { BENCH_DIR: dir, ...env });
      children.push(v);
      return v;
    };
    const receivers = Array.from({ length: scenario === 's6' ? 8 : 1 }, (_, i) => client('b', i));
    await Promise.all(receivers.map((b) => waitFor(b, 'ready', 30_000)));
    const sender = scenario === 's5' || scenario === 's5b' ? client('c', 0) : a;
    if (sender !== a) await waitFor(sender, 'ready', 30_000);

    // CPU time and context switches of every process over the measured phase, per item.
    const before = await Promise.all(children.map((x) => ask(x)));
    if (hooks.beforeGo) await hooks.beforeGo(children);
    if (scenario === 's5b') {
      a.send({ type: 'busy' });
      await waitFor(a, 'busy');
    }
    sender.send({ type: 'go', warmup: config.warmup });
    const result = {};
    if (isEvents) {
      const { t0 } = await waitFor(sender, 'started');
      const sentP = waitFor(sender, 'sent', 300_000);
      const dones = receivers.map((b) => waitFor(b, 'done', 300_000));
      let finished = 0;
      dones.forEach((p) => p.then(() => finished++, () => {}));
      const allDone = Promise.all(dones);
      let window = null;
      if (scenario === 's5b') window = new Promise((r) => setTimeout(() => r('window'), config.s5bWindowMs).unref());
      // Fails once the sender has sent everything and the receivers stop making progress.
      const stallMs = scenario === 's5b' ? 6000 : 3000;
      const watch = sentP.then(async () => {
        let last = -1;
        for (let still = 0; still * 1000 < stallMs; ) {
          await new Promise((r) => setTimeout(r, 1000));
          if (finished === receivers.length) return new Promise(() => {});
          const counts = await Promise.all(receivers.map((b) => ask(b).then((r) => r.count, () => last)));
          const total = counts.reduce((s, x) => s + x, 0);
          if (finished === receivers.length) return new Promise(() => {});
          still = total === last ? still + 1 : 0;
          last = total;
        }
        throw new Error(`the receivers stopped at ${last} of ${n * receivers.length} events for ${stallMs / 1000} s after the sender had sent them all`);
      });
      let outcome;
      try {
        outcome = await Promise.race([allDone, watch, ...(window ? [window] : [])]);
      } catch (err) {
        const reports = await Promise.all(receivers.map((b) => ask(b).catch(() => ({}))));
        const ra = await ask(hub ?? a).catch(() => ({}));
        const h = ra.stats?.hub;
        throw new Error(
          `${err.message}\n  received ${reports.map((r) => r.count).join(', ')} of ${n} (out of order: ${reports.map((r) => r.outOfOrder).join(', ')})` +
            (h ? `; hub: routed ${h.eventsRouted}, dropped ${h.eventsDropped}` : ''),
        );
      }
      const sent = outcome === 'window' ? await Promise.race([sentP, Promise.resolve(null)]) : await sentP;
      let reps;
      if (outcome === 'window') {
        reps = await Promise.all(receivers.map((b) => ask(b)));
        result.partial = reps.some((r) => r.count < n) ? 1 : 0;
      } else {
        reps = outcome;
        result.partial = 0;
      }
      for (const r of reps) {
        if (!result.partial && r.count !== n) throw new Error(`lost events: a receiver got ${r.count} of ${n}`);
        if (r.outOfOrder || r.bad) throw new Error(`events out of order (${r.outOfOrder}) or corrupt (${r.bad})`);
      }
      // Events per second from the sender's first emit to the last receipt (or, for a partial
      // S5b, to the receiver's report): process.hrtime is the system-wide monotonic clock.
      const rates = reps.map((r) => (r.count * 1e9) / ns(t0, result.partial ? r.at : r.last));
      const ends = reps.map((r) => ns(t0, result.partial ? r.at : r.last));
      result.received = reps.reduce((s, r) => s + r.count, 0);
      result.rate = (result.received * 1e9) / Math.max(...ends);
      result.perSubscriber = rates.reduce((s, x) => s + x, 0) / rates.length;
      result.rateAtB = ((reps[0].count - 1) * 1e9) / ns(reps[0].first, reps[0].last);
      result.framesPerBatchAtB = reps[0].count / reps[0].batches;
      if (sent) result.emitPerSec = (n * 1e9) / ns(sent.t0, sent.tEnd);
      if (scenario === 's4') result.mbPerSec = (result.rate * (1 << 20)) / 1e6;
      result.rssB = mib(Math.max(...reps.map((r) => r.maxRSS ?? 0)));
    } else {
      const done = await waitFor(a, 'done', 300_000);
      if (done.wrong) throw new Error(`${done.wrong} invokes returned a wrong result`);
      Object.assign(result, scenario === 's2' ? { p50: done.p50, p90: done.p90, p99: done.p99, max: done.max, rate: (n * 1e6) / done.totalUs } : { rate: done.callsPerSec });
      result.rssA = mib(done.maxRSS);
    }
    if (scenario === 's5b') {
      a.send({ type: 'stop' });
      result.busyMs = (await waitFor(a, 'stop', 15_000)).busyMs;
    }
    if (hooks.afterDone) await hooks.afterDone(children);
    const after = await Promise.all(children.map((x) => ask(x)));
    const items = isEvents ? Math.max(1, result.received ?? n) : n + config.warmup;
    result.cpuUsTotal = 0;
    children.forEach((x, i) => {
      const cpu = (after[i].cpuUs - before[i].cpuUs) / items;
      const key = x.role === 'hub' ? 'Hub' : x.role.charAt(0).toUpperCase();
      result[`cpuUs${key}`] = (result[`cpuUs${key}`] ?? 0) + cpu;
      result.cpuUsTotal += cpu;
    });
    result.rssA = mib(after[children.indexOf(a)].maxRSS);
    if (!isEvents) result.rssB = mib(Math.max(...receivers.map((b) => after[children.indexOf(b)].maxRSS)));
    if (hub) result.rssHub = mib(after[children.indexOf(hub)].maxRSS);
    if (sender !== a) result.rssC = mib(after[children.indexOf(sender)].maxRSS);
    result.rssAB = result.rssA + result.rssB;
    const hubStats = (hub ? after[children.indexOf(hub)] : after[children.indexOf(a)]).stats?.hub;
    if (hubStats) {
      result.hubDropped = hubStats.eventsDropped;
      // Flow control at work (issue 11; absent before it): publishers paused, peers stalled.
      if (hubStats.pauses !== undefined) Object.assign(result, { hubPauses: hubStats.pauses, hubStalls: hubStats.stalls, hubPeakQueuedMiB: hubStats.peakQueuedBytes / 2 ** 20 });
      if (hubStats.eventsDropped) throw new Error(`the hub dropped ${hubStats.eventsDropped} events`);
    }
    const aStats = after[children.indexOf(a)].stats;
    if (aStats?.framesPerWrite !== undefined) result.framesPerWriteA = Array.isArray(aStats.framesPerWrite) ? Math.max(...aStats.framesPerWrite) : aStats.framesPerWrite;
    return result;
  } finally {
    await stop(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- The limit: bench/limit.cc, built on demand into build-bench --------------------------------

function limitBinary() {
  const build = path.join(root, 'build-bench');
  const bin = path.join(build, 'bench', 'switchboard_limit');
  const run = (cmd, argv) => execFileSync(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (!existsSync(bin)) console.log('building the limit (bench/limit.cc) into build-bench ...');
  // Configured every time (a second or so): a build-bench made before limit.cc existed has no
  // such target, and make does not regenerate for a target it does not know.
  run('cmake', ['-S', '.', '-B', 'build-bench', '-DCMAKE_BUILD_TYPE=Release', '-DSWITCHBOARD_BENCH=ON', '-DSWITCHBOARD_TESTS=OFF', '-DSWITCHBOARD_EXAMPLES=OFF', '-DSWITCHBOARD_ADDON=OFF']);
  // Incremental: a no-op when the binary is newer than limit.cc.
  run('cmake', ['--build', 'build-bench', '-j2', '--target', 'switchboard_limit']);
  return bin;
}

function runLimit(bin) {
  const out = execFileSync(bin, quick ? ['--quick'] : [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const r = JSON.parse(out);
  for (const [k, v] of Object.entries(r)) if (v.error) throw new Error(`limit ${k}: ${v.error}`);
  return {
    pingpong: { p50: r.pingpong.p50Us, p99: r.pingpong.p99Us, rate: r.pingpong.tripsPerSec },
    pipelined: { rate: r.pipelined.tripsPerSec },
    stream: { rate: r.stream.messagesPerSec },
    bulk: { mbPerSec: r.bulk.mbPerSec },
    raw: r,
  };
}

// --- Summaries ------------------------------------------------------------------------------------

function summary(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1] };
}

const fmtInt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${Math.round(x / 1e3)}k` : x.toFixed(0));
const fmtUs = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fmtMiB = (x) => x.toFixed(0);
function cell(s, fmt) {
  if (!s) return '–';
  if (config.reps === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}
const ratio = (sb, x) => (sb && x ? `${(sb.median / x.median).toFixed(2)}×` : '–');

function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((x, i) => String(x).padEnd(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function machine() {
  const require = createRequire(import.meta.url);
  let addon = process.env.SWITCHBOARD_NATIVE;
  if (!addon) {
    const { candidates } = require(path.join(root, 'dist', 'cjs', 'native-loader.cjs'));
    addon = candidates().find((f) => existsSync(f));
  }
  let buildType = '';
  try {
    const cache = readFileSync(path.join(path.dirname(path.dirname(addon)), 'CMakeCache.txt'), 'utf8');
    buildType = cache.match(/^CMAKE_BUILD_TYPE:STRING=(.*)$/m)?.[1] ?? '';
  } catch {}
  return {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    msgpackr: pkgVersion('msgpackr'),
    msgpackrNative: !!benchRequire('msgpackr').isNativeAccelerationEnabled,
    addon: path.relative(root, addon ?? ''),
    addonBuildType: buildType,
    addonBuilt: addon ? statSync(addon).mtime.toISOString() : null,
    // lib/ is under active work: which compiled codec and bus were measured.
    dist: Object.fromEntries(
      ['codec.js', 'event-bus.js', 'wire.js'].map((f) => {
        const file = path.join(root, 'dist', 'esm', f);
        return [f, createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 12)];
      }),
    ),
    loadavgAtStart: loadavg().map((x) => +x.toFixed(2)),
    ...(config.baselineTree ? { baseline: baselineInfo(config.baselineTree) } : {}),
  };
}

/** What 'switchboard-before' measured: the tree's commit, its addon and its compiled bus. */
function baselineInfo(tree) {
  const addon = path.join(tree, 'build-rel', 'addon', 'switchboard.node');
  for (const f of [addon, path.join(tree, 'dist', 'esm', 'index.js')]) {
    if (!existsSync(f)) throw new Error(`--baseline-tree: ${f} is missing (build the tree as docs/PERFORMANCE.md says)`);
  }
  let commit = null;
  try {
    commit = execFileSync('git', ['-C', tree, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {}
  return {
    tree,
    commit,
    addon,
    addonBuilt: statSync(addon).mtime.toISOString(),
    hubHighWaterMark: BASELINE_HWM,
    dist: Object.fromEntries(['event-bus.js'].map((f) => [f, createHash('sha256').update(readFileSync(path.join(tree, 'dist', 'esm', f))).digest('hex').slice(0, 12)])),
  };
}

const profiled = () => CONTENDERS.find((c) => c.key === option('--contender', 'switchboard'));

// --- Profile mode -----------------------------------------------------------------------------------

/**
 * Self time per function of one --cpu-prof profile. With `window` ([from, to] in µs of the
 * monotonic clock that process.hrtime and V8's profiler share), only samples inside it count, so
 * start-up and teardown stay out of per-item figures; `busyMs` is the sampled time that is not
 * `(idle)`, i.e. the JavaScript thread's CPU (JS, GC, and native code called from JS).
 */
function topSelf(file, limit = 12, window = null) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  let total = 0;
  let idle = 0;
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    const d = dt[i] ?? 0;
    t += d;
    if (window && (t < window[0] || t > window[1])) continue;
    const n = byId.get(prof.samples[i]);
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) + ':' + (f.lineNumber + 1) : ''}`.trim();
    total += d;
    if (f.functionName === '(idle)') idle += d;
    self.set(key, (self.get(key) ?? 0) + d);
  }
  return {
    totalMs: total / 1000,
    busyMs: (total - idle) / 1000,
    top: [...self.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, limit)
      .map(([k, v]) => ({ fn: k, ms: +(v / 1000).toFixed(1), pct: +((100 * v) / total).toFixed(1), us: v })),
  };
}

/**
 * One run of `--scenario` (S1 by default; S2 and S3 profile the caller A and the callee B) under
 * --cpu-prof. Self time counts only the measured phase (from 'go' to the last reply or receipt);
 * "per item" divides by the events, or by the calls including the warm-up ones.
 */
async function runProfile() {
  const out = path.join(root, 'bench', 'results', 'profiles');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const scenario = option('--scenario', 's1');
  if (!SCENARIO[scenario]) throw new Error(`unknown scenario '${scenario}' (known: ${ALL.join(', ')})`);
  const roles = new Map();
  const usNow = () => Number(hrnow() / 1000n);
  const window = [0, 0];
  const r = await runOnce(profiled(), scenario, ['--cpu-prof', `--cpu-prof-dir=${out}`, '--cpu-prof-interval=200'], {
    beforeGo: async (children) => {
      children.forEach((c) => roles.set(c.pid, c.role));
      window[0] = usNow();
    },
    afterDone: async () => {
      window[1] = usNow();
    },
  });
  const items = scenario === 's2' || scenario === 's3' ? config.n[scenario] + config.warmup : Math.max(1, r.received ?? config.n[scenario]);
  const unit = scenario === 's2' || scenario === 's3' ? 'call' : 'event';
  if (scenario === 's2') console.log(`S2 under --cpu-prof (${config.n.s2} calls): p50 ${fmtUs(r.p50)} µs, p99 ${fmtUs(r.p99)} µs`);
  else if (scenario === 's3') console.log(`S3 under --cpu-prof (${config.n.s3} calls, 64 in flight): ${fmtInt(r.rate)} calls/s`);
  else {
    console.log(
      `${scenario.toUpperCase()} under --cpu-prof (${config.n[scenario]} events): ${fmtInt(r.rate)} events/s (${fmtInt(r.rateAtB)} first to last at B), ` +
        `${r.framesPerBatchAtB.toFixed(1)} events per JS batch at B, A frames/writev ${r.framesPerWriteA?.toFixed(1)}`,
    );
  }
  const cpuOf = (role) => r[`cpuUs${role === 'hub' ? 'Hub' : role.charAt(0).toUpperCase()}`];
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const f of readdirSync(out).filter((x) => x.endsWith('.cpuprofile'))) {
    const pid = Number(f.split('.')[3]);
    const role = roles.get(pid) ?? '?';
    const { totalMs, busyMs, top } = topSelf(path.join(out, f), 14, window);
    const cpu = cpuOf(role);
    console.log(
      `\n${role} (${f}): ${totalMs.toFixed(0)} ms sampled in the measured phase, JS thread busy ${busyMs.toFixed(0)} ms = ` +
        `${((busyMs * 1000) / items).toFixed(2)} µs per ${unit}` +
        (cpu !== undefined ? ` (process CPU, all threads, from getrusage: ${cpu.toFixed(2)} µs per ${unit})` : ''),
    );
    for (const t of top) {
      console.log(`  ${String(t.pct).padStart(5)}%  ${String(t.ms).padStart(8)} ms  ${(t.us / items).toFixed(3).padStart(7)} µs/${unit}  ${t.fn}`);
    }
  }
  console.log(`\nprofiles: ${path.relative(process.cwd(), out)} (open in Chrome DevTools › Performance)`);
}

/** `perf record` on the Switchboard processes of one scenario (native and JIT frames). */
async function runPerf() {
  const { spawn } = await import('node:child_process');
  const out = path.join(root, 'bench', 'results', 'perf');
  mkdirSync(out, { recursive: true });
  const data = path.join(out, 'perf.data');
  const roles = new Map();
  let rec;
  const scenario = option('--scenario', 's1');
  const r = await runOnce(profiled(), scenario, ['--perf-basic-prof-only-functions'], {
    beforeGo: async (children) => {
      children.forEach((c) => roles.set(c.pid, c.role));
      rec = spawn('perf', ['record', '-e', 'cpu-clock:u', '-F', '2000', '-g', '-o', data, '-p', children.map((c) => c.pid).join(',')], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
    },
    afterDone: async () => {
      rec.kill('SIGINT');
      await new Promise((resolve) => rec.on('exit', resolve));
    },
  });
  console.log(scenario === 's2' ? `S2 under perf: p50 ${fmtUs(r.p50)} µs` : scenario === 's4' ? `S4 under perf: ${fmtMB((r.rate * (1 << 20)) / 1e6)} MB/s` : `${scenario.toUpperCase()} under perf: ${fmtInt(r.rate)} events/s`);
  for (const [pid, role] of roles) {
    const text = execFileSync('perf', ['report', '-i', data, '--no-children', '--pid', String(pid), '--percentage', 'relative', '--sort', 'dso,sym', '--stdio', '-g', 'none', '--percent-limit', '1.5'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    });
    console.log(`\n== ${role} (pid ${pid})`);
    console.log(text.split('\n').filter((l) => l && !l.startsWith('#')).slice(0, 25).join('\n'));
    const threads = execFileSync('perf', ['report', '-i', data, '--no-children', '--pid', String(pid), '--sort', 'tid', '--stdio', '-g', 'none'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    console.log('  by thread: ' + threads.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.trim().replace(/\s+/g, ' ')).join('; '));
  }
}

// --- Main -----------------------------------------------------------------------------------------

const fmtRate = (x) => fmtInt(x);
const fmtMB = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fmtFor = (scenario) => (scenario === 's2' ? fmtUs : scenario === 's4' ? fmtMB : fmtRate);
const times = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`);
const pct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`);

/** Median of field `f` for (contender, scenario), or null. */
const med = (agg, key, scenario, f) => agg[`${key}/${scenario}`]?.[f]?.median ?? null;

/** The fraction of the limit: this ÷ limit for rates, limit ÷ this for latencies (1 = the limit). */
function ofLimit(limitAgg, scenario, value, field) {
  const spec = SCENARIO[scenario];
  const l = limitAgg?.[spec.limit];
  if (!l || value === null) return null;
  if (!spec.higher) return (l[field]?.median ?? null) / value;
  const lv = spec.limit === 'bulk' ? l.mbPerSec?.median : l.rate?.median;
  return value / lv;
}

function bestPeer(agg, scenario, field, higher) {
  let best = null;
  for (const c of contenders.filter(isPeer)) {
    const v = med(agg, c.key, scenario, field);
    if (v === null) continue;
    if (!best || (higher ? v > best.value : v < best.value)) best = { key: c.key, label: c.label, value: v };
  }
  return best;
}

function targets(agg, limitAgg) {
  const out = [];
  const sb = (s, f) => med(agg, 'switchboard', s, f);
  const check = (name, want, got, detail) => out.push({ name, want, value: got, met: got === null ? null : want(got), detail });
  const ratioTo = (s, f, higher) => {
    const b = bestPeer(agg, s, f, higher);
    const v = sb(s, f);
    return b && v !== null ? { r: v / b.value, b, v } : null;
  };
  const line = (x, unit, fmt) => (x ? `Switchboard ${fmt(x.v)} ${unit} vs best peer ${x.b.label} ${fmt(x.b.value)} ${unit}` : 'not measured');
  const s1 = ratioTo('s1', 'rate', true);
  check('S1 events/s ≥ 2× best peer', (r) => r >= 2, s1?.r ?? null, line(s1, 'events/s', fmtRate));
  const p50 = ratioTo('s2', 'p50', false);
  check('S2 p50 ≤ 0.8× best peer', (r) => r <= 0.8, p50?.r ?? null, line(p50, 'µs', fmtUs));
  const p99 = ratioTo('s2', 'p99', false);
  check('S2 p99 ≤ 0.6× best peer', (r) => r <= 0.6, p99?.r ?? null, line(p99, 'µs', fmtUs));
  const s3 = ratioTo('s3', 'rate', true);
  check('S3 calls/s ≥ 2× best peer', (r) => r >= 2, s3?.r ?? null, line(s3, 'calls/s', fmtRate));
  const s4 = sb('s4', 'mbPerSec');
  const lim = limitAgg?.bulk?.mbPerSec?.median ?? null;
  check('S4 MB/s ≥ 60% of the C++ limit', (r) => r >= 0.6, s4 !== null && lim ? s4 / lim : null, s4 !== null && lim ? `Switchboard ${fmtMB(s4)} MB/s vs limit ${fmtMB(lim)} MB/s` : 'not measured');
  const s5 = ratioTo('s5', 'rate', true);
  check('S5 events/s ≥ 4× best peer', (r) => r >= 4, s5?.r ?? null, line(s5, 'events/s', fmtRate));
  const a = sb('s5b', 'rate');
  const b = sb('s5', 'rate');
  check('S5b ≥ 90% of Switchboard S5', (r) => r >= 0.9, a !== null && b ? a / b : null, a !== null && b ? `S5b ${fmtRate(a)} vs S5 ${fmtRate(b)} events/s` : 'not measured');
  const rss = ratioTo('s1', 'rssAB', false);
  check('S1 peak RSS (A + B) ≤ 1.2× best peer', (r) => r <= 1.2, rss?.r ?? null, line(rss, 'MiB', fmtMiB));
  return out;
}

async function main() {
  if (!existsSync(path.join(root, 'dist', 'esm', 'index.js'))) {
    console.error('dist/ is missing: run `npm run build:native && npm run build:ts` first.');
    process.exit(1);
  }
  if (profile) return runProfile();
  if (flag('--perf')) return runPerf();
  const info = machine();
  info.zeromq = zmqState.ok ? zmqState.version : `unavailable: ${zmqState.why}`;
  console.log(
    `Switchboard benchmark suite — ${info.cpus} CPUs, Node ${info.node}, msgpackr ${info.msgpackr}, zeromq ${info.zeromq}\n` +
      `addon ${info.addon} (${info.addonBuildType || 'unknown build type'}); load average ${info.loadavgAtStart.join(' ')}`,
  );
  if (info.baseline) console.log(`switchboard-before: ${info.baseline.tree} at ${info.baseline.commit?.slice(0, 7) ?? '?'}, hub mark ${BASELINE_HWM} bytes`);
  console.log(`switchboard: hub mark ${config.hubHighWaterMark ?? 'the library default (8 MiB)'}`);
  console.log(`N: ${ALL.map((s) => `${s.toUpperCase()} ${config.n[s]}`).join(', ')}; ${config.reps} repetition(s)${quick ? ' [quick]' : ''}\n`);
  for (const u of unavailable) console.log(`  ${u.key} is UNAVAILABLE here and not counted: ${u.why}`);

  let limitBin = null;
  const limitRuns = [];
  const failures = [];
  if (!flag('--no-limit')) {
    try {
      limitBin = limitBinary();
    } catch (err) {
      failures.push({ key: 'limit/build', rep: 0, error: String(err.message ?? err) });
      console.log(`  the limit could not be built: ${err.message}`);
    }
  }
  const raw = {};
  const t0 = Date.now();
  for (let rep = 0; rep < config.reps; rep++) {
    if (limitBin) {
      try {
        const l = runLimit(limitBin);
        limitRuns.push(l);
        console.log(`  rep ${rep + 1} limit: ping-pong p50 ${fmtUs(l.pingpong.p50)} µs, 64 in flight ${fmtRate(l.pipelined.rate)}/s, stream ${fmtRate(l.stream.rate)} msg/s, 1 MiB ${fmtMB(l.bulk.mbPerSec)} MB/s`);
      } catch (err) {
        failures.push({ key: 'limit', rep, error: String(err.message ?? err) });
        console.log(`  rep ${rep + 1} limit: FAILED ${err.message}`);
      }
    }
    for (const scenario of scenarios) {
      for (const c of contenders) {
        if (!c.scenarios.includes(scenario)) continue;
        const key = `${c.key}/${scenario}`;
        try {
          const r = await runOnce(c, scenario);
          (raw[key] ??= []).push(r);
          const brief =
            scenario === 's2'
              ? `p50 ${fmtUs(r.p50)} µs, p99 ${fmtUs(r.p99)} µs`
              : scenario === 's4'
                ? `${fmtMB(r.mbPerSec)} MB/s`
                : `${fmtRate(r.rate)} ${SCENARIO[scenario].unit}` + (r.partial ? ` (${r.received} of ${config.n[scenario]} in the ${config.s5bWindowMs / 1000} s window)` : '');
          console.log(`  rep ${rep + 1} ${scenario.toUpperCase()} ${c.label}: ${brief}`);
        } catch (err) {
          failures.push({ key, rep, error: String(err.message ?? err) });
          console.log(`  rep ${rep + 1} ${scenario.toUpperCase()} ${c.label}: FAILED ${err.message}`);
        }
      }
    }
  }
  const elapsed = (Date.now() - t0) / 1000;
  info.loadavgAtEnd = loadavg().map((x) => +x.toFixed(2));

  const agg = {};
  for (const [key, runs] of Object.entries(raw)) {
    agg[key] = {};
    for (const field of Object.keys(runs[0])) if (typeof runs[0][field] === 'number') agg[key][field] = summary(runs.map((r) => r[field]));
  }
  const limitAgg = {};
  for (const k of ['pingpong', 'pipelined', 'stream', 'bulk']) {
    if (!limitRuns.length) break;
    limitAgg[k] = {};
    for (const f of Object.keys(limitRuns[0][k])) limitAgg[k][f] = summary(limitRuns.map((l) => l[k][f]));
  }

  // One table: a row per contender, a column group per scenario: figure, SB ÷ this, ÷ limit.
  const rows = [];
  const ratios = {}; // for the chart: scenario -> contender -> fraction of the limit
  for (const scenario of scenarios) {
    const spec = SCENARIO[scenario];
    const field = spec.metric;
    const sbv = med(agg, 'switchboard', scenario, field);
    for (const c of contenders) {
      const a = agg[`${c.key}/${scenario}`];
      if (!c.scenarios.includes(scenario)) {
        rows.push([spec.title, c.label, 'n/a', '', '', c.na?.[scenario] ?? '']);
        continue;
      }
      if (!a) {
        rows.push([spec.title, c.label, 'FAILED', '', '', '']);
        continue;
      }
      const v = a[field]?.median ?? null;
      const sbRatio = sbv === null || v === null ? null : sbv / v;
      const lim = ofLimit(limitAgg, scenario, v, field);
      (ratios[scenario] ??= {})[c.key] = lim;
      let extra = '';
      if (scenario === 's1') extra = `RSS A ${cell(a.rssA, fmtMiB)} + B ${cell(a.rssB, fmtMiB)} MiB${a.rssHub ? ` (hub ${cell(a.rssHub, fmtMiB)})` : ''}`;
      if (scenario === 's2') extra = `p99 ${cell(a.p99, fmtUs)} µs (SB ÷ this ${times(med(agg, 'switchboard', 's2', 'p99') / a.p99.median)}, ${pct(ofLimit(limitAgg, 's2', a.p99.median, 'p99'))} of limit)`;
      if (scenario === 's5b') extra = a.partial?.max ? `partial: ${cell(a.received, fmtRate)} events in the ${config.s5bWindowMs / 1000} s window` : 'all events';
      if (scenario === 's6') extra = `per subscriber ${cell(a.perSubscriber, fmtRate)}/s`;
      if (scenario === 's3' || scenario === 's4') extra = `CPU ${cell(a.cpuUsTotal, (x) => x.toFixed(1))} µs/item`;
      rows.push([spec.title, c.label, `${cell(a[field], fmtFor(scenario))} ${spec.unit}`, c.key === 'switchboard' ? '1.00×' : times(sbRatio), pct(lim), extra]);
    }
  }
  const limitRows = [
    ['S1/S5/S5b/S6 stream, 64 B, 256 per writev', limitAgg.stream ? `${cell(limitAgg.stream.rate, fmtRate)} msg/s` : '–'],
    ['S2 ping-pong, 64 B', limitAgg.pingpong ? `p50 ${cell(limitAgg.pingpong.p50, fmtUs)} µs, p99 ${cell(limitAgg.pingpong.p99, fmtUs)} µs` : '–'],
    ['S3 ping-pong, 64 in flight', limitAgg.pipelined ? `${cell(limitAgg.pipelined.rate, fmtRate)} round trips/s` : '–'],
    ['S4 1 MiB messages', limitAgg.bulk ? `${cell(limitAgg.bulk.mbPerSec, fmtMB)} MB/s` : '–'],
  ];
  const mainTable = table(['scenario', 'contender', `median${config.reps > 1 ? ' (min–max)' : ''}`, 'SB ÷ this', 'of the limit', 'notes'], rows);
  const limitTable = table(['the limit (bench/limit.cc, two processes, one Unix socket)', 'median'], limitRows);
  console.log(`\nmedian of ${config.reps}${config.reps > 1 ? ' (min–max)' : ''}. "SB ÷ this": Switchboard's figure ÷ this contender's, so ≥ 1 is Switchboard ahead on rates`);
  console.log(`and ≤ 1 is Switchboard ahead on latency (the form of issue 4's targets). "of the limit": this ÷ the C++ limit for rates, limit ÷ this for latency.\n`);
  console.log(mainTable);
  console.log();
  console.log(limitTable);

  const tg = targets(agg, limitAgg);
  const targetTable = table(
    ['issue 4 target', 'measured', 'status', 'numbers'],
    tg.map((t) => [t.name, t.value === null ? '–' : t.name.includes('%') ? pct(t.value) : times(t.value), t.met === null ? 'not measured' : t.met ? 'MET' : 'not met', t.detail]),
  );
  console.log('\nTarget check (never fails the run):\n');
  console.log(targetTable);
  for (const u of unavailable) console.log(`\n${u.key} was unavailable and is not counted: ${u.why}`);
  if (failures.length) console.log(`\n${failures.length} run(s) FAILED:\n${failures.map((f) => `  ${f.key} rep ${f.rep + 1}: ${f.error}`).join('\n')}`);
  console.log(`\n${elapsed.toFixed(1)} s; load average at start ${info.loadavgAtStart.join(' ')}, at end ${info.loadavgAtEnd.join(' ')} (other work on this machine skews the figures)`);

  const outDir = path.join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const name = option('--name', quick ? 'suite-quick' : 'suite');
  const file = path.join(outDir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { machine: info, config, scenarios: SCENARIO, contenders, unavailable, limit: { summary: limitAgg, runs: limitRuns.map((l) => l.raw) }, summary: agg, runs: raw, targets: tg, failures, tables: { main: mainTable, limit: limitTable, targets: targetTable }, elapsedSec: elapsed },
      null,
      2,
    ),
  );
  const svg = path.join(outDir, `${name}.svg`);
  writeFileSync(
    svg,
    renderChart({
      title: `Switchboard suite: each contender as a fraction of the C++ limit (log scale)`,
      subtitle: `${info.cpus} vCPUs, Node ${info.node}, ${info.date.slice(0, 10)}, median of ${config.reps}${quick ? ' [quick]' : ''}; load ${info.loadavgAtStart.join(' ')}`,
      groups: scenarios.map((s) => ({ label: SCENARIO[s].title, values: contenders.map((c) => ({ key: c.key, label: c.label, value: ratios[s]?.[c.key] ?? null, na: !c.scenarios.includes(s) })) })),
    }),
  );
  console.log(`results: ${path.relative(process.cwd(), file)}, chart: ${path.relative(process.cwd(), svg)}`);
  if (failures.length) process.exitCode = 1;
}

await main();
