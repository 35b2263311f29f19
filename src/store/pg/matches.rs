//! The matcher's side on PostgreSQL: its to-do list claimed in chunks, so that with several
//! nodes each article is matched by exactly one (`FOR UPDATE SKIP LOCKED` plus a lease: a node
//! that dies mid-chunk leaves its articles to the others once the lease runs out), and its
//! verdicts written as SQLite's `matches.rs` writes them, alert queueing in the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Postgres, ts};
use crate::store::{ArticleMatches, PendingArticle, StoreError};

impl Postgres {
    /// As SQLite's `record_matches`: each listed article leaves the to-do list, its new matches
    /// are stored (a match already stored, say by a node whose claim had run out, is not stored
    /// or queued twice), and each new match of an alert rule is queued in its alert sets.
    pub(crate) fn record_matches(
        &mut self,
        results: &[ArticleMatches],
        now: DateTime<Utc>,
        alert_routes: &HashMap<String, Vec<String>>,
        rules_hash: &str,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // A verdict lost to a crash is re-derived: its articles are still on the to-do list.
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let mark = tx.prepare("DELETE FROM unmatched WHERE article = $1")?;
        let insert = tx.prepare(
            "INSERT INTO matches (article, rule_id, hits, recorded, matched_ms, rules_hash)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (article, rule_id) DO NOTHING
             RETURNING id",
        )?;
        let queue = tx.prepare(
            "INSERT INTO alert_items (alert_set, match_id, queued, status)
             VALUES ($1, $2, $3, 'pending')
             ON CONFLICT (alert_set, match_id) DO NOTHING",
        )?;
        let at = ts(now);
        let mut count = 0;
        for am in results {
            tx.execute(&mark, &[&am.article])?;
            for (rule_id, hits) in &am.matches {
                let hits = serde_json::to_string(hits)?;
                let Some(row) = tx.query_opt(
                    &insert,
                    &[
                        &am.article,
                        rule_id,
                        &hits,
                        &at,
                        &now.timestamp_millis(),
                        &rules_hash,
                    ],
                )?
                else {
                    continue;
                };
                count += 1;
                let match_id: i64 = row.get(0);
                for set in alert_routes.get(rule_id).into_iter().flatten() {
                    tx.execute(&queue, &[set, &match_id, &at])?;
                }
            }
        }
        tx.commit()?;
        Ok(count)
    }

    /// Claims for this node at most `limit` articles of the to-do list with an id above `after`
    /// that no other node holds a running claim on, oldest first, each until `now + lease`;
    /// returns them to match. (`after` lets the match stage read its next chunk while the
    /// current one, claimed but not yet recorded, is matched.)
    pub(crate) fn claim_pending_articles(
        &mut self,
        after: i64,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingArticle>, StoreError> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed: Vec<i64> = self
            .conn()?
            .query(
                "UPDATE unmatched SET claim_node = $1, claim_until = $2
                 WHERE article IN (
                     SELECT article FROM unmatched
                     WHERE article > $5
                       AND (claim_node IS NULL OR claim_node = $1 OR claim_until <= $3)
                     ORDER BY article LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING article",
                &[&self.node, &ts(until), &ts(now), &limit, &after],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.articles_by_id(&claimed)
    }
}
