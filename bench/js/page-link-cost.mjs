// What main's JavaScript thread spends per page message: attachPort() against the hand-written
// Electron relay.
//
//   SWITCHBOARD_NATIVE=build-rel/addon/switchboard.node \
//     node bench/js/page-link-cost.mjs [--reps 3] [--events 200000] [--calls 5000] [--only events|invoke]
//
// This process stands for Electron's main. Its main thread is what is measured: the event loop's
// active time (performance.eventLoopUtilization(), in ms) from the moment main tells the page to
// start until the subscriber reports that it has everything, divided by the events (or calls).
// Two set-ups, fresh for each repetition and interleaved (switchboard first in odd repetitions,
// the baseline first in even ones):
//
//   switchboard: main is the hub (new EventBus({ role: 'hub' })). The page is a worker thread
//     running switchboard-ipc/renderer's EventBus over a worker_threads MessageChannel, whose
//     other end main attached with hub.attachPort(port1, { name: 'page', allow: { emit: ['p:*'],
//     invoke: ['p:*'] } }). The subscriber is a forked child process, a socket client of the
//     hub (hub.childEnv()), counting 'p:tick' and serving 'p:count'.
//   baseline: what an app writes by hand. The page posts each event as a plain object
//     { topic, data } on its MessagePort (as ipcRenderer.send / port.postMessage would); main's
//     listener checks the topic and posts the object on to the subscriber. Electron's
//     utilityProcess.postMessage is a structured clone over a port, so the fair stand-in for the
//     subscriber is a worker thread behind a worker_threads MessagePort (child.send() would be
//     JSON over a pipe, a different cost). Invokes are relayed the way ipcMain.handle code does:
//     main gives the request an id of its own, forwards it, and maps the reply back to the page.
//
// Measured per set-up, after an untimed warm-up (a tenth of the events, a tenth of the calls):
//   events: the page emits N small events ({ i, at: 1.5, s: 'abc' }) to 'p:tick', yielding with
//     setImmediate every 1000; switchboard's page honours flow control (if (!bus.emit(...))
//     await bus.drained()), the baseline has none to honour. The window ends when the
//     subscriber has counted all N (it tells main once, over its control channel). The
//     switchboard page's bus posts one Uint8Array of frames per turn (here 1000 frames, ~51 KB)
//     and main hands each to peer.submit(); the baseline's page posts one message per event.
//   invoke: the page calls 'p:count' M times, one after another (bus.invoke / request-response
//     over the port); the window ends when the page has the last reply.
// Printed per repetition and variant: events (calls) per second over the window, main's active
// µs per event (call), main thread's CPU µs (from /proc/self/task/TID/sched), and process.cpuUsage()
// of this whole process for reference, with the page worker's share split out (it lives in this
// process), and the baseline's subscriber worker's: the rest is the hub's I/O thread
// (switchboard) and V8's helper threads. Then the median µs per variant and the ratio switchboard ÷ baseline
// per repetition and its median (and the same ratio of main thread's CPU, which a loaded machine
// inflates less: active time includes the spells a runnable thread waits for a core); above 1
// means attachPort costs main more than the hand relay.
// Control messages (go, done) cross main's loop once per window, not per message. The machine's
// load average is printed at the start and the end; run it on a quiet machine with
// SWITCHBOARD_NATIVE set to a Release build's addon.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker, MessageChannel, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readFileSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';

const self = fileURLToPath(import.meta.url);
const hr = () => process.hrtime.bigint();
const CHUNK = 1000;
const TIMEOUT_MS = 120_000;

// --- Shared by the roles ------------------------------------------------------------------------

/** This thread's id (Linux): the page and subscriber workers report theirs so main can read their CPU. */
function threadId() {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return 0;
  }
}

/**
 * CPU µs of one thread of this process: se.sum_exec_runtime from /proc/self/task/TID/sched (ns
 * precision), else utime + stime from .../stat (clock ticks of 10 ms); NaN off Linux.
 */
