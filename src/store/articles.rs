//! The `articles` table as the other stages read it (the matcher's to-do list `unmatched`, the
//! backtest's window) and its pruning: text after the retention, identities long after their feed
//! stopped listing them, never while a matcher, a digest or an alert still owes them. Articles are
//! written only by a poll (`polls.rs`, `items.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::polls::minus;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::Article;

/// An alertable article stored but not yet run through the matcher.
#[derive(Debug, Clone)]
pub struct PendingArticle {
    pub id: i64,
    pub feed: String,
    pub feed_title: Option<String>,
    pub article: Article,
}

/// A stored article with its feed and when it was first seen (`articles_since`).
#[derive(Debug, Clone)]
pub struct StoredArticle {
    pub feed: String,
    pub feed_title: Option<String>,
    pub article: Article,
    pub first_seen: DateTime<Utc>,
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Articles whose summary and content were dropped (identity kept).
    pub texts: usize,
    /// Articles forgotten entirely, identity and all.
    pub identities: usize,
}

/// Row counts, for status and for tests that the database stays bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub articles: u64,
    /// Articles whose text is still stored.
    pub texts: u64,
    pub item_keys: u64,
    pub matches: u64,
    pub notices: u64,
    /// Rows whose parent is gone: item keys, to-do entries and matches of a deleted article,
    /// articles of an unknown feed, digest and alert items of a deleted match, digest items of
    /// an unknown digest. Always 0 (on PostgreSQL `prune` deletes them itself: most of those
    /// tables have no foreign keys there).
    pub orphans: u64,
}

/// `RowCounts::orphans`, the same SQL on both backends.
pub(super) const ORPHANS_SQL: &str = "SELECT
    (SELECT COUNT(*) FROM item_keys k WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = k.article))
  + (SELECT COUNT(*) FROM unmatched u WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = u.article))
  + (SELECT COUNT(*) FROM matches m WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = m.article))
  + (SELECT COUNT(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM feeds f WHERE f.name = a.feed))
  + (SELECT COUNT(*) FROM digest_items d WHERE NOT EXISTS (SELECT 1 FROM matches m WHERE m.id = d.match_id))
  + (SELECT COUNT(*) FROM digest_items d WHERE NOT EXISTS (SELECT 1 FROM digests g WHERE g.id = d.digest))
  + (SELECT COUNT(*) FROM alert_items i WHERE NOT EXISTS (SELECT 1 FROM matches m WHERE m.id = i.match_id))";

impl Sqlite {
    /// Alertable articles the matcher has not seen yet, oldest first.
    pub fn pending_articles(&self) -> Result<Vec<PendingArticle>, StoreError> {
        self.pending_articles_after(0, usize::MAX)
    }

