//! The shared outbox on PostgreSQL: a due message is claimed by one node (`FOR UPDATE SKIP
//! LOCKED`, until `now + lease`) when `due_messages` hands it out; just before sending, the node
//! renews its claim (`holds_message`) and sends only if that succeeds, so a node whose claim
//! ran out or whose connection was cut sends nothing it no longer holds; once the claim of a
//! killed node runs out, another node claims the message and sends it under the same
//! Message-ID. Status changes as in SQLite's `outbox.rs`.

use crate::store::outbox::owe_sent_mark;
use chrono::{DateTime, Utc};
use postgres::Row;

use super::{Postgres, from_ts, ts};
use crate::model::{AlertLatency, OutboxCounts, OutboxMessage, OutboxStatus};
use crate::store::StoreError;

const COLUMNS: &str = "id, digest_name, message_id, sender, recipients, raw, status, attempts,
    next_attempt, last_error";

fn read(r: &Row) -> Result<OutboxMessage, StoreError> {
    Ok(OutboxMessage {
        id: r.get(0),
        digest_name: r.get(1),
        message_id: r.get(2),
        sender: r.get(3),
        recipients: serde_json::from_str(r.get(4))?,
        raw: r.get(5),
        status: parse_status(r.get(6)),
        attempts: u32::try_from(r.get::<_, i64>(7)).unwrap_or(u32::MAX),
        next_attempt: from_ts(r.get(8)),
        last_error: r.get(9),
    })
}

fn parse_status(s: &str) -> OutboxStatus {
    match s {
        "sent" => OutboxStatus::Sent,
        "failed" => OutboxStatus::Failed,
        // The CHECK constraint admits only the three values.
        _ => OutboxStatus::Queued,
    }
}

impl Postgres {
    /// Claims for this node the queued messages due at `now` that no other node holds a running
    /// claim on, oldest first, and returns them. First commits every `sent` mark this node
    /// still owes (a message accepted just before the database went away): until those are
    /// committed this fails, so nothing is sent, least of all an accepted message again.
    pub(crate) fn due_messages(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.commit_accepted()?;
        let rows = self.claim_due("outbox", COLUMNS, now)?;
        let mut out = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    /// Renews this node's claim on queued message `id` until `now + lease`: `true` only if the
    /// node still holds it. Asked just before sending; an error (the connection is gone) is a
    /// "no" too: the caller sends nothing it cannot prove it holds.
    pub(crate) fn holds_message(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.renew_claim("outbox", id, now)
    }

    /// Every queued message, oldest first (`status` lists them; nothing is claimed).
    pub(crate) fn queued_messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        self.conn()?
            .query(
                &format!("SELECT {COLUMNS} FROM outbox WHERE status = 'queued' ORDER BY id"),
                &[],
            )?
            .iter()
            .map(read)
            .collect()
    }

    pub(crate) fn message(&self, id: i64) -> Result<OutboxMessage, StoreError> {
        let row = self
            .conn()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM outbox WHERE id = $1"),
                &[&id],
            )?
            .ok_or(StoreError::NoSuchMessage(id))?;
        read(&row)
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

