"""Loopback feed server for the benchmark: serves gen.py's feeds with ETag/Last-Modified and 304s.

Listens on a loopback address only (127.0.0.1 unless --host names another 127.x.y.z), prints its
port on the first line of stdout. Feeds are /feeds/fNNNNN.xml. Control (for the harness, not counted):
GET /_ctl/stats, POST /_ctl/zero (counters), POST /_ctl/reset (every feed back to version 0, counters
zeroed), POST /_ctl/change?fraction=F&round=R (a deterministic F share of feeds publishes 5 new items:
a new version with a new ETag and Last-Modified).
Conditional requests follow RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.

For the latency benchmark: --delay MIN,MAX makes every feed response (200 or 304) wait a uniformly
drawn MIN..MAX seconds before its first byte (a slow host); POST /_ctl/probe?feed=N publishes one
probe item at the top of feed N (a new version), and GET /_ctl/probes lists every probe with the
wall-clock time it was published and the time a 200 response carrying it was first sent.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402


class State:
    def __init__(self, feed_dir):
        self.dir = feed_dir
        with open(os.path.join(feed_dir, "meta.json")) as fh:
            self.meta = json.load(fh)
        self.lock = threading.Lock()
        self.version = {}  # feed -> version (absent = 0)
        self.body = {}  # feed -> bytes of a version > 0
        self.modified = {}  # feed -> unix time of a version > 0
        # Latency probes: seq -> {"feed", "added", "served"}; feed -> its probe seqs, newest first.
        self.probes = {}
        self.feed_probes = {}
        self.base = {}  # feed -> version-0 bytes, for probes (only the probe thread writes it)
        self.requested = set()  # feeds requested at least once since the last reset
        self.zero()

    def zero(self):
        with self.lock:
            self.c = {"requests": 0, "ok": 0, "not_modified": 0, "not_found": 0, "bytes": 0,
                      "conditional": 0}

    def reset(self):
        with self.lock:
            self.version.clear()
            self.body.clear()
            self.modified.clear()
            self.probes.clear()
            self.feed_probes.clear()
            self.requested.clear()
        self.zero()

    def change(self, fraction, rnd, now):
        n = self.meta["feeds"]
        k = max(1, round(n * fraction))
        chosen = random.Random(f"change:{self.meta['seed']}:{rnd}").sample(range(1, n + 1), k)
        for f in chosen:
            v = self.version.get(f, 0) + 1
            body = gen.render_feed(self.meta["seed"], f, self.meta["items"], v, self.meta["base_time"])
            with self.lock:
                self.version[f] = v
                self.body[f] = body
                # Strictly later than version 0 and than any earlier change.
                self.modified[f] = max(now, self.meta["base_time"] + v)
        return sorted(chosen)

    def add_probe(self, f):
        """Publishes the next probe item at the top of feed f; returns its sequence number.

        The feed keeps its version-0 items under its last PROBES_KEPT probes, so its size stays
        put however long the run. ETag and Last-Modified change with every probe.
        """
        base = self.base.get(f)
        if base is None:
            base = gen.render_feed(self.meta["seed"], f, self.meta["items"], 0, self.meta["base_time"])
            self.base[f] = base
        with self.lock:
            seq = len(self.probes) + 1
            now = time.time()
            self.probes[seq] = {"feed": f, "added": now, "served": None}
            kept = [seq, *self.feed_probes.get(f, [])][:PROBES_KEPT]
            self.feed_probes[f] = kept
            items = "".join(gen.render_probe_item(self.meta["seed"], f, s, self.probes[s]["added"])
                            for s in kept).encode("utf-8")
            at = base.index(b"<item>")
            self.version[f] = self.version.get(f, 0) + 1
            self.body[f] = base[:at] + items + base[at:]
            self.modified[f] = max(int(now), self.meta["base_time"] + self.version[f])
        return seq

    def served(self, probes, when):
        """Notes the first 200 response that carried each of these probes."""
        with self.lock:
            for s in probes:
                if self.probes[s]["served"] is None:
                    self.probes[s]["served"] = when

    def lookup(self, f):
        """(etag, last_modified_unix, body or None to read version 0 from disk, the probes in it)."""
        with self.lock:
            v = self.version.get(f, 0)
            if v == 0:
                return f'"f{f}-v0"', self.meta["base_time"], None, ()
            return f'"f{f}-v{v}"', self.modified[f], self.body[f], tuple(self.feed_probes.get(f, ()))


PROBES_KEPT = 10


def make_handler(state, delay):
    rng = random.Random(f"delay:{state.meta['seed']}")
    rng_lock = threading.Lock()

    def wait():
        if delay[1] <= 0:
            return
        with rng_lock:
            d = rng.uniform(*delay)
        time.sleep(d)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real feed hosts
        # Headers and body go out as two writes; with Nagle on, a keep-alive client's delayed ACK
        # stalls every response by ~40 ms (measured: 215 feeds/s with 8 connections).
        disable_nagle_algorithm = True
        server_version = "bench-feeds/1"

        def log_message(self, *args):
            pass

        def reply(self, code, body=b"", ctype="text/plain", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            if code != 304:
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if code != 304 and self.command != "HEAD":
                self.wfile.write(body)

        def do_POST(self):
            u = urlparse(self.path)
            q = parse_qs(u.query)
            if u.path == "/_ctl/zero":
                state.zero()
                return self.reply(200, b"{}", "application/json")
            if u.path == "/_ctl/reset":
                state.reset()
                return self.reply(200, b"{}", "application/json")
            if u.path == "/_ctl/change":
                now = int(float(q.get("now", ["0"])[0])) or int(__import__("time").time())
                chosen = state.change(float(q["fraction"][0]), int(q["round"][0]), now)
                return self.reply(200, json.dumps({"changed": chosen}).encode(), "application/json")
            if u.path == "/_ctl/probe":
                seq = state.add_probe(int(q["feed"][0]))
                return self.reply(200, json.dumps({"seq": seq}).encode(), "application/json")
            self.reply(404, b"no such control\n")

        def do_GET(self):
            u = urlparse(self.path)
            if u.path == "/_ctl/stats":
                with state.lock:
                    c = dict(state.c, distinct_feeds=len(state.requested))
                return self.reply(200, json.dumps(c).encode(), "application/json")
            if u.path == "/_ctl/probes":
                with state.lock:
                    body = json.dumps(state.probes).encode()
                return self.reply(200, body, "application/json")
            name = u.path.rsplit("/", 1)[-1]
            if not (u.path.startswith("/feeds/f") and name.endswith(".xml")):
                with state.lock:
                    state.c["not_found"] += 1
                return self.reply(404, b"not found\n")
            try:
                f = int(name[1:-4])
            except ValueError:
                f = 0
            if not 1 <= f <= state.meta["feeds"]:
                with state.lock:
                    state.c["not_found"] += 1
                return self.reply(404, b"not found\n")
            wait()
            etag, lm, body, probes = state.lookup(f)
            headers = [("ETag", etag), ("Last-Modified", formatdate(lm, usegmt=True)),
                       ("Cache-Control", "max-age=0")]
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            fresh = False
            if inm is not None:
                fresh = etag in [t.strip().removeprefix("W/") for t in inm.split(",")] or inm.strip() == "*"
            elif ims is not None:
                try:
                    fresh = lm <= parsedate_to_datetime(ims).timestamp()
                except (TypeError, ValueError):
                    fresh = False
            with state.lock:
                state.c["requests"] += 1
                state.requested.add(f)
                if inm is not None or ims is not None:
                    state.c["conditional"] += 1
            if fresh:
                with state.lock:
                    state.c["not_modified"] += 1
                return self.reply(304, headers=headers)
            if body is None:
                with open(os.path.join(state.dir, name), "rb") as fh:
                    body = fh.read()
            with state.lock:
                state.c["ok"] += 1
                state.c["bytes"] += len(body)
            if probes:
                state.served(probes, time.time())
            self.reply(200, body, "application/rss+xml; charset=utf-8", headers)

        do_HEAD = do_GET

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", required=True, help="directory written by gen.py feeds")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", help="a loopback address to listen on")
    ap.add_argument("--delay", default="0,0", help="MIN,MAX seconds before every feed response")
    a = ap.parse_args()
    if not a.host.startswith("127."):
        raise SystemExit("server.py: --host must be a loopback address (127.x.y.z)")
    delay = tuple(float(x) for x in a.delay.split(","))
    state = State(a.feeds)
    srv = Server((a.host, a.port), make_handler(state, delay))
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
