//! The `feeds` table read and kept in step with the config: one row per configured feed, its
//! fetch state as `status` and the scheduler read it, and the feed-health notices. What a poll
//! writes is `polls.rs`; what to do with a feed (when next, healthy or not) is decided elsewhere.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::Validators;
use crate::policy::feed_health::{Health, NoticeKind};

/// What the store remembers about one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    pub name: String,
    pub title: Option<String>,
    pub validators: Validators,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub error_count: u32,
    pub next_due: Option<DateTime<Utc>>,
}

/// Everything the store knows about one feed's fetching: what the pipeline schedules from and
/// what `newswatch status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedRecord {
    pub name: String,
    /// The URL as configured.
    pub url: String,
    /// Where the feed is fetched from after repeated permanent redirects; `None` = `url`.
    pub effective_url: Option<String>,
    pub title: Option<String>,
    pub validators: Validators,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub error_count: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    /// The feed's own `ttl` / `sy:updatePeriod` from its last full fetch, reused after a 304.
    pub hint_ttl: Option<Duration>,
    pub last_new_item: Option<DateTime<Utc>>,
    pub health: Health,
    /// Items ever stored for this feed (pruning does not lower it).
    pub items_seen: u64,
    pub polls: u64,
    /// What the last full poll warned about (a flood of new items, guid churn), if anything.
    pub warning: Option<String>,
}

/// An operator notice about a feed, for logs and the digest's "sources" section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedNotice {
    pub id: i64,
    pub feed: String,
    pub kind: NoticeKind,
    pub at: DateTime<Utc>,
    pub detail: String,
}

const RECORD_COLUMNS: &str = "name, url, effective_url, title, etag, last_modified, last_success,
    last_error, error_count, failing_since, next_due, hint_ttl, last_new_item, health, items_seen,
    polls, warning";

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRecord> {
    Ok(FeedRecord {
        name: r.get(0)?,
        url: r.get(1)?,
        effective_url: r.get(2)?,
        title: r.get(3)?,
        validators: Validators {
            etag: r.get(4)?,
            last_modified: r.get(5)?,
        },
        last_success: r.get::<_, Option<i64>>(6)?.map(from_ts),
        last_error: r.get(7)?,
        error_count: r.get(8)?,
        failing_since: r.get::<_, Option<i64>>(9)?.map(from_ts),
        next_due: r.get::<_, Option<i64>>(10)?.map(from_ts),
        hint_ttl: r
            .get::<_, Option<i64>>(11)?
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        last_new_item: r.get::<_, Option<i64>>(12)?.map(from_ts),
        health: Health::parse(&r.get::<_, String>(13)?),
        items_seen: r.get(14)?,
        polls: r.get(15)?,
        warning: r.get(16)?,
    })
}

impl Sqlite {
    /// Makes sure every configured `(name, url)` has a row (a new feed starts due now) and its URL
    /// is current, in one transaction: one commit (one WAL sync) at start-up and on every reload.
    /// A URL the operator changed replaces the effective URL learned from permanent redirects of
    /// the old one, and a redirect half-learned from it. A feed whose URL is unchanged is not
    /// written (issue 22: every start rewrote every feed's row).
    pub(super) fn ensure_feed_list(&mut self, feeds: &[(&str, &str)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO feeds (name, url) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET
                     effective_url = CASE WHEN url = excluded.url THEN effective_url END,
                     redirect_target = CASE WHEN url = excluded.url THEN redirect_target END,
                     url = excluded.url
                 WHERE url IS NOT excluded.url",
            )?;
            for &(name, url) in feeds {
                stmt.execute(params![name, url])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Names of the feeds whose last poll failed (configured or not: the caller filters).
    pub fn failing_feeds(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM feeds WHERE last_error IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn feed_state(&self, name: &str) -> Result<Option<FeedState>, StoreError> {
        // Cached: a cycle asks once per configured feed (10,000 at the top of the benchmark).
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, title, etag, last_modified, last_success, last_error, error_count,
                        next_due
                 FROM feeds WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(FeedState {
                    name: r.get(0)?,
                    title: r.get(1)?,
                    validators: Validators {
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                    },
                    last_success: r.get::<_, Option<i64>>(4)?.map(from_ts),
                    last_error: r.get(5)?,
                    error_count: r.get(6)?,
                    next_due: r.get::<_, Option<i64>>(7)?.map(from_ts),
                })
            })
            .optional()?)
    }

