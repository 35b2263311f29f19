//! The `digests` side: which matches one digest carries, gathered set-based inside a
//! `ComposeTx` (every selected pending match goes into a temp table, which the commit assigns with
//! one statement; exact totals come from SQL aggregates; full rows only for the articles the
//! caller's load plan can show, so memory does not grow with the pending matches), the commit with
//! its email and served schedule slot, and the digest history `status` and the sources section read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, ToSql, Transaction, params};

use super::compose::ComposeTx;
use super::matches::{PENDING_FOR_DIGEST, RECORDED_SINCE, pending_match};
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

impl ComposeTx<'_> {
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
        let mut out = vec![vec![0usize; days + 1]; self.picked.len()];
        let place: std::collections::HashMap<i64, usize> = self
            .picked
            .iter()
            .enumerate()
            .map(|(i, g)| (*g, i))
            .collect();
        let span = i64::try_from(days + 1)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400);
        let mut stmt = self.tx.prepare(DAILY_SQL)?;
        let mut rows = stmt.query(params![ts(now), span])?;
        while let Some(r) = rows.next()? {
            let (grp, day, n): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let (Some(&g), Ok(d)) = (place.get(&grp), usize::try_from(day))
                && let Some(slot) = out[g].get_mut(d)
            {
                *slot = usize::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// The full rows of the last gather's groups: every picked match of the `plan[i]` newest
    /// articles whose first group is `i` (newest by the time a digest shows: published, else
    /// first seen).
    pub fn load_rows(&self, plan: &[usize]) -> Result<Vec<PendingMatch>, StoreError> {
        let mut rows = Vec::new();
        let mut stmt = self.tx.prepare(ROWS_SQL)?;
        for (grp, n) in self.picked.iter().zip(plan) {
            if *n == 0 {
                continue;
            }
            let limit = i64::try_from(*n).unwrap_or(i64::MAX);
            let mut q = stmt.query(params![grp, limit])?;
            while let Some(r) = q.next()? {
                rows.push(pending_match(r)?);
            }
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
         );",
    )?;
    clear(tx)?;
    // The caller chose the rules (over every stored match's rule, `matched_rules`): a rule with
    // nothing pending yields an empty group, dropped below.
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut put =
            tx.prepare("INSERT OR IGNORE INTO temp.digest_rules (rule_id, grp) VALUES (?1, ?2)")?;
        for (rule_id, key) in rules {
            let next = i64::try_from(keys.len()).unwrap_or(i64::MAX);
            let grp = *keys.entry(key.clone()).or_insert(next);
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
        let mut stmt = tx.prepare("SELECT grp, COUNT(*) FROM temp.digest_first GROUP BY grp")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (grp, n): (i64, i64) = (row.get(0)?, row.get(1)?);
            if let Some(g) = usize::try_from(grp).ok().and_then(|i| groups.get_mut(i)) {
                g.articles = usize::try_from(n).unwrap_or(0);
            }
        }
    }
    // Rules with no pending match (see above) make empty groups; the composer never sees one.
    let (groups, old_index): (Vec<GroupCount>, Vec<i64>) = groups
        .into_iter()
        .zip(0..)
        .filter(|(g, _)| g.articles > 0)
        .unzip();
    let articles: i64 = tx.query_row("SELECT COUNT(*) FROM temp.digest_first", [], |r| r.get(0))?;
    let batch = DigestBatch {
        groups,
        daily: Vec::new(),
        articles: usize::try_from(articles).unwrap_or(0),
        matches,
        rows: Vec::new(),
    };
    Ok((batch, old_index))
}

/// Every rule id with a stored match.
const RULES_SQL: &str = "SELECT DISTINCT rule_id FROM matches";

/// Every match `cond` of a chosen rule into the pick. CROSS JOIN keeps `matches` the outer loop:
/// one pass over it, the rule looked up by key (never a scan of every match per rule).
fn pick_sql(cond: &str) -> String {
    format!(
        "INSERT INTO temp.digest_pick (match_id, article, grp)
         SELECT m.id, m.article, r.grp FROM matches m CROSS JOIN temp.digest_rules r
         WHERE r.rule_id = m.rule_id AND {cond}"
    )
}

