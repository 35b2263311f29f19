//! The digest side's tests: compositions on both backends, and SQLite's set-based gather at
//! scale (its query plans included).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::super::testing::{
    compose, feed as feed_at, hit, msg, on_both_backends, pending_for, poll, two_articles,
    with_matches,
};
use super::super::{ArticleMatches, Store};
use super::*;
use crate::model::Article;

/// Every rule into one group.
fn all(s: &mut Store) -> Vec<(String, String)> {
    super::super::testing::all_rules(s)
}

on_both_backends! {
    fn compose_assigns_matches_and_queues_in_one_step(s) {
        let now = with_matches(s);
        let pending = pending_for(s, "main");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].hits,
            vec![hit("minerals deal")]
        );
        let rules = all(s);
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
        assert!(pending_for(s, "main").is_empty());
        assert_eq!(s.recent_digests(5).unwrap().len(), 1);
    }

    /// Rendering failed: the pipeline drops the composition; nothing changes.
    fn a_composition_dropped_uncommitted_changes_nothing(s) {
        let now = with_matches(s);
        let rules = all(s);
        {
            let mut tx = s.begin_compose().expect("begin");
            assert_eq!(
                tx.gather_pending("main", &rules).expect("gather").matches,
                1
            );
            assert_eq!(tx.next_digest_id().expect("id"), 1);
        }
        assert_eq!(pending_for(s, "main").len(), 1);
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

    fn named_digests_assign_per_digest_and_record_the_slot_atomically(s) {
        let now = with_matches(s);
        let slot = Some(now);
        let rules = all(s);
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
        let tx = s.begin_compose().expect("begin");
        assert_eq!(tx.last_slot("a").expect("slot"), slot);
        assert_eq!(tx.last_slot("b").expect("slot"), None);
        drop(tx);
        assert_eq!(pending_for(s, "a").len(), 1);
        // Composed for "a": gone for "a", still pending for "b".
        let mut tx = s.begin_compose().expect("begin");
        tx.gather_pending("a", &rules).expect("gather");
        let id = tx.next_digest_id().expect("id");
        let c = tx
            .commit_digest("a", id, now, None, Some(&msg(&format!("<d{id}@x>"))))
            .expect("commit")
            .expect("composed");
        assert_eq!(c.matches, 1);
        assert!(pending_for(s, "a").is_empty());
        assert_eq!(pending_for(s, "b").len(), 1);
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

    /// Each match keeps the rule set that found it (issue 17): two nodes running other rules
    /// each matched one article, and the digest's rows say which set found which.
    fn each_match_keeps_the_rule_set_that_found_it(s) {
        let now = two_articles(s);
        let pending = s.pending_articles().unwrap();
        for (p, version) in pending.iter().zip(["aaaa1111bbbb2222", "cccc3333dddd4444"]) {
            let verdict = [ArticleMatches {
                article: p.id,
                matches: vec![("r".into(), Vec::new())],
            }];
            s.record_matches(&verdict, now, &HashMap::new(), version).unwrap();
        }
        let rules = all(s);
        let mut tx = s.begin_compose().expect("begin");
        assert_eq!(tx.gather_pending("main", &rules).expect("gather").matches, 2);
        let rows = tx.load_rows(&[10]).expect("rows");
        let by_article: BTreeMap<i64, Option<String>> =
            rows.iter().map(|r| (r.article_id, r.rules_hash.clone())).collect();
        assert_eq!(
            by_article.into_values().collect::<Vec<_>>(),
            [Some("aaaa1111bbbb2222".into()), Some("cccc3333dddd4444".into())]
        );
    }

    fn a_preview_since_a_time_sees_carried_matches_too(s) {
        let now = two_articles(s);
        let pending = s.pending_articles().unwrap();
        let results: Vec<ArticleMatches> = pending
            .iter()
            .map(|p| ArticleMatches {
                article: p.id,
                matches: vec![("r".into(), Vec::new())],
            })
            .collect();
        s.record_matches(&results, now, &HashMap::new(), "rules-v1").unwrap();
        compose(s, "main", now, &msg("<m@x>"));
        let rules = all(s);
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
    s.record_matches(&results, now(), &HashMap::new(), "rules-v1")
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

/// The one query of `load_rows` returns what one `ROWS_SQL` query per group did, in the same
/// order (issue 22), whatever each group's share of the plan.
#[test]
fn the_planned_rows_are_the_rows_of_one_query_per_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = big_store(dir.path());
    let mut rules: Vec<(String, String)> = {
        let tx = s.begin_compose().expect("begin");
        tx.matched_rules().expect("rules")
    }
    .into_iter()
    .map(|r| {
        let title = title_of(&r);
        (r, title)
    })
    .collect();
    rules.sort();
    let tx = s.sqlite_mut().conn.transaction().expect("tx");
    let (_, picked) = gather(&tx, PENDING_FOR_DIGEST, &"d", &rules).expect("gather");
    assert!(picked.len() > 3, "{} groups", picked.len());
    let ids = |sql: &str, args: &[&dyn ToSql]| -> Vec<(i64, i64)> {
        let mut stmt = tx.prepare(sql).expect("prepare");
        stmt.query_map(args, |r| Ok((r.get(0)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for shares in [[1, 0, 2, 7], [0, 0, 0, 0], [usize::MAX, 3, 0, 1]] {
        let plan: Vec<usize> = (0..picked.len()).map(|i| shares[i % 4]).collect();
        let mut want = Vec::new();
        for (grp, n) in picked.iter().zip(&plan) {
            if *n > 0 {
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                want.extend(ids(ROWS_SQL, &[grp, &n]));
            }
        }
        tx.execute("DELETE FROM temp.digest_plan", [])
            .expect("clear");
        for (grp, n) in picked.iter().zip(&plan) {
            if *n > 0 {
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO temp.digest_plan VALUES (?1, ?2)",
                    params![grp, n],
                )
                .expect("plan");
            }
        }
        let got = ids(PLANNED_ROWS_SQL, &[]);
        assert!(!got.is_empty() || shares == [0; 4]);
        assert_eq!(got, want, "shares {shares:?}");
    }
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
    // With matches pending, so the gather goes on past its first look (and makes its indexes).
    let (mut s, _) = big_store(dir.path());
    let tx = s.sqlite_mut().conn.transaction().expect("tx");
    gather(&tx, PENDING_FOR_DIGEST, &"d", &[]).expect("gather");
    tx.commit().expect("commit");
    for sql in [
        RULES_SQL.to_string(),
        any_sql(PENDING_FOR_DIGEST),
        any_sql(RECORDED_SINCE),
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
    // The planned rows rank every picked article once (a pass over `digest_first` and the
    // ranking it feeds), and look every other table up by key.
    let lines = plan(&s, PLANNED_ROWS_SQL);
    for line in lines.iter().filter(|l| l.starts_with("SCAN")) {
        assert!(
            line.contains("digest_first") || line.contains("subquery") || line == "SCAN c",
            "{line}\n{lines:#?}"
        );
    }
}
