// What the hub's process serves to the Next.js app (hub.mjs uses it, and so do the tests in
// test/next/): two handlers and a job runner that answers the server action's 'job:start' with
// 'job:progress' events and a 'job:done'.
const started = new Date();

export class DivisionByZeroError extends RangeError {
  constructor(a) {
    super(`cannot divide ${a} by zero`);
    this.name = 'DivisionByZeroError';
    this.code = 'E_DIVIDE_BY_ZERO';
  }
}

/**
 * @param {import('switchboard-ipc').EventBus} bus the hub's bus
 * @param {{ stepMs?: number }} [options] time between two progress events of a job
 * @returns {() => void} stops serving
 */
export function serve(bus, { stepMs = 200 } = {}) {
  const timers = new Set();
  const stops = [
    bus.handle('app:info', () => ({
      pid: process.pid,
      name: bus.name,
      started,
      uptimeMs: Date.now() - started.getTime(),
    })),
    bus.handle('math:divide', ({ a, b }) => {
      if (b === 0) throw new DivisionByZeroError(a);
      return a / b;
    }),
    bus.on('job:start', ({ id, steps }) => {
      let step = 0;
      const tick = () => {
        step++;
        const percent = Math.round((step / steps) * 100);
        if (step < steps) {
          bus.emit('job:progress', { id, step, steps, percent });
          const t = setTimeout(() => (timers.delete(t), tick()), stepMs);
          timers.add(t);
        } else {
          bus.emit('job:done', { id, steps, percent: 100 });
        }
      };
      tick();
    }),
  ];
  return () => {
    for (const stop of stops) stop();
    for (const t of timers) clearTimeout(t);
  };
}
