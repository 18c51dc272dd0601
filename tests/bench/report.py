#!/usr/bin/python3
"""Report writer of `make bench` (tests/bench/run.sh): reads the raw results of one run, prints
the table of medians (min-max) and ratios, writes the JSON report with the machine description.

usage: report.py --raw DIR --out FILE.json [--smoke]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

REQUIRED_KEYS = [
    "xmpp_ratio", "http_ratio", "storm_requests", "storm_creations", "storm_all_ready",
    "core_xml_ratio", "core_json_ratio", "core_xml_rps", "core_json_rps", "bytes_per_room",
    "xmpp_ping_rps", "xmpp_trivial_rps", "xmpp_module_rps",
    "http_health_rps", "http_trivial_rps", "http_module_rps",
    "vnodes_hash_10_ns", "vnodes_hash_100_ns", "vnodes_reuse_10_ns", "vnodes_reuse_100_ns",
    "vnodes_allocs_10", "vnodes_allocs_100",
]
TARGETS = {"xmpp_ratio": (">=", 0.90), "http_ratio": (">=", 0.90), "core_xml_ratio": ("<=", 1.5),
           "core_json_ratio": ("<=", 1.5), "bytes_per_room": ("<=", 256), "storm_creations": ("==", 1),
           "vnodes_hash_100_ns": ("<=", 1000), "vnodes_allocs_100": ("==", 0)}


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            distro = re.search(r'PRETTY_NAME="([^"]*)"', f.read()).group(1)
    except (OSError, AttributeError):
        pass
    prosody = ""
    try:
        with open("/usr/lib/prosody/prosody.version") as f:
            prosody = f.read().strip()
    except OSError:
        pass
    wrk = cmd(["wrk", "-v"]).split(" [")[0].replace("wrk ", "")
    valgrind = cmd(["valgrind", "--version"])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(), "os": distro, "prosody": prosody,
        "lua": cmd(["lua5.4", "-v"]).split(" Copyright")[0].strip(),
        "expat": cmd(["pkg-config", "--modversion", "expat"]),
        "jansson": cmd(["pkg-config", "--modversion", "jansson"]),
        "cc": cmd(["cc", "--version"]).split("\n")[0], "wrk": wrk, "valgrind": valgrind,
    }


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    raw = a.raw

    rep = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "smoke": a.smoke, "machine": machine()}
    try:
        with open(os.path.join(raw, "loadavg.start")) as f:
            rep["machine"]["loadavg_start"] = f.read().strip()
    except OSError:
        pass
    rep["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    problems = []

    # 1. XMPP
    xmpp = read_lines(os.path.join(raw, "xmpp.jsonl"))
    prepare = read_json(os.path.join(raw, "prepare.json"), {})
    rep["xmpp_prepare"] = prepare
    xs = {}
    for phase in ("ping", "trivial", "module"):
        runs = [r for r in xmpp if r.get("phase") == phase]
        xs[phase] = {"rps": summary([r["rps"] for r in runs]), "p50_us": summary([r["p50_us"] for r in runs]),
                     "p99_us": summary([r["p99_us"] for r in runs]),
                     "errors": sum(r["errors"] for r in runs), "not_ready": sum(r["not_ready"] for r in runs),
                     "missing": sum(r["missing"] for r in runs),
                     "server_cpu_us_per_req": summary([r.get("server_cpu_us_per_req") for r in runs]),
                     "server_cpu_util": summary([r.get("server_cpu_util") for r in runs]), "runs": runs}
        rep[f"xmpp_{phase}_rps"] = xs[phase]["rps"]["median"]
        rep[f"xmpp_{phase}_p50_us"] = xs[phase]["p50_us"]["median"]
        rep[f"xmpp_{phase}_p99_us"] = xs[phase]["p99_us"]["median"]
        if xs[phase]["errors"] or xs[phase]["not_ready"] or xs[phase]["missing"]:
            problems.append(f"XMPP {phase}: {xs[phase]['errors']} errors, {xs[phase]['not_ready']} not ready, "
                            f"{xs[phase]['missing']} unanswered")
    rep["xmpp"] = xs
    if rep["xmpp_trivial_rps"] and rep["xmpp_module_rps"] is not None:
        rep["xmpp_ratio"] = round(rep["xmpp_module_rps"] / rep["xmpp_trivial_rps"], 3)
    else:
        rep["xmpp_ratio"] = None

    # 2. HTTP
    http = read_lines(os.path.join(raw, "http.jsonl"))
    hs = {}
    for phase in ("health", "trivial", "module"):
        lines = [r for r in http if r.get("phase") == phase]
        runs = [r["wrk"] for r in lines]
        cpu = [r["server_cpu_secs"] * 1e6 / r["wrk"]["requests"] if r.get("server_cpu_secs") and r["wrk"]["requests"]
               else None for r in lines]
        util = [r["server_cpu_secs"] / r["wrk"]["secs"] if r.get("server_cpu_secs") and r["wrk"]["secs"] else None
                for r in lines]
        hs[phase] = {"rps": summary([r["rps"] for r in runs]), "p50_us": summary([r["p50_us"] for r in runs]),
                     "p99_us": summary([r["p99_us"] for r in runs]), "errors": sum(r["errors"] for r in runs),
                     "server_cpu_us_per_req": summary(cpu), "server_cpu_util": summary(util), "runs": runs}
        rep[f"http_{phase}_rps"] = hs[phase]["rps"]["median"]
        rep[f"http_{phase}_p50_us"] = hs[phase]["p50_us"]["median"]
        rep[f"http_{phase}_p99_us"] = hs[phase]["p99_us"]["median"]
        if hs[phase]["errors"]:
            problems.append(f"HTTP {phase}: {hs[phase]['errors']} errors")
    rep["http"] = hs
    if rep["http_trivial_rps"] and rep["http_module_rps"] is not None:
        rep["http_ratio"] = round(rep["http_module_rps"] / rep["http_trivial_rps"], 3)
    else:
        rep["http_ratio"] = None

    # 3. storm
    storm = read_json(os.path.join(raw, "storm.json"), {})
    observed = read_json(os.path.join(raw, "storm-observed.json"), {})
    before = read_json(os.path.join(raw, "health-before.json"), {})
    after = read_json(os.path.join(raw, "health-after.json"), {})
    rep["storm_requests"] = storm.get("requests")
    rep["storm_answered"] = storm.get("answered")
    rep["storm_creations"] = observed.get("created")
    if "rooms_created" in before and "rooms_created" in after:
        rep["storm_focus_notifications"] = after["rooms_created"] - before["rooms_created"]
    else:
        rep["storm_focus_notifications"] = None
    rep["storm_all_ready"] = bool(storm) and storm.get("ready") == storm.get("requests") and \
        storm.get("errors") == 0 and storm.get("missing") == 0
    rep["storm_secs_to_last"] = storm.get("secs_to_last")
    rep["storm"] = {"client": storm, "observed": observed, "health_before": before, "health_after": after}

    # 4 + 5. core
    core = read_json(os.path.join(raw, "core.json"), {})
    rep["core"] = core
    for k in ("core_xml_ratio", "core_json_ratio", "core_xml_rps", "core_json_rps", "bytes_per_room",
              "scale_rooms", "scale_lookup_ns", "scale_transition_ns", "scale_set_pending_ns", "scale_set_ready_ns"):
        rep[k] = core.get(k)
    # 6. visitor-node choice (corebench)
    for n in (10, 100):
        for k in (f"vnodes_hash_{n}_ns", f"vnodes_reuse_{n}_ns", f"vnodes_allocs_{n}"):
            rep[k] = core.get(k)
    cg = {r["name"]: r["ir"] / r["iters"] for r in read_lines(os.path.join(raw, "callgrind.jsonl"))
          if r.get("iters")}
    rep["instructions_per_request"] = {k: round(v) for k, v in cg.items()}
    if cg.get("xml_floor") and cg.get("xml_core"):
        rep["core_xml_ir_ratio"] = round(cg["xml_core"] / cg["xml_floor"], 3)
    if cg.get("json_floor") and cg.get("json_core"):
        rep["core_json_ir_ratio"] = round(cg["json_core"] / cg["json_floor"], 3)

    # targets
    verdicts = {}
    for k, (op, bound) in TARGETS.items():
        v = rep.get(k)
        if v is None:
            verdicts[k] = "n/a"
        else:
            ok = v >= bound if op == ">=" else v <= bound if op == "<=" else v == bound
            verdicts[k] = "met" if ok else "MISSED"
    rep["targets"] = {k: {"rule": f"{op} {b}", "verdict": verdicts[k]} for k, (op, b) in TARGETS.items()}
    rep["problems"] = problems
    missing = [k for k in REQUIRED_KEYS if k not in rep]
    rep["missing_keys"] = missing

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rep, f, indent=1, sort_keys=False)
        f.write("\n")

    # ---- table ----
    m = rep["machine"]
    print()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m['os']}, Linux {m['kernel']}, "
          f"Prosody {m['prosody']}, {m['lua']}, expat {m['expat']}, jansson {m['jansson']}, wrk {m['wrk']}; "
          f"load average {m.get('loadavg_start', '?')} at start, {m['loadavg_end']} at end")
    n_x = xs["ping"]["rps"]["n"]
    n_h = hs["health"]["rps"]["n"]
    print(f"{'part':<34}{'median':>12}  {'min-max':<21}{'p50 / p99 µs':>18}  {'server':>14}  {'ratio':>6}  target")

    def row(label, s, p50, p99, ratio="", target="", unit="/s", cpu=None):
        mm = f"{fmt_num(s['min'])}-{fmt_num(s['max'])}" if s["n"] else "-"
        lat = f"{fmt_num(p50)} / {fmt_num(p99)}" if p50 is not None else ""
        srv = ""
        if cpu and cpu["server_cpu_us_per_req"]["median"] is not None:
            srv = (f"{cpu['server_cpu_us_per_req']['median']:.0f} µs "
                   f"{cpu['server_cpu_util']['median'] * 100:.0f}%")
        print(f"{label:<34}{fmt_num(s['median']) + unit:>12}  {mm:<21}{lat:>18}  {srv:>14}  {ratio:>6}  {target}")

    print("   (server = Prosody CPU time per answered request, and its CPU use, from /proc/PID/stat)")
    print(f"1. XMPP IQs/s ({n_x} reps, alternating)")
    row("   ping (XEP-0199, context)", xs["ping"]["rps"], rep["xmpp_ping_p50_us"], rep["xmpp_ping_p99_us"],
        cpu=xs["ping"])
    row("   trivial component (ceiling)", xs["trivial"]["rps"], rep["xmpp_trivial_p50_us"], rep["xmpp_trivial_p99_us"],
        cpu=xs["trivial"])
    row("   mod_conference_request", xs["module"]["rps"], rep["xmpp_module_p50_us"], rep["xmpp_module_p99_us"],
        fmt_num(rep["xmpp_ratio"], 3), f">= 0.90 {verdicts['xmpp_ratio']}", cpu=xs["module"])
    print(f"2. HTTP requests/s ({n_h} reps, alternating)")
    row("   GET health (context)", hs["health"]["rps"], rep["http_health_p50_us"], rep["http_health_p99_us"],
        cpu=hs["health"])
    row("   trivial POST (ceiling)", hs["trivial"]["rps"], rep["http_trivial_p50_us"], rep["http_trivial_p99_us"],
        cpu=hs["trivial"])
    row("   POST /conference-request/v1", hs["module"]["rps"], rep["http_module_p50_us"], rep["http_module_p99_us"],
        fmt_num(rep["http_ratio"], 3), f">= 0.90 {verdicts['http_ratio']}", cpu=hs["module"])
    print(f"3. join storm: {rep['storm_requests']} requests for one new room: answered {rep['storm_answered']}, "
          f"rooms created {rep['storm_creations']} (MUC events), focus notifications "
          f"{rep['storm_focus_notifications']} (module counter), all ready={rep['storm_all_ready']}, "
          f"last answer after {fmt_num(rep['storm_secs_to_last'], 3)} s  [creations == 1 {verdicts['storm_creations']}]")
    print(f"4. C core vs floor ({core.get('iters')} iterations x {core.get('reps')}, "
          f"XML {core.get('xml_bytes')} B, JSON {core.get('json_bytes')} B)")
    for name, label in (("xml_floor", "   bare expat (reset + salt)"), ("xml_core", "   core parse+decide+render XML"),
                        ("json_floor", "   bare jansson loads+decref"), ("json_core", "   core parse+decide+render JSON")):
        ns = core.get(f"{name}_ns")
        ratio, target = "", ""
        if name == "xml_core":
            ratio, target = fmt_num(rep["core_xml_ratio"], 3), f"<= 1.5 {verdicts['core_xml_ratio']}"
        if name == "json_core":
            ratio, target = fmt_num(rep["core_json_ratio"], 3), f"<= 1.5 {verdicts['core_json_ratio']}"
        ir = rep["instructions_per_request"].get(name)
        extra = f"{fmt_num(ns, 0)} ns  ({fmt_num(core.get(f'{name}_ns_min'))}-{fmt_num(core.get(f'{name}_ns_max'))})"
        print(f"{label:<34}{fmt_num(core.get(f'{name}_rps')) + '/s':>12}  {extra:<39}  {ratio:>6}  {target}"
              f"  {fmt_num(ir)} instr")
    if rep.get("core_xml_ir_ratio"):
        print(f"   instruction ratio core/floor: XML {rep['core_xml_ir_ratio']}, JSON {rep.get('core_json_ir_ratio')}")
    print(f"5. scale: {fmt_num(rep['scale_rooms'])} rooms: {fmt_num(rep['bytes_per_room'], 1)} B/room "
          f"[<= 256 {verdicts['bytes_per_room']}], lookup {fmt_num(rep['scale_lookup_ns'], 0)} ns, "
          f"transition {fmt_num(rep['scale_transition_ns'], 0)} ns "
          f"(ready->pending {fmt_num(rep['scale_set_pending_ns'], 0)}, pending->ready "
          f"{fmt_num(rep['scale_set_ready_ns'], 0)})")
    print(f"6. visitor-node choice ({core.get('vnodes_iters')} choices x {core.get('reps')}, weights 1..3; "
          f"hash = a room without state, reuse = a room that uses a node, one redirect recorded)")
    for n in (10, 100):
        target = f" [<= 1000 ns {verdicts['vnodes_hash_100_ns']}]" if n == 100 else ""
        print(f"   {n:>3} nodes: hash {fmt_num(rep[f'vnodes_hash_{n}_ns'], 0)} ns "
              f"({fmt_num(core.get(f'vnodes_hash_{n}_ns_min'))}-{fmt_num(core.get(f'vnodes_hash_{n}_ns_max'))}){target}, "
              f"reuse {fmt_num(rep[f'vnodes_reuse_{n}_ns'], 0)} ns "
              f"({fmt_num(core.get(f'vnodes_reuse_{n}_ns_min'))}-{fmt_num(core.get(f'vnodes_reuse_{n}_ns_max'))}), "
              f"allocations in the measured loops {rep[f'vnodes_allocs_{n}']}")
    for p in problems:
        print(f"problem: {p}")
    if missing:
        print(f"missing keys: {', '.join(missing)}")
    print(f"report: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
