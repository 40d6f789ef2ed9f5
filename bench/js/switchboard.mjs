// Contender "switchboard": the public EventBus, A -> hub -> B, the hub in its own process.
//
//   node switchboard.mjs <role: hub | a | b> <scenario: s1 | s2> <n>
//
// A and B join with the hub's childEnv() (SWITCHBOARD_ENDPOINT / SWITCHBOARD_TOKEN). The hub
// serves 'bench.fence': B invokes it after subscribing or registering, and since the hub handles
// one peer's frames in order, the reply proves that the subscription (or handler) is in place.
import { EventBus } from '../../dist/esm/index.js';
import { TOPIC, METHOD, control, send, now, maxRssKiB, emitAll, Receiver, invokeAll, percentiles } from './common.mjs';

const [role, scenario, nArg] = process.argv.slice(2);
const N = Number(nArg);

async function fence(bus) {
  for (let attempt = 0; ; attempt++) {
    try {
      await bus.invoke('bench.fence', undefined, { timeout: 5000 });
      return;
    } catch (err) {
      // The hub's own registration may not have reached its core yet.
      if (err?.code === 'E_NO_HANDLER' && attempt < 50) await new Promise((r) => setTimeout(r, 20));
      else throw err;
    }
  }
}

if (role === 'hub') {
  const hwm = process.env.BENCH_HWM ? Number(process.env.BENCH_HWM) : undefined;
  const bus = new EventBus({ role: 'hub', name: 'bench-hub', highWaterMark: hwm });
  await bus.ready();
  bus.handle('bench.fence', () => true);
  send({ type: 'ready', env: bus.childEnv() });
  control({
    report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: bus.stats() }),
  });
} else if (role === 'b') {
  const bus = new EventBus({ role: 'client', name: 'bench-b' });
  await bus.ready();
  let receiver;
  if (scenario === 's1') {
    receiver = new Receiver(N, (rep) => send({ type: 'done', ...rep, maxRSS: maxRssKiB(), stats: bus.stats() }));
    bus.on(TOPIC, (ev) => receiver.receive(ev));
  } else {
    bus.handle(METHOD, (req) => ({ n: req.n + 1 }));
  }
  await fence(bus);
  send({ type: 'ready' });
  control({ report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: bus.stats(), ...receiver?.report() }) });
} else if (role === 'a') {
  const bus = new EventBus({ role: 'client', name: 'bench-a' });
  await bus.ready();
  send({ type: 'ready' });
  control({
    go: async (msg) => {
      if (scenario === 's1') {
        const t0 = now();
        const tEnd = await emitAll(N, (ev) => bus.emit(TOPIC, ev));
        send({ type: 'sent', t0: String(t0), tEnd: String(tEnd) });
      } else {
        const { us, wrong, totalUs } = await invokeAll(N, msg.warmup, (i) => bus.invoke(METHOD, { n: i }));
        send({ type: 'done', ...percentiles(us), wrong, totalUs, maxRSS: maxRssKiB() });
      }
    },
    report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: bus.stats() }),
  });
} else {
  throw new Error(`unknown role ${role}`);
}
