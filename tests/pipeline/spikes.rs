//! `[[spike]]` end to end (issue 19): four outlets running the same story within the hour
//! alert once through a channel, with the surge's headlines; more of it in the same surge does
//! not alert again; once the rate has fallen back, a new surge alerts again; and one feed's
//! flood is not a surge across outlets. A spike with email recipients sends its alert through
//! the outbox to a real SMTP server, retried under the same Message-ID.

use std::path::Path;

use newswatch::pipeline::{Feeds, Pipeline};

use super::end_to_end::{at, load};
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::receiver::{Receiver, Service};
use crate::support::smtp::SmtpSink;

const RULES: &str = r#"
[[rule]]
id = "minerals"
title = "Minerals deal"
query = '"minerals deal"'

[[rule]]
id = "hegseth"
title = "Hegseth"
query = "Hegseth"
"#;

fn rss(items: &[(String, String)]) -> Vec<u8> {
    let items: String = items
        .iter()
        .map(|(guid, title)| {
            format!(
                "<item><guid>{guid}</guid><title>{title}</title>\
                 <link>https://news.example/{guid}</link><description>{title}.</description></item>"
            )
        })
        .collect();
    format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>")
        .into_bytes()
}

const FILE_DELIVERY: &str = r#"
[delivery]
method = "file"
dir = "outbox"
from = "newswatch <newswatch@example.org>"

[[digest]]
name = "desk"
to = ["desk@example.org"]
"#;

/// The test config: four feeds `a`..`d` on `server`, a webhook channel at `hook`, a spike
/// addressed to `spike_to` (TOML array items), and `delivery` (with any digest).
fn config(
    dir: &Path,
    server: &TestServer,
    hook: &str,
    spike_to: &str,
    delivery: &str,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::write(dir.join("rules/r.toml"), RULES).expect("rules");
    let mut cfg = format!(
        r#"
state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
interval = "1m"
min_interval = "1m"

{delivery}

[[channel]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[spike]]
name = "surges"
to = [{spike_to}]
window = "1h"
baseline = "1d"
min_count = 3
"#
    );
    for f in ["a", "b", "c", "d"] {
        cfg.push_str(&format!(
            "\n[[feed]]\nname = \"{f}\"\nurl = \"{}\"\n",
            server.url(&format!("/{f}.rss"))
        ));
    }
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, cfg).expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_across_outlets_alerts_once_and_a_one_feed_flood_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    let rx = Receiver::start();
    rx.serve("/hook", Service::Webhook(None));
    // Round 0: feed a floods Hegseth (12 items), nobody else has anything.
    let flood: Vec<(String, String)> = (0..12)
        .map(|i| {
            (
                format!("h{i}"),
                format!("Hegseth speaks again, statement {i}"),
            )
        })
        .collect();
    server.set("/a.rss", rss(&flood));
    for f in ["b", "c", "d"] {
        server.set(&format!("/{f}.rss"), rss(&[]));
    }
    let path = config(
        tmp.path(),
        &server,
        &rx.url("/hook"),
        r#""channel:hook""#,
        FILE_DELIVERY,
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T10:00:00Z");
    let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
    p.cycle(t0, Feeds::All).await.expect("cycle 0");
    assert!(
        rx.received("/hook").is_empty(),
        "a one-feed flood is one outlet"
    );

    // Round 1: the minerals story in all four outlets.
    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), story(1, f));
    }
    p.cycle(minutes(5), Feeds::All).await.expect("cycle 1");
    let got = rx.processed("/hook");
    assert_eq!(got.len(), 1, "one spike alert");
    let v = got[0].json();
    assert_eq!(
        (v["event"].as_str(), v["source"].as_str()),
        (Some("spike"), Some("surges"))
    );
    assert_eq!(v["spike"]["rule"], "minerals");
    assert_eq!(v["spike"]["count"], 4);
    assert_eq!(
        v["articles"].as_array().map(Vec::len),
        Some(4),
        "the surge's headlines"
    );
    assert!(
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Surge: Minerals deal — 4 outlets in the last hour")),
        "{v}"
    );

    // Round 2: more of the same surge: no second alert.
    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), story(2, f));
    }
    p.cycle(minutes(20), Feeds::All).await.expect("cycle 2");
    assert_eq!(rx.received("/hook").len(), 1, "one alert per surge");

    // Hours later the rate has fallen back; a new surge alerts again.
    p.cycle(minutes(200), Feeds::All).await.expect("quiet");
    assert_eq!(rx.received("/hook").len(), 1);
    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), story(3, f));
    }
    p.cycle(minutes(230), Feeds::All).await.expect("cycle 3");
    assert_eq!(
        rx.processed("/hook").len(),
        2,
        "a new surge after falling back"
    );
    assert_eq!(rx.violations(), Vec::<String>::new());
}

