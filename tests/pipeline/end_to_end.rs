//! The pipeline end to end with real components: the sample feeds served over HTTP on 127.0.0.1,
//! a real SMTP server process (aiosmtpd), a real SQLite file, and the built binary for the demo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use newswatch::config::Config;
use newswatch::model::{OutboxCounts, OutboxStatus};
use newswatch::pipeline::{self, Feeds, Pipeline, Summary};
use newswatch::rules::RuleSet;
use newswatch::store::Store;
use tokio_util::sync::CancellationToken;

use crate::support::demo::{DEMO_FEEDS, copy_demo, demo_feed};
use crate::support::http::TestServer;
use crate::support::mail::{Mail, eml_files};
use crate::support::smtp::SmtpSink;

/// What the two test rules must find in the sample feeds (by title).
pub const EXPECTED: [&str; 9] = [
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

/// How the HTML part opens a highlighted hit.
const MARK: &str = "<mark class=\"nw-mark\" style=\"background-color:#fde68a;color:#111827;\">";

/// The escaping minijinja's HTML auto-escape applies.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// A temp directory with a config and the rule file; returns the config path.
pub fn write_config(
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
final_reply_timeout = "{smtp_timeout}"
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

pub fn load(path: &Path) -> (Config, RuleSet) {
    let config = Config::load(path).expect("the test config loads");
    let rules = RuleSet::load(&config.rule_files).expect("the test rules load");
    (config, rules)
}

/// The demo feeds on a test server: the server and (name, URL) of each feed.
pub fn serve_demo() -> (TestServer, Vec<(String, String)>) {
    let server = TestServer::start();
    let mut feeds = Vec::new();
    for f in DEMO_FEEDS {
        server.set(&format!("/feeds/{f}"), demo_feed(f));
        let name = f
            .split('.')
            .next()
            .expect("a demo file name has a stem")
            .to_string();
        feeds.push((name, server.url(&format!("/feeds/{f}")).to_string()));
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
    let (server, mut feeds) = serve_demo();
    // A feed that fails is recorded and does not stop the others.
    feeds.push(("gone".into(), server.url("/feeds/gone.xml").to_string()));
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
    let m = Mail::parse(&mails[0]);
    // `[newswatch] <date> — …`: the date is the run's own (today).
    assert!(
        m.subject.starts_with("[newswatch] ")
            && m.subject
                .ends_with(" — 9 articles: Minerals deal (4), Healey–Hegseth talks (5)"),
        "{}",
        m.subject
    );
    for title in EXPECTED {
        assert!(
            m.text.replace("\r\n  ", " ").contains(title),
            "text part lacks {title:?}:\n{}",
            m.text
        );
        let unmarked = m.html.replace(MARK, "").replace("</mark>", "");
        assert!(
            unmarked.contains(&html_escape(title)),
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
    let m = Mail::parse(&mails[1]);
    assert!(
        m.subject.ends_with(" — 1 article: Minerals deal (1)"),
        "{}",
        m.subject
    );
    // The HTML headline marks its hit (`<mark …>minerals deal</mark>`).
    assert!(m.text.contains(new_title) && m.html.contains("Kyiv signs the "));
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

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

/// One feed, one matching article: the smallest setup for delivery behaviour.
pub fn one_feed(tmp: &Path, sink_args: &[&str]) -> (TestServer, SmtpSink, PathBuf) {
    one_feed_with_timeout(tmp, sink_args, "5s")
}

pub fn one_feed_with_timeout(
    tmp: &Path,
    sink_args: &[&str],
    smtp_timeout: &str,
) -> (TestServer, SmtpSink, PathBuf) {
    let server = TestServer::start();
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    let feeds = [(
        "kyiv".to_string(),
        server.url("/feeds/kyiv-ledger.json").to_string(),
    )];
    let sink = SmtpSink::start(&tmp.join("received"), sink_args);
    let path = write_config(tmp, &feeds, sink.port, smtp_timeout);
    (server, sink, path)
}

/// The 250 after the message's final dot is the commit point: a server that takes longer than
/// `timeout` to give it (within `final_reply_timeout`) gets the message once, and one that never
/// answers QUIT afterwards does not make a delivered message look failed (and be sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_250_to_the_final_dot_is_the_commit_point() {
    for (fault, timeout) in [
        (&["--fault", "slow-final", "--fault-delay", "2"][..], "1s"),
        (&["--fault", "no-quit"][..], "3s"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_server, sink, path) = one_feed_with_timeout(tmp.path(), fault, timeout);
        // The fixture gives the final reply no more time than the rest; here it gets its own.
        let text = std::fs::read_to_string(&path).expect("read config");
        let text = text.replace(
            &format!("final_reply_timeout = \"{timeout}\""),
            "final_reply_timeout = \"10s\"",
        );
        std::fs::write(&path, text).expect("write config");
        let (config, rules) = load(&path);
        let p = Pipeline::open(&config, &rules).await.expect("open");
        let s = p
            .cycle(at("2026-01-01T00:00:00Z"), Feeds::Due)
            .await
            .expect("cycle");
        assert_eq!(
            (
                s.emails_composed,
                s.emails_sent,
                s.emails_deferred,
                s.emails_failed
            ),
            (1, 1, 0, 0),
            "{fault:?}: {s}"
        );
        assert_eq!(sink.messages().len(), 1, "{fault:?}: delivered once");
        drop(p);
        let store = Store::open(&config.state_dir).expect("reopen");
        let m = store.message(1).expect("message 1");
        assert_eq!((m.status, m.attempts), (OutboxStatus::Sent, 1), "{fault:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_451_is_retried_after_the_backoff_and_then_sent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) = one_feed(tmp.path(), &["--fault", "451", "--fault-count", "1"]);
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
    let id = |raw: &[u8]| Mail::parse(raw).message_id;
    assert_eq!(id(received), id(&m.raw));
    assert!(id(&m.raw).starts_with("digest-1.desk."), "{}", id(&m.raw));
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
        let (_server, _sink, path) = one_feed_with_timeout(tmp.path(), fault, "300ms");
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
        let (_server, sink, path) = one_feed(tmp.path(), &["--auth", "nw:s3cret"]);
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
        let config = Config::from_str(&path, &text, &env).expect("the edited test config loads");
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
    let (server, _sink, path) = one_feed(tmp.path(), &[]);
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

    // The daemon's stream: the clock says the feed is due; cancellation comes once the server
    // has answered the second request, and the stream still stores that poll before it stops.
    let shutdown = CancellationToken::new();
    let clock = || t0 + chrono::Duration::minutes(10);
    let stop_after_the_poll = async {
        while server.counts().requests < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
    };
    let (ran, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, clock),
            stop_after_the_poll
        )
    })
    .await
    .expect("run_until stops promptly once cancelled");
    ran.expect("run_until");
    let kyiv = Store::open_read_only(&config.state_dir)
        .and_then(|s| s.feed_record("kyiv"))
        .expect("the feed's record reads")
        .expect("a row for the feed");
    assert_eq!(
        kyiv.next_due,
        Some(t0 + chrono::Duration::minutes(20)),
        "the stream's poll was stored before it stopped, due one interval after its response"
    );
    let c = server.counts();
    assert_eq!(
        (c.requests, c.not_modified),
        (2, 1),
        "one more, conditional, poll"
    );
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

    let emls = eml_files(&tmp.path().join("outbox"));
    assert_eq!(emls.len(), 2, "{emls:?}");
    let alert = Mail::parse(&std::fs::read(&emls[0]).expect("read eml"));
    assert!(alert.subject.starts_with("[alert] "), "{}", alert.subject);
    assert!(
        alert
            .headers
            .contains("To: \"Duty officer\" <duty@example.org>"),
        "{}",
        alert.headers
    );
    let m = Mail::parse(&std::fs::read(&emls[1]).expect("read eml"));
    assert!(
        m.subject.starts_with("[newswatch] Morning brief, "),
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
        stdout.contains("subject: [newswatch] Morning brief, "),
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
    // While another newswatch holds the state directory (the daemon), `digest send` refuses
    // instead of composing and sending beside it (the same digest was accepted twice).
    let held = newswatch::service::lock::InstanceLock::acquire(&tmp.path().join("state"))
        .expect("the test takes the instance lock");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["digest", "send", "briefing", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert_eq!(outbox_files(), 2, "nothing is sent beside the daemon");
    drop(held);
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

/// A rule limited to a feed the config does not define would match nothing: the daemon refuses
/// to start with it (exit 4, the rule and the feed named), as `check --config` refuses it.
#[test]
fn a_rule_naming_an_unknown_feed_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_demo(tmp.path());
    std::fs::write(
        tmp.path().join("rules/zz-local.toml"),
        "[[rule]]\nid = \"local-only\"\nquery = 'Healey'\nfeeds = [\"no-such-feed\"]\n\
         examples.match = [\"Healey spoke.\"]\n",
    )
    .expect("write a rule file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["run", "--once", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("rule local-only") && stderr.contains("feed `no-such-feed`"),
        "{stderr}"
    );
    assert!(!tmp.path().join("outbox").exists(), "nothing ran: {stderr}");
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
    // The alerts at once; the digest (no schedule) once its batching window closes, 5 s later.
    wait_for("message_id=<digest-", &mut log);
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
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("outbox"))
        .expect("outbox")
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let has = |k: &str| names.iter().any(|n| n.starts_with(k));
    assert!(
        has("digest-") && has("alert-"),
        "a digest and an alert: {names:?}"
    );
}
