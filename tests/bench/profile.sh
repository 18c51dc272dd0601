#!/usr/bin/env bash
# profile.sh [--cache] — `make bench-profile`: where the server's instructions go.
#
# Starts its own Prosody (same config as tests/bench/run.sh: genconf.sh + the bench-only component
# bench.localhost) under `valgrind --tool=callgrind --instr-atstart=no`, makes the rooms ready,
# warms both doors up, then counts the instructions Prosody executes per answered request:
#
#   XMPP  crload batch of N conference IQs to bench.localhost (trivial) / focus.localhost (module)
#   HTTP  wrk -t1 -c32 POST /bench/trivial (trivial) / POST /conference-request/v1 (module)
#
# trivial and module alternate, REPS times each; every batch is bracketed by `callgrind_control -z`
# and `callgrind_control -d LABEL`, and the dump's total is divided by the requests answered. An
# XMPP batch's connections log in first (crload --wait-signal): the counters are zeroed after the
# logins, so SASL and password hashing are not counted.
# Prints per door: trivial and module instructions/request (median of reps), the difference, the
# ratio trivial/module (= module throughput / trivial throughput when the server is CPU-bound at
# equal IPC), and the top symbols by self cost outside /usr/bin/lua5.4 in the module dumps
# (lua5.4 is stripped: its functions are ??? addresses, shown as one share). Writes
# build/bench/profile/profile.json. Exit status non-zero when a batch had errors or missing answers.
#
# --cache  adds --cache-sim=yes --branch-sim=yes: also D1 read misses, I1 misses and mispredicted
#          branches per request (slower).
# Needs `make all` first; `make bench-profile` does it. Environment overrides:
#   PROFILE_REQUESTS (XMPP IQs per batch, 3000)  PROFILE_REPS (2)  PROFILE_SECS (wrk seconds, 10)
#   PROFILE_ROOMS (ready rooms, 1000)  BENCH_PORT_BASE (else a free one is picked)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
cache=0
for arg in "$@"; do
    case $arg in
        --cache) cache=1 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--cache]" >&2; exit 2 ;;
    esac
done
requests=${PROFILE_REQUESTS:-3000}
reps=${PROFILE_REPS:-2}
wrk_secs=${PROFILE_SECS:-10}
rooms=${PROFILE_ROOMS:-1000}
wrk_conns=32
conns=8; window=16
t_start=$SECONDS

