//! What one poll writes, in one transaction with its feed's other changes: the items (through
//! `items.rs`), validators and schedule, errors, the redirect bookkeeping that moves a feed's
//! effective URL, cadence and health with their notices. Decisions (when next, healthy or not) come
//! in as data or from `feed_health`'s pure functions; this file only keeps the books.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::items::{SqliteItems, store_items};
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{Article, Validators};
use crate::policy::feed_health::{self, Health, HealthInput, NoticeKind, Thresholds};

/// The result of storing one successful poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Items never seen before.
    pub new: usize,
    /// Of the new items, those that will be matched (the rest were too old on a first poll).
    pub alertable: usize,
}

/// How one poll ended, as the store records it.
#[derive(Debug, Clone, Copy)]
pub enum PollResult<'a> {
    Fetched {
        title: Option<&'a str>,
        validators: &'a Validators,
        articles: &'a [Article],
        /// The feed's own refresh hint (longest of `ttl` and `sy:updatePeriod`).
        hint_ttl: Option<Duration>,
        /// Where a leading run of 301/308 led this time.
        permanent_redirect: Option<&'a str>,
    },
    NotModified {
        permanent_redirect: Option<&'a str>,
    },
    Failed {
        error: &'a str,
    },
}

/// One poll to record, with the decisions the pipeline made about it.
#[derive(Debug, Clone, Copy)]
pub struct PollRecord<'a> {
    pub result: PollResult<'a>,
    pub now: DateTime<Utc>,
    pub next_due: DateTime<Utc>,
    pub new_feed_window: Duration,
    /// More new items than this in one poll is a flood: every item is still stored and matched,
    /// and the feed carries a warning (`FeedRecord::warning`) until a poll brings fewer.
    pub flood_at: usize,
    pub thresholds: Thresholds,
    /// Status, bytes and duration, for the feed's poll history.
    pub stats: super::PollStats,
}

/// What recording one poll changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollStored {
    pub inserted: Inserted,
    /// Known items whose headline changed (updated in place, not re-alerted).
    pub retitled: usize,
    /// Set when this poll brought more than `flood_at` new items (all stored).
    pub flood: bool,
    /// Listed items that came back under a new primary key (guid) and were recognised by another
    /// key (link, loose link, headline): not new.
    pub churned: usize,
    /// Set when most listed items churned: the feed republishes its stories under new ids.
    pub churning: bool,
    /// Set when this poll made a permanent redirect stick: the new effective URL.
    pub moved_to: Option<String>,
    /// A health notice this poll produced.
    pub notice: Option<NoticeKind>,
    pub error_count: u32,
}

pub(super) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(super) fn minus(now: DateTime<Utc>, d: Duration) -> i64 {
    ts(now).saturating_sub(secs(d))
}

impl Sqlite {
    /// Records one poll in one transaction: items (new, known, retitled), schedule, errors,
    /// validators, redirect bookkeeping and health.
    pub fn record_poll(
        &mut self,
        feed: &str,
        poll: &PollRecord<'_>,
    ) -> Result<PollStored, StoreError> {
        let mut stored = self.record_polls(&[(feed, *poll)])?;
        Ok(stored.pop().unwrap_or_default())
    }

