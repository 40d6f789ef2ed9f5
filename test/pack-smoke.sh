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
# Every binary in prebuilds/ is carried, and those SWITCHBOARD_PACK_EXPECT names must be there
# (.ci/run cross-compiles linux-arm64 and win32-x64 first and expects all three), each of the
# right kind: a binary for another machine would only fail on the user's.
expect=" ${SWITCHBOARD_PACK_EXPECT:-linux-x64} "
for dir in prebuilds/*/; do
  [[ -f ${dir}switchboard.node ]] && expect+="$(basename "$dir") "
done
mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked" package/prebuilds 2>/dev/null || true
carried=()
for p in $(tr ' ' '\n' <<<"$expect" | sort -u); do
  grep -q "package/prebuilds/$p/switchboard.node" <<<"$listing" \
    || { echo "pack: the prebuilt $p binary is missing from the tarball" >&2; exit 1; }
  kind=$(file -b "$work/unpacked/package/prebuilds/$p/switchboard.node")
  case $p in
    linux-x64) want='ELF 64-bit LSB shared object, x86-64*' ;;
    linux-arm64) want='ELF 64-bit LSB shared object, ARM aarch64*' ;;
    win32-x64) want='PE32+ executable (DLL)*x86-64*' ;;
    darwin-x64) want='Mach-O 64-bit*x86_64*' ;;
    darwin-arm64) want='Mach-O 64-bit*arm64*' ;;
    *) want='*' ;;
  esac
  # shellcheck disable=SC2053 # $want is a glob
  [[ $kind == $want ]] || { echo "pack: prebuilds/$p/switchboard.node is $kind" >&2; exit 1; }
  carried+=("$p")
done
echo "pack: carries prebuilt binaries for ${carried[*]}"
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
