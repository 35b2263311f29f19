//! The console the daemon serves, over real HTTP on the built binary: "Send digest now" composes
//! through the daemon's pipeline and the real SMTP server receives the email; the standalone
//! console refuses to send and says why.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::console::{Console, Resp, filled_state, path, request};
use crate::support::bin::command;
use crate::support::http::TestServer;
use crate::support::smtp::SmtpSink;

/// Generous for a loaded 2-core machine; a passing run takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(60);
/// Between two looks at something the daemon does in its own time.
const LOOK: Duration = Duration::from_millis(200);

pub(crate) const RULE_HEGSETH: &str = r#"
[[rule]]
id = "hegseth"
title = "Hegseth watch"
query = "Hegseth"
"#;

/// An RSS document whose items (guid, title) were all published just now.
pub(crate) fn rss(items: &[(&str, &str)]) -> Vec<u8> {
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

/// A config in `dir` polling `feed` every second, its digest `desk` due only on 29 February
/// (so nothing but a request composes it), mail to the SMTP server on `smtp_port`.
pub(crate) fn write_config(dir: &Path, feed: &str, smtp_port: u16) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(dir.join("rules/hegseth.toml"), RULE_HEGSETH).expect("write rules");
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
method = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[[digest]]
name = "desk"
to = ["desk@example.org"]
schedule = "0 0 29 2 *"

[http]
listen = "127.0.0.1:0"
"#
        ),
    )
    .expect("write config");
    path
}

/// `newswatch run` with its log read on a thread; killed when dropped.
pub(crate) struct Daemon {
    child: Child,
    log_rx: Receiver<String>,
    log: Vec<String>,
    pub(crate) addr: String,
}