    /// The transport accepted message `id`: sent, the claim dropped, and for an alert its
    /// articles' alert time stamped, in one transaction; returns the alerted latencies. If the
    /// mark cannot be committed (PostgreSQL restarting), this node remembers it owes it and
    /// `due_messages` commits it before handing out anything. The residual window: the node
    /// ending while it owes a mark, or staying away from the database past its claim while
    /// another node reaches it, sends the message once more under the same Message-ID.
    pub(crate) fn mark_sent(
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, last_error = NULL,
                               sent = $2, claim_node = NULL, claim_until = NULL
             WHERE id = $1",
            &[&id, &ts(now)],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchMessage(id));
        }
        let sent = now.timestamp_millis();
        tx.execute(
            "UPDATE alert_items SET sent_ms = $2 WHERE outbox = $1",
            &[&id, &sent],
        )?;
        let rows = tx.query(
            "SELECT a.seen_ms, m.matched_ms, a.published FROM alert_items i
             JOIN matches m ON m.id = i.match_id JOIN articles a ON a.id = m.article
             WHERE i.outbox = $1",
            &[&id],
        )?;
        let latencies = rows
            .iter()
            .filter_map(|r| AlertLatency::from_millis(r.get(0), r.get(1), sent, r.get(2)))
            .collect();
        tx.commit()?;
        Ok(latencies)
    }

    pub(crate) fn alert_latencies(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<AlertLatency>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT a.seen_ms, m.matched_ms, i.sent_ms, a.published FROM alert_items i
             JOIN matches m ON m.id = i.match_id JOIN articles a ON a.id = m.article
             WHERE i.sent_ms >= $1 ORDER BY i.sent_ms",
            &[&since.timestamp_millis()],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| AlertLatency::from_millis(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// A transient failure: another attempt at `next_attempt`, by whichever node claims it then.
    pub(crate) fn mark_retry(
        &mut self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_status(id, "queued", error, Some(next_attempt))
    }

    /// A permanent failure: kept, never retried automatically.
    pub(crate) fn mark_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.set_status(id, "failed", error, None)
    }

    fn set_status(
        &mut self,
        id: i64,
        status: &str,
        error: &str,
        next_attempt: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // Never a sent message, nor one another node holds: a node whose send outlasted its
        // claim must not requeue a message another node has claimed or sent meanwhile (it
        // would go out twice). A failed one may be queued again (the console's retry).
        let mut conn = self.conn()?;
        let n = conn.execute(
            "UPDATE outbox SET status = $2, attempts = attempts + 1, last_error = $3,
                               next_attempt = COALESCE($4, next_attempt),
                               claim_node = NULL, claim_until = NULL
             WHERE id = $1 AND status <> 'sent' AND (claim_node IS NULL OR claim_node = $5)",
            &[&id, &status, &error, &next_attempt.map(ts), &self.node],
        )?;
        if n == 0
            && conn
                .query_opt("SELECT 1 FROM outbox WHERE id = $1", &[&id])?
                .is_none()
        {
            return Err(StoreError::NoSuchMessage(id));
        }
        Ok(())
    }

    pub(crate) fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = self
            .conn()?
            .query("SELECT status, COUNT(*) FROM outbox GROUP BY status", &[])?;
        let mut counts = OutboxCounts::default();
        for r in &rows {
            let n = usize::try_from(r.get::<_, i64>(1)).unwrap_or(0);
            match parse_status(r.get(0)) {
                OutboxStatus::Queued => counts.queued = n,
                OutboxStatus::Sent => counts.sent = n,
                OutboxStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    pub(crate) fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_try("outbox")
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::pg_server::PrivateServer;
    use super::super::super::testing::postgres::{fresh_database, same_database, terminate_node};
    use super::super::super::testing::{compose, msg, store_with_matches};
    use crate::model::OutboxCounts;
    use crate::store::Store;

    /// One queued message, two nodes: one sends it, once, under its Message-ID; a node that no
    /// longer holds it (claim run out, connection cut) is told not to send.
    #[test]
    fn a_message_is_sent_by_one_node_and_taken_over_from_a_dead_one() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<digest-1@example.org>"));
        let first = fresh_database("node-mail-a");
        let mut a = Store::open_postgres(&first).expect("node a");
        s.copy_into(&mut a).expect("copy");
        let mut b = Store::open_postgres(&same_database(&first, "node-mail-b")).expect("node b");

        let got = a.due_messages(now).expect("a claims");
        assert_eq!(
            got.iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["<digest-1@example.org>"]
        );
        assert!(b.due_messages(now).expect("b").is_empty(), "held by a");
        // b's next try is when a's claim runs out, not at once (it would wake again and again
        // for a message a is sending); a's own is the message's next attempt.
        let lease = chrono::Duration::from_std(first.lease).expect("lease");
        let a_next = a.next_outbox_attempt().expect("a next").expect("queued");
        let b_next = b.next_outbox_attempt().expect("b next").expect("queued");
        assert!(a_next <= now, "{a_next} for a, claimed at {now}");
        assert!(
            b_next > now + lease - chrono::Duration::seconds(2) && b_next <= now + lease,
            "{b_next} for b; a's claim ends at {}",
            now + lease
        );
        assert!(a.holds_message(id, now).expect("a holds"));
        assert!(!b.holds_message(id, now).expect("b does not"));

        // Node a dies before sending: one lease later b claims it, same message, same id.
        let later = now + lease + chrono::Duration::seconds(1);
        let taken = b.due_messages(later).expect("b takes over");
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].id, taken[0].message_id.as_str()),
            (id, "<digest-1@example.org>")
        );
        // Node a was only stalled: its claim is gone, so it must not send.
        assert!(!a.holds_message(id, later).expect("a lost it"));
        assert!(b.holds_message(id, later).expect("b holds it"));
        // b's connection is cut before it sends: the claim lives in the database, not in the
        // connection, so the check on a new connection still says b holds it.
        assert!(terminate_node("node-mail-b") >= 1);
        assert!(
            b.holds_message(id, later)
                .expect("asked again on a new connection")
        );
        b.mark_sent(id, later).expect("sent");
        assert!(!b.holds_message(id, later).expect("sent is not held"));
        // Node a's stalled send ends in a time-out: its retry mark must not put back in the
        // queue a message b has sent (it would go out twice), nor its failure mark end it.
        a.mark_retry(id, "timed out", later).expect("a's late mark");
        a.mark_failed(id, "timed out").expect("a's late mark");
        assert_eq!(
            a.message(id).expect("message").status,
            crate::model::OutboxStatus::Sent
        );
        assert!(a.due_messages(later + lease * 2).expect("a").is_empty());
        assert_eq!(
            a.outbox_counts().expect("counts"),
            OutboxCounts {
                queued: 0,
                sent: 1,
                failed: 0
            }
        );
        assert_eq!(a.next_outbox_attempt().expect("next"), None);
        assert_eq!(
            a.message(id).expect("message").message_id,
            "<digest-1@example.org>"
        );
    }

    /// PostgreSQL goes away between the server's 250 and the `sent` mark: the node remembers
    /// the mark it owes and commits it, once the database is back, before it claims anything,
    /// so the accepted message is not handed out to be sent again (not even after its claim
    /// ran out).
    #[test]
    fn a_sent_mark_owed_across_a_restart_is_committed_before_any_claim() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<digest-3@example.org>"));
        let server = PrivateServer::start("owed");
        let settings = crate::config::PostgresSettings {
            url: server.url("owed"),
            password: None,
            pool_size: 2,
            node_name: "node-owed".into(),
            lease: crate::config::PostgresSettings::DEFAULT_LEASE,
        };
        let mut a = Store::open_postgres(&settings).expect("node a");
        s.copy_into(&mut a).expect("copy");
        assert_eq!(a.due_messages(now).expect("claimed").len(), 1);
        assert!(a.holds_message(id, now).expect("held"));

        // Accepted by the SMTP server; then the database stops before the mark.
        server.stop();
        a.mark_sent(id, now).expect_err("the database is down");
        a.due_messages(now)
            .expect_err("nothing is handed out while a mark is owed");

        server.start_again();
        let lease = chrono::Duration::from_std(settings.lease).expect("lease");
        let later = now + lease * 2;
        assert!(
            a.due_messages(later).expect("after the restart").is_empty(),
            "the accepted message is not handed out again"
        );
        let m = a.message(id).expect("kept");
        assert_eq!(m.status, crate::model::OutboxStatus::Sent);
        assert_eq!(m.attempts, 1);
    }

    /// A retried message is free for any node at its next attempt; a failed one for none.
    #[test]
    fn retries_free_the_message_and_failures_end_it() {
        let (_dir, mut s, now) = store_with_matches();
        let id = compose(&mut s, "main", now, &msg("<digest-2@example.org>"));
        let first = fresh_database("node-retry-a");
        let mut a = Store::open_postgres(&first).expect("node a");
        s.copy_into(&mut a).expect("copy");
        let mut b = Store::open_postgres(&same_database(&first, "node-retry-b")).expect("node b");
        assert_eq!(a.due_messages(now).expect("a").len(), 1);
        let next = now + chrono::Duration::minutes(5);
        a.mark_retry(id, "421 try later", next).expect("retry");
        assert_eq!(a.next_outbox_attempt().expect("next"), Some(next));
        assert!(b.due_messages(now).expect("not yet").is_empty());
        assert_eq!(b.due_messages(next).expect("b at next").len(), 1);
        b.mark_failed(id, "550 no such user").expect("failed");
        assert!(
            a.due_messages(next + chrono::Duration::days(1))
                .expect("none")
                .is_empty()
        );
        let m = a.message(id).expect("kept");
        assert_eq!(
            (m.attempts, m.last_error.as_deref()),
            (2, Some("550 no such user"))
        );
    }
}
