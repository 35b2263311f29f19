//! The pipeline against the misbehaving loopback server, with injected time: the exact state each
//! hostile case leaves (error count, next due time, alerts), item identity in the store, the
//! flood warning, permanent redirects, feed-health notices, `status`, an hour of daemon cycles and
//! the global concurrency cap. `polling_store` has the store's side. No test sleeps.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use newswatch::config::Config;
use newswatch::fetch::Fetcher;
use newswatch::pipeline::{Feeds, Jitter, Pipeline, Summary};
use newswatch::policy::feed_health::NoticeKind;
use newswatch::rules::RuleSet;
use newswatch::store::{FeedRecord, Store};

use crate::support::http::{FLOOD_ITEMS, TestServer};

const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const INTERNAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const M: i64 = 60;

const RULES: &str = r#"
[[rule]]
id = "hegseth"
title = "Hegseth"
query = "Hegseth"
"#;

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// Two test servers: the "public" one the feeds live on and an internal one behind it.
pub fn servers() -> (TestServer, TestServer) {
    let internal = TestServer::start_on(INTERNAL_IP, 0);
    let public = TestServer::start_on(PUBLIC_IP, internal.addr.port());
    (public, internal)
}

/// A config in `dir` with the given `[fetch]` extras and feeds (name, url, interval).
pub fn config(dir: &Path, fetch_extra: &str, feeds: &[(&str, String, &str)]) -> Config {
    config_with(dir, fetch_extra, feeds, &[])
}

/// Like [`config`]; the feeds named in `private` set `allow_private_network = true`.
fn config_with(
    dir: &Path,
    fetch_extra: &str,
    feeds: &[(&str, String, &str)],
    private: &[&str],
) -> Config {
    std::fs::create_dir_all(dir.join("rules"))
        .expect("create a directory in the temporary directory");
    std::fs::write(dir.join("rules/test.toml"), RULES)
        .expect("write a file in the temporary directory");
    let mut text = format!(
        r#"state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"
[fetch]
timeout = "600ms"
connect_timeout = "500ms"
max_body = "1MB"
concurrency = 8
per_host = 8
host_spacing = "0s"
min_interval = "1m"
{fetch_extra}
[delivery]
method = "file"
dir = "outbox"
from = "nw@example.org"
"#
    );
    for (name, url, interval) in feeds {
        text.push_str(&format!(
            "[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"{interval}\"\n"
        ));
        if private.contains(name) {
            text.push_str("allow_private_network = true\n");
        }
    }
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write a file in the temporary directory");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn rules(config: &Config) -> RuleSet {
    RuleSet::load(&config.rule_files).expect("the test rules load")
}

pub async fn pipeline<'a>(config: &'a Config, rules: &'a RuleSet) -> Pipeline<'a> {
    let fetcher = Fetcher::with_public_overrides(&config.fetch, "nw-test", vec![PUBLIC_IP])
        .expect("the test settings make a fetcher");
    Pipeline::open(config, rules)
        .await
        .expect("the pipeline opens on the test state directory")
        .with_fetcher(fetcher)
        .with_jitter(Jitter::Fixed(0.0))
}

pub async fn cycle(p: &Pipeline<'_>, now: DateTime<Utc>) -> Summary {
    p.cycle(now, Feeds::Due).await.expect("a cycle completes")
}

pub fn record(config: &Config, feed: &str) -> FeedRecord {
    Store::open_read_only(&config.state_dir)
        .and_then(|s| s.feed_record(feed))
        .expect("the feed's record reads")
        .unwrap_or_else(|| panic!("no row for {feed}"))
}

/// (error count, next due in minutes after t0, stored error mentions)
pub fn state(config: &Config, feed: &str) -> (u32, i64, String) {
    let r = record(config, feed);
    let due = r.next_due.map_or(-1, |d| (d - t0()).num_seconds() / M);
    let err = r.last_error.unwrap_or_default();
    (r.error_count, due, err)
}

