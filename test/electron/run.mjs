// npm run test:electron: runs examples/electron inside real Electron with SWITCHBOARD_E2E=1 when
// an Electron binary is present, and says plainly when it skipped and why.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const app = path.join(root, 'examples/electron');

function electronBinary() {
  if (process.env.ELECTRON_PATH && existsSync(process.env.ELECTRON_PATH)) return process.env.ELECTRON_PATH;
  try {
    // The electron package exports the binary's path, and throws when the binary is missing.
    const bin = createRequire(path.join(app, 'package.json'))('electron');
    return typeof bin === 'string' && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

const bin = electronBinary();
if (!bin) {
  console.log(
    'test:electron: SKIPPED: no Electron binary. Install examples/electron (npm install there) on a machine that can ' +
      'download Electron, or set ELECTRON_PATH. These machines cannot download it; the Electron glue is tested against ' +
      'test/electron-standin instead (test/js/electron-windows-join-through-their-preload).',
  );
  process.exit(0);
}
if (!existsSync(path.join(app, 'node_modules/switchboard-ipc'))) {
  console.error('test:electron: run npm install in examples/electron first');
  process.exit(1);
}
const run = spawnSync(bin, [app], { env: { ...process.env, SWITCHBOARD_E2E: '1' }, stdio: 'inherit', timeout: 60_000 });
console.log(`test:electron: ${run.status === 0 ? 'passed' : `failed (exit ${run.status}, signal ${run.signal})`}`);
process.exit(run.status === 0 ? 0 : 1);
