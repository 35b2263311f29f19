//! The `polls` table on PostgreSQL: each feed's last `HISTORY_PER_FEED` polls, appended and
//! pruned in the poll batch's own transaction (`pg/polls.rs` calls `record_all`), read by the
//! console's feed page. The row is SQLite's (`store/poll_history.rs` decides what it holds).

use super::conn::CachedTx;
use super::{Postgres, from_ts};
use crate::store::poll_history::{HistoryRow, count};
use crate::store::{HISTORY_PER_FEED, PollEntry, PollRecord, StoreError};

/// Appends a batch's polls, in order, to their feeds' histories and drops what is beyond
/// `HISTORY_PER_FEED` for those feeds: two statements per batch, not two per poll.
pub(super) fn record_all(
    tx: &mut CachedTx<'_>,
    polls: &[(&str, &PollRecord<'_>, usize)],
) -> Result<(), StoreError> {
    if polls.is_empty() {
        return Ok(());
    }
    let rows: Vec<HistoryRow<'_>> = polls
        .iter()
        .map(|(_, poll, new_items)| HistoryRow::of(poll, *new_items))
        .collect();
    let feeds: Vec<&str> = polls.iter().map(|(feed, _, _)| *feed).collect();
    let col = |f: fn(&HistoryRow<'_>) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.error).collect();
    // In the batch's order, so that ids rise as they did one poll at a time.
    tx.execute(
        "INSERT INTO polls (feed, at, outcome, status, bytes, items, new_items, duration_ms, error)
         SELECT u.feed, u.at, u.outcome, u.status, u.bytes, u.items, u.new_items, u.duration_ms,
                u.error
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
              WITH ORDINALITY AS u(feed, at, outcome, status, bytes, items, new_items,
                                   duration_ms, error, ord)
         ORDER BY u.ord",
        &[
            &feeds,
            &col(|r| Some(r.at)),
            &outcomes,
            &col(|r| r.status),
            &col(|r| r.bytes),
            &col(|r| r.items),
            &col(|r| Some(r.new_items)),
            &col(|r| Some(r.duration_ms)),
            &errors,
        ],
    )?;
    tx.execute(
        "DELETE FROM polls p USING (
             SELECT id FROM (
                 SELECT id, row_number() OVER (PARTITION BY feed ORDER BY id DESC) AS n
                 FROM polls WHERE feed = ANY($1)
             ) ranked WHERE n > $2
         ) old WHERE p.id = old.id",
        &[&feeds, &(HISTORY_PER_FEED as i64)],
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
