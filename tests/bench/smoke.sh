#!/usr/bin/env bash
# smoke.sh — a tiny run of every part of `make bench` (tests/bench/run.sh --smoke: seconds, tiny
# counts, no callgrind profile) that checks the tools work and the report has every key. No timing
# assertions: only that every request got its answer, the storm made exactly one room, and every
# number exists. Then report.py's verdict arithmetic on made-up results (report_check.py).
# Needs `make all` (build/libcr.a) and wrk. Last line: "benchsmoke: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

passed=0 failed=0
check() {  # description, command...
    local what=$1; shift
    if "$@"; then
        echo "ok - $what"; passed=$((passed + 1))
    else
        echo "not ok - $what"; failed=$((failed + 1))
    fi
}
finish() { echo "benchsmoke: $passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
tests/bench/run.sh --smoke >"$out" 2>&1
rc=$?
check "run.sh --smoke exits 0" test "$rc" = 0
if [ "$rc" != 0 ]; then
    tail -n 40 "$out"
fi
report=$(sed -n 's/^report: //p' "$out" | tail -n 1)
check "run.sh --smoke names its report" test -n "$report" -a -f "${report:-/nonexistent}"
if [ -z "$report" ] || [ ! -f "$report" ]; then finish; fi
raw="$(dirname "$report")/raw"
sed -n '/^machine:/,$p' "$out"

# Each check is one Python expression over the report `r` (and the raw crload/wrk lines).
pycheck() {  # description, expression
    check "$1" /usr/bin/python3 - "$report" "$raw" "$2" "$out" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
raw = sys.argv[2]
def lines(name):
    return [json.loads(l) for l in open(os.path.join(raw, name)) if l.strip()]
ok = eval(sys.argv[3])
if not ok:
    print("   failed: " + sys.argv[3], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

required='["xmpp_ratio","http_ratio","xmpp_ratio_iqm","http_ratio_iqm","xmpp_ratio_spread","http_ratio_spread",
 "xmpp_rps_ratio","http_rps_ratio","xmpp_trivial_cpu_us","xmpp_module_cpu_us","http_trivial_cpu_us","http_module_cpu_us","storm_requests","storm_creations","storm_all_ready","core_xml_ratio",
 "core_json_ratio","core_xml_rps","core_json_rps","bytes_per_room","xmpp_ping_rps","xmpp_trivial_rps",
 "xmpp_module_rps","http_health_rps","http_trivial_rps","http_module_rps"]'
pycheck "report has every required key, each a number (storm_all_ready a boolean)" \
    "all(k in r for k in $required) and all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool) for k in $required if k != 'storm_all_ready') and isinstance(r['storm_all_ready'], bool)"
pycheck "report: a wall-clock warning flag per door (a boolean)" \
    "isinstance(r['xmpp_ratio_warning'], bool) and isinstance(r['http_ratio_warning'], bool)"
pycheck "report: instruction ratios present, null in smoke mode with the reason" \
    "all(k in r for k in ('xmpp_instr_ratio', 'http_instr_ratio', 'instr_report')) and r['xmpp_instr_ratio'] is None and r['http_instr_ratio'] is None and 'smoke' in (r.get('instr_skipped') or '')"
pycheck "report: per phase the server CPU µs/request summary (best, IQM, quartiles, every rep)" \
    "all(r[d][p]['server_cpu_us_per_req'][k] > 0 for d, ps in (('xmpp', ('ping', 'trivial', 'module')), ('http', ('health', 'trivial', 'module'))) for p in ps for k in ('best', 'iqm', 'q1', 'q3', 'median')) and all(len(r[d][p]['server_cpu_us_per_req']['reps']) == r[d][p]['rps']['n'] for d in ('xmpp', 'http') for p in ('trivial', 'module'))"
pycheck "report: the CPU clock is named (schedstat or stat)" \
    "r['server_cpu_clock'] in ('schedstat', 'stat')"
pycheck "XMPP and HTTP: 2 reps, the second in reverse order (ABBA)" \
    "[x['phase'] for x in lines('xmpp.jsonl')] == ['ping', 'trivial', 'module', 'module', 'trivial', 'ping'] and [h['phase'] for h in lines('http.jsonl')] == ['health', 'trivial', 'module', 'module', 'trivial', 'health']"
pycheck "report carries the machine description" \
    "all(r['machine'].get(k) for k in ('cpu', 'cores', 'prosody', 'expat', 'jansson'))"
pycheck "crload made every prepared room ready over XMPP" \
    "r['xmpp_prepare']['requests'] > 0 and r['xmpp_prepare']['ready'] == r['xmpp_prepare']['requests']"
pycheck "XMPP: every phase (ping, trivial, module) answered IQs with no error, none unanswered" \
    "all(x['answered'] > 0 and x['errors'] == 0 and x['missing'] == 0 for x in lines('xmpp.jsonl')) and {x['phase'] for x in lines('xmpp.jsonl')} == {'ping', 'trivial', 'module'}"
pycheck "XMPP and HTTP: the server's CPU time per request was measured for every run" \
    "all(x.get('server_cpu_us_per_req', 0) > 0 for x in lines('xmpp.jsonl')) and all(h.get('server_cpu_secs', 0) > 0 for h in lines('http.jsonl'))"
pycheck "XMPP: the module answered ready=true for every ready room" \
    "all(x['not_ready'] == 0 for x in lines('xmpp.jsonl') if x['phase'] == 'module')"
pycheck "HTTP: wrk ran every route (health, trivial, module) with no error status" \
    "all(h['wrk']['requests'] > 0 and h['wrk']['errors'] == 0 for h in lines('http.jsonl')) and {h['phase'] for h in lines('http.jsonl')} == {'health', 'trivial', 'module'}"
pycheck "storm: every request over both doors answered, all ready=true" \
    "r['storm_all_ready'] is True and r['storm_answered'] == r['storm_requests'] > 0"
pycheck "storm: the server saw exactly one room creation and one focus notification" \
    "r['storm_creations'] == 1 and r['storm_focus_notifications'] == 1"
pycheck "core: floor and core timings and ratios are positive" \
    "all(r['core'][k] > 0 for k in ('xml_floor_ns','xml_core_ns','json_floor_ns','json_core_ns')) and r['core_xml_ratio'] > 0 and r['core_json_ratio'] > 0"
pycheck "core: callgrind counted instructions for every loop" \
    "set(r['instructions_per_request']) == {'xml_floor','xml_core','json_floor','json_core'} and all(v > 0 for v in r['instructions_per_request'].values())"
pycheck "scale: registry filled, bytes per room and lookup/transition costs measured" \
    "r['scale_rooms'] > 0 and r['bytes_per_room'] > 0 and r['scale_lookup_ns'] > 0 and r['scale_transition_ns'] > 0"
pycheck "vnodes: choice costs at 10 and 100 nodes measured, no allocation in the measured loops" \
    "all(r['vnodes_%s_%d_ns' % (k, n)] > 0 for k in ('hash', 'reuse') for n in (10, 100)) and r['vnodes_allocs_10'] == 0 and r['vnodes_allocs_100'] == 0"
check "the table was printed with all seven parts and the verdict" \
    bash -c 'for p in "1. XMPP" "2. HTTP" "3. join storm" "4. C core" "5. scale" "6. visitor-node" "7. instructions" "verdict:" "XMPP " "HTTP "; do grep -q "^$p" "$1" || exit 1; done' _ "$out"
pycheck "a WARNING line for each door whose warning flag is set, none for the others" \
    "all((('WARNING: %s wall-clock' % d.upper()) in open(sys.argv[4]).read()) == r['%s_ratio_warning' % d] for d in ('xmpp', 'http'))"

# report.py's verdicts on made-up results: the statistic, the spread, the warning, the two ratio kinds
for case in best-fifth clear-verdict not-saturated instr instr-skipped; do
    check "report.py on made-up results: $case (tests/bench/report_check.py)" \
        /usr/bin/python3 tests/bench/report_check.py "$case"
done

# make bench-jwt (not part of run.sh): the JWT microbenchmark builds, runs and reports every key.
jwt_json=$(make --no-print-directory -s build/bench/jwtbench >/dev/null 2>&1 && build/bench/jwtbench --reps 1 --secs 0.01 --json)
check "jwtbench: ns/verify and verifies/s for HS256, RS256, ES256, each positive" \
    /usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if all(r.get("jwt_%s_%s" % (a, k), 0) > 0 for a in ("hs256", "rs256", "es256") for k in ("ns", "per_s")) else 1)' "${jwt_json:-null}"

# crload must fail loudly rather than report nothing measured (the tool's own failure path).
check "crload exits non-zero when the server is unreachable" \
    bash -c '! build/bench/crload load --port 1 --user x --pass y --conns 1 --duration 0.1 >/dev/null 2>&1'
finish
