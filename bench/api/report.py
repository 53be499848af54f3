#!/usr/bin/env python3
"""Per-run figures for bench/api/run.sh and ab.sh (sourced through common.sh's `run`).

  report.py snap PID            one JSON line: the server's CPU ticks, context switches (summed
                                over its threads) and, per thread name, CPU ticks and switches
  report.py line NAME OUT SNAP0 SNAP1 METRICS0 METRICS1 [--threads]
                                one line of figures for an api_load --json run (OUT) against
                                server NAME, from snapshots before and after it; --threads adds
                                the server's threads that ran, by name. With $VIGIL_BENCH_ROWS
                                set, also appends the figures to that file (one JSON a line)
  report.py table ROWS          the rows as one Markdown table (bench/api/run.sh prints it last)
"""
import json
import os
import re
import sys


def snap(pid):
    total = {"ticks": 0, "vol": 0, "invol": 0, "threads": 0, "by_name": {}}
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                stat = f.read()
            with open(f"{task_dir}/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        invol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        total["ticks"] += ticks
        total["vol"] += vol
        total["invol"] += invol
        total["threads"] += 1
        # Threads of one name (a pool) are summed; a tid keeps a thread apart within a run.
        t = total["by_name"].setdefault(name, {"ticks": 0, "vol": 0, "invol": 0, "n": 0, "tids": {}})
        t["ticks"] += ticks
        t["vol"] += vol
        t["invol"] += invol
        t["n"] += 1
        t["tids"][tid] = [ticks, vol + invol]
    print(json.dumps(total))


def buckets(text, api):
    b = {}
    for m in re.finditer(r'api="%s",le="([^"]+)"\} (\d+)' % api, text):
        b[float(m.group(1))] = int(m.group(2))
    return b


def line(name, out, s0, s1, m0, m1, threads):
    try:
        out = json.loads(out)
    except ValueError:
        print(f"{name}: api_load printed no figures ({out[:200]!r})")
        return
    s0, s1 = json.loads(s0), json.loads(s1)
    hz = os.sysconf("SC_CLK_TCK")
    api = "score_batch" if out["batch"] > 0 else "score"
    b0, b1 = buckets(m0, api), buckets(m1, api)
    delta = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
    total = delta[-1][1] if delta else 0

    def q(p):
        for le, n in delta:
            if total and n >= p * total:
                return f"<={le * 1e6:.0f}"
        return "?"

    calls = max(out["calls"], 1)
    cpu = (s1["ticks"] - s0["ticks"]) / hz
    vol = s1["vol"] - s0["vol"]
    invol = s1["invol"] - s0["invol"]
    rows_file = os.environ.get("VIGIL_BENCH_ROWS")
    if rows_file:
        with open(rows_file, "a") as f:
            f.write(json.dumps({"server": name, "out": out, "cpu_us": cpu / calls * 1e6,
                                "vol": vol / calls, "invol": invol / calls,
                                "own_p50": q(0.5), "own_p99": q(0.99)}) + "\n")
    print(f"{name} {out['transport']:4s} {out['mode']:7s}x{out['threads']:<3d} clients"
          f" {out['clients']:3d} batch {out['batch']:3d} {'vary' if out['vary'] else 'same'}:"
          f" {out['calls_per_s']:7.0f} calls/s {out['scores_per_s']:7.0f} scores/s"
          f" P50 {out['p50_us']:6.0f} P95 {out['p95_us']:6.0f} P99 {out['p99_us']:6.0f} us;"
          f" errors {out['errors']} fallbacks {out['fallbacks']} cached {out['cached']};"
          f" server: {cpu / calls * 1e6:.0f} us CPU/call,"
          f" {vol / calls:.2f}+{invol / calls:.2f} vol+invol switches/call,"
          f" {s1['threads']} threads, own time P50 {q(0.5)} P99 {q(0.99)} us;"
          f" load generator: {out['cpu_s'] / calls * 1e6:.0f} us CPU/call"
          f" ({out['cpu_s'] / max(out['cpu_s'] + cpu, 1e-9) * 100:.0f} % of the two),"
          f" {out['context_switches'] / calls:.2f} switches/call")
    if threads:
        rows = []
        for tname, t in s1["by_name"].items():
            t0 = s0["by_name"].get(tname, {"tids": {}})
            ran = 0
            ticks = sw = 0
            for tid, (tk, s) in t["tids"].items():
                b = t0["tids"].get(tid, [0, 0])
                if tk - b[0] > 0 or s - b[1] > 0:
                    ran += 1
                ticks += tk - b[0]
                sw += s - b[1]
            if ran:
                rows.append((ticks, f"{tname}: {ran} of {t['n']} ran, {ticks / hz / calls * 1e6:.0f}"
                                    f" us CPU/call, {sw / calls:.2f} switches/call"))
        print("    server threads that ran: " + "; ".join(r for _, r in sorted(rows, reverse=True)))


def table(rows_file):
    print("| server | mode | transport | clients | batch | requests | calls/s | scores/s | P50 | P95"
          " | P99 (µs) | errors | server CPU/call | server switches/call (vol+invol)"
          " | server's own P50 / P99 | load generator CPU/call, switches/call |")
    print("|---" * 16 + "|")
    for text in open(rows_file):
        r = json.loads(text)
        o = r["out"]
        calls = max(o["calls"], 1)
        print(f"| {r['server']} | {o['mode']} x{o['threads']} | {o['transport']} | {o['clients']}"
              f" | {o['batch']} | {'vary' if o['vary'] else 'same'} | {o['calls_per_s']:,.0f}"
              f" | {o['scores_per_s']:,.0f} | {o['p50_us']:,.0f} | {o['p95_us']:,.0f}"
              f" | {o['p99_us']:,.0f} | {o['errors']} | {r['cpu_us']:.0f} µs"
              f" | {r['vol']:.2f}+{r['invol']:.2f} | {r['own_p50']} / {r['own_p99']} µs"
              f" | {o['cpu_s'] / calls * 1e6:.0f} µs, {o['context_switches'] / calls:.2f} |")


if __name__ == "__main__":
    if sys.argv[1] == "snap":
        snap(sys.argv[2])
    elif sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        line(*sys.argv[2:8], threads="--threads" in sys.argv[8:])