    /// Records several feeds' polls in one transaction (group commit: one WAL sync for the
    /// lot), in order; what each changed, in the same order. All or nothing: on an error
    /// nothing of the batch is stored, so no feed ever has its new items without its new
    /// validators and state, or the reverse.
    pub fn record_polls(
        &mut self,
        polls: &[(&str, PollRecord<'_>)],
    ) -> Result<Vec<PollStored>, StoreError> {
        // No fsync of its own: a batch lost to a power cut takes its articles and the feeds'
        // new validators with it, so the feeds are fetched again and nothing is missed; nothing
        // leaves the process (an email) before a later FULL commit has made this one durable.
        self.relaxed(|conn| {
            let tx = conn.transaction()?;
            let stored = polls
                .iter()
                .map(|(feed, poll)| record_poll_in(&tx, feed, poll))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(stored)
        })
    }
}

/// One feed's poll, inside the caller's transaction.
fn record_poll_in(
    tx: &Transaction<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
) -> Result<PollStored, StoreError> {
    let now = poll.now;

    let mut stored = PollStored::default();
    match poll.result {
        PollResult::Failed { error } => {
            tx.prepare_cached(
                "UPDATE feeds SET last_error = ?2, error_count = error_count + 1,
                         failing_since = COALESCE(failing_since, ?3), next_due = ?4,
                         polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![feed, error, ts(now), ts_up(poll.next_due)])?;
        }
        PollResult::NotModified { permanent_redirect } => {
            tx.prepare_cached(
                "UPDATE feeds SET last_success = ?2, last_error = NULL, error_count = 0,
                         failing_since = NULL, next_due = ?3, polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![feed, ts(now), ts_up(poll.next_due)])?;
            stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
        }
        PollResult::Fetched {
            title,
            validators,
            articles,
            hint_ttl,
            permanent_redirect,
        } => {
            let (first_poll, last_new, cadence): (bool, Option<i64>, Option<i64>) = tx
                .prepare_cached(
                    "SELECT last_success IS NULL OR catching_up = 1, last_new_item, cadence
                         FROM feeds WHERE name = ?1",
                )?
                .query_row([feed], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .unwrap_or((true, None, None));
            let window =
                chrono::Duration::from_std(poll.new_feed_window).unwrap_or(chrono::Duration::MAX);
            let cutoff = now.checked_sub_signed(window);
            let items = store_items(
                &mut SqliteItems::new(tx, feed),
                feed,
                articles,
                now,
                first_poll,
                cutoff,
            )?;
            stored.inserted = items.inserted;
            stored.retitled = items.retitled;
            let warning = flood_and_churn(&mut stored, items.churned, articles.len(), poll);
            let (cadence, samples_add) = match (items.inserted.new > 0, last_new) {
                (true, Some(prev)) => {
                    let gap = Duration::from_secs(u64::try_from(ts(now) - prev).unwrap_or(0));
                    let prev_cadence = cadence
                        .and_then(|c| u64::try_from(c).ok())
                        .map(Duration::from_secs);
                    (Some(secs(feed_health::next_cadence(prev_cadence, gap))), 1)
                }
                _ => (cadence, 0),
            };
            tx.prepare_cached(
                "UPDATE feeds SET title = ?2, etag = ?3, last_modified = ?4, last_success = ?5,
                         last_error = NULL, error_count = 0, failing_since = NULL, next_due = ?6,
                         hint_ttl = ?7, catching_up = 0, warning = ?8, items_seen = items_seen + ?9,
                         last_new_item = CASE WHEN ?9 > 0 THEN ?5 ELSE last_new_item END,
                         cadence = ?10, cadence_samples = cadence_samples + ?11,
                         polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![
                feed,
                title,
                validators.etag.as_deref(),
                validators.last_modified.as_deref(),
                ts(now),
                ts_up(poll.next_due),
                hint_ttl.map(secs),
                warning,
                items.inserted.new as i64,
                cadence,
                samples_add,
            ])?;
            stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
        }
    }
    super::poll_history::record_in(tx, feed, poll, stored.inserted.new)?;
    let (health, notice, errors) = assess_health(tx, feed, now, &poll.thresholds)?;
    stored.error_count = errors;
    stored.notice = notice;
    if let Some(kind) = notice {
        let detail = notice_detail(kind, poll);
        tx.prepare_cached(
            "INSERT INTO feed_notices (feed, kind, at, detail) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![feed, kind.as_str(), ts(now), detail])?;
    }
    // Rewritten only when it changes (a healthy feed stays healthy, poll after poll).
    tx.prepare_cached("UPDATE feeds SET health = ?2 WHERE name = ?1 AND health != ?2")?
        .execute(params![feed, health.as_str()])?;
    Ok(stored)
}

/// Sets the flood and churn flags of a successful poll (`stored.inserted` already set) and
/// returns the feed's warning, if any. Both backends write it.
pub(super) fn flood_and_churn(
    stored: &mut PollStored,
    churned: usize,
    listed: usize,
    poll: &PollRecord<'_>,
) -> Option<String> {
    stored.flood = stored.inserted.new > poll.flood_at;
    stored.churned = churned;
    stored.churning = churned * 2 > listed;
    let flood = stored.flood.then(|| {
        format!(
            "flood: {} new items in one poll (more than {}); all stored and matched",
            stored.inserted.new, poll.flood_at
        )
    });
    let churn = stored.churning.then(|| {
        format!(
            "guid churn: {churned} of {listed} listed items came back under new ids (known by \
             link or headline, not alerted again)"
        )
    });
    match (flood, churn) {
        (Some(f), Some(c)) => Some(format!("{f}; {c}")),
        (f, c) => f.or(c),
    }
}

/// What a health notice says, from the poll that produced it.
pub(super) fn notice_detail(kind: NoticeKind, poll: &PollRecord<'_>) -> String {
    match (kind, poll.result) {
        (NoticeKind::Failing, PollResult::Failed { error }) => error.to_string(),
        (NoticeKind::Silent, _) => "nothing new for much longer than usual".to_string(),
        _ => String::new(),
    }
}

/// A 301/308 target seen this poll: moves the effective URL once the same target was seen on two
/// successful polls in a row. No permanent redirect this time resets the count.
fn note_redirect(
    tx: &Transaction<'_>,
    feed: &str,
    target: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(target) = target else {
        // Nearly always clear already: then the row is left alone, not rewritten (issue 22).
        tx.prepare_cached(
            "UPDATE feeds SET redirect_target = NULL, redirect_seen = 0
             WHERE name = ?1 AND (redirect_target IS NOT NULL OR redirect_seen != 0)",
        )?
        .execute([feed])?;
        return Ok(None);
    };
    let (previous, seen): (Option<String>, u32) = tx
        .prepare_cached("SELECT redirect_target, redirect_seen FROM feeds WHERE name = ?1")?
        .query_row([feed], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let seen = if previous.as_deref() == Some(target) {
        seen + 1
    } else {
        1
    };
    if seen >= REDIRECT_REPEATS {
        tx.prepare_cached(
            "UPDATE feeds SET effective_url = ?2, redirect_target = NULL, redirect_seen = 0
             WHERE name = ?1",
        )?
        .execute(params![feed, target])?;
        return Ok(Some(target.to_string()));
    }
    tx.prepare_cached("UPDATE feeds SET redirect_target = ?2, redirect_seen = ?3 WHERE name = ?1")?
        .execute(params![feed, target, seen])?;
    Ok(None)
}

/// Consecutive polls that must see the same permanent redirect before the stored URL moves: one
/// misconfigured response should not relocate a feed for good.
pub const REDIRECT_REPEATS: u32 = 2;

fn assess_health(
    tx: &Transaction<'_>,
    feed: &str,
    now: DateTime<Utc>,
    thresholds: &Thresholds,
) -> Result<(Health, Option<NoticeKind>, u32), StoreError> {
    let input = tx
        .prepare_cached(
            "SELECT health, error_count, failing_since, last_new_item, cadence, cadence_samples
             FROM feeds WHERE name = ?1",
        )?
        .query_row([feed], |r| {
            Ok(HealthInput {
                health: Health::parse(&r.get::<_, String>(0)?),
                error_count: r.get(1)?,
                failing_since: r.get::<_, Option<i64>>(2)?.map(from_ts),
                last_new_item: r.get::<_, Option<i64>>(3)?.map(from_ts),
                cadence: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(|c| u64::try_from(c).ok())
                    .map(Duration::from_secs),
                cadence_samples: r.get(5)?,
                now,
            })
        })
        .optional()?;
    let Some(input) = input else {
        return Ok((Health::Ok, None, 0));
    };
    let errors = input.error_count;
    let (health, notice) = feed_health::assess(&input, thresholds);
    Ok((health, notice, errors))
}

/// A due time in whole seconds, rounded up: stored rounded down, a feed was polled up to a second
/// before its `min_interval` or Retry-After had passed.
pub(super) fn ts_up(t: DateTime<Utc>) -> i64 {
    t.timestamp()
        .saturating_add(i64::from(t.timestamp_subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, fetched, on_both_backends, poll, t};
    use super::*;
    use crate::store::Store;

    on_both_backends! {
        fn second_insert_of_the_same_items_is_not_new(s) {
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "f", "https://example.org/feed");
            let items = [art("a", Some("2025-03-10T10:00:00Z")), art("b", None)];
            assert_eq!(
                poll(s, "f", &items, now, DAY),
                Inserted {
                    new: 2,
                    alertable: 2
                }
            );
            let items2 = [art("b", None), art("c", Some("2025-03-10T11:00:00Z"))];
            assert_eq!(
                poll(s, "f", &items2, now, DAY),
                Inserted {
                    new: 1,
                    alertable: 1
                }
            );
            let keys: Vec<String> = s
                .pending_articles()
                .unwrap()
                .into_iter()
                .map(|p| p.article.key)
                .collect();
            assert_eq!(keys, ["a", "b", "c"]);
        }
    }

    on_both_backends! {
        fn first_poll_stores_old_items_as_seen_but_later_polls_alert_on_everything(s) {
            // (key, published, alertable on the first poll)
            let cases = [
                ("fresh", Some("2025-03-10T00:00:00Z"), true),
                ("edge", Some("2025-03-09T12:00:00Z"), true),
                ("old", Some("2025-03-09T11:59:59Z"), false),
                ("ancient", Some("2020-01-01T00:00:00Z"), false),
                ("undated", None, true),
            ];
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "f", "https://example.org/feed");
            let items: Vec<Article> = cases.iter().map(|(k, p, _)| art(k, *p)).collect();
            let expect_alertable = cases.iter().filter(|c| c.2).count();
            assert_eq!(
                poll(s, "f", &items, now, DAY),
                Inserted {
                    new: 5,
                    alertable: expect_alertable
                }
            );
            let pending: Vec<String> = s
                .pending_articles()
                .unwrap()
                .into_iter()
                .map(|p| p.article.key)
                .collect();
            let expected: Vec<&str> = cases.iter().filter(|c| c.2).map(|c| c.0).collect();
            assert_eq!(pending, expected);

            // After the first successful poll, even an old item is news.
            let later = [art("late-but-old", Some("2019-01-01T00:00:00Z"))];
            assert_eq!(
                poll(s, "f", &later, now, DAY),
                Inserted {
                    new: 1,
                    alertable: 1
                }
            );
        }
    }

    on_both_backends! {
        fn a_failed_first_poll_keeps_the_feed_new(s) {
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "f", "https://example.org/feed");
            let none = Validators::default();
            for error in ["HTTP status 500", "HTTP status 503"] {
                let mut failed = fetched(None, &none, &[], now, DAY);
                failed.result = PollResult::Failed { error };
                s.record_poll("f", &failed).unwrap();
            }
            let st = s.feed_state("f").unwrap().unwrap();
            assert_eq!(
                (st.error_count, st.last_error.as_deref()),
                (2, Some("HTTP status 503"))
            );
            let items = [art("old", Some("2020-01-01T00:00:00Z"))];
            let v = Validators {
                etag: Some("\"x\"".into()),
                last_modified: None,
            };
            let got = s
                .record_poll("f", &fetched(Some("Feed"), &v, &items, now, DAY))
                .unwrap();
            assert_eq!(
                got.inserted,
                Inserted {
                    new: 1,
                    alertable: 0
                }
            );
            let st = s.feed_state("f").unwrap().unwrap();
            assert_eq!(st.error_count, 0);
            assert_eq!(st.last_error, None);
            assert_eq!(st.validators, v);
            assert_eq!(st.title.as_deref(), Some("Feed"));
            assert_eq!(st.last_success, Some(now));
        }
    }

    on_both_backends! {
        /// A batch of mostly 304s (one statement for all of them on PostgreSQL) leaves each
        /// feed as one poll at a time does: schedule, errors, health and its notice.
        fn a_batch_of_not_modified_polls_updates_each_feed(s) {
            use crate::policy::feed_health::NoticeKind;
            let now = t("2025-03-10T12:00:00Z");
            let v = Validators {
                etag: Some("\"e\"".into()),
                last_modified: None,
            };
            for f in ["a", "b", "c", "d"] {
                feed(s, f, &format!("https://{f}.example/"));
                let items = [art(f, None)];
                s.record_poll(f, &fetched(Some("T"), &v, &items, now - DAY * 3, DAY))
                    .expect("first poll");
            }
            let mut failed = fetched(None, &v, &[], now - DAY * 2, DAY);
            failed.result = PollResult::Failed { error: "HTTP status 503" };
            s.record_poll("d", &failed).expect("d fails");
            failed.now = now;
            let failing = s.record_poll("d", &failed).expect("d fails on");
            assert_eq!(failing.notice, Some(NoticeKind::Failing));
            let later = now + chrono::Duration::hours(1);
            let mut unchanged = fetched(None, &v, &[], later, DAY);
            unchanged.result = PollResult::NotModified {
                permanent_redirect: None,
            };
            unchanged.next_due = later + chrono::Duration::hours(2);
            let mut fails = unchanged;
            fails.result = PollResult::Failed { error: "HTTP status 503" };
            let batch = [("a", unchanged), ("b", fails), ("c", unchanged), ("d", unchanged)];
            let stored = s.record_polls(&batch).expect("the batch");
            let got: Vec<(u32, Option<NoticeKind>)> =
                stored.iter().map(|p| (p.error_count, p.notice)).collect();
            assert_eq!(
                got,
                [(0, None), (1, None), (0, None), (0, Some(NoticeKind::Recovered))]
            );
            for (f, errors, success) in [("a", 0, later), ("b", 1, now - DAY * 3), ("c", 0, later)] {
                let st = s.feed_state(f).expect("read").expect("stored");
                assert_eq!(
                    (st.error_count, st.last_success, st.next_due, &st.validators),
                    (errors, Some(success), Some(unchanged.next_due), &v),
                    "feed {f}"
                );
            }
        }
    }

    #[test]
    fn a_batch_of_polls_is_stored_whole_or_not_at_all() {
        let feeds = ["a", "b", "c"];
        // (feed whose state update fails, articles and etag stored per feed afterwards)
        let whole = (2, Some("\"v\"".to_string()));
        let none = (0, None);
        let cases = [
            (None, [whole.clone(), whole.clone(), whole]),
            (Some("a"), [none.clone(), none.clone(), none.clone()]),
            (Some("c"), [none.clone(), none.clone(), none]),
        ];
        for (failing, want) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut s = Store::open(dir.path()).expect("open");
            let urls: Vec<String> = feeds
                .iter()
                .map(|f| format!("https://{f}.example/"))
                .collect();
            s.ensure_feeds(feeds.iter().copied().zip(urls.iter().map(String::as_str)))
                .expect("feeds");
            if let Some(f) = failing {
                s.conn()
                    .execute_batch(&format!(
                        "CREATE TRIGGER tear BEFORE UPDATE ON feeds
                         WHEN NEW.name = '{f}' AND NEW.etag IS NOT NULL
                         BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                    ))
                    .expect("trigger");
            }
            let items = [art("x", None), art("y", None)];
            let v = Validators {
                etag: Some("\"v\"".into()),
                last_modified: None,
            };
            let now = t("2026-02-25T06:00:00Z");
            let polls: Vec<(&str, PollRecord<'_>)> = feeds
                .iter()
                .map(|f| (*f, fetched(None, &v, &items, now, DAY)))
                .collect();
            let result = s.record_polls(&polls);
            match failing {
                None => {
                    let news: Vec<usize> = result
                        .expect("batch")
                        .iter()
                        .map(|p| p.inserted.new)
                        .collect();
                    assert_eq!(news, [2, 2, 2]);
                }
                Some(f) => assert!(result.is_err(), "failing {f}: the error was lost"),
            }
            for (f, want) in feeds.iter().zip(want) {
                let stored: usize = s
                    .conn()
                    .query_row("SELECT COUNT(*) FROM articles WHERE feed = ?1", [f], |r| {
                        r.get(0)
                    })
                    .expect("count");
                let etag = s
                    .feed_record(f)
                    .ok()
                    .flatten()
                    .and_then(|r| r.validators.etag);
                assert_eq!((stored, etag), want, "failing {failing:?}, feed {f}");
            }
        }
    }
}
