//! The `polls` table: one row per poll of a feed (time, outcome, HTTP status, bytes, items, new
//! items, duration, error), written by the poll write path (`polls::record_poll_in`) in the
//! poll's own transaction and pruned there to the last `HISTORY_PER_FEED` of the feed; read by
//! the console's feed page. No other writer. PostgreSQL's twin is `pg/poll_history.rs`; what a
//! row holds is decided once, here (`HistoryRow`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::polls::PollRecord;
use super::{PollResult, Sqlite, StoreError, from_ts, ts};

/// Polls kept per feed; older rows go as new ones come.
pub const HISTORY_PER_FEED: usize = 200;

/// What the fetch measured about one poll, beside its result: recorded in the feed's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    /// The final response's HTTP status; `None` without one (a network error, a file feed).
    pub status: Option<u16>,
    /// The body's size when one was read.
    pub bytes: Option<u64>,
    /// From the request to the response read (parsing not included).
    pub duration: Duration,
}

/// One recorded poll, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollEntry {
    pub at: DateTime<Utc>,
    /// `fetched`, `not modified` or `failed`.
    pub outcome: String,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    /// Items the feed listed (fetched polls only).
    pub items: Option<u64>,
    pub new_items: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// One poll as its history row stores it (both backends write these columns).
pub(super) struct HistoryRow<'a> {
    pub(super) at: i64,
    pub(super) outcome: &'static str,
    pub(super) status: Option<i64>,
    pub(super) bytes: Option<i64>,
    pub(super) items: Option<i64>,
    pub(super) new_items: i64,
    pub(super) duration_ms: i64,
    pub(super) error: Option<&'a str>,
}

