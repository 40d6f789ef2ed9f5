#!/usr/bin/env bash
# Runs the fuzz targets: test/fuzz/run.sh [seconds] [target...]   (default: 60 s, every target)
# Builds the libFuzzer programs with clang under ASan+UBSan into build-fuzz, runs each target for
# the given time from its seed corpus (test/fuzz/corpus/<target>, read-only; what the fuzzer adds
# goes to build-fuzz/corpus/<target>), prints execs/s per target, and fails on any crash. Crash
# inputs land in build-fuzz/crashes/<target>/; minimise one and commit it under
# test/fuzz/crashes/<target>/ with the fix (README.md says how). The value target is the
# JavaScript fuzzer (value_fuzz.mjs), run under node.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(frame envelope hub value)
jobs=2  # the machines this runs on are shared: see CONTRIBUTING/COMMON
out=build-fuzz
logs=$out/logs
mkdir -p "$logs"

cxx_targets=()
for t in "${targets[@]}"; do
  case $t in
    frame | envelope | hub) cxx_targets+=("$t") ;;
    value) ;;
    *) echo "run.sh: unknown target '$t' (frame, envelope, hub, value)" >&2; exit 2 ;;
  esac
done

if ((${#cxx_targets[@]})); then
  clangxx=$(command -v clang++-14 || command -v clang++ || true)
  [[ -n $clangxx ]] || { echo "run.sh: clang++ is needed for libFuzzer (.ci/deps installs it)" >&2; exit 1; }
  cmake -S . -B "$out" -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSWITCHBOARD_WERROR=ON -DSWITCHBOARD_SANITIZE=address -DSWITCHBOARD_FUZZ=ON \
    -DSWITCHBOARD_TESTS=OFF -DSWITCHBOARD_EXAMPLES=OFF -DSWITCHBOARD_ADDON=OFF >/dev/null
  cmake --build "$out" -j"$jobs" --target "${cxx_targets[@]/%/_fuzz}"
fi
if [[ " ${targets[*]} " == *" value "* ]]; then
  npm run --silent build:ts
fi

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  log=$logs/$t.log
  echo "== fuzz $t for ${seconds}s"
  touch "$out/crashes/$t/.started"  # crash files of earlier runs are not this run's
  status=0
  if [[ $t == value ]]; then
    node test/fuzz/value_fuzz.mjs --seconds "$seconds" --artifacts "$out/crashes/$t" >"$log" 2>&1 ||
      status=$?
  else
    # -timeout: an input running 25 s is a hang (the hub harness gives the hub 10 s per event).
    # The hub target runs without libFuzzer's per-input leak check: the hub's and the client's
    # I/O threads allocate in the background, so the malloc/free counts of an input never match
    # and libFuzzer would run a full LeakSanitizer pass after every input (80 instead of ~1500
    # execs/s). Leaks there are caught at exit, and by the ASan lane's replay (detect_leaks=1).
    extra=()
    [[ $t == hub ]] && extra=(-detect_leaks=0)
    "$out/test/fuzz/${t}_fuzz" "$out/corpus/$t" "test/fuzz/corpus/$t" "${extra[@]}" \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
      -artifact_prefix="$out/crashes/$t/" >"$log" 2>&1 || status=$?
  fi
  stat() { grep -E "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  if [[ $t == value ]]; then
    corpus=$(stat corpus_size)
  else
    # "#123456 DONE   cov: 812 ft: 2345 corp: 301/20Kb ..."
    corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  fi
  crashes=$(find "$out/crashes/$t" -type f ! -name '.*' -newer "$out/crashes/$t/.started" | wc -l)
  line="fuzz $t: ${execs:-?} execs in ${seconds}s, ${rate:-?} execs/s, corpus ${corpus:-?}, peak RSS ${rss:-?} MB, new crash files ${crashes}"
  if ((status != 0)) || [[ -z $execs ]]; then
    line+=" -- FAILED (exit $status), log $log"
    failed=$((failed + 1))
    tail -40 "$log" >&2
  fi
  echo "$line"
  summary+=("$line")
done
echo
printf '%s\n' "${summary[@]}"
echo "fuzz: $((${#targets[@]} - failed)) targets passed, $failed failed"
((failed == 0))
