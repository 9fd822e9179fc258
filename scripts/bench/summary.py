#!/usr/bin/python3
"""Collects build/bench-results/*.json into a markdown table (summary.md) and prints it."""
import sys
import json
import os

from common import RESULTS, fmt, machine

ORDER = ["sequential", "random", "images", "clips", "loader", "bigdir"]


def main():
    m = machine()
    lines = [f"Machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, "
             f"Linux {m['kernel']}, no GPU (CPU backend).", "",
             "| bench | vidfs | peer | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    mem = []
    for name in ORDER:
        p = os.path.join(RESULTS, name + ".json")
        if not os.path.exists(p):
            lines.append(f"| {name} | (not run) | | | | |")
            continue
        with open(p) as f:
            d = json.load(f)
        for r in d["rows"]:
            goal = f">= {r['goal']}x" if r["goal"] else "-"
            met = ("yes" if r["met"] else "**no**") if r["goal"] else "-"
            lines.append(f"| {r['bench']} | {fmt(r['vidfs'])} {r['unit']} | "
                         f"{fmt(r['peer'])} {r['unit']} | {r['ratio']:.2f}x | {goal} | {met} |")
        peak = d["details"].get("peak_rss_mib") or d["details"].get("memory", {}).get("peak_rss_mib")
        if peak:
            mem.append(f"{name} {peak:.0f} MiB")
    lines += ["", "Ratios are vidfs/peer for rates and peer/vidfs for times (higher is better "
              "for vidfs). Peak vidfs RSS (cache_mb=1024 unless noted): " + ", ".join(mem) + "."]
    if any(json.load(open(os.path.join(RESULTS, n + ".json"))).get("quick")
           for n in ORDER if os.path.exists(os.path.join(RESULTS, n + ".json"))):
        lines.append("(--quick run: fewer repetitions and items.)")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
