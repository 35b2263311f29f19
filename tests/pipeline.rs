//! The pipeline end to end with real components: the sample feeds served over HTTP on 127.0.0.1,
//! a real SMTP server process (aiosmtpd), a real SQLite file, and the built binary for the demo.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use newswatch::config::Config;
use newswatch::model::{OutboxCounts, OutboxStatus, PendingMatch};
use newswatch::pipeline::{self, Feeds, Pipeline, Summary};
use newswatch::rules::RuleSet;
use newswatch::store::Store;
use support::{FeedServer, SmtpSink};
use tokio_util::sync::CancellationToken;

const DEMO_FEEDS: [&str; 5] = [
    "northgate-chronicle.rss",
    "atlantic-wire.atom",
    "continental-defence.rss",
    "kyiv-ledger.json",
    "meridian-sports-and-business.rss",
];

/// What the two test rules must find in the sample feeds (by title).
const EXPECTED: [&str; 9] = [
    "Hegseth hosts Healey at Pentagon for talks on Ukraine and NATO burden-sharing",
    "Analysis: Hegseth's warning leaves Europe weighing a Ukraine force without US troops",
    "After Washington talks, Healey and Hegseth leave the force question open",
    "Healey to press Hegseth on Ukraine security guarantees during Washington visit",
    "Healey and Hegseth speak as allied planners gather at Northwood",
    "Washington hands Kyiv broader draft of minerals deal",
    "Zelensky says minerals deal must not saddle Ukraine with a debt to repay",
    "New US draft of minerals deal alarms Kyiv lawmakers",
    "Kyiv and Washington agree terms of minerals deal, Ukrainian officials say",
];

const RULES: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = '"minerals deal"'

[[rule]]
id = "hegseth"
title = "Healey–Hegseth talks"
query = "Hegseth"
"#;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds")
}

fn demo_feed(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).expect("read demo feed")
}

/// Every article title in the sample feeds, parsed the way the pipeline parses them.
fn all_titles() -> Vec<String> {
    let base = url::Url::parse("http://127.0.0.1/").expect("url");
    DEMO_FEEDS
        .iter()
        .flat_map(|f| {
            newswatch::parse::parse_feed(&demo_feed(f), &base)
                .expect("demo feed parses")
                .articles
        })
        .map(|a| a.title)
        .collect()
}

/// The escaping minijinja's HTML auto-escape applies.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

struct Received {
    subject: String,
    text: String,
    html: String,
    headers: String,
}

fn parse_mail(raw: &[u8]) -> Received {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("received MIME parses");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    Received {
        subject: msg.subject().unwrap_or_default().to_string(),
        text: msg.body_text(0).expect("a text/plain part").into_owned(),
        html: msg.body_html(0).expect("a text/html part").into_owned(),
        headers: String::from_utf8_lossy(&raw[..head_end]).into_owned(),
    }
}

