//! The `digests` side: which matches one digest carries, gathered set-based inside a
//! `ComposeTx` (every selected pending match goes into a temp table, which the commit assigns with
//! one statement; exact totals come from SQL aggregates; full rows only for the articles the
//! caller's load plan can show, so memory does not grow with the pending matches), the commit with
//! its email and served schedule slot, and the digest history `status` and the sources section read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, ToSql, Transaction, params};

use super::compose::SqliteCompose;
use super::matches::{ArticleTexts, PENDING_FOR_DIGEST, RECORDED_SINCE, pending_match};
use super::outbox::insert_outbox;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{DigestBatch, GroupCount, NewMessage, PendingMatch};

/// An email as `status` lists it: `kind` is `digest` or `alert`; `name` none in old rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestInfo {
    pub id: i64,
    pub kind: String,
    pub name: Option<String>,
    pub created: DateTime<Utc>,
    pub emails: u64,
    pub sent: u64,
}

/// What `ComposeTx::commit_digest` queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Composition {
    pub digest: i64,
    pub outbox: i64,
    /// Matches the digest carried.
    pub matches: usize,
}

impl Sqlite {
    /// The last schedule slot digest `name` served (composed, or skipped because empty).
    pub fn digest_last_slot(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_slot FROM digest_slots WHERE name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(from_ts))
    }

    /// When digest `name` was last composed, if ever: its "sources" section shows the feed
    /// notices raised since then, each once.
    pub fn last_digest_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = self.conn.query_row(
            "SELECT MAX(created) FROM digests WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        Ok(at.map(from_ts))
    }

    /// The newest `limit` digests with how many of their emails were composed and sent.
    pub fn recent_digests(&self, limit: usize) -> Result<Vec<DigestInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.created, COUNT(o.id), COUNT(o.sent), d.kind, d.name FROM digests d
             LEFT JOIN outbox o ON o.digest = d.id GROUP BY d.id ORDER BY d.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(DigestInfo {
                id: r.get(0)?,
                created: from_ts(r.get(1)?),
                emails: r.get(2)?,
                sent: r.get(3)?,
                kind: r.get(4)?,
                name: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl SqliteCompose<'_> {
    /// Every rule id with a stored match: the caller decides which of them a digest carries, and
    /// in which group (rule selection is globs, Rust's business; asked once per distinct rule).
    pub fn matched_rules(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.tx.prepare(RULES_SQL)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Selects the matches digest `name` has not carried yet whose rule `rules` lists as
    /// (rule id, group key), and counts them: exact totals for every group; `rows` stay empty
    /// until `load_rows`. Every selected match is what `commit_digest` assigns.
    pub fn gather_pending(
        &mut self,
        name: &str,
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        self.gather(PENDING_FOR_DIGEST, &name, rules)
    }

    /// `gather_pending` over every match recorded at or after `since`, carried or not (previews).
    pub fn gather_since(
        &mut self,
        since: DateTime<Utc>,
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        self.gather(RECORDED_SINCE, &ts(since), rules)
    }

    fn gather(
        &mut self,
        cond: &str,
        arg: &dyn ToSql,
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        let (batch, picked) = gather(&self.tx, cond, arg, rules)?;
        self.picked = picked;
        self.selected = batch.matches;
        Ok(batch)
    }

    /// For each group of the last gather, the distinct articles its rules matched (by when the
    /// match was recorded) per day back from `now`, `days` + 1 days: what the trend line ("14 in
    /// the last 24 h · usually 3 a day") is made of. One pass over `matches`, like the gather.
    pub fn daily_counts(
        &self,
        now: DateTime<Utc>,
        days: usize,
    ) -> Result<Vec<Vec<usize>>, StoreError> {
        if self.picked.is_empty() {
            // Nothing gathered, no group to draw a trend for (the unchanged cycle, issue 22):
            // the pass over every match of the last weeks would count for nobody.
            return Ok(Vec::new());
        }
        let span = i64::try_from(days + 1)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400);
        let mut stmt = self.tx.prepare(DAILY_SQL)?;
        let mut rows = stmt.query(params![ts(now), span])?;
        let mut counts = Vec::new();
        while let Some(r) = rows.next()? {
            counts.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
        let out = place_daily(&self.picked, days, counts);
        Ok(out)
    }

    pub fn last_slot(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT last_slot FROM digest_slots WHERE name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(from_ts))
    }

    /// The full rows of the last gather's groups: every picked match of the `plan[i]` newest
    /// articles whose first group is `i` (newest by the time a digest shows: published, else
    /// first seen).
    /// In one query (issue 22: one per group was 329 queries in a cold cycle): the plan goes
    /// into a temp table, each group's newest articles are ranked in one pass over
    /// `digest_first`, and the rows come in group order, then match id, as one query per group
    /// returned them.
    pub fn load_rows(&self, plan: &[usize]) -> Result<Vec<PendingMatch>, StoreError> {
        self.tx.execute_batch("DELETE FROM temp.digest_plan")?;
        {
            let mut put = self
                .tx
                .prepare("INSERT INTO temp.digest_plan (grp, n) VALUES (?1, ?2)")?;
            for (grp, n) in self.picked.iter().zip(plan) {
                if *n > 0 {
                    put.execute(params![grp, i64::try_from(*n).unwrap_or(i64::MAX)])?;
                }
            }
        }
        let mut rows = Vec::new();
        let mut texts = ArticleTexts::default();
        let mut stmt = self.tx.prepare(PLANNED_ROWS_SQL)?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            rows.push(pending_match(r, &mut texts)?);
        }
        Ok(rows)
    }

    /// Commits digest `name` (id from `next_digest_id`): with a `message`, the digest row, its
    /// outbox row and the assignment of every gathered match (shown or only counted), all or
    /// nothing; `slot` (when scheduled) is recorded as served either way. No message (nothing
    /// worth sending) leaves the matches pending.
    pub fn commit_digest(
        self,
        name: &str,
        id: i64,
        now: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
        message: Option<&NewMessage>,
    ) -> Result<Option<Composition>, StoreError> {
        let tx = self.tx;
        if let Some(slot) = slot {
            tx.execute(
                "INSERT INTO digest_slots (name, last_slot) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot",
                params![name, ts(slot)],
            )?;
        }
        let Some(message) = message else {
            clear(&tx)?;
            tx.commit()?;
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO digests (id, created, name, kind, slot) VALUES (?1, ?2, ?3, 'digest', ?4)",
            params![id, ts(now), name, slot.map(ts)],
        )?;
        let outbox = insert_outbox(&tx, id, "digest", &message.digest_name, message, now)?;
        tx.execute(ASSIGN_ITEMS_SQL, params![name, id])?;
        clear(&tx)?;
        tx.commit()?;
        Ok(Some(Composition {
            digest: id,
            outbox,
            matches: self.selected,
        }))
    }
}

