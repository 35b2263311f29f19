//! `rules eval` at scale: 10,000 generated labelled items (title + summary, six languages, made
//! from the shipped rules' own examples) under the shipped rules (`rules/*.toml`). Reports parsing
//! the labels file, evaluating, and both. The file is also written to
//! `target/tmp/eval-10k.jsonl`, so the real command can be timed on the same items.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use newswatch::cli::eval::labels;
use newswatch::rules::RuleSet;
use newswatch::rules::eval::evaluate;

const ITEMS: usize = 10_000;

fn shipped_rules() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rules/ is in the repository")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// One JSON line per item: item `i` takes one example as its title and another as its summary,
/// labelled with the rules of the `match` examples among them; every fourth item also carries a
/// wrong label, so a quarter of the items list a false negative (whose explain tree is the
/// costliest part of a report).
fn labels_jsonl(set: &RuleSet) -> String {
    let examples: Vec<(&str, &str, bool)> = set
        .rules()
        .iter()
        .flat_map(|r| {
            r.examples
                .iter()
                .map(move |e| (r.id.as_str(), e.text.as_str(), e.expect_match))
        })
        .collect();
    let langs = ["en", "fr", "de", "uk", "ru", "pl"];
    let mut out = String::new();
    for i in 0..ITEMS {
        let (rule, title, positive) = examples[i % examples.len()];
        let (other, summary, other_positive) = examples[(i * 7 + 3) % examples.len()];
        let mut labels: Vec<&str> = Vec::new();
        for (r, yes) in [(rule, positive), (other, other_positive)] {
            if yes && !labels.contains(&r) {
                labels.push(r);
            }
        }
        let wrong = set.rules()[(i / 4) % set.rules().len()].id.as_str();
        if i % 4 == 0 && !labels.contains(&wrong) {
            labels.push(wrong);
        }
        let line = serde_json::json!({
            "id": format!("item-{i}"),
            "title": title,
            "summary": format!("{summary} Officials met again on day {i} of the talks."),
            "lang": langs[i % langs.len()],
            "feed": "bench",
            "published": "2025-03-01T10:00:00Z",
            "labels": labels,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    let set = RuleSet::load(&shipped_rules()).expect("the shipped rules load");
    let text = labels_jsonl(&set);
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-10k.jsonl");
    std::fs::write(&tmp, &text).expect("write the generated labels file");
    let sources = [(PathBuf::from("eval-10k.jsonl"), text)];
    let parsed = labels::parse(&sources, &set);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors.first());

    let mut g = c.benchmark_group("eval-10k");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(ITEMS as u64));
    g.bench_function("parse", |b| {
        b.iter(|| labels::parse(black_box(&sources), &set).items.len());
    });
    g.bench_function("evaluate", |b| {
        b.iter(|| evaluate(&set, black_box(&parsed.items)).micro);
    });
    g.bench_function("parse+evaluate", |b| {
        b.iter(|| {
            let l = labels::parse(black_box(&sources), &set);
            evaluate(&set, &l.items).micro
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
