// The loader's promises: prebuilds/<platform>-<arch> first, then the local build, an explicit
// override first of all; and when nothing loads, an error that says what to do.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const loaderPath = path.join(root, 'dist/cjs/native-loader.cjs');

test('an installed package looks in prebuilds/<platform>-<arch> before any local build', () => {
  // An installed package: package.json and prebuilds/, no core/.
  const script = `
    const fs = require('fs'), os = require('os'), path = require('path');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-pkg-'));
    fs.mkdirSync(path.join(root, 'dist/cjs'), { recursive: true });
    fs.mkdirSync(path.join(root, 'prebuilds'));
    fs.writeFileSync(path.join(root, 'package.json'), '{}');
    fs.copyFileSync(${JSON.stringify(loaderPath)}, path.join(root, 'dist/cjs/native-loader.cjs'));
    const list = require(path.join(root, 'dist/cjs/native-loader.cjs')).candidates();
    console.log(JSON.stringify({ root, list }));
    fs.rmSync(root, { recursive: true, force: true });`;
  const env = { ...process.env };
  delete env.SWITCHBOARD_NATIVE;
  const { root: pkg, list } = JSON.parse(execFileSync(process.execPath, ['-e', script], { env }));
  assert.deepEqual(list, [
    path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'switchboard.node'),
    path.join(pkg, 'build', 'addon', 'switchboard.node'),
  ]);
});

test('in a source checkout the newer of the local build and a prebuilt binary goes first', () => {
  const { candidates } = require(loaderPath);
  // Without SWITCHBOARD_NATIVE: test/run.sh sets it to build/addon/switchboard.node, which would
  // put the local build first whichever binary is newer (after a first run's pack smoke test
  // left a newer prebuilt binary, this test failed on the second run).
  const override = process.env.SWITCHBOARD_NATIVE;
  delete process.env.SWITCHBOARD_NATIVE;
  let list;
  try {
    list = candidates();
  } finally {
    if (override !== undefined) process.env.SWITCHBOARD_NATIVE = override;
  }
  const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'switchboard.node');
  const local = path.join(root, 'build', 'addon', 'switchboard.node');
  assert.ok(list.includes(prebuilt) && list.includes(local), `both paths are candidates: ${list}`);
  const { statSync } = require('node:fs');
  const age = (f) => { try { return statSync(f).mtimeMs; } catch { return -1; } };
  const newest = age(local) > age(prebuilt) ? local : prebuilt;
  assert.equal(list.filter((f) => f === prebuilt || f === local)[0], newest);
});

test('SWITCHBOARD_NATIVE is tried first', () => {
  const out = execFileSync(
    process.execPath,
    ['-e', `console.log(JSON.stringify(require(${JSON.stringify(loaderPath)}).candidates()))`],
    { env: { ...process.env, SWITCHBOARD_NATIVE: '/nowhere/custom.node' } },
  );
  assert.equal(JSON.parse(out)[0], '/nowhere/custom.node');
});

test('when nothing loads, the error names every path tried and says what to do', () => {
  // Run from a copy of the loader in an empty directory: no prebuilds, no build.
  const script = `
    const fs = require('fs'), os = require('os'), path = require('path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-loader-'));
    fs.copyFileSync(${JSON.stringify(loaderPath)}, path.join(dir, 'native-loader.cjs'));
    try { require(path.join(dir, 'native-loader.cjs')).loadNative(); console.log('loaded?!'); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
    finally { fs.rmSync(dir, { recursive: true, force: true }); }`;
  const env = { ...process.env, SWITCHBOARD_NATIVE: '/nowhere/custom.node' };
  const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { env }));
  assert.equal(result.code, 'E_NATIVE_LOAD');
  assert.match(result.message, /\/nowhere\/custom\.node \(not found\)/);
  assert.match(result.message, /prebuilds/);
  assert.match(result.message, /npm run build:native/);
  assert.match(result.message, /switchboard-ipc\/renderer/);
});

