// The hub's process for the Next.js example: owns the bus, serves hub-handlers.mjs, and starts
// the Next.js server as its child with startNextServer(). `node hub.mjs` runs the production
// build (`npm run build` first); `node hub.mjs --dev` runs `next dev`. Ctrl-C closes the bus,
// which stops the server.
import { EventBus } from 'switchboard-ipc';
import { NEXT_EXIT_TOPIC, startNextServer } from 'switchboard-ipc/next';
import { serve } from './hub-handlers.mjs';

const bus = new EventBus({ role: 'hub', name: 'hub' });
serve(bus);
bus.on(NEXT_EXIT_TOPIC, (exit) => {
  console.log(`next.js server ${exit.pid} exited (code ${exit.code}, signal ${exit.signal})`);
  if (!exit.stopped) {
    process.exitCode = 1;
    void bus.close();
  }
});
bus.on('job:progress', (p) => console.log(`job ${p.id}: ${p.percent}%`));

const t0 = performance.now();
const server = await startNextServer({
  dir: import.meta.dirname,
  dev: process.argv.includes('--dev'),
  port: Number(process.env.PORT) || 0,
});
console.log(`Next.js (${server.mode}, pid ${server.pid}) answers at ${server.url} after ${Math.round(performance.now() - t0)} ms`);
process.once('SIGINT', () => void bus.close());
process.once('SIGTERM', () => void bus.close());