    /// At most `limit` pending articles with an id above `after`, oldest first: the matcher
    /// walks a large backlog in bounded chunks instead of holding every article in memory.
    pub fn pending_articles_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PendingArticle>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published, a.lang_detected
             FROM unmatched u JOIN articles a ON a.id = u.article JOIN feeds f ON f.name = a.feed
             WHERE u.article > ?1
             ORDER BY u.article LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                Article {
                    key: r.get(3)?,
                    link: r.get(4)?,
                    title: r.get(5)?,
                    summary: r.get(6)?,
                    content: r.get(7)?,
                    authors: Vec::new(),
                    categories: Vec::new(),
                    lang: r.get(10)?,
                    lang_detected: r.get(12)?,
                    published: r.get::<_, Option<i64>>(11)?.map(from_ts),
                },
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, feed, feed_title, mut article, authors, categories) = row?;
            article.authors = serde_json::from_str(&authors)?;
            article.categories = serde_json::from_str(&categories)?;
            out.push(PendingArticle {
                id,
                feed,
                feed_title,
                article,
            });
        }
        Ok(out)
    }

    /// Every stored article first seen at or after `cutoff` (alertable or not), oldest first.
    pub fn articles_since(&self, cutoff: DateTime<Utc>) -> Result<Vec<StoredArticle>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published, a.first_seen,
                    a.lang_detected
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.first_seen >= ?1
             ORDER BY a.first_seen, a.id",
        )?;
        let rows = stmt.query_map([ts(cutoff)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                Article {
                    key: r.get(2)?,
                    link: r.get(3)?,
                    title: r.get(4)?,
                    summary: r.get(5)?,
                    content: r.get(6)?,
                    authors: Vec::new(),
                    categories: Vec::new(),
                    lang: r.get(9)?,
                    lang_detected: r.get(12)?,
                    published: r.get::<_, Option<i64>>(10)?.map(from_ts),
                },
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (feed, feed_title, mut article, authors, categories, first_seen) = row?;
            article.authors = serde_json::from_str(&authors)?;
            article.categories = serde_json::from_str(&categories)?;
            out.push(StoredArticle {
                feed,
                feed_title,
                article,
                first_seen: from_ts(first_seen),
            });
        }
        Ok(out)
    }

    /// Drops article text not seen for `retention`, and whole identities not seen for
    /// `keep_identities`. An article still waiting for the matcher or for a digest is kept.
    ///
    /// Why identities outlive text: an item pruned while still listed in its feed would come back
    /// as "new". `last_seen` moves on every poll that lists the item, so an identity is forgotten
    /// only after its feed stopped listing it `keep_identities` ago.
    pub fn prune(
        &mut self,
        now: DateTime<Utc>,
        retention: Duration,
        keep_identities: Duration,
    ) -> Result<Pruned, StoreError> {
        let tx = self.conn.transaction()?;
        // Settled: matched (or never alertable), in a digest, and not waiting in an alert batch.
        let settled = "NOT EXISTS (SELECT 1 FROM unmatched u WHERE u.article = a.id)
            AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.article = a.id AND m.digest IS NULL
                            AND NOT EXISTS (SELECT 1 FROM digest_items di
                                            WHERE di.match_id = m.id))
            AND NOT EXISTS (SELECT 1 FROM alert_items ai JOIN matches m ON m.id = ai.match_id
                            WHERE m.article = a.id AND ai.status = 'pending')";
        let texts = tx.execute(
            &format!(
                "UPDATE articles AS a SET summary = '', content = '', text_pruned = 1
                 WHERE a.text_pruned = 0 AND a.last_seen < ?1 AND {settled}"
            ),
            [minus(now, retention)],
        )?;
        let cutoff = minus(now, keep_identities);
        // The identities to forget, decided once: deleting their digest bookkeeping below would
        // otherwise make their matches look "in no digest" again half-way through.
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_gone (article INTEGER PRIMARY KEY);
             DELETE FROM temp.prune_gone;",
        )?;
        tx.execute(
            &format!(
                "INSERT INTO temp.prune_gone (article)
                 SELECT a.id FROM articles a WHERE a.last_seen < ?1 AND {settled}"
            ),
            [cutoff],
        )?;
        // The digest and alert bookkeeping of a forgotten match goes with it (foreign keys).
        for table in ["digest_items", "alert_items"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE match_id IN
                       (SELECT m.id FROM matches m WHERE m.article IN
                          (SELECT article FROM temp.prune_gone))"
                ),
                [],
            )?;
        }
        tx.execute(
            "DELETE FROM matches WHERE article IN (SELECT article FROM temp.prune_gone)",
            [],
        )?;
        let identities = tx.execute(
            "DELETE FROM articles WHERE id IN (SELECT article FROM temp.prune_gone)",
            [],
        )?;
        tx.execute("DELETE FROM temp.prune_gone", [])?;
        tx.execute("DELETE FROM feed_notices WHERE at < ?1", [cutoff])?;
        tx.commit()?;
        Ok(Pruned { texts, identities })
    }

    pub fn row_counts(&self) -> Result<RowCounts, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        Ok(RowCounts {
            articles: count("SELECT COUNT(*) FROM articles")?,
            texts: count("SELECT COUNT(*) FROM articles WHERE text_pruned = 0")?,
            item_keys: count("SELECT COUNT(*) FROM item_keys")?,
            matches: count("SELECT COUNT(*) FROM matches")?,
            notices: count("SELECT COUNT(*) FROM feed_notices")?,
            orphans: count(ORPHANS_SQL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::ArticleMatches;
    use super::super::testing::{
        DAY, art, compose, feed, msg, on_both_backends, open, poll, with_matches,
    };
    use super::*;
    use crate::store::Store;

    on_both_backends! {
        /// An identity pruned goes with every row that names it, on PostgreSQL too, where
        /// `item_keys`, `unmatched` and `articles` have no foreign keys to cascade from; what
        /// the matcher still owes keeps its rows.
        fn pruning_leaves_no_orphan_rows(s) {
            let now = with_matches(s);
            compose(s, "main", now, &msg("<orphans@example.org>"));
            let later = now + DAY * 30;
            poll(s, "f", &[art("owed", None)], later, DAY);
            let before = s.row_counts().expect("counts");
            assert_eq!((before.articles, before.matches, before.orphans), (3, 1, 0));
            let pruned = s.prune(later + DAY, DAY * 7, DAY * 2).expect("prune");
            assert_eq!(pruned.identities, 2);
            let after = s.row_counts().expect("counts");
            assert_eq!(after.orphans, 0, "{after:?}");
            assert_eq!((after.articles, after.matches), (1, 0));
            assert!(0 < after.item_keys && after.item_keys < before.item_keys, "{after:?}");
            let owed: Vec<String> = s
                .pending_articles()
                .expect("pending")
                .into_iter()
                .map(|p| p.article.key)
                .collect();
            assert_eq!(owed, ["owed"]);
        }
    }

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_000_000 + h * 3600, 0).unwrap_or_default()
    }

    /// A store in a temp dir holding one fetched, not yet matched article.
    fn one_stored_article() -> (tempfile::TempDir, Store) {
        let (dir, mut s) = open();
        feed(&mut s, "f", "https://e.example/");
        poll(&mut s, "f", &[art("a", None)], t(0), DAY);
        (dir, s)
    }

    #[test]
    fn pruning_spares_articles_still_owed_to_the_matcher() {
        let (_dir, mut s) = one_stored_article();
        let day = Duration::from_secs(86_400);
        let later = t(24 * 400);
        assert_eq!(s.prune(later, day, day).expect("prune"), Pruned::default());
        let pending = s.pending_articles().expect("pending");
        let verdict = [ArticleMatches {
            article: pending[0].id,
            matches: Vec::new(),
        }];
        s.record_matches(&verdict, later, &HashMap::new(), "rules-v1")
            .expect("match");
        assert_eq!(
            s.prune(later, day, day).expect("prune"),
            Pruned {
                texts: 1,
                identities: 1
            }
        );
        assert_eq!(s.row_counts().expect("counts"), RowCounts::default());
    }

    /// A match keeps its article until a digest has carried it (a `digest_items` row).
    #[test]
    fn pruning_spares_articles_whose_match_no_digest_has_carried() {
        let (_dir, mut s) = one_stored_article();
        let (day, later) = (Duration::from_secs(86_400), t(24 * 400));
        let pending = s.pending_articles().expect("pending");
        let verdict = [ArticleMatches {
            article: pending[0].id,
            matches: vec![("r".to_string(), Vec::new())],
        }];
        s.record_matches(&verdict, later, &HashMap::new(), "rules-v1")
            .expect("match");
        assert_eq!(s.prune(later, day, day).expect("prune"), Pruned::default());
        compose(&mut s, "d", later, &msg("<d@x>"));
        assert_eq!(
            s.prune(later, day, day).expect("prune"),
            Pruned {
                texts: 1,
                identities: 1
            }
        );
    }
}
