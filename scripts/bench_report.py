#!/usr/bin/env python3
"""Figures of scripts/bench: reads its work directory, writes results.json, results.md and
chart.png there, and prints the Markdown table and the ratios.

usage: bench_report.py WORK_DIR LABEL... (labels: 1k, 100b; one subdirectory each)
"""
import json
import os
import re
import sys

GIB = 1 << 30
RSS_GOAL_MIB = 256
TOOLS = [  # key, name in the table
    ("kmigrate", "kmigrate run"),
    ("mm2", "MirrorMaker 2"),
    ("kcat", "kcat pipe"),
    ("consumer-perf", "consumer limit"),
    ("producer-perf", "producer limit"),
]
LABELS = {"1k": "1 KiB records", "100b": "100-byte records"}


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


def measure(d, key, manifest):
    """One tool's figures. Throughput is the backlog's keys + values over the wall time; for
    the perf tools, over the time they measure themselves (JVM start-up excluded)."""
    records, payload = manifest["records"], manifest["payload_bytes"]
    r = gnu_time(os.path.join(d, f"time-{key}.txt"))
    r["process_wall_s"] = float(read(os.path.join(d, f"wall-{key}.txt")))
    r["wall_s"] = r["process_wall_s"]
    if key == "consumer-perf":
        line = [l for l in read(os.path.join(d, "consumer-perf.out")).splitlines() if l.strip()][-1]
        cols = [c.strip() for c in line.split(",")]
        # start, end, MB, MB/sec, nMsg, nMsg/sec, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
        r["wall_s"] = float(cols[7]) / 1000
        r["records_read"] = int(cols[4])
    elif key == "producer-perf":
        line = [l for l in read(os.path.join(d, "producer-perf.out")).splitlines()
                if "records sent" in l][-1]
        m = re.search(r"([\d.]+) records/sec", line)
        r["wall_s"] = records / float(m.group(1))
        r["line"] = line.strip()
    elif key == "kmigrate":
        m = re.search(r"this run: [\d,]+ records, .* \(([\d,]+) rec/s, ([\d.]+) MB/s\)",
                      read(os.path.join(d, "kmigrate.out")))
        if m:  # its own figure for the copy phase alone (plan and offsets excluded)
            r["copy_phase_s"] = records / int(m.group(1).replace(",", ""))
    elif key == "mm2":
        # From its first record on the target to the last (JVM and Connect start-up excluded).
        r["copy_phase_s"] = float(read(os.path.join(d, "copy-phase-mm2.txt")))
    r["mb_s"] = payload / r["wall_s"] / 1e6
    r["rec_s"] = records / r["wall_s"]
    if r.get("copy_phase_s"):
        r["copy_phase_mb_s"] = payload / r["copy_phase_s"] / 1e6
    r["cpu_s_per_gib"] = r["cpu_s"] / (payload / GIB)
    return r


def load_kv(path):
    out = {}
    if os.path.exists(path):
        for line in read(path).splitlines():
            k, _, v = line.partition("=")
            out[k] = v
    return out


def main():
    work, labels = sys.argv[1], sys.argv[2:]
    res = {"machine": load_kv(os.path.join(work, "machine.txt")), "sizes": {}}
    for label in labels:
        d = os.path.join(work, label)
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        s = {"manifest": manifest,
             "load_start": load_kv(os.path.join(d, "load-start.txt")).get("load"),
             "load_end": load_kv(os.path.join(d, "load-end.txt")).get("load"),
             "tools": {k: measure(d, k, manifest) for k, _ in TOOLS}}
        v = gnu_time(os.path.join(d, "time-verify.txt"))
        v["wall_s"] = float(read(os.path.join(d, "wall-verify.txt")))
        v["mb_s"] = manifest["payload_bytes"] / v["wall_s"] / 1e6
        v["rec_s"] = manifest["records"] / v["wall_s"]
        s["verify"] = v
        t = s["tools"]
        km, mm = t["kmigrate"], t["mm2"]
        limit = min(t["consumer-perf"]["rec_s"], t["producer-perf"]["rec_s"])
        s["ratios"] = {
            "kmigrate_vs_mm2_throughput": km["rec_s"] / mm["rec_s"],
            "kmigrate_vs_mm2_cpu_per_gib": km["cpu_s_per_gib"] / mm["cpu_s_per_gib"],
            "limit_rec_s": limit,
            "kmigrate_vs_limit": km["rec_s"] / limit,
            "kmigrate_rss_vs_goal": km["rss_mib"] / RSS_GOAL_MIB,
        }
        if km.get("copy_phase_mb_s") and mm.get("copy_phase_mb_s"):
            s["ratios"]["copy_phase_kmigrate_vs_mm2"] = km["copy_phase_mb_s"] / mm["copy_phase_mb_s"]
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


