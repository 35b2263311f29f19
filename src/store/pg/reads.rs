//! What `status`, the digests' schedule and the alert batching read on PostgreSQL, and the one
//! small alert write that goes with them: the same statements as SQLite's `articles.rs`,
//! `alerts.rs` and `digests.rs` (their reading halves), with `$n` placeholders.

use chrono::{DateTime, Utc};

use super::{Postgres, from_ts, ts, unsigned};
use crate::model::Article;
use crate::store::articles::ORPHANS_SQL;
use crate::store::{DigestInfo, RowCounts, StoreError, StoredArticle};

impl Postgres {
    pub(crate) fn articles_since(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<StoredArticle>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published, a.first_seen, a.lang_detected
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.first_seen >= $1
             ORDER BY a.first_seen, a.id",
            &[&ts(cutoff)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(StoredArticle {
                feed: r.get(0),
                feed_title: r.get(1),
                article: Article {
                    key: r.get(2),
                    link: r.get(3),
                    title: r.get(4),
                    summary: r.get(5),
                    content: r.get(6),
                    authors: serde_json::from_str(r.get(7))?,
                    categories: serde_json::from_str(r.get(8))?,
                    lang: r.get(9),
                    published: r.get::<_, Option<i64>>(10).map(from_ts),
                    lang_detected: r.get(12),
                },
                first_seen: from_ts(r.get(11)),
            });
        }
        Ok(out)
    }

    pub(crate) fn row_counts(&self) -> Result<RowCounts, StoreError> {
        let r = self.conn()?.query_one(
            "SELECT (SELECT COUNT(*) FROM articles),
                    (SELECT COUNT(*) FROM articles WHERE text_pruned = 0),
                    (SELECT COUNT(*) FROM item_keys),
                    (SELECT COUNT(*) FROM matches),
                    (SELECT COUNT(*) FROM feed_notices)",
            &[],
        )?;
        Ok(RowCounts {
            articles: unsigned(r.get(0)),
            texts: unsigned(r.get(1)),
            item_keys: unsigned(r.get(2)),
            matches: unsigned(r.get(3)),
            notices: unsigned(r.get(4)),
            orphans: unsigned(self.conn()?.query_one(ORPHANS_SQL, &[])?.get(0)),
        })
    }

