"""Benchmark of the web console (issue 18): server time of every page over a state of 1,000 feeds
and 1,000,000 stored articles, and of the playground for each shipped rule's query over the
newest 100,000 of them.

The state is written straight into SQLite (newswatch migrates an empty database first, so the
schema is the real one; the article text comes from gen.py's wire-copy generator), then
`newswatch console` serves it on 127.0.0.1 and every page is fetched over HTTP, timed from the
request to the last byte (on loopback that is the server's time plus a fraction of a millisecond).

CLI:  console.py --bin target/release/newswatch --work DIR [--feeds 1000] [--articles 1000000]
      [--matches 100000] [--repeat 15] [--fill-only]
"""

import argparse
import glob
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULE_IDS = None  # filled from the shipped rules


def shipped_rules():
    """(id, query) of every shipped rule, read with a plain TOML parser."""
    import tomllib
    out = []
    for f in sorted(glob.glob(os.path.join(REPO, "rules", "*.toml"))):
        with open(f, "rb") as fh:
            for r in tomllib.load(fh).get("rule", []):
                out.append((r["id"], r["query"]))
    return out


def write_config(work, feeds):
    os.makedirs(work, exist_ok=True)
    lines = [
        f'state_dir = "{work}/state"',
        f'rules = ["{REPO}/rules/*.toml"]',
        "[delivery]", 'method = "file"', f'dir = "{work}/outbox"', 'from = "bench <b@localhost>"',
        "[[digest]]", 'name = "briefing"', 'to = ["a@example.org"]',
    ]
    for i in range(feeds):
        lines += ["[[feed]]", f'name = "feed-{i:04}"', f'url = "https://feed{i:04}.example/rss"',
                  f'tags = ["{gen.random.Random(i).choice(["uk", "us", "eu", "ua"])}"]']
    path = os.path.join(work, "bench.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def fill_state(db, feeds, articles, matches, rules):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = int(time.time())
    con.executemany(
        "INSERT OR IGNORE INTO feeds (name, url, last_success, next_due, items_seen, polls, health)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(f"feed-{i:04}", f"https://feed{i:04}.example/rss", now - 600, now + 300,
          articles // feeds, 100, "failing" if i % 97 == 0 else "ok") for i in range(feeds)])
    ids = [r for r, _ in rules]
    batch = []
    match_every = max(1, articles // matches)
    article_id = 0
    for n in range(articles):
        feed = n % feeds
        it = gen.make_item(7, feed, n // feeds, gen.feed_has_content(7, feed))
        first_seen = now - (articles - n) * 2  # one article every 2 s, oldest first
        body = " ".join(it["paragraphs"][2:])
        batch.append((n + 1, f"feed-{feed:04}", f"k{n}", f"https://feed{feed:04}.example/{n}",
                      it["title"], it["summary"], body, json.dumps([it["author"]]), "[]",
                      "en", first_seen, first_seen, first_seen))
        if len(batch) == 20_000:
            insert_articles(con, batch, ids, match_every, now)
            batch = []
        article_id = n + 1
    if batch:
        insert_articles(con, batch, ids, match_every, now)
    con.executemany(
        "INSERT INTO outbox (digest_name, message_id, sender, recipients, raw, status, attempts,"
        " next_attempt, created, sent, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'digest')",
        [("briefing", f"<d{i}@bench>", "b@localhost", '["a@example.org"]',
          b"Subject: digest\r\nContent-Type: text/html\r\n\r\n<p>digest</p>", "sent", 1,
          now, now - i * 3600, now - i * 3600) for i in range(500)])
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return article_id


def insert_articles(con, batch, ids, match_every, now):
    con.executemany(
        "INSERT INTO articles (id, feed, key, link, title, summary, content, authors, categories,"
        " lang, published, first_seen, alertable, last_seen) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)", batch)
    rows = []
    for a in batch:
        if a[0] % match_every:
            continue
        word = re.match(r"\w+", a[4])
        end = word.end() if word else 0
        hits = json.dumps([{"field": "title", "start": 0, "end": end, "text": a[4][:end]}])
        rows.append((a[0], ids[a[0] % len(ids)], hits, now - (a[0] % (20 * 86400)), a[11] * 1000))
    con.executemany(
        "INSERT INTO matches (article, rule_id, hits, recorded, matched_ms) VALUES (?, ?, ?, ?, ?)",
        rows)


def timed_get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        body = r.read()
        status = r.status
    return (time.perf_counter() - t) * 1000, status, body


def rss_kib(pid):
    """The resident set of process `pid` in KiB (Linux), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=1_000_000)
    ap.add_argument("--matches", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--fill-only", action="store_true", help="write the state and stop")
    a = ap.parse_args(argv)
    rules = shipped_rules()
    config = write_config(a.work, a.feeds)
    db = os.path.join(a.work, "state", "newswatch.db")
    if not os.path.exists(db):
        # An empty database with the real schema: `status` opens read-only, `check` does not
        # migrate, so let the binary create it the way the daemon does (one cycle, no feed due
        # is reachable: every URL is on example, which --once would try; use `digest preview`).
        subprocess.run([a.bin, "digest", "preview", "briefing", "--config", config, "--out",
                        os.path.join(a.work, "empty.html")], check=True, capture_output=True)
        t = time.time()
        fill_state(db, a.feeds, a.articles, a.matches, rules)
        print(f"filled {a.articles} articles in {time.time() - t:.0f} s", file=sys.stderr)
    if a.fill_only:
        return
    proc = subprocess.Popen([a.bin, "console", "--config", config, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = proc.stdout.readline().strip().removeprefix("console: ").rstrip("/")
        pages = ["/", "/feeds", "/feeds/feed-0042", "/matches", "/matches?rule=ceasefire",
                 "/matches?feed=feed-0042", "/matches?lang=en&since=7d", "/matches?before=500000",
                 "/rules", "/rules/ceasefire", "/digests", "/digests/3"]
        print(f"| page | median ms | p95 ms | bytes |")
        print(f"| --- | ---: | ---: | ---: |")
        for p in pages:
            times = []
            for _ in range(a.repeat):
                ms, status, body = timed_get(base + p)
                assert status == 200, (p, status)
                times.append(ms)
            times.sort()
            print(f"| `{p}` | {statistics.median(times):.1f} | {times[int(len(times) * 0.95) - 1]:.1f} | {len(body)} |")
        rss_before = rss_kib(proc.pid)
        first, _, _ = timed_get(base + "/playground?partial=1&q=Healey")
        rss_after = rss_kib(proc.pid)
        print(f"\nplayground: first use loads and indexes the corpus: {first:.0f} ms; server RSS "
              f"{rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after\n")
        print("| shipped rule's query | median ms | p95 ms | hits | evaluated |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for rid, q in rules:
            times = []
            for _ in range(a.repeat):
                ms, status, body = timed_get(base + "/playground?partial=1&q=" + urllib.parse.quote(q))
                assert status == 200, (rid, status)
                times.append(ms)
            text = body.decode()
            m = re.search(r'hit-count">(\d+)</b> hits; evaluated <b id="evaluated">(\d+)</b> of (\d+)',
                          text)
            times.sort()
            hits, searched, corpus = m.groups() if m else ("?", "?", "?")
            print(f"| {rid} | {statistics.median(times):.0f} | {times[int(len(times) * 0.95) - 1]:.0f} | {hits} | {searched} of {corpus} |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
