// Finds and loads the compiled addon. CommonJS on purpose: it needs __dirname and require in both
// module formats (the ES module build imports this file too), and it is the one small, explicit
// place that decides where the binary comes from:
//   1. prebuilds/<platform>-<arch>/switchboard.node, shipped inside the npm package;
//   2. build/addon/switchboard.node, a local CMake build (npm run build:native).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function packageRoot() {
  // dist/esm/native-loader.cjs, dist/cjs/native-loader.cjs, or lib/ when run from source.
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'core'))) {
      return dir;
    }
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'prebuilds'))) {
      return dir;
    }
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..');
}

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

function candidates() {
  const root = packageRoot();
  const override = process.env.SWITCHBOARD_NATIVE;
  const list = [];
  if (override) list.push(path.resolve(override));
  const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'switchboard.node');
  const local = path.join(root, 'build', 'addon', 'switchboard.node');
  // In a source checkout (core/ is there) a prebuilt binary left from an earlier `npm pack` must
  // not shadow a newer local build; an installed package has no local build at all.
  const checkout = fs.existsSync(path.join(root, 'core'));
  if (checkout && mtime(local) > mtime(prebuilt)) list.push(local, prebuilt);
  else list.push(prebuilt, local);
  return list;
}

/**
 * Did a bundler (Next.js's Turbopack or webpack) copy this file into its output? Then __dirname
 * is not the package's folder: Turbopack makes it '/ROOT/...' or '/', webpack '/' or a folder
 * of the build (.next/server/...), and no binary is found next to it.
 */
function bundledDirname(dir) {
  const d = String(dir).split(path.sep).join('/');
  return d === '/' || d === '.' || d === '' || d === '/ROOT' || d.startsWith('/ROOT/') || /(^|\/)\.next(\/|$)/.test(d);
}

// The platforms this package carries a prebuilt binary for, e.g. ['linux-x64', 'win32-x64'].
function prebuiltPlatforms() {
  const dir = path.join(packageRoot(), 'prebuilds');
  try {
    return fs
      .readdirSync(dir)
      .filter((name) => fs.existsSync(path.join(dir, name, 'switchboard.node')))
      .sort();
  } catch {
    return [];
  }
}

function loadNative() {
  const tried = [];
  for (const file of candidates()) {
    if (!fs.existsSync(file)) {
      tried.push(`${file} (not found)`);
      continue;
    }
    try {
      return require(file);
    } catch (err) {
      tried.push(`${file} (${err && err.message ? err.message.split('\n')[0] : err})`);
    }
  }
  const here = `${process.platform}-${process.arch}`;
  const shipped = prebuiltPlatforms();
  const err = new Error(
    `switchboard-ipc: no native addon could be loaded for ${here} ` +
      `(Node-API 8, Node.js ${process.versions.node}).\n` +
      `Tried:\n  ${tried.join('\n  ')}\n` +
      (shipped.includes(here)
        ? `The prebuilt binary for ${here} is there but did not load (see above).\n`
        : `This package has prebuilt binaries for ${shipped.length ? shipped.join(', ') : 'no platform'}; ` +
          `none for ${here}.\n`) +
      'If you installed from npm, your platform has no prebuilt binary: build one from a ' +
      'source checkout with `npm run build:native` (needs CMake, a C++20 compiler, libasio-dev ' +
      'and libmsgpack-cxx-dev) and point SWITCHBOARD_NATIVE at the resulting switchboard.node. ' +
      'In an Electron renderer, load switchboard-ipc/renderer instead: pages cannot load native code.' +
      (bundledDirname(__dirname)
        ? `\nThis file was bundled (its folder is '${__dirname}', not the package's): in Next.js, wrap the ` +
          "config with withSwitchboard() from 'switchboard-ipc/next' (or add 'switchboard-ipc' to " +
          'serverExternalPackages in next.config) so that the server loads the package from node_modules.'
        : ''),
  );
  err.code = 'E_NATIVE_LOAD';
  throw err;
}

module.exports = { loadNative, candidates, bundledDirname, prebuiltPlatforms };
