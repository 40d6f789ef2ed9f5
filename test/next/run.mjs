// The Next.js lane (issue 13): real Next.js (pinned in examples/next/package.json), installed
// from `npm pack`'s tarball, built once, shared by every test file of test/next/.
//   node test/next/run.mjs          (test/run.sh runs it after the JavaScript suites)
// 1. copies examples/next into a temporary folder, with test/next/fixture/ over it (an Edge
//    route), installs it (npm install: next, react, react-dom and the tarball) and runs
//    `next build` once;
// 2. runs `node --test test/next/` one file at a time (they start Next.js servers; the machine
//    has few cores), with SWITCHBOARD_NEXT_APP naming the app;
// 3. removes the folder.
// It is not part of the ASan lane (.ci/run runs only test/js/ a second time under ASan): each file
// starts `next` processes that would all load the ASan runtime, for no more native coverage than
// test/js/ has. The addon these tests use is SWITCHBOARD_NATIVE's (test/run.sh: the fresh build).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const here = import.meta.dirname;
const root = resolve(here, '../..');
const t0 = performance.now();
const app = join(mkdtempSync(join(tmpdir(), 'sb-next-')), 'app');
let status = 1;
try {
  const prep = spawnSync(
    process.execPath,
    [join(root, 'examples/next/prepare.mjs'), '--into', app, '--overlay', join(here, 'fixture'), '--build'],
    { stdio: 'inherit' },
  );
  if (prep.status !== 0) throw new Error(`test/next: preparing the app failed (status ${prep.status})`);
  console.log(`# next: app prepared in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const files = readdirSync(here).filter((f) => f.endsWith('.test.mjs')).map((f) => join(here, f));
  const run = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-timeout=180000', ...process.argv.slice(2), ...files],
    { stdio: 'inherit', env: { ...process.env, SWITCHBOARD_NEXT_APP: app, NEXT_TELEMETRY_DISABLED: '1' } },
  );
  status = run.status ?? 1;
} finally {
  rmSync(resolve(app, '..'), { recursive: true, force: true });
  console.log(`# next: lane done in ${((performance.now() - t0) / 1000).toFixed(1)} s, status ${status}`);
}
process.exit(status);
