// Electron main: the hub, one window whose pages join with grants, and a utility process that
// does work and reports progress. `npx electron .` (see README.md).
import { app, BrowserWindow, utilityProcess } from 'electron';
import { buildSync } from 'esbuild';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EventBus } from 'switchboard-ipc/main';

const here = import.meta.dirname;
const e2e = process.env.SWITCHBOARD_E2E === '1'; // npm run test:electron in the repository

// The preload is bundled with `electron` as its only external (it runs sandboxed), the page for
// the browser; both at start, so that `npx electron .` is all it takes.
buildSync({ entryPoints: [path.join(here, 'preload.src.mjs')], outfile: path.join(here, 'out/preload.cjs'), bundle: true, platform: 'browser', format: 'cjs', external: ['electron'] });
buildSync({ entryPoints: [path.join(here, 'page.src.mjs')], outfile: path.join(here, 'out/page.js'), bundle: true, platform: 'browser', format: 'esm' });

const bus = new EventBus({ name: 'main' }); // the hub: Electron's main process
bus.handle('app:version', () => app.getVersion());

await app.whenReady();

// The utility process joins from the hub's environment.
const worker = utilityProcess.fork(path.join(here, 'worker.mjs'), [], { env: { ...process.env, ...bus.childEnv() }, serviceName: 'worker' });

const win = new BrowserWindow({ width: 640, height: 360, webPreferences: { preload: path.join(here, 'out/preload.cjs') } });
bus.attachWindow(win.webContents, {
  allow: { invoke: ['app:version', 'work:start'], subscribe: ['work:*'], emit: ['page:*'] },
});
if (e2e) {
  bus.on('page:e2e', ({ ok, detail }) => {
    console.log(`e2e: ${ok ? 'passed' : 'failed'}: ${detail}`);
    app.exit(ok ? 0 : 1);
  });
  setTimeout(() => {
    console.log('e2e: failed: no result within 30 s');
    app.exit(1);
  }, 30_000).unref();
}
await win.loadFile(path.join(here, 'index.html'), { query: e2e ? { e2e: '1' } : {} });

// With SWITCHBOARD_NEXT_DIR (examples/next, prepared and built: node examples/next/prepare.mjs
// --build), main also serves that app's handlers and starts it as this app's server: a child
// run as Node.js (ELECTRON_RUN_AS_NODE), on the bus through childEnv(), stopped when the bus
// closes; a second window shows it. Not run by test:electron (no Electron binary where this was
// built); test/next/ runs the same app with a Node.js hub.
if (process.env.SWITCHBOARD_NEXT_DIR && !e2e) {
  const dir = path.resolve(process.env.SWITCHBOARD_NEXT_DIR);
  const [{ startNextServer }, { serve }] = await Promise.all([
    import('switchboard-ipc/next'),
    import(pathToFileURL(path.join(dir, 'hub-handlers.mjs')).href),
  ]);
  serve(bus);
  const server = await startNextServer({ dir, bus });
  const web = new BrowserWindow({ width: 720, height: 480, title: 'Next.js on the bus' });
  await web.loadURL(server.url);
}

app.on('window-all-closed', async () => {
  worker.kill();
  await bus.close();
  app.quit();
});