/// Fills the temp tables with the matches `cond` (SQL over `matches m`, one parameter) whose rule
/// `rules` puts into a group, and counts them: each article once, in its first group (groups are
/// numbered in the order `rules` first names them). Returns the batch (no rows) and the temp-table
/// group number of each of its groups. The temp tables stay filled for `ROWS_SQL` and the
/// assignment; `clear` empties them (and a rollback does).
fn gather(
    tx: &Transaction<'_>,
    cond: &str,
    arg: &dyn ToSql,
    rules: &[(String, String)],
) -> Result<(DigestBatch, Vec<i64>), StoreError> {
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
         CREATE TEMP TABLE IF NOT EXISTS digest_first (
             article INTEGER PRIMARY KEY,
             grp     INTEGER NOT NULL,
             at      INTEGER NOT NULL
         );
         CREATE TEMP TABLE IF NOT EXISTS digest_plan (
             grp INTEGER PRIMARY KEY,
             n   INTEGER NOT NULL
         );",
    )?;
    clear(tx)?;
    // The caller chose the rules (over every stored match's rule, `matched_rules`): a rule with
    // nothing pending yields an empty group, dropped below.
    let (numbered, keys) = group_numbers(rules);
    // Nothing `cond` selects at all (a cycle that found nothing new): every group would be
    // empty. One pass that stops at the first match it finds, newest first, instead of a row
    // per rule into `digest_rules` and the pick (issue 22: the unchanged cycle at 1,000 rules
    // 101.4 → 98.9 M instructions; the look's own pass is most of what is left, BENCHMARKS.md).
    let any = tx
        .query_row(&any_sql(cond), [arg], |_| Ok(()))
        .optional()?
        .is_some();
    if !any {
        return Ok(batch_of(keys, Vec::new(), 0, 0));
    }
    {
        let mut put =
            tx.prepare("INSERT OR IGNORE INTO temp.digest_rules (rule_id, grp) VALUES (?1, ?2)")?;
        for (rule_id, grp) in numbered {
            put.execute(params![rule_id, grp])?;
        }
    }
    let matches = tx.execute(&pick_sql(cond), [arg])?;
    // Built once after the bulk insert: a third of the time of keeping them up row by row.
    tx.execute_batch("CREATE INDEX temp.digest_pick_article ON digest_pick (article)")?;
    // Each article once, in its first group (the lowest number: the caller's rule order).
    tx.execute(FIRST_SQL, [])?;
    tx.execute_batch(
        "CREATE INDEX temp.digest_first_grp ON digest_first (grp, at DESC, article DESC)",
    )?;
    let mut counts = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT grp, COUNT(*) FROM temp.digest_first GROUP BY grp")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            counts.push((row.get(0)?, row.get(1)?));
        }
    }
    let articles: i64 = tx.query_row("SELECT COUNT(*) FROM temp.digest_first", [], |r| r.get(0))?;
    Ok(batch_of(keys, counts, articles, matches))
}