log() { printf '[profile %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { echo "profile.sh: $*" >&2; exit 1; }

# ---- tools (crload built the way run.sh builds it) -------------------------------------------
CC=${CC:-cc}
CFLAGS_BENCH=(-O2 -g -std=c11 -Wall -Wextra -Werror -Wshadow -D_POSIX_C_SOURCE=200809L)
[ -f build/libcr.a ] || die "build/libcr.a missing: run 'make all' first"
for t in valgrind callgrind_control callgrind_annotate wrk curl lua5.4 /usr/bin/prosody /usr/bin/python3; do
    command -v "$t" >/dev/null || die "$t not found (make deps)"
done
mkdir -p build/bench
"$CC" "${CFLAGS_BENCH[@]}" -o build/bench/crload tests/bench/crload.c
crload=build/bench/crload

work="$repo/build/bench/profile"
server="$work/server"
cfg="$server/prosody.cfg.lua"
dumps="$work/callgrind"
cfg_re=$(printf '%s' "$cfg" | sed 's/[][\.*^$+?(){}|]/\\&/g')
vg_pattern="valgrind\.bin --tool=callgrind .*--config $cfg_re\$"
if pgrep -f "$vg_pattern" >/dev/null; then
    die "a profiled Prosody from $server is already running (pid $(pgrep -f "$vg_pattern" | tr '\n' ' '))"
fi
rm -rf "$work"
mkdir -p "$work" "$dumps"

# ---- server config (as run.sh) ---------------------------------------------------------------
# shellcheck source=tests/bench/server.sh
. "$repo/tests/bench/server.sh"
bench_genconf "$work" "$server"
if ! port_free "$c2s_port" || ! port_free "$http_port"; then die "port $c2s_port or $http_port is in use"; fi

# ---- Prosody under callgrind; always stopped at exit -----------------------------------------
vg_pid=""
stop_server() {
    local pids p
    pids=$( { [ -n "$vg_pid" ] && echo "$vg_pid"; pgrep -f "$vg_pattern"; } 2>/dev/null | sort -u || true)
    for p in $pids; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then
            echo "profile.sh: pid $p did not stop after 30 s, killing it" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
}
trap stop_server EXIT
trap 'exit 130' INT TERM HUP

vg_opts=(--tool=callgrind --instr-atstart=no "--callgrind-out-file=$dumps/cg.%p" "--log-file=$work/valgrind.log")
[ $cache = 1 ] && vg_opts+=(--cache-sim=yes --branch-sim=yes)
log "starting Prosody under valgrind ${vg_opts[*]}"
setsid valgrind "${vg_opts[@]}" lua5.4 /usr/bin/prosody -F --config "$cfg" \
    >"$work/console.log" 2>&1 </dev/null &
vg_pid=$!   # setsid does not fork here (no job control: the child is not a group leader)

health="http://127.0.0.1:$http_port/conference-request/v1/health"
deadline=$((SECONDS + 120))
until curl -fsS -o /dev/null -m 2 -H 'Host: localhost' "$health" 2>/dev/null && ! port_free "$c2s_port"; do
    if ! kill -0 "$vg_pid" 2>/dev/null; then
        tail -n 30 "$work/console.log" "$work/valgrind.log" >&2 || true
        die "Prosody under valgrind (pid $vg_pid) exited during startup"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$work/console.log" >&2 || true; die "not ready after 120 s ($health)"; }
    sleep 1
done
# the pid callgrind_control talks to: the valgrind process running this config
found=$(pgrep -f "$vg_pattern" || true)
if ! grep -qx "$vg_pid" <<<"$found"; then
    [ "$(wc -w <<<"$found")" = 1 ] || die "cannot identify the valgrind process (\$!=$vg_pid, pgrep: $found)"
    vg_pid=$found
fi
log "ready after $((SECONDS - t_start)) s (valgrind pid $vg_pid)"

user=(--user alice --pass secret)
batch() {  # TO N OUT
    $crload batch --port "$c2s_port" "${user[@]}" --conns "$conns" --window "$window" --to "$1" \
        --rooms "$rooms" --requests "$2" --timeout 300 >"$3"
}
run_wrk() {  # PATH SECS OUT
    BENCH_METHOD=POST BENCH_ROOMS=$rooms wrk -t1 -c"$wrk_conns" -d"$2s" --timeout 30s \
        -s tests/bench/wrk.lua "http://127.0.0.1:$http_port$1" | sed -n 's/^BENCHJSON //p' >"$3"
    [ -s "$3" ] || die "wrk printed no result for $1"
}

log "preparing $rooms ready rooms, warming up both doors"
batch focus.localhost "$rooms" "$work/prepare.json"
batch bench.localhost 500 "$work/warm-xmpp-trivial.json"
batch focus.localhost 500 "$work/warm-xmpp-module.json"
run_wrk /bench/trivial 3 "$work/warm-http-trivial.json"
run_wrk /conference-request/v1 3 "$work/warm-http-module.json"

# ---- measured batches ------------------------------------------------------------------------
cg_ctl() {  # callgrind_control ARGS… for the profiled Prosody (vgdb chatter goes to a log)
    callgrind_control "$@" "$vg_pid" >>"$work/callgrind_control.log" 2>&1 ||
        { tail -n 5 "$work/callgrind_control.log" >&2; die "callgrind_control $* failed"; }
}
# An XMPP batch whose logins are not counted: crload logs its connections in, waits for SIGUSR1;
# the counters are zeroed in between. Returns crload's exit status.
measured_batch() {  # TO N OUT
    local pid rc=0 deadline=$((SECONDS + 300))
    $crload batch --port "$c2s_port" "${user[@]}" --conns "$conns" --window "$window" --to "$1" \
        --rooms "$rooms" --requests "$2" --timeout 300 --wait-signal >"$3" 2>"$3.err" &
    pid=$!
    until grep -q 'waiting for SIGUSR1' "$3.err" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" || true
            cat "$3.err" >&2
            die "crload did not log in ($1)"
        fi
        sleep 0.1
    done
    cg_ctl -z
    kill -USR1 "$pid"
    wait "$pid" || rc=$?
    return $rc
}
cg_ctl -i on
manifest="$work/runs.jsonl"
: >"$manifest"
measure() {  # DOOR PHASE REP
    local door=$1 phase=$2 rep=$3 label="$1-$2-$3" out="$work/$1-$2-$3.json" f rc=0 load
    case $door/$phase in
        xmpp/trivial) measured_batch bench.localhost "$requests" "$out" || rc=$? ;;
        xmpp/module) measured_batch focus.localhost "$requests" "$out" || rc=$? ;;
        http/trivial) cg_ctl -z; run_wrk /bench/trivial "$wrk_secs" "$out" ;;
        http/module) cg_ctl -z; run_wrk /conference-request/v1 "$wrk_secs" "$out" ;;
    esac
    cg_ctl -d "$label"
    f=""
    for _ in $(seq 1 100); do
        f=$(grep -lx "desc: Trigger: dump $label" "$dumps"/cg."$vg_pid".* 2>/dev/null | head -n1 || true)
        [ -n "$f" ] && break
        sleep 0.1
    done
    [ -n "$f" ] || die "no callgrind dump for $label in $dumps"
    callgrind_annotate --threshold=100 --auto=no "$f" >"$f.annotate" 2>/dev/null
    load=$(cat "$out" 2>/dev/null || true)
    [ -n "$load" ] || load='{}'
    printf '{"door":"%s","phase":"%s","rep":%d,"label":"%s","dump":"%s","crload_rc":%d,"load":%s}\n' \
        "$door" "$phase" "$rep" "$label" "$f" "$rc" "$load" >>"$manifest"
    log "$label: ${load:0:150}"
}
log "XMPP: $reps x (trivial, module), $requests IQs each (~25 s per batch under callgrind)"
for rep in $(seq 1 "$reps"); do
    measure xmpp trivial "$rep"
    measure xmpp module "$rep"
