//! What the cluster tests share: the feeds and rules every node gets, a node's config, a
//! running node whose log the test reads, waiting on the shared PostgreSQL, the feed
//! server's requests per feed, and the SMTP server's armed faults and received Message-IDs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::postgres::{query, store_table, try_query};
use crate::support::smtp::SmtpSink;

/// `[store] lease`: a killed node's feeds come free this soon. Longer than the feed interval
/// plus its slack, so a node is sure to have taken feeds (and still hold its claims) within it.
pub const LEASE: Duration = Duration::from_secs(10);

const RULES: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = "minerals"
"#;

/// The index (from 0) of node `node-N` in the test's list of nodes.
pub fn node_index(name: &str) -> usize {
    name.strip_prefix("node-")
        .and_then(|n| n.parse::<usize>().ok())
        .expect("a node-N name")
        - 1
}

/// Feed `f`'s document with one story per wave `0..waves` (each names the minerals deal).
pub fn feed_doc(f: usize, waves: usize) -> Vec<u8> {
    let now = newswatch::clock::now().to_rfc2822();
    let items: String = (0..waves)
        .map(|w| {
            let guid = format!("f{f}-w{w}");
            format!(
                "<item><guid>urn:test:{guid}</guid><title>Minerals deal report {guid}</title>\
                 <link>https://news.example.org/{guid}</link><pubDate>{now}</pubDate>\
                 <description>Item {guid} on the minerals deal.</description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {f}</title>\
         <link>https://news.example.org/</link>{items}</channel></rss>"
    )
    .into_bytes()
}

/// Serves wave `waves` on every one of `feeds` feeds.
pub fn serve_wave(server: &TestServer, feeds: usize, waves: usize) {
    for f in 0..feeds {
        server.set(&format!("/f{f}.rss"), feed_doc(f, waves));
    }
}

/// What differs between the cluster tests' configs.
pub struct Setup<'a> {
    pub url: &'a str,
    pub server: &'a TestServer,
    pub smtp_port: u16,
    pub feeds: usize,
    /// `Some(k)`: node `n` gets only feeds `(n-1)·k .. n·k` (each node its own feeds, on the
    /// same host); `None`: every node every feed.
    pub per_node: Option<usize>,
    /// `[fetch] interval`, in seconds.
    pub interval: u64,
    /// Extra lines for `[delivery]` and `[fetch]` (`final_reply_timeout`, `host_spacing`…).
    pub delivery_extra: &'a str,
    pub fetch_extra: &'a str,
}

/// Node `n`'s config in `dir/node-n`: its own state directory (the instance lock) and User-Agent
/// (`newswatch-test/n`, so the feed server knows who asked), the shared PostgreSQL, every feed every `interval`, an unscheduled digest and one every minute.
pub fn node_config(dir: &Path, n: usize, s: &Setup<'_>) -> PathBuf {
    let home = dir.join(format!("node-{n}"));
    std::fs::create_dir_all(home.join("rules")).expect("mkdir rules");
    std::fs::write(home.join("rules/r.toml"), RULES).expect("write rules");
    let lease = format!("{}s", LEASE.as_secs());
    let mut text = format!(
        r#"state_dir = "state"
user_agent = "newswatch-test/{n} (node-{n})"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
interval = "{interval}s"
min_interval = "1s"
timeout = "20s"
{fetch_extra}

[delivery]
method = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = "10s"
from = "newswatch <newswatch@example.org>"
{delivery_extra}

[[digest]]
name = "desk"
to = ["desk@example.org"]

[[digest]]
name = "minute"
to = ["minute@example.org"]
schedule = "* * * * *"
when_empty = "send"

[http]
enabled = false
{store}"#,
        interval = s.interval,
        fetch_extra = s.fetch_extra,
        smtp_port = s.smtp_port,
        delivery_extra = s.delivery_extra,
        store = store_table(s.url, &format!("node-{n}"), &lease)
    );
    let mine = s.per_node.map_or(0..s.feeds, |k| (n - 1) * k..n * k);
    for f in mine {
        text.push_str(&format!(
            "\n[[feed]]\nname = \"feed-{f}\"\nurl = \"{}\"\n",
            s.server.url(&format!("/f{f}.rss"))
        ));
    }
    let path = home.join("newswatch.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running node; its log lines go to the test's one channel, prefixed with its name.
pub struct Node {
    pub child: Child,
}

impl Node {
    pub fn start(config: &Path, n: usize, log: &Sender<String>) -> Node {
        Node::start_with_env(config, n, log, &[])
    }

    /// `start`, with extra environment variables (a `password_env`).
    pub fn start_with_env(
        config: &Path,
        n: usize,
        log: &Sender<String>,
        env: &[(&str, &str)],
    ) -> Node {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("NEWSWATCH_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a node");
        let stderr = child.stderr.take().expect("piped stderr");
        let tx = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(format!("node-{n}: {line}")).is_err() {
                    break;
                }
            }
        });
        Node { child }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (reading the nodes' log, which is also the pause between looks) until `done`, for at
/// most `limit`: a bound for a slow machine, not a speed claim. Panics with the log otherwise.
pub fn wait_until(
    log: &Receiver<String>,
    lines: &mut Vec<String>,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            lines.join("\n")
        );
        if let Ok(line) = log.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
}

/// Waits, as `wait_until`, for a log line that satisfies `wanted`.
pub fn wait_for_line(
    log: &Receiver<String>,
    lines: &mut Vec<String>,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) {
    let end = Instant::now() + limit;
    while !lines.iter().any(|l| wanted(l)) {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            lines.join("\n")
        );
        if let Ok(line) = log.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
}

/// Reads the nodes' log for `span` (the pause of a test that lets time pass).
pub fn let_pass(log: &Receiver<String>, lines: &mut Vec<String>, span: Duration) {
    let end = Instant::now() + span;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Ok(line) = log.recv_timeout(left) {
            lines.push(line);
        }
    }
}

pub fn count(url: &str, sql: &str) -> usize {
    query(url, &format!("SELECT ({sql})::TEXT"))[0]
        .parse()
        .expect("a count")
}

/// `count`, or `None` before the nodes have made the schema.
pub fn try_count(url: &str, sql: &str) -> Option<usize> {
    try_query(url, &format!("SELECT ({sql})::TEXT"))
        .ok()?
        .first()?
        .parse()
        .ok()
}

/// Whether `articles` articles are stored, none is left to match, and each is carried by a
/// sent `desk` digest (`None`-safe: false before the nodes made the schema).
pub fn delivered(url: &str, articles: usize) -> bool {
    try_count(url, "SELECT COUNT(*) FROM articles") == Some(articles)
        && try_count(url, "SELECT COUNT(*) FROM unmatched") == Some(0)
        && try_count(
            url,
            "SELECT COUNT(*) FROM digest_items di JOIN outbox o ON o.digest = di.digest
             WHERE di.digest_name = 'desk' AND o.status = 'sent'",
        ) == Some(articles)
}

/// Every time the server was asked for each feed path, in order.
pub fn requests(server: &TestServer) -> BTreeMap<String, Vec<Instant>> {
    let mut by: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for s in server.seen() {
        by.entry(s.path).or_default().push(s.at);
    }
    for times in by.values_mut() {
        times.sort();
    }
    by
}

/// An SMTP server for the nodes, storing what it receives under `dir/mail`, the folder its faults
/// are armed in (`arm`) and its notes are left in (`held_message`).
pub fn mail_sink(dir: &Path) -> (PathBuf, SmtpSink) {
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).expect("mkdir");
    let sink = SmtpSink::start(&mail, &[]);
    (mail, sink)
}

