//! The `channel_outbox` table: messages owed to `[[channel]]`s, and what became of each attempt.
//! A row is written in the transaction that composes its email (`ComposeTx::queue_channels`) or
//! alone in `FULL` sync (`queue_channel_message`), so it is durable before its first attempt.
//! Sending is `pipeline::channels`'.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::compose::SqliteCompose;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{ChannelCounts, ChannelMessage, OutboxCounts, OutboxStatus};

/// A message's idempotency key: its row id and creation time, so a database started afresh
/// never reuses a key a receiver has already seen.
fn key(id: i64, created: i64) -> String {
    format!("newswatch-{created}-{id}")
}

/// The table's one INSERT (compositions, spikes, test messages).
pub(super) fn insert(
    conn: &Connection,
    digest: Option<i64>,
    source: &str,
    channel: &str,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO channel_outbox (digest, source, channel, payload, next_attempt, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![digest, source, channel, payload, ts(now)],
    )?;
    Ok(conn.last_insert_rowid())
}

impl SqliteCompose<'_> {
    /// Queues `payload` for each of `channels`, in the composition's transaction (it commits
    /// with the email and the matches it carries, or not at all).
    pub fn queue_channels(
        &mut self,
        digest: i64,
        source: &str,
        channels: &[String],
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for channel in channels {
            insert(&self.tx, Some(digest), source, channel, payload, now)?;
        }
        Ok(())
    }
}

