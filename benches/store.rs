//! Storing one poll: 50 parsed items of a feed into a real SQLite file (WAL, synchronous=FULL, as
//! the daemon opens it) in a temp dir, through `Store::record_fetched` (one transaction per poll).
//! Two cases: every item new (50 inserts) and every item already seen (50 conflicting inserts).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use newswatch::article::Article;
use newswatch::fetch::Validators;
use newswatch::store::{Fetched, Store};

const ITEMS: usize = 50;

fn poll(round: u64, now: DateTime<Utc>) -> Vec<Article> {
    (0..ITEMS)
        .map(|i| Article {
            key: format!("https://wire.example/{round}/story-{i}"),
            link: Some(format!("https://wire.example/{round}/story-{i}")),
            title: format!("Defence ministers meet in Brussels over Ukraine backstop, item {i}"),
            summary: "Defence Secretary John Healey told reporters the coalition of the willing \
                      would meet again next week to discuss a US backstop for any ceasefire."
                .repeat(3),
            content: "Kyiv (Wire) - Officials said talks on the minerals deal continued. "
                .repeat(20),
            authors: vec!["Staff Reporter".into()],
            categories: vec!["Politics".into(), "Defence".into()],
            lang: Some("en-GB".into()),
            published: Some(now - chrono::Duration::minutes(i as i64)),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open store");
    store
        .ensure_feed("wire", "http://127.0.0.1/wire.xml")
        .expect("feed row");
    let now = Utc::now();
    let next = now + chrono::Duration::hours(1);
    let window = Duration::from_secs(3650 * 86_400);
    let validators = Validators {
        etag: Some("\"v1\"".into()),
        last_modified: None,
    };
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(ITEMS as u64));
    let mut round = 0u64;
    g.bench_function("poll_50_new", |b| {
        b.iter_batched(
            || {
                round += 1;
                poll(round, now)
            },
            |articles| {
                let fetched = Fetched {
                    title: Some("Wire"),
                    validators: &validators,
                    articles: &articles,
                };
                black_box(
                    store
                        .record_fetched("wire", fetched, now, window, next)
                        .expect("insert"),
                )
            },
            BatchSize::SmallInput,
        );
    });
    let seen = poll(0, now);
    let fetched = Fetched {
        title: Some("Wire"),
        validators: &validators,
        articles: &seen,
    };
    store
        .record_fetched("wire", fetched, now, window, next)
        .expect("first insert");
    g.bench_function("poll_50_seen", |b| {
        b.iter(|| {
            let fetched = Fetched {
                title: Some("Wire"),
                validators: &validators,
                articles: &seen,
            };
            let ins = store
                .record_fetched("wire", fetched, now, window, next)
                .expect("insert");
            assert_eq!(ins.new, 0, "already-seen items must not be new");
            black_box(ins)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