/// The Message-ID the SMTP server is holding under an armed fault (its `HUNG` note for `hang`,
/// `STALLED` for `slow-final`), once it holds one; the note is removed so the next armed fault
/// writes a fresh one.
pub fn held_message(mail: &Path, note: &str) -> Option<String> {
    let note = mail.join(note);
    let raw = std::fs::read(&note).ok()?;
    std::fs::remove_file(&note).expect("remove the SMTP server's note");
    Some(bare(&Mail::parse(&raw).message_id))
}

/// A Message-ID without its angle brackets.
pub fn bare(message_id: &str) -> String {
    message_id.trim_matches(['<', '>']).to_string()
}

/// Arms the SMTP server's next DATA with `fault`: `hang` (never answer, store nothing) or
/// `slow-final N` (store it, answer 250 after N seconds).
pub fn arm(mail: &Path, fault: &str) {
    std::fs::write(mail.join("ARM"), fault).expect("arm the SMTP server");
}

/// The node holding the claim on queued message `id` (bare), if one does.
pub fn claimant(url: &str, id: &str) -> Option<String> {
    query(
        url,
        "SELECT message_id || ' ' || COALESCE(claim_node, '') FROM outbox WHERE status = 'queued'",
    )
    .into_iter()
    .find_map(|row| {
        let (m, node) = row.rsplit_once(' ')?;
        (bare(m) == id && !node.is_empty()).then(|| node.to_string())
    })
}

/// Message `id`'s (bare) outbox status.
pub fn status_of(url: &str, id: &str) -> Option<String> {
    query(url, "SELECT message_id || ' ' || status FROM outbox")
        .into_iter()
        .find_map(|row| {
            let (m, status) = row.rsplit_once(' ')?;
            (bare(m) == id).then(|| status.to_string())
        })
}

/// The SMTP server stored each sent email exactly once and nothing else, and nothing is left
/// unsent; returns the Message-IDs (bare) it received.
pub fn each_email_once(url: &str, received: &[Vec<u8>], report: &str) -> BTreeSet<String> {
    let received: Vec<String> = received
        .iter()
        .map(|m| bare(&Mail::parse(m).message_id))
        .collect();
    let unique: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "a duplicate: {received:?}\n{report}"
    );
    let sent: BTreeSet<String> = query(url, "SELECT message_id FROM outbox WHERE status = 'sent'")
        .iter()
        .map(|m| bare(m))
        .collect();
    assert_eq!(unique, sent, "{report}");
    assert_eq!(
        count(url, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"),
        0,
        "{report}"
    );
    unique
}
