"""The scaling table of issue 22: cold-cycle CPU per article and peak RSS of newswatch over a grid
of feed counts and rule-set sizes, each cell one `scripts/bench/run --tools newswatch` run.

    python3 scripts/bench/scale_table.py --newswatch target/release/newswatch \
        --feeds 50,200,1000 --rules 100,1000,10000 [--repeat 3] [--data DIR] [--out DIR]

Each feed count is one harness run over every rule size (the harness generates and caches the
feeds and rules under --data). Prints a Markdown table: per cell the median cold CPU per article
(µs) and the median cold peak RSS (MB), with the harness's results file for each row.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_row(args, feeds):
    """One harness run at `feeds`; returns {rules: (cpu per article µs, peak RSS MB)} and its file."""
    before = set(glob.glob(os.path.join(args.out, "bench-*.json")))
    cmd = [os.path.join(ROOT, "scripts/bench/run"), "--tools", "newswatch", "--feeds", str(feeds),
           "--items", str(args.items), "--rules", args.rules, "--repeat", str(args.repeat),
           "--newswatch", args.newswatch, "--data", args.data, "--out", args.out]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    new = sorted(set(glob.glob(os.path.join(args.out, "bench-*.json"))) - before)
    if not new:
        raise SystemExit(f"scale_table: the harness wrote no results for {feeds} feeds")
    with open(new[-1]) as fh:
        raw = json.load(fh)["results"]["raw"]
    articles = feeds * args.items
    row = {}
    for key, repeats in raw.items():
        tool, rules = key.split("|")
        cold = [c for rep in repeats for c in rep if c["cycle"] == "cold" and c["exit"] == 0]
        if tool != "newswatch" or not cold:
            continue
        cpu = statistics.median(c["cpu_s"] for c in cold)
        rss = statistics.median(c["peak_rss_mb"] for c in cold)
        row[int(rules)] = (cpu / articles * 1e6, rss)
    return row, new[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--newswatch", required=True)
    ap.add_argument("--feeds", default="50,200,1000,10000")
    ap.add_argument("--rules", default="100,1000,10000,100000")
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-results"))
    args = ap.parse_args()
    sizes = [int(r) for r in args.rules.split(",") if r.strip()]
    print("| feeds × items | " + " | ".join(f"{r:,} rules: µs/article, MB" for r in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for feeds in (int(f) for f in args.feeds.split(",") if f.strip()):
        row, path = run_row(args, feeds)
        cells = [f"{row[r][0]:.0f} µs, {row[r][1]:.1f} MB" if r in row else "failed" for r in sizes]
        print(f"| {feeds:,} × {args.items} | " + " | ".join(cells) + f" |  <!-- {os.path.basename(path)} -->",
              flush=True)


if __name__ == "__main__":
    main()