/// Every hostile endpoint as a feed, polled once at t0 through the whole pipeline: the state it
/// leaves. Interval 15 min (the back-off base); persistent failures start at 4x; Retry-After is
/// honoured when it is longer than the back-off and clamped at the 24 h maximum.
#[tokio::test]
async fn each_hostile_case_leaves_an_exact_state() {
    let (public, internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    // (path, interval, error count, next due in minutes, error text contains, new items)
    #[rustfmt::skip]
    let cases: &[(&str, &str, u32, i64, &str, usize)] = &[
        ("/feed.xml", "15m", 0, 30, "", 1),          // Cache-Control max-age=1800 beats 15 min
        ("/latin1", "15m", 0, 15, "", 1),
        ("/bare-amp", "15m", 0, 15, "", 1),
        ("/no-version", "15m", 0, 15, "", 1),
        ("/utf16", "15m", 0, 15, "", 1),
        ("/guidless", "15m", 0, 15, "", 3),
        ("/moved", "15m", 0, 30, "", 1),
        ("/found", "15m", 0, 30, "", 1),
        ("/hang", "15m", 1, 15, "timed out", 0),
        ("/drip", "15m", 1, 15, "timed out", 0),
        ("/slow-headers", "15m", 1, 15, "timed out", 0),
        ("/truncated-gzip", "15m", 1, 15, "corrupt", 0),
        ("/corrupt-gzip", "15m", 1, 15, "corrupt", 0),
        ("/500", "15m", 1, 15, "500", 0),
        ("/empty", "15m", 1, 15, "empty", 0),
        ("/429-garbage", "15m", 1, 15, "429", 0),    // garbage Retry-After: our own back-off
        ("/429-seconds", "1m", 1, 2, "429", 0),      // Retry-After 120 s beats a 1 min back-off
        ("/503", "15m", 1, 60, "503", 0),            // Retry-After 3600
        ("/429-date", "15m", 1, 24 * 60, "429", 0),  // a 2037 date, clamped to 24 h
        ("/429-huge", "15m", 1, 24 * 60, "429", 0),
        ("/404", "15m", 1, 60, "404", 0),
        ("/html", "15m", 1, 60, "HTML", 0),
        ("/captive", "15m", 1, 60, "HTML", 0),
        ("/gzip-bomb", "15m", 1, 60, "limit", 0),
        ("/deflate-bomb", "15m", 1, 60, "limit", 0),
        ("/huge-declared", "15m", 1, 60, "limit", 0),
        ("/huge-undeclared", "15m", 1, 60, "limit", 0),
        ("/loop-a", "15m", 1, 60, "loop", 0),
        ("/hops/6", "15m", 1, 60, "redirects", 0),
        ("/to-ftp", "15m", 1, 60, "ftp", 0),
        ("/to-decimal", "15m", 1, 60, "internal address", 0),
        ("/to-octal", "15m", 1, 60, "internal address", 0),
        ("/to-hex", "15m", 1, 60, "internal address", 0),
        ("/to-short", "15m", 1, 60, "internal address", 0),
        ("/to-localhost", "15m", 1, 60, "internal address", 0),
        ("/to-ipv6", "15m", 1, 60, "internal address", 0),
        ("/to-mapped", "15m", 1, 60, "internal address", 0),
        ("/to-private", "15m", 1, 60, "internal address", 0),
        ("/to-metadata", "15m", 1, 60, "internal address", 0),
        // The operator's per-feed override: the same redirect, allowed.
        ("allowed", "15m", 0, 30, "", 1),
    ];
    let path = |name: &str| {
        if name == "allowed" {
            "/to-decimal"
        } else {
            name
        }
        .to_string()
    };
    let feeds: Vec<(&str, String, &str)> = cases
        .iter()
        .map(|c| (c.0, public.url(&path(c.0)).to_string(), c.1))
        .collect();
    let config = config_with(tmp.path(), "", &feeds, &["allowed"]);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    let s = cycle(&p, t0()).await;
    for &(path, _, errors, due, err, _) in cases {
        let (got_errors, got_due, got_err) = state(&config, path);
        assert_eq!((got_errors, got_due), (errors, due), "{path}: {got_err}");
        assert!(got_err.contains(err), "{path}: {got_err:?} lacks {err:?}");
    }
    let new: usize = cases.iter().map(|c| c.5).sum();
    // Alerts: /feed.xml, /moved, /found and the allowed redirect serve "Healey meets Hegseth".
    assert_eq!((s.new_articles, s.matches), (new, 4), "{s}");
    assert_eq!(s.feeds_failed, cases.iter().filter(|c| c.2 > 0).count());
    // The network policy held through the pipeline: only the allowed feed reached the internal
    // server.
    let reached: Vec<String> = internal.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(reached, ["/feed.xml"]);
    // Nothing new is alerted on a second look at the same bytes.
    let s = cycle(&p, at(24 * 3600)).await;
    assert_eq!((s.new_articles, s.matches), (0, 0), "{s}");
}

/// 500 three times then OK: each failure doubles the delay, the success resets it, and all of
/// it survives a restart.
#[tokio::test]
async fn three_failures_then_ok_back_off_and_recover_across_a_restart() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = config(
        tmp.path(),
        "",
        &[("flaky", public.url("/flaky").to_string(), "15m")],
    );
    let rules = rules(&config);
    // (poll at minute, error count after, next due minute, new items)
    let steps = [
        (0, 1, 15, 0),
        (15, 2, 45, 0),
        (45, 3, 105, 0),
        (105, 0, 120, 1),
    ];
    for (minute, errors, due, new) in steps {
        // A fresh pipeline each time: the schedule lives in the database, not in memory.
        let p = pipeline(&config, &rules).await;
        if minute > 0 {
            let early = cycle(&p, at(minute * M - 1)).await;
            assert_eq!(early.feeds_polled, 0, "minute {minute}: not yet due");
        }
        let s = cycle(&p, at(minute * M)).await;
        assert_eq!(
            (s.feeds_polled, s.new_articles),
            (1, new),
            "minute {minute}"
        );
        assert_eq!(state(&config, "flaky").0, errors, "minute {minute}");
        assert_eq!(state(&config, "flaky").1, due, "minute {minute}");
    }
    let r = record(&config, "flaky");
    assert_eq!((r.last_success, r.last_error), (Some(at(105 * M)), None));
    assert_eq!(r.polls, 4);
}

