#!/usr/bin/env python3
"""Figures of scripts/bench: reads its work directory, writes results.json, results.md and
chart.png there, and prints the Markdown table and the batch engine's acceptance figures.

usage: bench_report.py WORK_DIR LABEL... (labels: 1k, 100b; one subdirectory each)

Every measurement has its files in WORK_DIR/LABEL: time-<key>.r<run>.txt (GNU time -v),
wall-<key>.r<run>.txt, <key>.r<run>.out; per tool, the figures are the medians over its runs.
A tool without any run (e.g. `scripts/bench --engines batch`) is left out.
"""
import json
import os
import re
import statistics
import sys

GIB = 1 << 30
TOOLS = [  # key, name in the table, colour in the chart
    ("kmigrate-batch", "kmigrate batch engine", "#1f77b4"),
    ("kmigrate-record", "kmigrate record engine", "#aec7e8"),
    ("mm2", "MirrorMaker 2", "#d62728"),
    ("kcat", "kcat pipe", "#7f7f7f"),
    ("consumer-perf", "consumer limit", "#2ca02c"),
    ("producer-perf", "producer limit", "#98df8a"),
]
NAMES = {k: n for k, n, _ in TOOLS}
LABELS = {"1k": "1 KiB records", "100b": "100-byte records"}
# Figures whose median is taken over the runs.
FIGURES = ["wall_s", "process_wall_s", "mb_s", "rec_s", "cpu_s", "cpu_s_per_gib", "rss_mib",
           "copy_phase_s", "copy_phase_mb_s"]
RSS_GOAL_MIB = 128


def gnu_time(path):
    """User + sys CPU seconds and peak RSS (MiB) from /usr/bin/time -v output."""
    t = {}
    for line in open(path):
        key, _, value = line.strip().rpartition(": ")
        t[key] = value
    return {
        "cpu_s": float(t["User time (seconds)"]) + float(t["System time (seconds)"]),
        "rss_mib": int(t["Maximum resident set size (kbytes)"]) / 1024,
    }


def read(path):
    return open(path, errors="replace").read()


def runs_of(d, key):
    """The run numbers measured for a tool: those with both a time and a wall file."""
    pat = re.compile(r"wall-" + re.escape(key) + r"\.r(\d+)\.txt$")
    runs = []
    for f in os.listdir(d):
        m = pat.match(f)
        if m and os.path.exists(os.path.join(d, f"time-{key}.r{m.group(1)}.txt")):
            runs.append(int(m.group(1)))
    return sorted(runs)


def measure(d, key, run, manifest):
    """One measurement's figures. Throughput is the backlog's keys + values over the wall time;
    for the perf tools, over the time they measure themselves (JVM start-up excluded)."""
    records, payload = manifest["records"], manifest["payload_bytes"]
    name = f"{key}.r{run}"
    r = {"run": run}
    r.update(gnu_time(os.path.join(d, f"time-{name}.txt")))
    r["process_wall_s"] = float(read(os.path.join(d, f"wall-{name}.txt")))
    r["wall_s"] = r["process_wall_s"]
    if key == "consumer-perf":
        line = [l for l in read(os.path.join(d, f"{name}.out")).splitlines() if l.strip()][-1]
        cols = [c.strip() for c in line.split(",")]
        # start, end, MB, MB/sec, nMsg, nMsg/sec, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
        r["wall_s"] = float(cols[7]) / 1000
        r["records_read"] = int(cols[4])
    elif key == "producer-perf":
        line = [l for l in read(os.path.join(d, f"{name}.out")).splitlines()
                if "records sent" in l][-1]
        m = re.search(r"([\d.]+) records/sec", line)
        r["wall_s"] = records / float(m.group(1))
        r["line"] = line.strip()
    elif key.startswith("kmigrate-"):
        m = re.search(r"this run: [\d,]+ records, .* \(([\d,]+) rec/s, ([\d.]+) MB/s\)",
                      read(os.path.join(d, f"{name}.out")))
        if m:  # its own figure for the copy phase alone (plan and offsets excluded)
            r["copy_phase_s"] = records / int(m.group(1).replace(",", ""))
    elif key == "mm2":
        # From its first record on the target to the last (JVM and Connect start-up excluded).
        r["copy_phase_s"] = float(read(os.path.join(d, f"copy-phase-{name}.txt")))
    r["mb_s"] = payload / r["wall_s"] / 1e6
    r["rec_s"] = records / r["wall_s"]
    if r.get("copy_phase_s"):
        r["copy_phase_mb_s"] = payload / r["copy_phase_s"] / 1e6
    r["cpu_s_per_gib"] = r["cpu_s"] / (payload / GIB)
    return r