done
log "HTTP: $reps x (trivial, module), wrk -t1 -c$wrk_conns -d${wrk_secs}s each"
for rep in $(seq 1 "$reps"); do
    measure http trivial "$rep"
    measure http module "$rep"
done

stop_server
trap - EXIT

# ---- report ----------------------------------------------------------------------------------
/usr/bin/python3 - "$manifest" "$work/profile.json" "$cache" "$requests" "$reps" "$wrk_secs" "$rooms" \
    "$((SECONDS - t_start))" <<'PY'
import json, os, re, statistics, subprocess, sys

manifest, out, cache, n_xmpp, reps, wrk_secs, rooms, elapsed = sys.argv[1:]
cache = cache == "1"
runs = [json.loads(l) for l in open(manifest)]
LUA = "/usr/bin/lua5.4"
TOP = 15
field = re.compile(r"\s*(?:([\d,]+)(?:\s+\(\s*[\d.]+%\))?|\.)(?=\s)")

def parse(path):
    """callgrind_annotate --threshold=100 output: events, totals, self cost per file:function."""
    events, totals, funcs = None, None, {}
    for line in open(path):
        if line.startswith("Events shown:"):
            events = line.split(":", 1)[1].split()
            continue
        if events is None or not line.strip() or line.startswith("-"):
            continue
        pos, vals = 0, []
        for _ in events:
            m = field.match(line, pos)
            if not m:
                break
            vals.append(int(m.group(1).replace(",", "")) if m.group(1) else 0)
            pos = m.end()
        if len(vals) != len(events):
            continue
        name = line[pos:].strip()
        if name == "PROGRAM TOTALS":
            totals = dict(zip(events, vals))
        elif name:
            m = re.match(r"(.*?)('\d+)?( \[(.*)\])?$", name)
            key = (m.group(1), m.group(4) or "?")   # fn'2 (recursion level) counted with fn
            d = funcs.setdefault(key, dict.fromkeys(events, 0))
            for e, v in zip(events, vals):
                d[e] += v
    if totals is None:
        raise SystemExit(f"profile.sh: no PROGRAM TOTALS in {path}")
    return events, totals, funcs

failures = []
for r in runs:
    ld = r["load"]
    if r["door"] == "xmpp":
        r["requests"] = ld.get("answered", 0)
        bad = r["crload_rc"] != 0 or ld.get("errors", 1) or ld.get("missing", 1) \
            or ld.get("answered") != ld.get("requests") or ld.get("not_ready", 0)
    else:
        r["requests"] = ld.get("requests", 0)
        bad = ld.get("errors", 1) or ld.get("status_errors", 1) or not r["requests"]
    if bad:
        failures.append(f'{r["label"]}: {json.dumps(ld)}')
    r["events"], r["totals"], r["funcs"] = parse(r["dump"] + ".annotate")
    n = max(r["requests"], 1)
    r["per_request"] = {e: v / n for e, v in r["totals"].items()}

def med(xs):
    return statistics.median(xs) if xs else 0.0

report = {"requests_per_xmpp_batch": int(n_xmpp), "login_excluded": True, "reps": int(reps), "wrk_secs": int(wrk_secs),
          "wrk_conns": 32, "rooms": int(rooms), "cache_sim": cache, "elapsed_secs": int(elapsed),
          "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
          "machine": {"nproc": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
                      "uname": " ".join(os.uname())},
          "doors": {}, "runs": []}
for r in runs:
    report["runs"].append({k: r[k] for k in ("door", "phase", "rep", "requests", "totals", "load")}
                          | {"dump": os.path.basename(r["dump"]),
                             "per_request": {e: round(v, 1) for e, v in r["per_request"].items()}})

def fmt(x):
    return f"{x:,.0f}"

print()
print("Prosody instructions per answered request (callgrind Ir, server process only; median of "
      f"{reps} reps)")
