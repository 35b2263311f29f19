//! The real daemon binary as systemd runs it: `NOTIFY_SOCKET` points at a datagram socket this
//! test reads (READY, STATUS, WATCHDOG, RELOADING, STOPPING), signals come from `kill`, feeds from a
//! real HTTP server, mail goes to files or a real SMTP server process, `/metrics` over real HTTP.
//! Every wait has a deadline; nothing sleeps.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use newswatch::store::Store;

use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::mail::eml_files;
use crate::support::smtp::SmtpSink;

/// Generous for a loaded 2-core machine; a passing run takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(30);

const RULE_MINERALS: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = '"minerals deal"'
"#;

const RULE_HEGSETH: &str = r#"
[[rule]]
id = "hegseth"
title = "Hegseth watch"
query = "Hegseth"
"#;

/// An RSS document whose items (guid, title) were all published just now.
fn rss(items: &[(&str, &str)]) -> Vec<u8> {
    let now = newswatch::clock::now().to_rfc2822();
    let items: String = items
        .iter()
        .map(|(guid, title)| {
            format!(
                "<item><guid>urn:test:{guid}</guid><title>{title}</title>\
                 <link>https://news.example.org/{guid}</link><pubDate>{now}</pubDate>\
                 <description>{title}.</description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Test wire</title>\
         <link>https://news.example.org/</link>{items}</channel></rss>"
    )
    .into_bytes()
}

/// A config in `dir` polling `feed` every second and delivering by `delivery` (TOML lines).
fn write_config(dir: &Path, feed: &str, delivery: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    let path = dir.join("newswatch.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "state"
rules = ["rules/*.toml"]

[fetch]
interval = "1s"
min_interval = "1s"
timeout = "5s"

[[feed]]
name = "wire"
url = "{feed}"
interval = "1s"

[delivery]
from = "newswatch <newswatch@example.org>"
{delivery}

[[digest]]
name = "desk"
to = ["desk@example.org"]

[http]
listen = "127.0.0.1:0"
"#
        ),
    )
    .expect("write config");
    path
}

/// The daemon process, its log (stderr, read on a thread) and the sd_notify socket it talks to.
struct Daemon {
    child: Child,
    log_rx: Receiver<String>,
    log: Vec<String>,
    notify: UnixDatagram,
    notes: Vec<String>,
}

impl Daemon {
    fn start(config: &Path, notify_path: &Path) -> Daemon {
        Daemon::start_with(config, notify_path, &[])
    }

    fn start_with(config: &Path, notify_path: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_env(config, notify_path, extra, &[])
    }

    /// Started without `MALLOC_ARENA_MAX` (whatever the test runner has), plus `env`.
    fn start_env(
        config: &Path,
        notify_path: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let _ = std::fs::remove_file(notify_path);
        let notify = UnixDatagram::bind(notify_path).expect("bind the notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(extra)
            .env("NOTIFY_SOCKET", notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env("NEWSWATCH_LOG", "info")
            .env("NO_COLOR", "1")
            .env("SMTP_TEST_SECRET", "hunter2")
            .env_remove("MALLOC_ARENA_MAX")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log_rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            log_rx,
            log: Vec::new(),
            notify,
            notes: Vec::new(),
        }
    }

    fn drain_log(&mut self) {
        while let Ok(line) = self.log_rx.try_recv() {
            self.log.push(line);
        }
    }

    fn report(&mut self) -> String {
        self.drain_log();
        format!(
            "--- log ---\n{}\n--- notifications ---\n{}",
            self.log.join("\n"),
            self.notes.join("\n")
        )
    }

    /// Waits for a log line containing `needle` (seen before or arriving now); returns it.
    fn wait_log(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            match self
                .log_rx
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.log.push(line),
                Err(e) => panic!("no {needle:?} in the log ({e})\n{}", self.report()),
            }
        }
    }

    /// Waits for a notification at index ≥ `from` satisfying `pred`; returns its index.
    fn wait_note(&mut self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = (from..self.notes.len()).find(|&i| pred(&self.notes[i])) {
                return i;
            }
            assert!(
                Instant::now() < end,
                "no {what} notification\n{}",
                self.report()
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.notes
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Sends SIGTERM; the daemon must exit within `limit`.
    fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > limit {
                let report = self.report();
                panic!("the daemon did not exit within {limit:?} of SIGTERM\n{report}");
            }
            // Keeps reading notifications (STOPPING=1) while polling for the exit.
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.notes
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// The address of `/metrics`, from the daemon's log.
    fn http_addr(&mut self) -> String {
        let line = self.wait_log("serving /metrics and /healthz");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"))
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` over a plain TCP connection: (status code, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the daemon's HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, body.to_string())
}

/// Series → value from the OpenMetrics text; every line must be well formed.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let value = value.parse().unwrap_or_else(|_| panic!("{l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

/// Waits until `dir` holds `n` `.eml` files; returns their contents in name order.
fn wait_emails(daemon: &mut Daemon, dir: &Path, n: usize) -> Vec<String> {
    let end = Instant::now() + DEADLINE;
    loop {
        let mut files = eml_files(dir);
        if files.len() >= n {
            // Named by Message-ID: the order they were written in is their age.
            files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
            return files
                .iter()
                .map(|p| std::fs::read_to_string(p).expect("read eml"))
                .collect();
        }
        assert!(
            Instant::now() < end,
            "{} of {n} emails in {}\n{}",
            files.len(),
            dir.display(),
            daemon.report()
        );
        // Reading the notify socket doubles as the bounded pause between looks.
        daemon.wait_note_once();
    }
}

impl Daemon {
    /// Reads at most one notification, waiting at most the socket's 100 ms read timeout.
    fn wait_note_once(&mut self) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.notify.recv(&mut buf) {
            self.notes
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn notify_metrics_and_reload_on_the_running_daemon() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    feeds.set(
        "/wire.rss",
        rss(&[
            ("1", "Kyiv and Washington agree minerals deal"),
            ("2", "Hegseth visits Northwood"),
        ]),
    );
    let outbox = tmp.path().join("outbox");
    let config = write_config(
        tmp.path(),
        feeds.url("/wire.rss").as_str(),
        "method = \"file\"\ndir = \"outbox\"",
    );
    let rules = tmp.path().join("rules/watch.toml");
    std::fs::write(&rules, RULE_MINERALS).expect("write rules");
    let mut d = Daemon::start(&config, &tmp.path().join("notify.sock"));

    // Startup: READY, then a STATUS per cycle, then watchdog pings while the loop progresses.
    let ready = d.wait_note(0, "READY=1", |n| n == "READY=1");
    d.wait_note(ready, "STATUS after a cycle", |n| {
        n.starts_with("STATUS=since") && n.contains("1 polls (0 failed)")
    });
    d.wait_note(ready, "WATCHDOG=1", |n| n == "WATCHDOG=1");
    let first = wait_emails(&mut d, &outbox, 1);
    assert!(first[0].contains("Minerals deal"), "{}", first[0]);
    assert!(!first[0].contains("Hegseth visits"), "{}", first[0]);

    // /metrics and /healthz from the running daemon.
    let addr = d.http_addr();
    let (code, body) = http_get(&addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    let m = parse_metrics(&body);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{body}"))
    };
    assert!(get("newswatch_polls_total{result=\"ok\"}") >= 1.0);
    assert_eq!(get("newswatch_polls_total{result=\"error\"}"), 0.0);
    assert_eq!(get("newswatch_new_articles_total{feed=\"wire\"}"), 2.0);
    assert_eq!(get("newswatch_matches_total{rule=\"minerals\"}"), 1.0);
    assert_eq!(get("newswatch_emails_sent_total"), 1.0);
    assert_eq!(get("newswatch_emails_failed_total"), 0.0);
    assert_eq!(get("newswatch_emails_queued"), 0.0);
    assert_eq!(get("newswatch_feeds_in_error"), 0.0);
    assert!(get("newswatch_fetch_duration_seconds_count") >= 1.0);
    assert!(get("newswatch_fetch_duration_seconds_bucket{le=\"+Inf\"}") >= 1.0);
    // The pre-filter's share (issue 22): the minerals article evaluated the one rule, the
    // Hegseth article none.
    assert_eq!(get("newswatch_rules_evaluated_share_count"), 2.0);
    assert_eq!(get("newswatch_rules_evaluated_share_sum"), 1.0);
    assert_eq!(
        get("newswatch_rules_evaluated_share_bucket{le=\"0.0001\"}"),
        1.0
    );
    assert_eq!(
        get("newswatch_rules_evaluated_share_bucket{le=\"1.0\"}"),
        2.0
    );
    let (code, body) = http_get(&addr, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("database: ok")
            && body.contains("fetch: ok")
            && body.contains("store: ok")
            && body.contains("match: ok")
            && body.contains("deliver: ok"),
        "{body}"
    );

    // SIGHUP with a new rule: RELOADING, READY, and the new rule fires on the next cycle.
    std::fs::write(&rules, format!("{RULE_MINERALS}{RULE_HEGSETH}")).expect("write rules");
    let mark = d.notes.len();
    d.signal("HUP");
    let reloading = d.wait_note(mark, "RELOADING=1", |n| {
        n.starts_with("RELOADING=1\nMONOTONIC_USEC=")
    });
    d.wait_note(reloading, "READY=1 after the reload", |n| n == "READY=1");
    feeds.set(
        "/wire.rss",
        rss(&[
            ("1", "Kyiv and Washington agree minerals deal"),
            ("2", "Hegseth visits Northwood"),
            ("3", "Hegseth and Healey meet again"),
        ]),
    );
    let second = wait_emails(&mut d, &outbox, 2);
    assert!(second[1].contains("Hegseth watch"), "{}", second[1]);
    assert!(
        second[1].contains("Hegseth and Healey meet again"),
        "{}",
        second[1]
    );

    // SIGHUP with a broken rule file: refused, every problem logged, STATUS says so, and the
    // old rules keep matching.
    std::fs::write(&rules, "[[rule]\nid = \"broken\"\n").expect("write broken rules");
    let mark = d.notes.len();
    d.signal("HUP");
    let reloading = d.wait_note(mark, "RELOADING=1", |n| n.starts_with("RELOADING=1"));
    d.wait_note(reloading, "STATUS saying the reload was refused", |n| {
        n.starts_with("STATUS=reload refused")
    });
    d.wait_note(reloading, "READY=1 after the refusal", |n| n == "READY=1");
    let refused = d.wait_log("reload refused");
    assert!(refused.contains("watch.toml"), "{refused}");
    feeds.set(
        "/wire.rss",
        rss(&[
            ("1", "Kyiv and Washington agree minerals deal"),
            ("2", "Hegseth visits Northwood"),
            ("3", "Hegseth and Healey meet again"),
            ("4", "Hegseth signs a second minerals deal memo"),
        ]),
    );
    let third = wait_emails(&mut d, &outbox, 3);
    assert!(
        third[2].contains("Minerals deal") && third[2].contains("Hegseth watch"),
        "the rules of the last good reload keep running:\n{}",
        third[2]
    );
    let mark = d.notes.len();
    d.wait_note(
        mark,
        "STATUS of a later cycle still naming the refusal",
        |n| n.starts_with("STATUS=since") && n.contains("reload refused"),
    );
    let (_, body) = http_get(&addr, "/metrics");
    let m = parse_metrics(&body);
    assert_eq!(
        m.get("newswatch_reloads_total{result=\"applied\"}"),
        Some(&1.0)
    );
    assert_eq!(
        m.get("newswatch_reloads_total{result=\"refused\"}"),
        Some(&1.0)
    );
    // `status` (read-only, beside the running daemon) names the last reload: the refused one.
    let out = std::process::Command::new(BIN)
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("run status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("last reload: "))
        .unwrap_or_else(|| panic!("no last reload line:\n{text}"));
    assert!(
        line.contains(" refused (") && line.contains("watch.toml"),
        "{line}"
    );

    let status = d.terminate(DEADLINE);
    assert!(status.success(), "{status:?}\n{}", d.report());
    assert!(d.notes.iter().any(|n| n == "STOPPING=1"), "{}", d.report());
}

#[test]
fn sigterm_keeps_the_unsent_digest_which_goes_out_after_restart_and_one_instance_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    feeds.set(
        "/wire.rss",
        rss(&[("1", "Kyiv and Washington agree minerals deal")]),
    );
    std::fs::create_dir_all(tmp.path().join("rules")).expect("mkdir");
    std::fs::write(tmp.path().join("rules/watch.toml"), RULE_MINERALS).expect("write rules");
    let smtp = |port: u16| {
        format!(
            "method = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
             username = \"newswatch\"\npassword_env = \"SMTP_TEST_SECRET\"\ntimeout = \"60s\""
        )
    };
    let mail_dir = tmp.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mkdir");
    // A mail server that accepts the connection and then never answers DATA.
    let hanging = SmtpSink::start(
        &mail_dir,
        &["--fault", "hang", "--auth", "newswatch:hunter2"],
    );
    let config = write_config(
        tmp.path(),
        feeds.url("/wire.rss").as_str(),
        &smtp(hanging.port),
    );
    let notify = tmp.path().join("notify.sock");
    let mut d = Daemon::start(&config, &notify);
    d.wait_note(0, "READY=1", |n| n == "READY=1");

    // The digest is composed and its send is hanging.
    let state = tmp.path().join("state");
    let queued = || {
        Store::open_read_only(&state)
            .and_then(|s| s.outbox_counts())
            .map(|c| (c.queued, c.sent))
            .unwrap_or((0, 0))
    };
    let end = Instant::now() + DEADLINE;
    while queued() != (1, 0) {
        assert!(Instant::now() < end, "no queued digest\n{}", d.report());
        d.wait_note_once();
    }

    // A second daemon (and a one-off run) on the same state directory is refused, naming the holder.
    let pid = d.child.id();
    for args in [&["run"][..], &["run", "--once"]] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("SMTP_TEST_SECRET", "hunter2")
            .env("NEWSWATCH_LOG", "warn")
            .output()
            .expect("run a second instance");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "another newswatch (pid {pid}) is already running on state directory"
            )),
            "{args:?}: {err}"
        );
    }

    // SIGTERM while the send hangs: exit 0 within the grace period, the digest still queued.
    let limit = newswatch::service::daemon::SHUTDOWN_GRACE + Duration::from_secs(10);
    let status = d.terminate(limit);
    assert!(status.success(), "{status:?}\n{}", d.report());
    d.drain_log();
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("abandoning the work in flight")),
        "{}",
        d.report()
    );
    assert!(
        !d.report().contains("hunter2"),
        "the SMTP password was logged"
    );
    assert_eq!(queued(), (1, 0), "the unsent digest stays in the outbox");
    drop(hanging);

    // Restarted with a working mail server: the queued digest goes out.
    let sink = SmtpSink::start(&mail_dir, &["--auth", "newswatch:hunter2"]);
    write_config(
        tmp.path(),
        feeds.url("/wire.rss").as_str(),
        &smtp(sink.port),
    );
    let mut d = Daemon::start(&config, &notify);
    let end = Instant::now() + DEADLINE;
    while sink.messages().is_empty() {
        assert!(
            Instant::now() < end,
            "the digest was not sent\n{}",
            d.report()
        );
        d.wait_note_once();
    }
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("Minerals deal"));
    let status = d.terminate(DEADLINE);
    assert!(status.success(), "{status:?}\n{}", d.report());
    assert_eq!(queued(), (0, 1));
    assert!(
        !d.report().contains("hunter2"),
        "the SMTP password was logged"
    );
}

#[test]
fn a_taken_http_port_fails_the_start_before_ready() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let config = write_config(
        tmp.path(),
        "http://127.0.0.1:9/never-polled.rss",
        "method = \"file\"\ndir = \"outbox\"",
    );
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, text.replace("127.0.0.1:0", &addr)).expect("write config");
    std::fs::write(tmp.path().join("rules/watch.toml"), RULE_MINERALS).expect("write rules");
    let mut d = Daemon::start(&config, &tmp.path().join("notify.sock"));
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = d.child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < end,
            "the daemon kept running\n{}",
            d.report()
        );
        d.wait_note_once();
    };
    assert_eq!(status.code(), Some(1), "{}", d.report());
    let line = d.wait_log("error:");
    assert!(
        line.contains(&format!(
            "cannot listen on {addr} for /metrics and /healthz"
        )),
        "{line}"
    );
    d.wait_note_once();
    assert!(!d.notes.iter().any(|n| n == "READY=1"), "{}", d.report());
}

/// The binary limits glibc's malloc arenas itself (`service::malloc`): started without
/// `MALLOC_ARENA_MAX`, the running daemon (the same process: it re-executed itself in place) has
/// it at 2 in its environment; an operator's own value is kept as it is.
#[test]
fn the_daemon_limits_malloc_arenas_unless_the_operator_chose() {
    for (given, expected) in [(None, "2"), (Some("1"), "1")] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = write_config(
            tmp.path(),
            "http://127.0.0.1:9/never-polled.rss",
            "method = \"file\"\ndir = \"outbox\"",
        );
        std::fs::write(tmp.path().join("rules/watch.toml"), RULE_MINERALS).expect("write rules");
        let env: Vec<(&str, &str)> = given.map(|v| ("MALLOC_ARENA_MAX", v)).into_iter().collect();
        let mut d = Daemon::start_env(&config, &tmp.path().join("notify.sock"), &[], &env);
        // Serving /metrics: well past the start of `main`, where the exec happens.
        d.http_addr();
        let environ = std::fs::read(format!("/proc/{}/environ", d.child.id()))
            .expect("read the daemon's environment");
        let arenas: Vec<String> = environ
            .split(|&b| b == 0)
            .filter(|v| v.starts_with(b"MALLOC_ARENA_MAX="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(
            arenas,
            [format!("MALLOC_ARENA_MAX={expected}")],
            "given {given:?}\n{}",
            d.report()
        );
        assert!(d.terminate(DEADLINE).success(), "{}", d.report());
    }
}

#[test]
fn watch_rules_reloads_when_an_editor_saves_by_rename() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    feeds.set(
        "/wire.rss",
        rss(&[("1", "Kyiv and Washington agree minerals deal")]),
    );
    let outbox = tmp.path().join("outbox");
    let config = write_config(
        tmp.path(),
        feeds.url("/wire.rss").as_str(),
        "method = \"file\"\ndir = \"outbox\"",
    );
    let rules = tmp.path().join("rules/watch.toml");
    std::fs::write(&rules, RULE_MINERALS).expect("write rules");
    let mut d = Daemon::start_with(&config, &tmp.path().join("notify.sock"), &["--watch-rules"]);
    d.wait_note(0, "READY=1", |n| n == "READY=1");
    wait_emails(&mut d, &outbox, 1);
    assert!(
        !d.notes.iter().any(|n| n.starts_with("RELOADING=1")),
        "no change, no reload\n{}",
        d.report()
    );

    // The editor's way: write a temporary file, rename it over the old one. No SIGHUP.
    let mark = d.notes.len();
    let tmp_file = tmp.path().join("rules/.watch.toml.swp");
    std::fs::write(&tmp_file, format!("{RULE_MINERALS}{RULE_HEGSETH}")).expect("write");
    std::fs::rename(&tmp_file, &rules).expect("rename");
    let reloading = d.wait_note(mark, "RELOADING=1", |n| n.starts_with("RELOADING=1"));
    d.wait_note(reloading, "READY=1 after the reload", |n| n == "READY=1");
    feeds.set(
        "/wire.rss",
        rss(&[
            ("1", "Kyiv and Washington agree minerals deal"),
            ("2", "Hegseth and Healey meet again"),
        ]),
    );
    let emails = wait_emails(&mut d, &outbox, 2);
    assert!(emails[1].contains("Hegseth watch"), "{}", emails[1]);
    let status = d.terminate(DEADLINE);
    assert!(status.success(), "{status:?}\n{}", d.report());
    assert_eq!(
        d.notes
            .iter()
            .filter(|n| n.starts_with("RELOADING=1"))
            .count(),
        1,
        "one save, one reload\n{}",
        d.report()
    );
}
