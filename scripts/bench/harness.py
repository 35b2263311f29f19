"""End-to-end benchmark driver (issue 7): newswatch against rss2email and newsboat, same feeds, same protocol.

For every tool and rule set: the feed server is reset, the tool starts from an empty state directory,
and runs three cycles: cold (every feed new), unchanged (every feed should answer 304) and changed
(a deterministic 10 % of feeds publish 5 new items). Each cycle is one child process, measured with
wait4(): wall time, user+sys CPU, peak RSS; the server counts requests and 304s, the SMTP sink counts
emails. Medians over --repeat runs. Everything listens on 127.0.0.1; every child has a deadline.
Invoked by scripts/bench/run, which documents the options.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import gen  # noqa: E402
import latency  # noqa: E402

CYCLES = ["cold", "unchanged", "changed"]
R2E_VERSION = "3.14"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"
# Process groups of measured children still running: killed on any exit of the harness.
LIVE = set()


def kill_live():
    for pgid in list(LIVE):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        LIVE.discard(pgid)


def on_signal(signum, _frame):
    raise SystemExit(f"interrupted by signal {signum}")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- services --------------------------------------------------------------------------------

class Services:
    """The feed server and the SMTP sink, as child processes we own and always stop."""

    def __init__(self, feed_dir, work, probe_word=None):
        self.procs = []
        self.feed_dir = feed_dir
        self.mail_log = os.path.join(work, "smtp-sink.jsonl")
        open(self.mail_log, "w").close()
        self.http = self._start([sys.executable, os.path.join(HERE, "server.py"), "--feeds", feed_dir],
                                os.path.join(work, "server.err"))
        self.http_port = self._port(self.http)
        sink = [sys.executable, os.path.join(HERE, "smtpsink.py"), "--log", self.mail_log]
        if probe_word:
            sink += ["--probes", probe_word]
        self.smtp = self._start(sink, os.path.join(work, "smtpsink.err"))
        self.smtp_port = self._port(self.smtp)
        self.base = f"http://127.0.0.1:{self.http_port}"

    def _start(self, cmd, err_path):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(err_path, "w"), text=True,
                             start_new_session=True)
        self.procs.append(p)
        return p

    @staticmethod
    def _port(p):
        line = p.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"service did not start (pid {p.pid}); see its .err file")
        return int(line)

    def ctl(self, method, path):
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def stats(self):
        return self.ctl("GET", "/_ctl/stats")

    def mails(self):
        n = size = 0
        with open(self.mail_log) as fh:
            for line in fh:
                n += 1
                size += json.loads(line)["bytes"]
        return n, size

    def server_cpu(self):
        return proc_cpu(self.http.pid)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def proc_cpu(pid):
    """utime+stime of a live process, in seconds (proc(5): fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ---- measuring one child ---------------------------------------------------------------------

def measure(cmd, env, cwd, log_path, timeout):
    """Runs cmd to completion (killed at `timeout`), returns wall, CPU and peak RSS of it alone.

    Peak RSS comes from GNU time's %M, not from our own wait4(): Linux carries a process's RSS high-water
    mark across execve, so a child forked from this ~25 MB Python process would never report less than
    that. GNU time is a ~1 MB parent, so its child's figure is the tool's own.
    """
    rss_path = log_path + ".maxrss"
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen([GNU_TIME, "-q", "-f", "%M", "-o", rss_path, *cmd], env=env, cwd=cwd,
                             stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        LIVE.add(p.pid)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
            LIVE.discard(p.pid)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = ru.ru_maxrss  # fallback (an upper bound, see above) if time wrote nothing
    try:
        with open(rss_path) as fh:
            peak_kb = int(fh.read().split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mb": peak_kb / 1024, "exit": p.returncode, "timed_out": timed_out.is_set(),
    }


# ---- tools -----------------------------------------------------------------------------------

class Tool:
    name = "?"

    def prepare(self, work, svc, feeds, rules):
        """Writes the tool's config for this run; returns nothing. `rules` is (toml, json) or None."""

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)


class Newswatch(Tool):
    """newswatch run --once; with `pg_socket`, on a fresh PostgreSQL database of that server
    (`newswatch-pg`, issue 17; scripts/bench/pg-server starts one) instead of SQLite."""

    name = "newswatch"
    databases = 0

    def __init__(self, binary, concurrency, pg_socket=None):
        self.binary = binary
        self.concurrency = concurrency
        self.pg_socket = pg_socket
        if pg_socket:
            self.name = "newswatch-pg"

    def store_table(self):
        if not self.pg_socket:
            return ""
        Newswatch.databases += 1
        db = f"bench_{os.getpid()}_{Newswatch.databases}"
        subprocess.run(["/usr/lib/postgresql/15/bin/createdb", "-h", self.pg_socket,
                        "-U", "newswatch", db], check=True)
        return (f'\n[store]\nurl = "postgresql://newswatch@localhost/{db}?host={self.pg_socket}"\n'
                'node_name = "bench"\n')

    def write_config(self, work, svc, feeds, rules_toml, interval="24h"):
        lines = [
            "# generated by scripts/bench/harness.py\n",
            f'state_dir = "{work}/state"\n',
            f'rules = ["{rules_toml}"]\n',
            'new_feed_window = "3650d"\n',
            f'\n[fetch]\ninterval = "{interval}"\ntimeout = "60s"\n',
            # Every feed is on one loopback host: lift the per-host politeness (default one request
            # at a time, 1 s apart), as rss2email's same-server-fetch-interval = 0 does for it.
            f'per_host = {self.concurrency or 8}\nhost_spacing = "0s"\n',
        ]
        if self.concurrency:
            lines.append(f"concurrency = {self.concurrency}\n")
        for f in range(1, feeds + 1):
            lines.append(f'\n[[feed]]\nname = "f{f:05d}"\nurl = "{svc.base}/feeds/f{f:05d}.xml"\n')
        lines.append(
            f'\n[delivery]\nmethod = "smtp"\nfrom = "newswatch <newswatch@localhost>"\n'
            f'host = "127.0.0.1"\nport = {svc.smtp_port}\nsecurity = "none"\n'
            '\n[[digest]]\nname = "briefing"\nto = ["Analyst <analyst@example.org>"]\n'
        )
        lines.append(self.store_table())
        path = os.path.join(work, "newswatch.toml")
        with open(path, "w") as fh:
            fh.writelines(lines)
        return path

    def prepare(self, work, svc, feeds, rules):
        self.config = self.write_config(work, svc, feeds, rules[0])

    def command(self):
        return [self.binary, "run", "--once", "--config", self.config]


class Rss2email(Tool):
    """rss2email in digest mode; with rules, the post-process hook in r2e_filter.py filters entries."""

    def __init__(self, venv, use_filter):
        self.venv = venv
        self.use_filter = use_filter
        self.name = "rss2email" if use_filter else "rss2email-nofilter"

    def prepare(self, work, svc, feeds, rules):
        self.cfg = os.path.join(work, "rss2email.cfg")
        self.data = os.path.join(work, "rss2email.json")
        self.rules_json = rules[1] if (rules and self.use_filter) else ""
        lines = [
            "[DEFAULT]\n", "from = rss2email <r2e@localhost>\n", "to = analyst@example.org\n",
            "digest = True\n", "email-protocol = smtp\n", "smtp-server = 127.0.0.1\n",
            f"smtp-port = {svc.smtp_port}\n", "smtp-ssl = False\n", "smtp-auth = False\n",
            "same-server-fetch-interval = 0\n", "verbose = warning\n",
        ]
        if self.rules_json:
            lines.append("post-process = r2e_filter keep\n")
        for f in range(1, feeds + 1):
            lines.append(f"\n[feed.f{f:05d}]\nurl = {svc.base}/feeds/f{f:05d}.xml\n")
        with open(self.cfg, "w") as fh:
            fh.writelines(lines)

    def command(self):
        return [os.path.join(self.venv, "bin", "r2e"), "-c", self.cfg, "-d", self.data, "run"]

    def env(self):
        e = dict(os.environ)
        e["PYTHONPATH"] = HERE
        e["BENCH_R2E_RULES"] = self.rules_json
        return e


class Newsboat(Tool):
    """newsboat's reload: fetch + parse + store into SQLite, no rules, no mail: a native floor."""

    name = "newsboat"

    def __init__(self, threads):
        self.threads = threads

    def prepare(self, work, svc, feeds, rules):
        self.work = work
        self.urls = os.path.join(work, "urls")
        with open(self.urls, "w") as fh:
            for f in range(1, feeds + 1):
                fh.write(f"{svc.base}/feeds/f{f:05d}.xml\n")
        self.conf = os.path.join(work, "newsboat.conf")
        with open(self.conf, "w") as fh:
            fh.write(f"reload-threads {self.threads}\ndownload-timeout 60\nshow-read-feeds yes\n")

    def command(self):
        return ["newsboat", "-x", "reload", "-u", self.urls, "-c", os.path.join(self.work, "cache.db"),
                "-C", self.conf]

    def env(self):
        e = dict(os.environ)
        e["HOME"] = self.work
        e.setdefault("LANG", "C.UTF-8")
        return e


# ---- setup of the peers ----------------------------------------------------------------------

def ensure_venv(venv):
    r2e = os.path.join(venv, "bin", "r2e")
    if os.path.exists(r2e):
        return
    log(f"creating {venv} and installing rss2email=={R2E_VERSION} (pip)")
    subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", f"rss2email=={R2E_VERSION}"], check=True)


def ensure_newsboat():
    if shutil.which("newsboat"):
        return True
    log("newsboat missing: apt-get install -y newsboat")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "newsboat"], env=env)
    if r.returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env)
        r = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "newsboat"], env=env)
    return r.returncode == 0 and shutil.which("newsboat") is not None


