#!/usr/bin/env bash
# Runs the C test programs given as arguments; each prints "<name>: N passed, N failed".
# Ends with exactly "ctest: N passed, N failed" (N = assertions). A program that crashes or exits
# non-zero without reporting a failure counts as one failure.
set -uo pipefail
passed=0 failed=0
for bin in "$@"; do
    out=$("$bin" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    line=$(grep -E '^[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$bin: no summary (exit $rc)"
        failed=$((failed + 1)); continue
    fi
    p=$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
    f=$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then echo "$bin: exited $rc"; failed=$((failed + 1)); fi
done
echo "ctest: $passed passed, $failed failed"
[ "$failed" = 0 ]