def summarize(runs):
    """Median, min and max of every figure over the runs that have it."""
    out = {"n": len(runs), "median": {}, "min": {}, "max": {}}
    for f in FIGURES:
        values = [r[f] for r in runs if r.get(f) is not None]
        if values:
            out["median"][f] = statistics.median(values)
            out["min"][f] = min(values)
            out["max"][f] = max(values)
    return out


def load_kv(path):
    out = {}
    if os.path.exists(path):
        for line in read(path).splitlines():
            k, _, v = line.partition("=")
            out[k] = v
    return out


def acceptance(label, tools):
    """The batch engine's acceptance figures from the medians, each with its goal (None: no
    goal, shown for comparison). Figures whose tools were not measured are left out."""
    med = {k: t["median"] for k, t in tools.items()}
    out = []

    def add(figure, value, op=None, goal=None, unit=""):
        met = None
        if op is not None:
            met = {"<=": value <= goal, ">=": value >= goal, "<": value < goal}[op]
        out.append({"figure": figure, "value": value, "op": op, "goal": goal, "unit": unit,
                    "met": met})

    def ratio(a, b):
        return med[a]["rec_s"] / med[b]["rec_s"] if a in med and b in med else None

    b = med.get("kmigrate-batch")
    if b:
        add("batch engine CPU s per GiB", b["cpu_s_per_gib"], "<=", 1.0)
    if (q := ratio("kmigrate-batch", "kcat")) is not None:
        add("batch engine / kcat pipe throughput", q, ">=", 1.5 if label == "100b" else 1.2)
    if b and "consumer-perf" in med and "producer-perf" in med:
        limit = min(med["consumer-perf"]["rec_s"], med["producer-perf"]["rec_s"])
        q = b["rec_s"] / limit
        if label == "1k":
            add("batch engine / brokers' limit (min of consumer and producer limit, records/s)",
                q, ">=", 0.95)
        else:
            add("batch engine / brokers' limit (min of consumer and producer limit, records/s)",
                q)
    if b:
        add("batch engine peak RSS", b["rss_mib"], "<", RSS_GOAL_MIB, " MiB")
    if (q := ratio("kmigrate-record", "kcat")) is not None:
        add("record engine / kcat pipe throughput", q)
    if (q := ratio("kmigrate-batch", "kmigrate-record")) is not None:
        add("batch engine / record engine throughput", q)
    if (q := ratio("kmigrate-batch", "mm2")) is not None:
        add("batch engine / MirrorMaker 2 throughput", q)
    return out


