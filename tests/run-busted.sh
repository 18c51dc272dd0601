#!/usr/bin/env bash
# busted specs under Lua 5.4 (/usr/bin/busted is a Lua 5.1 script), with Prosody's libraries and
# the built binding on the paths. Prints "busted: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
so_dir=${CR_NATIVE_DIR:-mod_conference_request}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
lua5.4 /usr/bin/busted --lpath="/usr/lib/prosody/?.lua;./mod_conference_request/?.lua" \
    --cpath="$so_dir/?.so;/usr/lib/prosody/?.so" -o TAP spec/ 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
ok=$(grep -cE '^ok [0-9]+' "$out")
notok=$(grep -cE '^not ok [0-9]+' "$out")
if [ "$rc" != 0 ] && [ "$notok" = 0 ]; then notok=1; fi
echo "busted: $ok passed, $notok failed"
[ "$rc" = 0 ] && [ "$notok" = 0 ]
