//! The daemon's streaming pipeline with real components: a hung host delays nobody else's
//! alerts, due times count from the response, and a database that cannot be written pauses
//! fetching without losing what was fetched.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use newswatch::config::Config;
use newswatch::pipeline::Pipeline;
use newswatch::rules::RuleSet;
use tokio_util::sync::CancellationToken;

use crate::support::http::{GROWING, TestServer, growing_title};
use crate::support::mail::Mail;
use crate::support::smtp::SmtpSink;

const RULES: &str = r#"
[[rule]]
id = "hegseth"
title = "Hegseth"
query = "Hegseth"
priority = "alert"
"#;

/// A config on `dir`: the alert rule, one `[[alert]]` set with no batching window, and `feeds`
/// as (name, url, interval).
fn config(
    dir: &Path,
    smtp_port: u16,
    fetch_timeout: &str,
    feeds: &[(String, String, &str)],
) -> Config {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(dir.join("rules/alert.toml"), RULES).expect("write rules");
    let mut text = format!(
        r#"
state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
concurrency = 4
timeout = "{fetch_timeout}"
min_interval = "1s"

[delivery]
method = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = "5s"
from = "newswatch <newswatch@example.org>"

[[digest]]
name = "desk"
to = ["desk@example.org"]

[[alert]]
name = "breaking"
to = ["duty@example.org"]
window = "0s"
"#
    );
    for (name, url, interval) in feeds {
        text.push_str(&format!(
            "\n[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"{interval}\"\n"
        ));
    }
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Alerts whose text names growing item `i`, among the messages the sink received.
fn alerted(sink: &SmtpSink) -> Vec<usize> {
    let mails: Vec<Mail> = sink.messages().iter().map(|m| Mail::parse(m)).collect();
    (1..=64)
        .filter(|i| mails.iter().any(|m| m.text.contains(&growing_title(*i))))
        .collect()
}

/// Two hosts: six feeds on one that hangs every request for the whole fetch deadline (one
/// request at a time, 1 s apart, as politeness demands), and a feed on another that gains a
/// matching item at every poll. Its alerts go out while the hung host's first request is still
/// pending: a slow host delays nobody else. (Under cycles, nothing was sent before every hung
/// request had timed out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_delays_no_other_hosts_alerts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fast = TestServer::start();
    let slow = TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0);
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let mut feeds = vec![("fast".to_string(), fast.url(GROWING).to_string(), "1s")];
    for i in 1..=6 {
        feeds.push((format!("slow-{i}"), slow.url("/hang").to_string(), "10m"));
    }
    let config = config(tmp.path(), sink.port, "60s", &feeds);
    let rules = RuleSet::load(&config.rule_files).expect("rules load");
    let p = Pipeline::open(&config, &rules).await.expect("open");

    let shutdown = CancellationToken::new();
    let watch = async {
        // Two alerts: the item of the first poll and one the feed gained later.
        while alerted(&sink).len() < 2 {
            assert!(
                slow.cut("/hang").is_none(),
                "the hung request ended before two alerts went out"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let hung = slow.seen().iter().filter(|s| s.path == "/hang").count();
        let cut = slow.cut("/hang");
        shutdown.cancel();
        (hung, cut)
    };
    let (ran, (hung, cut)) = tokio::time::timeout(Duration::from_secs(50), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, newswatch::clock::now),
            watch
        )
    })
    .await
    .expect("two alerts within the hung request's 60 s deadline");
    ran.expect("run_until");
    assert_eq!(cut, None, "the hung host's request was still pending");
    assert_eq!(hung, 1, "one request at a time to the hung host");
    assert!(
        fast.counts().requests >= 2,
        "the fast feed was polled again meanwhile"
    );
    let got = alerted(&sink);
    assert_eq!(&got[..2], &[1, 2], "{got:?}");
}

