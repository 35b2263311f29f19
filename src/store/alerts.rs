//! The `alert_items` side: the matches each alert set holds (queued by the matcher, in
//! `matches.rs`), released to the digests when a set is removed, and an alert plan applied inside
//! a `ComposeTx`: deferrals handed to the digests, the email's matches gathered, then committed
//! with the email. The plan itself (what to send, what to defer) is `alerts`'s pure decision.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::compose::SqliteCompose;
use super::matches::select_matches;
use super::outbox::insert_outbox;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{NewMessage, PendingMatch};

impl Sqlite {
    /// Matches alert set `set` holds pending: (match id, when queued), in an order that depends
    /// only on what matched (feed, article key, rule), never on the order polls were stored in,
    /// so the same input batches the same way (issue 15).
    pub fn pending_alerts(&self, set: &str) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT ai.match_id, ai.queued FROM alert_items ai
             JOIN matches m ON m.id = ai.match_id
             JOIN articles a ON a.id = m.article
             WHERE ai.alert_set = ?1 AND ai.status = 'pending'
             ORDER BY a.feed, a.key, m.rule_id, ai.match_id",
        )?;
        let rows = stmt.query_map([set], |r| Ok((r.get(0)?, from_ts(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Alert emails of `set` composed after `since`.
    pub fn alerts_composed_since(
        &self,
        set: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND digest_name = ?1 AND created > ?2",
            params![set, ts(since)],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Hands the pending alerts of sets no longer configured to the digests, so removing an
    /// `[[alert]]` from the config never strands a match. Returns how many were released.
    pub fn release_orphaned_alerts(&mut self, configured: &[String]) -> Result<usize, StoreError> {
        let list = serde_json::to_string(configured)?;
        Ok(self.conn.execute(
            "UPDATE alert_items SET status = 'deferred'
             WHERE status = 'pending' AND alert_set NOT IN (SELECT value FROM json_each(?1))",
            [list],
        )?)
    }
}

impl SqliteCompose<'_> {
    /// Hands the matches `ids` that alert set `set` still holds pending to the digests.
    pub fn defer_alerts(&mut self, set: &str, ids: &[i64]) -> Result<(), StoreError> {
        let mut defer = self.tx.prepare_cached(
            "UPDATE alert_items SET status = 'deferred'
             WHERE alert_set = ?1 AND match_id = ?2 AND status = 'pending'",
        )?;
        for id in ids {
            defer.execute(params![set, id])?;
        }
        Ok(())
    }

    /// The matches of `ids` that alert set `set` still holds pending, for its email; ids no
    /// longer pending (a plan applied twice) are left out.
    pub fn gather_alert(
        &mut self,
        set: &str,
        ids: &[i64],
    ) -> Result<Vec<PendingMatch>, StoreError> {
        let mut matches = Vec::new();
        for id in ids {
            let still: bool = self.tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM alert_items
                 WHERE alert_set = ?1 AND match_id = ?2 AND status = 'pending')",
                params![set, id],
                |r| r.get(0),
            )?;
            if still {
                matches.extend(select_matches(&self.tx, "m.id = ?1", params![id])?);
            }
        }
        Ok(matches)
    }

    /// Commits alert email `message` of set `set` (id from `next_digest_id`): its digest and
    /// outbox rows, and the `matches` it carries marked sent. Returns the outbox id.
    pub fn commit_alert(
        self,
        set: &str,
        id: i64,
        now: DateTime<Utc>,
        message: &NewMessage,
        matches: &[i64],
    ) -> Result<i64, StoreError> {
        let tx = self.tx;
        tx.execute(
            "INSERT INTO digests (id, created, name, kind) VALUES (?1, ?2, ?3, 'alert')",
            params![id, ts(now), set],
        )?;
        // The hourly cap counts the set's rows by its name.
        let outbox = insert_outbox(&tx, id, "alert", set, message, now)?;
        for m in matches {
            tx.execute(
                "UPDATE alert_items SET status = 'sent', outbox = ?3
                 WHERE alert_set = ?1 AND match_id = ?2",
                params![set, m, outbox],
            )?;
        }
        tx.commit()?;
        Ok(outbox)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::ArticleMatches;
    use super::super::testing::{hit, msg, on_both_backends, pending_for, two_articles};

    on_both_backends! {
        fn alerts_hold_matches_back_from_digests_until_deferred(s) {
            let now = two_articles(s);
            let pending = s.pending_articles().unwrap();
            let results: Vec<ArticleMatches> = pending
                .iter()
                .map(|p| ArticleMatches {
                    article: p.id,
                    matches: vec![("urgent".into(), vec![hit("x")])],
                })
                .collect();
            let routes = HashMap::from([("urgent".to_string(), vec!["breaking".to_string()])]);
            s.record_matches(&results, now, &routes, "rules-v1").unwrap();
            let queued = s.pending_alerts("breaking").unwrap();
            assert_eq!(queued.len(), 2);
            assert!(queued.iter().all(|(_, queued)| *queued == now));
            assert!(pending_for(s, "d").is_empty(), "held by the alert set");
            let (first, second) = (queued[0].0, queued[1].0);
            let mut tx = s.begin_compose().unwrap();
            tx.defer_alerts("breaking", &[second]).unwrap();
            let m = tx.gather_alert("breaking", &[first]).unwrap();
            assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), [first]);
            let id = tx.next_digest_id().unwrap();
            let outbox = tx
                .commit_alert("breaking", id, now, &msg("<a1@x>"), &[first])
                .unwrap();
            assert_eq!(s.message(outbox).unwrap().digest_name, "breaking");
            assert!(s.pending_alerts("breaking").unwrap().is_empty());
            assert_eq!(
                s.alerts_composed_since("breaking", now - chrono::Duration::hours(1))
                    .unwrap(),
                1
            );
            let digest: Vec<i64> = pending_for(s, "d").iter().map(|m| m.id).collect();
            assert_eq!(
                digest,
                [second],
                "only the deferred match reaches the digest"
            );
            // A set removed from the config releases what it held.
            let routes = HashMap::from([("other".to_string(), vec!["gone".to_string()])]);
            s.record_matches(
                &[ArticleMatches {
                    article: pending[0].id,
                    matches: vec![("other".into(), vec![hit("y")])],
                }],
                now,
                &routes,
                "rules-v1",
            )
            .unwrap();
            assert_eq!(s.pending_alerts("gone").unwrap().len(), 1);
            assert_eq!(s.release_orphaned_alerts(&["breaking".into()]).unwrap(), 1);
            assert_eq!(pending_for(s, "d").len(), 2);
            // Applying the same plan again does nothing: those ids are no longer pending.
            let mut tx = s.begin_compose().unwrap();
            tx.defer_alerts("breaking", &[first]).unwrap();
            assert!(tx.gather_alert("breaking", &[first]).unwrap().is_empty());
            tx.commit().unwrap();
            assert_eq!(
                s.alerts_composed_since("breaking", now - chrono::Duration::hours(1))
                    .unwrap(),
                1
            );
        }
    }
}
