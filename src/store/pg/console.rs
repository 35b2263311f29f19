//! What the web console reads, on PostgreSQL: SQLite's `console.rs` with `$n` placeholders.
//! Read-only; every list bounded by the caller's limit.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use postgres::types::ToSql;

use super::{Postgres, from_ts, ts, unsigned};
use crate::model::{Article, PendingMatch};
use crate::store::StoreError;
use crate::store::console::{ArticleView, MatchFilter, MatchView, RuleCounts, SentEmail};

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Postgres {
    pub(crate) fn console_matches(&self, f: &MatchFilter) -> Result<Vec<MatchView>, StoreError> {
        // As on SQLite, only the filters given reach the SQL.
        let mut conds: Vec<String> = Vec::new();
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        let mut push = |cond: &str, v: Box<dyn ToSql + Sync>| {
            values.push(v);
            conds.push(cond.replace('?', &format!("${}", values.len())));
        };
        if let Some(rule) = &f.rule {
            push("m.rule_id = ?", Box::new(rule.clone()));
        }
        if let Some(feed) = &f.feed {
            push("a.feed = ?", Box::new(feed.clone()));
        }
        if let Some(lang) = &f.lang {
            push(
                "(a.lang = ? OR a.lang LIKE ? || '-%')",
                Box::new(lang.clone()),
            );
        }
        if let Some(since) = f.since {
            push("m.recorded >= ?", Box::new(ts(since)));
        }
        if let Some(before) = f.before {
            push("m.id < ?", Box::new(before));
        }
        values.push(Box::new(limit(f.limit)));
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
                    a.published, a.first_seen, a.content, COALESCE(a.lang, a.lang_detected),
                    m.recorded, a.full_text
             FROM matches m JOIN articles a ON a.id = m.article JOIN feeds f ON f.name = a.feed
             {where_} ORDER BY m.id DESC LIMIT ${}",
            values.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
        let rows = self.conn()?.query(&sql, &params)?;
        rows.iter()
            .map(|r| {
                let lang: Option<String> = r.get(12);
                Ok(MatchView {
                    row: PendingMatch {
                        id: r.get(0),
                        rule_id: r.get(1),
                        hits: serde_json::from_str(r.get(2))?,
                        article_id: r.get(3),
                        feed: r.get(4),
                        feed_title: r.get(5),
                        title: r.get(6),
                        link: r.get(7),
                        summary: Arc::from(r.get::<_, &str>(8)),
                        published: r.get::<_, Option<i64>>(9).map(from_ts),
                        first_seen: from_ts(r.get(10)),
                        content: Arc::from(r.get::<_, &str>(11)),
                        full_text: r.get::<_, i64>(14) != 0,
                        lang: lang.clone(),
                        // The console's pages do not show the rule-set version.
                        rules_hash: None,
                    },
                    lang,
                    recorded: r.get::<_, Option<i64>>(13).map(from_ts),
                })
            })
            .collect()
    }

    pub(crate) fn rule_counts(
        &self,
        now: DateTime<Utc>,
        days: usize,
    ) -> Result<Vec<RuleCounts>, StoreError> {
        // `rule_days` (kept by the schema's triggers on `matches`), as SQLite reads it: a
        // read costs the rules × days it holds, not the matches.
        let mut conn = self.conn()?;
        let mut out: Vec<RuleCounts> = conn
            .query(
                "SELECT rule_id, SUM(n)::BIGINT FROM rule_days GROUP BY rule_id
                 ORDER BY rule_id COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| RuleCounts {
                rule_id: r.get(0),
                total: unsigned(r.get(1)),
                daily: vec![0; days],
            })
            .collect();
        let today = ts(now).div_euclid(86_400);
        let rows = conn.query(
            "SELECT rule_id, $1 - day, n FROM rule_days WHERE day <= $1 AND day > $1 - $2",
            &[&today, &limit(days)],
        )?;
        for r in &rows {
            let (rule, day, n): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let Ok(i) = out.binary_search_by(|c| c.rule_id.as_str().cmp(&rule)) else {
                continue;
            };
            if let Some(slot) = usize::try_from(day)
                .ok()
                .and_then(|d| out[i].daily.get_mut(d))
            {
                *slot = unsigned(n);
            }
        }
        Ok(out)
    }

    pub(crate) fn feed_notice_history(
        &self,
        feed: &str,
        limit_to: usize,
    ) -> Result<Vec<(String, DateTime<Utc>, String)>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT kind, at, detail FROM feed_notices WHERE feed = $1
                 ORDER BY id DESC LIMIT $2",
                &[&feed, &limit(limit_to)],
            )?
            .iter()
            .map(|r| (r.get(0), from_ts(r.get(1)), r.get(2)))
            .collect())
    }

    pub(crate) fn sent_emails(
        &self,
        before: Option<i64>,
        limit_to: usize,
    ) -> Result<Vec<SentEmail>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT id, digest_name, kind, status, attempts, next_attempt, last_error, created,
                    sent, recipients
             FROM outbox WHERE ($1::BIGINT IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            &[&before, &limit(limit_to)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SentEmail {
                    id: r.get(0),
                    digest_name: r.get(1),
                    kind: r.get(2),
                    status: r.get(3),
                    attempts: unsigned(r.get(4)),
                    next_attempt: from_ts(r.get(5)),
                    last_error: r.get(6),
                    created: from_ts(r.get(7)),
                    sent: r.get::<_, Option<i64>>(8).map(from_ts),
                    recipients: serde_json::from_str(r.get(9))?,
                })
            })
            .collect()
    }

    pub(crate) fn email_bytes(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .query_opt("SELECT raw FROM outbox WHERE id = $1", &[&id])?
            .map(|r| r.get(0)))
    }

    pub(crate) fn recent_articles(
        &self,
        after: i64,
        limit_to: usize,
    ) -> Result<Vec<ArticleView>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT a.id, a.feed, f.title, a.first_seen, a.key, a.link, a.title, a.summary,
                    a.content, a.authors, a.categories, a.lang, a.published, a.lang_detected
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.id > $1 AND a.text_pruned = 0 ORDER BY a.id DESC LIMIT $2",
            &[&after, &limit(limit_to)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ArticleView {
                    id: r.get(0),
                    feed: r.get(1),
                    feed_title: r.get(2),
                    first_seen: from_ts(r.get(3)),
                    article: Article {
                        key: r.get(4),
                        link: r.get(5),
                        title: r.get(6),
                        summary: r.get(7),
                        content: r.get(8),
                        authors: serde_json::from_str(r.get(9))?,
                        categories: serde_json::from_str(r.get(10))?,
                        lang: r.get(11),
                        published: r.get::<_, Option<i64>>(12).map(from_ts),
                        lang_detected: r.get(13),
                    },
                })
            })
            .collect()
    }
}
