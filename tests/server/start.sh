#!/usr/bin/env bash
# start.sh DIR — starts Prosody in the background with DIR/prosody.cfg.lua (written by genconf.sh)
# and waits until it is ready: the module's health route answers AND the c2s port accepts.
# Writes the pid to DIR/server.pid. On timeout (CR_START_TIMEOUT, default 20 s) or early exit it
# prints the log tail, stops what it started and fails.
set -euo pipefail

if [ $# -ne 1 ]; then echo "usage: $0 DIR" >&2; exit 2; fi
dir=$(cd "$1" && pwd)
cfg="$dir/prosody.cfg.lua"
[ -f "$cfg" ] || { echo "$0: $cfg missing (run genconf.sh first)" >&2; exit 1; }

http_port=$(sed -nE 's/^http_ports = \{ ([0-9]+) \}.*/\1/p' "$cfg")
c2s_port=$(sed -nE 's/^c2s_ports = \{ ([0-9]+) \}.*/\1/p' "$cfg")
[ -n "$http_port" ] && [ -n "$c2s_port" ] || { echo "$0: cannot read ports from $cfg" >&2; exit 1; }
health="http://127.0.0.1:$http_port/conference-request/v1/health"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
    echo "$0: a server is already running from $dir (pid $(cat "$dir/server.pid"))" >&2
    exit 1
fi
for p in "$http_port" "$c2s_port"; do
    if port_open "$p"; then
        echo "$0: port $p on 127.0.0.1 is already in use; choose another PORT_BASE" >&2
        exit 1
    fi
done

log_tail() {
    echo "---- $dir/prosody.log (tail) ----" >&2
    tail -n 40 "$dir/prosody.log" >&2 2>/dev/null || true
    echo "---- $dir/console.log (tail) ----" >&2
    tail -n 20 "$dir/console.log" >&2 2>/dev/null || true
}

setsid prosody -F --config "$cfg" >"$dir/console.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/server.pid"

deadline=$((SECONDS + ${CR_START_TIMEOUT:-20}))
while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$0: prosody (pid $pid) exited during startup" >&2
        log_tail; rm -f "$dir/server.pid"; exit 1
    fi
    if curl -fsS -o /dev/null -m 2 -H 'Host: localhost' "$health" 2>/dev/null && port_open "$c2s_port"; then
        break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "$0: prosody (pid $pid) not ready after ${CR_START_TIMEOUT:-20}s ($health, c2s $c2s_port)" >&2
        log_tail
        kill -TERM "$pid" 2>/dev/null || true
        sleep 1; kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/server.pid"; exit 1
    fi
    sleep 0.1
done
echo "prosody ready (pid $pid): c2s 127.0.0.1:$c2s_port, HTTP http://localhost:$http_port/"
