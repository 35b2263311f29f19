//! Channels (issue 19) against a real loopback receiver (`support/receiver.rs`) that checks each
//! service's payload shape and size limit, verifies the webhook's signature, counts idempotency
//! keys and injects faults: every service gets one alert and one digest summary in its shape;
//! 500, 429 with Retry-After, a hang and a reset are retried with the same key until delivered
//! once; 400 and a bad signature are kept as failed and never retried.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use newswatch::model::OutboxStatus;
use newswatch::pipeline::{Feeds, Pipeline};
use newswatch::store::Store;

use super::end_to_end::{at, load};
use crate::support::http::TestServer;
use crate::support::receiver::{Fault, Receiver, Service, sign, verify};

const RULES: &str = r#"
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

pub const SECRET: &str = "s3cret-shared-with-the-receiver";
const BOT: &str = "123456:test-bot-token";

/// An RSS feed of `hegseth` alert items and `minerals` digest items, long headlines with markup
/// and mentions in them (so size limits and escaping are exercised).
pub fn feed(hegseth: usize, minerals: usize) -> Vec<u8> {
    let mut items = String::new();
    let long =
        "with ministers from the Weimar+ group, <b>bold</b> & *stars* _under_ @everyone ".repeat(3);
    for i in 0..hegseth {
        items.push_str(&format!(
            "<item><guid>h{i}</guid><title>Hegseth meets Healey, round {i}, {}</title>\
             <link>https://news.example/h/{i}?a=(1)</link><description>Talks on Ukraine: Hegseth \
             and Healey discussed the backstop. {long}</description>\
             <pubDate>Thu, 01 Jan 2026 00:{:02}:00 GMT</pubDate></item>",
            xml(&long),
            i % 60,
        ));
    }
    for i in 0..minerals {
        items.push_str(&format!(
            "<item><guid>m{i}</guid><title>Kyiv weighs the minerals deal, draft {i}</title>\
             <link>https://news.example/m/{i}</link><description>The minerals deal text.</description>\
             </item>"
        ));
    }
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Ledger</title>\
         <link>https://news.example/</link>{items}</channel></rss>"
    )
    .into_bytes()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes rules and a config whose `[[channel]]`s are `channels` (TOML), the alert set `duty`
