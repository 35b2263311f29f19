//! The `matches` table: the matcher's verdicts written (with the alert sets' to-do rows, in the
//! same transaction), and matches read back in the one row shape every email uses. Which matches
//! a digest or an alert takes is `digests.rs` and `alerts.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{PendingMatch, StoredHit};

/// The rules one article matched (possibly none), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleMatches {
    pub article: i64,
    /// (rule id, hits)
    pub matches: Vec<(String, Vec<StoredHit>)>,
}

impl Sqlite {
    /// Records the matcher's verdict on articles in one transaction: each listed article is marked
    /// matched (even with no rule matching) and its matches stored; every new match of a rule that
    /// `alert_routes` sends to alert sets (rule id → set names; absent: none) is queued as a pending
    /// alert in each of them, in the same transaction, so a crash cannot leave a match that neither
    /// an alert nor a digest will carry. Each match notes `rules_hash`, the rule set that found
    /// it. Returns matches stored.
    pub fn record_matches(
        &mut self,
        results: &[ArticleMatches],
        now: DateTime<Utc>,
        alert_routes: &HashMap<String, Vec<String>>,
        rules_hash: &str,
    ) -> Result<usize, StoreError> {
        // A verdict lost to a power cut is re-derived: its articles are still unmatched.
        self.relaxed(|conn| {
            let tx = conn.transaction()?;
            let mut count = 0;
            {
                let mut mark = tx.prepare_cached("DELETE FROM unmatched WHERE article = ?1")?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO matches (article, rule_id, hits, recorded, matched_ms, rules_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (article, rule_id) DO NOTHING",
                )?;
                let mut queue = tx.prepare_cached(
                    "INSERT OR IGNORE INTO alert_items (alert_set, match_id, queued, status)
                     VALUES (?1, ?2, ?3, 'pending')",
                )?;
                let at = ts(now);
                for am in results {
                    mark.execute([am.article])?;
                    for (rule_id, hits) in &am.matches {
                        let n = insert.execute(params![
                            am.article,
                            rule_id,
                            serde_json::to_string(hits)?,
                            at,
                            now.timestamp_millis(),
                            rules_hash
                        ])?;
                        if n == 0 {
                            continue;
                        }
                        count += n;
                        let match_id = tx.last_insert_rowid();
                        for set in alert_routes.get(rule_id).into_iter().flatten() {
                            queue.execute(params![set, match_id, at])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(count)
        })
    }

    /// Per rule: every stored match, and those no digest has carried yet; by rule id.
    pub fn match_counts(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT rule_id, COUNT(*), COUNT(*) - COUNT(digest) FROM matches
             GROUP BY rule_id ORDER BY rule_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Not yet carried by digest `?1`, and not held by an alert set (unless one deferred it).
pub(super) const PENDING_FOR_DIGEST: &str =
    "NOT EXISTS (SELECT 1 FROM digest_items di WHERE di.digest_name = ?1 AND di.match_id = m.id)
     AND (NOT EXISTS (SELECT 1 FROM alert_items ai WHERE ai.match_id = m.id)
          OR EXISTS (SELECT 1 FROM alert_items ai
                     WHERE ai.match_id = m.id AND ai.status = 'deferred'))";

/// Recorded at or after `?1` (matches from before issue 4 have no `recorded` and use the
/// article's first sighting), and, as for a send, not held by an alert set unless one deferred
/// it: a preview over a window shows what a digest over that window carries (issue 15).
pub(super) const RECORDED_SINCE: &str = "COALESCE(m.recorded,
    (SELECT a.first_seen FROM articles a WHERE a.id = m.article)) >= ?1
     AND (NOT EXISTS (SELECT 1 FROM alert_items ai WHERE ai.match_id = m.id)
          OR EXISTS (SELECT 1 FROM alert_items ai
                     WHERE ai.match_id = m.id AND ai.status = 'deferred'))";

pub(super) fn select_matches(
    conn: &Connection,
    cond: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PendingMatch>, StoreError> {
    let sql = format!(
        "SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
                a.published, a.first_seen, a.content, a.full_text,
                COALESCE(a.lang, a.lang_detected), m.rules_hash
         FROM matches m JOIN articles a ON a.id = m.article JOIN feeds f ON f.name = a.feed
         WHERE {cond}
         ORDER BY m.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    let mut texts = ArticleTexts::default();
    while let Some(r) = rows.next()? {
        out.push(pending_match(r, &mut texts)?);
    }
    Ok(out)
}

/// The summary and content of the articles whose rows were read so far, by article id: one
/// article's rows (one per match) share one copy of its text. At 10,000 rules an article loaded
/// for a digest comes with up to dozens of matches, and these copies were most of the compose
/// stage's heap peak (issue 22).
#[derive(Debug, Default)]
pub(super) struct ArticleTexts(HashMap<i64, (Arc<str>, Arc<str>)>);

/// A `PendingMatch` from a row of `m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title,
/// a.link, a.summary, a.published, a.first_seen, a.content, a.full_text, COALESCE(a.lang,
/// a.lang_detected), m.rules_hash` (the column order of every query that loads matches for an email).
/// The article's texts are read once per article (`texts`), then shared.
pub(super) fn pending_match(
    r: &rusqlite::Row<'_>,
    texts: &mut ArticleTexts,
) -> Result<PendingMatch, StoreError> {
    let hits: String = r.get(2)?;
    let article_id: i64 = r.get(3)?;
    let (summary, content) = match texts.0.get(&article_id) {
        Some((s, c)) => (Arc::clone(s), Arc::clone(c)),
        None => {
            let read: (Arc<str>, Arc<str>) = (r.get(8)?, r.get(11)?);
            texts.0.insert(article_id, read.clone());
            read
        }
    };
    Ok(PendingMatch {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        hits: serde_json::from_str(&hits)?,
        article_id,
        feed: r.get(4)?,
        feed_title: r.get(5)?,
        title: r.get(6)?,
        link: r.get(7)?,
        summary,
        content,
        full_text: r.get(12)?,
        lang: r.get(13)?,
        rules_hash: r.get(14)?,
        published: r.get::<_, Option<i64>>(9)?.map(from_ts),
        first_seen: from_ts(r.get(10)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, hit, on_both_backends, poll, t};
    use super::*;

    on_both_backends! {
        /// A verdict takes its articles off the to-do list and stores each match once: the same
        /// verdict recorded again (a second node's, a retried one) stores nothing.
        fn a_verdict_is_stored_once(s) {
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "f", "https://example.org/feed");
            poll(s, "f", &[art("a", None), art("b", None), art("c", None)], now, DAY);
            let chunk = s.claim_pending_articles(0, now, 2).expect("claim");
            let keys: Vec<&str> = chunk.iter().map(|p| p.article.key.as_str()).collect();
            assert_eq!(keys, ["a", "b"]);
            let verdict = vec![
                ArticleMatches {
                    article: chunk[0].id,
                    matches: vec![("minerals".to_string(), vec![hit("minerals deal")])],
                },
                ArticleMatches {
                    article: chunk[1].id,
                    matches: vec![],
                },
            ];
            let routes = HashMap::from([("minerals".to_string(), vec!["urgent".to_string()])]);
            assert_eq!(s.record_matches(&verdict, now, &routes, "rules-v1").expect("record"), 1);
            assert_eq!(s.record_matches(&verdict, now, &routes, "rules-v1").expect("again"), 0);
            let left: Vec<String> = s
                .pending_articles()
                .expect("pending")
                .into_iter()
                .map(|p| p.article.key)
                .collect();
            assert_eq!(left, ["c"]);
        }
    }
}