/// Round `round` of the minerals story in feed `f` (a new headline each round: a repeated one
/// would be the same story, no new match).
fn story(round: usize, f: &str) -> Vec<u8> {
    rss(&[(
        format!("m{round}{f}"),
        format!("Kyiv and the minerals deal: outlet {f} reports, update {round}"),
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_is_emailed_through_the_outbox_and_retried_under_one_message_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    let rx = Receiver::start();
    rx.serve("/hook", Service::Webhook(None));
    // The server refuses the first message for now (451): the email waits in the outbox.
    let sink = SmtpSink::start(
        &tmp.path().join("received"),
        &["--fault", "451", "--fault-count", "1"],
    );
    let delivery = format!(
        "[delivery]\nmethod = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         timeout = \"10s\"\nfrom = \"newswatch <newswatch@example.org>\"\n",
        sink.port
    );
    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), rss(&[]));
    }
    let path = config(
        tmp.path(),
        &server,
        &rx.url("/hook"),
        r#""Desk <desk@example.org>", "channel:hook""#,
        &delivery,
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T10:00:00Z");
    let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
    p.cycle(t0, Feeds::All).await.expect("quiet cycle");

    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), story(1, f));
    }
    let s = p.cycle(minutes(5), Feeds::All).await.expect("surge");
    assert_eq!(s.emails_deferred, 1, "the 451 defers the spike email");
    assert!(sink.messages().is_empty());
    let hook = rx.processed("/hook");
    assert_eq!(hook.len(), 1, "the channel got the alert meanwhile");
    let title = hook[0].json()["title"].as_str().map(str::to_string);

    // The same surge goes on: no new alert, and the retry delivers the one email.
    for f in ["a", "b", "c", "d"] {
        server.set(&format!("/{f}.rss"), story(2, f));
    }
    p.cycle(minutes(20), Feeds::All).await.expect("retry");
    let received = sink.messages();
    assert_eq!(received.len(), 1, "one spike email, delivered once");
    let mail = Mail::parse(&received[0]);
    assert_eq!(
        mail.subject,
        "Surge: Minerals deal — 4 outlets in the last hour (usually ~0)"
    );
    assert_eq!(
        Some(mail.subject.as_str()),
        title.as_deref(),
        "the channel's title too"
    );
    assert!(mail.message_id.starts_with("spike-"), "{}", mail.message_id);
    assert!(
        mail.headers.contains("desk@example.org"),
        "{}",
        mail.headers
    );
    assert!(
        mail.text
            .contains("4 outlets in the last hour; usually ~0, an alert from "),
        "{}",
        mail.text
    );
    for f in ["a", "b", "c", "d"] {
        let headline = format!("outlet {f} reports, update 1");
        let link = format!("https://news.example/m1{f}");
        assert!(
            mail.text.contains(&headline) && mail.text.contains(&link),
            "{f}: {}",
            mail.text
        );
        assert!(mail.html.contains(&format!("href=\"{link}\"")), "{f}");
    }
    assert!(
        mail.text.contains("[[spike]]"),
        "the footer names the section: {}",
        mail.text
    );
    assert_eq!(rx.received("/hook").len(), 1, "one alert per surge");
    assert_eq!(rx.violations(), Vec::<String>::new());
}
