//! Feed parse + normalise (feed-rs, HTML to text, canonical links, keys) on a realistic corpus:
//! the end-to-end harness's generated wire copy (scripts/bench/gen.py, 20 feeds × 50 items, a
//! quarter with full HTML content) when present under target/bench-data, plus the five demo
//! feeds (RSS, Atom, JSON). Reports MB/s (Throughput::Bytes) and items/s (Throughput::Elements).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn demo_feeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds");
    [
        "northgate-chronicle.rss",
        "continental-defence.rss",
        "meridian-sports-and-business.rss",
        "atlantic-wire.atom",
        "kyiv-ledger.json",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).expect("demo feed"))
    .collect()
}

/// The harness's generated feeds, if `scripts/bench/run` (or gen.py) has produced them: the
/// first 20 of the 200 × 50 set, the same mix of description-only and content:encoded feeds.
fn generated_feeds() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/feeds-200x50-s7");
    let mut out = Vec::new();
    for i in 1..=20 {
        if let Ok(b) = std::fs::read(dir.join(format!("f{i:05}.xml"))) {
            out.push(b);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let base = url::Url::parse("https://bench.example/feed").expect("constant URL");
    let mut sets = vec![("demo", demo_feeds())];
    let generated = generated_feeds();
    if generated.is_empty() {
        eprintln!(
            "parse bench: no generated corpus under target/bench-data (run scripts/bench/run once); demo feeds only"
        );
    } else {
        sets.push(("generated", generated));
    }
    let mut g = c.benchmark_group("parse");
    for (name, feeds) in &sets {
        let bytes: usize = feeds.iter().map(Vec::len).sum();
        let items: usize = feeds
            .iter()
            .map(|f| {
                newswatch::parse::parse_feed(f, &base)
                    .expect("corpus feed parses")
                    .articles
                    .len()
            })
            .sum();
        eprintln!(
            "parse bench: {name}: {} feeds, {items} items, {bytes} bytes",
            feeds.len()
        );
        let run = |b: &mut criterion::Bencher<'_>| {
            b.iter(|| {
                for f in feeds {
                    black_box(newswatch::parse::parse_feed(black_box(f), &base).ok());
                }
            });
        };
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(BenchmarkId::new("bytes", name), run);
        g.throughput(Throughput::Elements(items as u64));
        g.bench_function(BenchmarkId::new("items", name), run);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
