//! The `spike_state` table (is each `[[spike]]`'s rule in a surge?) and what spike detection
//! reads: a rule's matches with their time and feed, and the surge's newest matches. A spike
//! alert (its email and its channel messages) is written in the composition that records the
//! surge (`ComposeTx::commit_spike`), so a surge is alerted once, whatever is killed when.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::compose::ComposeTx;
use super::matches::select_matches;
use super::outbox::insert_outbox;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{NewMessage, PendingMatch};

impl Sqlite {
    /// Rule `rule`'s matches whose article was first seen after `since`: (first seen, feed).
    pub fn rule_match_times(
        &self,
        rule: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.first_seen, a.feed FROM matches m JOIN articles a ON a.id = m.article
             WHERE m.rule_id = ?1 AND a.first_seen > ?2",
        )?;
        let rows = stmt.query_map(params![rule, ts(since)], |r| {
            Ok((from_ts(r.get(0)?), r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `[[spike]]` `spike` last saw rule `rule` in a surge.
    pub fn spike_surging(&self, spike: &str, rule: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT surging FROM spike_state WHERE spike = ?1 AND rule = ?2",
                params![spike, rule],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Records the rule's state without an alert (a surge that is over).
    pub fn record_spike(
        &mut self,
        spike: &str,
        rule: &str,
        surging: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_state(&self.conn, spike, rule, surging, now)
    }
}

/// The table's one write: the state, and since when it holds.
fn set_state(
    conn: &Connection,
    spike: &str,
    rule: &str,
    surging: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO spike_state (spike, rule, surging, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (spike, rule) DO UPDATE SET
             since = CASE WHEN surging = excluded.surging THEN since ELSE excluded.since END,
             surging = excluded.surging",
        params![spike, rule, surging, ts(now)],
    )?;
    Ok(())
}

/// A surge's alert as `commit_spike` writes it.
#[derive(Debug)]
pub struct SpikeAlert<'a> {
    pub spike: &'a str,
    pub rule: &'a str,
    /// The email (with its digest id, from `next_digest_id`), when the spike has recipients.
    pub email: Option<(i64, &'a NewMessage)>,
    pub channels: &'a [String],
    /// The channel payload (JSON).
    pub payload: &'a str,
}

impl ComposeTx<'_> {
    /// Rule `rule`'s newest `limit` matches whose article was first seen after `since`, with
    /// what an email shows of them (the surge's headlines), newest first.
    pub fn gather_surge(
        &mut self,
        rule: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingMatch>, StoreError> {
        let mut rows = select_matches(
            &self.tx,
            "m.id IN (SELECT m2.id FROM matches m2 JOIN articles a2 ON a2.id = m2.article
                      WHERE m2.rule_id = ?1 AND a2.first_seen > ?2
                      ORDER BY a2.first_seen DESC, a2.id DESC LIMIT ?3)",
            params![rule, ts(since), i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        rows.sort_by_key(|m| std::cmp::Reverse((m.first_seen, m.article_id)));
        Ok(rows)
    }

    /// Commits a surge that begins: the rule's state, the email (its digest row of kind
    /// `spike` and its outbox row) and a channel message per channel, in one transaction.
    /// Returns the email's outbox id.
    pub fn commit_spike(
        self,
        alert: &SpikeAlert<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let tx = self.tx;
        set_state(&tx, alert.spike, alert.rule, true, now)?;
        let mut outbox = None;
        let digest = match alert.email {
            Some((id, message)) => {
                tx.execute(
                    "INSERT INTO digests (id, created, name, kind) VALUES (?1, ?2, ?3, 'spike')",
                    params![id, ts(now), alert.spike],
                )?;
                outbox = Some(insert_outbox(&tx, id, "spike", alert.spike, message, now)?);
                Some(id)
            }
            None => None,
        };
        for channel in alert.channels {
            super::channels::insert(&tx, digest, alert.spike, channel, alert.payload, now)?;
        }
        tx.commit()?;
        Ok(outbox)
    }
}