/// Due times count from each poll's response, never from when the stream looked at the clock
/// before: feeds waiting for their host's turn (2 s apart, behind a request that hangs) get
/// Retry-After and `min_interval` in full from their own request. The stream's clock runs 60
/// times faster than real time, so each wait for the host is minutes of schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_times_count_from_the_request_not_from_an_earlier_look() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let feeds = [
        ("hung".to_string(), server.url("/hang").to_string(), "10m"),
        (
            "limited".to_string(),
            server.url("/429-seconds").to_string(),
            "10m",
        ),
        (
            "eager".to_string(),
            server.url("/feed.xml").to_string(),
            "1s",
        ),
    ];
    let mut config = config(tmp.path(), sink.port, "3s", &feeds);
    config.polling.min_interval = Duration::from_secs(300);
    config.polling.host_spacing = Duration::from_secs(2);
    let rules = RuleSet::load(&config.rule_files).expect("rules load");
    let p = Pipeline::open(&config, &rules).await.expect("open");

    let t0 = newswatch::clock::now();
    let start = std::time::Instant::now();
    let sim = move |at: std::time::Instant| {
        t0 + chrono::Duration::from_std(at.saturating_duration_since(start) * 60)
            .expect("a short test's span")
    };
    let clock = move || sim(std::time::Instant::now());
    let polled = |name: &str| {
        newswatch::store::Store::open_read_only(&config.state_dir)
            .and_then(|s| s.feed_record(name))
            .ok()
            .flatten()
            .filter(|r| r.polls > 0)
    };
    let shutdown = CancellationToken::new();
    let watch = async {
        while ["hung", "limited", "eager"]
            .iter()
            .any(|f| polled(f).is_none())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
    };
    let (ran, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, clock),
            watch
        )
    })
    .await
    .expect("every feed polled once");
    ran.expect("run_until");

    let asked = |path: &str| {
        let seen = server.seen();
        let first = seen
            .iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request to {path}"));
        sim(first.at)
    };
    let mut late = 0;
    for (feed, path, delay) in [
        ("limited", "/429-seconds", 120),
        ("eager", "/feed.xml", 300),
    ] {
        let requested = asked(path);
        let due = polled(feed).and_then(|r| r.next_due).expect("a next due");
        // Stored in whole seconds.
        assert!(
            due >= requested + chrono::Duration::seconds(delay - 1),
            "{feed}: requested at +{}s, due at +{}s, wants {delay}s after the request",
            (requested - t0).num_seconds(),
            (due - t0).num_seconds()
        );
        if requested - t0 >= chrono::Duration::seconds(110) {
            late += 1;
        }
    }
    assert!(late >= 1, "at least one of them waited for the host");
}

/// A database locked by another process for longer than the store's busy timeout: the poll it
/// cannot store waits in memory and its feed is not fetched again (fetching pauses instead of
/// fetching and discarding); once the lock is gone, the waiting poll is stored and every item the
/// feed gained is alerted, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_pauses_fetching_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let feeds = [("growing".to_string(), server.url(GROWING).to_string(), "1s")];
    let config = config(tmp.path(), sink.port, "5s", &feeds);
    let rules = RuleSet::load(&config.rule_files).expect("rules load");
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let db = config.state_dir.join(newswatch::store::DB_FILE);

    let shutdown = CancellationToken::new();
    let scenario = async {
        while alerted(&sink).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lock = rusqlite::Connection::open(&db).expect("a second connection");
        lock.execute_batch("BEGIN EXCLUSIVE")
            .expect("an exclusive lock");
        let before = server.counts().requests;
        // The poll made while locked, then more than the store's 5 s busy timeout: its write fails
        // and is tried again while the lock holds.
        while server.counts().requests == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(8)).await;
        let while_locked = server.counts().requests - before;
        lock.execute_batch("ROLLBACK").expect("release the lock");
        server.freeze();
        let items = server.grown();
        while alerted(&sink).len() < items {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        (while_locked, items)
    };
    let (ran, (while_locked, items)) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, newswatch::clock::now),
            scenario
        )
    })
    .await
    .expect("every item alerted once the lock is gone");
    ran.expect("run_until");
    assert_eq!(
        while_locked, 1,
        "one poll while locked, then fetching paused"
    );
    assert_eq!(alerted(&sink), (1..=items).collect::<Vec<_>>());
    let alerts = sink.messages().len();
    assert_eq!(alerts, items, "one alert per item, none twice");
}
