//! The `outbox` table: composed emails waiting to be sent, and what became of each attempt. A row
//! is written only together with what it carries (`digests.rs`, `alerts.rs`), in `FULL` sync, so an
//! email is never lost between "composed" and "sent". Sending is `deliver`'s.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{AlertLatency, NewMessage, OutboxCounts, OutboxMessage, OutboxStatus};

impl Sqlite {
    /// Queued messages whose next attempt is due at `now`, oldest first. First commits every
    /// `sent` mark still owed (a message accepted while the disk was full): until those are
    /// durable this fails, so nothing is sent, least of all an accepted message again.
    pub fn due_messages(&mut self, now: DateTime<Utc>) -> Result<Vec<OutboxMessage>, StoreError> {
        self.commit_accepted()?;
        self.outbox_where("status = 'queued' AND next_attempt <= ?1", ts(now))
    }

    /// Retries the owed `sent` marks, oldest first; stops at the first that still fails.
    fn commit_accepted(&mut self) -> Result<(), StoreError> {
        while let Some(&(id, at)) = self.accepted.first() {
            match self.record_sent(id, at) {
                Ok(_) | Err(StoreError::NoSuchMessage(_)) => {
                    self.accepted.remove(0);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every queued message, oldest first (`status` lists them; nothing is committed).
    pub fn queued_messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        self.outbox_where("status = 'queued' AND id >= ?1", 0)
    }

    pub fn message(&self, id: i64) -> Result<OutboxMessage, StoreError> {
        self.outbox_where("id = ?1", id)?
            .pop()
            .ok_or(StoreError::NoSuchMessage(id))
    }

    fn outbox_where(&self, cond: &str, arg: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "SELECT id, digest_name, message_id, sender, recipients, raw, status, attempts,
                    next_attempt, last_error
             FROM outbox WHERE {cond} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([arg], |r| {
            Ok((
                OutboxMessage {
                    id: r.get(0)?,
                    digest_name: r.get(1)?,
                    message_id: r.get(2)?,
                    sender: r.get(3)?,
                    recipients: Vec::new(),
                    raw: r.get(5)?,
                    status: parse_status(&r.get::<_, String>(6)?),
                    attempts: r.get(7)?,
                    next_attempt: from_ts(r.get(8)?),
                    last_error: r.get(9)?,
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut m, recipients) = row?;
            m.recipients = serde_json::from_str(&recipients)?;
            out.push(m);
        }
        Ok(out)
    }

    /// The transport accepted message `id`: marks it sent and, for an alert, stamps its articles'
    /// alert time, in one transaction. Returns each alerted article's latency (none for a digest).
    /// If the mark cannot be committed, the store remembers it owes it and `due_messages` refuses
    /// to hand out anything until it is committed. The residual window: the process ending (a
    /// kill, a crash, a reload's new store) while a mark is owed sends the message once more,
    /// under the same Message-ID.
    pub fn mark_sent(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertLatency>, StoreError> {
        self.commit_accepted()
            .and_then(|()| self.record_sent(id, now))
            .inspect_err(|e| owe_sent_mark(&mut self.accepted, id, now, e))
    }

    /// `mark_sent`'s one transaction.
    fn record_sent(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertLatency>, StoreError> {
        let tx = self.conn.transaction()?;
        set_status(&tx, id, OutboxStatus::Sent, None, Some(now), None)?;
        let sent = now.timestamp_millis();
        tx.execute(
            "UPDATE alert_items SET sent_ms = ?2 WHERE outbox = ?1",
            params![id, sent],
        )?;
        let latencies = {
            let mut stmt = tx.prepare_cached(
                "SELECT a.seen_ms, m.matched_ms, a.published FROM alert_items i
                 JOIN matches m ON m.id = i.match_id JOIN articles a ON a.id = m.article
                 WHERE i.outbox = ?1",
            )?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (seen, matched, published) = row?;
                out.extend(AlertLatency::from_millis(seen, matched, sent, published));
            }
            out
        };
        tx.commit()?;
        Ok(latencies)
    }

    /// Latencies of the articles alerted since `since`, in the order they were sent.
    /// Empty on a database older than the latency columns (a read-only caller never migrates).
    pub fn alert_latencies(&self, since: DateTime<Utc>) -> Result<Vec<AlertLatency>, StoreError> {
        if self.schema_version()? < super::schema::LATENCY_VERSION {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT a.seen_ms, m.matched_ms, i.sent_ms, a.published FROM alert_items i
             JOIN matches m ON m.id = i.match_id JOIN articles a ON a.id = m.article
             WHERE i.sent_ms >= ?1 ORDER BY i.sent_ms",
        )?;
        let rows = stmt.query_map([since.timestamp_millis()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seen, matched, sent, published) = row?;
            out.extend(AlertLatency::from_millis(seen, matched, sent, published));
        }
        Ok(out)
    }

    /// A transient failure: try again at `next_attempt`.
    pub fn mark_retry(
        &mut self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_status(
            &self.conn,
            id,
            OutboxStatus::Queued,
            Some(error),
            None,
            Some(next_attempt),
        )
    }

    /// A permanent failure: the message is kept, never retried automatically.
    pub fn mark_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        set_status(
            &self.conn,
            id,
            OutboxStatus::Failed,
            Some(error),
            None,
            None,
        )
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
        let mut counts = OutboxCounts::default();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            let n = usize::try_from(n).unwrap_or(0);
            match parse_status(&status) {
                OutboxStatus::Queued => counts.queued = n,
                OutboxStatus::Sent => counts.sent = n,
                OutboxStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// The earliest time a queued message wants another attempt.
    pub fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(next_attempt) FROM outbox WHERE status = 'queued'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(from_ts))
    }
}

/// Remembers that the server accepted message `id` but its `sent` mark failed (`e`), once, so
/// the mark is committed before anything else is claimed (both backends). A message that no
/// longer exists owes nothing.
pub(crate) fn owe_sent_mark(
    accepted: &mut Vec<(i64, DateTime<Utc>)>,
    id: i64,
    now: DateTime<Utc>,
    e: &StoreError,
) {
    if !matches!(e, StoreError::NoSuchMessage(_)) && !accepted.iter().any(|(owed, _)| *owed == id) {
        accepted.push((id, now));
    }
}

fn status_str(status: OutboxStatus) -> &'static str {
    match status {
        OutboxStatus::Queued => "queued",
        OutboxStatus::Sent => "sent",
        OutboxStatus::Failed => "failed",
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

pub(super) fn insert_outbox(
    tx: &Transaction<'_>,
    digest_id: i64,
    kind: &str,
    digest_name: &str,
    m: &NewMessage,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO outbox (digest, digest_name, message_id, sender, recipients, raw,
                             status, next_attempt, created, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7, ?8)",
        params![
            digest_id,
            digest_name,
            m.message_id,
            m.sender,
            serde_json::to_string(&m.recipients)?,
            m.raw,
            ts(now),
            kind
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// One status change of one message (the outbox's only UPDATE of `status`).
fn set_status(
    conn: &rusqlite::Connection,
    id: i64,
    status: OutboxStatus,
    error: Option<&str>,
    sent: Option<DateTime<Utc>>,
    next_attempt: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE outbox SET status = ?2, attempts = attempts + 1, last_error = ?3,
                           sent = COALESCE(?4, sent),
                           next_attempt = COALESCE(?5, next_attempt)
         WHERE id = ?1",
        params![
            id,
            status_str(status),
            error,
            sent.map(ts),
            next_attempt.map(ts)
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchMessage(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{compose, msg, store_with_matches};
    use super::*;

    #[test]
    fn outbox_state_transitions() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<m@x>"));
        assert_eq!(s.due_messages(now).unwrap().len(), 1);
        assert_eq!(s.next_outbox_attempt().unwrap(), Some(now));

        let retry_at = now + chrono::Duration::minutes(2);
        s.mark_retry(id, "451 try later", retry_at).unwrap();
        assert!(
            s.due_messages(now).unwrap().is_empty(),
            "not due before its retry time"
        );
        let m = s.due_messages(retry_at).unwrap().pop().unwrap();
        assert_eq!((m.status, m.attempts), (OutboxStatus::Queued, 1));
        assert_eq!(m.last_error.as_deref(), Some("451 try later"));
        assert_eq!(m.recipients, ["a@example.org"]);

        s.mark_sent(id, retry_at).unwrap();
        let m = s.message(id).unwrap();
        assert_eq!(
            (m.status, m.attempts, m.last_error),
            (OutboxStatus::Sent, 2, None)
        );
        assert!(s.due_messages(retry_at).unwrap().is_empty());
        assert_eq!(
            s.outbox_counts().unwrap(),
            OutboxCounts {
                queued: 0,
                sent: 1,
                failed: 0
            }
        );
        assert_eq!(s.next_outbox_attempt().unwrap(), None);
    }

    /// Issue 16 item 13: disk full after the server's 250. The failed `sent` mark is owed, and
    /// until it is committed nothing is handed out to send, least of all that message.
    #[test]
    fn an_accepted_message_whose_mark_failed_is_not_handed_out_again() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<m@x>"));
        let later = now + chrono::Duration::minutes(5);
        assert_eq!(s.due_messages(now).unwrap().len(), 1);
        s.conn()
            .execute_batch(
                "CREATE TRIGGER full BEFORE UPDATE ON outbox
                 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
            )
            .unwrap();
        assert!(s.mark_sent(id, now).is_err());
        for _ in 0..2 {
            let err = s.due_messages(later).expect_err("nothing is handed out");
            assert!(err.to_string().contains("disk is full"), "{err}");
        }
        s.conn().execute_batch("DROP TRIGGER full").unwrap();
        assert!(s.due_messages(later).unwrap().is_empty());
        let m = s.message(id).unwrap();
        assert_eq!(m.status, OutboxStatus::Sent);
        assert_eq!(s.outbox_counts().unwrap().sent, 1);
    }

    #[test]
    fn a_failed_message_is_kept_but_not_retried() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<m@x>"));
        s.mark_failed(id, "550 no such user").unwrap();
        let far = now + chrono::Duration::days(30);
        assert!(s.due_messages(far).unwrap().is_empty());
        let m = s.message(id).unwrap();
        assert_eq!(m.status, OutboxStatus::Failed);
        assert_eq!(m.raw, msg("<m@x>").raw);
        assert!(matches!(
            s.mark_sent(999, now),
            Err(StoreError::NoSuchMessage(999))
        ));
    }
}
