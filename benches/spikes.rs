//! What spike detection costs a compose pass (issue 19). A real SQLite file, built once per run,
//! holds 14 days of news: 50 feeds, 250,000 articles (744 an hour, each hour a poll of every feed),
//! each matched by 4 of 100 rules: 1,000,000 matches, steady (no surge). Measured:
//!
//! - `spikes/compose_pass_100_rules_1m_matches`: `Pipeline::cycle` with one `[[spike]]` watching
//!   the 100 rules, every feed not due, nothing pending: the cycle is the compose stage's spike
//!   detection (each rule's matches read, the detector, its state) and an empty rest;
//! - `spikes/cycle_without_spikes`: the same cycle with no `[[spike]]`: that empty rest;
//! - `spikes/detect_one_rule_10k_matches`: `policy::spike::detect` alone over one rule's 14 days
//!   (10,000 matches, 336 hourly windows), the pure part of the per-rule work.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use newswatch::config::Config;
use newswatch::model::{Article, StoredHit, Validators};
use newswatch::pipeline::{Feeds, Pipeline};
use newswatch::policy::feed_health::Thresholds;
use newswatch::policy::spike::{SpikeParams, detect};
use newswatch::rules::RuleSet;
use newswatch::store::{ArticleMatches, PollRecord, PollResult, Store};

const FEEDS: usize = 50;
const RULES: usize = 100;

/// Hours of news stored: 14 days under `cargo bench`; one day when `cargo test --all-targets`
/// runs the benchmarks once each (a debug build, where only that they work matters).
fn hours() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        14 * 24
    } else {
        24
    }
}
/// Articles per feed and hour: 50 × 15 × 336 = 252,000 articles.
const PER_FEED_HOUR: usize = 15;
const RULES_PER_ARTICLE: usize = 4;

fn rule_id(r: usize) -> String {
    format!("rule-{r:03}")
}

fn feed_name(f: usize) -> String {
    format!("wire-{f:02}")
}

fn feed_url(f: usize) -> String {
    format!("http://127.0.0.1:9/{}.xml", feed_name(f))
}

/// Hour `h`'s articles of feed `f`, first seen at `at`.
fn articles(f: usize, h: usize, at: DateTime<Utc>) -> Vec<Article> {
    (0..PER_FEED_HOUR)
        .map(|i| Article {
            key: format!("{}/{h}/{i}", feed_name(f)),
            link: Some(format!("https://wire{f}.example/{h}/story-{i}")),
            title: format!("Ministers meet over the Ukraine peace plan, hour {h}, item {i}"),
            summary: "Defence Secretary John Healey told reporters the coalition of the willing \
                      would meet again next week to discuss a US backstop."
                .into(),
            content: "Kyiv (Wire) - Officials said talks on the minerals deal continued. "
                .repeat(12),
            authors: Vec::new(),
            categories: Vec::new(),
            lang: Some("en".into()),
            lang_detected: None,
            published: Some(at),
        })
        .collect()
}

