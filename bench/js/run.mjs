// First measurement: Switchboard against net + msgpackr (issue 3's closing note; the full suite
// is issue 4). Run after `npm run build:native && npm run build:ts`:
//
//   node bench/js/run.mjs [--quick] [--reps N] [--only name,name] [--hwm BYTES] [--events N] [--calls N]
//   node bench/js/run.mjs --profile              (Switchboard S1 under --cpu-prof: JavaScript self time)
//   node bench/js/run.mjs --perf [--scenario s2]  (Switchboard under `perf record`: native + JIT frames)
//
// S1: process A emits small events to process B (events/s at B, first to last receipt; peak RSS).
// S2: A invokes a handler in B sequentially (p50/p99 µs per call, timed in A).
// Every (contender, scenario, repetition) runs in fresh processes; the repetitions interleave
// the contenders. Figures are the median over repetitions, with the min–max spread. Ratios are
// Switchboard ÷ contender, the form of issue 4's targets (S1 ≥ 2, S2 p50 ≤ 0.8, RSS ≤ 1.2).
// Results: bench/results/first.json (--quick: first-quick.json; bench/results/ is git-ignored).
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir, cpus, totalmem, release, loadavg } from 'node:os';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};

const quick = flag('--quick');
const profile = flag('--profile');
const config = {
  quick,
  events: Number(option('--events', quick ? 20_000 : 200_000)),
  calls: Number(option('--calls', quick ? 1_000 : 10_000)),
  warmup: Number(option('--warmup', quick ? 100 : 1_000)),
  reps: Number(option('--reps', quick ? 1 : 3)),
  // The hub's per-peer high-water mark. A 200,000-event burst is ~17 MB on the wire, over the
  // default 8 MiB, so with the default the hub may drop events by design (DESIGN.md: "a burst
  // that fits under the mark is never dropped"); it does when B's I/O thread falls behind, e.g.
  // on a busy 2-core machine. The net contenders are lossless (flow control), so Switchboard
  // gets a mark that holds the whole burst, as bench/core_bench.cc does. `--hwm 0` keeps the
  // library's default. A run that loses events fails with the hub's drop count.
  hubHighWaterMark: Number(option('--hwm', 512 * 1024 * 1024)) || undefined,
};

const SB = path.join(here, 'switchboard.mjs');
const NM = path.join(here, 'net-msgpackr.mjs');
const CONTENDERS = [
  { key: 'switchboard', label: 'switchboard (A→hub→B)', hops: 2 },
  { key: 'net-relay', label: 'net+msgpackr via JS relay (A→relay→B)', hops: 2, mode: 'relay', codec: 'standard' },
  { key: 'net-direct', label: 'net+msgpackr direct (A→B)', hops: 1, mode: 'direct', codec: 'standard' },
  { key: 'net-direct-records', label: 'net+msgpackr records, direct (A→B)', hops: 1, mode: 'direct', codec: 'records' },
];
const only = option('--only', '');
const contenders = only ? CONTENDERS.filter((c) => only.split(',').includes(c.key)) : CONTENDERS;

// --- Process plumbing ---------------------------------------------------------------------------

function start(script, argv, env, execArgv = []) {
  const child = fork(script, argv, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.inbox = [];
  child.waiters = [];
  child.on('message', (msg) => {
    const i = child.waiters.findIndex((w) => w.type === msg.type || msg.type === 'error');
    if (i === -1) child.inbox.push(msg);
    else child.waiters.splice(i, 1)[0].resolve(msg);
  });
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.exited.then(({ code, signal }) => {
    for (const w of child.waiters.splice(0)) w.reject(new Error(`${path.basename(script)} ${argv[0]} exited (${code ?? signal}) while we waited for '${w.type}'`));
  });
  return child;
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
            reject(new Error(`timed out after ${ms} ms waiting for '${type}' from ${child.spawnargs.slice(-4).join(' ')}`));
          }
        }, ms).unref();
      });
  return p.then((m) => {
    if (m.type === 'error') throw new Error(`child reported: ${m.message}`);
    return m;
  });
}

