"""Markdown tables from one or more results files of harness.py (for BENCHMARKS.md).

    report.py target/bench-results/bench-A.json [bench-B.json ...]

Later files win for the same (tool, rules). Tools without results (newswatch before it runs) show
as "pending".
"""

import json
import sys

CYCLES = ["cold", "unchanged", "changed"]
ORDER = ["newswatch", "newswatch-pg", "rss2email", "rss2email-nofilter", "newsboat"]


def load(paths):
    med, meta = {}, []
    for p in paths:
        with open(p) as fh:
            r = json.load(fh)
        meta.append((p, r["args"]["repeat"], r["machine"]["loadavg_at_start"]))
        for k, v in r.get("results", {}).get("medians", {}).items():
            tool, rules = k.split("|")
            med[(tool, rules)] = v
    return med, meta


def main(paths):
    med, meta = load(paths)
    rule_sets = sorted({r for (t, r) in med if r != "-"}, key=int) or ["1000"]
    print("| tool | rules | cycle | wall s | CPU s | peak RSS MB | requests | 304s | emails | runs |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for tool in ORDER:
        keys = [k for k in med if k[0] == tool]
        if tool == "newswatch" and not keys:
            for rules in rule_sets:
                for c in CYCLES:
                    print(f"| newswatch | {rules} | {c} | pending | pending | pending | | | | |")
            continue
        for key in sorted(keys, key=lambda k: (k[1] != "-", int(k[1]) if k[1] != "-" else 0)):
            for c in CYCLES:
                m = med[key].get(c)
                if m is None:
                    continue
                if "failed" in m:
                    print(f"| {tool} | {key[1]} | {c} | failed ({m['failed']}) | | | | | | |")
                    continue
                print(f"| {tool} | {key[1]} | {c} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['peak_rss_mb']:.1f} "
                      f"| {m['requests']:.0f} | {m['not_modified']:.0f} | {m['emails']:.0f} | {m['n']} |")
    print()
    for p, rep, load_ in meta:
        print(f"<!-- {p}: --repeat {rep}, load average at start {' '.join(load_)} -->")


if __name__ == "__main__":
    main(sys.argv[1:])