/// Numbers the groups of `rules` ((rule id, group key)) in the order they are first named:
/// each rule with its group's number (a rule named twice keeps its first), and the numbers.
pub(super) fn group_numbers(
    rules: &[(String, String)],
) -> (Vec<(&str, i64)>, BTreeMap<String, i64>) {
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut numbered = Vec::new();
    for (rule_id, key) in rules {
        let next = i64::try_from(keys.len()).unwrap_or(i64::MAX);
        let grp = *keys.entry(key.clone()).or_insert(next);
        if seen.insert(rule_id.as_str()) {
            numbered.push((rule_id.as_str(), grp));
        }
    }
    (numbered, keys)
}

/// The batch a gather returns (no rows yet), from the group numbers, the articles counted per
/// group number (`counts`), in all, and the matches picked; with the group number of each of
/// its groups. Rules with no pending match make empty groups: the composer never sees one.
pub(super) fn batch_of(
    keys: BTreeMap<String, i64>,
    counts: Vec<(i64, i64)>,
    articles: i64,
    matches: usize,
) -> (DigestBatch, Vec<i64>) {
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
    for (grp, n) in counts {
        if let Some(g) = usize::try_from(grp).ok().and_then(|i| groups.get_mut(i)) {
            g.articles = usize::try_from(n).unwrap_or(0);
        }
    }
    let (groups, old_index): (Vec<GroupCount>, Vec<i64>) = groups
        .into_iter()
        .zip(0..)
        .filter(|(g, _)| g.articles > 0)
        .unzip();
    let batch = DigestBatch {
        groups,
        daily: Vec::new(),
        articles: usize::try_from(articles).unwrap_or(0),
        matches,
        rows: Vec::new(),
    };
    (batch, old_index)
}

/// The trend counts of `daily_counts` placed per picked group and day, from (group number,
/// day back, distinct articles) rows.
pub(super) fn place_daily(
    picked: &[i64],
    days: usize,
    counts: Vec<(i64, i64, i64)>,
) -> Vec<Vec<usize>> {
    let mut out = vec![vec![0usize; days + 1]; picked.len()];
    let place: std::collections::HashMap<i64, usize> =
        picked.iter().enumerate().map(|(i, g)| (*g, i)).collect();
    for (grp, day, n) in counts {
        if let (Some(&g), Ok(d)) = (place.get(&grp), usize::try_from(day))
            && let Some(slot) = out[g].get_mut(d)
        {
            *slot = usize::try_from(n).unwrap_or(0);
        }
    }
    out
}

/// Every rule id with a stored match.
pub(super) const RULES_SQL: &str = "SELECT DISTINCT rule_id FROM matches";

