#!/usr/bin/env bash
# Runs every suite (C unit tests, busted specs, integration tests against a real Prosody, a
# smoke run of the benchmarks so they cannot rot, a short libFuzzer run of every fuzz target:
# FUZZ_SECONDS each, 20 by default here) and
# prints one closing line that sums them up: "total: N passed, N failed".
# Contract with the suites: each prints, as its last summary, a line "<suite>: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
passed=0 failed=0 status=0
run_suite() {  # name, command...
    local name=$1; shift
    echo "==> $name"
    "$@" 2>&1 | tee "$log/$name.out"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$log/$name.out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no summary line (exit $rc): counted as 1 failure"
        failed=$((failed + 1)); status=1; return
    fi
    local p f
    p=$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" != 0 ] || [ "$f" != 0 ]; then status=1; fi
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then failed=$((failed + 1)); echo "$name: exited $rc"; fi
}
run_suite ctest tests/c/run.sh build/tests/test_*
run_suite busted tests/run-busted.sh
run_suite integration tests/integration/run.sh
run_suite benchsmoke tests/bench/smoke.sh
run_suite fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" make --no-print-directory fuzz
echo
echo "total: $passed passed, $failed failed"
exit $status
