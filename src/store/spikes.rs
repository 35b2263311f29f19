//! The `spike_state` table (is each `[[spike]]`'s rule in a surge?) and what spike detection
//! reads: a rule's matches with their time and feed, and the surge's newest headlines. A spike
//! alert's channel messages are queued in the transaction that records the surge, so a surge
//! is alerted once, whatever is killed when.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::SpikeHeadline;

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

    /// The newest `limit` articles rule `rule` matched since `since`.
    pub fn rule_headlines(
        &self,
        rule: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SpikeHeadline>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.title, a.link, a.feed, COALESCE(a.published, a.first_seen), a.summary
             FROM matches m JOIN articles a ON a.id = m.article
             WHERE m.rule_id = ?1 AND a.first_seen > ?2
             ORDER BY a.first_seen DESC, a.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![rule, ts(since), i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok(SpikeHeadline {
                    title: r.get(0)?,
                    link: r.get(1)?,
                    feed: r.get(2)?,
                    time: from_ts(r.get(3)?),
                    summary: r.get(4)?,
                })
            },
        )?;
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

    /// Records the rule's state and, when a surge begins, queues its alert `payload` for each
    /// of `channels`, in one transaction.
    pub fn record_spike(
        &mut self,
        spike: &str,
        rule: &str,
        surging: bool,
        alert: Option<(&[String], &str)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO spike_state (spike, rule, surging, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (spike, rule) DO UPDATE SET
                 since = CASE WHEN surging = excluded.surging THEN since ELSE excluded.since END,
                 surging = excluded.surging",
            params![spike, rule, surging, ts(now)],
        )?;
        if let Some((channels, payload)) = alert {
            for channel in channels {
                super::channels::insert(&tx, None, spike, channel, payload, now)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
