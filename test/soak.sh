#!/usr/bin/env bash
# Long runs that CI keeps short: the fault loops N times longer and every fuzz target for S
# seconds (0: no fuzzing). Usage: bash test/soak.sh [N=10] [S=300]. Prints what the tests measure.
set -euo pipefail
cd "$(dirname "$0")/.."
factor=${1:-10}
seconds=${2:-300}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHBOARD_WERROR=ON -DSWITCHBOARD_TESTS=ON >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target faults_test slow_subscriber_test
echo "== fault loops x$factor (kill -9 mid-invoke, reconnect storm)"
SWITCHBOARD_SOAK=$factor ./build/test/core/faults_test \
  --gtest_filter='Faults.ACallerKilled*:Faults.AReconnectStorm*'
echo "== slow subscriber (1,000,000 events)"
./build/test/core/slow_subscriber_test
if [[ "$seconds" -gt 0 ]]; then
  echo "== fuzzing: every target for $seconds s"
  bash test/fuzz/run.sh "$seconds"
fi
