//! The full-text queue (issue 20): which feeds want their items' pages, the items waiting for
//! theirs, and every link fetched so far. A queued item reaches the matcher's `unmatched` list
//! when its page is read, failed or refused, in one transaction with its new text: nothing waits
//! forever and nothing is matched twice.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, Store, StoreError, ts};

/// Feed modes as stored in `feeds.full_text`.
pub const MODE_OFF: i64 = 0;
pub const MODE_ALWAYS: i64 = -1;

/// An item waiting for its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPage {
    pub article: i64,
    pub feed: String,
    pub link: String,
}

/// How fetching a queued item's page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    /// The page's main text, stored as the article's `content`.
    Text(String),
    /// Not fetched or not usable (robots.txt, an error, no main content): the reason; the item
    /// is matched on its feed text.
    Failed(String),
}

impl Store {
    /// Records each feed's full-text mode (see `Sqlite::set_full_text_mode_list`).
    pub fn set_full_text_modes<'a>(
        &mut self,
        modes: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Result<(), StoreError> {
        let list: Vec<(&str, i64)> = modes.into_iter().collect();
        self.set_full_text_mode_list(&list)
    }
}

impl Sqlite {
    /// Sets each configured feed's full-text mode (`MODE_OFF`, `MODE_ALWAYS` or a word count).
    pub fn set_full_text_mode_list(&mut self, modes: &[(&str, i64)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut set = tx.prepare_cached("UPDATE feeds SET full_text = ?2 WHERE name = ?1")?;
            for &(feed, mode) in modes {
                set.execute(params![feed, mode])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` items waiting for their page, oldest first.
    pub fn queued_pages(&self, limit: usize) -> Result<Vec<QueuedPage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT q.article, a.feed, q.link FROM full_text_queue q
             JOIN articles a ON a.id = q.article ORDER BY q.article LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], |r| {
            Ok(QueuedPage {
                article: r.get(0)?,
                feed: r.get(1)?,
                link: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The text an earlier fetch of `link` gave (another item with the same link), or the
    /// reason it failed; `None` when the link was never fetched.
    pub fn fetched_page(&self, link: &str) -> Result<Option<PageOutcome>, StoreError> {
        let outcome: Option<String> = self
            .conn
            .prepare_cached("SELECT outcome FROM full_text_pages WHERE link = ?1")?
            .query_row([link], |r| r.get(0))
            .optional()?;
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        if outcome != "ok" {
            return Ok(Some(PageOutcome::Failed(outcome)));
        }
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT content FROM articles WHERE link = ?1 AND full_text = 1 LIMIT 1",
            )?
            .query_row([link], |r| r.get(0))
            .optional()?;
        Ok(Some(match text {
            Some(t) => PageOutcome::Text(t),
            None => PageOutcome::Failed("the earlier text is pruned".into()),
        }))
    }

    /// Records a queued item's page: its text becomes the article's `content` (when there is
    /// one), the link is remembered, and the item joins the matcher's to-do list. One
    /// transaction.
    pub fn complete_page(
        &mut self,
        page: &QueuedPage,
        outcome: &PageOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let remembered = match outcome {
            PageOutcome::Text(text) => {
                tx.prepare_cached("UPDATE articles SET content = ?2, full_text = 1 WHERE id = ?1")?
                    .execute(params![page.article, text])?;
                "ok"
            }
            PageOutcome::Failed(reason) => reason.as_str(),
        };
        tx.prepare_cached(
            "INSERT INTO full_text_pages (link, fetched, outcome) VALUES (?1, ?2, ?3)
             ON CONFLICT (link) DO NOTHING",
        )?
        .execute(params![page.link, ts(now), remembered])?;
        let queued = tx
            .prepare_cached("DELETE FROM full_text_queue WHERE article = ?1")?
            .execute([page.article])?;
        if queued > 0 {
            tx.prepare_cached("INSERT OR IGNORE INTO unmatched (article) VALUES (?1)")?
                .execute([page.article])?;
        }
        tx.commit()?;
        Ok(())
    }
}
