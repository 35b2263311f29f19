//! `[[spike]]` end to end (issue 19): four outlets running the same story within the hour
//! alert once through a channel, with the surge's headlines; more of it in the same surge does
//! not alert again; once the rate has fallen back, a new surge alerts again; and one feed's
//! flood is not a surge across outlets.

use std::path::Path;

use newswatch::pipeline::{Feeds, Pipeline};

use super::end_to_end::{at, load};
use crate::support::http::TestServer;
use crate::support::receiver::{Receiver, Service};

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

fn config(dir: &Path, server: &TestServer, hook: &str) -> std::path::PathBuf {
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

[delivery]
method = "file"
dir = "outbox"
from = "newswatch <newswatch@example.org>"

[[channel]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[spike]]
name = "surges"
to = ["channel:hook"]
window = "1h"
baseline = "1d"
min_count = 3

[[digest]]
name = "desk"
to = ["desk@example.org"]
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
    let path = config(tmp.path(), &server, &rx.url("/hook"));
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
    let story =
    // Each round a new headline (a repeated one would be the same story: no new match).
        |round: usize, f: &str| {
            rss(&[(
                format!("m{round}{f}"),
                format!("Kyiv and the minerals deal: outlet {f} reports, update {round}"),
            )])
        };
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
            .is_some_and(|t| t.starts_with("Surge: Minerals deal — 4 outlets")),
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
