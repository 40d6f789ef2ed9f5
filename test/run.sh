#!/usr/bin/env bash
# The whole test suite: builds the project with warnings as errors and runs every test.
# (`npm test` runs this; .ci/run runs it first, then the sanitizer lanes.)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHBOARD_WERROR=ON -DSWITCHBOARD_TESTS=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 120
# JavaScript: the multi-process suite (node:test) against the addon just built above. The loader
# would prefer prebuilds/<platform>/switchboard.node when present (a packaging artefact that may
# be older than the source), so the fresh build is named explicitly. node --test exits non-zero
# when any test fails or any test file crashes, and set -e makes that this script's status.
test -f build/addon/switchboard.node || { echo "build/addon/switchboard.node was not built" >&2; exit 1; }
npm run build:ts
SWITCHBOARD_NATIVE="$PWD/build/addon/switchboard.node" npm run test:js
# The public types: wrong topics and payloads must fail to compile (test/types).
npm run test:types
# Packaging: the tarball installs and works on a PATH with no compiler.
bash test/pack-smoke.sh
# Next.js (issue 13): the example app installed from the tarball, built once, run for real
# (next start, next dev, inside the hub's process, headless Chromium). Run once, here: not in the
# ASan lane (test/next/run.mjs says why).
SWITCHBOARD_NATIVE="$PWD/build/addon/switchboard.node" npm run --silent test:next
# Inside real Electron when a binary is present; here it says that it skipped, and why.
npm run --silent test:electron
