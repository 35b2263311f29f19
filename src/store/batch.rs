//! The digest side of the store: what one digest would carry, gathered set-based in the caller's
//! transaction. Every selected pending match goes into a temp table (the digest assigns them all
//! with two statements); exact totals come from SQL aggregates over it; full rows are read only
//! for the articles the caller's plan can show, so memory does not grow with the pending matches.

use std::collections::BTreeMap;

use rusqlite::{ToSql, Transaction, params};

use super::{PendingMatch, StoreError, pending_match};

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
         );",
    )?;
    clear(tx)?;
    // The rule selection (globs) is Rust's: decide it once per distinct rule id, not per match.
    // Over every stored match, not only the pending ones: the pending condition costs four times
    // the scan, and a rule with nothing pending yields an empty group, dropped below.
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut rules = tx.prepare(RULES_SQL)?;
        let mut put = tx.prepare("INSERT INTO temp.digest_rules (rule_id, grp) VALUES (?1, ?2)")?;
        let mut rows = rules.query([])?;
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
    let matches = tx.execute(&pick_sql(cond), [arg])?;
    // Built once after the bulk insert: a third of the time of keeping it up row by row.
    tx.execute_batch("CREATE INDEX temp.digest_pick_grp ON digest_pick (grp, article)")?;
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
    // Rules with no pending match (see above) make empty groups; the composer never sees one.
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
        let mut stmt = tx.prepare(ROWS_SQL)?;
        for (grp, n) in old_index.iter().zip(&wanted) {
            if *n == 0 {
                continue;
            }
            let limit = i64::try_from(*n).unwrap_or(i64::MAX);
            let mut q = stmt.query(params![grp, limit])?;
            while let Some(r) = q.next()? {
                rows.push(pending_match(r)?);
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

/// The matches of group `?1` on its `?2` newest articles, newest by the time a digest shows
/// (published, else first seen).
const ROWS_SQL: &str = "
    SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
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
    ORDER BY m.id";

const ASSIGN_ITEMS_SQL: &str = "
    INSERT OR IGNORE INTO digest_items (digest_name, match_id, digest)
    SELECT ?1, match_id, ?2 FROM temp.digest_pick";

/// Assigns every gathered match to digest `digest_id` of digest `name`, set-based: one
/// `digest_items` row each (the match rows themselves are not rewritten).
pub(super) fn assign(tx: &Transaction<'_>, name: &str, digest_id: i64) -> Result<(), StoreError> {
    tx.execute(ASSIGN_ITEMS_SQL, params![name, digest_id])?;
    Ok(())
}

/// Empties the temp tables (they live as long as the connection).
pub(super) fn clear(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS temp.digest_pick_grp;
         DELETE FROM temp.digest_pick;
         DELETE FROM temp.digest_rules;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::super::{
        ArticleMatches, Fetched, IN_NO_DIGEST, NewMessage, PENDING_FOR_DIGEST, RECORDED_SINCE,
        Store,
    };
    use super::*;
    use crate::article::Article;
    use crate::fetch::Validators;

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
            s.ensure_feed(&feed, &format!("https://example.org/{feed}"))
                .expect("feed");
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
            s.record_fetched(
                &feed,
                Fetched {
                    title: None,
                    validators: &Validators::default(),
                    articles: &items,
                },
                now(),
                Duration::from_secs(86_400 * 3650),
                now(),
            )
            .expect("insert");
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
        s.record_matches(&results, now()).expect("matches");
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
        let mut seen: Option<DigestBatch> = None;
        let c = s
            .compose_named(
                "d",
                now(),
                None,
                |rule| selected(rule).then(|| title_of(rule)),
                |groups| crate::digest::load_plan(groups, MAX_ITEMS),
                |_, b| {
                    seen = Some(b.clone());
                    Ok::<_, std::convert::Infallible>(Some(NewMessage {
                        digest_name: "d".into(),
                        message_id: "<d@x>".into(),
                        sender: "nw@example.org".into(),
                        recipients: vec!["a@example.org".into()],
                        raw: b"Subject: x\r\n\r\nbody".to_vec(),
                    }))
                },
            )
            .expect("compose")
            .expect("composed");
        let b = seen.expect("the composer ran");
        // Exact totals.
        assert_eq!(c.matches, want_matches);
        assert_eq!(b.matches, want_matches);
        assert_eq!(b.articles, want_articles.len());
        let got: BTreeMap<String, usize> = b
            .groups
            .iter()
            .map(|g| (g.key.clone(), g.articles))
            .collect();
        let want: BTreeMap<String, usize> = want_groups
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect();
        assert_eq!(got, want);
        // Bounded rows: at most LOAD_MARGIN x max_items articles, each with at most one match
        // per rule of its group (two rules share a title).
        let loaded: BTreeSet<(String, i64)> = b
            .rows
            .iter()
            .map(|m| (title_of(&m.rule_id), m.article_id))
            .collect();
        assert!(
            loaded.len() <= 3 * MAX_ITEMS,
            "{} articles loaded",
            loaded.len()
        );
        assert!(
            loaded.len() >= MAX_ITEMS,
            "enough to fill the digest: {}",
            loaded.len()
        );
        assert!(b.rows.len() <= 2 * loaded.len(), "{} rows", b.rows.len());
        assert!(b.rows.iter().all(|m| selected(&m.rule_id)));
        // Every selected match is assigned, shown or not; the others stay pending.
        let count = |sql: &str| -> usize {
            let n: i64 = s.conn.query_row(sql, [], |r| r.get(0)).expect("count");
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
        assert!(
            s.pending_for_digest("d")
                .expect("pending")
                .iter()
                .all(|m| !selected(&m.rule_id))
        );
        assert_eq!(count("SELECT COUNT(*) FROM temp.digest_pick"), 0, "emptied");
        // The next composition finds nothing left of its rules.
        let again = s
            .compose_named(
                "d",
                now(),
                None,
                |rule| selected(rule).then(|| title_of(rule)),
                |groups| crate::digest::load_plan(groups, MAX_ITEMS),
                |_, b| {
                    assert_eq!(b.matches, 0);
                    Ok::<_, std::convert::Infallible>(None)
                },
            )
            .expect("compose");
        assert!(again.is_none());
    }

    #[test]
    fn the_newest_articles_of_a_group_are_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = big_store(dir.path());
        let b = s
            .preview_batch("d", None, |r| Some(title_of(r)), |g| vec![4; g.len()])
            .expect("preview");
        let rule_3 = title_of("rule-3");
        let mut got: Vec<i64> = b
            .rows
            .iter()
            .filter(|m| title_of(&m.rule_id) == rule_3)
            .map(|m| m.published.expect("dated").timestamp())
            .collect();
        got.sort_unstable();
        got.dedup();
        let mut all: Vec<i64> = s
            .pending_for_digest("d")
            .expect("pending")
            .iter()
            .filter(|m| title_of(&m.rule_id) == rule_3)
            .map(|m| m.published.expect("dated").timestamp())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(got, all[all.len() - 4..], "the four newest");
        // A preview changes nothing.
        assert_eq!(
            s.preview_batch("d", None, |r| Some(title_of(r)), |g| vec![0; g.len()])
                .expect("preview")
                .matches,
            b.matches
        );
    }

    /// `EXPLAIN QUERY PLAN` lines of `sql`.
    fn plan(s: &Store, sql: &str) -> Vec<String> {
        let mut stmt = s
            .conn
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
        let tx = s.conn.transaction().expect("tx");
        gather(
            &tx,
            PENDING_FOR_DIGEST,
            &"d",
            |_| None,
            |g| vec![0; g.len()],
        )
        .expect("gather");
        tx.commit().expect("commit");
        for sql in [
            RULES_SQL.to_string(),
            pick_sql(PENDING_FOR_DIGEST),
            pick_sql(RECORDED_SINCE),
            ROWS_SQL.to_string(),
            ASSIGN_ITEMS_SQL.to_string(),
            format!("SELECT COUNT(*) FROM matches m WHERE {IN_NO_DIGEST}"),
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