async function ask(child, type = 'report') {
  child.send({ type });
  return waitFor(child, type);
}

async function stop(children) {
  for (const c of children) if (c.connected) c.disconnect();
  const timer = setTimeout(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')), 5000);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(timer);
}

const ns = (a, b) => Number(BigInt(b) - BigInt(a));
const mib = (kib) => kib / 1024;

// --- One run: fresh processes for one contender and one scenario --------------------------------

async function runOnce(c, scenario, execArgv = [], hooks = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-bench-'));
  const n = scenario === 's1' ? config.events : config.calls;
  const children = [];
  const spawn = (...a) => {
    const child = start(...a);
    child.role = a[1][0];
    children.push(child);
    return child;
  };
  try {
    let middle = null;
    let a;
    let b;
    if (c.key === 'switchboard') {
      middle = spawn(SB, ['hub', scenario, n], config.hubHighWaterMark ? { BENCH_HWM: String(config.hubHighWaterMark) } : {}, execArgv);
      const { env } = await waitFor(middle, 'ready');
      b = spawn(SB, ['b', scenario, n], env, execArgv);
      await waitFor(b, 'ready');
      a = spawn(SB, ['a', scenario, n], env, execArgv);
      await waitFor(a, 'ready');
    } else {
      const base = { BENCH_DIR: dir };
      const argv = (role) => [role, scenario, n, c.mode, c.codec];
      let peer;
      if (c.mode === 'relay') {
        middle = spawn(NM, argv('relay'), base);
        peer = (await waitFor(middle, 'ready')).path;
        b = spawn(NM, argv('b'), { ...base, BENCH_RELAY: peer });
        await waitFor(b, 'ready');
      } else {
        b = spawn(NM, argv('b'), base);
        peer = (await waitFor(b, 'ready')).path;
      }
      a = spawn(NM, argv('a'), { ...base, BENCH_PEER: peer });
      await waitFor(a, 'ready');
    }

    // CPU time and context switches of every process over the measured phase, per event or call.
    const before = await Promise.all(children.map((c) => ask(c)));
    const costs = async () => {
      const after = await Promise.all(children.map((c) => ask(c)));
      const per = {};
      const items = scenario === 's1' ? n : n + config.warmup; // S2's warm-up calls run in the measured phase
      children.forEach((c, i) => {
        per[c.role] = {
          cpuUs: (after[i].cpuUs - before[i].cpuUs) / items,
          ctxSwitches: (after[i].ctxSwitches - before[i].ctxSwitches) / items,
        };
      });
      return per;
    };
    if (hooks.beforeGo) await hooks.beforeGo(children);
    a.send({ type: 'go', warmup: config.warmup });
    if (scenario === 's1') {
      const sentP = waitFor(a, 'sent', 120_000);
      let done;
      try {
        // Fails fast once A has sent everything and B stops making progress (lost events).
        const doneP = waitFor(b, 'done', quick ? 20_000 : 120_000);
        let finished = false;
        doneP.then(() => (finished = true), () => {});
        const never = new Promise(() => {});
        const watchP = sentP.then(async () => {
          let last = -1;
          for (let still = 0; still < 3; ) {
            await new Promise((r) => setTimeout(r, 1000));
            if (finished) return never;
            const { count } = await ask(b).catch(() => ({ count: last }));
            if (finished) return never;
            still = count === last ? still + 1 : 0;
            last = count;
          }
          throw new Error(`B stopped at ${last} of ${n} events for 3 s after A had sent them all`);
        });
        done = await Promise.race([doneP, watchP]);
      } catch (err) {
        const rb = await ask(b).catch(() => ({}));
        const rm = middle ? await ask(middle).catch(() => ({})) : {};
        throw new Error(
          `${err.message}\n  B received ${rb.count} of ${n} events (out of order: ${rb.outOfOrder})` +
            (rm.stats?.hub ? `; hub: routed ${rm.stats.hub.eventsRouted}, dropped ${rm.stats.hub.eventsDropped}` : ''),
        );
      }
      const sent = await sentP;
      if (hooks.afterDone) await hooks.afterDone(children);
      const per = await costs();
      const ra = await ask(a);
      const rb = await ask(b);
      const rm = middle ? await ask(middle) : null;
      return {
        eventsPerSec: ((done.count - 1) * 1e9) / ns(done.first, done.last),
        e2eEventsPerSec: (done.count * 1e9) / ns(sent.t0, done.last),
        emitPerSec: (n * 1e9) / ns(sent.t0, sent.tEnd),
        received: done.count,
        outOfOrder: done.outOfOrder,
        bad: done.bad,
        framesPerBatchAtB: done.count / done.batches,
        batchesAtB: done.batches,
        rssA: mib(ra.maxRSS),
        rssB: mib(Math.max(done.maxRSS, rb.maxRSS)),
        rssMiddle: rm ? mib(rm.maxRSS) : null,
        framesPerWriteA: ra.stats ? ra.stats.framesPerWrite : ra.framesPerWrite,
        hub: rm?.stats?.hub ?? null,
        hubFramesPerWrite: rm?.stats?.framesPerWrite ?? null,
        ...flatCosts(per),
      };
    }
    const done = await waitFor(a, 'done', 120_000);
    if (hooks.afterDone) await hooks.afterDone(children);
    const per = await costs();
    const rb = await ask(b);
    const rm = middle ? await ask(middle) : null;
    return {
      p50: done.p50,
      p90: done.p90,
      p99: done.p99,
      max: done.max,
      mean: done.mean,
      callsPerSec: (n * 1e6) / done.totalUs,
      wrong: done.wrong,
      rssA: mib(done.maxRSS),
      rssB: mib(rb.maxRSS),
      rssMiddle: rm ? mib(rm.maxRSS) : null,
      ...flatCosts(per),
    };
  } finally {
    await stop(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** { a: {cpuUs, ctxSwitches}, ... } -> { cpuUsA, ctxA, ..., cpuUsTotal, ctxTotal } ('relay' and 'hub' are the middle). */
function flatCosts(per) {
  const out = { cpuUsTotal: 0, ctxTotal: 0 };
  for (const [role, v] of Object.entries(per)) {
    const key = role === 'hub' || role === 'relay' ? 'Middle' : role.toUpperCase();
    out[`cpuUs${key}`] = v.cpuUs;
    out[`ctx${key}`] = v.ctxSwitches;
    out.cpuUsTotal += v.cpuUs;
    out.ctxTotal += v.ctxSwitches;
  }
  return out;
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
    msgpackr: require(path.join(root, 'node_modules', 'msgpackr', 'package.json')).version,
    msgpackrNative: !!require('msgpackr').isNativeAccelerationEnabled,
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
  };
}

// --- Profile mode -----------------------------------------------------------------------------------

function topSelf(file, limit = 12) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) + ':' + (f.lineNumber + 1) : ''}`.trim();
    const d = dt[i] ?? 0;
    total += d;
    self.set(key, (self.get(key) ?? 0) + d);
  }
  return {
    totalMs: total / 1000,
    top: [...self.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, limit)
      .map(([k, v]) => ({ fn: k, ms: +(v / 1000).toFixed(1), pct: +((100 * v) / total).toFixed(1) })),
  };
}

async function runProfile() {
  const out = path.join(root, 'bench', 'results', 'profiles');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const roles = new Map();
  const r = await runOnce(CONTENDERS[0], 's1', ['--cpu-prof', `--cpu-prof-dir=${out}`, '--cpu-prof-interval=200'], {
    beforeGo: async (children) => children.forEach((c) => roles.set(c.pid, c.role)),
  });
  console.log(
    `S1 under --cpu-prof (${config.events} events): ${fmtInt(r.eventsPerSec)} events/s at B, ` +
      `${r.framesPerBatchAtB.toFixed(1)} events per JS batch at B (${r.batchesAtB} batches), ` +
      `A frames/writev ${r.framesPerWriteA.toFixed(1)}, hub frames/writev ${r.hubFramesPerWrite?.toFixed(1)}`,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const f of readdirSync(out).filter((x) => x.endsWith('.cpuprofile'))) {
    const pid = Number(f.split('.')[3]);
    const { totalMs, top } = topSelf(path.join(out, f));
    console.log(`\n${roles.get(pid) ?? '?'} (${f}): ${totalMs.toFixed(0)} ms sampled, self time`);
    for (const t of top) console.log(`  ${String(t.pct).padStart(5)}%  ${String(t.ms).padStart(8)} ms  ${t.fn}`);
  }
  console.log(`\nprofiles: ${path.relative(process.cwd(), out)} (open in Chrome DevTools › Performance)`);
}

/** `perf record` on the three Switchboard processes during S1 (native and JIT frames). */
async function runPerf() {
  const { spawn, execFileSync } = await import('node:child_process');
  const out = path.join(root, 'bench', 'results', 'perf');
  mkdirSync(out, { recursive: true });
  const data = path.join(out, 'perf.data');
  const roles = new Map();
  let rec;
  const scenario = option('--scenario', 's1');
  const r = await runOnce(CONTENDERS[0], scenario, ['--perf-basic-prof-only-functions'], {
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
  console.log(scenario === 's1' ? `S1 under perf: ${fmtInt(r.eventsPerSec)} events/s at B` : `S2 under perf: p50 ${fmtUs(r.p50)} µs`);
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

async function main() {
  if (!existsSync(path.join(root, 'dist', 'esm', 'index.js'))) {
    console.error('dist/ is missing: run `npm run build:native && npm run build:ts` first.');
    process.exit(1);
  }
  if (profile) return runProfile();
  if (flag('--perf')) return runPerf();
  const info = machine();
  console.log(
    `Switchboard vs net + msgpackr — ${info.cpus} CPUs, Node ${info.node}, msgpackr ${info.msgpackr}` +
      `${info.msgpackrNative ? ' (native string extraction)' : ''}, addon ${info.addon} (${info.addonBuildType || 'unknown build type'})`,
  );
  console.log(
    `S1: ${config.events} events, S2: ${config.calls} sequential invokes (+${config.warmup} warm-up), ` +
      `${config.reps} repetition(s), fresh processes each${quick ? ' [quick]' : ''}\n`,
  );
  const raw = {};
  const failures = [];
  const t0 = Date.now();
  for (let rep = 0; rep < config.reps; rep++) {
    for (const scenario of ['s1', 's2']) {
      for (const c of contenders) {
        const key = `${c.key}/${scenario}`;
        try {
          const r = await runOnce(c, scenario);
          (raw[key] ??= []).push(r);
          const brief =
            scenario === 's1'
              ? `${fmtInt(r.eventsPerSec)} events/s` + (r.received !== config.events || r.outOfOrder || r.bad ? ` [!] received ${r.received}, out of order ${r.outOfOrder}, bad ${r.bad}` : '')
              : `p50 ${fmtUs(r.p50)} µs, p99 ${fmtUs(r.p99)} µs` + (r.wrong ? ` [!] ${r.wrong} wrong results` : '');
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
    for (const field of Object.keys(runs[0])) {
      if (typeof runs[0][field] === 'number') agg[key][field] = summary(runs.map((r) => r[field]));
    }
  }
  const sb1 = agg['switchboard/s1'] ?? {};
  const sb2 = agg['switchboard/s2'] ?? {};

  const s1rows = contenders.map((c) => {
    const a = agg[`${c.key}/s1`] ?? {};
    return [
      c.label,
      cell(a.eventsPerSec, fmtInt),
      c.key === 'switchboard' ? '1.00×' : ratio(sb1.eventsPerSec, a.eventsPerSec),
      cell(a.e2eEventsPerSec, fmtInt),
      cell(a.rssA, fmtMiB),
      cell(a.rssB, fmtMiB),
      cell(a.rssMiddle, fmtMiB),
      c.key === 'switchboard' ? '1.00×' : ratio(sb1.rssB, a.rssB),
      cell(a.framesPerBatchAtB, (x) => x.toFixed(0)),
    ];
  });
  const s2rows = contenders.map((c) => {
    const a = agg[`${c.key}/s2`] ?? {};
    return [
      c.label,
      cell(a.p50, fmtUs),
      cell(a.p99, fmtUs),
      c.key === 'switchboard' ? '1.00×' : ratio(sb2.p50, a.p50),
      c.key === 'switchboard' ? '1.00×' : ratio(sb2.p99, a.p99),
      cell(a.callsPerSec, fmtInt),
    ];
  });
  const s1table = table(
    ['S1: small events, one way', 'events/s at B', 'SB ÷ this', 'events/s from A start', 'RSS A MiB', 'RSS B MiB', 'RSS hub/relay MiB', 'SB ÷ this (RSS B)', 'events/batch at B'],
    s1rows,
  );
  const s2table = table(['S2: sequential invoke', 'p50 µs', 'p99 µs', 'SB ÷ this (p50)', 'SB ÷ this (p99)', 'calls/s'], s2rows);
  console.log(`\nmedian of ${config.reps}${config.reps > 1 ? ' (min–max)' : ''}; "SB ÷ this": Switchboard's figure divided by the contender's\n`);
  console.log(s1table);
  console.log();
  console.log(s2table);
  const costRows = [];
  for (const scenario of ['s1', 's2']) {
    for (const c of contenders) {
      const a = agg[`${c.key}/${scenario}`];
      if (!a) continue;
      const f = (x) => x.toFixed(scenario === 's1' ? 2 : 1);
      costRows.push([
        `${scenario.toUpperCase()} ${c.label}`,
        cell(a.cpuUsA, f),
        cell(a.cpuUsMiddle, f),
        cell(a.cpuUsB, f),
        cell(a.cpuUsTotal, f),
        cell(a.ctxTotal, (x) => x.toFixed(scenario === 's1' ? 3 : 1)),
      ]);
    }
  }
  const costTable = table(
    ['CPU µs (all threads) per event (S1) / per call (S2)', 'A', 'hub/relay', 'B', 'total', 'context switches, total'],
    costRows,
  );
  console.log();
  console.log(costTable);
  const sbHub = agg['switchboard/s1'];
  if (sbHub) {
    const hubRuns = raw['switchboard/s1'];
    const dropped = hubRuns.reduce((s, r) => s + (r.hub?.eventsDropped ?? 0), 0);
    console.log(
      `\nSwitchboard S1 detail: A frames/writev ${cell(sbHub.framesPerWriteA, (x) => x.toFixed(1))}, ` +
        `hub frames/writev ${cell(sbHub.hubFramesPerWrite, (x) => x.toFixed(1))}, events per JS batch at B ` +
        `${cell(sbHub.framesPerBatchAtB, (x) => x.toFixed(1))}, A's emit loop ${cell(sbHub.emitPerSec, fmtInt)} events/s, ` +
        `hub dropped ${dropped} (highWaterMark ${config.hubHighWaterMark ?? 'default'})`,
    );
  }
  if (failures.length) console.log(`\n${failures.length} run(s) FAILED:\n${failures.map((f) => `  ${f.key} rep ${f.rep + 1}: ${f.error}`).join('\n')}`);
  console.log(`\n${elapsed.toFixed(1)} s; load average at start ${info.loadavgAtStart.join(' ')}, at end ${info.loadavgAtEnd.join(' ')} (other work on this machine skews the figures)`);

  const outDir = path.join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, quick ? 'first-quick.json' : 'first.json');
  writeFileSync(
    file,
    JSON.stringify({ machine: info, config, contenders, summary: agg, runs: raw, failures, tables: { s1: s1table, s2: s2table, costs: costTable }, elapsedSec: elapsed }, null, 2),
  );
  console.log(`results: ${path.relative(process.cwd(), file)}`);
  if (failures.length) process.exitCode = 1;
}

await main();