    /// The fetch state of one feed.
    pub fn feed_record(&self, name: &str) -> Result<Option<FeedRecord>, StoreError> {
        // Cached: the daemon reads each feed's record after every stored poll.
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds WHERE name = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([name], read_record)
            .optional()?)
    }

    /// Every feed the database knows, by name.
    pub fn feed_records(&self) -> Result<Vec<FeedRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds ORDER BY name");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Notices recorded at or after `since`, oldest first: the digest's "sources" section shows
    /// the ones since its previous digest.
    pub fn feed_notices(&self, since: DateTime<Utc>) -> Result<Vec<FeedNotice>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, feed, kind, at, detail FROM feed_notices WHERE at >= ?1 ORDER BY at, id",
        )?;
        let rows = stmt.query_map([ts(since)], |r| {
            Ok(FeedNotice {
                id: r.get(0)?,
                feed: r.get(1)?,
                kind: NoticeKind::parse(&r.get::<_, String>(2)?),
                at: from_ts(r.get(3)?),
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every feed whose last full poll left a warning (a flood, guid churn), by name: they stand
    /// until a poll has nothing to warn about, so each digest's Sources section repeats them.
    pub fn feed_warnings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, warning FROM feeds WHERE warning IS NOT NULL ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{PollRecord, PollResult};
    use super::*;
    use crate::store::Store;

    use super::super::testing::{on_both_backends, t as at};

    on_both_backends! {
        /// Start-up and reloads keep the rows in step with the config: a new feed starts never
        /// polled (due at once), an edited URL replaces the old, a feed left out keeps its row.
        fn configured_feeds_get_rows_kept_in_step(s) {
            s.ensure_feeds([("a", "https://a.example/feed"), ("b", "https://b.example/feed")])
                .expect("ensure");
            let a = s.feed_record("a").expect("read").expect("row for a");
            assert_eq!(a.url, "https://a.example/feed");
            assert_eq!((a.next_due, a.last_success, a.polls, a.items_seen), (None, None, 0, 0));
            assert_eq!(a.health, Health::Ok);
            s.ensure_feeds([("a", "https://a.example/moved")]).expect("reload");
            let names: Vec<(String, String)> = s
                .feed_records()
                .expect("records")
                .into_iter()
                .map(|r| (r.name, r.url))
                .collect();
            assert_eq!(
                names,
                [
                    ("a".to_string(), "https://a.example/moved".to_string()),
                    ("b".to_string(), "https://b.example/feed".to_string()),
                ]
            );
            let state = s.feed_state("b").expect("state").expect("row for b");
            assert_eq!((state.error_count, state.next_due), (0, None));
            assert_eq!(s.feed_state("nope").expect("state"), None);
            assert!(s.failing_feeds().expect("failing").is_empty());
            assert!(s.feed_warnings().expect("warnings").is_empty());
            assert!(s.feed_notices(at("2000-01-01T00:00:00Z")).expect("notices").is_empty());
        }
    }
    use crate::policy::feed_health::Thresholds;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn not_modified(redirect: Option<&str>, h: i64) -> PollRecord<'_> {
        PollRecord {
            result: PollResult::NotModified {
                permanent_redirect: redirect,
            },
            now: t(h),
            next_due: t(h + 1),
            new_feed_window: Duration::from_secs(86_400),
            flood_at: 100,
            thresholds: Thresholds::default(),
            stats: crate::store::PollStats::default(),
        }
    }

    fn effective_url(s: &Store) -> Option<String> {
        s.feed_record("f")
            .expect("read")
            .expect("row")
            .effective_url
    }

    on_both_backends! {
        fn redirects_move_the_url_only_on_consecutive_repeats(s) {
            s.ensure_feeds([("f", "https://old.example/feed")])
                .expect("feed");
            let (a, b) = (
                Some("https://a.example/feed"),
                Some("https://b.example/feed"),
            );
            // (redirect seen this poll, effective URL afterwards)
            let steps = [
                (a, None),
                (None, None), // the run is broken
                (a, None),
                (b, None), // a different target starts over
                (b, b),
                (None, b), // once moved, it stays
            ];
            for (i, (redirect, want)) in steps.into_iter().enumerate() {
                let moved = s
                    .record_poll("f", &not_modified(redirect, i as i64))
                    .expect("poll");
                assert_eq!(effective_url(s).as_deref(), want, "step {i}");
                assert_eq!(moved.moved_to.is_some(), i == 4, "step {i}");
            }
        }
    }

    on_both_backends! {
        /// The production path, at start-up and on every reload: a feed moved by permanent redirects
        /// is fetched from its configured URL again once the operator edits that URL, and a redirect
        /// half-learned from the old URL does not carry over.
        fn editing_a_feeds_url_forgets_what_redirects_taught(s) {
            let moved = Some("https://moved.example/feed");
            s.ensure_feeds([("f", "https://old.example/feed")])
                .expect("feed");
            for h in 0..2 {
                s.record_poll("f", &not_modified(moved, h)).expect("poll");
            }
            assert_eq!(effective_url(s).as_deref(), moved, "learned");
            // A reload with the URL unchanged keeps what was learned.
            s.ensure_feeds([("f", "https://old.example/feed")])
                .expect("reload");
            assert_eq!(effective_url(s).as_deref(), moved, "same URL");
            s.ensure_feeds([("f", "https://new.example/feed")])
                .expect("edited");
            let rec = s.feed_record("f").expect("read").expect("row");
            assert_eq!(
                (rec.url.as_str(), rec.effective_url),
                ("https://new.example/feed", None),
                "fetched from the edited URL"
            );
            // One redirect seen before the edit, one after: not two in a row of the same URL.
            s.record_poll("f", &not_modified(moved, 2)).expect("poll");
            s.ensure_feeds([("f", "https://newer.example/feed")])
                .expect("edited again");
            s.record_poll("f", &not_modified(moved, 3)).expect("poll");
            assert_eq!(
                effective_url(s),
                None,
                "a half-learned redirect is forgotten"
            );
        }
    }
}
