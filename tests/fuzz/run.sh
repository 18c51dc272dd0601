#!/usr/bin/env bash
# tests/fuzz/run.sh BIN... — runs each libFuzzer binary (build-fuzz/fuzz_<target>, built by
# `make fuzz`) for FUZZ_SECONDS (default 60) over its committed seed corpus
# tests/fuzz/corpus/<target>/ (read only) and a working corpus build-fuzz/corpus/<target>/ (where
# new inputs go). A crash, a sanitizer report, a broken invariant, a leak or a timeout fails the
# target; the input is left in build-fuzz/artifacts/. Prints per target the executions and the
# coverage (cov: edges, ft: features, from libFuzzer's final lines), then
# "fuzz: N passed, N failed" (N = targets).
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK:-build-fuzz}
passed=0 failed=0
mkdir -p "$work/artifacts" "$work/logs"
for bin in "$@"; do
    name=$(basename "$bin")
    target=${name#fuzz_}
    seeds=tests/fuzz/corpus/$target
    corpus=$work/corpus/$target
    log=$work/logs/$target.log
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    echo "==> $name: ${secs}s (seeds: $seeds)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
            -max_len=8192 -artifact_prefix="$work/artifacts/$target-" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    covline=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -n 1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$covline")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$covline")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$covline")
    if [ "$rc" = 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant failed' "$log"; then
        echo "$name: ok, ${execs:-?} executions in ${secs}s, cov: ${cov:-?} ft: ${ft:-?} corp: ${corp:-?}"
        passed=$((passed + 1))
    else
        echo "$name: FAILED (exit $rc), ${execs:-?} executions, cov: ${cov:-?} ft: ${ft:-?}; log: $log"
        grep -E 'ERROR:|runtime error:|invariant failed|SUMMARY|Test unit written' "$log" | head -n 20
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
