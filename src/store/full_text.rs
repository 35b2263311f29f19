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
    /// Fetches of the page that failed transiently so far.
    pub attempts: u32,
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
            // A mode already stored is not written again: rewriting every feed's row at each
            // start dirtied the feeds table's pages for nothing (issue 22).
            let mut set = tx.prepare_cached(
                "UPDATE feeds SET full_text = ?2 WHERE name = ?1 AND full_text IS NOT ?2",
            )?;
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
            "SELECT q.article, a.feed, q.link, q.attempts FROM full_text_queue q
             JOIN articles a ON a.id = q.article ORDER BY q.article LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], |r| {
            Ok(QueuedPage {
                article: r.get(0)?,
                feed: r.get(1)?,
                link: r.get(2)?,
                attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` items whose page is due at `now` (never tried, or its back-off over),
    /// oldest first, with their failed attempts so far.
    pub fn due_pages(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QueuedPage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT q.article, a.feed, q.link, q.attempts FROM full_text_queue q
             JOIN articles a ON a.id = q.article
             WHERE q.next_attempt IS NULL OR q.next_attempt <= ?1
             ORDER BY q.article LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![ts(now), limit], |r| {
            Ok(QueuedPage {
                article: r.get(0)?,
                feed: r.get(1)?,
                link: r.get(2)?,
                attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page that failed transiently waits in the queue until `next_attempt`.
    pub fn defer_page(
        &mut self,
        article: i64,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE full_text_queue SET attempts = attempts + 1, next_attempt = ?2
                 WHERE article = ?1",
            )?
            .execute(params![article, ts(next_attempt)])?;
        Ok(())
    }

    /// Forgets the links fetched before `before` (the text retention): their articles' text is
    /// pruned by then, and an item seen again is known by its identity, not by its link.
    pub fn prune_full_text_pages(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM full_text_pages WHERE fetched < ?1")?
            .execute([ts(before)])?)
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

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, fetched, on_both_backends, open, poll, t};
    use super::*;
    use crate::model::{Article, Validators};

    on_both_backends! {
        /// A full-text feed's new items wait for their page, then reach the matcher once with
        /// the page's text (or their feed text, when the page failed); a link fetched once is
        /// remembered for the next item that names it.
        fn queued_items_reach_the_matcher_once_their_page_is_read(s) {
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "full", "https://example.org/full");
            feed(s, "plain", "https://example.org/plain");
            s.set_full_text_modes([("full", MODE_ALWAYS), ("plain", MODE_OFF)])
                .expect("modes");
            poll(s, "full", &[art("a", None), art("b", None)], now, DAY);
            poll(s, "plain", &[art("c", None)], now, DAY);
            let pending = |s: &Store| -> Vec<String> {
                s.pending_articles()
                    .expect("pending")
                    .into_iter()
                    .map(|p| p.article.key)
                    .collect()
            };
            assert_eq!(pending(s), ["c"], "the full-text items wait for their page");
            let queued = s.queued_pages(10).expect("queue");
            assert_eq!(
                queued.iter().map(|q| q.link.as_str()).collect::<Vec<_>>(),
                ["https://example.org/a", "https://example.org/b"]
            );
            assert_eq!(s.fetched_page(&queued[0].link).expect("page"), None);
            let text = PageOutcome::Text("The page's own words.".into());
            s.complete_page(&queued[0], &text, now).expect("complete");
            let failed = PageOutcome::Failed("HTTP 404".into());
            s.complete_page(&queued[1], &failed, now).expect("complete");
            // Completing again (a retried write) changes nothing.
            s.complete_page(&queued[1], &failed, now).expect("complete");
            assert!(s.queued_pages(10).expect("queue").is_empty());
            assert_eq!(pending(s), ["a", "b", "c"]);
            let a = s
                .pending_articles()
                .expect("pending")
                .into_iter()
                .find(|p| p.article.key == "a")
                .expect("a");
            assert_eq!(a.article.content, "The page's own words.");
            assert_eq!(s.fetched_page(&queued[0].link).expect("page"), Some(text));
            assert_eq!(s.fetched_page(&queued[1].link).expect("page"), Some(failed));
        }
    }

    #[test]
    fn a_deferred_page_waits_and_fetched_links_are_pruned_with_the_text() {
        let (_dir, mut s) = open();
        feed(&mut s, "f", "https://e.example/feed");
        s.set_full_text_modes([("f", super::MODE_ALWAYS)])
            .expect("mode");
        let now = t("2026-03-01T12:00:00Z");
        let item = Article {
            key: "id:a".into(),
            link: Some("https://e.example/a".into()),
            title: "A".into(),
            ..Article::default()
        };
        let v = Validators::default();
        let window = std::time::Duration::from_secs(86_400);
        s.record_poll("f", &fetched(None, &v, &[item], now, window))
            .expect("poll");
        let due = s.due_pages(now, 10).expect("due");
        assert_eq!((due.len(), due[0].attempts), (1, 0));
        s.defer_page(due[0].article, t("2026-03-01T12:01:00Z"))
            .expect("defer");
        assert!(
            s.due_pages(t("2026-03-01T12:00:59Z"), 10)
                .expect("due")
                .is_empty()
        );
        let again = s.due_pages(t("2026-03-01T12:01:00Z"), 10).expect("due");
        assert_eq!(again[0].attempts, 1);
        s.complete_page(
            &again[0],
            &PageOutcome::Failed("HTTP status 500".into()),
            now,
        )
        .expect("complete");
        assert!(
            s.fetched_page("https://e.example/a")
                .expect("read")
                .is_some()
        );
        assert_eq!(
            s.prune_full_text_pages(now).expect("prune"),
            0,
            "not older than the cut"
        );
        assert_eq!(
            s.prune_full_text_pages(t("2026-03-02T00:00:00Z"))
                .expect("prune"),
            1
        );
        assert!(
            s.fetched_page("https://e.example/a")
                .expect("read")
                .is_none()
        );
    }
}