impl Sqlite {
    /// Queues one message alone (a spike alert, `channels test`), durable when this returns.
    pub fn queue_channel_message(
        &mut self,
        source: &str,
        channel: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        let id = insert(&tx, None, source, channel, payload, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Queued channel messages due at `now`, oldest first.
    pub fn due_channel_messages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        self.channel_where(
            "status = 'queued' AND next_attempt <= ?1 ORDER BY id",
            ts(now),
        )
    }

    /// The newest `limit` messages that failed for good, newest first (the console lists them
    /// with a retry button).
    pub fn failed_channel_messages(&self, limit: usize) -> Result<Vec<ChannelMessage>, StoreError> {
        self.channel_where(
            "status = 'failed' ORDER BY id DESC LIMIT ?1",
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
    }

    pub fn channel_message(&self, id: i64) -> Result<ChannelMessage, StoreError> {
        self.channel_where("id = ?1", id)?
            .pop()
            .ok_or(StoreError::NoSuchMessage(id))
    }

    fn channel_where(&self, cond: &str, arg: i64) -> Result<Vec<ChannelMessage>, StoreError> {
        let sql = format!(
            "SELECT id, channel, source, payload, status, attempts, next_attempt, last_error, created
             FROM channel_outbox WHERE {cond}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([arg], |r| {
            let id: i64 = r.get(0)?;
            Ok(ChannelMessage {
                id,
                channel: r.get(1)?,
                source: r.get(2)?,
                payload: r.get(3)?,
                status: parse_status(&r.get::<_, String>(4)?),
                attempts: r.get(5)?,
                next_attempt: from_ts(r.get(6)?),
                last_error: r.get(7)?,
                key: key(id, r.get(8)?),
                created: from_ts(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The service accepted message `id`.
    pub fn mark_channel_sent(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        set_status(&self.conn, id, "sent", None, Some(now), None)
    }

    /// A transient failure: try again at `next_attempt`.
    pub fn mark_channel_retry(
        &mut self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_status(
            &self.conn,
            id,
            "queued",
            Some(error),
            None,
            Some(next_attempt),
        )
    }

    /// A permanent failure: kept, never retried automatically.
    pub fn mark_channel_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        set_status(&self.conn, id, "failed", Some(error), None, None)
    }

    /// The earliest time a queued channel message wants another attempt.
    pub fn next_channel_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(next_attempt) FROM channel_outbox WHERE status = 'queued'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(from_ts))
    }

    /// Each channel that has messages: counts by state, its newest error, its last delivery.
    /// Empty on a database older than the channel outbox (a read-only caller never migrates).
    pub fn channel_counts(&self) -> Result<Vec<ChannelCounts>, StoreError> {
        if self.schema_version()? < super::schema::channel_outbox_version() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT channel,
                    SUM(status = 'queued'), SUM(status = 'sent'), SUM(status = 'failed'),
                    (SELECT last_error FROM channel_outbox e
                      WHERE e.channel = o.channel AND e.status != 'sent' AND e.last_error IS NOT NULL
                      ORDER BY e.id DESC LIMIT 1),
                    MAX(sent),
                    SUM(status = 'queued' AND attempts > 0),
                    MIN(CASE WHEN status = 'queued' THEN next_attempt END)
             FROM channel_outbox o GROUP BY channel ORDER BY channel",
        )?;
        let rows = stmt.query_map([], |r| {
            let n = |i: usize| -> rusqlite::Result<usize> {
                Ok(usize::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
            };
            Ok(ChannelCounts {
                channel: r.get(0)?,
                counts: OutboxCounts {
                    queued: n(1)?,
                    sent: n(2)?,
                    failed: n(3)?,
                },
                retrying: n(6)?,
                next_attempt: r.get::<_, Option<i64>>(7)?.map(from_ts),
                last_error: r.get(4)?,
                last_sent: r.get::<_, Option<i64>>(5)?.map(from_ts),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

/// One status change of one message (the table's only UPDATE of `status`).
fn set_status(
    conn: &Connection,
    id: i64,
    status: &str,
    error: Option<&str>,
    sent: Option<DateTime<Utc>>,
    next_attempt: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE channel_outbox SET status = ?2, attempts = attempts + 1, last_error = ?3,
                                   sent = COALESCE(?4, sent),
                                   next_attempt = COALESCE(?5, next_attempt)
         WHERE id = ?1",
        params![id, status, error, sent.map(ts), next_attempt.map(ts)],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchMessage(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{on_both_backends, with_matches};
    use super::*;

    on_both_backends! {
        fn channel_messages_go_through_their_states_and_keep_their_key(s) {
            let now = with_matches(s);
            let a = s.queue_channel_message("test", "ops", "{}", now).unwrap();
            let b = s.queue_channel_message("test", "chat", "{}", now).unwrap();
            let due = s.due_channel_messages(now).unwrap();
            assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [a, b]);
            let key_a = due[0].key.clone();
            assert_ne!(key_a, due[1].key);

            let later = now + chrono::Duration::minutes(2);
            s.mark_channel_retry(a, "HTTP 503", later).unwrap();
            s.mark_channel_failed(b, "HTTP 400").unwrap();
            assert!(s.due_channel_messages(now).unwrap().is_empty());
            assert_eq!(s.next_channel_attempt().unwrap(), Some(later));
            let counts = s.channel_counts().unwrap();
            assert_eq!(
                (counts[1].counts.queued, counts[1].retrying),
                (1, 1),
                "ops: one queued, retrying"
            );
            assert_eq!(counts[1].next_attempt, Some(later));
            assert_eq!(counts[0].next_attempt, None, "chat: nothing queued");
            let failed = s.failed_channel_messages(10).unwrap();
            assert_eq!(failed.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
            assert_eq!(failed[0].created, now);
            let m = s.due_channel_messages(later).unwrap().pop().unwrap();
            assert_eq!((m.id, m.attempts, m.key.as_str()), (a, 1, key_a.as_str()));
            s.mark_channel_sent(a, later).unwrap();
            assert_eq!(s.channel_message(a).unwrap().status, OutboxStatus::Sent);

            let counts = s.channel_counts().unwrap();
            assert_eq!(counts.len(), 2);
            assert_eq!(counts[0].channel, "chat");
            assert_eq!(
                (counts[0].counts.failed, counts[0].last_error.as_deref()),
                (1, Some("HTTP 400"))
            );
            assert_eq!(
                (counts[1].counts.sent, counts[1].last_sent),
                (1, Some(later))
            );
            assert_eq!(s.next_channel_attempt().unwrap(), None);
            assert!(matches!(
                s.mark_channel_sent(999, now),
                Err(StoreError::NoSuchMessage(999))
            ));
        }
    }
}