/// 301 and 308 move the stored URL once the same target is seen on two polls in a row; 302 and
/// 307 never do; the configured URL stays the user's, and `status` shows both.
#[tokio::test]
async fn permanent_redirects_stick_only_when_repeated() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let feeds = [
        ("m301", public.url("/moved").to_string(), "15m"),
        ("m308", public.url("/moved-308").to_string(), "15m"),
        ("f302", public.url("/found").to_string(), "15m"),
        ("t307", public.url("/temporary-307").to_string(), "15m"),
    ];
    let config = config(tmp.path(), "", &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    let target = public.url("/feed.xml").to_string();
    // (poll, effective URL of the permanent ones afterwards)
    for (i, want) in [
        (0, None),
        (1, Some(target.as_str())),
        (2, Some(target.as_str())),
    ] {
        cycle(&p, at(i * 3600)).await;
        for name in ["m301", "m308"] {
            assert_eq!(
                record(&config, name).effective_url.as_deref(),
                want,
                "{name} poll {i}"
            );
        }
        for name in ["f302", "t307"] {
            assert_eq!(record(&config, name).effective_url, None, "{name} poll {i}");
        }
    }
    let paths: Vec<String> = public.seen().into_iter().map(|s| s.path).collect();
    let count = |p: &str| paths.iter().filter(|x| *x == p).count();
    // Third poll: the moved feeds go straight to the target; the temporary ones still bounce.
    assert_eq!(
        [
            count("/moved"),
            count("/moved-308"),
            count("/found"),
            count("/temporary-307")
        ],
        [2, 2, 3, 3]
    );
    assert_eq!(count("/feed.xml"), 12);

    let db = config.state_dir.join("newswatch.db");
    let before = std::fs::read(&db).unwrap_or_default();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["status", "--json", "--config"])
        .arg(&config.path)
        .output()
        .expect("the built newswatch binary runs");
    assert!(
        std::fs::read(&db).unwrap_or_default() == before,
        "status wrote to the database"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    let feed = &json["feeds"][0];
    assert_eq!(feed["name"], "m301");
    assert_eq!(feed["url"], public.url("/moved").to_string());
    assert_eq!(feed["effective_url"], target);
    assert_eq!(feed["error_count"], 0);
    assert_eq!(feed["polls"], 3);
    assert_eq!(json["feeds"][2]["effective_url"], serde_json::Value::Null);
}

