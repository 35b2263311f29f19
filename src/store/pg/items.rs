//! Item identity on PostgreSQL: the statements behind `store_items` (`ItemRows`, the rules are
//! SQLite's `items.rs`, once), inside the poll's transaction; and the matcher's to-do list as
//! the match stage reads it (`pending_articles`).

use postgres::Transaction;

use super::{Postgres, from_ts};
use crate::model::Article;
use crate::store::items::{ItemRows, NewItem, wants_full_text};
use crate::store::{PendingArticle, StoreError};

pub(super) use crate::store::items::store_items as store_items_with;

/// `store_items` on the poll's PostgreSQL transaction.
pub(super) fn store_items(
    tx: &mut Transaction<'_>,
    feed: &str,
    articles: &[Article],
    now: chrono::DateTime<chrono::Utc>,
    first_poll: bool,
    cutoff: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<crate::store::items::Items, StoreError> {
    store_items_with(&mut PgItems(tx), feed, articles, now, first_poll, cutoff)
}

struct PgItems<'t, 'c>(&'t mut Transaction<'c>);

impl ItemRows for PgItems<'_, '_> {
    fn find(
        &mut self,
        feed: &str,
        key: &str,
    ) -> Result<Option<(i64, String, Option<String>)>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT k.article, a.title, a.link FROM item_keys k
                 JOIN articles a ON a.id = k.article WHERE k.feed = $1 AND k.key = $2",
                &[&feed, &key],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn find_loose(
        &mut self,
        feed: &str,
        key: &str,
        since: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT k.article, a.title FROM item_keys k JOIN articles a ON a.id = k.article
                 WHERE k.feed = $1 AND k.key = $2 AND a.last_seen >= $3",
                &[&feed, &key, &since],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn add_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO item_keys (feed, key, article) VALUES ($1, $2, $3)
             ON CONFLICT (feed, key) DO NOTHING",
            &[&feed, &key, &article],
        )?;
        Ok(())
    }

    fn move_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO item_keys (feed, key, article) VALUES ($1, $2, $3)
             ON CONFLICT (feed, key) DO UPDATE SET article = excluded.article",
            &[&feed, &key, &article],
        )?;
        Ok(())
    }

    fn drop_stale(&mut self, article: i64, key: &str) -> Result<(), StoreError> {
        // `strpos` is 0 without a colon, as SQLite's `instr`: the prefix is then empty.
        self.0.execute(
            "DELETE FROM item_keys WHERE article = $1 AND key <> $2
                 AND substr(key, 1, strpos(key, ':')) = substr($2, 1, strpos($2, ':'))",
            &[&article, &key],
        )?;
        Ok(())
    }

    fn refresh(&mut self, article: i64, now: i64, a: &Article) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE articles SET last_seen = $2, title = $3, link = COALESCE($4, link),
                 summary = $5, content = $6, text_pruned = 0
             WHERE id = $1",
            &[&article, &now, &a.title, &a.link, &a.summary, &a.content],
        )?;
        Ok(())
    }

    fn insert(&mut self, feed: &str, new: &NewItem<'_>) -> Result<Option<i64>, StoreError> {
        let a = new.article;
        let row = self.0.query_opt(
            "INSERT INTO articles (feed, key, link, title, summary, content, authors,
                                   categories, lang, published, first_seen, last_seen,
                                   alertable, seen_ms, lang_detected)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14)
             ON CONFLICT (feed, key) DO NOTHING
             RETURNING id",
            &[
                &feed,
                &a.key,
                &a.link,
                &a.title,
                &a.summary,
                &a.content,
                &new.authors,
                &new.categories,
                &a.lang,
                &new.published,
                &new.now,
                &i64::from(new.alertable),
                &new.seen_ms,
                &a.lang_detected,
            ],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.get(0);
        if new.alertable {
            // As on SQLite: the matcher's to-do list, or first the full-text queue (issue 20).
            let mode: i64 = self
                .0
                .query_opt("SELECT full_text FROM feeds WHERE name = $1", &[&feed])?
                .map_or(0, |r| r.get(0));
            match (&a.link, wants_full_text(mode, a)) {
                (Some(link), true) => {
                    self.0.execute(
                        "INSERT INTO full_text_queue (article, link) VALUES ($1, $2)",
                        &[&id, link],
                    )?;
                }
                _ => {
                    self.0
                        .execute("INSERT INTO unmatched (article) VALUES ($1)", &[&id])?;
                }
            }
        }
        Ok(Some(id))
    }
}

impl Postgres {
    pub(crate) fn pending_articles(&self) -> Result<Vec<PendingArticle>, StoreError> {
        self.pending_articles_after(0, usize::MAX)
    }

    /// As SQLite's: at most `limit` pending articles with an id above `after`, oldest first.
    pub(crate) fn pending_articles_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PendingArticle>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids: Vec<i64> = self
            .conn()?
            .query(
                "SELECT article FROM unmatched WHERE article > $1 ORDER BY article LIMIT $2",
                &[&after, &limit],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.articles_by_id(&ids)
    }

    /// The to-do list's articles `ids` (those still on it), oldest first.
    pub(super) fn articles_by_id(&self, ids: &[i64]) -> Result<Vec<PendingArticle>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT a.id, a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published
             FROM unmatched u JOIN articles a ON a.id = u.article JOIN feeds f ON f.name = a.feed
             WHERE u.article = ANY($1)
             ORDER BY u.article",
            &[&ids],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(PendingArticle {
                id: r.get(0),
                feed: r.get(1),
                feed_title: r.get(2),
                article: Article {
                    key: r.get(3),
                    link: r.get(4),
                    title: r.get(5),
                    summary: r.get(6),
                    content: r.get(7),
                    authors: serde_json::from_str(r.get(8))?,
                    categories: serde_json::from_str(r.get(9))?,
                    lang: r.get(10),
                    published: r.get::<_, Option<i64>>(11).map(from_ts),
                    // Not stored on PostgreSQL yet (issue 20's column).
                    lang_detected: None,
                },
            });
        }
        Ok(out)
    }
}
