#!/usr/bin/env bash
# The whole test suite: builds the project with warnings as errors and runs every test.
# (`npm test` runs this; .ci/run runs it first, then the sanitizer lanes.)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHBOARD_WERROR=ON -DSWITCHBOARD_TESTS=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 120
