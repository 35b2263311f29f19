//! What the web console reads (issue 18): recent matches with filters and keyset paging, match
//! counts per rule and day, a feed's notices, the outbox as a history of sent emails, and a
//! bounded window of stored articles for the playground. Read-only, every list bounded by a
//! `LIMIT` the caller states; nothing here writes.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{Article, PendingMatch};

/// Which matches `/matches` lists. Paging is by match id, newest first: `before` is the smallest
/// id of the previous page (a keyset, so page 1,000 costs what page 1 does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchFilter {
    pub rule: Option<String>,
    pub feed: Option<String>,
    pub lang: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// One match as the console lists it: the row every email uses, with the article's language.
#[derive(Debug, Clone)]
pub struct MatchView {
    pub row: PendingMatch,
    pub lang: Option<String>,
    pub recorded: Option<DateTime<Utc>>,
}

/// One rule's stored matches: all time, and per day back from `now` (`[0]` the last 24 hours).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCounts {
    pub rule_id: String,
    pub total: u64,
    pub daily: Vec<u64>,
}

/// One outbox row as the console's `/digests` lists it (no message bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    pub id: i64,
    pub digest_name: String,
    pub kind: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
    pub recipients: Vec<String>,
}

/// A stored article for the playground.
#[derive(Debug, Clone)]
pub struct ArticleView {
    pub id: i64,
    pub feed: String,
    pub feed_title: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub article: Article,
}

const MATCH_COLUMNS: &str = "m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link,
    a.summary, a.published, a.first_seen, a.content, COALESCE(a.lang, a.lang_detected), m.recorded,
    a.full_text";

