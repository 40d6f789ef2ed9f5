// Installs this example the way a user's app gets the package: from `npm pack`'s tarball (a
// copy in node_modules, not a symlink: Turbopack cannot follow a symlink out of the project).
//   node examples/next/prepare.mjs [--into <dir>] [--overlay <dir>] [--build]
// --into copies the app to <dir> first (the tests do, into a temporary folder); --overlay copies
// more files over it (the tests' extra routes); --build runs `next build`. Needs the package's
// dist/ (npm run build:ts). The tarball ships prebuilds/ when `npm run build:prebuild` made one;
// otherwise point SWITCHBOARD_NATIVE at build/addon/switchboard.node when running the app.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const here = import.meta.dirname;
const root = resolve(here, '../..');
const args = process.argv.slice(2);
const arg = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const app = resolve(arg('--into') ?? here);
const overlay = arg('--overlay');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const time = (label, fn) => {
  const t0 = performance.now();
  fn();
  console.log(`prepare: ${label} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
};

if (!existsSync(join(root, 'dist/esm/next.js'))) {
  throw new Error('prepare: dist/ is missing; run `npm run build:ts` in the repository first');
}
if (app !== here) {
  mkdirSync(app, { recursive: true });
  const skip = new Set(['node_modules', '.next', '.next-dev', 'switchboard-ipc.tgz', 'next-env.d.ts']);
  cpSync(here, app, { recursive: true, filter: (src) => !skip.has(relative(here, src).split(/[\\/]/)[0]) });
}
if (overlay) cpSync(resolve(overlay), app, { recursive: true });

time('npm pack', () => {
  const out = mkdtempSync(join(tmpdir(), 'sb-pack-'));
  execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', out], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const [file] = readdirSync(out).filter((f) => f.endsWith('.tgz'));
  rmSync(join(app, 'switchboard-ipc.tgz'), { force: true });
  renameSync(join(out, file), join(app, 'switchboard-ipc.tgz'));
  rmSync(out, { recursive: true, force: true });
});
// A fresh copy of the tarball's contents every time (npm would keep an older one of the same version).
rmSync(join(app, 'node_modules/switchboard-ipc'), { recursive: true, force: true });
time('npm install', () =>
  execFileSync(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'], {
    cwd: app,
    stdio: 'inherit',
  }),
);
if (args.includes('--build')) {
  time('next build', () =>
    execFileSync(process.execPath, [join(app, 'node_modules/next/dist/bin/next'), 'build'], {
      cwd: app,
      stdio: 'inherit',
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
    }),
  );
}
console.log(`prepare: ${app} is ready`);