/// Item identity in the store: no re-alert for the same bytes, guid churn, an item that vanishes
/// and returns, or an edited headline (whose stored title is updated).
#[tokio::test]
async fn identity_never_realerts_and_follows_headline_edits() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let feeds = [
        ("guidless", public.url("/guidless").to_string(), "1m"),
        ("churn", public.url("/churn").to_string(), "1m"),
        ("vanish", public.url("/vanish").to_string(), "1m"),
        ("edit", public.url("/edit").to_string(), "1m"),
    ];
    let config = config(tmp.path(), "", &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    // (new articles, matches) per poll: 3 guid-less + 1 churn + 2 vanish + 1 edit at first;
    // Hegseth matches the vanishing story and the edited one.
    let want = [(7, 2), (0, 0), (0, 0), (0, 0)];
    for (i, want) in want.into_iter().enumerate() {
        let s = cycle(&p, at(i as i64 * M)).await;
        assert_eq!((s.new_articles, s.matches), want, "poll {i}: {s}");
    }
    let store =
        Store::open_read_only(&config.state_dir).expect("the state database opens read-only");
    let seen = |f: &str| store.feed_record(f).ok().flatten().map(|r| r.items_seen);
    assert_eq!(
        [
            seen("guidless"),
            seen("churn"),
            seen("vanish"),
            seen("edit")
        ],
        [Some(3), Some(1), Some(2), Some(1)]
    );
    let mut rw = Store::open(&config.state_dir).expect("store opens");
    let mut titles: Vec<String> = crate::uncarried_matches(&mut rw)
        .into_iter()
        .map(|m| m.title)
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "Healey meets Hegseth in Washington",
            "Hegseth story that vanishes"
        ]
    );
    // Each item also has its loose keys: its link without scheme and noise (`url:`) and, for a
    // headline of four words or more, the headline (`title:`, only the current one).
    // guid-less 3 + 2 url + 1 headline; churn: four churned guids, the stable link and its url,
    // all for one item; vanish 2x3 + 1 headline; edit 3 + the edited headline.
    assert_eq!(
        store.row_counts().map(|c| c.item_keys).ok(),
        Some(6 + 6 + 7 + 4)
    );
}

/// A feed emitting 250 new items at once: all stored in that poll, validators kept (the next poll
/// is a 304 on the normal schedule), the feed warned about while the flood stands, none twice.
#[tokio::test]
async fn a_flood_is_stored_whole_in_one_poll() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = config(
        tmp.path(),
        "",
        &[("flood", public.url("/flood").to_string(), "30m")],
    );
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    // (poll at minute, new items, next due minute, warned)
    let steps = [(0, FLOOD_ITEMS, 30, true), (30, 0, 60, true)];
    for (minute, new, due, warned) in steps {
        let s = cycle(&p, at(minute * M)).await;
        assert_eq!(s.new_articles, new, "minute {minute}: {s}");
        let r = record(&config, "flood");
        assert_eq!(state(&config, "flood").1, due, "minute {minute}");
        assert!(r.validators.etag.is_some(), "minute {minute}");
        assert_eq!(r.warning.is_some(), warned, "minute {minute}: {r:?}");
    }
    assert_eq!(record(&config, "flood").items_seen, FLOOD_ITEMS as u64);
    let conditional = public
        .seen()
        .iter()
        .filter(|s| s.headers.contains_key("if-none-match"))
        .count();
    assert_eq!(conditional, 1, "the second poll is conditional");
}

