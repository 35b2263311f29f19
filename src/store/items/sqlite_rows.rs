//! SQLite's item rows (`ItemRows`) on the poll's transaction. A poll's keys are read in one
//! statement (`prefetch`, the keys passed as a JSON array; none at all for a feed with no key
//! yet) and the key writes, which `store_items` issues only after its last read, are played in
//! memory (`key_book`) and written at `finish` with multi-row inserts, as are the new items'
//! places on the matcher's to-do list. Issue 22: with a statement per key and per to-do row,
//! statement overhead alone (bind, step, reset) was about a quarter of the cold cycle's store time.

use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Transaction, params};

use super::key_book::{KeyBook, KeyChanges, Story};
use super::{ItemRows, NewItem, wants_full_text};
use crate::model::Article;
use crate::store::{StoreError, batch};

/// SQLite's item rows: the poll's transaction, every statement cached on the connection.
pub(in crate::store) struct SqliteItems<'t, 'c> {
    tx: &'t Transaction<'c>,
    /// The feed whose poll this is (`finish` writes its keys).
    feed: &'t str,
    book: KeyBook,
}

impl<'t, 'c> SqliteItems<'t, 'c> {
    pub(in crate::store) fn new(tx: &'t Transaction<'c>, feed: &'t str) -> Self {
        SqliteItems {
            tx,
            feed,
            book: KeyBook::default(),
        }
    }
}

/// `values` as a JSON array, for `json_each(?)`.
fn json_list<T: serde::Serialize>(values: &[T]) -> Result<String, StoreError> {
    Ok(serde_json::to_string(values)?)
}

/// The key upserts of `finish`, one per batch size.
static KEY_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::statements(|n| {
        batch::values_sql(
            "INSERT INTO item_keys (feed, key, article)",
            true,
            2,
            n,
            " ON CONFLICT (feed, key) DO UPDATE SET article = excluded.article",
        )
    })
});

/// The to-do list's inserts, one per batch size.
static TODO_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    batch::statements(|n| batch::values_sql("INSERT INTO unmatched (article)", false, 1, n, ""))
});

