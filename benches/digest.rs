//! Rendering one digest email of 50 matched articles under 8 rules: grouping, the text and HTML
//! templates (minijinja) and the MIME message (lettre), through `digest::compose`.

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use newswatch::config::DigestConfig;
use newswatch::digest::{self, Entry};
use newswatch::digest_spec::{RuleSelection, WhenEmpty};
use newswatch::store::StoredHit;

const ENTRIES: usize = 50;

fn bench(c: &mut Criterion) {
    let now = Utc::now();
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
                rule_id: format!("rule-{}", i % 8),
                rule_title: format!("Rule {}: Healey and Hegseth on the US backstop", i % 8),
                feed: format!("f{:05}", i % 13),
                feed_title: Some(format!("Wire service {}", i % 13)),
                article_id: i as i64,
                title,
                link: Some(format!("https://wire.example/2025/03/story-{i}?ref=feed")),
                summary,
                content: String::new(),
                time: now - chrono::Duration::minutes(i as i64 * 7),
                hits,
            }
        })
        .collect();
    let cfg = DigestConfig {
        name: "briefing".into(),
        to: vec!["Analyst <analyst@example.org>".into()],
        subject_prefix: "[newswatch]".into(),
        title: Some("Morning brief".into()),
        schedule: None,
        timezone: chrono_tz::Europe::London,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
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

criterion_group!(benches, bench);
criterion_main!(benches);