    /// As SQLite's: in an order that depends only on what matched.
    pub(crate) fn pending_alerts(
        &self,
        set: &str,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT ai.match_id, ai.queued FROM alert_items ai
             JOIN matches m ON m.id = ai.match_id
             JOIN articles a ON a.id = m.article
             WHERE ai.alert_set = $1 AND ai.status = 'pending'
             ORDER BY a.feed COLLATE \"C\", a.key COLLATE \"C\", m.rule_id COLLATE \"C\",
                      ai.match_id",
            &[&set],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), from_ts(r.get(1)))).collect())
    }

    pub(crate) fn alerts_composed_since(
        &self,
        set: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM outbox
                 WHERE kind = 'alert' AND digest_name = $1 AND created > $2",
                &[&set, &ts(since)],
            )?
            .get(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// As SQLite's: pending alerts of sets no longer configured go to the digests.
    pub(crate) fn release_orphaned_alerts(
        &mut self,
        configured: &[String],
    ) -> Result<usize, StoreError> {
        let n = self.conn()?.execute(
            "UPDATE alert_items SET status = 'deferred'
             WHERE status = 'pending' AND NOT (alert_set = ANY($1))",
            &[&configured],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn digest_last_slot(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT last_slot FROM digest_slots WHERE name = $1",
                &[&name],
            )?
            .map(|r| from_ts(r.get(0))))
    }

    pub(crate) fn last_digest_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn()?
            .query_one("SELECT MAX(created) FROM digests WHERE name = $1", &[&name])?
            .get::<_, Option<i64>>(0)
            .map(from_ts))
    }

    pub(crate) fn recent_digests(&self, limit: usize) -> Result<Vec<DigestInfo>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT d.id, d.created, COUNT(o.id), COUNT(o.sent), d.kind, d.name
             FROM digests d LEFT JOIN outbox o ON o.digest = d.id
             GROUP BY d.id ORDER BY d.id DESC LIMIT $1",
            &[&i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        Ok(rows
            .iter()
            .map(|r| DigestInfo {
                id: r.get(0),
                created: from_ts(r.get(1)),
                emails: unsigned(r.get(2)),
                sent: unsigned(r.get(3)),
                kind: r.get(4),
                name: r.get(5),
            })
            .collect())
    }

    /// Per rule: every stored match, and those no digest has carried yet; by rule id.
    pub(crate) fn match_counts(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT rule_id, COUNT(*), COUNT(*) - COUNT(digest) FROM matches
             GROUP BY rule_id ORDER BY rule_id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), unsigned(r.get(1)), unsigned(r.get(2))))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::super::testing::postgres::fresh_database;
    use super::super::super::testing::{DAY, art, compose, hit, msg, poll, store_with_matches, t};
    use crate::store::{ArticleMatches, Store};

    /// Every read `status`, the schedule and the alert batching use answers the same on a
    /// PostgreSQL copy as on the SQLite original.
    #[test]
    fn reads_answer_the_same_on_both_backends() {
        let (_dir, mut s, now) = store_with_matches();
        compose(&mut s, "main", now, &msg("<digest-r@example.org>"));
        let later = now + chrono::Duration::hours(1);
        poll(&mut s, "f", &[art("c", None), art("d", None)], later, DAY);
        let c = s.pending_articles().expect("pending")[0].id;
        let routes = HashMap::from([("urgent-rule".to_string(), vec!["urgent".to_string()])]);
        let verdict = [ArticleMatches {
            article: c,
            matches: vec![("urgent-rule".into(), vec![hit("x")])],
        }];
        s.record_matches(&verdict, later, &routes, "rules-v1")
            .expect("alert queued");
        let mut pg = Store::open_postgres(&fresh_database("node-reads")).expect("open");
        s.copy_into(&mut pg).expect("copy");

        let since = t("2000-01-01T00:00:00Z");
        for st in [&s, &pg] {
            assert_eq!(
                st.pending_alerts("urgent").expect("alerts").len(),
                1,
                "{}",
                st.backend_name()
            );
        }
        let titles = |st: &Store| -> Vec<(String, String)> {
            st.articles_since(since)
                .expect("since")
                .into_iter()
                .map(|a| (a.feed, a.article.title))
                .collect()
        };
        assert_eq!(titles(&pg), titles(&s));
        assert_eq!(
            pg.row_counts().expect("pg"),
            s.row_counts().expect("sqlite")
        );
        assert_eq!(
            pg.pending_alerts("urgent").expect("pg"),
            s.pending_alerts("urgent").expect("sqlite")
        );
        assert_eq!(
            pg.alerts_composed_since("urgent", since).expect("pg"),
            s.alerts_composed_since("urgent", since).expect("sqlite")
        );
        assert_eq!(
            pg.digest_last_slot("main").expect("pg"),
            s.digest_last_slot("main").expect("sqlite")
        );
        assert_eq!(
            pg.last_digest_time("main").expect("pg"),
            s.last_digest_time("main").expect("sqlite")
        );
        assert_eq!(pg.last_digest_time("main").expect("pg"), Some(now));
        assert_eq!(
            pg.recent_digests(5).expect("pg"),
            s.recent_digests(5).expect("sqlite")
        );
        assert_eq!(
            pg.outbox_counts().expect("pg"),
            s.outbox_counts().expect("sqlite")
        );
        assert_eq!(
            pg.feed_notices(since).expect("pg"),
            s.feed_notices(since).expect("sqlite")
        );
        // The `urgent` set leaves the config: its pending alert goes to the digests, on both.
        let none: Vec<String> = Vec::new();
        assert_eq!(pg.release_orphaned_alerts(&none).expect("pg"), 1);
        assert_eq!(s.release_orphaned_alerts(&none).expect("sqlite"), 1);
        assert!(pg.pending_alerts("urgent").expect("pg").is_empty());
    }
}
