//! The match step at scale: 100, 1,000 and 10,000 generated rules (terms, phrases, lists, NEAR,
//! NOT, a few regexes) over the demo corpus. Reports compile time, the whole match step
//! (normalise + scan + evaluate) and, as the ceiling, the bare Aho-Corasick scan of the same
//! normalised text with the same literals.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use newswatch::model::{Article, FeedMeta};
use newswatch::rules::{LiteralSearch, RuleSet};

/// A tiny deterministic generator (xorshift) so every run benchmarks the same rules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &'a [String]) -> &'a str {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn corpus() -> Vec<Article> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds");
    let base = url::Url::parse("https://demo.example/").expect("constant URL");
    let mut out = Vec::new();
    for f in [
        "northgate-chronicle.rss",
        "continental-defence.rss",
        "meridian-sports-and-business.rss",
        "atlantic-wire.atom",
        "kyiv-ledger.json",
    ] {
        let bytes = std::fs::read(dir.join(f)).expect("demo feed");
        out.extend(
            newswatch::parse::parse_feed(&bytes, &base)
                .expect("demo feed parses")
                .articles,
        );
    }
    out
}

/// Words of the corpus (so some rules fire) plus made-up surnames (so most literals are distinct).
fn vocabulary(articles: &[Article]) -> Vec<String> {
    let mut words: Vec<String> = articles
        .iter()
        .flat_map(|a| {
            newswatch::rules::text::normalized_words(&format!(
                "{} {} {}",
                a.title, a.summary, a.content
            ))
        })
        .filter(|w| w.len() > 3 && w.is_ascii() && w.chars().all(char::is_alphabetic))
        .collect();
    words.sort();
    words.dedup();
    let syllables = [
        "ka", "lo", "mi", "ren", "tov", "sha", "bel", "dor", "vik", "ya", "zu", "pet",
    ];
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let n = 2 + rng.next() % 3;
        let w: String = (0..n)
            .map(|_| syllables[(rng.next() % 12) as usize])
            .collect();
        words.push(w);
    }
    words
}

fn rules_toml(n: usize, words: &[String]) -> String {
    let (mut s, queries) = generated_rules(n, words);
    for (i, query) in queries.iter().enumerate() {
        s.push_str(&format!("[[rule]]\nid = \"r{i}\"\nquery = '{query}'\n"));
    }
    // Two rules with only a regex: evaluated for every article.
    s.push_str("[[rule]]\nid = \"rx1\"\nquery = '/minerals?\\s+(deal|agreement)/i'\n");
    s.push_str("[[rule]]\nid = \"rx2\"\nquery = '/\\b[0-9]{2}-day\\b/'\n");
    s
}

/// The same rules as one TOML line (`rule = [{…}, {…}]`), each with an example: a valid file
/// whose diagnostics and positions all fall on one long line (issue 16 item 10).
fn rules_one_line(n: usize, words: &[String]) -> String {
    let (lists, queries) = generated_rules(n, words);
    let items: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("{{id = \"r{i}\", query = '{q}', examples = {{match = ['x']}}}}"))
        .collect();
    // The line comes first: after `[lists]` it would belong to that table.
    format!("rule = [{}]\n{lists}", items.join(", "))
}

/// The `[lists]` section and one query per rule.
fn generated_rules(n: usize, words: &[String]) -> (String, Vec<String>) {
    let mut rng = Rng(42);
    let mut s = String::from("[lists]\n");
    let mut queries = Vec::with_capacity(n);
    for i in 0..n / 10 + 1 {
        s.push_str(&format!(
            "l{i} = ['\"{} {}\"', '{}', '{}']\n",
            rng.pick(words),
            rng.pick(words),
            rng.pick(words),
            rng.pick(words)
        ));
    }
    for i in 0..n {
        let (a, b, c) = (rng.pick(words), rng.pick(words), rng.pick(words));
        let list = rng.next() as usize % (n / 10 + 1);
        let query = match i % 10 {
            0 | 1 => a.to_string(),
            2 => format!("\"{a} {b}\""),
            3 => format!("@l{list} AND {a}"),
            4 | 5 => format!("{a} NEAR/10 {b}"),
            6 => format!("{a} AND NOT {b}"),
            7 => format!("({a} OR {b}) AND {c}*"),
            8 => format!("@l{list} ONEAR/5 ({a} OR \"{b} {c}\")"),
            _ if i % 1000 == 9 => format!("{a} AND /{b}\\s+\\w+/i"),
            _ => format!("title:{a} OR case:{}", b.to_uppercase()),
        };
        queries.push(query);
    }
    (s, queries)
}

