// Contender "switchboard": the public EventBus, nothing else.
//
//   node switchboard.mjs <role: a | b | c | hub> <scenario> <n>
//
// A owns the hub (`role: 'hub'`, what an Electron main process does), so A -> B is one socket
// and C -> A -> B (S5) is routed by the hub's I/O thread. With BENCH_HUB_IN=process the hub is a
// process of its own (role 'hub' here) and A joins it as a client like B and C: the "separate
// hub" variant, A -> hub -> B, of the first measurement. Clients join with the hub's childEnv()
// (SWITCHBOARD_ENDPOINT / SWITCHBOARD_TOKEN). The hub serves 'bench.fence': B invokes it after
// subscribing or registering, and since the hub handles one peer's frames in order, the reply
// proves that the subscription (or handler) is in place.
//
// The senders honour flow control (issue 11) as a Node.js stream writer does: an emit() that
// returns false sets a flag, and `flow()` (called by common.mjs between chunks) then returns
// bus.drained(), so the next chunk waits until the bus's outbound buffer is back at its mark.
// The hub runs with the library's default marks unless BENCH_HWM says otherwise; a run that
// loses events fails.
//
// BENCH_SWITCHBOARD_DIST (a dist/ directory) loads another build of the library, e.g. an older
// tree's for run.mjs's 'switchboard-before' (with SWITCHBOARD_NATIVE naming that tree's addon).
// Its emit() may return nothing (before issue 11): only `=== false` counts as a full buffer.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { control, send, maxRssKiB, runRole } from './common.mjs';

const dist = process.env.BENCH_SWITCHBOARD_DIST;
const { EventBus } = await import(dist ? pathToFileURL(path.resolve(dist, 'esm', 'index.js')).href : '../../dist/esm/index.js');

const [role, scenario, nArg] = process.argv.slice(2);

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

async function startHub() {
  const hwm = process.env.BENCH_HWM ? Number(process.env.BENCH_HWM) : undefined;
  const bus = new EventBus({ role: 'hub', name: 'bench-hub', highWaterMark: hwm });
  await bus.ready();
  bus.handle('bench.fence', () => true);
  return bus;
}

async function startClient(name, env) {
  const bus = new EventBus({ role: 'client', name, endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
  await bus.ready();
  return bus;
}

/**
 * emit() and flow() for the sender's loop: emit stays one call and a compare; flow() waits only
 * after an emit() said false since the last flow() (drained() resolves at once if the buffer has
 * fallen back to the mark meanwhile).
 */
function sender(bus) {
  let full = false;
  return {
    emit: (topic, value) => {
      if (bus.emit(topic, value) === false) full = true;
    },
    flow:
      typeof bus.drained === 'function'
        ? () => {
            if (!full) return undefined;
            full = false;
            return bus.drained();
          }
        : undefined,
  };
}

const transport = {
  async serve() {
    const hubEnv = process.env.BENCH_HUB_ENV ? JSON.parse(process.env.BENCH_HUB_ENV) : null;
    const bus = hubEnv ? await startClient('bench-a', hubEnv) : await startHub();
    return {
      info: hubEnv ?? bus.childEnv(),
      ...sender(bus),
      invoke: (method, req) => bus.invoke(method, req),
      stats: () => bus.stats(),
    };
  },
  async join(info) {
    const bus = await startClient(`bench-${role}${process.env.BENCH_INDEX ?? ''}`, info);
    return {
      on: async (topic, fn) => {
        bus.on(topic, fn);
        await fence(bus);
      },
      handle: async (method, fn) => {
        bus.handle(method, fn);
        await fence(bus);
      },
      ...sender(bus),
      stats: () => bus.stats(),
    };
  },
};

if (role === 'hub') {
  const bus = await startHub();
  send({ type: 'ready', info: bus.childEnv() });
  control({ report: () => send({ type: 'report', maxRSS: maxRssKiB(), stats: bus.stats() }) });
} else {
  await runRole(role, scenario, Number(nArg), transport);
}