def main():
    work, labels = sys.argv[1], sys.argv[2:]
    res = {"machine": load_kv(os.path.join(work, "machine.txt")), "sizes": {}}
    for label in labels:
        d = os.path.join(work, label)
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        order = os.path.join(d, "order.txt")
        s = {"manifest": manifest,
             "load_start": load_kv(os.path.join(d, "load-start.txt")).get("load"),
             "load_end": load_kv(os.path.join(d, "load-end.txt")).get("load"),
             "order": read(order).splitlines() if os.path.exists(order) else [],
             "tools": {}}
        for key, _, _ in TOOLS:
            runs = [measure(d, key, r, manifest) for r in runs_of(d, key)]
            if runs:
                s["tools"][key] = {"runs": runs, **summarize(runs)}
        if os.path.exists(os.path.join(d, "time-verify.txt")):
            v = gnu_time(os.path.join(d, "time-verify.txt"))
            v["wall_s"] = float(read(os.path.join(d, "wall-verify.txt")))
            v["mb_s"] = manifest["payload_bytes"] / v["wall_s"] / 1e6
            v["rec_s"] = manifest["records"] / v["wall_s"]
            v["cpu_s_per_gib"] = v["cpu_s"] / (manifest["payload_bytes"] / GIB)
            after = os.path.join(d, "verify-after.txt")
            if os.path.exists(after):
                v["after"] = read(after).strip()
            s["verify"] = v
        s["acceptance"] = acceptance(label, s["tools"])
        res["sizes"][label] = s
    plan_out = os.path.join(work, "plan.out")
    if os.path.exists(plan_out):
        text = read(plan_out)
        m = re.search(r"plan: (\d+) groups, (\d+) partitions: median ([\d.]+) s", text)
        r = re.search(r"peak RSS of kmigrate plan: (\d+) MiB", text)
        if m:
            res["plan"] = {"groups": int(m.group(1)), "partitions": int(m.group(2)),
                           "median_s": float(m.group(3)),
                           "rss_mib": int(r.group(1)) if r else None}

    md = markdown(res)
    json.dump(res, open(os.path.join(work, "results.json"), "w"), indent=2)
    open(os.path.join(work, "results.md"), "w").write(md)
    chart(res, os.path.join(work, "chart.png"))
    print(md)
    print(f"written: {work}/results.json, results.md, chart.png")


def fmt_goal(a):
    if a["op"] is None:
        return "no goal", ""
    op = {"<=": "≤", ">=": "≥", "<": "<"}[a["op"]]
    goal = f"{a['goal']:.2f}".rstrip("0")
    goal = (goal + "0" if goal.endswith(".") else goal) if not a["unit"] else f"{a['goal']:.0f}"
    goal += a["unit"]
    return f"{op} {goal}", "met" if a["met"] else "not met"


def mb_s(x):
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def build_note(m):
    if m.get("profile", "release") == "release":
        return ""
    return f" ({m['profile']} build: its figures say nothing of a release build's speed)"


