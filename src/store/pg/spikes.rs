//! The `spike_state` table on PostgreSQL and what spike detection reads: SQLite's `spikes.rs`
//! with `$n` placeholders. A surge that begins is a composition (`compose.rs`'s
//! `commit_spike`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Postgres, from_ts, ts};
use crate::model::MatchTimes;
use crate::store::StoreError;

impl Postgres {
    pub(crate) fn spike_match_times(
        &self,
        rules: &[String],
        since: DateTime<Utc>,
    ) -> Result<MatchTimes, StoreError> {
        let mut out = MatchTimes {
            feeds: Vec::new(),
            rules: vec![Vec::new(); rules.len()],
        };
        let index: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), i))
            .collect();
        let mut feeds: HashMap<String, u32> = HashMap::new();
        let rows = self.conn()?.query(
            "SELECT m.rule_id, a.first_seen, a.feed FROM articles a
             JOIN matches m ON m.article = a.id
             WHERE a.first_seen > $1 AND m.rule_id = ANY($2)",
            &[&ts(since), &rules],
        )?;
        for r in &rows {
            let Some(&i) = index.get(r.get::<_, &str>(0)) else {
                continue;
            };
            let feed: String = r.get(2);
            let next = u32::try_from(out.feeds.len()).unwrap_or(u32::MAX);
            let f = *feeds.entry(feed.clone()).or_insert_with(|| {
                out.feeds.push(feed);
                next
            });
            out.rules[i].push((from_ts(r.get(1)), f));
        }
        Ok(out)
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
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_state(&mut *self.conn()?, spike, rule, surging, now)
    }
}

/// The table's one write (as SQLite's `set_state`): the state, and since when it holds.
pub(super) fn set_state(
    conn: &mut impl postgres::GenericClient,
    spike: &str,
    rule: &str,
    surging: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO spike_state (spike, rule, surging, since) VALUES ($1, $2, $3, $4)
         ON CONFLICT (spike, rule) DO UPDATE SET
             since = CASE WHEN spike_state.surging = excluded.surging
                          THEN spike_state.since ELSE excluded.since END,
             surging = excluded.surging",
        &[&spike, &rule, &i64::from(surging), &ts(now)],
    )?;
    Ok(())
}