impl ItemRows for SqliteItems<'_, '_> {
    fn prefetch(&mut self, feed: &str, keys: &[&str]) -> Result<(), StoreError> {
        self.book.told(keys.iter().copied());
        // A feed polled for the first time has no key to look for (the cold cycle).
        let known: bool = self
            .tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM item_keys WHERE feed = ?1)")?
            .query_row([feed], |r| r.get(0))?;
        if keys.is_empty() || !known {
            return Ok(());
        }
        // CROSS JOIN keeps the poll's keys the outer loop: one probe of the primary key each.
        let mut stmt = self.tx.prepare_cached(
            "SELECT j.value, k.article, a.title, a.link, a.last_seen
             FROM json_each(?2) j
             CROSS JOIN item_keys k ON k.feed = ?1 AND k.key = j.value
             CROSS JOIN articles a ON a.id = k.article",
        )?;
        let mut rows = stmt.query(params![feed, json_list(keys)?])?;
        while let Some(r) = rows.next()? {
            let story = Story {
                title: r.get(2)?,
                link: r.get(3)?,
                last_seen: r.get(4)?,
            };
            self.book.read(r.get(0)?, r.get(1)?, story);
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
            .prepare_cached(
                "SELECT k.article, a.title, a.link FROM item_keys k
                 JOIN articles a ON a.id = k.article WHERE k.feed = ?1 AND k.key = ?2",
            )?
            .query_row(params![feed, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?)
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
            .prepare_cached(
                "SELECT k.article, a.title FROM item_keys k JOIN articles a ON a.id = k.article
                 WHERE k.feed = ?1 AND k.key = ?2 AND a.last_seen >= ?3",
            )?
            .query_row(params![feed, key, since], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn add_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        if !self.book.add(key, article) {
            self.tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO item_keys (feed, key, article) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![feed, key, article])?;
        }
        Ok(())
    }

    fn move_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError> {
        if !self.book.point(key, article) {
            self.tx
                .prepare_cached(
                    "INSERT INTO item_keys (feed, key, article) VALUES (?1, ?2, ?3)
                     ON CONFLICT (feed, key) DO UPDATE SET article = excluded.article",
                )?
                .execute(params![feed, key, article])?;
        }
        Ok(())
    }

    fn drop_stale(&mut self, article: i64, key: &str) -> Result<(), StoreError> {
        // A story holds only its current loose keys: one whose headline is edited daily must
        // not collect a key per edit for as long as it is listed. The keys the poll names are
        // let go in the book; the others are deleted at `finish`.
        self.book.drop_stale(article, key);
        Ok(())
    }

    fn refresh(&mut self, article: i64, now: i64, a: &Article) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE articles SET last_seen = ?2, title = ?3, link = COALESCE(?4, link),
                     summary = ?5, content = ?6, text_pruned = 0
                 WHERE id = ?1",
            )?
            .execute(params![article, now, a.title, a.link, a.summary, a.content])?;
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
        let mut ids = Vec::with_capacity(new.len());
        for n in new {
            let a = n.article;
            let stored = self
                .tx
                .prepare_cached(
                    "INSERT INTO articles (feed, key, link, title, summary, content, authors,
                                           categories, lang, published, first_seen, last_seen,
                                           alertable, seen_ms, lang_detected)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14)
                     ON CONFLICT (feed, key) DO NOTHING",
                )?
                .execute(params![
                    feed,
                    a.key,
                    a.link,
                    a.title,
                    a.summary,
                    a.content,
                    n.authors,
                    n.categories,
                    a.lang,
                    n.published,
                    n.now,
                    n.alertable,
                    n.seen_ms,
                    a.lang_detected,
                ])?;
            ids.push((stored > 0).then(|| self.tx.last_insert_rowid()));
        }
        if !new
            .iter()
            .zip(&ids)
            .any(|(n, id)| n.alertable && id.is_some())
        {
            return Ok(ids);
        }
        // In the same transaction as the articles: the matcher's to-do list, or first the
        // full-text queue (issue 20), which hands an item on once its page is read.
        let mode: i64 = self
            .tx
            .prepare_cached("SELECT full_text FROM feeds WHERE name = ?1")?
            .query_row([feed], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let mut todo: Vec<i64> = Vec::new();
        for (n, id) in new.iter().zip(&ids) {
            let (Some(id), true) = (*id, n.alertable) else {
                continue;
            };
            match (&n.article.link, wants_full_text(mode, n.article)) {
                (Some(link), true) => {
                    self.tx
                        .prepare_cached(
                            "INSERT INTO full_text_queue (article, link) VALUES (?1, ?2)",
                        )?
                        .execute(params![id, link])?;
                }
                _ => todo.push(id),
            }
        }
        batch::execute(self.tx, &TODO_SQL, None, 1, &todo, |stmt, at, id| {
            stmt.raw_bind_parameter(at, id)
        })?;
        Ok(ids)
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        let KeyChanges {
            gone,
            moved,
            drops,
            named,
        } = self.book.changes();
        if !drops.is_empty() {
            // `drop_stale` on the keys the poll did not name (those it named are `gone`).
            let named = json_list(&named)?;
            let mut stmt = self.tx.prepare_cached(
                "DELETE FROM item_keys WHERE article = ?1
                     AND substr(key, 1, instr(key, ':')) = ?2
                     AND key NOT IN (SELECT value FROM json_each(?3))",
            )?;
            for (article, kind) in drops {
                stmt.execute(params![article, kind, named])?;
            }
        }
        let feed = self.feed;
        if !gone.is_empty() {
            self.tx
                .prepare_cached(
                    "DELETE FROM item_keys
                     WHERE feed = ?1 AND key IN (SELECT value FROM json_each(?2))",
                )?
                .execute(params![feed, json_list(&gone)?])?;
        }
        batch::execute(
            self.tx,
            &KEY_SQL,
            Some(feed),
            2,
            &moved,
            |stmt, at, (key, id)| {
                stmt.raw_bind_parameter(at, key)?;
                stmt.raw_bind_parameter(at + 1, id)
            },
        )?;
        Ok(())
    }
}