fn read_match(r: &rusqlite::Row<'_>) -> rusqlite::Result<(MatchView, String)> {
    Ok((
        MatchView {
            row: PendingMatch {
                id: r.get(0)?,
                rule_id: r.get(1)?,
                hits: Vec::new(),
                article_id: r.get(3)?,
                feed: r.get(4)?,
                feed_title: r.get(5)?,
                title: r.get(6)?,
                link: r.get(7)?,
                summary: r.get(8)?,
                published: r.get::<_, Option<i64>>(9)?.map(from_ts),
                first_seen: from_ts(r.get(10)?),
                content: r.get(11)?,
                full_text: r.get(14)?,
                lang: r.get(12)?,
                // The console's pages do not show the rule-set version.
                rules_hash: None,
            },
            lang: r.get(12)?,
            recorded: r.get::<_, Option<i64>>(13)?.map(from_ts),
        },
        r.get(2)?,
    ))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Sqlite {
    /// Matches newest first under `f`; each filter is optional (an absent one matches all). Uses
    /// `matches_rule` for a rule filter and the primary key otherwise; a feed or language filter
    /// is checked on the joined article while walking newest first, stopping at `f.limit` rows.
    pub fn console_matches(&self, f: &MatchFilter) -> Result<Vec<MatchView>, StoreError> {
        // Only the filters given reach the SQL, so the planner sees plain conditions it can take
        // an index for (`matches_rule`, `matches_recorded`, the primary key) instead of
        // `?1 IS NULL OR …`, which it cannot.
        let mut conds: Vec<String> = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |cond: &str, v: rusqlite::types::Value| {
            values.push(v);
            conds.push(cond.replace('?', &format!("?{}", values.len())));
        };
        if let Some(rule) = &f.rule {
            push("m.rule_id = ?", rule.clone().into());
        }
        if let Some(feed) = &f.feed {
            push("a.feed = ?", feed.clone().into());
        }
        if let Some(lang) = &f.lang {
            push("(a.lang = ? OR a.lang LIKE ? || '-%')", lang.clone().into());
        }
        if let Some(since) = f.since {
            push("m.recorded >= ?", ts(since).into());
        }
        if let Some(before) = f.before {
            push("m.id < ?", before.into());
        }
        values.push(limit(f.limit).into());
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {MATCH_COLUMNS}
             FROM matches m JOIN articles a ON a.id = m.article JOIN feeds f ON f.name = a.feed
             {where_} ORDER BY m.id DESC LIMIT ?{}",
            values.len()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), read_match)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut view, hits) = row?;
            view.row.hits = serde_json::from_str(&hits)?;
            out.push(view);
        }
        Ok(out)
    }

    /// The newest `limit` health notices of one feed.
    pub fn feed_notice_history(
        &self,
        feed: &str,
        limit_to: usize,
    ) -> Result<Vec<(String, DateTime<Utc>, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, at, detail FROM feed_notices WHERE feed = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![feed, limit(limit_to)], |r| {
            Ok((r.get(0)?, from_ts(r.get(1)?), r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbox rows newest first, `limit` of them, with ids below `before` when given.
    pub fn sent_emails(
        &self,
        before: Option<i64>,
        limit_to: usize,
    ) -> Result<Vec<SentEmail>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, digest_name, kind, status, attempts, next_attempt, last_error, created,
                    sent, recipients
             FROM outbox WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before, limit(limit_to)], |r| {
            Ok((
                SentEmail {
                    id: r.get(0)?,
                    digest_name: r.get(1)?,
                    kind: r.get(2)?,
                    status: r.get(3)?,
                    attempts: r.get(4)?,
                    next_attempt: from_ts(r.get(5)?),
                    last_error: r.get(6)?,
                    created: from_ts(r.get(7)?),
                    sent: r.get::<_, Option<i64>>(8)?.map(from_ts),
                    recipients: Vec::new(),
                },
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut e, recipients) = row?;
            e.recipients = serde_json::from_str(&recipients)?;
            out.push(e);
        }
        Ok(out)
    }

    /// The raw bytes of outbox message `id`, if it exists.
    pub fn email_bytes(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT raw FROM outbox WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// The newest `limit` stored articles with an id above `after` whose text is kept, newest
    /// first (the playground's corpus; the id order is the order they were stored).
    pub fn recent_articles(
        &self,
        after: i64,
        limit_to: usize,
    ) -> Result<Vec<ArticleView>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.feed, f.title, a.first_seen, a.key, a.link, a.title, a.summary,
                    a.content, a.authors, a.categories, a.lang, a.published, a.lang_detected
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.id > ?1 AND a.text_pruned = 0 ORDER BY a.id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit(limit_to)], |r| {
            Ok((
                ArticleView {
                    id: r.get(0)?,
                    feed: r.get(1)?,
                    feed_title: r.get(2)?,
                    first_seen: from_ts(r.get(3)?),
                    article: Article {
                        key: r.get(4)?,
                        link: r.get(5)?,
                        title: r.get(6)?,
                        summary: r.get(7)?,
                        content: r.get(8)?,
                        authors: Vec::new(),
                        categories: Vec::new(),
                        lang: r.get(11)?,
                        published: r.get::<_, Option<i64>>(12)?.map(from_ts),
                        lang_detected: r.get(13)?,
                    },
                },
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut v, authors, categories) = row?;
            v.article.authors = serde_json::from_str(&authors)?;
            v.article.categories = serde_json::from_str(&categories)?;
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{compose, msg, on_both_backends, with_matches};
    use super::*;

    on_both_backends! {
        /// Every console read over a store with one match and one composed digest.
        fn the_console_reads_what_is_stored(s) {
            let now = with_matches(s);
            let all = MatchFilter {
                limit: 10,
                ..MatchFilter::default()
            };
            let listed = s.console_matches(&all).expect("matches");
            assert_eq!(listed.len(), 1);
            let m = &listed[0];
            assert_eq!((m.row.rule_id.as_str(), m.row.title.as_str()), ("minerals", "Title a"));
            assert_eq!(m.row.hits.len(), 1);
            assert_eq!(m.recorded, Some(now));
            let none = |f: MatchFilter| s.console_matches(&f).expect("matches").len();
            assert_eq!(none(MatchFilter { rule: Some("other".into()), ..all.clone() }), 0);
            assert_eq!(none(MatchFilter { feed: Some("f".into()), ..all.clone() }), 1);
            assert_eq!(none(MatchFilter { before: Some(m.row.id), ..all.clone() }), 0);
            assert_eq!(
                none(MatchFilter { since: Some(now + chrono::Duration::seconds(1)), ..all.clone() }),
                0
            );
            let counts = s.rule_counts(now, 3).expect("counts");
            assert_eq!(
                counts,
                [RuleCounts { rule_id: "minerals".into(), total: 1, daily: vec![1, 0, 0] }]
            );
            assert!(s.feed_notice_history("f", 5).expect("notices").is_empty());
            let id = compose(s, "main", now, &msg("<c@x>"));
            let sent = s.sent_emails(None, 5).expect("emails");
            assert_eq!(sent.len(), 1);
            assert_eq!((sent[0].id, sent[0].status.as_str()), (id, "queued"));
            assert_eq!(sent[0].recipients, ["a@example.org"]);
            assert!(s.sent_emails(Some(id), 5).expect("emails").is_empty());
            assert_eq!(
                s.email_bytes(id).expect("bytes"),
                Some(b"Subject: x\r\n\r\nbody".to_vec())
            );
            assert_eq!(s.email_bytes(id + 1).expect("bytes"), None);
            let articles = s.recent_articles(0, 10).expect("articles");
            assert_eq!(
                articles.iter().map(|a| a.article.key.as_str()).collect::<Vec<_>>(),
                ["b", "a"]
            );
            assert_eq!(articles[0].article.authors, ["A. Writer"]);
        }
    }
}
