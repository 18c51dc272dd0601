#!/usr/bin/env bash
# run.sh [--smoke] — `make bench`: starts its own Prosody on loopback (tests/server/genconf.sh +
# the bench-only plugin tests/bench/plugins/mod_bench_trivial.lua), runs every pair in short
# interleaved repetitions, prints the table (tests/bench/README.md) and writes
# tests/bench/results/<date>.json.
#
#   1. XMPP door vs ceiling   crload: ping / trivial component / this module, same connections
#   2. HTTP door vs ceiling   wrk: GET health / trivial POST / module POST, same concurrency
#   3. join storm             crload batch: N concurrent requests for one new room over both doors
#   4. C core vs floor        corebench (+ instruction counts with callgrind)
#   5. scale                  corebench: 1,000,000 rooms in one registry
#   6. visitor-node choice    corebench: cost of one choice at 10 and 100 nodes
#   7. instructions per request of both doors: tests/bench/profile.sh (Prosody under callgrind)
#
# --smoke: tiny counts (seconds), no profile (7), results in build/bench/smoke/ instead of
# tests/bench/results/. Needs `make all` first (build/libcr.a); `make bench` does it.
# Environment overrides: BENCH_REPS (15), BENCH_SECS (1: seconds per XMPP/HTTP repetition),
# BENCH_PORT_BASE, BENCH_PROFILE=0 (skip 7), PROFILE_* (tests/bench/profile.sh).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

out_dir="$repo/build/bench"
mkdir -p "$out_dir"
if [ $smoke = 1 ]; then
    reps=${BENCH_REPS:-2}; secs=${BENCH_SECS:-0.3}; warm=0.1; first_warm=0.1; wrk_secs=1; wrk_warm=0
    conns=4; window=8; rooms=20; storm=200; storm_conns=4; storm_http_conns=4
    core_iters=2000; core_reps=3; scale_rooms=20000; cg_iters=200
    work="$out_dir/smoke"; results_dir="$work"
else
    # 15 short repetitions, trivial and module interleaved (ABBA), after a warm-up of each phase;
    # every later phase switch gets ${warm} s to settle before its measured window
    reps=${BENCH_REPS:-15}; secs=${BENCH_SECS:-1}; warm=0.3; first_warm=2; wrk_secs=${BENCH_SECS:-1}; wrk_warm=2
    conns=8; window=16; rooms=1000; storm=10000; storm_conns=50; storm_http_conns=100
    core_iters=200000; core_reps=5; scale_rooms=1000000; cg_iters=2000
    work="$out_dir/run"; results_dir="$repo/tests/bench/results"
fi
wrk_secs=${wrk_secs%.*}; [ "$wrk_secs" -ge 1 ] 2>/dev/null || wrk_secs=1
wrk_conns=32

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---- tools -----------------------------------------------------------------------------------
CC=${CC:-cc}
CFLAGS_BENCH="-O2 -g -std=c11 -Wall -Wextra -Werror -Wshadow -D_POSIX_C_SOURCE=200809L"
[ -f build/libcr.a ] || { echo "run.sh: build/libcr.a missing: run 'make all' first" >&2; exit 1; }
log "building tools into build/bench/"
$CC $CFLAGS_BENCH -o build/bench/crload tests/bench/crload.c
# shellcheck disable=SC2046
$CC $CFLAGS_BENCH -Inative -o build/bench/corebench tests/bench/corebench.c build/libcr.a \
    $(pkg-config --libs expat jansson 2>/dev/null || echo -lexpat -ljansson) -lm
for t in wrk valgrind curl prosody /usr/bin/python3; do
    command -v "$t" >/dev/null || { echo "run.sh: $t not found (make deps)" >&2; exit 1; }
done

rm -rf "$work"
mkdir -p "$work" "$results_dir"
raw="$work/raw"
mkdir -p "$raw"
cut -d' ' -f1-3 /proc/loadavg >"$raw/loadavg.start"   # other work on the machine skews results

