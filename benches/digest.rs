//! Rendering one digest email of 50 matched articles under 8 rules: grouping, the text and HTML
//! templates (minijinja) and the MIME message (lettre), through `digest::compose`. And composing
//! a digest from a real SQLite store holding 100,000 pending matches over 5,000 rules, through
//! a `ComposeTx` gathering and rendering as the pipeline does (never committed, so the transaction
//! rolls back and every iteration starts from the same pending set).

use std::collections::HashMap;
use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use newswatch::config::DigestConfig;
use newswatch::digest::spec::{RuleSelection, WhenEmpty};
use newswatch::digest::{self, Entry};
use newswatch::model::{StoredHit, Validators};
use newswatch::policy::feed_health::Thresholds;
use newswatch::store::{ArticleMatches, PollRecord, PollResult, Store};

const ENTRIES: usize = 50;

fn bench(c: &mut Criterion) {
    let now = newswatch::clock::now();
    let entries: Vec<Entry> = (0..ENTRIES)
        .map(|i| {
            let title = format!(
                "Healey and Hegseth discuss a US backstop for the coalition of the willing ({i})"
            );
            let summary = "The two defence secretaries met to discuss what a US backstop for a \
                           European reassurance force in Ukraine could look like."
                .to_string();
            let hits = ["Healey", "Hegseth", "backstop"]
                .iter()
                .filter_map(|t| {
                    let start = title.find(t)?;
                    Some(StoredHit {
                        field: "title".into(),
                        start,
                        end: start + t.len(),
                        text: (*t).to_string(),
                    })
                })
                .collect();
            Entry {
                rules_hash: None,
                rule_id: format!("rule-{}", i % 8),
                rule_title: format!("Rule {}: Healey and Hegseth on the US backstop", i % 8),
                order: (true, i % 8),
                alert: false,
                feed: format!("f{:05}", i % 13),
                feed_title: Some(format!("Wire service {}", i % 13)),
                article_id: i as i64,
                title,
                link: Some(format!("https://wire.example/2025/03/story-{i}?ref=feed")),
                summary: summary.into(),
                content: "".into(),
                full_text: false,
                lang: None,
                time: now - chrono::Duration::minutes(i as i64 * 7),
                hits,
            }
        })
        .collect();
    let cfg = DigestConfig {
        name: "briefing".into(),
        to: vec!["Analyst <analyst@example.org>".into()],
        channels: Vec::new(),
        subject_prefix: "[newswatch]".into(),
        title: Some("Morning brief".into()),
        schedule: None,
        timezone: chrono_tz::Europe::London,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
        unsubscribe: Default::default(),
    };
    let from = "newswatch <newswatch@localhost>";
    let size = digest::compose(1, &cfg, from, &entries, &[], now)
        .expect("compose")
        .expect("non-empty digest")
        .raw
        .len();
    eprintln!("digest bench: {ENTRIES} entries -> {size} bytes of message");
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("compose_50", |b| {
        b.iter(|| {
            black_box(digest::compose(
                1,
                &cfg,
                from,
                black_box(&entries),
                &[],
                now,
            ))
        });
    });
    g.finish();
}

const STORE_ARTICLES: usize = 20_000;
const STORE_RULES: usize = 5_000;
/// Rules per article: 20,000 x 5 = 100,000 pending matches.
const RULES_PER_ARTICLE: usize = 5;

