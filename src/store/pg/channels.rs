//! The `channel_outbox` table on PostgreSQL: SQLite's `channels.rs` with `$n` placeholders. A
//! row is written in its composition's transaction (`compose.rs`), with a spike's state
//! (`spikes.rs`), or alone (`queue_channel_message`). The key a receiver sees is SQLite's:
//! row id and creation time.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::{Postgres, from_ts, ts, unsigned};
use crate::model::{ChannelCounts, ChannelMessage, OutboxCounts, OutboxStatus};
use crate::store::StoreError;

/// The table's one INSERT (compositions, spikes, test messages); returns the row's id.
pub(super) fn insert(
    conn: &mut impl GenericClient,
    digest: Option<i64>,
    source: &str,
    channel: &str,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(conn
        .query_one(
            "INSERT INTO channel_outbox (digest, source, channel, payload, next_attempt, created)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            &[&digest, &source, &channel, &payload, &ts(now)],
        )?
        .get(0))
}

impl Postgres {
    pub(crate) fn queue_channel_message(
        &mut self,
        source: &str,
        channel: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        insert(&mut *self.conn()?, None, source, channel, payload, now)
    }

    pub(crate) fn due_channel_messages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        self.channel_where("status = 'queued' AND next_attempt <= $1", ts(now))
    }

    pub(crate) fn channel_message(&self, id: i64) -> Result<ChannelMessage, StoreError> {
        self.channel_where("id = $1", id)?
            .pop()
            .ok_or(StoreError::NoSuchMessage(id))
    }

    pub(crate) fn failed_channel_messages(
        &self,
        limit: usize,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        self.channel_rows(
            "status = 'failed' ORDER BY id DESC LIMIT $1",
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
    }

    fn channel_where(&self, cond: &str, arg: i64) -> Result<Vec<ChannelMessage>, StoreError> {
        self.channel_rows(&format!("{cond} ORDER BY id"), arg)
    }

    /// The messages `tail` (a condition on `$1`, with its order) selects.
    fn channel_rows(&self, tail: &str, arg: i64) -> Result<Vec<ChannelMessage>, StoreError> {
        let rows = self.conn()?.query(
            &format!(
                "SELECT id, channel, source, payload, status, attempts, next_attempt,
                        last_error, created
                 FROM channel_outbox WHERE {tail}"
            ),
            &[&arg],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                ChannelMessage {
                    id,
                    channel: r.get(1),
                    source: r.get(2),
                    payload: r.get(3),
                    status: parse_status(r.get(4)),
                    attempts: unsigned(r.get(5)),
                    next_attempt: from_ts(r.get(6)),
                    last_error: r.get(7),
                    key: format!("newswatch-{}-{id}", r.get::<_, i64>(8)),
                    created: from_ts(r.get(8)),
                }
            })
            .collect())
    }

    pub(crate) fn mark_channel_sent(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_channel_status(id, "sent", None, Some(now), None)
    }

    pub(crate) fn mark_channel_retry(
        &mut self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_channel_status(id, "queued", Some(error), None, Some(next_attempt))
    }

    pub(crate) fn mark_channel_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.set_channel_status(id, "failed", Some(error), None, None)
    }

    fn set_channel_status(
        &mut self,
        id: i64,
        status: &str,
        error: Option<&str>,
        sent: Option<DateTime<Utc>>,
        next_attempt: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let n = self.conn()?.execute(
            "UPDATE channel_outbox SET status = $2, attempts = attempts + 1, last_error = $3,
                                       sent = COALESCE($4, sent),
                                       next_attempt = COALESCE($5, next_attempt)
             WHERE id = $1",
            &[&id, &status, &error, &sent.map(ts), &next_attempt.map(ts)],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchMessage(id));
        }
        Ok(())
    }

    pub(crate) fn next_channel_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn()?
            .query_one(
                "SELECT MIN(next_attempt) FROM channel_outbox WHERE status = 'queued'",
                &[],
            )?
            .get::<_, Option<i64>>(0)
            .map(from_ts))
    }

    pub(crate) fn channel_counts(&self) -> Result<Vec<ChannelCounts>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT channel,
                    COUNT(*) FILTER (WHERE status = 'queued'),
                    COUNT(*) FILTER (WHERE status = 'sent'),
                    COUNT(*) FILTER (WHERE status = 'failed'),
                    (SELECT last_error FROM channel_outbox e
                      WHERE e.channel = o.channel AND e.status != 'sent'
                        AND e.last_error IS NOT NULL
                      ORDER BY e.id DESC LIMIT 1),
                    MAX(sent),
                    COUNT(*) FILTER (WHERE status = 'queued' AND attempts > 0),
                    MIN(next_attempt) FILTER (WHERE status = 'queued')
             FROM channel_outbox o GROUP BY channel ORDER BY channel",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| ChannelCounts {
                channel: r.get(0),
                counts: OutboxCounts {
                    queued: unsigned(r.get(1)),
                    sent: unsigned(r.get(2)),
                    failed: unsigned(r.get(3)),
                },
                last_error: r.get(4),
                last_sent: r.get::<_, Option<i64>>(5).map(from_ts),
                retrying: unsigned(r.get(6)),
                next_attempt: r.get::<_, Option<i64>>(7).map(from_ts),
            })
            .collect())
    }
}

fn parse_status(s: &str) -> OutboxStatus {
    match s {
        "sent" => OutboxStatus::Sent,
        "failed" => OutboxStatus::Failed,
        // The CHECK constraint admits only the three values.
        _ => OutboxStatus::Queued,
    }
}
