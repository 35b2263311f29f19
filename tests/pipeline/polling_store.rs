//! The store's side of polling: a year of polls stays bounded, `status` before any run creates
//! nothing, and a failed write fails the cycle while each feed's record stays whole.

use std::collections::HashMap;
use std::time::Duration;

use chrono::DateTime;
use chrono::Utc;
use newswatch::model::Article;
use newswatch::model::Validators;
use newswatch::pipeline::Feeds;
use newswatch::policy::feed_health::Thresholds;
use newswatch::store::{ArticleMatches, PollRecord, PollResult, Store};

use super::polling::{at, config, cycle, pipeline, record, rules, servers, t0};
use crate::support::http::FEED_ETAG;

fn day(d: i64) -> DateTime<Utc> {
    at(d * 86_400)
}

fn item(i: i64) -> Article {
    Article {
        key: format!("id:item-{i}"),
        link: Some(format!("https://news.example/{i}")),
        title: format!("Story {i}"),
        summary: "s".repeat(500),
        content: "c".repeat(2000),
        ..Article::default()
    }
}

/// A year of polls (four a day, five new items a day, each listed for four days, plus one item
/// listed all year) with daily pruning: text goes after 30 days, identities 180 days after the
/// feed stopped listing them, the everlisted item never re-alerts, and the file stops growing.
#[test]
fn a_year_of_polls_keeps_the_database_bounded() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(tmp.path()).expect("the store opens in the temporary directory");
    store
        .ensure_feeds([("f", "https://news.example/feed")])
        .expect("the feed row is created");
    let retention = Duration::from_secs(30 * 86_400);
    let keep = Duration::from_secs(180 * 86_400);
    let validators = Validators::default();
    let mut evergreen = Article {
        key: "id:evergreen".into(),
        title: "About us".into(),
        ..Article::default()
    };
    let mut size_at = HashMap::new();
    let mut alerts = 0;
    for d in 0..365 {
        for q in 0..4 {
            let now = day(d) + chrono::Duration::hours(6 * q);
            // By the day's last poll all five of its items (d*5 .. d*5+5) are listed.
            let newest = d * 5 + q + 2;
            let mut articles: Vec<Article> = ((newest - 20).max(0)..newest).map(item).collect();
            evergreen.title = format!("About us (day {d})");
            articles.push(evergreen.clone());
            let stored = store
                .record_poll(
                    "f",
                    &PollRecord {
                        result: PollResult::Fetched {
                            title: Some("F"),
                            validators: &validators,
                            articles: &articles,
                            hint_ttl: None,
                            permanent_redirect: None,
                        },
                        now,
                        next_due: now,
                        new_feed_window: Duration::from_secs(520 * 7 * 86_400),
                        flood_at: 100,
                        thresholds: Thresholds::default(),
                        stats: newswatch::store::PollStats::default(),
                    },
                )
                .expect("the poll is recorded");
            alerts += stored.inserted.alertable;
            let pending = store.pending_articles().expect("unmatched articles read");
            let verdicts: Vec<ArticleMatches> = pending
                .iter()
                .map(|p| ArticleMatches {
                    article: p.id,
                    matches: vec![],
                })
                .collect();
            store
                .record_matches(
                    &verdicts,
                    now,
                    &std::collections::HashMap::new(),
                    "rules-v1",
                )
                .expect("the verdicts are recorded");
        }
        store
            .prune(day(d) + chrono::Duration::hours(23), retention, keep)
            .expect("pruning succeeds");
        if [200, 364].contains(&d) {
            let len = std::fs::metadata(tmp.path().join("newswatch.db"))
                .map(|m| m.len())
                .unwrap_or(0);
            size_at.insert(d, len);
        }
    }
    // Each day's items: 5 new ones (the last poll lists items up to d*5+5), plus the evergreen.
    assert_eq!(alerts, 365 * 5 + 1, "every item alerted exactly once");
    let c = store.row_counts().expect("row counts read");
    // Identities: items listed within the last ~184 days; text: within the last ~34 days.
    assert!((900..=940).contains(&c.articles), "{c:?}");
    assert!((160..=180).contains(&c.texts), "{c:?}");
    // Per item its guid, link and loose link (`url:`; "Story N" is too short a headline to be a
    // key); the evergreen item its guid and only its current headline, however often edited.
    assert_eq!(c.item_keys, c.articles * 3 - 1, "{c:?}");
    let (mid, end) = (size_at[&200], size_at[&364]);
    assert!(end <= mid + mid / 10, "grew from {mid} to {end} bytes");
    // About 4 MiB: the bound was 4 MiB until issue 20 gave each article its detected language
    // and full-text flag (one page over it); the growth check above is what holds the bound.
    assert!(end < 9 << 19, "{end} bytes");
    let r = store.feed_record("f").ok().flatten().unwrap_or_default();
    assert_eq!(r.items_seen, 365 * 5 + 1);
}