/// The "Done when": an hour of daemon cycles, one a minute, against good and misbehaving feeds.
/// Good feeds are polled on schedule, bad ones back off, each failing feed produces exactly one
/// notice after `failing_after`, the flaky one a "recovered" notice, and `status` agrees.
#[tokio::test]
async fn an_hour_of_daemon_cycles_keeps_good_feeds_on_schedule() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    // (feed, interval, polls expected in the hour)
    let plan = [
        ("/guidless", "5m", 12), // 0, 5, ..., 55
        ("/latin1", "10m", 6),   // 0, 10, ..., 50
        ("/500", "5m", 4),       // 0, 5, 15, 35 (next at 75)
        ("/hang", "5m", 4),      // the same, each cut off by the deadline
        ("/html", "5m", 2),      // persistent: 0, 20 (next at 60)
        ("/429-date", "5m", 1),  // Retry-After in 2037, clamped to 24 h
        ("/flaky", "5m", 8),     // 0, 5, 15 fail; 35 OK; then 40, 45, 50, 55
    ];
    let feeds: Vec<(&str, String, &str)> = plan
        .iter()
        .map(|(p, i, _)| (*p, public.url(p).to_string(), *i))
        .collect();
    let config = config(tmp.path(), "failing_after = \"10m\"", &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    for minute in 0..60 {
        cycle(&p, at(minute * M)).await;
    }
    let mut polls: HashMap<String, usize> = HashMap::new();
    for s in public.seen() {
        *polls.entry(s.path).or_default() += 1;
    }
    let got: Vec<(&str, usize)> = plan
        .iter()
        .map(|(path, _, _)| (*path, polls.get(*path).copied().unwrap_or(0)))
        .collect();
    let want: Vec<(&str, usize)> = plan.iter().map(|(path, _, n)| (*path, *n)).collect();
    assert_eq!(got, want);

    let store =
        Store::open_read_only(&config.state_dir).expect("the state database opens read-only");
    let mut notices: Vec<(i64, String, NoticeKind)> = store
        .feed_notices(t0())
        .expect("feed notices read")
        .into_iter()
        .map(|n| ((n.at - t0()).num_minutes(), n.feed, n.kind))
        .collect();
    // Feeds polled in the same cycle finish in any order.
    notices.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let n = |m, f: &str, k| (m, f.to_string(), k);
    assert_eq!(
        notices,
        [
            n(15, "/500", NoticeKind::Failing),
            n(15, "/flaky", NoticeKind::Failing),
            n(15, "/hang", NoticeKind::Failing),
            n(20, "/html", NoticeKind::Failing),
            n(35, "/flaky", NoticeKind::Recovered),
        ]
    );
    // (feed, error count, next due minute)
    let states = [
        ("/500", 4, 75),
        ("/hang", 4, 75),
        ("/html", 2, 60),
        ("/flaky", 0, 60),
    ];
    for (feed, errors, due) in states {
        let (e, d, _) = state(&config, feed);
        assert_eq!((e, d), (errors, due), "{feed}");
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["status", "--config"])
        .arg(&config.path)
        .output()
        .expect("the built newswatch binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("feed /500\n"), "{text}");
    assert!(
        text.contains("  errors:       4\n  last error:   HTTP status 500"),
        "{text}"
    );
    assert!(text.contains("  health:       failing"), "{text}");
    assert!(
        text.contains("outbox: 0 queued, 0 sent, 0 failed"),
        "{text}"
    );
    assert!(text.contains("feed /flaky recovered"), "{text}");
}

/// A feed failing for longer than `failing_after` is named in the digest's "Sources" section; a
/// healthy feed is not.
#[tokio::test]
async fn a_failing_feed_is_named_in_the_digest_sources_section() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let feeds = [
        ("/500", public.url("/500").to_string(), "5m"),
        ("/feed.xml", public.url("/feed.xml").to_string(), "5m"),
    ];
    let digest = "failing_after = \"10m\"\n[[digest]]\nname = \"desk\"\nto = [\"a@example.org\"]";
    let config = config(tmp.path(), digest, &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    for minute in 0..20 {
        cycle(&p, at(minute * M)).await;
    }
    let r = p
        .preview_digest("desk", Some(Duration::from_secs(3600)), at(20 * M))
        .await
        .expect("the digest preview renders");
    assert!(r.text.contains("/500: failing"), "{}", r.text);
    assert!(
        r.html.contains("500: failing — HTTP status 500"),
        "{}",
        r.html
    );
    assert!(!r.text.contains("/feed.xml: failing"), "{}", r.text);
}

/// A feed's `<ttl>` stretches its 15 min interval to an hour; after a 304 (no body to read it
/// from) the stored ttl still holds.
#[tokio::test]
async fn the_feed_ttl_is_reused_after_a_304() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = config(
        tmp.path(),
        "",
        &[("ttl", public.url("/ttl").to_string(), "15m")],
    );
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    // (poll at minute, unchanged, next due minute)
    for (minute, unchanged, due) in [(0, 0, 60), (60, 1, 120), (120, 1, 180)] {
        let s = cycle(&p, at(minute * M)).await;
        assert_eq!(
            (s.feeds_polled, s.feeds_unchanged),
            (1, unchanged),
            "{minute}"
        );
        assert_eq!(state(&config, "ttl").1, due, "{minute}");
    }
    assert_eq!(
        record(&config, "ttl").hint_ttl,
        Some(Duration::from_secs(3600))
    );
}