test("copied into a Next.js build without withSwitchboard(), the loader's error says to add it (issue 13)", () => {
  // What Next.js does without serverExternalPackages: the loader lands in .next/server/chunks/,
  // with no binary near it. (Turbopack's '/ROOT/...' and webpack's '/' are checked below.)
  const script = `
    const fs = require('fs'), os = require('os'), path = require('path');
    const app = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-next-'));
    const chunks = path.join(app, '.next/server/chunks');
    fs.mkdirSync(chunks, { recursive: true });
    fs.copyFileSync(${JSON.stringify(loaderPath)}, path.join(chunks, 'native-loader.cjs'));
    try { require(path.join(chunks, 'native-loader.cjs')).loadNative(); console.log(JSON.stringify({ loaded: true })); }
    catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }
    finally { fs.rmSync(app, { recursive: true, force: true }); }`;
  const env = { ...process.env };
  delete env.SWITCHBOARD_NATIVE;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { env }));
  assert.equal(out.code, 'E_NATIVE_LOAD');
  assert.match(out.message, /withSwitchboard\(\) from 'switchboard-ipc\/next'/);
  assert.match(out.message, /serverExternalPackages/);
  const { bundledDirname } = require(loaderPath);
  for (const dir of ['/', '/ROOT', '/ROOT/node_modules/switchboard-ipc/dist/cjs', '/app/.next/server/app/api']) {
    assert.equal(bundledDirname(dir), true, dir);
  }
  assert.equal(bundledDirname(path.join(root, 'dist/cjs')), false);
  assert.equal(bundledDirname('/app/node_modules/switchboard-ipc/dist/cjs'), false);
});

test('when no prebuilt binary fits, the error names this platform and those the package has', () => {
  // An installed package that carries binaries for other platforms only.
  const script = `
    const fs = require('fs'), os = require('os'), path = require('path');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-other-'));
    fs.mkdirSync(path.join(root, 'dist/cjs'), { recursive: true });
    for (const p of ['plan9-mips', 'haiku-x64']) {
      fs.mkdirSync(path.join(root, 'prebuilds', p), { recursive: true });
      fs.writeFileSync(path.join(root, 'prebuilds', p, 'switchboard.node'), 'not for here');
    }
    fs.writeFileSync(path.join(root, 'package.json'), '{}');
    fs.copyFileSync(${JSON.stringify(loaderPath)}, path.join(root, 'dist/cjs/native-loader.cjs'));
    const loader = require(path.join(root, 'dist/cjs/native-loader.cjs'));
    try { loader.loadNative(); console.log('loaded?!'); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, shipped: loader.prebuiltPlatforms() })); }
    finally { fs.rmSync(root, { recursive: true, force: true }); }`;
  const env = { ...process.env };
  delete env.SWITCHBOARD_NATIVE;
  const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { env }));
  const here = `${process.platform}-${process.arch}`;
  assert.equal(result.code, 'E_NATIVE_LOAD');
  assert.deepEqual(result.shipped, ['haiku-x64', 'plan9-mips']);
  assert.ok(result.message.includes(`loaded for ${here}`), result.message);
  assert.ok(result.message.includes(`prebuilt binaries for haiku-x64, plan9-mips; none for ${here}`), result.message);
});

test('this checkout ships a binary for every platform package.json lists', () => {
  // package.json's os and cpu are what npm checks at install; every pair that names a platform
  // .ci/prebuild.sh builds must have its binary once the prebuilds exist (CI builds them all
  // before the pack smoke test; a plain npm test builds only this machine's).
  const pkg = JSON.parse(require('node:fs').readFileSync(path.join(root, 'package.json'), 'utf8'));
  const { prebuiltPlatforms } = require(loaderPath);
  const shipped = prebuiltPlatforms();
  const built = ['linux-x64', 'linux-arm64', 'win32-x64'];
  for (const p of built) {
    const [os, cpu] = p.split('-');
    assert.ok(pkg.os.includes(os) && pkg.cpu.includes(cpu), `package.json os/cpu leave out ${p}`);
  }
  for (const p of shipped) {
    const [os, cpu] = p.split('-');
    assert.ok(pkg.os.includes(os) && pkg.cpu.includes(cpu), `prebuilds/${p} exists but package.json os/cpu leave it out`);
  }
});