/// The state: every hour of 14 days up to `now`, one poll per feed (one transaction for the
/// hour) and the matcher's verdicts, through the store's own write paths.
fn build(state: &Path, now: DateTime<Utc>) {
    let mut store = Store::open(state).expect("open store");
    let feeds: Vec<(String, String)> = (0..FEEDS).map(|f| (feed_name(f), feed_url(f))).collect();
    store
        .ensure_feeds(feeds.iter().map(|(n, u)| (n.as_str(), u.as_str())))
        .expect("feed rows");
    let validators = Validators::default();
    let window = Duration::from_secs(3650 * 86_400);
    // Never due while the bench runs: no cycle polls.
    let next_due = now + chrono::Duration::days(30);
    let hits = vec![StoredHit {
        field: "summary".into(),
        start: 17,
        end: 29,
        text: "John Healey".into(),
    }];
    let mut n = 0usize;
    let hours = hours();
    for h in 0..hours {
        let at = now - chrono::Duration::hours((hours - h) as i64)
            + chrono::Duration::minutes((h % 60) as i64);
        let batches: Vec<Vec<Article>> = (0..FEEDS).map(|f| articles(f, h, at)).collect();
        let polls: Vec<(&str, PollRecord<'_>)> = batches
            .iter()
            .enumerate()
            .map(|(f, a)| {
                (
                    feeds[f].0.as_str(),
                    PollRecord {
                        result: PollResult::Fetched {
                            title: Some("Wire"),
                            validators: &validators,
                            articles: a,
                            hint_ttl: None,
                            permanent_redirect: None,
                        },
                        now: at,
                        next_due,
                        new_feed_window: window,
                        flood_at: usize::MAX,
                        thresholds: Thresholds::default(),
                        stats: newswatch::store::PollStats::default(),
                    },
                )
            })
            .collect();
        store.record_polls(&polls).expect("polls");
        let results: Vec<ArticleMatches> = store
            .pending_articles()
            .expect("pending")
            .iter()
            .map(|a| {
                n += 1;
                ArticleMatches {
                    article: a.id,
                    matches: (0..RULES_PER_ARTICLE)
                        .map(|k| (rule_id((n * 7 + k * 25) % RULES), hits.clone()))
                        .collect(),
                }
            })
            .collect();
        store
            .record_matches(&results, at, &HashMap::new(), "rules-v1")
            .expect("matches");
    }
    let stored: u64 = store
        .match_counts()
        .expect("counts")
        .iter()
        .map(|(_, all, _)| *all)
        .sum();
    eprintln!("spikes bench: {n} articles, {stored} matches over {hours} hours");
}

/// The config (with `spike` appended) and its rules file, in `dir`.
fn config(dir: &Path, spike: &str) -> (Config, RuleSet) {
    let rules: String = (0..RULES)
        .map(|r| {
            format!(
                "[[rule]]\nid = \"{}\"\ntitle = \"Rule {r}\"\nquery = \"healey{r}\"\n\n",
                rule_id(r)
            )
        })
        .collect();
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::write(dir.join("rules/bench.toml"), rules).expect("rules");
    let mut text = String::from(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\n\n[fetch]\nretention = \"30d\"\n\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"newswatch <nw@example.org>\"\n",
    );
    for f in 0..FEEDS {
        text.push_str(&format!(
            "\n[[feed]]\nname = \"{}\"\nurl = \"{}\"\n",
            feed_name(f),
            feed_url(f)
        ));
    }
    text.push_str(spike);
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, text).expect("config");
    let config = Config::load(&path).expect("the bench config loads");
    let rules = RuleSet::load(&config.rule_files).expect("the bench rules load");
    (config, rules)
}

const SPIKE: &str = "\n[[spike]]\nname = \"surges\"\nto = [\"desk@example.org\"]\n\
                     window = \"1h\"\nbaseline = \"14d\"\n";

fn bench(c: &mut Criterion) {
    let now = newswatch::clock::now();
    let dir = tempfile::tempdir().expect("temp dir");
    build(&dir.path().join("state"), now);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("spikes");
    g.sample_size(10);
    {
        let (config, rules) = config(dir.path(), SPIKE);
        let p = rt.block_on(Pipeline::open(&config, &rules)).expect("open");
        // The first pass records nothing (steady news, no surge), as every later one.
        let first = rt.block_on(p.cycle(now, Feeds::Due)).expect("cycle");
        assert_eq!(
            (first.feeds_polled, first.matches, first.emails_composed),
            (0, 0, 0),
            "a pass of spike detection only"
        );
        g.bench_function("compose_pass_100_rules_1m_matches", |b| {
            b.iter(|| black_box(rt.block_on(p.cycle(now, Feeds::Due)).expect("cycle")));
        });
    }
    {
        let (config, rules) = config(dir.path(), "");
        let p = rt.block_on(Pipeline::open(&config, &rules)).expect("open");
        g.bench_function("cycle_without_spikes", |b| {
            b.iter(|| black_box(rt.block_on(p.cycle(now, Feeds::Due)).expect("cycle")));
        });
    }
    // One rule's 14 days as the pipeline hands them to the detector.
    let store = Store::open(&dir.path().join("state")).expect("open store");
    let horizon = now - chrono::Duration::days(14) - chrono::Duration::hours(1);
    let times = store
        .spike_match_times(&[rule_id(0)], horizon)
        .expect("times");
    let matches: Vec<(DateTime<Utc>, &str)> = times.rules[0]
        .iter()
        .map(|&(t, f)| (t, times.feeds[f as usize].as_str()))
        .collect();
    eprintln!("spikes bench: one rule has {} matches", matches.len());
    let params = SpikeParams {
        window: Duration::from_secs(3600),
        baseline: Duration::from_secs(14 * 86_400),
        ..SpikeParams::default()
    };
    g.sample_size(30);
    g.bench_function("detect_one_rule_10k_matches", |b| {
        b.iter(|| black_box(detect(black_box(&matches), now, &params, false)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