/// `[fetch] concurrency` caps feeds fetched at once: four feeds on `/paired`, which holds each
/// request until the next one arrives, are fetched exactly two at a time, as the server counts.
#[tokio::test]
async fn the_global_concurrency_cap_holds() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let paired = public.url("/paired").to_string();
    let feeds: Vec<(&str, String, &str)> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, paired.clone(), "15m"))
        .collect();
    let mut config = config(tmp.path(), "", &feeds);
    config.fetch.concurrency = 2;
    // Room for a pair to form on a loaded machine; the deadline is not what is tested here.
    config.fetch.timeout = Duration::from_secs(30);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    let s = cycle(&p, t0()).await;
    assert_eq!((s.feeds_polled, s.feeds_failed), (4, 0), "{s}");
    assert_eq!(public.max_paired_in_flight(), 2);
}

/// A feed that brought news every 5 minutes and then goes quiet for longer than `silent_factor`
/// times that (and `failing_after`) gets one "silent" notice, and one "recovered" when news returns.
#[tokio::test]
async fn a_feed_gone_silent_gets_one_notice_and_one_recovery() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let feeds = [("dry", public.url("/dries-up").to_string(), "5m")];
    let config = config(
        tmp.path(),
        "failing_after = \"10m\"\nsilent_factor = 2",
        &feeds,
    );
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    for minute in (0..=45).step_by(5) {
        cycle(&p, at(minute * M)).await;
    }
    let store =
        Store::open_read_only(&config.state_dir).expect("the state database opens read-only");
    let notices: Vec<(i64, NoticeKind)> = store
        .feed_notices(t0())
        .expect("feed notices read")
        .into_iter()
        .map(|n| ((n.at - t0()).num_minutes(), n.kind))
        .collect();
    assert_eq!(
        notices,
        [(30, NoticeKind::Silent), (40, NoticeKind::Recovered)]
    );
    let r = record(&config, "dry");
    assert_eq!((r.items_seen, r.polls, r.error_count), (6, 10, 0));
}