def ensure_feeds(data_dir, feeds, items, seed):
    d = os.path.join(data_dir, f"feeds-{feeds}x{items}-s{seed}")
    meta = os.path.join(d, "meta.json")
    if not os.path.exists(meta):
        t = time.time()
        m = gen.write_feeds(d, feeds, items, seed, int(t))
        log(f"generated {feeds} feeds x {items} items ({m['bytes'] / 1e6:.1f} MB) in {time.time() - t:.1f}s")
    return d


def ensure_rules(data_dir, n, seed):
    d = os.path.join(data_dir, f"rules-s{seed}")
    toml = os.path.join(d, f"rules-{n}.toml")
    if not os.path.exists(toml):
        return gen.write_rules(d, n, seed)
    return toml, os.path.join(d, f"rules-{n}.json")


# ---- the protocol ----------------------------------------------------------------------------

def run_protocol(tool, svc, feeds, rules, work, args, change_round):
    """Three cycles for one tool from an empty state. Returns a list of per-cycle result dicts."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    svc.ctl("POST", "/_ctl/reset")
    tool.prepare(work, svc, feeds, rules)
    out = []
    for cycle in CYCLES:
        if cycle == "changed":
            svc.ctl("POST", f"/_ctl/change?fraction={args.change}&round={change_round}")
        svc.ctl("POST", "/_ctl/zero")
        mails0, mbytes0 = svc.mails()
        scpu0 = svc.server_cpu()
        m = measure(tool.command(), tool.env(), work, os.path.join(work, f"{cycle}.log"), args.timeout)
        s = svc.stats()
        mails1, mbytes1 = svc.mails()
        m.update({
            "cycle": cycle, "requests": s["requests"], "not_modified": s["not_modified"],
            "conditional": s["conditional"], "ok": s["ok"], "bytes_served": s["bytes"],
            "emails": mails1 - mails0, "email_bytes": mbytes1 - mbytes0,
            "server_cpu_s": svc.server_cpu() - scpu0,
        })
        out.append(m)
        state = "ok" if m["exit"] == 0 else ("TIMED OUT" if m["timed_out"] else f"failed (exit {m['exit']})")
        log(f"{tool.name:18} {cycle:9} {state:16} wall {m['wall_s']:7.2f}s cpu {m['cpu_s']:7.2f}s "
            f"rss {m['peak_rss_mb']:6.1f}MB req {m['requests']:5} 304 {m['not_modified']:5} "
            f"mails {m['emails']}")
        if m["exit"] != 0:
            if tool.name == "newswatch":
                print(f"newswatch: failed (exit {m['exit']}) in the {cycle} cycle; see {work}/{cycle}.log",
                      flush=True)
            break
    return out


def median_runs(runs):
    """runs: list of per-cycle lists -> {cycle: median dict} over the runs that completed that cycle."""
    med = {}
    for cycle in CYCLES:
        rows = [c for r in runs for c in r if c["cycle"] == cycle and c["exit"] == 0]
        if not rows:
            failed = [c for r in runs for c in r if c["cycle"] == cycle]
            if failed:
                # What the failed child did before it died is still worth showing.
                med[cycle] = dict(failed[0], failed=f"exit {failed[0]['exit']}")
            continue
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        med[cycle] = {k: statistics.median(r[k] for r in rows) for k in keys}
        med[cycle]["n"] = len(rows)
    return med


# ---- reporting -------------------------------------------------------------------------------

def fmt_table(results, tools_order):
    hdr = (f"{'tool':18} {'rules':>6} {'cycle':9} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>11} "
           f"{'requests':>8} {'304s':>6} {'emails':>6} {'srv cpu s':>9}")
    lines = [hdr, "-" * len(hdr)]
    for key in sorted(results, key=lambda k: (tools_order.index(k[0]), k[1])):
        tool, rules = key
        for cycle in CYCLES:
            m = results[key].get(cycle)
            if m is None:
                continue
            lines.append(
                f"{tool:18} {rules:>6} {cycle:9} {m['wall_s']:8.3f} {m['cpu_s']:8.3f} {m['peak_rss_mb']:11.1f} "
                f"{m['requests']:8.0f} {m['not_modified']:6.0f} {m['emails']:6.0f} {m['server_cpu_s']:9.2f}"
                + (f"  FAILED ({m['failed']})" if "failed" in m else ""))
    return "\n".join(lines)


def fmt_ratios(results):
    lines = [f"{'peer / newswatch':30} {'rules':>6} {'cycle':9} {'wall x':>8} {'cpu x':>8} {'RSS x':>7}"]
    rule_sets = sorted({k[1] for k in results if k[0] in ("newswatch", "rss2email")}, key=int)
    for peer in ["rss2email", "rss2email-nofilter", "newsboat"]:
        for rules in rule_sets:
            pk = (peer, "-" if peer != "rss2email" else rules)
            if pk not in results:
                continue
            nw = results.get(("newswatch", rules), {})
            for cycle in CYCLES:
                p, n = results[pk].get(cycle), nw.get(cycle)
                if not p or "failed" in p:
                    continue
                if not n or "failed" in n:
                    lines.append(f"{peer + ' / newswatch':30} {rules:>6} {cycle:9} {'pending':>8}")
                    continue
                r = [p[k] / n[k] if n[k] > 0 else float("inf") for k in ("wall_s", "cpu_s", "peak_rss_mb")]
                lines.append(f"{peer + ' / newswatch':30} {rules:>6} {cycle:9} {r[0]:8.1f} {r[1]:8.1f} {r[2]:7.2f}")
    return "\n".join(lines)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_at_start": load}


# ---- idle cost -------------------------------------------------------------------------------

def idle(args, svc, feed_dir_feeds, rules, work):
    """The daemon with long intervals: after its first cycle, its CPU over --idle-seconds."""
    nw = Newswatch(args.newswatch, args.concurrency)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    svc.ctl("POST", "/_ctl/reset")
    cfg = nw.write_config(work, svc, feed_dir_feeds, rules[0], interval="6h")
    logf = open(os.path.join(work, "daemon.log"), "wb")
    p = subprocess.Popen([args.newswatch, "run", "--config", cfg], stdout=logf, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    LIVE.add(p.pid)
    result = {"feeds": feed_dir_feeds, "rules": rules[0]}
    try:
        # First cycle done = every feed fetched and no new request for 3 s (bounded by --timeout).
        deadline = time.time() + args.timeout
        last, still_since = -1, time.time()
        while time.time() < deadline:
            if p.poll() is not None:
                result["failed"] = f"exit {p.returncode}"
                print(f"newswatch: failed (exit {p.returncode}) as a daemon; see {work}/daemon.log", flush=True)
                return result
            n = svc.stats()["requests"]
            if n != last:
                last, still_since = n, time.time()
            elif n >= feed_dir_feeds and time.time() - still_since >= 3:
                break
            time.sleep(0.5)
        else:
            result["failed"] = f"first cycle not finished in {args.timeout}s ({last} requests)"
            return result
        result["first_cycle_requests"] = last
        result["first_cycle_emails"] = svc.mails()[0]
        svc.ctl("POST", "/_ctl/zero")
        c0, t0 = proc_cpu(p.pid), time.perf_counter()
        time.sleep(args.idle_seconds)
        c1, t1 = proc_cpu(p.pid), time.perf_counter()
        status = {}
        with open(f"/proc/{p.pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    status[k] = v.strip()
        result.update({"window_s": t1 - t0, "cpu_s": c1 - c0, "cpu_percent": 100 * (c1 - c0) / (t1 - t0),
                       "requests_in_window": svc.stats()["requests"], "status": status})
        print(f"idle: newswatch daemon, {feed_dir_feeds} feeds, {t1 - t0:.0f}s window: CPU {c1 - c0:.3f}s "
              f"({result['cpu_percent']:.3f} %), {result['requests_in_window']} requests, "
              f"RSS {status.get('VmRSS')}, peak {status.get('VmHWM')}, threads {status.get('Threads')}",
              flush=True)
        return result
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        LIVE.discard(p.pid)
        logf.close()


# ---- serve smoke test --------------------------------------------------------------------------

def serve_smoke(svc, feeds, threads=8):
    """Fetches every feed once, then once more conditionally: checks the server at this scale."""
    import http.client

    def worker(ids, etags, out):
        conn = http.client.HTTPConnection("127.0.0.1", svc.http_port, timeout=60)
        for f in ids:
            h = {"If-None-Match": etags[f]} if f in etags else {}
            conn.request("GET", f"/feeds/f{f:05d}.xml", headers=h)
            r = conn.getresponse()
            r.read()
            out[f] = (r.status, r.getheader("ETag"))
        conn.close()

    res = {}
    svc.ctl("POST", "/_ctl/reset")
    etags = {}
    for label in ("full", "conditional"):
        out = {}
        ids = list(range(1, feeds + 1))
        t = time.perf_counter()
        ts = [threading.Thread(target=worker, args=(ids[i::threads], etags, out)) for i in range(threads)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        dt = time.perf_counter() - t
        s = svc.stats()
        svc.ctl("POST", "/_ctl/zero")
        etags = {f: e for f, (_, e) in out.items()}
        res[label] = {"seconds": dt, "feeds_per_s": feeds / dt, **s}
        print(f"serve smoke ({label}): {feeds} feeds in {dt:.2f}s = {feeds / dt:.0f} feeds/s, "
              f"{s['ok']} x 200 ({s['bytes'] / 1e6:.0f} MB), {s['not_modified']} x 304", flush=True)
    return res


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(prog="scripts/bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=None, help="default 200 (1,000 with --latency)")
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--rules", default="1000,10000", help="comma-separated rule-set sizes")
    ap.add_argument("--tools", default="newswatch,rss2email,newsboat",
                    help="comma-separated: newswatch, rss2email, rss2email-nofilter, newsboat")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--change", type=float, default=0.10, help="share of feeds changed before cycle 3")
    ap.add_argument("--newswatch", default=os.path.join(ROOT, "target", "release", "newswatch"))
    ap.add_argument("--concurrency", type=int, default=0, help="newswatch [fetch] concurrency (0: its default)")
    ap.add_argument("--pg-socket", default=None,
                    help="socket dir of a PostgreSQL for the newswatch-pg tool (scripts/bench/pg-server start)")
    ap.add_argument("--newsboat-threads", type=int, default=8)
    ap.add_argument("--timeout", type=int, default=1800, help="deadline of one child process, seconds")
    ap.add_argument("--idle", action="store_true", help="idle-cost mode (newswatch daemon) instead of cycles")
    ap.add_argument("--idle-feeds", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--serve-smoke", action="store_true", help="only generate, serve and fetch every feed twice")
    ap.add_argument("--latency", action="store_true",
                    help="fetch-to-alert latency of the daemon (scripts/bench/latency.py) instead of cycles")
    ap.add_argument("--latency-seconds", type=int, default=180, help="probes published (one a second)")
    ap.add_argument("--warmup", type=int, default=30, help="seconds after the cold fetch before the probes")
    ap.add_argument("--drain", type=int, default=30, help="seconds to wait for the last probes' alerts")
    ap.add_argument("--slow-share", type=float, default=0.10, help="share of feeds on the slow host")
    ap.add_argument("--slow-delay", default="0.3,30", help="MIN,MAX seconds of every slow-host response")
    ap.add_argument("--hot-feeds", type=int, default=50, help="healthy feeds polled every second (probes)")
    ap.add_argument("--per-host", type=int, default=8, help="newswatch per_host in --latency")
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-results"))
    args = ap.parse_args()

    if args.feeds is None:
        args.feeds = 1000 if args.latency else 200
    if args.latency and args.rules == "1000,10000":
        args.rules = "1000"
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    rule_sizes = [int(x) for x in args.rules.split(",") if x.strip()]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    work_root = os.path.join(ROOT, "target", "bench-work", stamp)
    os.makedirs(work_root, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    report = {"started": stamp, "machine": machine(), "args": vars(args)}

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    n_feeds = args.idle_feeds if args.idle else args.feeds
    feed_dir = ensure_feeds(args.data, n_feeds, args.items, args.seed)
    svc = Services(feed_dir, work_root, probe_word=gen.PROBE_WORD if args.latency else None)
    try:
        if args.serve_smoke:
            report["serve_smoke"] = serve_smoke(svc, n_feeds)
        elif args.latency:
            rules = ensure_rules(args.data, rule_sizes[0], args.seed)
            if not os.access(args.newswatch, os.X_OK):
                print(f"newswatch: failed (no executable at {args.newswatch})", flush=True)
                report["latency"] = {"failed": "no binary"}
            else:
                report["latency"] = latency.run_latency(args, svc, rules, os.path.join(work_root, "latency"), log)
        elif args.idle:
            rules = ensure_rules(args.data, rule_sizes[0], args.seed)
            if not os.access(args.newswatch, os.X_OK):
                print(f"newswatch: failed (no executable at {args.newswatch})", flush=True)
                report["idle"] = {"failed": "no binary"}
            else:
                report["idle"] = idle(args, svc, n_feeds, rules, os.path.join(work_root, "idle"))
        else:
            report["results"] = run_all(args, tools, rule_sizes, svc, feed_dir, work_root)
    finally:
        kill_live()
        svc.stop()
    path = os.path.join(args.out, f"bench-{stamp}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nraw results: {path}")


def run_all(args, tools, rule_sizes, svc, feed_dir, work_root):
    instances = []
    for t in tools:
        if t == "newswatch-pg" and not args.pg_socket:
            raise SystemExit("newswatch-pg needs --pg-socket DIR (scripts/bench/pg-server start)")
        if t in ("newswatch", "newswatch-pg"):
            if os.access(args.newswatch, os.X_OK):
                instances.append(Newswatch(args.newswatch, args.concurrency,
                                           args.pg_socket if t == "newswatch-pg" else None))
            else:
                print(f"newswatch: failed (no executable at {args.newswatch}; build it with "
                      "`cargo build --release`)", flush=True)
        elif t in ("rss2email", "rss2email-nofilter"):
            venv = os.path.join(ROOT, "target", "bench-venv")
            ensure_venv(venv)
            instances.append(Rss2email(venv, use_filter=(t == "rss2email")))
        elif t == "newsboat":
            if ensure_newsboat():
                instances.append(Newsboat(args.newsboat_threads))
            else:
                print("newsboat: not available, skipped", flush=True)
        else:
            raise SystemExit(f"unknown tool {t!r}")

    raw, results = {}, {}
    order = ["newswatch", "newswatch-pg", "rss2email", "rss2email-nofilter", "newsboat"]
    for tool in instances:
        # Tools that ignore the rules run once, under the label "-".
        sizes = rule_sizes if tool.name in ("newswatch", "newswatch-pg", "rss2email") else ["-"]
        for size in sizes:
            rules = ensure_rules(args.data, size if size != "-" else rule_sizes[0], args.seed)
            runs = []
            for rep in range(args.repeat):
                log(f"{tool.name} rules={size} repeat {rep + 1}/{args.repeat}")
                work = os.path.join(work_root, f"{tool.name}-{size}-{rep}")
                cycles = run_protocol(tool, svc, args.feeds, rules, work, args, change_round=1)
                runs.append(cycles)
                if any(c["exit"] != 0 for c in cycles):
                    break  # a failing tool fails the same way again; keep the peers' time
            key = (tool.name, str(size))
            raw["|".join(key)] = runs
            results[key] = median_runs(runs)

    table = fmt_table(results, order)
    ratios = fmt_ratios(results)
    print(f"\n{args.feeds} feeds x {args.items} items, medians of up to {args.repeat} runs "
          f"(cycles: cold, unchanged = all 304, changed = {args.change:.0%} of feeds)\n")
    print(table)
    print("\nratios (peer / newswatch; > 1 means newswatch is ahead)\n")
    print(ratios)
    return {"raw": raw, "medians": {"|".join(k): v for k, v in results.items()}, "table": table,
            "ratios": ratios}


if __name__ == "__main__":
    main()