/// to `alert_to`, the digest `desk` to `digest_to`.
pub fn write_config(
    dir: &Path,
    feed_url: &str,
    channels: &str,
    alert_to: &[&str],
    digest_to: &[&str],
) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(dir.join("rules/test.toml"), RULES).expect("write rules");
    std::fs::write(dir.join("hook-secret"), format!("{SECRET}\n")).expect("write secret");
    std::fs::write(dir.join("bot-token"), BOT).expect("write token");
    let list = |to: &[&str]| {
        to.iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = format!(
        r#"
state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
interval = "10m"
timeout = "5s"

[delivery]
method = "file"
dir = "outbox"
from = "newswatch <newswatch@example.org>"

{channels}

[[alert]]
name = "duty"
to = [{}]
window = "0s"
max_items = 20

[[digest]]
name = "desk"
to = [{}]

[[feed]]
name = "ledger"
url = "{feed_url}"
"#,
        list(alert_to),
        list(digest_to)
    );
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

/// A `[[channel]]` table.
pub fn channel(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!(
        "[[channel]]\nname = \"{name}\"\nkind = \"{kind}\"\nurl = \"{url}\"\ntimeout = \"2s\"\n{extra}\n"
    )
}

/// Every service: (channel name, kind, receiver path, what the path plays, extra keys).
fn services(rx: &Receiver) -> Vec<(&'static str, String, String, Service, String)> {
    let mut out = vec![
        (
            "hook",
            "webhook",
            "/hook",
            Service::Webhook(Some(SECRET.into())),
            "secret_file = \"hook-secret\"".to_string(),
        ),
        (
            "slack",
            "slack",
            "/services/T0/B0/XYZ",
            Service::Slack,
            String::new(),
        ),
        (
            "mm",
            "mattermost",
            "/hooks/mm",
            Service::Mattermost,
            String::new(),
        ),
        (
            "discord",
            "discord",
            "/api/webhooks/1/abc",
            Service::Discord,
            String::new(),
        ),
        (
            "teams",
            "teams",
            "/workflows/teams",
            Service::Teams,
            String::new(),
        ),
        (
            "gchat",
            "google-chat",
            "/v1/spaces/AAA/messages",
            Service::GoogleChat,
            String::new(),
        ),
        (
            "ntfy",
            "ntfy",
            "/",
            Service::Ntfy,
            "priority = 5\ntags = [\"rotating_light\"]".to_string(),
        ),
    ]
    .into_iter()
    .map(|(n, k, p, s, e)| (n, k.to_string(), p.to_string(), s, e))
    .collect::<Vec<_>>();
    out.push((
        "telegram",
        "telegram".into(),
        format!("/bot{BOT}/sendMessage"),
        Service::Telegram(BOT.into()),
        "chat_id = \"-1001\"\ntoken_file = \"bot-token\"".into(),
    ));
    for (name, kind, path, service, extra) in &mut out {
        rx.serve(path, service.clone());
        let url = match *name {
            "ntfy" => rx.url("/alerts"),
            "telegram" => rx.url(""),
            _ => rx.url(path),
        };
        *extra = channel(name, kind, &url, extra);
    }
    out
}

fn t(s: &str) -> DateTime<Utc> {
    at(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_gets_its_shape_within_its_limits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    server.set("/feed.rss", feed(60, 3));
    let rx = Receiver::start();
    let services = services(&rx);
    let tables: String = services.iter().map(|s| s.4.clone()).collect();
    let names: Vec<String> = services
        .iter()
        .map(|s| format!("channel:{}", s.0))
        .collect();
    let mut alert_to: Vec<&str> = vec!["duty@example.org"];
    alert_to.extend(names.iter().map(String::as_str));
    let digest_to: Vec<&str> = names.iter().map(String::as_str).collect();
    let path = write_config(
        tmp.path(),
        server.url("/feed.rss").as_str(),
        &tables,
        &alert_to,
        &digest_to,
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let s = p
        .cycle(t("2026-01-01T01:00:00Z"), Feeds::All)
        .await
        .expect("cycle");
    assert_eq!(rx.violations(), Vec::<String>::new());
    assert_eq!((s.channel_sent, s.channel_failed), (16, 0), "{s}");
    // The alert's email went out too; the channel-only digest wrote no file.
    assert_eq!(s.emails_sent, 1, "{s}");
    for (name, _, path, _, _) in &services {
        let path = if *name == "ntfy" { "/" } else { path.as_str() };
        let got = rx.processed(path);
        assert_eq!(got.len(), 2, "{name}: one alert and one digest");
        let text = String::from_utf8_lossy(&got[1].body).to_string();
        // 43 long entries: beyond every chat limit but Teams' 28 KB (and the webhook's list).
        if !["hook", "teams"].contains(name) {
            assert!(
                text.contains("more"),
                "{name}'s digest counts what did not fit ({} bytes)",
                text.len()
            );
        }
    }
    let hook = rx.processed("/hook");
    let alert = hook[0].json();
    assert_eq!(
        (
            alert["version"].as_u64(),
            alert["event"].as_str(),
            alert["source"].as_str()
        ),
        (Some(1), Some("alert"), Some("duty"))
    );
    assert_eq!(alert["total"], 20, "max_items of the alert set");
    let first = &alert["articles"][0];
    assert!(
        first["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://news.example/h/"))
    );
    assert!(
        first["terms"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "Hegseth")),
        "{first}"
    );
    let digest = hook[1].json();
    assert_eq!(
        (digest["event"].as_str(), digest["total"].as_u64()),
        (Some("digest"), Some(43))
    );
    assert_eq!(digest["articles"].as_array().map(Vec::len), Some(43));
    // Discord: no mention can ping (the receiver checks); Telegram: the headline's `&` escaped.
    let tg = rx.processed(&format!("/bot{BOT}/sendMessage"))[0].json();
    assert!(
        tg["text"]
            .as_str()
            .is_some_and(|x| x.contains("bold &amp; *stars*")),
        "{tg}"
    );
    let ntfy = rx.processed("/")[0].json();
    assert_eq!(
        (ntfy["topic"].as_str(), ntfy["priority"].as_u64()),
        (Some("alerts"), Some(5))
    );
    // Every message was processed once: each key once.
    assert!(
        rx.keys()
            .values()
            .all(|&(processed, seen)| (processed, seen) == (1, 1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_with_the_same_key_or_failed_for_good() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    server.set("/feed.rss", feed(1, 0));
    let rx = Receiver::start();
    rx.serve("/retry", Service::Webhook(Some(SECRET.into())));
    rx.serve("/refuse", Service::Webhook(None));
    rx.faults(
        "/retry",
        &[
            Fault::Status(500),
            Fault::TooMany(600),
            Fault::Hang,
            Fault::Reset,
            Fault::Status(503),
        ],
    );
    rx.faults("/refuse", &[Fault::Status(400)]);
    let tables = channel(
        "retry",
        "webhook",
        &rx.url("/retry"),
        "secret_env = \"NW_TEST_UNUSED\"",
    )
    .replace(
        "secret_env = \"NW_TEST_UNUSED\"",
        "secret_file = \"hook-secret\"",
    ) + &channel("refuse", "webhook", &rx.url("/refuse"), "");
    let path = write_config(
        tmp.path(),
        server.url("/feed.rss").as_str(),
        &tables,
        &["channel:retry", "channel:refuse"],
        &["desk@example.org"],
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = t("2026-01-01T01:00:00Z");
    let mins = |m: i64| t0 + chrono::Duration::minutes(m);
    // (when, sent, deferred, failed): 500 → 1 min; 429 asks for 10 min (not 2); a hang ends at
    // the channel's 2 s timeout → 4 min; a reset → 8 min; 503 → 16 min; then delivered.
    let steps = [
        (t0, 0, 1, 1),
        (mins(1), 0, 1, 0),
        (mins(3), 0, 0, 0),
        (mins(11), 0, 1, 0),
        (mins(15), 0, 1, 0),
        (mins(23), 0, 1, 0),
        (mins(39), 1, 0, 0),
        (mins(600), 0, 0, 0),
    ];
    for (i, (when, sent, deferred, failed)) in steps.into_iter().enumerate() {
        let s = p.cycle(when, Feeds::Due).await.expect("cycle");
        assert_eq!(
            (s.channel_sent, s.channel_deferred, s.channel_failed),
            (sent, deferred, failed),
            "step {i} at {when}: {s}"
        );
    }
    let verdicts: Vec<String> = rx
        .received("/retry")
        .into_iter()
        .map(|r| r.verdict)
        .collect();
    assert_eq!(
        verdicts,
        [
            "fault 500",
            "fault 429",
            "hang",
            "reset",
            "fault 503",
            "processed"
        ]
    );
    let keys: Vec<String> = rx
        .received("/retry")
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one key for every attempt: {keys:?}"
    );
    assert_eq!(rx.received("/refuse").len(), 1, "a 400 is never retried");
    drop(p);
    let store = Store::open(&config.state_dir).expect("reopen");
    let counts = store.channel_counts().expect("counts");
    let refuse = counts
        .iter()
        .find(|c| c.channel == "refuse")
        .expect("refuse counted");
    assert_eq!(refuse.counts.failed, 1);
    assert!(
        refuse
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 400")),
        "{refuse:?}"
    );
    let retry = counts
        .iter()
        .find(|c| c.channel == "retry")
        .expect("retry counted");
    assert_eq!((retry.counts.sent, retry.counts.queued), (1, 0));
    let kept = store
        .channel_message(2)
        .expect("the refused message is kept");
    assert_eq!(kept.status, OutboxStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_verifies_and_a_tampered_body_or_wrong_secret_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    server.set("/feed.rss", feed(1, 0));
    let rx = Receiver::start();
    rx.serve("/good", Service::Webhook(Some(SECRET.into())));
    rx.serve("/other", Service::Webhook(Some("another secret".into())));
    let tables = channel(
        "good",
        "webhook",
        &rx.url("/good"),
        "secret_file = \"hook-secret\"",
    ) + &channel(
        "other",
        "webhook",
        &rx.url("/other"),
        "secret_file = \"hook-secret\"",
    );
    let path = write_config(
        tmp.path(),
        server.url("/feed.rss").as_str(),
        &tables,
        &["channel:good", "channel:other"],
        &["desk@example.org"],
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let s = p
        .cycle(t("2026-01-01T01:00:00Z"), Feeds::All)
        .await
        .expect("cycle");
    assert_eq!((s.channel_sent, s.channel_failed), (1, 1), "{s}");
    let good = rx.processed("/good");
    assert_eq!(good.len(), 1);
    let body = good[0].body.clone();
    let sig = good[0].headers["x-newswatch-signature"].clone();
    assert_eq!(sig, sign(SECRET, &body));
    assert!(verify(SECRET, &body, &sig));
    let mut tampered = body.clone();
    let at = tampered
        .iter()
        .position(|&b| b == b'1')
        .expect("a digit to change");
    tampered[at] = b'2';
    assert!(!verify(SECRET, &tampered, &sig), "a tampered body fails");
    let other = rx.received("/other");
    assert_eq!(other.len(), 1);
    assert!(
        other[0].verdict.contains("signature"),
        "{:?}",
        other[0].verdict
    );
}