def markdown(res):
    m = res["machine"]
    runs = m.get("runs", "?")
    lines = [
        f"Measured {m.get('started_utc', '?')} on {m.get('cpus', '?')} CPUs "
        f"({m.get('cpu_model', '?')}), {m.get('mem_gib', '?')} GiB, shared with both brokers; "
        f"load average at start {m.get('load_start', '?')}, at end {m.get('load_end', '?')}; "
        f"kmigrate {m.get('kmigrate_commit', '?')}{build_note(m)}; brokers Kafka 4.4.0 (single-node KRaft); "
        f"MirrorMaker 2 and the perf tools Kafka 4.3.1; kcat {m.get('kcat', '?')}; "
        f"{m.get('java', 'java ?')}. {runs} run(s) per tool, in an order rotated every run; "
        f"each figure is the median over the runs, records/s with the runs' min–max.",
        "",
        "| records | tool | runs | wall s | MB/s | records/s (min–max) | CPU s | CPU s/GiB | "
        "peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, s in res["sizes"].items():
        man = s["manifest"]
        head = f"{LABELS.get(label, label)}, {man['records']:,} ({man['payload_bytes'] / 2**20:,.0f} MiB)"
        for key, name, _ in TOOLS:
            if key not in s["tools"]:
                continue
            t = s["tools"][key]
            r, lo, hi = t["median"], t["min"], t["max"]
            rec = f"{r['rec_s']:,.0f}"
            if t["n"] > 1:
                rec += f" ({lo['rec_s']:,.0f}–{hi['rec_s']:,.0f})"
            lines.append(f"| {head} | {name} | {t['n']} | {r['wall_s']:.1f} | {mb_s(r['mb_s'])} | "
                         f"{rec} | {r['cpu_s']:.1f} | {r['cpu_s_per_gib']:.1f} | "
                         f"{r['rss_mib']:.0f} |")
            head = ""
        if "verify" in s:
            v = s["verify"]
            lines.append(f"| {head} | kmigrate verify | 1 | {v['wall_s']:.1f} | {mb_s(v['mb_s'])} | "
                         f"{v['rec_s']:,.0f} | {v['cpu_s']:.1f} | {v['cpu_s_per_gib']:.1f} | "
                         f"{v['rss_mib']:.0f} |")
    lines += ["", "The batch engine's acceptance figures (from the medians):", "",
              "| records | figure | value | goal | |", "| --- | --- | ---: | --- | --- |"]
    any_figure = False
    for label, s in res["sizes"].items():
        head = LABELS.get(label, label)
        for a in s["acceptance"]:
            any_figure = True
            goal, verdict = fmt_goal(a)
            value = f"{a['value']:.0f}{a['unit']}" if a["unit"] else f"{a['value']:.2f}"
            lines.append(f"| {head} | {a['figure']} | {value} | {goal} | {verdict} |")
            head = ""
    if not any_figure:
        lines.append("| | none: the batch engine and the tools it is compared with were not "
                     "measured | | | |")
    for label, s in res["sizes"].items():
        phases = [f"{NAMES[k]} {t['median']['copy_phase_mb_s']:.0f} MB/s"
                  for k, t in s["tools"].items() if "copy_phase_mb_s" in t["median"]]
        if phases:
            lines += ["", f"{LABELS.get(label, label)}, copy phase alone, medians (kmigrate: its "
                      f"copy summary, without plan and offsets; MirrorMaker 2: first record on "
                      f"the target to the last, without its start-up): {', '.join(phases)}."]
    if "plan" in res:
        p = res["plan"]
        lines += ["", f"Planning: {p['groups']} groups over {p['partitions']:,} partitions: median "
                  f"{p['median_s']:.2f} s, peak RSS {p['rss_mib']} MiB."]
    return "\n".join(lines) + "\n"


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(res["sizes"])
    present = [t for t in TOOLS if any(t[0] in res["sizes"][l]["tools"] for l in labels)]
    if not labels or not present:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    width = 0.8 / len(present)
    for ax, metric, title in ((axes[0], "mb_s", "throughput, MB/s (higher is better)"),
                              (axes[1], "cpu_s_per_gib", "CPU s per GiB (lower is better)")):
        for i, (key, name, color) in enumerate(present):
            xs = [j + (i - (len(present) - 1) / 2) * width for j in range(len(labels))]
            tools = [res["sizes"][l]["tools"].get(key) for l in labels]
            ys = [t["median"][metric] if t else 0 for t in tools]
            # The runs' spread around the median.
            err = [[t["median"][metric] - t["min"][metric] if t else 0 for t in tools],
                   [t["max"][metric] - t["median"][metric] if t else 0 for t in tools]]
            bars = ax.bar(xs, ys, width, label=name, color=color, yerr=err, capsize=2,
                          error_kw={"elinewidth": 0.8})
            ax.bar_label(bars, labels=[f"{y:.0f}" if t else "" for y, t in zip(ys, tools)],
                         fontsize=7, padding=1)
        ax.set_xticks(range(len(labels)), [LABELS.get(l, l) for l in labels])
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    axes[0].legend(fontsize=7, loc="upper right")
    m = res["machine"]
    fig.suptitle(f"kmigrate's engines vs MirrorMaker 2, kcat and the brokers' limit: medians of "
                 f"{m.get('runs', '?')} run(s) (same backlog, same {m.get('cpus', '?')}-core "
                 f"machine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
