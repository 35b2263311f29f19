//! The claim both shared outboxes use (`outbox` for email, `channel_outbox` for `[[channel]]`
//! messages): a due row is claimed by one node until `now + lease` (`FOR UPDATE SKIP LOCKED`),
//! renewed just before its send, and a node that no longer holds it sends nothing.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::{Postgres, ts};
use crate::store::StoreError;

/// When this node may next try a queued row: its next attempt, or later, when another node's
/// running claim on it ends (`$1` is this node). Without the second, a node would wake at once,
/// again and again, for a message another node is sending.
pub(super) const NEXT_TRY: &str = "CASE WHEN claim_node IS NOT NULL AND claim_node <> $1
                                        AND claim_until > next_attempt
                                   THEN claim_until ELSE next_attempt END";

impl Postgres {
    fn until(&self, now: DateTime<Utc>) -> i64 {
        ts(now + chrono::Duration::from_std(self.lease).unwrap_or_default())
    }

    /// Claims for this node the queued rows of `table` due at `now` that no other node holds a
    /// running claim on, and returns their `columns`.
    pub(super) fn claim_due(
        &self,
        table: &str,
        columns: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.conn()?.query(
            &format!(
                "UPDATE {table} SET claim_node = $1, claim_until = $2
                 WHERE id IN (
                     SELECT id FROM {table}
                     WHERE status = 'queued' AND next_attempt <= $3
                       AND (claim_node IS NULL OR claim_node = $1 OR claim_until <= $3)
                     ORDER BY id
                     FOR UPDATE SKIP LOCKED)
                 RETURNING {columns}"
            ),
            &[&self.node, &self.until(now), &ts(now)],
        )?)
    }

    /// Renews this node's claim on queued row `id` of `table` until `now + lease`: `true` only
    /// if the node still holds it. Asked just before sending; an error (the connection is
    /// gone) is a "no" too: the caller sends nothing it cannot prove it holds.
    pub(super) fn renew_claim(
        &self,
        table: &str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self.conn()?.execute(
            &format!(
                "UPDATE {table} SET claim_until = $3
                 WHERE id = $1 AND claim_node = $2 AND status = 'queued' AND claim_until > $4"
            ),
            &[&id, &self.node, &self.until(now), &ts(now)],
        )?;
        Ok(n == 1)
    }

    /// The earliest time this node may next try a queued row of `table` (`NEXT_TRY`).
    pub(super) fn next_try(&self, table: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn()?
            .query_one(
                &format!("SELECT MIN({NEXT_TRY}) FROM {table} WHERE status = 'queued'"),
                &[&self.node],
            )?
            .get::<_, Option<i64>>(0)
            .map(super::from_ts))
    }
}
