#!/usr/bin/env bash
# Integration tests: pytest + slixmpp + http.client against a real Prosody started for the session
# (tests/server/) on free loopback ports. Ends with "integration: N passed, N failed".
# Extra arguments go to pytest (e.g. -k cors). CR_KEEP_WORK=1 keeps the server dir for reading.
set -uo pipefail
cd "$(dirname "$0")"
py=/usr/bin/python3
out=$(mktemp)
trap 'rm -f "$out"' EXIT
[ $# -gt 0 ] || set -- .
"$py" -m pytest -p no:cacheprovider -q -rfE "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$out" | tail -n 1)
count() { grep -oE "[0-9]+ $1" <<<"$summary" | grep -oE '^[0-9]+' || echo 0; }
passed=$(count passed)
failed=$(( $(count failed) + $(count 'errors?') ))
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "integration: $passed passed, $failed failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