function threadCpuUs(tid) {
  if (!tid) return NaN;
  try {
    const sched = readFileSync(`/proc/self/task/${tid}/sched`, 'utf8');
    const m = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(sched);
    if (m) return Number(m[1]) * 1000;
  } catch {}
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000; // fields 14 and 15; CLK_TCK = 100
  } catch {
    return NaN;
  }
}

const tick = (i) => ({ i, at: 1.5, s: 'abc' });

// --- The subscriber: a switchboard client in a child process ----------------------------------------

async function sbSubscriber() {
  const { EventBus } = await import('../../dist/esm/index.js');
  const bus = new EventBus({
    role: 'client',
    name: 'subscriber',
    endpoint: process.env.SWITCHBOARD_ENDPOINT,
    token: process.env.SWITCHBOARD_TOKEN,
  });
  await bus.ready();
  process.on('disconnect', () => process.exit(0));
  let count = 0;
  let target = Infinity;
  bus.on('p:tick', () => {
    if (++count === target) {
      target = Infinity;
      process.send({ type: 'done', count });
    }
  });
  bus.handle('p:count', () => count);
  // The hub serves 'fence'; its reply proves the subscription and the handler are in place.
  for (let attempt = 0; ; attempt++) {
    try {
      await bus.invoke('fence', undefined, { timeout: 5000 });
      break;
    } catch (err) {
      if (err?.code === 'E_NO_HANDLER' && attempt < 50) await new Promise((r) => setTimeout(r, 20));
      else throw err;
    }
  }
  process.on('message', (m) => {
    if (m.type !== 'await') return;
    if (count >= m.target) process.send({ type: 'done', count });
    else target = m.target;
  });
  process.send({ type: 'ready' });
}

// --- The pages: worker threads ------------------------------------------------------------------------

const yieldTurn = () => new Promise((r) => setImmediate(r));

async function sbPage(port) {
  const { EventBus } = await import('../../dist/esm/renderer.js');
  const bus = new EventBus({ port, name: 'page' });
  await bus.ready();
  parentPort.on('message', async (m) => {
    if (m.type === 'flood') {
      for (let i = 0; i < m.n; i++) {
        if (!bus.emit('p:tick', tick(i))) await bus.drained();
        if (i % CHUNK === CHUNK - 1) await yieldTurn();
      }
      parentPort.postMessage({ type: 'sent' });
    } else if (m.type === 'invoke') {
      let last;
      for (let i = 0; i < m.n; i++) last = await bus.invoke('p:count', i);
      parentPort.postMessage({ type: 'invoked', last });
    }
  });
  parentPort.postMessage({ type: 'ready', tid: threadId() });
}

async function basePage(port) {
  let next = 0;
  const pending = new Map();
  port.addEventListener('message', (ev) => {
    const m = ev.data;
    if (m.t === 'res') {
      const resolve = pending.get(m.id);
      pending.delete(m.id);
      resolve(m.result);
    }
  });
  port.start();
  const call = (name, arg) =>
    new Promise((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      port.postMessage({ t: 'req', id, name, arg });
    });
  parentPort.on('message', async (m) => {
    if (m.type === 'flood') {
      for (let i = 0; i < m.n; i++) {
        port.postMessage({ t: 'ev', topic: 'p:tick', data: tick(i) });
        if (i % CHUNK === CHUNK - 1) await yieldTurn();
      }
      parentPort.postMessage({ type: 'sent' });
    } else if (m.type === 'invoke') {
      let last;
      for (let i = 0; i < m.n; i++) last = await call('p:count', i);
      parentPort.postMessage({ type: 'invoked', last });
    }
  });
  parentPort.postMessage({ type: 'ready', tid: threadId() });
}

