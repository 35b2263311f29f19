//! Delivery beyond the first cycle (issue 4): STARTTLS and AUTH against a real SMTP server,
//! alert batching and its hourly cap, scheduled digests, mail servers that are down or hang,
//! and the match stage's verdicts on a large backlog.

use std::path::{Path, PathBuf};

use newswatch::config::Config;
use newswatch::model::OutboxStatus;
use newswatch::pipeline::{self, Feeds, Pipeline};
use newswatch::rules::RuleSet;
use newswatch::store::Store;

use super::end_to_end::{
    EXPECTED, at, load, one_feed, one_feed_with_timeout, serve_demo, write_config,
};
use crate::support::demo::demo_feed;
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::smtp::{SmtpSink, free_port};

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
    let (_server, feeds) = serve_demo();
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
    let config = Config::from_str(&path, &text, &env).expect("the edited test config loads");
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
    assert_eq!(s.next_digest, Some(t0 + chrono::Duration::minutes(2)));
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
    let digest = Mail::parse(&mails[0]);
    assert!(
        digest.subject.ends_with(" — 4 articles: Minerals deal (4)"),
        "{}",
        digest.subject
    );
    let alert = Mail::parse(&mails[1]);
    assert!(
        alert.subject.starts_with("[alert] 5 articles: "),
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
    let (server, feeds) = serve_demo();
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
    let last = Mail::parse(&mails[2]);
    assert!(
        last.subject
            .ends_with(" — 1 article: Healey–Hegseth talks (1)"),
        "{}",
        last.subject
    );
    assert!(last.text.contains("Hegseth calls Kyiv after the talks"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_digest_goes_once_per_slot_and_once_after_downtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) = one_feed(tmp.path(), &[]);
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
            s.next_digest,
            Some(at(&format!("{}T07:00:00Z", next_day(now)))),
            "at {now}"
        );
    }
    let mails = sink.messages();
    assert_eq!(mails.len(), 2);
    assert!(Mail::parse(&mails[0]).subject.starts_with("[newswatch] "));
    let empty = Mail::parse(&mails[1]).subject;
    assert!(
        empty.starts_with("[newswatch] ") && empty.ends_with(" — nothing new"),
        "{empty}"
    );
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
    let port = free_port();
    let server = TestServer::start();
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    let feeds = [(
        "kyiv".to_string(),
        server.url("/feeds/kyiv-ledger.json").to_string(),
    )];
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
    );
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
        Mail::parse(&mails[0])
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
    let now = newswatch::clock::now();
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
    let mut got: Vec<(String, String)> = crate::uncarried_matches(&mut store)
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

/// `run --once` for cron: an email refused (550) or deferred (451) in the run exits 6 and the
/// summary names it; delivered, 0 (issue 15).
#[test]
fn run_once_exits_6_when_an_email_was_not_delivered() {
    let server = TestServer::start();
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    for (fault, code, says) in [
        (Some("550"), 6, "not delivered: failed: "),
        (Some("451"), 6, "not delivered: deferred until "),
        (None, 0, ""),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let extra: Vec<&str> = fault.map_or(Vec::new(), |f| vec!["--fault", f]);
        let sink = SmtpSink::start(&tmp.path().join("received"), &extra);
        let feeds = vec![(
            "ledger".to_string(),
            server.url("/feeds/kyiv-ledger.json").to_string(),
        )];
        let path = write_config(tmp.path(), &feeds, sink.port, "5s");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
            .args(["run", "--once", "--config"])
            .arg(&path)
            .env("NEWSWATCH_LOG", "error")
            .output()
            .expect("run the binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{fault:?}: {stdout}\n{stderr}"
        );
        assert!(stdout.contains("emails: 1 composed"), "{stdout}");
        if code == 6 {
            assert!(
                stdout.contains("\n  email desk <digest-1.desk.") && stdout.contains(says),
                "{stdout}"
            );
            assert!(stderr.contains("could not be delivered"), "{stderr}");
        }
    }
}

/// `run --once` for cron: when no feed could be read the exit is 1 (the summary still printed and
/// the outbox drained); one feed answering is enough for 0.
#[test]
fn run_once_fails_when_every_feed_failed() {
    let server = TestServer::start();
    server.set("/feeds/kyiv-ledger.json", demo_feed("kyiv-ledger.json"));
    for (feeds, code) in [
        (vec!["/404", "/500"], 1),
        (vec!["/404", "/feeds/kyiv-ledger.json"], 0),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
        let feeds: Vec<(String, String)> = feeds
            .iter()
            .enumerate()
            .map(|(i, path)| (format!("feed-{i}"), server.url(path).to_string()))
            .collect();
        let path = write_config(tmp.path(), &feeds, sink.port, "5s");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
            .args(["run", "--once", "--config"])
            .arg(&path)
            .env("NEWSWATCH_LOG", "warn")
            .output()
            .expect("run the binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
        assert!(stdout.contains("polled 2 feeds"), "{stdout}");
        if code == 1 {
            assert!(
                stderr.contains("error: every feed failed (2 of 2)"),
                "{stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_is_kept_as_failed_and_never_retried() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, sink, path) = one_feed(tmp.path(), &["--fault", "550"]);
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
