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

#[cfg(test)]
mod tests {
    use super::super::testing::{on_both_backends, t, with_matches};

    on_both_backends! {
        /// A rule's matches and headlines since a time; a surge's state kept with the time it
        /// began, and its alert queued for each channel in the same write.
        fn a_surge_is_recorded_once_with_its_alert(s) {
            let now = with_matches(s);
            let before = now - chrono::Duration::hours(1);
            let times = s.rule_match_times("minerals", before).expect("times");
            assert_eq!(times, [(now, "f".to_string())]);
            assert!(s.rule_match_times("minerals", now).expect("times").is_empty());
            let heads = s.rule_headlines("minerals", before, 5).expect("headlines");
            assert_eq!(
                heads.iter().map(|h| h.title.as_str()).collect::<Vec<_>>(),
                ["Title a"]
            );
            assert!(!s.spike_surging("surge", "minerals").expect("state"));
            let channels = ["ops".to_string(), "chat".to_string()];
            s.record_spike("surge", "minerals", true, Some((&channels, "{}")), now)
                .expect("record");
            assert!(s.spike_surging("surge", "minerals").expect("state"));
            let queued = s.due_channel_messages(now).expect("due");
            assert_eq!(
                queued.iter().map(|m| (m.channel.as_str(), m.source.as_str())).collect::<Vec<_>>(),
                [("ops", "surge"), ("chat", "surge")]
            );
            // Still surging later: no second alert; then it calms down.
            let later = t("2025-03-10T13:00:00Z");
            s.record_spike("surge", "minerals", true, None, later).expect("record");
            s.record_spike("surge", "minerals", false, None, later).expect("record");
            assert!(!s.spike_surging("surge", "minerals").expect("state"));
            assert_eq!(s.due_channel_messages(later).expect("due").len(), 2);
        }
    }
}