// The baseline's subscriber (the utility process's stand-in): counts events, answers requests.
function baseSubscriber(port) {
  let count = 0;
  let target = Infinity;
  port.addEventListener('message', (ev) => {
    const m = ev.data;
    if (m.t === 'ev') {
      if (m.topic === 'p:tick' && ++count === target) {
        target = Infinity;
        parentPort.postMessage({ type: 'done', count });
      }
    } else if (m.t === 'req') {
      port.postMessage({ t: 'res', id: m.id, result: count });
    }
  });
  port.start();
  parentPort.on('message', (m) => {
    if (m.type !== 'await') return;
    if (count >= m.target) parentPort.postMessage({ type: 'done', count });
    else target = m.target;
  });
  parentPort.postMessage({ type: 'ready', tid: threadId() });
}

// --- Orchestrator (main) ----------------------------------------------------------------------------

const args = process.argv.slice(2);
const opt = (name, d) => (args.includes(name) ? args[args.indexOf(name) + 1] : d);

/** The next message of `type` from a child process or worker, or an error if it exits first. */
function next(emitter, type, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: no '${type}' within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const onMsg = (m) => {
      if (m?.type === type) done(null, m);
    };
    const onExit = (code) => done(new Error(`${what} exited (${code}) while we waited for '${type}'`));
    const onError = (err) => done(err);
    const done = (err, m) => {
      clearTimeout(timer);
      emitter.off('message', onMsg);
      emitter.off('exit', onExit);
      emitter.off('error', onError);
      if (err) reject(err);
      else resolve(m);
    };
    emitter.on('message', onMsg);
    emitter.once('exit', onExit);
    emitter.once('error', onError);
  });
}

/** Runs `start` and waits for `finish`, measuring this thread's loop and CPU over the window. */
async function measure(count, tids, start, finish) {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuUs(process.pid);
  const t0 = tids.map(threadCpuUs);
  const w0 = hr();
  const done = finish();
  start();
  const end = await done;
  const ns = Number(hr() - w0);
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const mainCpu = threadCpuUs(process.pid) - main0;
  const threads = tids.map((t, i) => threadCpuUs(t) - t0[i]);
  const proc = cpu.user + cpu.system;
  return {
    rate: (count * 1e9) / ns,
    wallMs: ns / 1e6,
    activeUs: (elu.active * 1000) / count,
    utilization: elu.utilization,
    mainCpuUs: mainCpu / count,
    procUs: proc / count,
    threadsUs: threads.map((t) => t / count),
    restUs: (proc - mainCpu - threads.reduce((a, b) => a + b, 0)) / count,
    end,
  };
}