hdr = f'{"door":<6}{"trivial":>12}{"module":>12}{"module-trivial":>16}{"trivial/module":>16}   reps trivial | module'
print(hdr)
print("-" * len(hdr))
for door in ("xmpp", "http"):
    rs = {p: [r for r in runs if r["door"] == door and r["phase"] == p] for p in ("trivial", "module")}
    if not rs["trivial"] or not rs["module"]:
        continue
    d = {"requests": {p: [r["requests"] for r in rs[p]] for p in rs}}
    for p in rs:
        d[p] = {e: med([r["per_request"][e] for r in rs[p]]) for e in rs[p][0]["events"]}
        d[p + "_reps_ir"] = [round(r["per_request"]["Ir"]) for r in rs[p]]
    ti, mi = d["trivial"]["Ir"], d["module"]["Ir"]
    d["ir_difference"] = mi - ti
    d["ir_ratio_trivial_over_module"] = ti / mi if mi else 0
    print(f'{door.upper():<6}{fmt(ti):>12}{fmt(mi):>12}{mi - ti:>+16,.0f}{ti / mi:>16.3f}   '
          f'{" ".join(fmt(x) for x in d["trivial_reps_ir"])} | {" ".join(fmt(x) for x in d["module_reps_ir"])}')
    report["doors"][door] = d
print("  requests/batch: XMPP " + " ".join(str(r["requests"]) for r in runs if r["door"] == "xmpp")
      + "; HTTP (wrk) " + " ".join(str(r["requests"]) for r in runs if r["door"] == "http"))
print("  trivial/module = throughput-equivalent ratio (module req/s / trivial req/s at equal IPC)")

if cache:
    print()
    print("Cache and branch simulation per request (median): D1 read misses (D1mr), I1 misses (I1mr), "
          "mispredicted branches (Bcm+Bim)")
    print(f'{"door":<6}{"phase":<9}{"D1mr":>10}{"I1mr":>10}{"Bcm+Bim":>10}{"Dr":>12}{"Bc+Bi":>12}')
    for door, d in report["doors"].items():
        for p in ("trivial", "module"):
            x = d[p]
            print(f'{door.upper():<6}{p:<9}{fmt(x.get("D1mr", 0)):>10}{fmt(x.get("I1mr", 0)):>10}'
                  f'{fmt(x.get("Bcm", 0) + x.get("Bim", 0)):>10}{fmt(x.get("Dr", 0)):>12}'
                  f'{fmt(x.get("Bc", 0) + x.get("Bi", 0)):>12}')
            x["mispredicted_branches"] = x.get("Bcm", 0) + x.get("Bim", 0)

for door, d in report["doors"].items():
    rs = [r for r in runs if r["door"] == door and r["phase"] == "module"]
    n = sum(r["requests"] for r in rs)
    total = sum(r["totals"]["Ir"] for r in rs)
    funcs, objs = {}, {}
    for r in rs:
        for (fn, obj), c in r["funcs"].items():
            funcs[(fn, obj)] = funcs.get((fn, obj), 0) + c["Ir"]
            objs[obj] = objs.get(obj, 0) + c["Ir"]
    lua = objs.get(LUA, 0)
    top = sorted(((c, fn, obj) for (fn, obj), c in funcs.items() if obj != LUA), reverse=True)[:TOP]
    print()
    print(f"{door.upper()} module, top {TOP} symbols by self cost outside {LUA} "
          f"({len(rs)} dumps, {n} requests, Ir/request and share of all):")
    print(f"  {LUA} is stripped (its functions show as ???:0x... addresses): "
          f"{lua / max(n, 1):,.0f} Ir/request = {100 * lua / max(total, 1):.1f}% of the total, not listed")
    for c, fn, obj in top:
        print(f"  {c / max(n, 1):>9,.0f} {100 * c / max(total, 1):5.1f}%  {fn}  [{os.path.basename(obj)}]")
    by_obj = sorted(objs.items(), key=lambda kv: -kv[1])[:6]
    print("  by object: " + ", ".join(f"{os.path.basename(o)} {100 * c / max(total, 1):.1f}%" for o, c in by_obj))
    d["module_top_symbols"] = [{"symbol": fn, "object": obj, "ir_per_request": round(c / max(n, 1), 1),
                                "share": round(c / max(total, 1), 4)} for c, fn, obj in top]
    d["module_lua54_share"] = round(lua / max(total, 1), 4)
    d["module_share_by_object"] = {o: round(c / max(total, 1), 4) for o, c in by_obj}

report["failures"] = failures
with open(out, "w") as f:
    json.dump(report, f, indent=1)
print()
print(f"profile: {out} ({int(elapsed)} s)")
if failures:
    print("profile: FAILED: batches with errors or missing answers:", file=sys.stderr)
    for x in failures:
        print("  " + x, file=sys.stderr)
    sys.exit(1)
PY
