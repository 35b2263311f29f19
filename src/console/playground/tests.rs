//! The playground's search through the word index finds exactly what a scan of every article
//! finds: the same hits in the same order with the same evidence, the same counts, the same NEW
//! and GONE against every saved rule; and the index follows new articles and forgets old ones.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::corpus::{Corpus, Snapshot};
use super::{RULE_ID, Run, lists_source, rule_toml, search};
use crate::model::Article;
use crate::rules::RuleSet;
use crate::store::ArticleView;

/// No evaluation here is cut short by time: a cut search would not be comparable.
const NO_BUDGET: Duration = Duration::from_secs(3_600);

fn shipped_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rules/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Articles `first..first + n` (ids ascending with age: the store's order), newest first, their
/// text cut from the saved rules' examples (matches and near misses) and filler words.
fn articles(saved: &RuleSet, first: i64, n: i64) -> Vec<ArticleView> {
    let examples: Vec<&str> = saved
        .rules()
        .iter()
        .flat_map(|r| r.examples.iter().map(|e| e.text.as_str()))
        .collect();
    let filler = [
        "Ukraine",
        "Київ",
        "talks",
        "Healey",
        "Hegseth",
        "Macrón",
        "peace plan",
        "ceasefire",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ u64::try_from(first).unwrap_or(0);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x % 1_000_003).unwrap_or(0)
    };
    let mut out: Vec<ArticleView> = (first..first + n)
        .map(|id| {
            let mut field = |parts: usize| {
                let mut t = String::new();
                for _ in 0..next() % parts {
                    if next() % 3 == 0 {
                        t.push_str(examples[next() % examples.len()]);
                    } else {
                        t.push_str(filler[next() % filler.len()]);
                    }
                    t.push(' ');
                }
                t
            };
            let (title, summary, content) = (field(2), field(3), field(5));
            ArticleView {
                id,
                feed: ["wire", "kyiv"][next() % 2].to_string(),
                feed_title: (next() % 2 == 0).then(|| "Healey Watch".to_string()),
                first_seen: Utc
                    .timestamp_opt(1_700_000_000 + id, 0)
                    .single()
                    .unwrap_or_default(),
                article: Article {
                    key: format!("k{id}"),
                    link: None,
                    title,
                    summary,
                    content,
                    authors: Vec::new(),
                    categories: Vec::new(),
                    lang: None,
                    lang_detected: None,
                    published: None,
                },
            }
        })
        .collect();
    out.reverse();
    out
}

/// What a run says, by article id: hits with their evidence, the hit count, NEW, GONE and their
/// counts.
type Outcome = (Vec<(i64, String)>, usize, Vec<i64>, Vec<i64>, usize, usize);

fn outcome(run: &Run) -> Outcome {
    (
        run.hits
            .iter()
            .map(|(a, m)| (a.id, format!("{:?}", m.hits)))
            .collect(),
        run.total_hits,
        run.new.iter().map(|a| a.id).collect(),
        run.gone.iter().map(|a| a.id).collect(),
        run.new_count,
        run.gone_count,
    )
}

/// Every saved rule's query and a few more, as the playground compiles them, each against
/// every saved rule and against none: the index's search equals the full scan.
#[test]
fn searching_the_candidates_finds_what_a_full_scan_finds() {
    let files = shipped_files();
    let saved = RuleSet::load(&files).expect("the shipped rules load");
    let lists = lists_source(&files);
    let mut corpus = Corpus::new(500);
    // 400 articles, then 300 newer ones (the oldest 200 are forgotten), then 100 more.
    corpus.add(articles(&saved, 1, 400));
    corpus.add(articles(&saved, 401, 300));
    corpus.add(articles(&saved, 701, 100));
    let mut queries: Vec<String> = saved.rules().iter().map(|r| r.query.clone()).collect();
    queries.extend(
        [
            "ukrain* AND NOT Healey",
            "\"peace plan\" OR Київ",
            "Healey NEAR/2 Hegseth",
            "Macron",
            "Xylophonist",
        ]
        .map(String::from),
    );
    let tags = HashMap::new();
    let mut restricted = 0;
    for q in &queries {
        let sources = vec![
            (PathBuf::from("lists"), lists.clone()),
            (PathBuf::from("playground"), rule_toml(q, "q")),
        ];
        let set = RuleSet::from_sources(&sources).unwrap_or_else(|d| panic!("{q}: {d}"));
        let rule = set.find(RULE_ID).expect("the query's rule");
        let against: Vec<Option<usize>> = std::iter::once(None)
            .chain((0..saved.rules().len()).map(Some))
            .collect();
        for a in against {
            let mut wanted = vec![(&set, rule)];
            wanted.extend(a.map(|r| (&saved, r)));
            let snap = corpus.snapshot(&wanted);
            let full = Snapshot {
                articles: snap.articles.clone(),
                order: (0..snap.articles.len()).collect(),
                restricted: false,
            };
            assert_eq!(snap.articles.len(), 500, "the capacity");
            assert_eq!(snap.articles[0].id, 800, "the newest first");
            let by_index = search(&set, rule, &saved, a, &snap, &tags, NO_BUDGET);
            let by_scan = search(&set, rule, &saved, a, &full, &tags, NO_BUDGET);
            assert!(by_index.stopped.is_none() && by_scan.stopped.is_none());
            assert_eq!(outcome(&by_index), outcome(&by_scan), "{q} against {a:?}");
            assert_eq!(by_index.searched, snap.order.len(), "{q}");
            if snap.restricted {
                restricted += 1;
                assert!(
                    snap.order.len() < 500,
                    "{q} against {a:?}: nothing ruled out"
                );
            }
            if a.is_none() && q != "Xylophonist" {
                assert!(by_scan.total_hits > 0, "{q} finds nothing in this corpus");
            }
        }
    }
    assert!(restricted > queries.len() * 5, "{restricted}");
}

#[test]
fn the_index_follows_new_articles_and_forgets_the_oldest() {
    let files = shipped_files();
    let saved = RuleSet::load(&files).expect("the shipped rules load");
    let set = RuleSet::from_sources(&[(PathBuf::from("q"), rule_toml("Xylophonist", "q"))])
        .expect("compiles");
    let rule = set.find(RULE_ID).expect("the rule");
    let mut corpus = Corpus::new(300);
    corpus.add(articles(&saved, 1, 200));
    assert!(corpus.snapshot(&[(&set, rule)]).order.is_empty());
    let mut odd = articles(&saved, 201, 1);
    odd[0].article.title = "A Xylophonist in Kyiv".into();
    corpus.add(odd);
    let snap = corpus.snapshot(&[(&set, rule)]);
    assert_eq!(snap.order, vec![0], "the new article is found at once");
    assert_eq!(snap.articles[0].id, 201);
    // 400 newer articles push it out; the index forgets it (and drops its entries once half the
    // capacity has been forgotten).
    let (_, entries_before) = corpus.index_size();
    corpus.add(articles(&saved, 202, 200));
    corpus.add(articles(&saved, 402, 200));
    let snap = corpus.snapshot(&[(&set, rule)]);
    assert!(snap.order.is_empty(), "{:?}", snap.order);
    assert_eq!(snap.articles.len(), 300);
    assert_eq!(snap.articles.last().map(|a| a.id), Some(302));
    let (_, entries_after) = corpus.index_size();
    assert!(
        entries_after < entries_before * 2,
        "{entries_before} entries, then {entries_after}: forgotten ones were dropped"
    );
    assert!(corpus.last_indexed.is_some_and(|(_, n)| n == 200));
}
