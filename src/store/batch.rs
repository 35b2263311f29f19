//! The digest side of the store: what one digest would carry, gathered set-based in the caller's
//! transaction. Every selected pending match goes into a temp table (the digest assigns them all
//! with two statements); exact totals come from SQL aggregates over it; full rows are read only
//! for the articles the caller's plan can show, so memory does not grow with the pending matches.

use std::collections::BTreeMap;

use rusqlite::{ToSql, Transaction, params};

use super::{PendingMatch, StoreError, from_ts};

/// One group of a digest (the caller's key, in practice the rule title) and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub key: String,
    /// Distinct articles among the group's matches.
    pub articles: usize,
}

/// What a digest would carry: exact totals over every selected pending match, and full rows only
/// for what the load plan asked.
#[derive(Debug, Clone, Default)]
pub struct DigestBatch {
    /// Every group with a selected pending match, in no particular order.
    pub groups: Vec<GroupCount>,
    /// Distinct articles over every group.
    pub articles: usize,
    /// Selected pending matches: what composing the digest assigns to it.
    pub matches: usize,
    /// For each group, the matches of its newest articles, as many articles as the plan asked.
    pub rows: Vec<PendingMatch>,
}

/// Fills the temp tables with the pending matches `cond` (SQL over `matches m`, one parameter)
/// whose rule `group_of` puts into a group, and reads the batch back: totals for every group,
/// rows for `plan(groups)[i]` newest articles of group `i`. The temp tables stay filled for
/// `assign`; `clear` empties them.
pub(super) fn gather(
    tx: &Transaction<'_>,
    cond: &str,
    arg: &dyn ToSql,
    group_of: impl Fn(&str) -> Option<String>,
    plan: impl FnOnce(&[GroupCount]) -> Vec<usize>,
) -> Result<DigestBatch, StoreError> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS digest_rules (
             rule_id TEXT PRIMARY KEY,
             grp     INTEGER NOT NULL
         );
         CREATE TEMP TABLE IF NOT EXISTS digest_pick (
             match_id INTEGER PRIMARY KEY,
             article  INTEGER NOT NULL,
             grp      INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS temp.digest_pick_grp ON digest_pick (grp, article);",
    )?;
    clear(tx)?;
    // The rule selection (globs) is Rust's: decide it once per distinct rule id, not per match.
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut rules = tx.prepare(&format!(
            "SELECT DISTINCT m.rule_id FROM matches m WHERE {cond}"
        ))?;
        let mut put = tx.prepare("INSERT INTO temp.digest_rules (rule_id, grp) VALUES (?1, ?2)")?;
        let mut rows = rules.query([arg])?;
        while let Some(row) = rows.next()? {
            let rule_id: String = row.get(0)?;
            let Some(key) = group_of(&rule_id) else {
                continue;
            };
            let next = i64::try_from(keys.len()).unwrap_or(i64::MAX);
            let grp = *keys.entry(key).or_insert(next);
            put.execute(params![rule_id, grp])?;
        }
    }
    // CROSS JOIN keeps `matches` the outer loop: one pass over it, the rule looked up by key
    // (never a scan of every match per rule).
    let matches = tx.execute(
        &format!(
            "INSERT INTO temp.digest_pick (match_id, article, grp)
             SELECT m.id, m.article, r.grp FROM matches m CROSS JOIN temp.digest_rules r
             WHERE r.rule_id = m.rule_id AND {cond}"
        ),
        [arg],
    )?;
    let mut groups = vec![
        GroupCount {
            key: String::new(),
            articles: 0
        };
        keys.len()
    ];
    for (key, grp) in keys {
        if let Some(g) = usize::try_from(grp).ok().and_then(|i| groups.get_mut(i)) {
            g.key = key;
        }
    }
    {
        let mut stmt =
            tx.prepare("SELECT grp, COUNT(DISTINCT article) FROM temp.digest_pick GROUP BY grp")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (grp, n): (i64, i64) = (row.get(0)?, row.get(1)?);
            if let Some(g) = usize::try_from(grp).ok().and_then(|i| groups.get_mut(i)) {
                g.articles = usize::try_from(n).unwrap_or(0);
            }
        }
    }
    // A rule whose every pending match was excluded by `cond` cannot exist (the ids came from
    // the same condition), but an empty group must never reach the composer.
    let (groups, old_index): (Vec<GroupCount>, Vec<i64>) = groups
        .into_iter()
        .zip(0..)
        .filter(|(g, _)| g.articles > 0)
        .unzip();
    let articles: i64 = tx.query_row(
        "SELECT COUNT(DISTINCT article) FROM temp.digest_pick",
        [],
        |r| r.get(0),
    )?;
    let wanted = plan(&groups);
    let mut rows = Vec::new();
    {
        // Newest first by the time a digest shows (published, else first seen).
        let mut stmt = tx.prepare(
            "SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
                    a.published, a.first_seen, a.content
             FROM temp.digest_pick p
             JOIN matches m ON m.id = p.match_id
             JOIN articles a ON a.id = p.article
             JOIN feeds f ON f.name = a.feed
             WHERE p.grp = ?1 AND p.article IN (
                 SELECT q.article FROM temp.digest_pick q JOIN articles b ON b.id = q.article
                 WHERE q.grp = ?1
                 GROUP BY q.article
                 ORDER BY COALESCE(b.published, b.first_seen) DESC, q.article DESC
                 LIMIT ?2)
             ORDER BY m.id",
        )?;
        for (grp, n) in old_index.iter().zip(&wanted) {
            if *n == 0 {
                continue;
            }
            let limit = i64::try_from(*n).unwrap_or(i64::MAX);
            let mut q = stmt.query(params![grp, limit])?;
            while let Some(r) = q.next()? {
                let hits: String = r.get(2)?;
                rows.push(PendingMatch {
                    id: r.get(0)?,
                    rule_id: r.get(1)?,
                    hits: serde_json::from_str(&hits)?,
                    article_id: r.get(3)?,
                    feed: r.get(4)?,
                    feed_title: r.get(5)?,
                    title: r.get(6)?,
                    link: r.get(7)?,
                    summary: r.get(8)?,
                    content: r.get(11)?,
                    published: r.get::<_, Option<i64>>(9)?.map(from_ts),
                    first_seen: from_ts(r.get(10)?),
                });
            }
        }
    }
    Ok(DigestBatch {
        groups,
        articles: usize::try_from(articles).unwrap_or(0),
        matches,
        rows,
    })
}

/// Assigns every gathered match to digest `digest_id` of digest `name`, set-based: its
/// `digest_items` row, and `matches.digest` where no digest carried the match yet.
pub(super) fn assign(tx: &Transaction<'_>, name: &str, digest_id: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO digest_items (digest_name, match_id, digest)
         SELECT ?1, match_id, ?2 FROM temp.digest_pick",
        params![name, digest_id],
    )?;
    tx.execute(
        "UPDATE matches SET digest = ?1
         WHERE digest IS NULL AND id IN (SELECT match_id FROM temp.digest_pick)",
        [digest_id],
    )?;
    Ok(())
}

/// Empties the temp tables (they live as long as the connection).
pub(super) fn clear(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch("DELETE FROM temp.digest_pick; DELETE FROM temp.digest_rules;")?;
    Ok(())
}
