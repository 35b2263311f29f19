//! Newsroom scale (issue 22). Two parts:
//!
//! - `pathological`: one article whose 1 MB title repeats `Healey Hegseth ` (matched on its first
//!   256 KiB), matched by the shipped rules plus a NEAR rule, then composed into a digest from its
//!   hits: the path that took 43 s in a debug `run --once` before hits were bounded.
//! - `rules-N` (N from `NEWSWATCH_SCALE_RULES`, default 100000, comma-separated for several): the
//!   shipped rules plus N rules from `scripts/bench/gen.py` (the end-to-end bench's generator, its
//!   lists renamed so both load together), over the 10,000 items of its 200 × 50 feeds. Prints
//!   compile time (median of 3), resident memory after compile, articles/s through the match stage
//!   on 2 threads (median of 3), per-article match time (p50, p99, max) and the share of rules
//!   evaluated per article; criterion times the match stage over the first 1,000 articles.
//!
//! Generated data is cached under `bench-data/scale/` in the target directory. Run:
//! `cargo bench --bench scale` (or `-- pathological`, `-- rules-`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use newswatch::config::DigestConfig;
use newswatch::digest::spec::{RuleSelection, WhenEmpty};
use newswatch::digest::{self, Entry};
use newswatch::model::{Article, FeedMeta, StoredHit};
use newswatch::rules::{MatchWork, RuleSet};

/// The match stage's regex budget per article (`pipeline::matching`).
const REGEX_BUDGET: Duration = Duration::from_millis(500);
/// Articles per criterion iteration at scale (the whole 10,000 would make each sample seconds).
const TIMED_ARTICLES: usize = 1_000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_rules() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules"))
        .expect("rules/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// `bench-data/scale` in the cargo target directory (`CARGO_TARGET_DIR` when set).
fn data_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), PathBuf::from)
        .join("bench-data/scale")
}

fn gen_py(args: &[&str]) {
    let status = Command::new("python3")
        .arg(repo().join("scripts/bench/gen.py"))
        .args(args)
        .status()
        .expect("run python3 scripts/bench/gen.py");
    assert!(status.success(), "gen.py {args:?}");
}

/// `rules-N-g.toml`: N generated rules whose lists are prefixed `g_`.
fn generated_rules(n: usize) -> PathBuf {
    let dir = data_dir();
    let path = dir.join(format!("rules-{n}-g.toml"));
    if !path.exists() {
        let (n, dir) = (n.to_string(), dir.to_string_lossy().into_owned());
        gen_py(&["rules", "--out", &dir, "--rules", &n, "--list-prefix", "g_"]);
    }
    path
}

/// The 200 × 50 feeds of the end-to-end bench (fixed base time), parsed.
fn articles() -> Vec<(Article, FeedMeta)> {
    let dir = data_dir().join("feeds-200x50");
    if !dir.join("meta.json").exists() {
        let out = dir.to_string_lossy().into_owned();
        gen_py(&[
            "feeds",
            "--out",
            &out,
            "--feeds",
            "200",
            "--items",
            "50",
            "--base-time",
            "1767225600",
        ]);
    }
    let base = url::Url::parse("http://127.0.0.1/").expect("constant URL");
    let mut out = Vec::new();
    for f in 1..=200 {
        let name = format!("f{f:05}");
        let bytes = std::fs::read(dir.join(format!("{name}.xml"))).expect("generated feed");
        let parsed = newswatch::parse::parse_feed(&bytes, &base).expect("generated feed parses");
        let meta = FeedMeta {
            name,
            title: parsed.title.clone(),
            tags: Vec::new(),
        };
        out.extend(parsed.articles.into_iter().map(|a| (a, meta.clone())));
    }
    out
}

/// (resident, peak resident) of this process in MB, from /proc (Linux).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn match_one(set: &RuleSet, a: &Article, feed: &FeedMeta, now: chrono::DateTime<Utc>) -> MatchWork {
    let v = set.match_article_within(black_box(a), feed, now, REGEX_BUDGET);
    black_box(v.matches.len());
    v.work
}

