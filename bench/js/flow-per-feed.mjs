// Issue 11, test 6, as a measurement: pausing is per feed.
//
//   node bench/js/flow-per-feed.mjs [--reps 3] [--window-ms 3000] [--warmup-ms 1000]
//
// This process is the hub (default marks: 8 MiB per peer, resume at 4 MiB). Four clients, each
// its own process: S subscribes to 'slow' and is stopped with SIGSTOP; F subscribes to 'fast'
// and counts; P1 emits only 'slow', P2 only 'fast'. Both publishers send S1-sized events
// (bench/js/common.mjs makeEvent), 1000 per macrotask, and honour flow control (an emit() that
// returned false makes the next chunk wait for bus.drained()).
//
// Each repetition uses fresh processes and measures P2's rate at F (events received per second
// over the window, by F's clock) three times:
//   alone (before): P1 idle, S running and idle;
//   paused:         S stopped, P1 flooding it until P1 waits in drained() and sends nothing more
//                   (checked again at the end of the window);
//   alone (after):  P1 and S killed.
// ratio = paused ÷ the mean of the two alone windows.
// The hub's stallTimeoutMs is raised to 10 min so that P1 stays paused through the window
// (with the default 2 s, S would be declared stalled and P1 would resume, its events dropped).
// Prints the rates, the ratio paused ÷ alone per repetition and the median ratio; 1.0 means P2
// is not held back by P1's pause. Run with SWITCHBOARD_NATIVE set to a Release build's addon.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { makeEvent, CHUNK } from './common.mjs';

import { EventBus } from '../../dist/esm/index.js';
const self = fileURLToPath(import.meta.url);
const [role] = process.argv.slice(2);
const hr = () => process.hrtime.bigint();

// --- Client roles ----------------------------------------------------------------------------------

async function client(name) {
  const env = JSON.parse(process.env.FEED_HUB);
  const bus = new EventBus({ role: 'client', name, endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
  await bus.ready();
  process.on('disconnect', () => process.exit(0));
  return bus;
}

async function subscriber(topic) {
  const bus = await client(`feed-sub-${topic}`);
  let count = 0;
  bus.on(topic, () => {
    count++;
  });
  // The hub serves 'fence'; its reply proves the subscription is in place (frames in order).
  for (let attempt = 0; ; attempt++) {
    try {
      await bus.invoke('fence', undefined, { timeout: 5000 });
      break;
    } catch (err) {
      // The hub's own registration may not have reached its core yet.
      if (err?.code === 'E_NO_HANDLER' && attempt < 50) await new Promise((r) => setTimeout(r, 20));
      else throw err;
    }
  }
  process.on('message', (m) => {
    if (m.type === 'count') process.send({ type: 'count', count, at: String(hr()) });
  });
  process.send({ type: 'ready' });
}

async function publisher(topic) {
  const bus = await client(`feed-pub-${topic}`);
  let running = false;
  let full = false;
  let id = 0;
  let sent = 0;
  let waiting = false; // in bus.drained()
  const step = () => {
    if (!running) return;
    for (let end = id + CHUNK; id < end; id++) if (bus.emit(topic, makeEvent(id)) === false) full = true;
    sent = id;
    if (full) {
      full = false;
      waiting = true;
      bus.drained().then(
        () => {
          waiting = false;
          setImmediate(step);
        },
        () => {},
      );
    } else setImmediate(step);
  };
  process.on('message', (m) => {
    if (m.type === 'go' && !running) {
      running = true;
      setImmediate(step);
    } else if (m.type === 'stop') running = false;
    else if (m.type === 'stats') process.send({ type: 'stats', sent, waiting, outbound: bus.stats().outbound });
  });
  process.send({ type: 'ready' });
}

// --- Orchestrator ------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const opt = (name, d) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function spawn(r, hubEnv) {
  const child = fork(self, [r], { env: { ...process.env, FEED_HUB: JSON.stringify(hubEnv) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.next = (type) =>
    new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m.type !== type) return;
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(m);
      };
      const onExit = (code, sig) => reject(new Error(`${r} exited (${code ?? sig}) while we waited for '${type}'`));
      child.on('message', onMsg);
      child.once('exit', onExit);
    });
  return child;
}

async function rateAtF(f, windowMs) {
  f.send({ type: 'count' });
  const a = await f.next('count');
  await sleep(windowMs);
  f.send({ type: 'count' });
  const b = await f.next('count');
  return ((b.count - a.count) * 1e9) / Number(BigInt(b.at) - BigInt(a.at));
}

