//! The `polls` table on PostgreSQL: each feed's last `HISTORY_PER_FEED` polls, appended and
//! pruned in the poll's own transaction (`pg/polls.rs` calls `record_in`), read by the console's
//! feed page. The row is SQLite's (`store/poll_history.rs` decides what it holds).

use super::conn::CachedTx;
use super::{Postgres, from_ts};
use crate::store::poll_history::{HistoryRow, count};
use crate::store::{HISTORY_PER_FEED, PollEntry, PollRecord, StoreError};

/// Appends the poll to `feed`'s history and drops what is beyond `HISTORY_PER_FEED`.
pub(super) fn record_in(
    tx: &mut CachedTx<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
    new_items: usize,
) -> Result<(), StoreError> {
    let r = HistoryRow::of(poll, new_items);
    tx.execute(
        "INSERT INTO polls (feed, at, outcome, status, bytes, items, new_items, duration_ms, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &feed,
            &r.at,
            &r.outcome,
            &r.status,
            &r.bytes,
            &r.items,
            &r.new_items,
            &r.duration_ms,
            &r.error,
        ],
    )?;
    tx.execute(
        "DELETE FROM polls WHERE feed = $1 AND id <=
             (SELECT id FROM polls WHERE feed = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&feed, &(HISTORY_PER_FEED as i64)],
    )?;
    Ok(())
}

impl Postgres {
    /// `feed`'s last `limit` polls, newest first.
    pub(crate) fn poll_history(
        &self,
        feed: &str,
        limit: usize,
    ) -> Result<Vec<PollEntry>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT at, outcome, status, bytes, items, new_items, duration_ms, error
             FROM polls WHERE feed = $1 ORDER BY id DESC LIMIT $2",
            &[&feed, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        Ok(rows
            .iter()
            .map(|r| PollEntry {
                at: from_ts(r.get(0)),
                outcome: r.get(1),
                status: r
                    .get::<_, Option<i64>>(2)
                    .and_then(|s| u16::try_from(s).ok()),
                bytes: r.get::<_, Option<i64>>(3).map(count),
                items: r.get::<_, Option<i64>>(4).map(count),
                new_items: count(r.get(5)),
                duration_ms: count(r.get(6)),
                error: r.get(7),
            })
            .collect())
    }
}