def markdown(res):
    m = res["machine"]
    lines = [
        f"Measured {m.get('started_utc', '?')} on {m.get('cpus', '?')} CPUs "
        f"({m.get('cpu_model', '?')}), {m.get('mem_gib', '?')} GiB, shared with both brokers; "
        f"load average at start {m.get('load_start', '?')}, at end {m.get('load_end', '?')}; "
        f"kmigrate {m.get('kmigrate_commit', '?')}; brokers Kafka 4.4.0 (single-node KRaft); "
        f"MirrorMaker 2 and the perf tools Kafka 4.3.1; kcat {m.get('kcat', '?')}; "
        f"{m.get('java', 'java ?')}.",
        "",
        "| records | tool | wall s | MB/s | records/s | CPU s | CPU s/GiB | peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, s in res["sizes"].items():
        man = s["manifest"]
        head = f"{LABELS.get(label, label)}, {man['records']:,} ({man['payload_bytes'] / 2**20:,.0f} MiB)"
        for key, name in TOOLS:
            r = s["tools"][key]
            lines.append(f"| {head} | {name} | {r['wall_s']:.1f} | {r['mb_s']:.0f} | "
                         f"{r['rec_s']:,.0f} | {r['cpu_s']:.1f} | {r['cpu_s_per_gib']:.1f} | "
                         f"{r['rss_mib']:.0f} |")
            head = ""
        v = s["verify"]
        lines.append(f"| | kmigrate verify | {v['wall_s']:.1f} | {v['mb_s']:.0f} | "
                     f"{v['rec_s']:,.0f} | {v['cpu_s']:.1f} | | {v['rss_mib']:.0f} |")
    lines += ["", "| records | kmigrate / MM2 throughput (goal ≥ 2) | kmigrate / MM2 CPU s per GiB "
              "(goal ≤ 0.5) | kmigrate / brokers' limit (goal ≥ 0.8) | kmigrate peak RSS (goal < 256 MiB) |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for label, s in res["sizes"].items():
        q = s["ratios"]
        lines.append(f"| {LABELS.get(label, label)} | {q['kmigrate_vs_mm2_throughput']:.2f} | "
                     f"{q['kmigrate_vs_mm2_cpu_per_gib']:.2f} | {q['kmigrate_vs_limit']:.2f} | "
                     f"{s['tools']['kmigrate']['rss_mib']:.0f} MiB |")
    for label, s in res["sizes"].items():
        km, mm = s["tools"]["kmigrate"], s["tools"]["mm2"]
        if "copy_phase_kmigrate_vs_mm2" in s["ratios"]:
            lines += ["", f"{LABELS.get(label, label)}, copy phase alone (kmigrate: its copy "
                      f"summary, without plan and offsets; MirrorMaker 2: first record on the "
                      f"target to the last, without its start-up): kmigrate "
                      f"{km['copy_phase_mb_s']:.0f} MB/s, MirrorMaker 2 {mm['copy_phase_mb_s']:.0f} "
                      f"MB/s, ratio {s['ratios']['copy_phase_kmigrate_vs_mm2']:.2f}."]
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
    names = [n for _, n in TOOLS]
    colors = ["#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#98df8a"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    width = 0.8 / len(TOOLS)
    for ax, metric, title in ((axes[0], "mb_s", "throughput, MB/s (higher is better)"),
                              (axes[1], "cpu_s_per_gib", "CPU s per GiB (lower is better)")):
        for i, (key, name) in enumerate(TOOLS):
            xs = [j + (i - (len(TOOLS) - 1) / 2) * width for j in range(len(labels))]
            ys = [res["sizes"][l]["tools"][key][metric] for l in labels]
            bars = ax.bar(xs, ys, width, label=name, color=colors[i])
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(labels)), [LABELS.get(l, l) for l in labels])
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("kmigrate vs MirrorMaker 2, kcat and the brokers' limit "
                 "(same backlog, same 2-core machine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