/// Loading large rule files (issue 16 item 10): the 10,000 generated rules as usual, the same
/// rules on one line, and one long query with a warning every other word.
fn bench_load(c: &mut Criterion, words: &[String]) {
    let warned: Vec<&str> = words.iter().take(1_000).map(String::as_str).collect();
    let files = [
        ("10k-rules", rules_toml(10_000, words)),
        ("2k-rules-one-line", rules_one_line(2_000, words)),
        (
            "1k-word-query-with-warnings",
            format!("[[rule]]\nid = \"w\"\nquery = '{}'\n", warned.join(" and ")),
        ),
    ];
    let mut g = c.benchmark_group("load");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, toml) in files {
        let sources = [(PathBuf::from("bench.toml"), toml)];
        g.throughput(Throughput::Bytes(sources[0].1.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| RuleSet::from_sources(black_box(&sources)).expect("generated rules compile"));
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let articles = corpus();
    let feed = FeedMeta {
        name: "demo".into(),
        ..FeedMeta::default()
    };
    let bytes: usize = articles
        .iter()
        .map(|a| a.title.len() + a.summary.len() + a.content.len())
        .sum();
    let words = vocabulary(&articles);
    bench_load(c, &words);
    let now = newswatch::clock::now();
    // NEWSWATCH_BENCH_RULES=1000,4000 benchmarks other rule counts.
    let counts: Vec<usize> = std::env::var("NEWSWATCH_BENCH_RULES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    for n in counts {
        let toml = rules_toml(n, &words);
        let sources = [(PathBuf::from("bench.toml"), toml)];
        let mut g = c.benchmark_group(format!("rules-{n}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        g.bench_function(BenchmarkId::new("compile", n), |b| {
            b.iter(|| RuleSet::from_sources(black_box(&sources)).expect("generated rules compile"));
        });
        let set = RuleSet::from_sources(&sources).expect("generated rules compile");
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(BenchmarkId::new("match", n), |b| {
            b.iter(|| {
                let mut m = 0;
                for a in &articles {
                    m += set.match_article(black_box(a), &feed, now).len();
                }
                m
            });
        });
        let patterns = set.literal_patterns();
        // The ceiling issue 22 measures against: a bare Aho-Corasick scan of the same literals
        // (the DFA `rules::scan` runs up to `AUTOMATON_UP_TO` literals) over the same normalised
        // text, every overlapping match, with nothing else.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind((patterns.len() <= 20_000).then_some(AhoCorasickKind::DFA))
            .prefilter(false)
            .build(&patterns)
            .expect("automaton builds");
        let texts: Vec<String> = articles
            .iter()
            .map(|a| RuleSet::normalized_text(a, &feed))
            .collect();
        g.bench_function(BenchmarkId::new("bare-scan", n), |b| {
            b.iter(|| {
                texts
                    .iter()
                    .map(|t| ac.find_overlapping_iter(black_box(t.as_str())).count())
                    .sum::<usize>()
            });
        });
        g.finish();
        // Criterion measures the two far apart in time; on a shared machine the load changes in
        // between, so also time them interleaved, pass by pass, for a fair ratio.
        let (mut t_match, mut t_scan) = (Duration::ZERO, Duration::ZERO);
        // NEWSWATCH_BENCH_PASSES=0 skips this (for profiling one benchmark with --profile-time).
        let passes = std::env::var("NEWSWATCH_BENCH_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        for _ in 0..passes {
            let t = std::time::Instant::now();
            for a in &articles {
                black_box(set.match_article(black_box(a), &feed, now));
            }
            t_match += t.elapsed();
            let t = std::time::Instant::now();
            for x in &texts {
                black_box(ac.find_overlapping_iter(black_box(x.as_str())).count());
            }
            t_scan += t.elapsed();
        }
        let mbs = |d: Duration| (bytes * passes) as f64 / d.as_secs_f64() / 1e6;
        let per_s = |d: Duration| (articles.len() * passes) as f64 / d.as_secs_f64();
        if passes > 0 {
            eprintln!(
                "rules-{n} interleaved: match {:.1} MB/s ({:.0} articles/s), bare scan {:.1} MB/s, ratio {:.2}",
                mbs(t_match),
                per_s(t_match),
                mbs(t_scan),
                t_match.as_secs_f64() / t_scan.as_secs_f64()
            );
        }
        // Issue 22: the literals searched by the DFA scan and by the token index, interleaved
        // pass by pass (`rules::AUTOMATON_UP_TO` is where the second overtakes the first).
        if std::env::var_os("NEWSWATCH_BENCH_SEARCH").is_some() {
            let kinds = [LiteralSearch::Automaton, LiteralSearch::Tokens].map(|k| {
                let set = RuleSet::from_sources(&sources)
                    .expect("generated rules compile")
                    .with_literal_search(k)
                    .expect("literals build");
                (k, set, Duration::ZERO)
            });
            let mut kinds = kinds;
            for _ in 0..passes {
                for (_, set, spent) in &mut kinds {
                    let t = std::time::Instant::now();
                    for a in &articles {
                        black_box(set.match_article(black_box(a), &feed, now));
                    }
                    *spent += t.elapsed();
                }
            }
            let [(_, _, dfa), (_, _, tokens)] = &kinds;
            eprintln!(
                "rules-{n} search: automaton {:.1} MB/s, tokens {:.1} MB/s, tokens/automaton time {:.2}",
                mbs(*dfa),
                mbs(*tokens),
                tokens.as_secs_f64() / dfa.as_secs_f64()
            );
        }
        if std::env::var_os("NEWSWATCH_BENCH_KINDS").is_some() {
            for (name, kind, pre) in [
                ("dfa+pre", Some(AhoCorasickKind::DFA), true),
                ("dfa", Some(AhoCorasickKind::DFA), false),
                ("cnfa", Some(AhoCorasickKind::ContiguousNFA), false),
                ("cnfa+pre", Some(AhoCorasickKind::ContiguousNFA), true),
            ] {
                let ac2 = AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(kind)
                    .prefilter(pre)
                    .build(&patterns)
                    .expect("automaton builds");
                let t = std::time::Instant::now();
                for _ in 0..passes {
                    for x in &texts {
                        black_box(ac2.find_overlapping_iter(black_box(x.as_str())).count());
                    }
                }
                eprintln!("rules-{n} scan {name}: {:.1} MB/s", mbs(t.elapsed()));
            }
        }
        let matched: usize = articles
            .iter()
            .map(|a| set.match_article(a, &feed, now).len())
            .sum();
        eprintln!(
            "rules-{n}: {} literals, {} articles, {bytes} bytes, {matched} matches per pass",
            patterns.len(),
            articles.len()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