/// A match that is `cond`, looked for newest first (where a pending match usually is), over
/// the `matches_recorded` index: by id, SQLite reads whole rows, hits and all (5 times slower),
/// and inside `EXISTS` it drops the order.
pub(super) fn any_sql(cond: &str) -> String {
    format!("SELECT 1 FROM matches m WHERE {cond} ORDER BY m.recorded DESC LIMIT 1")
}

/// Every match `cond` of a chosen rule into the pick. CROSS JOIN keeps `matches` the outer loop:
/// one pass over it, the rule looked up by key (never a scan of every match per rule).
pub(super) fn pick_sql(cond: &str) -> String {
    format!(
        "INSERT INTO temp.digest_pick (match_id, article, grp)
         SELECT m.id, m.article, r.grp FROM matches m CROSS JOIN temp.digest_rules r
         WHERE r.rule_id = m.rule_id AND {cond}"
    )
}

/// Distinct articles per group of `temp.digest_rules` and day back from `?1` (seconds), over the
/// `?2` seconds before it. CROSS JOIN keeps `matches` the outer loop (one pass).
pub(super) const DAILY_SQL: &str = "
    SELECT r.grp, (?1 - m.recorded) / 86400 AS day, COUNT(DISTINCT m.article)
    FROM matches m CROSS JOIN temp.digest_rules r
    WHERE r.rule_id = m.rule_id AND m.recorded <= ?1 AND m.recorded > ?1 - ?2
    GROUP BY r.grp, day";

/// Each picked article with its first group and the time a digest shows (published, else first
/// seen).
const FIRST_SQL: &str = "
    INSERT INTO temp.digest_first (article, grp, at)
    SELECT p.article, MIN(p.grp), COALESCE(a.published, a.first_seen)
    FROM temp.digest_pick p JOIN articles a ON a.id = p.article
    GROUP BY p.article";

/// Every picked match (of any group: "also matches") of the `n` newest articles whose first
/// group is `grp`, for every (`grp`, `n`) of `temp.digest_plan`; in group order, then match id.
/// The ranking is one pass over `temp.digest_first` in its index's order.
pub(super) const PLANNED_ROWS_SQL: &str = "
    SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
           a.published, a.first_seen, a.content, a.full_text, COALESCE(a.lang, a.lang_detected),
           m.rules_hash
    FROM (SELECT q.article, q.grp,
                 ROW_NUMBER() OVER (PARTITION BY q.grp ORDER BY q.at DESC, q.article DESC) AS rank
          FROM temp.digest_first q) c
    JOIN temp.digest_plan l ON l.grp = c.grp
    JOIN temp.digest_pick p ON p.article = c.article
    JOIN matches m ON m.id = p.match_id
    JOIN articles a ON a.id = p.article
    JOIN feeds f ON f.name = a.feed
    WHERE c.rank <= l.n
    ORDER BY c.grp, m.id";

/// `PLANNED_ROWS_SQL` for one group: the `?2` newest articles whose first group is `?1`
/// (PostgreSQL's `load_rows` asks it once per group).
pub(super) const ROWS_SQL: &str = "
    SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
           a.published, a.first_seen, a.content, a.full_text, COALESCE(a.lang, a.lang_detected),
           m.rules_hash
    FROM temp.digest_pick p
    JOIN matches m ON m.id = p.match_id
    JOIN articles a ON a.id = p.article
    JOIN feeds f ON f.name = a.feed
    WHERE p.article IN (
        SELECT q.article FROM temp.digest_first q
        WHERE q.grp = ?1
        ORDER BY q.at DESC, q.article DESC
        LIMIT ?2)
    ORDER BY m.id";

const ASSIGN_ITEMS_SQL: &str = "
    INSERT OR IGNORE INTO digest_items (digest_name, match_id, digest)
    SELECT ?1, match_id, ?2 FROM temp.digest_pick";

/// Empties the temp tables (they live as long as the connection).
pub(super) fn clear(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS temp.digest_pick_article;
         DROP INDEX IF EXISTS temp.digest_first_grp;
         DELETE FROM temp.digest_plan;
         DELETE FROM temp.digest_first;
         DELETE FROM temp.digest_pick;
         DELETE FROM temp.digest_rules;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