async function once(windowMs, warmupMs) {
  const hub = new EventBus({ role: 'hub', name: 'feed-hub', stallTimeoutMs: 600_000 });
  await hub.ready();
  hub.handle('fence', () => true);
  const hubEnv = hub.childEnv();
  const kids = {};
  try {
    for (const r of ['sub-slow', 'sub-fast', 'pub-slow', 'pub-fast']) {
      kids[r] = spawn(r, hubEnv);
      await kids[r].next('ready');
    }
    const { 'sub-slow': s, 'sub-fast': f, 'pub-slow': p1, 'pub-fast': p2 } = kids;
    const p1stats = async () => {
      p1.send({ type: 'stats' });
      return p1.next('stats');
    };
    p2.send({ type: 'go' });
    await sleep(warmupMs);
    const alone1 = await rateAtF(f, windowMs);

    // P1 floods the stopped S. It is paused once it waits in drained() and sends nothing more.
    // (The hub's `paused` count alone does not tell: F is slower than P2, so P2 is paused now
    // and then too, which is flow control doing its job on the fast feed.)
    s.kill('SIGSTOP');
    p1.send({ type: 'go' });
    const t0 = Date.now();
    for (let last = -1; ; ) {
      await sleep(100);
      const st = await p1stats();
      if (st.waiting && st.sent === last) break;
      last = st.sent;
      if (Date.now() - t0 > 30_000) throw new Error('P1 was not paused within 30 s');
    }
    const pausedAfterMs = Date.now() - t0;
    await sleep(warmupMs);
    const p1Before = await p1stats();
    const paused = await rateAtF(f, windowMs);
    const p1s = await p1stats();
    const after = hub.stats().hub;
    if (p1s.sent !== p1Before.sent || !p1s.waiting || after.stalls !== 0) {
      throw new Error(`P1 was not paused through the window (sent ${p1Before.sent} -> ${p1s.sent}, stalls ${after.stalls})`);
    }

    // Then P2 alone again, with P1 and S gone (SIGKILL; the hub forgets them), so that the two
    // alone windows bracket the paused one and a drift in the machine's load evens out.
    for (const k of [p1, s]) {
      k.kill('SIGCONT');
      k.kill('SIGKILL');
    }
    await sleep(warmupMs);
    const alone2 = await rateAtF(f, windowMs);
    const alone = (alone1 + alone2) / 2;
    return {
      alone,
      alone1,
      alone2,
      paused,
      ratio: paused / alone,
      pausedAfterMs,
      p1Sent: p1s.sent,
      p1OutboundMiB: +(p1s.outbound / 2 ** 20).toFixed(1),
      hubParkedMiB: +(after.parkedBytes / 2 ** 20).toFixed(1),
      hubQueuedMiB: +(after.queuedBytes / 2 ** 20).toFixed(1),
    };
  } finally {
    kids['sub-slow']?.kill('SIGCONT');
    for (const k of Object.values(kids)) k.kill('SIGKILL');
    await hub.close();
  }
}

async function main() {
  const reps = opt('--reps', 3);
  const windowMs = opt('--window-ms', 3000);
  const warmupMs = opt('--warmup-ms', 1000);
  console.log(`flow-per-feed: ${cpus().length} CPUs, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${reps} reps, window ${windowMs} ms`);
  const runs = [];
  for (let i = 0; i < reps; i++) {
    const r = await once(windowMs, warmupMs);
    runs.push(r);
    console.log(
      `  rep ${i + 1}: P2 alone ${Math.round(r.alone)} events/s (before ${Math.round(r.alone1)}, after ${Math.round(r.alone2)}), while P1 is paused ${Math.round(r.paused)} events/s, ratio ${r.ratio.toFixed(3)} ` +
        `(P1 paused ${r.pausedAfterMs} ms after it started; P1 sent ${r.p1Sent}, its outbound ${r.p1OutboundMiB} MiB; hub parked ${r.hubParkedMiB} MiB, queued ${r.hubQueuedMiB} MiB)`,
    );
  }
  const ratios = runs.map((r) => r.ratio).sort((a, b) => a - b);
  const mid = ratios.length >> 1;
  const med = ratios.length % 2 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2;
  console.log(`median ratio (P2 while P1 is paused ÷ P2 alone): ${med.toFixed(3)} (min ${ratios[0].toFixed(3)}, max ${ratios[ratios.length - 1].toFixed(3)}); load at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

if (role === 'sub-slow') await subscriber('slow');
else if (role === 'sub-fast') await subscriber('fast');
else if (role === 'pub-slow') await publisher('slow');
else if (role === 'pub-fast') await publisher('fast');
else await main();
