//! Item identity on PostgreSQL: the rows behind `store_items` (`ItemRows`; the rules are
//! SQLite's `items.rs`, once), inside the poll's transaction; and the matcher's to-do list as
//! the match stage reads it (`pending_articles`).
//!
//! One statement per batch rather than per row (issue 17: a round trip each made a cold cycle
//! 45× SQLite's): the poll's keys are read in one query (`prefetch`), its new items inserted in
//! one (`insert_all`), and the key and refresh writes, which `store_items` only issues after its
//! last read, are played on the keys read and written at `finish`, three statements at most.

use std::collections::HashMap;

use super::conn::CachedTx;
use super::{Postgres, from_ts};
use crate::model::Article;
use crate::store::items::key_book::{KeyBook, KeyChanges, Story};
use crate::store::items::{ItemRows, NewItem, wants_full_text};
use crate::store::{PendingArticle, StoreError};

pub(super) use crate::store::items::store_items as store_items_with;

/// `store_items` on the poll's PostgreSQL transaction.
pub(super) fn store_items(
    tx: &mut CachedTx<'_>,
    feed: &str,
    articles: &[Article],
    now: chrono::DateTime<chrono::Utc>,
    first_poll: bool,
    cutoff: Option<chrono::DateTime<chrono::Utc>>,
    full_text: i64,
) -> Result<crate::store::items::Items, StoreError> {
    let mut rows = PgItems {
        tx,
        feed: feed.to_string(),
        full_text,
        book: KeyBook::default(),
        refreshes: HashMap::new(),
    };
    store_items_with(&mut rows, feed, articles, now, first_poll, cutoff)
}

/// A known item's refresh, as `refresh` asked for it (the last one per story wins, its link
/// falling back on the one before, as two `UPDATE`s in a row would leave it).
struct Refresh {
    last_seen: i64,
    title: String,
    link: Option<String>,
    summary: String,
    content: String,
}

struct PgItems<'t, 'c> {
    tx: &'t mut CachedTx<'c>,
    feed: String,
    /// The feed's `full_text` mode, as the poll read it with the feed's other columns.
    full_text: i64,
    /// The keys `prefetch` was told of, as read and written so far.
    book: KeyBook,
    refreshes: HashMap<i64, Refresh>,
}

impl ItemRows for PgItems<'_, '_> {
    fn prefetch(&mut self, feed: &str, keys: &[&str]) -> Result<(), StoreError> {
        let rows = self.tx.query(
            "SELECT k.key, k.article, a.title, a.link, a.last_seen FROM item_keys k
             JOIN articles a ON a.id = k.article WHERE k.feed = $1 AND k.key = ANY($2)",
            &[&feed, &keys],
        )?;
        self.book.told(keys.iter().copied());
        for r in &rows {
            let story = Story {
                title: r.get(2),
                link: r.get(3),
                last_seen: r.get(4),
            };
            self.book.read(r.get(0), r.get(1), story);
        }
        Ok(())
    }

