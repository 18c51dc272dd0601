#!/usr/bin/python3
"""report_check.py CASE — runs tests/bench/report.py on made-up raw results (no server) and checks
the door verdicts it computes; exit 0 when the case holds. Used by tests/bench/smoke.sh.

Cases:
  best-fifth      xmpp_ratio = trivial / module CPU µs per request, each the mean of its best fifth
                  of the repetitions (2 of 10); the single-best and IQM ratios; the per-pair spread;
                  a WARNING (JSON and table) when the spread > the margin
  clear-verdict   a spread well inside the margin: no warning, the verdict stands (MISSED here)
  not-saturated   the same with Prosody at 60 % CPU use: a WARNING (the server was not the limit)
  instr           xmpp/http_instr_ratio = trivial Ir / module Ir from raw/profile.json
  instr-skipped   no profile.json: the instruction keys are null and instr_skipped says why
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def xmpp_line(phase, rep, cpu, util=1.0):
    return {"mode": "load", "phase": phase, "rep": rep, "conns": 8, "window": 16, "secs": 1.0,
            "answered": int(1e6 / cpu), "rps": 1e6 / cpu, "p50_us": 1000, "p99_us": 2000, "errors": 0,
            "not_ready": 0, "missing": 0, "server_cpu_util": util, "server_cpu_us_per_req": cpu,
            "server_cpu_clock": "schedstat"}


def http_line(phase, rep, cpu, util=1.0):
    n = int(util * 1e6 / cpu)   # util of one second at cpu µs per request
    return {"phase": phase, "rep": rep, "server_cpu_secs": cpu * n / 1e6, "server_cpu_clock": "schedstat",
            "wrk": {"requests": n, "secs": 1.0, "rps": float(n), "p50_us": 1000, "p99_us": 2000, "errors": 0,
                    "status_errors": 0}}


def run(trivial, module, profile=None, skipped=None, util=1.0):
    """Writes a raw dir with these CPU µs/request per rep (same for both doors), runs report.py;
    returns (report dict, printed table)."""
    tmp = tempfile.mkdtemp(prefix="report_check.")
    raw = os.path.join(tmp, "raw")
    os.makedirs(raw)
    with open(os.path.join(raw, "xmpp.jsonl"), "w") as x, open(os.path.join(raw, "http.jsonl"), "w") as h:
        for i, (t, m) in enumerate(zip(trivial, module), 1):
            for phase, cpu in (("ping", 50.0), ("trivial", t), ("module", m)):
                x.write(json.dumps(xmpp_line(phase, i, cpu, util)) + "\n")
                h.write(json.dumps(http_line("health" if phase == "ping" else phase, i, cpu, util)) + "\n")
    open(os.path.join(raw, "callgrind.jsonl"), "w").close()
    if profile is not None:
        with open(os.path.join(raw, "profile.json"), "w") as f:
            json.dump(profile, f)
        with open(os.path.join(raw, "profile.path"), "w") as f:
            f.write("/somewhere/profile.json\n")
    if skipped is not None:
        with open(os.path.join(raw, "profile.skipped"), "w") as f:
            f.write(skipped + "\n")
    out = os.path.join(tmp, "report.json")
    p = subprocess.run([sys.executable, os.path.join(HERE, "report.py"), "--raw", raw, "--out", out],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr, file=sys.stderr)
        raise SystemExit(1)
    with open(out) as f:
        return json.load(f), p.stdout


def expect(what, got, want):
    if got != want:
        print(f"   {what}: got {got!r}, want {want!r}", file=sys.stderr)
        return False
    return True


def main(case):
    ok = True
    if case == "best-fifth":
        t = [100, 104, 110, 120, 130, 135, 140, 150, 160, 300]
        m = [108, 114, 118, 128, 150, 140, 150, 160, 175, 400]
        r, table = run(t, m)
        ratio = round(((100 + 104) / 2) / ((108 + 114) / 2), 3)            # 0.919: margin +0.019
        pairs = [a / b for a, b in zip(t, m)]
        q = statistics.quantiles(pairs, n=4, method="inclusive")
        spread = round(q[2] - q[0], 3)                                      # 0.024 > 0.019
        for door in ("xmpp", "http"):
            ok &= expect(f"{door}_ratio", r[f"{door}_ratio"], ratio)
            ok &= expect(f"{door}_ratio_best1", r[f"{door}_ratio_best1"], round(100 / 108, 3))
            ok &= expect(f"{door}_ratio_iqm", r[f"{door}_ratio_iqm"],
                         round(statistics.fmean([110, 120, 130, 135, 140, 150]) /
                               statistics.fmean([118, 128, 140, 150, 150, 160]), 3))
            ok &= expect(f"{door}_ratio_spread", r[f"{door}_ratio_spread"], spread)
            ok &= expect(f"{door}_ratio_warning", r[f"{door}_ratio_warning"], True)
            ok &= expect(f"{door} target verdict", r["targets"][f"{door}_ratio"]["verdict"], "met")
            ok &= expect(f"{door} trivial CPU µs (best fifth)", r[f"{door}_trivial_cpu_us"], 102)
            ok &= expect(f"WARNING line for {door.upper()}",
                         any(l.startswith(f"WARNING: {door.upper()} wall-clock ratio {ratio}")
                             for l in table.splitlines()), True)
        ok &= expect("rps ratio kept (median IQ/s)", r["xmpp_rps_ratio"],
                     round(statistics.median([1e6 / x for x in m]) / statistics.median([1e6 / x for x in t]), 3))
        ok &= expect("warnings in the JSON", len(r.get("warnings", [])), 2)
    elif case == "clear-verdict":
        # 100..105 against 125..130: ratio 0.8, pairs all ~0.8: spread << margin 0.1
        r, table = run([100, 101, 102, 103, 104, 105], [125, 126, 127, 128, 129, 130])
        for door in ("xmpp", "http"):
            ok &= expect(f"{door}_ratio", r[f"{door}_ratio"], 0.8)
            ok &= expect(f"{door}_ratio_warning", r[f"{door}_ratio_warning"], False)
            ok &= expect(f"{door} target verdict", r["targets"][f"{door}_ratio"]["verdict"], "MISSED")
        ok &= expect("no WARNING line", "WARNING" in table, False)
    elif case == "not-saturated":
        r, table = run([100, 101, 102, 103, 104, 105], [125, 126, 127, 128, 129, 130], util=0.6)
        for door in ("xmpp", "http"):
            ok &= expect(f"{door}_ratio", r[f"{door}_ratio"], 0.8)
            ok &= expect(f"{door}_ratio_warning", r[f"{door}_ratio_warning"], True)
            ok &= expect(f"WARNING line for {door.upper()} names the CPU use",
                         any(l.startswith(f"WARNING: {door.upper()} wall-clock") and "CPU use was 60 %" in l
                             for l in table.splitlines()), True)
    elif case == "instr":
        prof = {"doors": {"xmpp": {"trivial": {"Ir": 861000.0}, "module": {"Ir": 803000.0},
                                   "trivial_reps_ir": [861000], "module_reps_ir": [803000]},
                          "http": {"trivial": {"Ir": 423000.0}, "module": {"Ir": 526000.0},
                                   "trivial_reps_ir": [423000], "module_reps_ir": [526000]}},
                "failures": []}
        r, table = run([100] * 4, [100] * 4, profile=prof)
        ok &= expect("xmpp_instr_ratio", r["xmpp_instr_ratio"], round(861 / 803, 3))
        ok &= expect("http_instr_ratio", r["http_instr_ratio"], round(423 / 526, 3))
        ok &= expect("xmpp instr target", r["targets"]["xmpp_instr_ratio"]["verdict"], "met")
        ok &= expect("http instr target", r["targets"]["http_instr_ratio"]["verdict"], "MISSED")
        ok &= expect("instr_skipped", r["instr_skipped"], None)
        ok &= expect("instr_report", r["instr_report"], "/somewhere/profile.json")
        ok &= expect("table shows both ratios", any(l.startswith("XMPP") and "1.072" in l and "861,000 / 803,000" in l
                                                    for l in table.splitlines()), True)
    elif case == "instr-skipped":
        r, table = run([100] * 4, [100] * 4, skipped="smoke run: skipped")
        for door in ("xmpp", "http"):
            ok &= expect(f"{door}_instr_ratio", r[f"{door}_instr_ratio"], None)
        ok &= expect("instr_skipped", r["instr_skipped"], "smoke run: skipped")
        ok &= expect("instr target n/a", r["targets"]["xmpp_instr_ratio"]["verdict"], "n/a")
    else:
        print(f"report_check.py: unknown case {case}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
