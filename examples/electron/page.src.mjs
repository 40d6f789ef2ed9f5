// The page: the page build of the bus (nothing from Node.js), waiting for its preload's port.
import { EventBus } from 'switchboard-ipc/renderer';

const bus = new EventBus();
const bar = document.querySelector('progress');
const log = (text) => (document.querySelector('#log').textContent += `${text}\n`);

bus.on('work:progress', ({ percent }) => (bar.value = percent));
bus.on('work:done', ({ pid }) => log(`done in the utility process (pid ${pid})`));
document.querySelector('button').addEventListener('click', () => bus.invoke('work:start', { steps: 20 }));

log(`Electron ${await bus.invoke('app:version')}, joined as ${bus.stats().peerId}`);

if (new URLSearchParams(location.search).get('e2e') === '1') {
  // npm run test:electron: the same traffic, checked, and the result sent to main.
  try {
    const done = new Promise((resolve) => bus.once('work:done', resolve));
    await bus.invoke('work:start', { steps: 5 });
    const { pid } = await done;
    const forbidden = await bus.invoke('admin:wipe').then(() => 'allowed', (e) => e.code);
    bus.emit('page:e2e', { ok: forbidden === 'E_FORBIDDEN' && pid > 0, detail: `worker pid ${pid}, admin:wipe ${forbidden}` });
  } catch (err) {
    bus.emit('page:e2e', { ok: false, detail: String(err) });
  }
}
