//! Storing one poll: 50 parsed items of a feed into a real SQLite file (WAL, synchronous=FULL, as
//! the daemon opens it) in a temp dir, through `Store::record_poll` (one transaction per poll).
//! Two cases: every item new (50 inserts) and every item already seen (50 conflicting inserts).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use newswatch::model::{Article, Validators};
use newswatch::policy::feed_health::Thresholds;
use newswatch::store::{PollRecord, PollResult, Store};

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
            lang_detected: None,
            published: Some(now - chrono::Duration::minutes(i as i64)),
        })
        .collect()
}

/// A successful poll as the pipeline records it: no per-poll cap, no hints, no redirect.
fn fetched<'a>(
    validators: &'a Validators,
    articles: &'a [Article],
    now: DateTime<Utc>,
    next: DateTime<Utc>,
    window: Duration,
) -> PollRecord<'a> {
    PollRecord {
        result: PollResult::Fetched {
            title: Some("Wire"),
            validators,
            articles,
            hint_ttl: None,
            permanent_redirect: None,
        },
        now,
        next_due: next,
        new_feed_window: window,
        flood_at: usize::MAX,
        thresholds: Thresholds::default(),
        stats: newswatch::store::PollStats::default(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open store");
    store
        .ensure_feeds([("wire", "http://127.0.0.1/wire.xml")])
        .expect("feed row");
    let now = newswatch::clock::now();
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
                black_box(
                    store
                        .record_poll("wire", &fetched(&validators, &articles, now, next, window))
                        .expect("insert"),
                )
            },
            BatchSize::SmallInput,
        );
    });
    let seen = poll(0, now);
    store
        .record_poll("wire", &fetched(&validators, &seen, now, next, window))
        .expect("first insert");
    g.bench_function("poll_50_seen", |b| {
        b.iter(|| {
            let ins = store
                .record_poll("wire", &fetched(&validators, &seen, now, next, window))
                .expect("insert")
                .inserted;
            assert_eq!(ins.new, 0, "already-seen items must not be new");
            black_box(ins)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
