// The utility process: joins as a client from childEnv() and serves 'work:start', reporting
// progress as events that the page (granted 'work:*') shows.
import { EventBus } from 'switchboard-ipc';

const bus = new EventBus({ name: 'worker' });
bus.handle('work:start', ({ steps = 20 } = {}) => {
  const id = Math.random().toString(36).slice(2, 8);
  let step = 0;
  const timer = setInterval(() => {
    step++;
    bus.emit('work:progress', { id, percent: Math.round((step / steps) * 100) });
    if (step === steps) {
      clearInterval(timer);
      bus.emit('work:done', { id, pid: process.pid });
    }
  }, 50);
  return { id };
});
