//! The matcher's side on PostgreSQL: its to-do list claimed in chunks, so that with several
//! nodes each article is matched by exactly one (`FOR UPDATE SKIP LOCKED` plus a lease: a node
//! that dies mid-chunk leaves its articles to the others once the lease runs out), and its
//! verdicts written as SQLite's `matches.rs` writes them, alert queueing in the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::items::{PENDING_BY_ID, pending_article};
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
        let mut tx = conn.cached_transaction()?;
        // A verdict lost to a crash is re-derived: its articles are still on the to-do list.
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        // One statement per table for the whole batch (issue 17), in the results' order.
        let listed: Vec<i64> = results.iter().map(|am| am.article).collect();
        tx.execute("DELETE FROM unmatched WHERE article = ANY($1)", &[&listed])?;
        let (mut articles, mut rules, mut hits) = (Vec::new(), Vec::new(), Vec::new());
        for am in results {
            for (rule_id, h) in &am.matches {
                articles.push(am.article);
                rules.push(rule_id.as_str());
                hits.push(serde_json::to_string(h)?);
            }
        }
        if articles.is_empty() {
            tx.commit()?;
            return Ok(0);
        }
        let at = ts(now);
        let mut stored: Vec<(i64, String)> = tx
            .query(
                "INSERT INTO matches (article, rule_id, hits, recorded, matched_ms, rules_hash)
                 SELECT u.article, u.rule_id, u.hits, $4, $5, $6
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
                      AS u(article, rule_id, hits, ord)
                 ORDER BY u.ord
                 ON CONFLICT (article, rule_id) DO NOTHING
                 RETURNING id, rule_id",
                &[
                    &articles,
                    &rules,
                    &hits,
                    &at,
                    &now.timestamp_millis(),
                    &rules_hash,
                ],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // Queued in the order the matches were stored, each in its sets' order.
        stored.sort_unstable_by_key(|(id, _)| *id);
        let (mut sets, mut queued) = (Vec::new(), Vec::new());
        for (match_id, rule_id) in &stored {
            for set in alert_routes.get(rule_id).into_iter().flatten() {
                sets.push(set.as_str());
                queued.push(*match_id);
            }
        }
        if !sets.is_empty() {
            tx.execute(
                "INSERT INTO alert_items (alert_set, match_id, queued, status)
                 SELECT u.alert_set, u.match_id, $3, 'pending'
                 FROM UNNEST($1::text[], $2::bigint[]) WITH ORDINALITY AS u(alert_set, match_id, ord)
                 ORDER BY u.ord
                 ON CONFLICT (alert_set, match_id) DO NOTHING",
                &[&sets, &queued, &at],
            )?;
        }
        tx.commit()?;
        Ok(stored.len())
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
        // Claimed, then read by id (a statement that joined the claim to the articles was
        // planned as a scan of all articles on a table without statistics yet: 47 ms a chunk).
        // A claim a server crash loses leaves its articles to be claimed again (`relaxed`).
        let rows = self.conn()?.relaxed(|tx| {
            let claimed: Vec<i64> = tx
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
            tx.query(PENDING_BY_ID, &[&claimed])
        })?;
        rows.iter().map(pending_article).collect()
    }
}