async function switchboardRun(n, calls, warm, which) {
  const { EventBus } = await import('../../dist/esm/index.js');
  const hub = new EventBus({ role: 'hub', name: 'main' });
  await hub.ready();
  hub.handle('fence', () => true);
  const sub = fork(self, ['sb-sub'], { env: { ...process.env, ...hub.childEnv() }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let page;
  try {
    await next(sub, 'ready', 'subscriber');
    const { port1, port2 } = new MessageChannel();
    hub.attachPort(port1, { name: 'page', allow: { emit: ['p:*'], invoke: ['p:*'] } });
    page = new Worker(self, { workerData: { role: 'sb-page', port: port2 }, transferList: [port2] });
    const { tid } = await next(page, 'ready', 'page');
    let expect = 0;
    const flood = async (count, timed) => {
      expect += count;
      const target = expect;
      const run = () =>
        measure(
          count,
          [tid],
          () => page.postMessage({ type: 'flood', n: count }),
          () => {
            const p = next(sub, 'done', 'subscriber');
            sub.send({ type: 'await', target });
            return p;
          },
        );
      const r = await run();
      if (r.end.count !== target) throw new Error(`the subscriber counted ${r.end.count}, expected ${target}`);
      return timed ? r : undefined;
    };
    const invoke = async (count, timed) => {
      const r = await measure(count, [tid], () => page.postMessage({ type: 'invoke', n: count }), () => next(page, 'invoked', 'page'));
      if (r.end.last !== expect) throw new Error(`'p:count' answered ${r.end.last}, expected ${expect}`);
      return timed ? r : undefined;
    };
    const out = {};
    if (which !== 'invoke') {
      await flood(warm.events, false);
      out.events = await flood(n, true);
    }
    if (which !== 'events') {
      await invoke(warm.calls, false);
      out.invoke = await invoke(calls, true);
    }
    out.hub = hub.stats().hub;
    return out;
  } finally {
    await page?.terminate();
    sub.kill('SIGKILL');
    await hub.close();
  }
}

async function baselineRun(n, calls, warm, which) {
  const toPage = new MessageChannel();
  const toSub = new MessageChannel();
  const subPort = toSub.port1;
  const pagePort = toPage.port1;
  // main's relay, the way an app writes it: the same EventTarget listener attachPort() uses on a
  // worker_threads port (lib/message-port-link.ts, listen()).
  let nextId = 0;
  const pending = new Map(); // main's request id -> the page's
  pagePort.addEventListener('message', (ev) => {
    const m = ev.data;
    if (m.t === 'ev') {
      if (typeof m.topic === 'string' && m.topic.startsWith('p:')) subPort.postMessage(m);
    } else if (m.t === 'req') {
      if (typeof m.name !== 'string' || !m.name.startsWith('p:')) return;
      const id = ++nextId;
      pending.set(id, m.id);
      subPort.postMessage({ t: 'req', id, name: m.name, arg: m.arg });
    }
  });
  subPort.addEventListener('message', (ev) => {
    const m = ev.data;
    if (m.t !== 'res') return;
    const id = pending.get(m.id);
    if (id === undefined) return;
    pending.delete(m.id);
    pagePort.postMessage({ t: 'res', id, result: m.result });
  });
  pagePort.start();
  subPort.start();
  const sub = new Worker(self, { workerData: { role: 'base-sub', port: toSub.port2 }, transferList: [toSub.port2] });
  const page = new Worker(self, { workerData: { role: 'base-page', port: toPage.port2 }, transferList: [toPage.port2] });
  try {
    const [{ tid: pageTid }, { tid: subTid }] = await Promise.all([next(page, 'ready', 'page'), next(sub, 'ready', 'subscriber')]);
    let expect = 0;
    const flood = async (count, timed) => {
      expect += count;
      const target = expect;
      const r = await measure(
        count,
        [pageTid, subTid],
        () => page.postMessage({ type: 'flood', n: count }),
        () => {
          const p = next(sub, 'done', 'subscriber');
          sub.postMessage({ type: 'await', target });
          return p;
        },
      );
      if (r.end.count !== target) throw new Error(`the subscriber counted ${r.end.count}, expected ${target}`);
      return timed ? r : undefined;
    };
    const invoke = async (count, timed) => {
      const r = await measure(count, [pageTid, subTid], () => page.postMessage({ type: 'invoke', n: count }), () => next(page, 'invoked', 'page'));
      if (r.end.last !== expect) throw new Error(`'p:count' answered ${r.end.last}, expected ${expect}`);
      return timed ? r : undefined;
    };
    const out = {};
    if (which !== 'invoke') {
      await flood(warm.events, false);
      out.events = await flood(n, true);
    }
    if (which !== 'events') {
      await invoke(warm.calls, false);
      out.invoke = await invoke(calls, true);
    }
    return out;
  } finally {
    await Promise.all([page.terminate(), sub.terminate()]);
    pagePort.close();
    subPort.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

function line(label, unit, r, rest) {
  const t = r.threadsUs;
  return (
    `    ${label.padEnd(11)} ${Math.round(r.rate).toString().padStart(7)} ${unit}/s (${r.wallMs.toFixed(0)} ms); ` +
    `main active ${f2(r.activeUs)} µs/${unit.slice(0, -1)} (utilization ${(r.utilization * 100).toFixed(0)}%), main thread CPU ${f2(r.mainCpuUs)} µs; ` +
    `process CPU ${f2(r.procUs)} µs = main + page ${f2(t[0])}` +
    (t.length > 1 ? ` + subscriber ${f2(t[1])}` : '') +
    ` + ${rest} ${f2(r.restUs)}`
  );
}

async function main() {
  const reps = Number(opt('--reps', 3));
  const n = Number(opt('--events', 200_000));
  const calls = Number(opt('--calls', 5000));
  const which = opt('--only', 'both');
  const warm = { events: Math.max(1000, Math.round(n / 10)), calls: Math.max(100, Math.round(calls / 10)) };
  console.log(
    `page-link-cost: ${cpus().length} CPUs, Node ${process.version}, addon ${process.env.SWITCHBOARD_NATIVE ?? '(default)'}, load ${load()}; ` +
      `${reps} reps, ${n} events, ${calls} calls (warm-up ${warm.events} events, ${warm.calls} calls, untimed)`,
  );
  const runs = [];
  for (let i = 0; i < reps; i++) {
    const order = i % 2 === 0 ? ['switchboard', 'baseline'] : ['baseline', 'switchboard'];
    const rep = {};
    for (const v of order) rep[v] = v === 'switchboard' ? await switchboardRun(n, calls, warm, which) : await baselineRun(n, calls, warm, which);
    runs.push(rep);
    console.log(`  rep ${i + 1} (load ${load()}):`);
    for (const kind of ['events', 'invoke']) {
      const s = rep.switchboard[kind];
      const b = rep.baseline[kind];
      if (!s || !b) continue;
      const unit = kind === 'events' ? 'events' : 'calls';
      console.log(line(`${kind} sb`, unit, s, 'hub I/O thread and V8 helpers'));
      console.log(line(`${kind} base`, unit, b, 'V8 helpers'));
      console.log(
        `    ${kind} ratio switchboard ÷ baseline: main active per ${unit.slice(0, -1)} ${(s.activeUs / b.activeUs).toFixed(2)}` +
          ` (main thread CPU ${(s.mainCpuUs / b.mainCpuUs).toFixed(2)})`,
      );
    }
  }
  console.log('median over the repetitions:');
  for (const kind of ['events', 'invoke']) {
    if (!runs[0].switchboard[kind]) continue;
    const unit = kind === 'events' ? 'event' : 'call';
    const sAct = median(runs.map((r) => r.switchboard[kind].activeUs));
    const bAct = median(runs.map((r) => r.baseline[kind].activeUs));
    const ratios = runs.map((r) => r.switchboard[kind].activeUs / r.baseline[kind].activeUs);
    const ratio = median(ratios);
    const cpuRatio = median(runs.map((r) => r.switchboard[kind].mainCpuUs / r.baseline[kind].mainCpuUs));
    console.log(
      `  ${kind}: switchboard ${Math.round(median(runs.map((r) => r.switchboard[kind].rate)))}/s, main active ${f2(sAct)} µs/${unit}` +
        ` (main thread CPU ${f2(median(runs.map((r) => r.switchboard[kind].mainCpuUs)))} µs, process CPU ${f2(median(runs.map((r) => r.switchboard[kind].procUs)))} µs); ` +
        `baseline ${Math.round(median(runs.map((r) => r.baseline[kind].rate)))}/s, main active ${f2(bAct)} µs/${unit}` +
        ` (main thread CPU ${f2(median(runs.map((r) => r.baseline[kind].mainCpuUs)))} µs, process CPU ${f2(median(runs.map((r) => r.baseline[kind].procUs)))} µs)`,
    );
    console.log(
      `    ratio switchboard ÷ baseline, main active per ${unit}: ${ratio.toFixed(2)} (min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)}); ` +
        `main thread CPU per ${unit}: ${cpuRatio.toFixed(2)}`,
    );
  }
  console.log(`load at end ${load()}`);
}

if (!isMainThread) {
  const { role, port } = workerData;
  if (role === 'sb-page') await sbPage(port);
  else if (role === 'base-page') await basePage(port);
  else if (role === 'base-sub') baseSubscriber(port);
} else if (process.argv[2] === 'sb-sub') {
  await sbSubscriber();
} else {
  await main();
}