impl<'a> HistoryRow<'a> {
    pub(super) fn of(poll: &PollRecord<'a>, new_items: usize) -> HistoryRow<'a> {
        let (outcome, items, error) = match poll.result {
            PollResult::Fetched { articles, .. } => {
                ("fetched", Some(big(articles.len() as u64)), None)
            }
            PollResult::NotModified { .. } => ("not modified", None, None),
            PollResult::Failed { error } => ("failed", None, Some(error)),
        };
        let s = poll.stats;
        HistoryRow {
            at: ts(poll.now),
            outcome,
            status: s.status.map(i64::from),
            bytes: s.bytes.map(big),
            items,
            new_items: big(new_items as u64),
            duration_ms: big(u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX)),
            error,
        }
    }
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back to the model's type (never negative: only the write path writes them).
pub(super) fn count(n: i64) -> u64 {
    n.max(0).cast_unsigned()
}

/// Appends the poll to `feed`'s history and drops what is beyond `HISTORY_PER_FEED`, inside the
/// poll's transaction.
pub(super) fn record_in(
    tx: &Transaction<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
    new_items: usize,
) -> Result<(), StoreError> {
    let r = HistoryRow::of(poll, new_items);
    tx.prepare_cached(
        "INSERT INTO polls (feed, at, outcome, status, bytes, items, new_items, duration_ms, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        feed,
        r.at,
        r.outcome,
        r.status,
        r.bytes,
        r.items,
        r.new_items,
        r.duration_ms,
        r.error,
    ])?;
    tx.prepare_cached(
        "DELETE FROM polls WHERE feed = ?1 AND id <=
             (SELECT id FROM polls WHERE feed = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![feed, HISTORY_PER_FEED as i64])?;
    Ok(())
}

impl Sqlite {
    /// `feed`'s last `limit` polls, newest first.
    pub fn poll_history(&self, feed: &str, limit: usize) -> Result<Vec<PollEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, outcome, status, bytes, items, new_items, duration_ms, error
             FROM polls WHERE feed = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![feed, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok(PollEntry {
                    at: from_ts(r.get(0)?),
                    outcome: r.get(1)?,
                    status: r.get(2)?,
                    bytes: r.get::<_, Option<i64>>(3)?.map(count),
                    items: r.get::<_, Option<i64>>(4)?.map(count),
                    new_items: count(r.get(5)?),
                    duration_ms: count(r.get(6)?),
                    error: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, fetched, on_both_backends, t};
    use super::*;
    use crate::model::Validators;

    on_both_backends! {
        fn every_poll_is_recorded_with_its_figures_and_pruned_to_the_last_ones(s) {
            feed(s, "f", "https://e.example/f.xml");
            let v = Validators::default();
            let items = [art("a", None), art("b", None)];
            let now = t("2026-03-01T10:00:00Z");
            let mut ok = fetched(None, &v, &items, now, DAY);
            ok.stats = PollStats {
                status: Some(200),
                bytes: Some(1234),
                duration: Duration::from_millis(87),
            };
            s.record_poll("f", &ok).expect("poll");
            let mut failed = ok;
            failed.now = now + chrono::Duration::minutes(5);
            failed.result = PollResult::Failed {
                error: "HTTP status 503 Service Unavailable",
            };
            failed.stats = PollStats {
                status: Some(503),
                bytes: None,
                duration: Duration::from_millis(12),
            };
            s.record_poll("f", &failed).expect("poll");
            let h = s.poll_history("f", 10).expect("history");
            assert_eq!(h.len(), 2);
            assert_eq!(h[0].outcome, "failed");
            assert_eq!(h[0].status, Some(503));
            assert_eq!(
                h[0].error.as_deref(),
                Some("HTTP status 503 Service Unavailable")
            );
            assert_eq!(
                (h[1].outcome.as_str(), h[1].status, h[1].bytes, h[1].items),
                ("fetched", Some(200), Some(1234), Some(2))
            );
            assert_eq!((h[1].new_items, h[1].duration_ms), (2, 87));
            assert_eq!(h[1].at, now);

            // Again: nothing new. Then past the cap, only the newest are kept.
            for i in 0..HISTORY_PER_FEED + 5 {
                let mut p = ok;
                p.now = now + chrono::Duration::minutes(10 + i as i64);
                s.record_poll("f", &p).expect("poll");
            }
            let h = s.poll_history("f", HISTORY_PER_FEED + 50).expect("history");
            assert_eq!(h.len(), HISTORY_PER_FEED);
            assert_eq!(h[0].new_items, 0, "the items were known");
            assert_eq!(
                h[0].at,
                now + chrono::Duration::minutes(10 + HISTORY_PER_FEED as i64 + 4)
            );
            assert!(s.poll_history("other", 10).expect("history").is_empty());
        }

        /// One batch of polls (one transaction; on PostgreSQL one statement for the batch's
        /// rows and one for its trim): each feed's polls in order, each feed trimmed alone.
        fn a_batch_of_polls_is_recorded_in_order_and_trimmed_per_feed(s) {
            feed(s, "f", "https://e.example/f.xml");
            feed(s, "g", "https://e.example/g.xml");
            let v = Validators::default();
            let now = t("2026-03-01T10:00:00Z");
            let at = |m: i64| now + chrono::Duration::minutes(m);
            let polled = |m: i64| {
                let mut p = fetched(None, &v, &[], at(m), DAY);
                p.stats.bytes = Some(u64::try_from(m).expect("positive"));
                p
            };
            let full: Vec<_> = (1..=HISTORY_PER_FEED as i64).map(polled).collect();
            let firsts: Vec<(&str, PollRecord<'_>)> = full.iter().map(|p| ("f", *p)).collect();
            s.record_polls(&firsts).expect("a full history");
            let batch = [("f", polled(1000)), ("g", polled(1001)), ("f", polled(1002))];
            s.record_polls(&batch).expect("the batch");
            let f = s.poll_history("f", HISTORY_PER_FEED + 10).expect("history");
            assert_eq!(f.len(), HISTORY_PER_FEED);
            let newest: Vec<Option<u64>> = f.iter().take(3).map(|e| e.bytes).collect();
            assert_eq!(newest, [Some(1002), Some(1000), Some(HISTORY_PER_FEED as u64)]);
            assert_eq!(f.last().map(|e| e.bytes), Some(Some(3)), "the two oldest went");
            let g = s.poll_history("g", 10).expect("history");
            assert_eq!(g.iter().map(|e| e.at).collect::<Vec<_>>(), [at(1001)]);
        }
    }
}
