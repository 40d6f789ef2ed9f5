#!/usr/bin/env bash
# Packaging smoke test: pack the package, install the tarball into a fresh project on a PATH
# with no compiler, and use it from ES modules and CommonJS, a worker thread included.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Build what the tarball ships first (prepack does the same for npm publish), then pack as is.
npm run --silent build:ts
npm run --silent build:prebuild >/dev/null
npm pack --pack-destination "$work" --silent --ignore-scripts >/dev/null
tarball=$(ls "$work"/switchboard-ipc-*.tgz)
echo "pack: $(basename "$tarball"), $(du -k "$tarball" | cut -f1) KiB"
listing=$(tar -tzf "$tarball")  # (grep -q on a pipe would SIGPIPE tar under pipefail)
grep -q 'package/prebuilds/linux-x64/switchboard.node' <<<"$listing" \
  || { echo "pack: the prebuilt linux-x64 binary is missing from the tarball" >&2; exit 1; }
if grep -qE 'package/(build|core|addon|node_modules)/' <<<"$listing"; then
  echo "pack: the tarball ships build trees or sources it should not" >&2
  exit 1
fi

# A PATH with node and npm only: no cc, c++, make or cmake, so nothing can be compiled at install.
mkdir -p "$work/bin" "$work/app"
for tool in node npm npx; do ln -s "$(command -v $tool)" "$work/bin/$tool"; done
for tool in cc c++ gcc g++ make cmake; do
  if PATH="$work/bin" command -v "$tool" >/dev/null 2>&1; then
    echo "pack: $tool is reachable on the clean PATH" >&2
    exit 1
  fi
done
cd "$work/app"
echo '{ "name": "pack-smoke", "version": "1.0.0", "private": true }' > package.json
env -i HOME="$HOME" PATH="$work/bin" npm install "$tarball" --no-audit --no-fund --silent

cat > esm.mjs <<'JS'
import { EventBus, detectProcess } from 'switchboard-ipc';
import { Worker } from 'node:worker_threads';
if (detectProcess() === 'worker') {
  const bus = new EventBus({ name: 'worker' });
  bus.handle('ping', (n) => n + 1);
  bus.emit('worker:up', process.pid);
} else {
  const bus = new EventBus({ role: 'hub', name: 'esm' });
  await bus.ready();
  const up = bus.once('worker:up');
  const worker = new Worker(new URL(import.meta.url));
  await up;
  const answer = await bus.invoke('ping', 41);
  if (answer !== 42) throw new Error(`expected 42, got ${answer}`);
  await worker.terminate();
  await bus.close();
  console.log('esm: import works, worker round trip 41 -> 42');
}
JS
cat > cjs.cjs <<'JS'
const { EventBus, TimeoutError } = require('switchboard-ipc');
(async () => {
  const bus = new EventBus({ role: 'hub', name: 'cjs' });
  await bus.ready();
  bus.handle('echo', (x) => x);
  const back = await bus.invoke('echo', { when: new Date(0), n: 10n });
  if (!(back.when instanceof Date) || back.n !== 10n) throw new Error('values did not round-trip');
  if (typeof TimeoutError !== 'function') throw new Error('typed errors are missing');
  await bus.close();
  console.log('cjs: require works, values round-trip');
})();
JS
timeout 30 env -i HOME="$HOME" PATH="$work/bin" node esm.mjs
timeout 30 env -i HOME="$HOME" PATH="$work/bin" node cjs.cjs
echo "pack: 2 passed, 0 failed"