# ---- server ----------------------------------------------------------------------------------
# shellcheck source=tests/bench/server.sh
. "$repo/tests/bench/server.sh"
server="$work/server"
bench_genconf "$work" "$server"
stop_server() { tests/server/stop.sh "$server" >/dev/null 2>&1 || true; }
trap stop_server EXIT
tests/server/start.sh "$server" >&2
base="http://127.0.0.1:$http_port"
server_pid=$(cat "$server/server.pid")
# The server's CPU seconds so far: the scheduler's run time of its threads (ns), else utime +
# stime in clock ticks (10 ms steps); crload --server-pid reads the same.
cpu_clock=stat
[ -r "/proc/$server_pid/schedstat" ] && cpu_clock=schedstat
cpu_secs() {
    if [ $cpu_clock = schedstat ]; then
        cat /proc/"$server_pid"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { printf "%.6f", ns / 1e9 }'
    else
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.6f", ($14 + $15) / hz }' "/proc/$server_pid/stat" 2>/dev/null || echo 0
    fi
}
curl -fsS -m 5 -H 'Host: localhost' "$base/bench/stats" >/dev/null ||
    { echo "run.sh: the bench plugin does not answer on $base/bench/stats" >&2; exit 1; }

user=(--user alice --pass secret)
crload=build/bench/crload

# ---- make the rooms ready --------------------------------------------------------------------
log "preparing $rooms ready rooms (one request each)"
$crload batch --port "$c2s_port" "${user[@]}" --conns "$conns" --window "$window" --to focus.localhost \
    --rooms "$rooms" --requests "$rooms" >"$raw/prepare.json"
cat "$raw/prepare.json" >&2

# ---- 1. XMPP pair ----------------------------------------------------------------------------
log "XMPP: ping / trivial / module, $conns connections x window $window, $reps x ${secs}s each, ABBA order (+${warm}s settling, ${first_warm}s warm-up in the first rep)"
$crload load --port "$c2s_port" "${user[@]}" --conns "$conns" --window "$window" --rooms "$rooms" \
    --phase ping:ping --phase trivial:conf:bench.localhost --phase module:conf:focus.localhost \
    --reps "$reps" --duration "$secs" --warmup "$warm" --first-warmup "$first_warm" --abba \
    --server-pid "$server_pid" --show-request \
    >"$raw/xmpp.jsonl" 2>"$raw/xmpp.err" ||
    { cat "$raw/xmpp.err" >&2; exit 1; }
cat "$raw/xmpp.err" >&2

# ---- 2. HTTP pair ----------------------------------------------------------------------------
log "HTTP: health / trivial POST / module POST, wrk -t1 -c$wrk_conns, $reps x ${wrk_secs}s each, ABBA order (+${wrk_warm}s warm-up each)"
run_wrk() {  # phase rep secs
    local phase=$1 rep=$2 d=$3 url method=POST
    case $phase in
        health) url="$base/conference-request/v1/health"; method=GET ;;
        trivial) url="$base/bench/trivial" ;;
        module) url="$base/conference-request/v1" ;;
    esac
    local line t0 t1
    t0=$(cpu_secs)
    line=$(BENCH_METHOD=$method BENCH_ROOMS=$rooms wrk -t1 -c"$wrk_conns" -d"${d}s" --timeout 10s \
        -s tests/bench/wrk.lua "$url" | sed -n 's/^BENCHJSON //p')
    t1=$(cpu_secs)
    [ -n "$line" ] || { echo "run.sh: wrk printed no result for $phase" >&2; return 1; }
    printf '{"phase":"%s","rep":%d,"server_cpu_secs":%s,"server_cpu_clock":"%s","wrk":%s}\n' "$phase" "$rep" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')" "$cpu_clock" "$line"
}
: >"$raw/http.jsonl"
if [ "$wrk_warm" -gt 0 ]; then
    for phase in health trivial module; do run_wrk "$phase" 0 "$wrk_warm" >/dev/null; done
fi
for rep in $(seq 1 "$reps"); do
    order="health trivial module"
    [ $((rep % 2)) = 0 ] && order="module trivial health"   # ABBA, as crload --abba
    for phase in $order; do
        run_wrk "$phase" "$rep" "$wrk_secs" >>"$raw/http.jsonl"
    done
done

