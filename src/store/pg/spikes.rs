//! The `spike_state` table on PostgreSQL and what spike detection reads: SQLite's `spikes.rs`
//! with `$n` placeholders; a surge's channel messages are queued in the transaction that
//! records it.

use chrono::{DateTime, Utc};

use super::{Postgres, from_ts, ts};
use crate::model::SpikeHeadline;
use crate::store::StoreError;

impl Postgres {
    pub(crate) fn rule_match_times(
        &self,
        rule: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT a.first_seen, a.feed FROM matches m JOIN articles a ON a.id = m.article
                 WHERE m.rule_id = $1 AND a.first_seen > $2",
                &[&rule, &ts(since)],
            )?
            .iter()
            .map(|r| (from_ts(r.get(0)), r.get(1)))
            .collect())
    }

    pub(crate) fn rule_headlines(
        &self,
        rule: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SpikeHeadline>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT a.title, a.link, a.feed, COALESCE(a.published, a.first_seen), a.summary
                 FROM matches m JOIN articles a ON a.id = m.article
                 WHERE m.rule_id = $1 AND a.first_seen > $2
                 ORDER BY a.first_seen DESC, a.id DESC LIMIT $3",
                &[&rule, &ts(since), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(|r| SpikeHeadline {
                title: r.get(0),
                link: r.get(1),
                feed: r.get(2),
                time: from_ts(r.get(3)),
                summary: r.get(4),
            })
            .collect())
    }

    pub(crate) fn spike_surging(&self, spike: &str, rule: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT surging FROM spike_state WHERE spike = $1 AND rule = $2",
                &[&spike, &rule],
            )?
            .is_some_and(|r| r.get::<_, i64>(0) != 0))
    }

    pub(crate) fn record_spike(
        &mut self,
        spike: &str,
        rule: &str,
        surging: bool,
        alert: Option<(&[String], &str)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO spike_state (spike, rule, surging, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (spike, rule) DO UPDATE SET
                 since = CASE WHEN spike_state.surging = excluded.surging
                              THEN spike_state.since ELSE excluded.since END,
                 surging = excluded.surging",
            &[&spike, &rule, &i64::from(surging), &ts(now)],
        )?;
        if let Some((channels, payload)) = alert {
            for channel in channels {
                super::channels::insert(&mut tx, None, spike, channel, payload, now)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