/// A store in `dir` with `STORE_ARTICLES` articles over 100 feeds, each matched by
/// `RULES_PER_ARTICLE` of `STORE_RULES` rules, nothing composed yet.
fn pending_store(dir: &std::path::Path, now: chrono::DateTime<Utc>) -> Store {
    let mut store = Store::open(dir).expect("open store");
    let window = std::time::Duration::from_secs(3650 * 86_400);
    let validators = Validators::default();
    let per_feed = STORE_ARTICLES / 100;
    for f in 0..100 {
        let feed = format!("f{f:03}");
        let url = format!("http://127.0.0.1/{feed}.xml");
        store
            .ensure_feeds([(feed.as_str(), url.as_str())])
            .expect("feed row");
        let articles: Vec<newswatch::model::Article> = (0..per_feed)
            .map(|i| newswatch::model::Article {
                key: format!("{feed}/{i}"),
                link: Some(format!("https://wire.example/{feed}/story-{i}")),
                title: format!("Healey and Hegseth discuss a US backstop, part {f}-{i}"),
                summary: "Defence Secretary John Healey told reporters the coalition of the \
                          willing would meet again to discuss a US backstop."
                    .into(),
                content: "Kyiv (Wire) - Officials said talks on the minerals deal continued. "
                    .repeat(40),
                authors: Vec::new(),
                categories: Vec::new(),
                lang: None,
                lang_detected: Some("en".into()),
                published: Some(now - chrono::Duration::seconds((f * per_feed + i) as i64)),
            })
            .collect();
        let fetched = PollRecord {
            result: PollResult::Fetched {
                title: Some("Wire"),
                validators: &validators,
                articles: &articles,
                hint_ttl: None,
                permanent_redirect: None,
            },
            now,
            next_due: now,
            new_feed_window: window,
            flood_at: usize::MAX,
            thresholds: Thresholds::default(),
            stats: newswatch::store::PollStats::default(),
        };
        store.record_poll(&feed, &fetched).expect("insert");
    }
    let hits = vec![StoredHit {
        field: "summary".into(),
        start: 31,
        end: 37,
        text: "Healey".into(),
    }];
    let results: Vec<ArticleMatches> = store
        .pending_articles()
        .expect("pending")
        .iter()
        .enumerate()
        .map(|(n, a)| ArticleMatches {
            article: a.id,
            matches: (0..RULES_PER_ARTICLE)
                .map(|k| {
                    (
                        format!("rule-{:04}", (n * 7 + k * 1_009) % STORE_RULES),
                        hits.clone(),
                    )
                })
                .collect(),
        })
        .collect();
    let stored = store
        .record_matches(&results, now, &HashMap::new(), "rules-v1")
        .expect("matches");
    assert_eq!(stored, STORE_ARTICLES * RULES_PER_ARTICLE);
    store
}

fn bench_store(c: &mut Criterion) {
    let now = newswatch::clock::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = pending_store(dir.path(), now);
    let cfg = DigestConfig {
        name: "briefing".into(),
        to: vec!["Analyst <analyst@example.org>".into()],
        channels: Vec::new(),
        subject_prefix: "[newswatch]".into(),
        title: None,
        schedule: None,
        timezone: chrono_tz::Europe::London,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
        unsubscribe: Default::default(),
    };
    let named: Vec<(String, String)> = (0..STORE_RULES)
        .map(|r| (format!("rule-{r:04}"), format!("Rule {r:04}")))
        .collect();
    let titles =
        digest::RuleBook::new(named.iter().map(|(id, t)| (id.as_str(), t.as_str(), false)));
    let from = "newswatch <newswatch@localhost>";
    let mut g = c.benchmark_group("digest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(
        (STORE_ARTICLES * RULES_PER_ARTICLE) as u64,
    ));
    g.bench_function("compose_from_store_100k_matches_5k_rules", |b| {
        b.iter(|| {
            let mut tx = store.begin_compose().expect("begin");
            let rules: Vec<(String, String)> = tx
                .matched_rules()
                .expect("rules")
                .into_iter()
                .filter(|rule| cfg.rules.selects(rule))
                .map(|rule| {
                    let group = digest::group_title(&rule, titles.title(&rule));
                    (rule, group)
                })
                .collect();
            let rules = digest::ordered_groups(&titles, rules);
            let mut gathered = tx.gather_pending("briefing", &rules).expect("gather");
            gathered.rows = tx
                .load_rows(&digest::load_plan(&gathered.groups, cfg.max_items))
                .expect("rows");
            let id = tx.next_digest_id().expect("id");
            let batch = digest::Batch::from_store(gathered, &titles);
            let c = digest::compose_batch(id, &cfg, from, &batch, &[], now)
                .expect("compose")
                .expect("non-empty");
            black_box(c.raw.len());
            // Dropped uncommitted: rolled back.
            drop(tx);
        });
    });
    g.finish();
}

criterion_group!(benches, bench, bench_store);
criterion_main!(benches);