# ---- 3. join storm ---------------------------------------------------------------------------
storm_room_prefix="storm$(date +%s)x"
storm_room="${storm_room_prefix}0@conference.localhost"
half=$((storm / 2))
health_json() { curl -fsS -m 5 -H 'Host: localhost' "$base/conference-request/v1/health" || echo '{}'; }
health_json >"$raw/health-before.json"
log "storm: $storm concurrent requests for $storm_room ($half XMPP over $storm_conns connections, $((storm - half)) HTTP over $storm_http_conns connections)"
$crload batch --port "$c2s_port" "${user[@]}" --conns "$storm_conns" --window "$half" --to focus.localhost \
    --rooms 1 --room-prefix "$storm_room_prefix" --requests "$half" \
    --http-port "$http_port" --http-requests $((storm - half)) --http-conns "$storm_http_conns" \
    --timeout 60 >"$raw/storm.json"
cat "$raw/storm.json" >&2
curl -fsS -m 5 -H 'Host: localhost' "$base/bench/stats?room=$storm_room" >"$raw/storm-observed.json"
health_json >"$raw/health-after.json"
cat "$raw/storm-observed.json" >&2; echo >&2

# ---- 4 + 5 + 6. C core vs floor, scale, visitor-node choice ---------------------------------
log "core: corebench ($core_iters iterations x $core_reps, scale $scale_rooms rooms)"
build/bench/corebench --iters "$core_iters" --reps "$core_reps" --scale-rooms "$scale_rooms" >"$raw/core.json"
log "core: instruction counts (valgrind --tool=callgrind, $cg_iters iterations each)"
: >"$raw/callgrind.jsonl"
for name in xml_floor xml_core json_floor json_core; do
    cg="$work/callgrind.$name.out"
    valgrind --tool=callgrind --callgrind-out-file="$cg" --collect-atstart=no --toggle-collect="loop_$name" \
        build/bench/corebench --only "$name" --iters "$cg_iters" >/dev/null 2>"$work/callgrind.$name.err" ||
        { cat "$work/callgrind.$name.err" >&2; exit 1; }
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$cg" | head -n1)
    [ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$cg" | head -n1)
    printf '{"name":"%s","iters":%d,"ir":%s}\n' "$name" "$cg_iters" "${ir:-0}" >>"$raw/callgrind.jsonl"
done

stop_server
trap - EXIT

# ---- 7. instructions per request of both doors: tests/bench/profile.sh ---------------------------
# Its own Prosody under callgrind (this run's server is stopped: same ports, no competition for
# the CPU). Its report stays in build/bench/profile/ (the second report); the ratios go into ours.
rm -f "$raw/profile.json" "$raw/profile.skipped" "$raw/profile.path"
if [ $smoke = 1 ]; then
    echo "smoke run: the callgrind profile is skipped (make bench runs it; make bench-profile alone)" >"$raw/profile.skipped"
elif [ "${BENCH_PROFILE:-1}" = 0 ]; then
    echo "BENCH_PROFILE=0: the callgrind profile is skipped (make bench-profile runs it alone)" >"$raw/profile.skipped"
else
    export PROFILE_REQUESTS=${PROFILE_REQUESTS:-2000} PROFILE_SECS=${PROFILE_SECS:-10} PROFILE_REPS=${PROFILE_REPS:-2}
    log "instructions: tests/bench/profile.sh (Prosody under callgrind, $PROFILE_REPS x trivial/module per door: XMPP $PROFILE_REQUESTS IQs, HTTP ${PROFILE_SECS}s; ~1.5 min on 2 cores), output in $work/profile.out"
    if tests/bench/profile.sh >"$work/profile.out" 2>"$work/profile.err"; then
        cp build/bench/profile/profile.json "$raw/profile.json"
        echo "$repo/build/bench/profile/profile.json" >"$raw/profile.path"
    else
        rc=$?
        tail -n 20 "$work/profile.err" >&2
        echo "tests/bench/profile.sh failed (exit $rc): see $work/profile.err" >"$raw/profile.skipped"
    fi
fi

# ---- report ----------------------------------------------------------------------------------
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
/usr/bin/python3 tests/bench/report.py --raw "$raw" --out "$results_dir/$stamp.json" \
    $([ $smoke = 1 ] && echo --smoke)