/// `status` before the daemon ever ran: every feed "never polled", and nothing is created.
#[test]
fn status_without_a_database_creates_nothing() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = config(
        tmp.path(),
        "",
        &[("quiet", "https://news.example/feed".to_string(), "15m")],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newswatch"))
        .args(["status", "--config"])
        .arg(&config.path)
        .output()
        .expect("the built newswatch binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no state database yet: newswatch has not run with this config\nfeed quiet\n  \
         url:          https://news.example/feed\n  state:        never polled\n\
         outbox: 0 queued, 0 sent, 0 failed\n"
    );
    assert!(!config.state_dir.exists());
}

/// A store failure while recording polls ends the cycle with that error (never swallowed), and
/// each feed's record stays atomic: its new items are stored together with its validators and
/// state, or neither is; a later cycle then takes every feed's items exactly once. The failure
/// is injected with a trigger, in each place a feed's write could tear: its item keys (after its
/// article row), and its state (after all its items).
#[tokio::test]
async fn a_failing_write_fails_the_cycle_and_leaves_each_feed_atomic() {
    let (public, _internal) = servers();
    let url = public.url("/feed.xml").to_string();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let triggers = [
        "BEFORE INSERT ON item_keys WHEN NEW.feed = 'd'",
        "BEFORE UPDATE ON feeds WHEN NEW.name = 'd' AND NEW.etag IS NOT NULL",
    ];
    for trigger in triggers {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let feeds: Vec<(&str, String, &str)> =
            names.iter().map(|n| (*n, url.clone(), "15m")).collect();
        let mut config = config(tmp.path(), "", &feeds);
        config.fetch.concurrency = 2;
        let rules = rules(&config);
        let p = pipeline(&config, &rules).await;
        let db = rusqlite::Connection::open(config.state_dir.join(newswatch::store::DB_FILE))
            .expect("the state database opens");
        db.execute_batch(&format!(
            "CREATE TRIGGER tear {trigger} BEGIN SELECT RAISE(ABORT, 'injected write failure'); END;"
        ))
        .expect("the trigger is created");
        let err = p
            .cycle(t0(), Feeds::Due)
            .await
            .err()
            .unwrap_or_else(|| panic!("{trigger}: the cycle hid the failed write"));
        assert!(
            format!("{err:#}").contains("injected write failure"),
            "{trigger}: {err:#}"
        );
        // (feed, articles stored, polls recorded, etag stored) for every feed.
        let state = || -> Vec<(String, u64, u64, Option<String>)> {
            names
                .iter()
                .map(|n| {
                    let stored: u64 = db
                        .query_row("SELECT COUNT(*) FROM articles WHERE feed = ?1", [n], |r| {
                            r.get(0)
                        })
                        .expect("the article count reads");
                    let r = record(&config, n);
                    (n.to_string(), stored, r.polls, r.validators.etag)
                })
                .collect()
        };
        let before = state();
        for (feed, stored, polls, etag) in &before {
            let whole = (1, 1, Some(FEED_ETAG.to_string()));
            let none = (0, 0, None);
            let got = (*stored, *polls, etag.clone());
            assert!(
                got == whole || got == none,
                "{trigger}: feed {feed} torn: {got:?}"
            );
        }
        assert_eq!(
            before[3].1, 0,
            "{trigger}: the failing feed's items were stored"
        );
        db.execute_batch("DROP TRIGGER tear")
            .expect("the trigger is dropped");
        let s = cycle(&p, at(1)).await;
        let missing = before.iter().filter(|(_, stored, ..)| *stored == 0).count();
        assert_eq!(s.new_articles, missing, "{trigger}");
        for (feed, stored, polls, etag) in state() {
            assert_eq!(stored, 1, "{trigger}: feed {feed}");
            assert_eq!(etag.as_deref(), Some(FEED_ETAG), "{feed}");
            assert!(polls >= 1, "{trigger}: feed {feed}");
        }
    }
}
