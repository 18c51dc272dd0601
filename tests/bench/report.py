#!/usr/bin/python3
"""Report writer of `make bench` (tests/bench/run.sh): reads the raw results of one run, prints
the table and the verdicts, writes the JSON report with the machine description.

The wall-clock door ratios (xmpp_ratio, http_ratio) compare the server's CPU time per answered
request, trivial handler / module, each side summarised by the mean of its best fifth of the
repetitions (3 of 15: the headline), also by its single best and its interquartile mean; their
spread is the interquartile range of the per-pair ratios (repetition i's trivial / module, run
next to each other). The instruction ratios
(xmpp_instr_ratio, http_instr_ratio) come from tests/bench/profile.sh (raw/profile.json).
tests/bench/README.md explains the choice.

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
    "xmpp_ratio", "http_ratio", "xmpp_ratio_iqm", "http_ratio_iqm", "xmpp_ratio_spread", "http_ratio_spread",
    "xmpp_ratio_warning", "http_ratio_warning", "xmpp_rps_ratio", "http_rps_ratio",
    "xmpp_instr_ratio", "http_instr_ratio", "instr_report", "instr_skipped", "storm_requests", "storm_creations", "storm_all_ready",
    "core_xml_ratio", "core_json_ratio", "core_xml_rps", "core_json_rps", "bytes_per_room",
    "xmpp_ping_rps", "xmpp_trivial_rps", "xmpp_module_rps",
    "http_health_rps", "http_trivial_rps", "http_module_rps",
    "vnodes_hash_10_ns", "vnodes_hash_100_ns", "vnodes_reuse_10_ns", "vnodes_reuse_100_ns",
    "vnodes_allocs_10", "vnodes_allocs_100",
]
RATIO_TARGET = 0.90   # wall clock, both doors
MIN_CPU_USE = 0.85    # below this median CPU use Prosody was not the bottleneck: no capacity measured
TARGETS = {"xmpp_ratio": (">=", RATIO_TARGET), "http_ratio": (">=", RATIO_TARGET),
           "xmpp_instr_ratio": (">=", 1.0), "http_instr_ratio": (">=", 0.90), "core_xml_ratio": ("<=", 1.5),
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


def quartiles(values):
    """Q1, median, Q3 (linear interpolation between order statistics, as numpy's default)."""
    v = sorted(values)
    if len(v) == 1:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[1], q[2]


def iqm(values):
    """Interquartile mean: the mean of what is left after dropping the lowest and the highest
    quarter (floor(n/4) values each side; all of them when n < 4)."""
    v = sorted(values)
    k = len(v) // 4
    return statistics.fmean(v[k:len(v) - k])


def best_k(n):
    """How many of n repetitions the headline averages: the best fifth, at least one."""
    return max(1, round(n / 5))


def cpu_summary(values):
    """The server's CPU µs per answered request over the repetitions of one phase: best = the mean
    of the best fifth (best_k), best1 = the single best, iqm = interquartile mean."""
    values = [v for v in values if v is not None]
    if not values:
        return {"best": None, "best_k": 0, "best1": None, "iqm": None, "median": None, "q1": None, "q3": None,
                "iqr": None, "min": None, "max": None, "n": 0, "reps": []}
    q1, med, q3 = quartiles(values)
    k = best_k(len(values))
    return {"best": round(statistics.fmean(sorted(values)[:k]), 2), "best_k": k, "best1": min(values),
            "iqm": round(iqm(values), 2), "median": med, "q1": round(q1, 2), "q3": round(q3, 2),
            "iqr": round(q3 - q1, 2), "min": min(values), "max": max(values), "n": len(values), "reps": values}


def door_ratio(trivial_runs, module_runs, cpu_of, util_of):
    """Wall-clock ratio of one door from the CPU µs per request of each repetition (module
    throughput relative to the trivial ceiling = trivial cost / module cost)."""
    t = cpu_summary([cpu_of(r) for r in trivial_runs])
    m = cpu_summary([cpu_of(r) for r in module_runs])
    out = {"trivial": t, "module": m, "ratio": None, "ratio_best1": None, "ratio_iqm": None, "pairs": [],
           "pairs_median": None,
           "spread": None, "pairs_min": None, "pairs_max": None, "margin": None, "warning": None,
           "cpu_use": None, "why": []}
    if not t["n"] or not m["n"]:
        return out
    out["ratio"] = round(t["best"] / m["best"], 3)
    out["ratio_best1"] = round(t["best1"] / m["best1"], 3)
    out["ratio_iqm"] = round(t["iqm"] / m["iqm"], 3)
    mod_by_rep = {r.get("rep"): cpu_of(r) for r in module_runs}
    pairs = [round(cpu_of(r) / mod_by_rep[r.get("rep")], 4) for r in trivial_runs
             if cpu_of(r) and mod_by_rep.get(r.get("rep"))]
    out["pairs"] = pairs
    if pairs:
        q1, med, q3 = quartiles(pairs)
        out.update(pairs_median=round(med, 3), spread=round(q3 - q1, 3), pairs_min=min(pairs),
                   pairs_max=max(pairs))
    out["margin"] = round(out["ratio"] - RATIO_TARGET, 3)
    # The verdict is unreliable when one pair of repetitions moves the ratio by more than it
    # stands off the target (with fewer than 4 pairs there is no spread to judge: warn too).
    why = []
    if out["spread"] is None or len(pairs) < 4:
        why.append(f"only {len(pairs)} repetition pairs: no spread to judge by")
    elif out["spread"] > abs(out["margin"]):
        why.append(f"the spread of the ratio between repetition pairs (IQR {out['spread']:.3f}) is larger than "
                   f"its margin to the {RATIO_TARGET:.2f} target ({abs(out['margin']):.3f})")
    # CPU time per request is the server's capacity only while the server is the bottleneck.
    uses = [statistics.median(u) for u in ([util_of(r) for r in trivial_runs if util_of(r) is not None],
                                           [util_of(r) for r in module_runs if util_of(r) is not None]) if u]
    out["cpu_use"] = round(min(uses), 3) if len(uses) == 2 else None
    if out["cpu_use"] is not None and out["cpu_use"] < MIN_CPU_USE:
        why.append(f"Prosody's median CPU use was {out['cpu_use'] * 100:.0f} % (< {MIN_CPU_USE * 100:.0f} %): "
                   f"the server was not the bottleneck, other work on the machine was")
    out["why"] = why
    out["warning"] = bool(why)
    return out


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
                     "server_cpu_us_per_req": cpu_summary([r.get("server_cpu_us_per_req") for r in runs]),
                     "server_cpu_util": summary([r.get("server_cpu_util") for r in runs]), "runs": runs}
        rep[f"xmpp_{phase}_rps"] = xs[phase]["rps"]["median"]
        rep[f"xmpp_{phase}_p50_us"] = xs[phase]["p50_us"]["median"]
        rep[f"xmpp_{phase}_p99_us"] = xs[phase]["p99_us"]["median"]
        if xs[phase]["errors"] or xs[phase]["not_ready"] or xs[phase]["missing"]:
            problems.append(f"XMPP {phase}: {xs[phase]['errors']} errors, {xs[phase]['not_ready']} not ready, "
                            f"{xs[phase]['missing']} unanswered")
    rep["xmpp"] = xs
    if rep["xmpp_trivial_rps"] and rep["xmpp_module_rps"] is not None:
        rep["xmpp_rps_ratio"] = round(rep["xmpp_module_rps"] / rep["xmpp_trivial_rps"], 3)
    else:
        rep["xmpp_rps_ratio"] = None
    clocks = {r.get("server_cpu_clock") for r in xmpp if r.get("server_cpu_clock")}
    dr = door_ratio([r for r in xmpp if r.get("phase") == "trivial"], [r for r in xmpp if r.get("phase") == "module"],
                    lambda r: r.get("server_cpu_us_per_req"), lambda r: r.get("server_cpu_util"))
    rep["xmpp_verdict"] = dr

    # 2. HTTP
    http = read_lines(os.path.join(raw, "http.jsonl"))
    hs = {}
    for phase in ("health", "trivial", "module"):
        lines = [r for r in http if r.get("phase") == phase]
        runs = [r["wrk"] for r in lines]
        for r in lines:
            r["server_cpu_us_per_req"] = round(r["server_cpu_secs"] * 1e6 / r["wrk"]["requests"], 2) \
                if r.get("server_cpu_secs") and r["wrk"]["requests"] else None
        cpu = [r["server_cpu_us_per_req"] for r in lines]
        util = [r["server_cpu_secs"] / r["wrk"]["secs"] if r.get("server_cpu_secs") and r["wrk"]["secs"] else None
                for r in lines]
        hs[phase] = {"rps": summary([r["rps"] for r in runs]), "p50_us": summary([r["p50_us"] for r in runs]),
                     "p99_us": summary([r["p99_us"] for r in runs]), "errors": sum(r["errors"] for r in runs),
                     "server_cpu_us_per_req": cpu_summary(cpu), "server_cpu_util": summary(util), "runs": runs}
        rep[f"http_{phase}_rps"] = hs[phase]["rps"]["median"]
        rep[f"http_{phase}_p50_us"] = hs[phase]["p50_us"]["median"]
        rep[f"http_{phase}_p99_us"] = hs[phase]["p99_us"]["median"]
        if hs[phase]["errors"]:
            problems.append(f"HTTP {phase}: {hs[phase]['errors']} errors")
    rep["http"] = hs
    if rep["http_trivial_rps"] and rep["http_module_rps"] is not None:
        rep["http_rps_ratio"] = round(rep["http_module_rps"] / rep["http_trivial_rps"], 3)
    else:
        rep["http_rps_ratio"] = None
    clocks |= {r.get("server_cpu_clock") for r in http if r.get("server_cpu_clock")}
    rep["http_verdict"] = door_ratio([r for r in http if r.get("phase") == "trivial"],
                                     [r for r in http if r.get("phase") == "module"],
                                     lambda r: r.get("server_cpu_us_per_req"),
                                     lambda r: r["server_cpu_secs"] / r["wrk"]["secs"]
                                     if r.get("server_cpu_secs") and r["wrk"].get("secs") else None)
    rep["server_cpu_clock"] = "+".join(sorted(clocks)) or None
    for door in ("xmpp", "http"):
        d = rep[f"{door}_verdict"]
        rep[f"{door}_ratio"] = d["ratio"]
        rep[f"{door}_ratio_iqm"] = d["ratio_iqm"]
        rep[f"{door}_ratio_best1"] = d["ratio_best1"]
        rep[f"{door}_ratio_spread"] = d["spread"]
        rep[f"{door}_ratio_warning"] = d["warning"]
        for phase in ("trivial", "module"):
            rep[f"{door}_{phase}_cpu_us"] = d[phase]["best"]

    # 7. instructions per request of both doors (tests/bench/profile.sh)
    prof = read_json(os.path.join(raw, "profile.json"))
    skipped = None
    try:
        with open(os.path.join(raw, "profile.skipped")) as f:
            skipped = f.read().strip() or "skipped"
    except OSError:
        pass
    if prof is None and skipped is None:
        skipped = "no profile.json in the raw results"
    rep["instr_skipped"] = skipped
    rep["instr_report"] = None
    try:
        with open(os.path.join(raw, "profile.path")) as f:
            rep["instr_report"] = f.read().strip() or None
    except OSError:
        pass
    for door in ("xmpp", "http"):
        d = ((prof or {}).get("doors") or {}).get(door) or {}
        ti, mi = (d.get("trivial") or {}).get("Ir"), (d.get("module") or {}).get("Ir")
        rep[f"{door}_instr_ratio"] = round(ti / mi, 3) if ti and mi else None
        rep[f"{door}_trivial_ir"] = round(ti) if ti else None
        rep[f"{door}_module_ir"] = round(mi) if mi else None
        rep[f"{door}_instr_reps"] = {"trivial": d.get("trivial_reps_ir"), "module": d.get("module_reps_ir")}
        if prof is not None and rep[f"{door}_instr_ratio"] is None and skipped is None:
            rep["instr_skipped"] = skipped = f"profile.json has no {door} figures"
    if prof is not None:
        rep["instr"] = {k: prof.get(k) for k in ("requests_per_xmpp_batch", "reps", "wrk_secs", "rooms",
                                                  "elapsed_secs", "valgrind", "failures", "login_excluded")}
        if prof.get("failures"):
            problems.append(f"profile: batches with errors or missing answers: {prof['failures']}")

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
    print(f"{'part':<34}{'req/s median':>13}  {'min-max':<16}{'p50 / p99 µs':>16}  | "
          f"{'CPU best':>8}{'IQM':>7}{'Q1-Q3':>15}{'min-max':>15}{'use':>6}")

    def row(label, s, p50, p99, cpu):
        mm = f"{fmt_num(s['min'])}-{fmt_num(s['max'])}" if s["n"] else "-"
        lat = f"{fmt_num(p50)} / {fmt_num(p99)}" if p50 is not None else ""
        c, u = cpu["server_cpu_us_per_req"], cpu["server_cpu_util"]
        srv = ""
        if c["n"]:
            use = f"{u['median'] * 100:.0f}%" if u["median"] is not None else "-"
            srv = (f"{c['best']:>8.1f}{c['iqm']:>7.1f}{c['q1']:>8.1f}-{c['q3']:<6.1f}"
                   f"{c['min']:>8.1f}-{c['max']:<6.1f}{use:>6}")
        print(f"{label:<34}{fmt_num(s['median']) + '/s':>13}  {mm:<16}{lat:>16}  | {srv}")

    def ratio_line(door, unit):
        d = rep[f"{door}_verdict"]
        if d["ratio"] is None:
            print("   ratio: -")
            return
        print(f"   ratio module/ceiling: {d['ratio']:.3f} = mean of the best {d['trivial']['best_k']} of "
              f"{d['trivial']['n']} CPU µs/request ({d['trivial']['best']:.1f} / {d['module']['best']:.1f}); "
              f"single best {d['ratio_best1']:.3f}, IQM {d['ratio_iqm']:.3f}; "
              f"per pair median {fmt_num(d['pairs_median'], 3)}, IQR {fmt_num(d['spread'], 3)}, "
              f"range {fmt_num(d['pairs_min'], 3)}-{fmt_num(d['pairs_max'], 3)}; "
              f"{unit} medians {fmt_num(rep[f'{door}_rps_ratio'], 3)}")

    print(f"   (right of |: Prosody's CPU µs per answered request over each measured repetition "
          f"(/proc/PID, {rep['server_cpu_clock']}): mean of the best fifth, interquartile mean, quartiles, "
          f"range; its median CPU use)")
    print(f"1. XMPP IQs/s ({n_x} reps x {xs['ping']['runs'][0]['secs'] if xs['ping']['runs'] else 0:.1f} s, "
          f"interleaved, ABBA order)")
    row("   ping (XEP-0199, context)", xs["ping"]["rps"], rep["xmpp_ping_p50_us"], rep["xmpp_ping_p99_us"], xs["ping"])
    row("   trivial component (ceiling)", xs["trivial"]["rps"], rep["xmpp_trivial_p50_us"],
        rep["xmpp_trivial_p99_us"], xs["trivial"])
    row("   mod_conference_request", xs["module"]["rps"], rep["xmpp_module_p50_us"], rep["xmpp_module_p99_us"],
        xs["module"])
    ratio_line("xmpp", "IQ/s")
    print(f"2. HTTP requests/s ({n_h} reps x {hs['health']['runs'][0]['secs'] if hs['health']['runs'] else 0:.1f} s, "
          f"interleaved, ABBA order)")
    row("   GET health (context)", hs["health"]["rps"], rep["http_health_p50_us"], rep["http_health_p99_us"],
        hs["health"])
    row("   trivial POST (ceiling)", hs["trivial"]["rps"], rep["http_trivial_p50_us"], rep["http_trivial_p99_us"],
        hs["trivial"])
    row("   POST /conference-request/v1", hs["module"]["rps"], rep["http_module_p50_us"], rep["http_module_p99_us"],
        hs["module"])
    ratio_line("http", "req/s")
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
    print(f"7. instructions per request (callgrind, tests/bench/profile.sh): "
          + (f"skipped: {rep['instr_skipped']}" if rep["instr_skipped"] else
             f"XMPP {fmt_num(rep['xmpp_trivial_ir'])} trivial / {fmt_num(rep['xmpp_module_ir'])} module, "
             f"HTTP {fmt_num(rep['http_trivial_ir'])} / {fmt_num(rep['http_module_ir'])}; "
             f"report {rep['instr_report']}"))
    print()
    print("verdict: module throughput relative to Prosody's trivial handler (trivial cost / module cost)")
    print(f"{'door':<6}{'wall clock':>11}{'spread':>8}{'margin':>8}  {'target':<16}"
          f"{'instructions':>13}  {'Ir/request trivial / module':<29}{'target'}")
    warnings = []
    for door, instr_bound in (("xmpp", "1.0"), ("http", "0.90")):
        d = rep[f"{door}_verdict"]
        ir = (f"{fmt_num(rep[f'{door}_trivial_ir'])} / {fmt_num(rep[f'{door}_module_ir'])}"
              if rep[f"{door}_instr_ratio"] is not None else "(not measured)")
        margin = f"{d['margin']:+.3f}" if d["margin"] is not None else "-"
        print(f"{door.upper():<6}{fmt_num(d['ratio'], 3):>11}{fmt_num(d['spread'], 3):>8}{margin:>8}  "
              f"{'>= 0.90 ' + verdicts[f'{door}_ratio']:<16}{fmt_num(rep[f'{door}_instr_ratio'], 3):>13}  {ir:<29}"
              f">= {instr_bound} {verdicts[f'{door}_instr_ratio']}")
        if d["warning"]:
            warnings.append(f"WARNING: {door.upper()} wall-clock ratio {fmt_num(d['ratio'], 3)}: {'; '.join(d['why'])}; "
                            f"the verdict '{verdicts[f'{door}_ratio']}' may flip on another run (load average "
                            f"{m.get('loadavg_start', '?')} at start, {m['loadavg_end']} at end)")
    print("   wall clock = server CPU µs/request, mean of each side's best fifth of the repetitions "
          "(tests/bench/README.md); spread = IQR of the per-pair ratios; margin = ratio - 0.90")
    if rep["instr_skipped"]:
        print(f"   instructions: {rep['instr_skipped']}")
    rep["warnings"] = warnings
    for w in warnings:
        print(w)
    with open(a.out, "w") as f:   # again, with the warnings
        json.dump(rep, f, indent=1, sort_keys=False)
        f.write("\n")
    for p in problems:
        print(f"problem: {p}")
    if missing:
        print(f"missing keys: {', '.join(missing)}")
    print(f"report: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