/// A temp directory with a config and the rule file; returns the config path.
fn write_config(
    dir: &Path,
    feeds: &[(String, String)],
    smtp_port: u16,
    smtp_timeout: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(dir.join("rules/test.toml"), RULES).expect("write rules");
    let mut cfg = format!(
        r#"
state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
concurrency = 3
interval = "10m"
timeout = "5s"

[delivery]
method = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = "{smtp_timeout}"
from = "newswatch <newswatch@example.org>"

[[digest]]
name = "desk"
to = ["Analyst <analyst@example.org>"]
"#
    );
    for (name, url) in feeds {
        cfg.push_str(&format!("\n[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
    }
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

fn load(path: &Path) -> (Config, RuleSet) {
    let config = Config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
    let rules = RuleSet::load(&config.rule_files).unwrap_or_else(|e| panic!("rules: {e}"));
    (config, rules)
}

async fn serve_demo() -> (FeedServer, Vec<(String, String)>) {
    let server = FeedServer::start().await;
    let mut feeds = Vec::new();
    for f in DEMO_FEEDS {
        server.set(&format!("/feeds/{f}"), demo_feed(f));
        let name = f.split('.').next().expect("name").to_string();
        feeds.push((name, server.url(&format!("/feeds/{f}"))));
    }
    (server, feeds)
}

fn summary_counts(s: &Summary) -> [usize; 8] {
    [
        s.feeds_polled,
        s.feeds_failed,
        s.feeds_unchanged,
        s.new_articles,
        s.matches,
        s.emails_composed,
        s.emails_sent,
        s.emails_deferred,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_over_http_and_smtp() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, mut feeds) = serve_demo().await;
    // A feed that fails is recorded and does not stop the others.
    feeds.push(("gone".into(), server.url("/feeds/gone.xml")));
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let (config, rules) = load(&write_config(tmp.path(), &feeds, sink.port, "5s"));

    // Cycle 1: everything is new; one digest with exactly the matching articles.
    let s1 = pipeline::run_once(&config, &rules).await.expect("cycle 1");
    // polled, failed, unchanged, new, matches, composed, sent, deferred
    assert_eq!(summary_counts(&s1), [6, 1, 0, 64, 9, 1, 1, 0], "{s1}");
    assert_eq!(s1.failures.len(), 1);
    assert!(s1.failures[0].1.contains("404"), "{:?}", s1.failures);
    assert!(
        s1.to_string()
            .contains(&format!("smtp 127.0.0.1:{}", sink.port)),
        "{s1}"
    );
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let m = parse_mail(&mails[0]);
    assert_eq!(
        m.subject,
        "[newswatch] 9 articles: Healey–Hegseth talks (5), Minerals deal (4)"
    );
    for title in EXPECTED {
        assert!(
            m.text.contains(title),
            "text part lacks {title:?}:\n{}",
            m.text
        );
        assert!(
            m.html.contains(&html_escape(title)),
            "html part lacks {title:?}:\n{}",
            m.html
        );
    }
    let others: Vec<String> = all_titles()
        .into_iter()
        .filter(|t| !EXPECTED.contains(&t.as_str()))
        .collect();
    assert_eq!(others.len(), 64 - 9);
    for title in &others {
        assert!(
            !m.text.contains(title.as_str()),
            "text part has non-matching {title:?}"
        );
        assert!(
            !m.html.contains(&html_escape(title)) && !m.html.contains(title.as_str()),
            "html part has non-matching {title:?}"
        );
    }
    assert!(m.text.contains("matched: minerals deal"), "{}", m.text);
    assert!(m.html.contains("matched: Hegseth"), "{}", m.html);
    for header in [
        "Auto-Submitted: auto-generated",
        "List-Id: newswatch digest desk",
        "Message-ID: <digest-1.desk.",
        "To: Analyst <analyst@example.org>",
    ] {
        assert!(
            m.headers.contains(header),
            "{header:?} missing:\n{}",
            m.headers
        );
    }

    // Cycle 2: every feed answers 304; nothing is parsed, nothing is sent.
    let before = server.counts();
    let s2 = pipeline::run_once(&config, &rules).await.expect("cycle 2");
    assert_eq!(summary_counts(&s2), [6, 1, 5, 0, 0, 0, 0, 0], "{s2}");
    let after = server.counts();
    assert_eq!(after.not_modified - before.not_modified, 5);
    assert_eq!(
        after.conditional - before.conditional,
        5,
        "validators were sent"
    );
    assert_eq!(sink.messages().len(), 1);

    // Cycle 3: one feed gains a matching item; exactly that item is sent.
    let new_title = "Kyiv signs the minerals deal at a late-night ceremony";
    let mut feed: serde_json::Value =
        serde_json::from_slice(&demo_feed("kyiv-ledger.json")).expect("json feed");
    feed["items"].as_array_mut().expect("items").insert(
        0,
        serde_json::json!({
            "id": "kl-test-late-night-signing",
            "url": "https://kyiv-ledger.example/test/late-night-signing",
            "title": new_title,
            "content_text": "Officials said the text was unchanged from the draft.",
            "date_published": "2025-04-30T23:10:00Z"
        }),
    );
    server.set(
        "/feeds/kyiv-ledger.json",
        serde_json::to_vec(&feed).expect("serialise"),
    );
    let s3 = pipeline::run_once(&config, &rules).await.expect("cycle 3");
    assert_eq!(summary_counts(&s3), [6, 1, 4, 1, 1, 1, 1, 0], "{s3}");
    let mails = sink.messages();
    assert_eq!(mails.len(), 2);
    let m = parse_mail(&mails[1]);
    assert_eq!(m.subject, "[newswatch] 1 article: Minerals deal (1)");
    assert!(m.text.contains(new_title) && m.html.contains(new_title));
    for title in EXPECTED {
        assert!(!m.text.contains(title) && !m.html.contains(&html_escape(title)));
    }
    assert!(
        m.headers.contains("Message-ID: <digest-2.desk."),
        "{}",
        m.headers
    );

    let store = Store::open(&config.state_dir).expect("reopen store");
    let gone = store.feed_state("gone").expect("query").expect("row");
    assert_eq!(gone.error_count, 3);
    assert!(gone.last_error.is_some_and(|e| e.contains("404")));
    assert_eq!(
        store.outbox_counts().expect("counts"),
        OutboxCounts {
            queued: 0,
            sent: 2,
            failed: 0
        }
    );
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

/// One feed, one matching article: the smallest setup for delivery behaviour.
async fn one_feed(tmp: &Path, sink_args: &[&str]) -> (FeedServer, SmtpSink, PathBuf) {
    one_feed_with_timeout(tmp, sink_args, "5s").await
}

async fn one_feed_with_timeout(
    tmp: &Path,
    sink_args: &[&str],
    smtp_timeout: &str,
) -> (FeedServer, SmtpSink, PathBuf) {
    let server = FeedServer::start().await;
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    let feeds = [("kyiv".to_string(), server.url("/feeds/kyiv-ledger.json"))];
    let sink = SmtpSink::start(&tmp.join("received"), sink_args);
    let path = write_config(tmp, &feeds, sink.port, smtp_timeout);
    (server, sink, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_451_is_retried_after_the_backoff_and_then_sent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) =
        one_feed(tmp.path(), &["--fault", "451", "--fault-count", "1"]).await;
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");

    let s = p.cycle(t0, Feeds::Due).await.expect("cycle 1");
    assert_eq!(
        (s.emails_composed, s.emails_sent, s.emails_deferred),
        (1, 0, 1),
        "{s}"
    );
    assert!(sink.messages().is_empty());
    // Before the back-off has passed nothing is attempted.
    let s = p
        .cycle(t0 + chrono::Duration::seconds(30), Feeds::Due)
        .await
        .expect("cycle 2");
    assert_eq!((s.emails_sent, s.emails_deferred), (0, 0), "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::seconds(60), Feeds::Due)
        .await
        .expect("cycle 3");
    assert_eq!(
        (s.emails_sent, s.emails_deferred, s.emails_composed),
        (1, 0, 0),
        "{s}"
    );
    assert_eq!(sink.messages().len(), 1);
    drop(p);

    let store = Store::open(&config.state_dir).expect("reopen");
    let m = store.message(1).expect("message 1");
    assert_eq!((m.status, m.attempts), (OutboxStatus::Sent, 2));
    // The retried message is the composed one, Message-ID and all (SMTP only adds a final CRLF).
    let received = &sink.messages()[0];
    assert!(
        received.starts_with(&m.raw[..m.raw.len() - 2]),
        "the stored bytes went out as they were"
    );
    let id = |raw: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(raw)
            .and_then(|p| p.message_id().map(str::to_string))
    };
    assert_eq!(id(received), id(&m.raw));
    assert!(id(&m.raw).is_some_and(|i| i.starts_with("digest-1.desk.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_is_kept_as_failed_and_never_retried() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) = one_feed(tmp.path(), &["--fault", "550"]).await;
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");
    let s = p.cycle(t0, Feeds::Due).await.expect("cycle 1");
    assert_eq!((s.emails_sent, s.emails_failed), (0, 1), "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::days(2), Feeds::Due)
        .await
        .expect("cycle 2");
    assert_eq!(
        (s.emails_sent, s.emails_failed, s.emails_deferred),
        (0, 0, 0),
        "{s}"
    );
    assert!(sink.messages().is_empty());
    drop(p);
    let store = Store::open(&config.state_dir).expect("reopen");
    let m = store.message(1).expect("message 1");
    assert_eq!(m.status, OutboxStatus::Failed);
    assert!(
        m.last_error.as_deref().is_some_and(|e| e.contains("550")),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_outcomes_are_classified() {
    // (sink fault, sent, deferred, failed, outbox status afterwards)
    let cases: [(&[&str], usize, usize, usize, OutboxStatus); 5] = [
        (&[], 1, 0, 0, OutboxStatus::Sent),
        (&["--fault", "451"], 0, 1, 0, OutboxStatus::Queued),
        (&["--fault", "550"], 0, 0, 1, OutboxStatus::Failed),
        (&["--fault", "drop"], 0, 1, 0, OutboxStatus::Queued),
        // The server never answers DATA: the whole-exchange deadline (300ms) gives up.
        (&["--fault", "hang"], 0, 1, 0, OutboxStatus::Queued),
    ];
    for (fault, sent, deferred, failed, status) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_server, _sink, path) = one_feed_with_timeout(tmp.path(), fault, "300ms").await;
        let (config, rules) = load(&path);
        let s = pipeline::run_once(&config, &rules).await.expect("cycle");
        assert_eq!(
            (s.emails_sent, s.emails_deferred, s.emails_failed),
            (sent, deferred, failed),
            "{fault:?}: {s}"
        );
        let store = Store::open(&config.state_dir).expect("reopen");
        let m = store.message(1).expect("message 1");
        assert_eq!((m.status, m.attempts), (status, 1), "{fault:?}: {m:?}");
        assert_eq!(
            m.last_error.is_some(),
            status != OutboxStatus::Sent,
            "{fault:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_uses_the_configured_credentials() {
    // (username and password, sent, failed): the sink requires AUTH as nw / s3cret.
    let cases = [
        (Some(("nw", "s3cret")), 1, 0),
        (Some(("nw", "wrong")), 0, 1), // 535: permanent
        (None, 0, 1),                  // 530 authentication required: permanent
    ];
    for (creds, sent, failed) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_server, sink, path) = one_feed(tmp.path(), &["--auth", "nw:s3cret"]).await;
        let mut text = std::fs::read_to_string(&path).expect("config text");
        if let Some((user, _)) = creds {
            text = text.replace(
                "security = \"none\"",
                &format!("security = \"none\"\nusername = \"{user}\"\npassword_env = \"NW_SMTP_PASSWORD\""),
            );
        }
        let password = creds.map(|c| c.1.to_string());
        let env = move |name: &str| {
            (name == "NW_SMTP_PASSWORD")
                .then(|| password.clone())
                .flatten()
        };
        let config = Config::from_str(&path, &text, &env).unwrap_or_else(|e| panic!("config: {e}"));
        let rules = RuleSet::load(&config.rule_files).expect("rules");
        let s = pipeline::run_once(&config, &rules).await.expect("cycle");
        assert_eq!(
            (s.emails_sent, s.emails_failed),
            (sent, failed),
            "{creds:?}: {s} {:?}",
            Store::open(&config.state_dir)
                .and_then(|st| st.message(1))
                .map(|m| m.last_error)
        );
        assert_eq!(sink.messages().len(), sent, "{creds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_polls_each_feed_when_due_and_stops_when_cancelled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _sink, path) = one_feed(tmp.path(), &[]).await;
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");

    let s = p.cycle(t0, Feeds::Due).await.expect("first");
    assert_eq!((s.feeds_polled, s.emails_sent), (1, 1), "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::minutes(9), Feeds::Due)
        .await
        .expect("early");
    assert_eq!(s.feeds_polled, 0, "the 10m interval has not passed");
    assert_eq!(server.counts().requests, 1);

    // The loop: the clock says the feed is due; cancellation arrives during the first idle wait.
    let shutdown = CancellationToken::new();
    let calls = AtomicUsize::new(0);
    let clock = || {
        if calls.fetch_add(1, Ordering::SeqCst) >= 1 {
            shutdown.cancel();
        }
        t0 + chrono::Duration::minutes(10)
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        newswatch::daemon::run_until(&p, &shutdown, clock),
    )
    .await
    .expect("run_until stops promptly once cancelled")
    .expect("run_until");
    let c = server.counts();
    assert_eq!(
        (c.requests, c.not_modified),
        (2, 1),
        "one more, conditional, poll"
    );
}

/// A copy of the demo (config/demo.toml, its feeds, rules) in `tmp`, laid out like the repository.
fn copy_demo(tmp: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_dir = tmp.join("config");
    std::fs::create_dir_all(config_dir.join("demo/feeds")).expect("mkdir");
    let demo = std::fs::read_to_string(root.join("config/demo.toml")).expect("read demo.toml");
    // Any free port: 9187 may be taken by another test's daemon (or a real one).
    std::fs::write(
        config_dir.join("demo.toml"),
        format!("{demo}\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("copy demo.toml");
    for f in DEMO_FEEDS {
        std::fs::copy(demo_dir().join(f), config_dir.join("demo/feeds").join(f))
            .expect("copy feed");
    }
    // The demo runs the shipped rules, exactly as the README's command does.
    std::fs::create_dir_all(tmp.join("rules")).expect("mkdir rules");
    let shipped: Vec<PathBuf> = std::fs::read_dir(root.join("rules"))
        .expect("read rules/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!shipped.is_empty(), "no shipped rules in rules/");
    for r in &shipped {
        std::fs::copy(r, tmp.join("rules").join(r.file_name().expect("name"))).expect("copy rule");
    }
}

#[test]
fn the_demo_runs_from_a_temp_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_demo(tmp.path());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["run", "--once", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .env("NEWSWATCH_LOG", "warn")
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("polled 5 feeds (0 failed, 0 unchanged): 64 new articles"),
        "{stdout}"
    );
    assert!(
        stdout.contains("emails: 2 composed, 2 sent, 0 deferred, 0 failed; delivery: files in "),
        "a digest and an alert: {stdout}"
    );
    assert!(stdout.contains("outbox"), "{stdout}");

    let mut emls: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("outbox"))
        .expect("outbox dir exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    emls.sort();
    assert_eq!(emls.len(), 2, "{emls:?}");
    let alert = parse_mail(&std::fs::read(&emls[0]).expect("read eml"));
    assert!(
        alert.subject.starts_with("[newswatch alert] "),
        "{}",
        alert.subject
    );
    assert!(
        alert
            .headers
            .contains("To: \"Duty officer\" <duty@example.org>"),
        "{}",
        alert.headers
    );
    let m = parse_mail(&std::fs::read(&emls[1]).expect("read eml"));
    assert!(
        m.subject.starts_with("[newswatch] Morning brief — "),
        "{}",
        m.subject
    );
    assert!(
        m.text.contains(" GMT") || m.text.contains(" BST"),
        "London times: {}",
        m.text
    );
    assert!(m.text.contains("matched: "), "{}", m.text);
    assert!(
        m.html.contains("<table") && m.html.contains("matched: "),
        "{}",
        m.html
    );
    assert!(tmp.path().join("state/newswatch.db").is_file());

    // A second run finds nothing new and writes nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["run", "--once", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .env("NEWSWATCH_LOG", "warn")
        .output()
        .expect("run the binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 new articles, 0 matches"), "{stdout}");
    assert!(stdout.contains("emails: 0 composed, 0 sent"), "{stdout}");

    // A preview renders what was stored without sending or consuming anything.
    let newswatch = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
            .args(args)
            .current_dir(tmp.path())
            .env("NEWSWATCH_LOG", "warn")
            .output()
            .expect("run the binary");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stdout = newswatch(&[
        "digest",
        "preview",
        "briefing",
        "--config",
        "config/demo.toml",
        "--since",
        "3650d",
        "--out",
        "preview.html",
    ]);
    assert!(
        stdout.contains("subject: [newswatch] Morning brief — "),
        "{stdout}"
    );
    let html = std::fs::read_to_string(tmp.path().join("preview.html")).expect("preview.html");
    assert!(
        html.contains("<table") && html.contains("matched: "),
        "{html}"
    );
    assert!(html.len() <= 100 * 1024);
    let text = std::fs::read_to_string(tmp.path().join("preview.txt")).expect("preview.txt");
    assert!(text.contains("Morning brief"), "{text}");
    let outbox_files = || {
        std::fs::read_dir(tmp.path().join("outbox"))
            .expect("outbox")
            .count()
    };
    assert_eq!(outbox_files(), 2, "a preview sends nothing");
    // Nothing is pending, so `digest send` has nothing to say (when_empty = "skip").
    let stdout = newswatch(&["digest", "send", "briefing", "--config", "config/demo.toml"]);
    assert!(stdout.contains("emails: 0 composed, 0 sent"), "{stdout}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["digest", "send", "nope", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no [[digest]] named \"nope\" (configured: briefing)")
    );
}

#[test]
fn the_daemon_runs_until_sigterm() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_demo(tmp.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["run", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .env("NEWSWATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    let stderr = child.stderr.take().expect("piped stderr");
    // The log, read on a thread so a daemon that never logs cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let found = line.contains(needle);
                log.push(line);
                if found {
                    return;
                }
            }
            Err(e) => {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!(
                    "no {needle:?} in the daemon's log ({e}):\n{}",
                    log.join("\n")
                );
            }
        }
    };
    wait_for("email sent", &mut log);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    wait_for("daemon stopped", &mut log);
    let exit = child.wait().expect("wait for the daemon");
    assert!(exit.success(), "{exit:?}\n{}", log.join("\n"));
    reader.join().expect("log reader");
    assert!(
        log.iter().any(|l| l.contains("SIGTERM")),
        "{}",
        log.join("\n")
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("outbox"))
            .expect("outbox")
            .count(),
        2,
        "a digest and an alert"
    );
}

// ---- issue 4: alerts, schedules, TLS, delivery faults ------------------------------------------

/// The test rules with Hegseth as an alert rule.
const ALERT_RULES: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = '"minerals deal"'

[[rule]]
id = "hegseth"
title = "Healey–Hegseth talks"
query = "Hegseth"
priority = "alert"
"#;

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI.
/// Returns (ca.pem, server cert, server key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=newswatch test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&ca);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    csr.extend(ec);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_auth_deliver_a_digest_and_one_batched_alert() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = make_certs(tmp.path());
    let (_server, feeds) = serve_demo().await;
    let sink = SmtpSink::start(
        &tmp.path().join("received"),
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--auth",
            "nw:s3cret",
        ],
    );
    let path = write_config(tmp.path(), &feeds, sink.port, "10s");
    std::fs::write(tmp.path().join("rules/test.toml"), ALERT_RULES).expect("alert rules");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(
            "security = \"none\"",
            &format!(
                "security = \"starttls\"\nca_file = \"{}\"\nusername = \"nw\"\npassword_env = \"NW_PW\"",
                ca.display()
            ),
        )
        + "\n[[alert]]\nname = \"breaking\"\nto = [\"duty@example.org\"]\nwindow = \"2m\"\n";
    let env = |name: &str| (name == "NW_PW").then(|| "s3cret".to_string());
    let config = Config::from_str(&path, &text, &env).unwrap_or_else(|e| panic!("config: {e}"));
    let rules = RuleSet::load(&config.rule_files).expect("rules");
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");

    // The digest goes at once; the five Hegseth matches wait for the alert window to close.
    let s = p.cycle(t0, Feeds::Due).await.expect("cycle 1");
    assert_eq!(
        (s.matches, s.emails_composed, s.emails_sent),
        (9, 1, 1),
        "{s}"
    );
    assert_eq!(
        p.next_digest_wake(),
        Some(t0 + chrono::Duration::minutes(2))
    );
    let s = p
        .cycle(t0 + chrono::Duration::seconds(90), Feeds::Due)
        .await
        .expect("inside the window");
    assert_eq!(s.emails_composed, 0, "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::minutes(2), Feeds::Due)
        .await
        .expect("window closed");
    assert_eq!((s.emails_composed, s.emails_sent), (1, 1), "{s}");

    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "one digest, one alert for the whole burst");
    let digest = parse_mail(&mails[0]);
    assert_eq!(digest.subject, "[newswatch] 4 articles: Minerals deal (4)");
    let alert = parse_mail(&mails[1]);
    assert!(
        alert
            .subject
            .starts_with("[newswatch alert] 5 articles: Healey–Hegseth talks ("),
        "{}",
        alert.subject
    );
    assert!(
        alert.headers.contains("To: duty@example.org"),
        "{}",
        alert.headers
    );
    assert!(
        alert.headers.contains("Message-ID: <alert-"),
        "{}",
        alert.headers
    );
    for title in &EXPECTED[..5] {
        assert!(
            !digest.text.contains(title),
            "alert matches stay out of the digest"
        );
    }
    for part in [&alert.text, &alert.html] {
        assert!(part.contains("matched: Hegseth"), "{part}");
    }
    assert!(
        alert.text.contains("*Hegseth*"),
        "highlighted: {}",
        alert.text
    );
    assert!(alert.html.contains(">Hegseth</mark>"), "{}", alert.html);
    let rcpt = std::fs::read_to_string(sink.dir.join("0002.eml.rcpt")).expect("envelope");
    assert_eq!(rcpt, "newswatch@example.org\nduty@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_over_the_hourly_cap_go_to_the_next_digest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, feeds) = serve_demo().await;
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let path = write_config(tmp.path(), &feeds, sink.port, "5s");
    std::fs::write(tmp.path().join("rules/test.toml"), ALERT_RULES).expect("alert rules");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(
        "\n[[alert]]\nname = \"breaking\"\nto = [\"duty@example.org\"]\nwindow = \"1m\"\nmax_per_hour = 1\n",
    );
    std::fs::write(&path, text).expect("config");
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");
    p.cycle(t0, Feeds::Due).await.expect("cycle 1");
    let s = p
        .cycle(t0 + chrono::Duration::minutes(1), Feeds::Due)
        .await
        .expect("alert");
    assert_eq!(s.emails_sent, 1, "the first alert of the hour: {s}");

    // A second burst within the hour: over the cap, so it rides with the next digest.
    let mut feed: serde_json::Value =
        serde_json::from_slice(&demo_feed("kyiv-ledger.json")).expect("json feed");
    feed["items"].as_array_mut().expect("items").insert(
        0,
        serde_json::json!({
            "id": "kl-test-hegseth-call",
            "url": "https://kyiv-ledger.example/test/hegseth-call",
            "title": "Hegseth calls Kyiv after the talks",
            "content_text": "A short call.",
            "date_published": "2025-04-30T23:10:00Z"
        }),
    );
    server.set(
        "/feeds/kyiv-ledger.json",
        serde_json::to_vec(&feed).expect("json"),
    );
    let s = p
        .cycle(t0 + chrono::Duration::minutes(10), Feeds::Due)
        .await
        .expect("second burst");
    assert_eq!(
        (s.matches, s.emails_composed),
        (1, 0),
        "held for the window: {s}"
    );
    let s = p
        .cycle(t0 + chrono::Duration::minutes(11), Feeds::Due)
        .await
        .expect("cap reached");
    assert_eq!((s.emails_composed, s.emails_sent), (1, 1), "{s}");
    let mails = sink.messages();
    assert_eq!(mails.len(), 3, "digest, alert, digest");
    let last = parse_mail(&mails[2]);
    assert_eq!(
        last.subject,
        "[newswatch] 1 article: Healey–Hegseth talks (1)"
    );
    assert!(last.text.contains("Hegseth calls Kyiv after the talks"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_digest_goes_once_per_slot_and_once_after_downtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) = one_feed(tmp.path(), &[]).await;
    let text = std::fs::read_to_string(&path).expect("config").replace(
        "name = \"desk\"",
        "name = \"desk\"\nschedule = \"daily 07:00\"\ntimezone = \"Europe/London\"\nwhen_empty = \"send\"",
    );
    std::fs::write(&path, text).expect("config");
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");

    // (now, emails composed): matches arrive before the slot and wait for it.
    let steps = [
        ("2026-01-05T06:59:00Z", 0),
        ("2026-01-05T07:00:00Z", 1),
        ("2026-01-05T07:30:00Z", 0),
        // Down from before the 6th's slot until after the 7th's: one email, not two.
        ("2026-01-07T07:20:00Z", 1),
        ("2026-01-07T07:40:00Z", 0),
    ];
    for (now, composed) in steps {
        let s = p.cycle(at(now), Feeds::Due).await.expect("cycle");
        assert_eq!(s.emails_composed, composed, "at {now}: {s}");
        assert_eq!(
            p.next_digest_wake(),
            Some(at(&format!("{}T07:00:00Z", next_day(now)))),
            "at {now}"
        );
    }
    let mails = sink.messages();
    assert_eq!(mails.len(), 2);
    assert!(parse_mail(&mails[0]).subject.starts_with("[newswatch] "));
    assert_eq!(parse_mail(&mails[1]).subject, "[newswatch] nothing new");
}

/// The date of the next 07:00 London (= UTC in winter) slot after `now`.
fn next_day(now: &str) -> String {
    let t = at(now);
    let slot = t
        .date_naive()
        .and_hms_opt(7, 0, 0)
        .expect("valid")
        .and_utc();
    let next = if t < slot {
        slot
    } else {
        slot + chrono::Duration::days(1)
    };
    next.format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_gets_the_message_when_it_returns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let server = FeedServer::start().await;
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    let feeds = [("kyiv".to_string(), server.url("/feeds/kyiv-ledger.json"))];
    let (config, rules) = load(&write_config(tmp.path(), &feeds, port, "5s"));
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");
    let s = p.cycle(t0, Feeds::Due).await.expect("down");
    assert_eq!((s.emails_composed, s.emails_deferred), (1, 1), "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::seconds(60), Feeds::Due)
        .await
        .expect("still down");
    assert_eq!(s.emails_deferred, 1, "{s}");

    let sink = SmtpSink::start(&tmp.path().join("received"), &["--port", &port.to_string()]);
    let s = p
        .cycle(t0 + chrono::Duration::seconds(60 + 120), Feeds::Due)
        .await
        .expect("back");
    assert_eq!((s.emails_sent, s.emails_deferred), (1, 0), "{s}");
    assert_eq!(sink.messages().len(), 1);
    drop(p);
    let store = Store::open(&config.state_dir).expect("reopen");
    let m = store.message(1).expect("message 1");
    assert_eq!((m.status, m.attempts), (OutboxStatus::Sent, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_hanging_after_data_is_retried_while_polling_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, sink, path) = one_feed_with_timeout(
        tmp.path(),
        &["--fault", "hang", "--fault-count", "1"],
        "300ms",
    )
    .await;
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T00:00:00Z");
    let s = p.cycle(t0, Feeds::Due).await.expect("hang");
    assert_eq!(
        (s.emails_sent, s.emails_deferred),
        (0, 1),
        "deadline hit: {s}"
    );
    // Ten minutes later the feed is due again and the message is retried: both happen.
    let s = p
        .cycle(t0 + chrono::Duration::minutes(10), Feeds::Due)
        .await
        .expect("later");
    assert_eq!((s.feeds_polled, s.emails_sent), (1, 1), "{s}");
    assert_eq!(server.counts().requests, 2);
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        parse_mail(&mails[0])
            .headers
            .contains("Message-ID: <digest-1.desk.")
    );
}

/// A backlog several match chunks long (on several threads, with the previous chunk's verdicts
/// written and the next read in between) gets exactly the verdicts of matching each article
/// alone: none skipped at a chunk boundary, none twice, none misattributed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_gets_the_verdicts_of_matching_one_article_at_a_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let words = [
        "Healey", "Hegseth", "minerals", "deal", "truce", "Odesa", "ports", "grain", "talks",
        "Zelensky", "backstop", "Paris", "London", "summit",
    ];
    let (feeds, items) = (36, 60);
    let mut cfg = String::from(
        "state_dir = \"state\"\nrules = [\"rules.toml\"]\nnew_feed_window = \"520w\"\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw <nw@example.org>\"\n",
    );
    let mut expected = Vec::new();
    let rules_src = r#"
[[rule]]
id = "talks"
query = 'Healey NEAR/3 Hegseth'
[[rule]]
id = "minerals"
query = '"minerals deal" AND NOT summit'
[[rule]]
id = "sea"
query = '(truce OR grain) AND (Odesa OR ports)'
[[rule]]
id = "zelensky"
query = 'Zelensky'
"#;
    std::fs::write(dir.join("rules.toml"), rules_src).expect("rules");
    let rules = RuleSet::load(&[dir.join("rules.toml")]).expect("rules load");
    let now = Utc::now();
    for f in 0..feeds {
        let mut xml = String::from("<rss version=\"2.0\"><channel><title>Wire</title>");
        for i in 0..items {
            // A deterministic mix of the words, different for every item.
            let text: Vec<&str> = (0..9)
                .map(|k| words[(f * 7 + i * 5 + k * (k + f % 3)) % words.len()])
                .collect();
            let title = format!("Item {f}-{i}: {}", text[..4].join(" "));
            let body = text.join(" ");
            xml.push_str(&format!(
                "<item><guid>urn:t:{f}:{i}</guid><title>{title}</title>\
                 <description>{body}</description></item>"
            ));
            let article = newswatch::model::Article {
                title: title.clone(),
                summary: body,
                ..Default::default()
            };
            let meta = newswatch::model::FeedMeta {
                name: format!("f{f}"),
                title: Some("Wire".to_string()),
                tags: Vec::new(),
            };
            for m in rules.match_article(&article, &meta, now) {
                expected.push((title.clone(), rules.rules()[m.rule].id.clone()));
            }
        }
        xml.push_str("</channel></rss>");
        let path = dir.join(format!("f{f}.xml"));
        std::fs::write(&path, xml).expect("feed");
        let url = url::Url::from_file_path(&path).expect("file url");
        cfg.push_str(&format!("\n[[feed]]\nname = \"f{f}\"\nurl = \"{url}\"\n"));
    }
    assert!(
        feeds * items > 2 * 1024,
        "the backlog must span several chunks"
    );
    std::fs::write(dir.join("newswatch.toml"), &cfg).expect("config");
    let (config, rules) = load(&dir.join("newswatch.toml"));
    let summary = pipeline::run_once(&config, &rules).await.expect("cycle");
    assert_eq!(summary.new_articles, feeds * items);
    let mut store = Store::open(&dir.join("state")).expect("store");
    let mut got: Vec<(String, String)> = uncarried_matches(&mut store)
        .into_iter()
        .map(|m| (m.title, m.rule_id))
        .collect();
    got.sort();
    expected.sort();
    assert!(
        expected.len() > 500,
        "the rules must match often: {}",
        expected.len()
    );
    assert_eq!(summary.matches, expected.len());
    assert_eq!(got, expected);
}

/// The stored matches no digest has carried (this test configures none): what a digest
/// composed now would gather, read through a composition that is dropped uncommitted.
fn uncarried_matches(store: &mut Store) -> Vec<PendingMatch> {
    let mut tx = store.begin_compose().expect("begin");
    let rules: Vec<(String, String)> = tx
        .matched_rules()
        .expect("rules")
        .into_iter()
        .map(|r| (r.clone(), r))
        .collect();
    let batch = tx.gather_pending("any", &rules).expect("gather");
    tx.load_rows(&vec![usize::MAX; batch.groups.len()])
        .expect("rows")
}
