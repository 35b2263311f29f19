//! The full-text queue on PostgreSQL (issue 20): SQLite's `full_text.rs` with `$n`
//! placeholders. A queued item joins the matcher's to-do list in the transaction that records
//! its page.

use chrono::{DateTime, Utc};

use super::{Postgres, ts};
use crate::store::{PageOutcome, QueuedPage, StoreError};

impl Postgres {
    pub(crate) fn set_full_text_mode_list(
        &mut self,
        modes: &[(&str, i64)],
    ) -> Result<(), StoreError> {
        let (names, modes): (Vec<&str>, Vec<i64>) = modes.iter().copied().unzip();
        self.conn()?.execute(
            "UPDATE feeds SET full_text = m.mode
             FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS m(name, mode)
             WHERE feeds.name = m.name AND feeds.full_text IS DISTINCT FROM m.mode",
            &[&names, &modes],
        )?;
        Ok(())
    }

    pub(crate) fn queued_pages(&self, limit: usize) -> Result<Vec<QueuedPage>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT q.article, a.feed, q.link, q.attempts FROM full_text_queue q
                 JOIN articles a ON a.id = q.article ORDER BY q.article LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(queued)
            .collect())
    }

    pub(crate) fn due_pages(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QueuedPage>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT q.article, a.feed, q.link, q.attempts FROM full_text_queue q
                 JOIN articles a ON a.id = q.article
                 WHERE q.next_attempt IS NULL OR q.next_attempt <= $1
                 ORDER BY q.article LIMIT $2",
                &[&ts(now), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(queued)
            .collect())
    }

    pub(crate) fn defer_page(
        &mut self,
        article: i64,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE full_text_queue SET attempts = attempts + 1, next_attempt = $2
             WHERE article = $1",
            &[&article, &ts(next_attempt)],
        )?;
        Ok(())
    }

    pub(crate) fn prune_full_text_pages(
        &mut self,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let pruned = self.conn()?.execute(
            "DELETE FROM full_text_pages WHERE fetched < $1",
            &[&ts(before)],
        )?;
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
    }

    pub(crate) fn fetched_page(&self, link: &str) -> Result<Option<PageOutcome>, StoreError> {
        let mut conn = self.conn()?;
        let Some(row) = conn.query_opt(
            "SELECT outcome FROM full_text_pages WHERE link = $1",
            &[&link],
        )?
        else {
            return Ok(None);
        };
        let outcome: String = row.get(0);
        if outcome != "ok" {
            return Ok(Some(PageOutcome::Failed(outcome)));
        }
        let text = conn.query_opt(
            "SELECT content FROM articles WHERE link = $1 AND full_text = 1 LIMIT 1",
            &[&link],
        )?;
        Ok(Some(match text {
            Some(r) => PageOutcome::Text(r.get(0)),
            None => PageOutcome::Failed("the earlier text is pruned".into()),
        }))
    }

    pub(crate) fn complete_page(
        &mut self,
        page: &QueuedPage,
        outcome: &PageOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let remembered = match outcome {
            PageOutcome::Text(text) => {
                tx.execute(
                    "UPDATE articles SET content = $2, full_text = 1 WHERE id = $1",
                    &[&page.article, text],
                )?;
                "ok"
            }
            PageOutcome::Failed(reason) => reason.as_str(),
        };
        tx.execute(
            "INSERT INTO full_text_pages (link, fetched, outcome) VALUES ($1, $2, $3)
             ON CONFLICT (link) DO NOTHING",
            &[&page.link, &ts(now), &remembered],
        )?;
        let queued = tx.execute(
            "DELETE FROM full_text_queue WHERE article = $1",
            &[&page.article],
        )?;
        if queued > 0 {
            tx.execute(
                "INSERT INTO unmatched (article) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&page.article],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn queued(r: &postgres::Row) -> QueuedPage {
    QueuedPage {
        article: r.get(0),
        feed: r.get(1),
        link: r.get(2),
        attempts: u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX),
    }
}
