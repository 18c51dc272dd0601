#!/usr/bin/env bash
# stop.sh DIR — stops the Prosody that start.sh started from DIR (SIGTERM, then SIGKILL after 10 s).
set -uo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 DIR" >&2; exit 2; fi
pidfile="$1/server.pid"
[ -f "$pidfile" ] || { echo "$0: no server.pid in $1 (not running?)"; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$0: pid $pid did not stop after 10 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
fi
rm -f "$pidfile"
