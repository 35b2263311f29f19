//! Three daemons, one PostgreSQL (issue 17): three `run` processes with the same feeds and
//! rules, each its own node, on one loopback feed server and one SMTP server. One is killed
//! with SIGKILL mid-run and another has its connections cut (`pg_terminate_backend`); then a
//! second wave of news arrives. Every article is matched once, every match goes out in exactly
//! one delivered digest email, each minute slot of a scheduled digest gives exactly one email,
//! no email is lost or doubled at the SMTP server, the killed node's feeds are polled by the
//! others, and the node whose connections were cut carries on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::postgres::{fresh_database_url, query, store_table, terminate_node, try_query};
use crate::support::smtp::SmtpSink;

const FEEDS: usize = 24;
const NODES: usize = 3;
/// The shortest lease the config allows: a killed node's feeds come free this soon.
const LEASE: &str = "5s";

const RULES: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = "minerals"
"#;

/// Feed `f`'s document with stories `0..n` of wave `wave` (each story names the minerals deal).
fn feed_doc(f: usize, waves: usize) -> Vec<u8> {
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

/// Node `n`'s config in `dir/node-n`: its own state directory (the instance lock), the shared
/// PostgreSQL, every feed every 2 s.
fn node_config(dir: &Path, n: usize, url: &str, server: &TestServer, smtp_port: u16) -> PathBuf {
    let home = dir.join(format!("node-{n}"));
    std::fs::create_dir_all(home.join("rules")).expect("mkdir rules");
    std::fs::write(home.join("rules/r.toml"), RULES).expect("write rules");
    let mut text = format!(
        r#"state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
interval = "2s"
min_interval = "1s"
timeout = "5s"

[delivery]
method = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = "10s"
from = "newswatch <newswatch@example.org>"

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
{}"#,
        store_table(url, &format!("node-{n}"), LEASE)
    );
    for f in 0..FEEDS {
        text.push_str(&format!(
            "\n[[feed]]\nname = \"feed-{f}\"\nurl = \"{}\"\n",
            server.url(&format!("/f{f}.rss"))
        ));
    }
    let path = home.join("newswatch.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running node; its log lines go to the test's one channel, prefixed with its name.
struct Node {
    child: Child,
}

impl Node {
    fn start(config: &Path, n: usize, log: &Sender<String>) -> Node {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
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

    fn signal(&self, sig: &str) {
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
fn wait_until(
    log: &Receiver<String>,
    lines: &mut Vec<String>,
    limit: Duration,
    what: &str,
    done: impl Fn() -> bool,
) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            lines.join("\n")
        );
        if let Ok(line) = log.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
    }
}

fn count(url: &str, sql: &str) -> usize {
    query(url, &format!("SELECT ({sql})::TEXT"))[0]
        .parse()
        .expect("a count")
}

/// `count`, or `None` before the nodes have made the schema.
fn try_count(url: &str, sql: &str) -> Option<usize> {
    try_query(url, &format!("SELECT ({sql})::TEXT"))
        .ok()?
        .first()?
        .parse()
        .ok()
}

/// Requests per feed path the server has seen (after `since`, when given).
fn polls(server: &TestServer, since: Option<Instant>) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for s in server.seen() {
        if since.is_none_or(|t| s.at > t) {
            *by.entry(s.path).or_insert(0) += 1;
        }
    }
    by
}

#[test]
fn three_nodes_share_the_work_and_survive_a_kill_and_a_cut_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    for f in 0..FEEDS {
        server.set(&format!("/f{f}.rss"), feed_doc(f, 1));
    }
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).expect("mkdir");
    let sink = SmtpSink::start(&mail, &[]);
    let url = fresh_database_url();
    let (tx, log) = channel::<String>();
    let mut lines = Vec::new();
    let mut nodes: Vec<Option<Node>> = (1..=NODES)
        .map(|n| {
            let config = node_config(tmp.path(), n, &url, &server, sink.port);
            Some(Node::start(&config, n, &tx))
        })
        .collect();
    let minute = Duration::from_secs(150);

    // Wave 1: every story matched and carried by a delivered desk digest.
    let url_ref = url.as_str();
    let delivered_all = |articles: usize| {
        move || {
            let url = url_ref;
            try_count(url, "SELECT COUNT(*) FROM articles") == Some(articles)
                && try_count(url, "SELECT COUNT(*) FROM unmatched") == Some(0)
                && try_count(
                    url,
                    "SELECT COUNT(*) FROM digest_items di JOIN outbox o ON o.digest = di.digest
                     WHERE di.digest_name = 'desk' AND o.status = 'sent'",
                ) == Some(articles)
        }
    };
    wait_until(
        &log,
        &mut lines,
        minute,
        "wave 1 delivered",
        delivered_all(FEEDS),
    );
    wait_until(&log, &mut lines, minute, "three nodes beating", || {
        count(&url, "SELECT COUNT(*) FROM nodes") == NODES
    });
    let hashes = query(&url, "SELECT DISTINCT rules_hash FROM nodes");
    assert_eq!(hashes.len(), 1, "the same rules on every node: {hashes:?}");

    // Node 1 killed outright (whatever leases or claims it holds), node 2's connections cut.
    nodes[0].as_ref().expect("node 1").signal("KILL");
    nodes[0] = None;
    let killed_at = Instant::now();
    let cut = terminate_node("node-2");
    assert!(cut > 0, "node 2 had connections to cut");
    let beat_before: String = query(
        &url,
        "SELECT heartbeat::TEXT FROM nodes WHERE name = 'node-2'",
    )
    .pop()
    .expect("node 2's row");

    // Wave 2: a second story on every feed, after the kill.
    for f in 0..FEEDS {
        server.set(&format!("/f{f}.rss"), feed_doc(f, 2));
    }
    wait_until(
        &log,
        &mut lines,
        minute,
        "wave 2 delivered",
        delivered_all(2 * FEEDS),
    );
    // The killed node's feeds were taken over: every feed was polled after the kill.
    wait_until(
        &log,
        &mut lines,
        minute,
        "every feed polled after the kill",
        || polls(&server, Some(killed_at)).len() == FEEDS,
    );
    // Node 2 came back on fresh connections: it beats again.
    wait_until(
        &log,
        &mut lines,
        minute,
        "node 2 beating after the cut",
        || {
            query(
                &url,
                "SELECT heartbeat::TEXT FROM nodes WHERE name = 'node-2'",
            )
            .pop()
            .is_some_and(|b| b != beat_before)
        },
    );
    // At least one minute slot served.
    wait_until(&log, &mut lines, minute, "a minute slot", || {
        count(
            &url,
            "SELECT COUNT(*) FROM outbox WHERE digest_name = 'minute' AND status = 'sent'",
        ) >= 1
    });
    for node in nodes.iter().flatten() {
        node.signal("TERM");
    }
    for node in nodes.iter_mut().flatten() {
        let status = node.child.wait().expect("wait");
        assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
    }
    lines.extend(log.try_iter());
    let report = lines.join("\n");

    // Every article matched exactly once (one rule: one match each), none left to match.
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM matches"),
        2 * FEEDS,
        "{report}"
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM unmatched"), 0);
    // Every match in exactly one desk digest (the key is (digest, match)); no desk digest
    // email without its matches.
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(DISTINCT match_id) FROM digest_items WHERE digest_name = 'desk'"
        ),
        2 * FEEDS
    );
    // Each minute slot: exactly one email.
    let per_slot = query(
        &url,
        "SELECT COUNT(*)::TEXT FROM digests WHERE name = 'minute' GROUP BY slot",
    );
    assert!(!per_slot.is_empty());
    assert!(per_slot.iter().all(|n| n == "1"), "{per_slot:?}");
    // The SMTP server saw each sent email exactly once, and nothing else.
    let received: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| {
            Mail::parse(m)
                .message_id
                .trim_matches(['<', '>'])
                .to_string()
        })
        .collect();
    let unique: BTreeSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "a duplicate: {received:?}");
    let sent: BTreeSet<String> = query(&url, "SELECT message_id FROM outbox WHERE status = 'sent'")
        .into_iter()
        .map(|m| m.trim_matches(['<', '>']).to_string())
        .collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        sent,
        "{report}"
    );
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"),
        0
    );
}