impl Daemon {
    pub(crate) fn start(config: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec!["run", "--config", path(config)];
        args.extend_from_slice(extra);
        let mut child = command(&args)
            .env("NEWSWATCH_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
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
        let mut d = Daemon {
            child,
            log_rx,
            log: Vec::new(),
            addr: String::new(),
        };
        let line = d.wait_log("serving /metrics and /healthz");
        d.addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"))
            .to_string();
        d
    }

    /// Waits for a log line containing `needle` (seen before or arriving now); returns it.
    pub(crate) fn wait_log(&mut self, needle: &str) -> String {
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

    pub(crate) fn report(&mut self) -> String {
        while let Ok(line) = self.log_rx.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    pub(crate) fn get(&self, target: &str) -> Resp {
        request(&self.addr, "GET", target, &[], "")
    }

    pub(crate) fn post(&self, target: &str, form: &str) -> Resp {
        request(
            &self.addr,
            "POST",
            target,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form,
        )
    }

    /// Waits until `GET target`'s body contains `needle`; returns that body.
    pub(crate) fn wait_page(&mut self, target: &str, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let r = self.get(target);
            if r.status == 200 && r.body.contains(needle) {
                return r.body;
            }
            assert!(
                Instant::now() < end,
                "{target} never showed {needle:?}: {} {}\n{}",
                r.status,
                r.body,
                self.report()
            );
            self.pause();
        }
    }

    /// Waits for the daemon's next log line, at most `LOOK`: the bounded pause between two
    /// looks at something it does in its own time.
    pub(crate) fn pause(&mut self) {
        if let Ok(line) = self.log_rx.recv_timeout(LOOK) {
            self.log.push(line);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CSRF token of the first form on a page.
pub(crate) fn csrf(body: &str) -> String {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in {body}"))
        .to_string()
}

#[test]
fn send_digest_now_composes_through_the_daemon_and_the_smtp_server_gets_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    feeds.set(
        "/wire.rss",
        rss(&[("a1", "Hegseth visits Kyiv"), ("a2", "Weather in Lisbon")]),
    );
    let mail_dir = tmp.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mkdir");
    let sink = SmtpSink::start(&mail_dir, &[]);
    let config = write_config(tmp.path(), feeds.url("/wire.rss").as_str(), sink.port);
    let mut d = Daemon::start(&config, &[]);

    d.wait_page("/matches?rule=hegseth", "visits Kyiv");
    let overview = d.get("/");
    assert!(
        overview.body.contains("action=\"/send-now/desk\""),
        "a Send now button per digest: {}",
        overview.body
    );
    assert!(
        sink.messages().is_empty(),
        "the digest's schedule is not due"
    );
    let token = csrf(&overview.body);

    assert_eq!(d.post("/send-now/desk", "").status, 403, "no CSRF token");
    assert_eq!(d.post("/send-now/desk", "csrf=wrong").status, 403);
    let nope = d.post("/send-now/nope", &format!("csrf={token}"));
    assert_eq!(nope.status, 404, "{}", nope.body);

    let sent = d.post("/send-now/desk", &format!("csrf={token}"));
    assert_eq!(sent.status, 200, "{}\n{}", sent.body, d.report());
    assert!(sent.body.contains("Composed 1 email"), "{}", sent.body);
    let end = Instant::now() + DEADLINE;
    while sink.messages().is_empty() {
        assert!(
            Instant::now() < end,
            "the SMTP server got nothing\n{}",
            d.report()
        );
        d.pause();
    }
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("visits Kyiv"), "{text}");
    assert!(text.contains("desk@example.org"), "{text}");

    // Its matches were carried: a second request finds nothing pending and sends nothing.
    let again = d.post("/send-now/desk", &format!("csrf={token}"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("Nothing was pending"), "{}", again.body);
    d.wait_page("/digests", ">sent<");
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn the_standalone_console_does_not_send() {
    let (_tmp, config) = filled_state("");
    let c = Console::start(&config);
    let overview = c.get("/", &[]);
    assert!(
        overview.body.contains("runs alone and is read-only"),
        "{}",
        overview.body
    );
    assert!(!overview.body.contains("/send-now/"), "no button");
    let r = c.post("/send-now/briefing", &[], "csrf=any");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("newswatch digest send"), "{}", r.body);
}

#[test]
fn the_feed_page_lists_each_poll_and_the_overview_the_stage_timings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    let body = rss(&[("b1", "Hegseth in Brussels"), ("b2", "Rain")]);
    let size = body.len();
    feeds.set("/wire.rss", body);
    let mail_dir = tmp.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mkdir");
    let sink = SmtpSink::start(&mail_dir, &[]);
    let config = write_config(tmp.path(), feeds.url("/wire.rss").as_str(), sink.port);
    let mut text = std::fs::read_to_string(&config).expect("read config");
    text.push_str(&format!(
        "\n[[feed]]\nname = \"gone\"\nurl = \"{}\"\ninterval = \"1s\"\n",
        feeds.url("/missing.rss")
    ));
    std::fs::write(&config, text).expect("write config");
    let mut d = Daemon::start(&config, &[]);

    // The first poll of the wire: 200, the body's size, two items, both new.
    let page = d.wait_page("/feeds/wire", "<table id=\"polls\">");
    let first = format!(
        "<td class=\"ok\">fetched</td><td>200</td><td class=\"opt\">{size}</td><td>2</td><td>2</td>"
    );
    assert!(page.contains(&first), "{page}");
    // A feed that is not there: its polls failed with 404 and say why.
    let gone = d.wait_page("/feeds/gone", "<table id=\"polls\">");
    assert!(
        gone.contains("<td class=\"bad\">failed</td><td>404</td>"),
        "{gone}"
    );
    assert!(gone.contains("HTTP status 404"), "{gone}");
    // Later polls of the wire bring nothing new (the same items, or 304).
    let later = d.wait_page("/feeds/wire", "<td>0</td><td class=\"opt\">");
    assert!(later.contains(&first), "the first poll is still listed");

    // The overview shows the stages that ran: fetch, store and match did work by now.
    let overview = d.get("/");
    assert!(
        overview.body.contains("<table id=\"stages\">"),
        "{}",
        overview.body
    );
    for stage in ["fetch", "store", "match"] {
        let row = overview
            .body
            .split(&format!("<tr><td>{stage}</td><td>"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {stage} row: {}", overview.body));
        let runs: usize = row
            .split('<')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a run count");
        assert!(runs > 0, "{stage} ran: {}", overview.body);
    }
    // The standalone console has no daemon's timings and says where they are.
    drop(d);
    let c = Console::start(&config);
    let alone = c.get("/", &[]);
    assert!(
        alone.body.contains("Kept by the running daemon"),
        "{}",
        alone.body
    );
}

const RULE_MINERALS: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = '"minerals deal"'
"#;

#[test]
fn after_a_reload_the_console_shows_the_new_rules() {
    for watch in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let feeds = TestServer::start();
        feeds.set("/wire.rss", rss(&[("c1", "Minerals deal signed")]));
        let mail_dir = tmp.path().join("mail");
        std::fs::create_dir_all(&mail_dir).expect("mkdir");
        let sink = SmtpSink::start(&mail_dir, &[]);
        let config = write_config(tmp.path(), feeds.url("/wire.rss").as_str(), sink.port);
        let extra: &[&str] = if watch { &["--watch-rules"] } else { &[] };
        let mut d = Daemon::start(&config, extra);
        d.wait_page("/rules", "/rules/hegseth");
        assert_eq!(d.get("/rules/minerals").status, 404, "not loaded yet");

        std::fs::write(
            tmp.path().join("rules/hegseth.toml"),
            format!("{RULE_HEGSETH}{RULE_MINERALS}"),
        )
        .expect("rewrite the rules");
        if !watch {
            let ok = std::process::Command::new("kill")
                .args(["-HUP", &d.child.id().to_string()])
                .status()
                .expect("run kill")
                .success();
            assert!(ok, "kill -HUP");
        }
        d.wait_log("reload applied");
        let rules = d.wait_page("/rules", "/rules/minerals");
        assert!(rules.contains("2 rules"), "{rules}");
        let rule = d.get("/rules/minerals");
        assert_eq!(rule.status, 200, "watch={watch}: {}", rule.body);
        assert!(
            rule.body.contains("&quot;minerals deal&quot;"),
            "{}",
            rule.body
        );
        // The playground compiles against, and compares with, the new set.
        let pg = d.get("/playground?q=%22minerals+deal%22&against=minerals");
        assert!(
            pg.body.contains("<option value=\"minerals\" selected>"),
            "{}",
            pg.body
        );
        assert!(
            pg.body.contains("Against <a href=\"/rules/minerals\">"),
            "{}",
            pg.body
        );
    }
}