    fn find(
        &mut self,
        feed: &str,
        key: &str,
    ) -> Result<Option<(i64, String, Option<String>)>, StoreError> {
        if let Some(found) = self.book.find(key) {
            return Ok(found);
        }
        Ok(self
            .tx
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
        if let Some(found) = self.book.find_loose(key, since) {
            return Ok(found);
        }
        Ok(self
            .tx
            .query_opt(
                "SELECT k.article, a.title FROM item_keys k
                 JOIN articles a ON a.id = k.article
                 WHERE k.feed = $1 AND k.key = $2 AND a.last_seen >= $3",
                &[&feed, &key, &since],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn add_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        if !self.book.add(key, article) {
            self.tx.execute(
                "INSERT INTO item_keys (feed, key, article) VALUES ($1, $2, $3)
                 ON CONFLICT (feed, key) DO NOTHING",
                &[&feed, &key, &article],
            )?;
        }
        Ok(())
    }

    fn move_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        if !self.book.point(key, article) {
            self.tx.execute(
                "INSERT INTO item_keys (feed, key, article) VALUES ($1, $2, $3)
                 ON CONFLICT (feed, key) DO UPDATE SET article = excluded.article",
                &[&feed, &key, &article],
            )?;
        }
        Ok(())
    }

    fn drop_stale(&mut self, article: i64, key: &str) -> Result<(), StoreError> {
        // The story's keys this poll does not list are deleted at `finish`.
        self.book.drop_stale(article, key);
        Ok(())
    }

    fn refresh(&mut self, article: i64, now: i64, a: &Article) -> Result<(), StoreError> {
        let before = self.refreshes.remove(&article).and_then(|r| r.link);
        self.refreshes.insert(
            article,
            Refresh {
                last_seen: now,
                title: a.title.clone(),
                link: a.link.clone().or(before),
                summary: a.summary.clone(),
                content: a.content.clone(),
            },
        );
        Ok(())
    }

    fn insert(&mut self, feed: &str, new: &NewItem<'_>) -> Result<Option<i64>, StoreError> {
        Ok(self
            .insert_all(feed, std::slice::from_ref(new))?
            .pop()
            .flatten())
    }

    fn insert_all(
        &mut self,
        feed: &str,
        new: &[NewItem<'_>],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let col = |f: fn(&NewItem<'_>) -> Option<String>| new.iter().map(f).collect::<Vec<_>>();
        let keys = col(|n| Some(n.article.key.clone()));
        let links = col(|n| n.article.link.clone());
        let titles = col(|n| Some(n.article.title.clone()));
        let summaries = col(|n| Some(n.article.summary.clone()));
        let contents = col(|n| Some(n.article.content.clone()));
        let authors = col(|n| Some(n.authors.clone()));
        let categories = col(|n| Some(n.categories.clone()));
        let langs = col(|n| n.article.lang.clone());
        let detected = col(|n| n.article.lang_detected.clone());
        let published: Vec<Option<i64>> = new.iter().map(|n| n.published).collect();
        let firsts: Vec<i64> = new.iter().map(|n| n.now).collect();
        let alertable: Vec<i64> = new.iter().map(|n| i64::from(n.alertable)).collect();
        let seen_ms: Vec<i64> = new.iter().map(|n| n.seen_ms).collect();
        // In the items' order, so that ids rise as they did one insert at a time, and the
        // first of two items with one key is the one stored.
        let rows = self.tx.query(
            "INSERT INTO articles (feed, key, link, title, summary, content, authors,
                                   categories, lang, published, first_seen, last_seen,
                                   alertable, seen_ms, lang_detected)
             SELECT $1, u.key, u.link, u.title, u.summary, u.content, u.authors, u.categories,
                    u.lang, u.published, u.first_seen, u.first_seen, u.alertable, u.seen_ms,
                    u.detected
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],
                         $12::bigint[], $13::bigint[], $14::text[])
                  WITH ORDINALITY AS u(key, link, title, summary, content, authors, categories,
                                       lang, published, first_seen, alertable, seen_ms,
                                       detected, ord)
             ORDER BY u.ord
             ON CONFLICT (feed, key) DO NOTHING
             RETURNING id, key",
            &[
                &feed,
                &keys,
                &links,
                &titles,
                &summaries,
                &contents,
                &authors,
                &categories,
                &langs,
                &published,
                &firsts,
                &alertable,
                &seen_ms,
                &detected,
            ],
        )?;
        let mut stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(1), r.get(0))).collect();
        let ids: Vec<Option<i64>> = new.iter().map(|n| stored.remove(&n.article.key)).collect();
        // As on SQLite, in the same transaction: the matcher's to-do list, or first the
        // full-text queue (issue 20) for a feed that reads pages.
        if !new
            .iter()
            .zip(&ids)
            .any(|(n, id)| n.alertable && id.is_some())
        {
            return Ok(ids);
        }
        let mode = self.full_text;
        let mut todo: Vec<i64> = Vec::new();
        let mut pages: (Vec<i64>, Vec<&str>) = (Vec::new(), Vec::new());
        for (n, id) in new.iter().zip(&ids) {
            let (Some(id), true) = (id, n.alertable) else {
                continue;
            };
            match (&n.article.link, wants_full_text(mode, n.article)) {
                (Some(link), true) => {
                    pages.0.push(*id);
                    pages.1.push(link);
                }
                _ => todo.push(*id),
            }
        }
        if !todo.is_empty() {
            self.tx.execute(
                "INSERT INTO unmatched (article) SELECT * FROM UNNEST($1::bigint[])",
                &[&todo],
            )?;
        }
        if !pages.0.is_empty() {
            self.tx.execute(
                "INSERT INTO full_text_queue (article, link)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[])",
                &[&pages.0, &pages.1],
            )?;
        }
        Ok(ids)
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if !self.refreshes.is_empty() {
            let mut ids = Vec::with_capacity(self.refreshes.len());
            let mut seen = Vec::with_capacity(ids.capacity());
            let mut titles = Vec::with_capacity(ids.capacity());
            let mut links = Vec::with_capacity(ids.capacity());
            let mut summaries = Vec::with_capacity(ids.capacity());
            let mut contents = Vec::with_capacity(ids.capacity());
            for (id, r) in &self.refreshes {
                ids.push(*id);
                seen.push(r.last_seen);
                titles.push(r.title.as_str());
                links.push(r.link.as_deref());
                summaries.push(r.summary.as_str());
                contents.push(r.content.as_str());
            }
            self.tx.execute(
                "UPDATE articles a SET last_seen = u.last_seen, title = u.title,
                     link = COALESCE(u.link, a.link), summary = u.summary,
                     content = u.content, text_pruned = 0
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                             $6::text[]) AS u(id, last_seen, title, link, summary, content)
                 WHERE a.id = u.id",
                &[&ids, &seen, &titles, &links, &summaries, &contents],
            )?;
        }
        // The keys read: each to its owner after the writes, in one statement per kind.
        let KeyChanges {
            gone,
            moved,
            drops,
            named,
        } = self.book.changes();
        let (moved, to): (Vec<&str>, Vec<i64>) = moved.into_iter().unzip();
        if !drops.is_empty() {
            // `drop_stale` on the keys the poll did not name (those it named are `gone`).
            let (stories, kinds): (Vec<i64>, Vec<&str>) =
                drops.iter().map(|(a, k)| (*a, k.as_str())).unzip();
            self.tx.execute(
                "DELETE FROM item_keys k USING UNNEST($1::bigint[], $2::text[]) AS d(article, kind)
                 WHERE k.article = d.article
                   AND substr(k.key, 1, strpos(k.key, ':')) = d.kind
                   AND NOT (k.key = ANY($3))",
                &[&stories, &kinds, &named],
            )?;
        }
        if !gone.is_empty() {
            self.tx.execute(
                "DELETE FROM item_keys WHERE feed = $1 AND key = ANY($2)",
                &[&self.feed, &gone],
            )?;
        }
        if !moved.is_empty() {
            self.tx.execute(
                "INSERT INTO item_keys (feed, key, article)
                 SELECT $1, u.key, u.article FROM UNNEST($2::text[], $3::bigint[]) AS u(key, article)
                 ON CONFLICT (feed, key) DO UPDATE SET article = excluded.article",
                &[&self.feed, &moved, &to],
            )?;
        }
        Ok(())
    }
}

/// The columns `pending_article` reads, of `articles a` and `feeds f`.
macro_rules! pending_columns {
    () => {
        "a.id, a.feed, f.title, a.key, a.link, a.title, a.summary, a.content, a.authors,
         a.categories, a.lang, a.published"
    };
}

/// The to-do list's articles `$1` (those still on it), oldest first: `pending_article`'s rows.
pub(super) const PENDING_BY_ID: &str = concat!(
    "SELECT ",
    pending_columns!(),
    " FROM unmatched u JOIN articles a ON a.id = u.article
      LEFT JOIN feeds f ON f.name = a.feed
      WHERE u.article = ANY($1)
      ORDER BY u.article"
);

/// A row of `pending_columns!` as the matcher reads it.
pub(super) fn pending_article(r: &postgres::Row) -> Result<PendingArticle, StoreError> {
    Ok(PendingArticle {
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
    })
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
        let rows = self.conn()?.query(PENDING_BY_ID, &[&ids])?;
        rows.iter().map(pending_article).collect()
    }
}
