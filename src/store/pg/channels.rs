//! The `channel_outbox` table on PostgreSQL: SQLite's `channels.rs` with `$n` placeholders. A
//! row is written in its composition's transaction (`compose.rs`), with a spike's state
//! (`spikes.rs`), or alone (`queue_channel_message`). The key a receiver sees is SQLite's:
//! row id and creation time.
//!
//! Shared by the nodes as the email outbox is (`outbox.rs`): a due message is claimed by one
//! node until `now + lease`, renewed just before its send (`holds_channel_message`), so a
//! message reaches its service once although every node drains the same table.

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

const COLUMNS: &str =
    "id, channel, source, payload, status, attempts, next_attempt, last_error, created";

fn read(r: &postgres::Row) -> ChannelMessage {
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

    /// Claims for this node the queued messages due at `now` that no other node holds a running
    /// claim on, oldest first, and returns them.
    pub(crate) fn due_channel_messages(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        let rows = self.claim_due("channel_outbox", COLUMNS, now)?;
        let mut out: Vec<ChannelMessage> = rows.iter().map(read).collect();
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    /// Renews this node's claim on queued channel message `id` until `now + lease`: `true` only
    /// if the node still holds it (asked just before the send; an error is a "no" too).
    pub(crate) fn holds_channel_message(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.renew_claim("channel_outbox", id, now)
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
            &format!("SELECT {COLUMNS} FROM channel_outbox WHERE {tail}"),
            &[&arg],
        )?;
        Ok(rows.iter().map(read).collect())
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
        // As for email: a retry or failure never touches a sent message nor one another node
        // holds (a node whose send outlasted its claim must not requeue what another sent).
        let set = "UPDATE channel_outbox SET status = $2, attempts = attempts + 1, last_error = $3,
                                              sent = COALESCE($4, sent),
                                              next_attempt = COALESCE($5, next_attempt),
                                              claim_node = NULL, claim_until = NULL
                   WHERE id = $1";
        let mut conn = self.conn()?;
        let (sent, next_attempt) = (sent.map(ts), next_attempt.map(ts));
        let n = if sent.is_some() {
            conn.execute(set, &[&id, &status, &error, &sent, &next_attempt])?
        } else {
            conn.execute(
                &format!("{set} AND status <> 'sent' AND (claim_node IS NULL OR claim_node = $6)"),
                &[&id, &status, &error, &sent, &next_attempt, &self.node],
            )?
        };
        if n == 0
            && conn
                .query_opt("SELECT 1 FROM channel_outbox WHERE id = $1", &[&id])?
                .is_none()
        {
            return Err(StoreError::NoSuchMessage(id));
        }
        Ok(())
    }

    pub(crate) fn next_channel_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_try("channel_outbox")
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

#[cfg(test)]
mod tests {
    use super::super::super::testing::postgres::{fresh_database, same_database};
    use crate::model::OutboxStatus;
    use crate::store::Store;

    /// Every node drains the same channel outbox: a message is claimed by one, sent once; a
    /// killed node's message is taken over one lease later; a stalled node's late marks change
    /// nothing another node sent.
    #[test]
    fn a_channel_message_is_sent_by_one_node_and_taken_over_from_a_dead_one() {
        let first = fresh_database("node-chan-a");
        let mut a = Store::open_postgres(&first).expect("node a");
        let mut b = Store::open_postgres(&same_database(&first, "node-chan-b")).expect("node b");
        let now = crate::clock::now();
        let id = a
            .queue_channel_message("alerts", "ops-room", "{\"text\":\"hi\"}", now)
            .expect("queued");

        assert_eq!(
            a.due_channel_messages(now)
                .expect("a claims")
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            [id]
        );
        assert!(
            b.due_channel_messages(now).expect("b").is_empty(),
            "held by a"
        );
        assert!(a.holds_channel_message(id, now).expect("a holds"));
        assert!(!b.holds_channel_message(id, now).expect("b does not"));
        let lease = chrono::Duration::from_std(first.lease).expect("lease");
        let b_next = b.next_channel_attempt().expect("b next").expect("queued");
        assert!(
            b_next > now + lease - chrono::Duration::seconds(2),
            "{b_next}"
        );

        // a dies: one lease later b claims it, same key; a, only stalled, may not send.
        let later = now + lease + chrono::Duration::seconds(1);
        let taken = b.due_channel_messages(later).expect("b takes over");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].id, id);
        assert!(!a.holds_channel_message(id, later).expect("a lost it"));
        assert!(b.holds_channel_message(id, later).expect("b holds it"));
        b.mark_channel_sent(id, later).expect("sent");
        a.mark_channel_retry(id, "timed out", later)
            .expect("a's late mark");
        a.mark_channel_failed(id, "timed out")
            .expect("a's late mark");
        assert_eq!(
            a.channel_message(id).expect("kept").status,
            OutboxStatus::Sent
        );
        assert!(
            a.due_channel_messages(later + lease * 2)
                .expect("a")
                .is_empty()
        );
        assert_eq!(a.next_channel_attempt().expect("next"), None);
    }

    /// A failed message the console queues again is free for any node.
    #[test]
    fn a_failed_channel_message_queued_again_is_free_for_any_node() {
        let first = fresh_database("node-chanr-a");
        let mut a = Store::open_postgres(&first).expect("node a");
        let mut b = Store::open_postgres(&same_database(&first, "node-chanr-b")).expect("node b");
        let now = crate::clock::now();
        let id = a
            .queue_channel_message("alerts", "ops-room", "{}", now)
            .expect("queued");
        assert_eq!(a.due_channel_messages(now).expect("a").len(), 1);
        a.mark_channel_failed(id, "403 forbidden").expect("failed");
        b.mark_channel_retry(id, "retry requested from the console", now)
            .expect("requeued");
        assert_eq!(b.due_channel_messages(now).expect("b").len(), 1);
    }
}