fn bench_scale(c: &mut Criterion, n: usize, corpus: &[(Article, FeedMeta)]) {
    let mut files = shipped_rules();
    files.push(generated_rules(n));
    let (rss_before, _) = rss_mb();
    let mut compile = Vec::new();
    let mut set = None;
    for _ in 0..3 {
        drop(set.take());
        let t = Instant::now();
        set = Some(RuleSet::load(&files).expect("the rules compile"));
        compile.push(t.elapsed().as_secs_f64());
    }
    let set = set.expect("compiled three times");
    let (rss_after, _) = rss_mb();
    let now = newswatch::clock::now();

    // Articles/s on 2 threads, as the match stage splits a turn between its workers.
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for part in corpus.chunks(corpus.len().div_ceil(2)) {
                let set = &set;
                s.spawn(move || {
                    for (a, f) in part {
                        match_one(set, a, f, now);
                    }
                });
            }
        });
        rates.push(corpus.len() as f64 / t.elapsed().as_secs_f64());
    }

    // Per article, one thread: the latency and the pre-filter's share.
    let mut times = Vec::with_capacity(corpus.len());
    let (mut shares, mut candidates, mut matched) = (Vec::new(), 0usize, 0usize);
    for (a, f) in corpus {
        let t = Instant::now();
        let v = set.match_article_within(black_box(a), f, now, REGEX_BUDGET);
        times.push(t.elapsed());
        shares.push(v.work.evaluated_share());
        candidates += v.work.candidates;
        matched += v.matches.len();
    }
    times.sort_unstable();
    let mean_share = shares.iter().sum::<f64>() / shares.len() as f64;
    shares.sort_by(f64::total_cmp);
    let rules = set.rules().len();
    eprintln!(
        "rules-{n}: {rules} rules ({} unfiltered), {} literals; compile median {:.2} s (runs: {}); \
         resident {rss_after:.0} MB after compile ({:+.0} MB)",
        set.unfiltered().len(),
        set.literal_count(),
        median(compile.clone()),
        compile
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        rss_after - rss_before,
    );
    eprintln!(
        "rules-{n}: {} articles; 2 threads: median {:.0} articles/s (runs: {}); one thread per \
         article: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; evaluated per article: mean {:.3} % \
         of the rules, p99 {:.3} %; candidates per article {:.0}; matches per article {:.2}",
        corpus.len(),
        median(rates.clone()),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        mean_share * 100.0,
        shares[(shares.len() - 1) * 99 / 100] * 100.0,
        candidates as f64 / corpus.len() as f64,
        matched as f64 / corpus.len() as f64,
    );

    let timed = &corpus[..TIMED_ARTICLES.min(corpus.len())];
    let mut g = c.benchmark_group(format!("rules-{n}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(timed.len() as u64));
    g.bench_function("match-stage", |b| {
        b.iter(|| {
            for (a, f) in timed {
                match_one(&set, a, f, now);
            }
        });
    });
    g.finish();
}

fn bench_pathological(c: &mut Criterion) {
    let mut sources: Vec<(PathBuf, String)> = shipped_rules()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read a shipped rule file");
            (f, text)
        })
        .collect();
    sources.push((
        PathBuf::from("near.toml"),
        "[[rule]]\nid = \"near\"\nquery = 'Healey NEAR/3 Hegseth'\n".to_string(),
    ));
    let set = RuleSet::from_sources(&sources).expect("the rules compile");
    let article = Article {
        title: "Healey Hegseth ".repeat(1_000_000 / 15),
        ..Article::default()
    };
    let feed = FeedMeta {
        name: "wire".into(),
        ..FeedMeta::default()
    };
    let now = newswatch::clock::now();
    let matches = set.match_article(&article, &feed, now);
    let entries: Vec<Entry> = matches
        .iter()
        .map(|m| {
            let info = &set.rules()[m.rule];
            Entry {
                rules_hash: None,
                rule_id: info.id.clone(),
                rule_title: info.title.clone(),
                order: (true, m.rule),
                alert: false,
                feed: feed.name.clone(),
                feed_title: None,
                article_id: 1,
                title: article.title.clone(),
                link: Some("https://wire.example/1".into()),
                summary: "".into(),
                content: "".into(),
                full_text: false,
                lang: None,
                time: now,
                hits: m
                    .hits
                    .iter()
                    .map(|h| StoredHit {
                        field: h.field.as_str().to_string(),
                        start: h.start,
                        end: h.end,
                        text: h.text.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let hits: usize = entries.iter().map(|e| e.hits.len()).sum();
    eprintln!(
        "pathological: {} matching rules, {hits} hits in all",
        entries.len()
    );
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
    let mut g = c.benchmark_group("pathological");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("match-1mb-title", |b| {
        b.iter(|| set.match_article(black_box(&article), &feed, now).len());
    });
    g.bench_function("compose-1mb-title", |b| {
        b.iter(|| {
            digest::compose(1, &cfg, "n <n@localhost>", black_box(&entries), &[], now)
                .expect("compose")
                .map(|m| m.raw.len())
        });
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    bench_pathological(c);
    // `cargo test --all-targets` (CI) runs this once in a debug build without `--bench`: there it
    // checks that every step works on 1,000 rules and 500 articles, and measures nothing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("NEWSWATCH_SCALE_RULES")
        .unwrap_or_else(|_| if measuring { "100000" } else { "1000" }.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if sizes.is_empty() {
        return;
    }
    let mut corpus = articles();
    if !measuring {
        corpus.truncate(500);
    }
    for n in sizes {
        bench_scale(c, n, &corpus);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