/// Distinct articles per group of `temp.digest_rules` and day back from `?1` (seconds), over the
/// `?2` seconds before it. CROSS JOIN keeps `matches` the outer loop (one pass).
const DAILY_SQL: &str = "
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

/// Every picked match (of any group: "also matches") of the `?2` newest articles whose first
/// group is `?1`.
const ROWS_SQL: &str = "
    SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
           a.published, a.first_seen, a.content, a.full_text, COALESCE(a.lang, a.lang_detected)
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
         DELETE FROM temp.digest_first;
         DELETE FROM temp.digest_pick;
         DELETE FROM temp.digest_rules;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::time::Duration;

    use super::super::testing::{
        feed as feed_at, msg, pending_for, poll, store_with_matches, store_with_two_articles,
    };
    use super::super::{ArticleMatches, Store};
    use super::*;
    use crate::model::Article;

    /// Every rule into one group.
    fn all(s: &mut Store) -> Vec<(String, String)> {
        super::super::testing::all_rules(s)
    }

    #[test]
    fn compose_assigns_matches_and_queues_in_one_step() {
        let (_dir, mut s, now) = store_with_matches();
        let pending = pending_for(&mut s, "main");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].hits,
            vec![super::super::testing::hit("minerals deal")]
        );
        let rules = all(&mut s);
        let mut tx = s.begin_compose().expect("begin");
        let mut b = tx.gather_pending("main", &rules).expect("gather");
        b.rows = tx.load_rows(&[10]).expect("rows");
        assert_eq!((b.matches, b.articles, b.rows.len()), (1, 1, 1));
        let id = tx.next_digest_id().expect("id");
        let c = tx
            .commit_digest("main", id, now, None, Some(&msg(&format!("<d{id}@x>"))))
            .expect("commit")
            .expect("composed");
        assert_eq!((c.digest, c.matches), (id, 1));
        assert_eq!(
            s.message(c.outbox).unwrap().message_id,
            format!("<d{id}@x>")
        );
        assert!(pending_for(&mut s, "main").is_empty());
        assert_eq!(s.recent_digests(5).unwrap().len(), 1);
    }

    /// Rendering failed: the pipeline drops the composition; nothing changes.
    #[test]
    fn a_composition_dropped_uncommitted_changes_nothing() {
        let (_dir, mut s, now) = store_with_matches();
        let rules = all(&mut s);
        {
            let mut tx = s.begin_compose().expect("begin");
            assert_eq!(
                tx.gather_pending("main", &rules).expect("gather").matches,
                1
            );
            assert_eq!(tx.next_digest_id().expect("id"), 1);
        }
        assert_eq!(pending_for(&mut s, "main").len(), 1);
        assert_eq!(
            s.outbox_counts().unwrap(),
            crate::model::OutboxCounts::default()
        );
        assert_eq!(s.digest_last_slot("main").unwrap(), None);
        assert_eq!(s.last_digest_time("main").unwrap(), None);
        // The temp tables rolled back with it: the next composition starts clean.
        let mut tx = s.begin_compose().expect("begin");
        tx.gather_pending("main", &rules).expect("gather");
        let id = tx.next_digest_id().expect("id");
        let c = tx
            .commit_digest("main", id, now, None, Some(&msg("<m@x>")))
            .expect("commit");
        assert_eq!(c.map(|c| c.matches), Some(1));
    }

    #[test]
    fn named_digests_assign_per_digest_and_record_the_slot_atomically() {
        let (_dir, mut s, now) = store_with_matches();
        let slot = Some(now);
        let rules = all(&mut s);
        // Nothing worth sending: the slot is served, the match stays pending.
        let mut tx = s.begin_compose().expect("begin");
        tx.gather_pending("a", &rules).expect("gather");
        let id = tx.next_digest_id().expect("id");
        assert!(
            tx.commit_digest("a", id, now, slot, None)
                .expect("commit")
                .is_none()
        );
        assert_eq!(s.digest_last_slot("a").unwrap(), slot);
        assert_eq!(pending_for(&mut s, "a").len(), 1);
        // Composed for "a": gone for "a", still pending for "b".
        let mut tx = s.begin_compose().expect("begin");
        tx.gather_pending("a", &rules).expect("gather");
        let id = tx.next_digest_id().expect("id");
        let c = tx
            .commit_digest("a", id, now, None, Some(&msg(&format!("<d{id}@x>"))))
            .expect("commit")
            .expect("composed");
        assert_eq!(c.matches, 1);
        assert!(pending_for(&mut s, "a").is_empty());
        assert_eq!(pending_for(&mut s, "b").len(), 1);
        assert_eq!(
            s.message(c.outbox).unwrap().message_id,
            format!("<d{}@x>", c.digest)
        );
        assert_eq!(s.last_digest_time("a").unwrap(), Some(now));
        // A digest whose rules select nothing composes from nothing.
        let mut tx = s.begin_compose().expect("begin");
        let b = tx.gather_pending("b", &[]).expect("gather");
        assert!(b.groups.is_empty() && b.matches == 0);
        assert!(tx.load_rows(&[]).expect("rows").is_empty());
    }

    #[test]
    fn a_preview_since_a_time_sees_carried_matches_too() {
        let (_dir, mut s, now) = store_with_two_articles();
        let pending = s.pending_articles().unwrap();
        let results: Vec<ArticleMatches> = pending
            .iter()
            .map(|p| ArticleMatches {
                article: p.id,
                matches: vec![("r".into(), Vec::new())],
            })
            .collect();
        s.record_matches(&results, now, &HashMap::new()).unwrap();
        super::super::testing::compose(&mut s, "main", now, &msg("<m@x>"));
        let rules = all(&mut s);
        let mut tx = s.begin_compose().expect("begin");
        assert_eq!(
            tx.gather_pending("main", &rules).expect("gather").matches,
            0
        );
        let since = tx.gather_since(now, &rules).expect("gather");
        assert_eq!((since.matches, since.articles), (2, 2));
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(tx.gather_since(later, &rules).expect("gather").matches, 0);
    }

    const RULES: usize = 3_000;
    /// Rules `r` and `r + TITLES` share a title, so one group holds two rules.
    const TITLES: usize = 2_000;
    const ARTICLES: usize = 8_000;
    const PER_ARTICLE: usize = 5;
    const MAX_ITEMS: usize = 50;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn rule_of(article: usize, k: usize) -> usize {
        // Skewed: a few rules match often, most rarely.
        if k == 0 {
            article % 7
        } else {
            (article * 31 + k * 977) % RULES
        }
    }

    fn title_of(rule: &str) -> String {
        let n: usize = rule.trim_start_matches("rule-").parse().expect("rule-N");
        format!("Rule {:04}", n % TITLES)
    }

    /// A store with `ARTICLES` articles, each matched by `PER_ARTICLE` distinct rules; returns
    /// (rule id, article key) of every match.
    fn big_store(dir: &std::path::Path) -> (Store, Vec<(String, usize)>) {
        let mut s = Store::open(dir).expect("open");
        let mut recorded = Vec::new();
        for f in 0..10 {
            let feed = format!("f{f}");
            feed_at(&mut s, &feed, &format!("https://example.org/{feed}"));
            let items: Vec<Article> = (0..ARTICLES / 10)
                .map(|i| Article {
                    key: format!("{}", f * (ARTICLES / 10) + i),
                    title: format!("Story {f}-{i}"),
                    summary: "Healey met Hegseth.".into(),
                    content: "x".repeat(2_000),
                    published: Some(now() - chrono::Duration::minutes((f * 1000 + i) as i64)),
                    ..Article::default()
                })
                .collect();
            poll(
                &mut s,
                &feed,
                &items,
                now(),
                Duration::from_secs(86_400 * 3650),
            );
        }
        let pending = s.pending_articles().expect("pending");
        let results: Vec<ArticleMatches> = pending
            .iter()
            .map(|p| {
                let n: usize = p.article.key.parse().expect("numeric key");
                let mut rules: Vec<usize> = (0..PER_ARTICLE).map(|k| rule_of(n, k)).collect();
                rules.sort_unstable();
                rules.dedup();
                ArticleMatches {
                    article: p.id,
                    matches: rules
                        .into_iter()
                        .map(|r| {
                            recorded.push((format!("rule-{r}"), n));
                            (format!("rule-{r}"), Vec::new())
                        })
                        .collect(),
                }
            })
            .collect();
        s.record_matches(&results, now(), &HashMap::new())
            .expect("matches");
        (s, recorded)
    }

    #[test]
    fn thousands_of_rules_assign_every_match_and_load_a_bounded_few() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, recorded) = big_store(dir.path());
        assert!(recorded.len() > 30_000, "{}", recorded.len());
        // The digest carries the rules whose number is not a multiple of 10.
        let selected = |rule: &str| !rule.ends_with('0');
        let mut want_groups: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let mut want_articles = BTreeSet::new();
        let mut want_matches = 0;
        for (rule, article) in &recorded {
            if selected(rule) {
                want_groups
                    .entry(title_of(rule))
                    .or_default()
                    .insert(*article);
                want_articles.insert(*article);
                want_matches += 1;
            }
        }
        assert!(want_groups.len() > 1_500, "{}", want_groups.len());
        let rules = |s: &mut Store| -> Vec<(String, String)> {
            let tx = s.begin_compose().expect("begin");
            tx.matched_rules()
                .expect("rules")
                .into_iter()
                .filter(|r| selected(r))
                .map(|r| {
                    let title = title_of(&r);
                    (r, title)
                })
                .collect()
        };
        let chosen = rules(&mut s);
        let mut tx = s.begin_compose().expect("begin");
        let mut b = tx.gather_pending("d", &chosen).expect("gather");
        b.rows = tx
            .load_rows(&crate::digest::load_plan(&b.groups, MAX_ITEMS))
            .expect("rows");
        let id = tx.next_digest_id().expect("id");
        let c = tx
            .commit_digest("d", id, now(), None, Some(&msg("<d@x>")))
            .expect("commit")
            .expect("composed");
        // Exact totals.
        assert_eq!(c.matches, want_matches);
        assert_eq!(b.matches, want_matches);
        assert_eq!(b.articles, want_articles.len());
        let got: BTreeMap<String, usize> = b
            .groups
            .iter()
            .map(|g| (g.key.clone(), g.articles))
            .collect();
        // Each article counts in its first group: the first `chosen` names.
        let mut place: BTreeMap<String, usize> = BTreeMap::new();
        for (_, title) in &chosen {
            let n = place.len();
            place.entry(title.clone()).or_insert(n);
        }
        let mut first: BTreeMap<usize, (usize, String)> = BTreeMap::new();
        for (title, articles) in &want_groups {
            for a in articles {
                let k = (place[title], title.clone());
                let f = first.entry(*a).or_insert_with(|| k.clone());
                if k < *f {
                    *f = k;
                }
            }
        }
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        for (_, title) in first.values() {
            *want.entry(title.clone()).or_default() += 1;
        }
        assert_eq!(got, want);
        // Bounded rows: at most the load plan's budget of articles (1,000 for 50 stories), each
        // with its picked matches (at most one per rule of the article: "also matches").
        let loaded: BTreeSet<i64> = b.rows.iter().map(|m| m.article_id).collect();
        assert!(loaded.len() <= 1_000, "{} articles loaded", loaded.len());
        assert!(
            loaded.len() >= MAX_ITEMS,
            "enough to fill the digest: {}",
            loaded.len()
        );
        assert!(
            b.rows.len() <= PER_ARTICLE * loaded.len(),
            "{} rows",
            b.rows.len()
        );
        // Each article counts once, in its first group: the group sizes sum to the articles.
        assert_eq!(
            b.groups.iter().map(|g| g.articles).sum::<usize>(),
            b.articles
        );
        assert!(b.rows.iter().all(|m| selected(&m.rule_id)));
        // Every selected match is assigned, shown or not; the others stay pending.
        let count = |sql: &str| -> usize {
            let n: i64 = s.conn().query_row(sql, [], |r| r.get(0)).expect("count");
            usize::try_from(n).expect("non-negative")
        };
        assert_eq!(
            count("SELECT COUNT(*) FROM digest_items WHERE digest_name = 'd'"),
            want_matches
        );
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM matches m
                 WHERE NOT EXISTS (SELECT 1 FROM digest_items di WHERE di.match_id = m.id)"
            ),
            recorded.len() - want_matches
        );
        assert_eq!(count("SELECT COUNT(*) FROM temp.digest_pick"), 0, "emptied");
        assert!(
            pending_for(&mut s, "d")
                .iter()
                .all(|m| !selected(&m.rule_id))
        );
        // The next composition finds nothing left of its rules.
        let chosen = rules(&mut s);
        let mut tx = s.begin_compose().expect("begin");
        let again = tx.gather_pending("d", &chosen).expect("gather");
        assert_eq!(again.matches, 0);
        let id = tx.next_digest_id().expect("id");
        let again = tx
            .commit_digest("d", id, now(), None, None)
            .expect("commit");
        assert!(again.is_none());
    }

    #[test]
    fn the_newest_articles_of_a_group_are_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = big_store(dir.path());
        // Rule 3 first: every article it matched has its group first.
        let preview = |s: &mut Store, n: usize| -> DigestBatch {
            let mut tx = s.begin_compose().expect("begin");
            let mut rules: Vec<(String, String)> = tx
                .matched_rules()
                .expect("rules")
                .into_iter()
                .map(|r| {
                    let title = title_of(&r);
                    (r, title)
                })
                .collect();
            rules.sort_by_key(|(r, _)| r != "rule-3");
            let mut b = tx.gather_pending("d", &rules).expect("gather");
            let mut plan = vec![0; b.groups.len()];
            plan[0] = n;
            b.rows = tx.load_rows(&plan).expect("rows");
            b
        };
        let b = preview(&mut s, 4);
        let rule_3 = title_of("rule-3");
        assert_eq!(b.groups[0].key, rule_3);
        let mut got: Vec<i64> = b
            .rows
            .iter()
            .map(|m| m.published.expect("dated").timestamp())
            .collect();
        got.sort_unstable();
        got.dedup();
        let mut all: Vec<i64> = pending_for(&mut s, "d")
            .iter()
            .filter(|m| title_of(&m.rule_id) == rule_3)
            .map(|m| m.published.expect("dated").timestamp())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            got,
            all[all.len() - 4..],
            "the four newest, with every match of theirs"
        );
        assert!(b.rows.iter().any(|m| title_of(&m.rule_id) != rule_3));
        // A composition dropped uncommitted changes nothing.
        assert_eq!(preview(&mut s, 0).matches, b.matches);
    }

    /// `EXPLAIN QUERY PLAN` lines of `sql`.
    fn plan(s: &Store, sql: &str) -> Vec<String> {
        let mut stmt = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan")
    }

    #[test]
    fn no_statement_scans_matches_per_rule_or_alert_items_per_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        let tx = s.sqlite_mut().conn.transaction().expect("tx");
        gather(&tx, PENDING_FOR_DIGEST, &"d", &[]).expect("gather");
        tx.commit().expect("commit");
        for sql in [
            RULES_SQL.to_string(),
            pick_sql(PENDING_FOR_DIGEST),
            pick_sql(RECORDED_SINCE),
            FIRST_SQL.to_string(),
            DAILY_SQL.to_string(),
            ROWS_SQL.to_string(),
            ASSIGN_ITEMS_SQL.to_string(),
        ] {
            let lines = plan(&s, &sql);
            let scans: Vec<&String> = lines.iter().filter(|l| l.starts_with("SCAN")).collect();
            // At most one full pass, over `matches` or the temp pick itself.
            assert!(scans.len() <= 1, "{sql}\n{lines:#?}");
            assert!(
                scans.iter().all(
                    |l| matches!(l.split_whitespace().nth(1), Some("m" | "matches"))
                        || l.contains("digest_pick")
                ),
                "{sql}\n{lines:#?}"
            );
        }
    }
}
