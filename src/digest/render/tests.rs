//! What a digest selects and where it shows it: each article once (under its first rule, "also
//! matches" naming the others), stories in the stated order (rule priority, outlets, recency),
//! the overflow counted per group with its next headlines linked.

use chrono::{DateTime, Utc};

use super::render;
use crate::config::DigestConfig;
use crate::digest::{Audience, Batch, Entry};
use crate::model::StoredHit;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Article `id` from `feed`, matched by rule `rule` (place `order`; alert rules first), `mins`
/// minutes old; the hit is the headline's first word.
fn entry(id: i64, rule: (&str, (bool, usize)), feed: &str, title: &str, mins: i64) -> Entry {
    let word = title.split(' ').next().unwrap_or_default();
    Entry {
        rule_id: rule.0.to_lowercase(),
        rule_title: rule.0.into(),
        order: rule.1,
        alert: !rule.1.0,
        feed: feed.into(),
        feed_title: None,
        article_id: id,
        title: title.into(),
        link: Some(format!("https://{feed}.example/{id}")),
        summary: String::new(),
        content: String::new(),
        time: now() - chrono::Duration::minutes(mins),
        hits: vec![StoredHit {
            field: "title".into(),
            start: 0,
            end: word.len(),
            text: word.into(),
        }],
    }
}

fn cfg(max_items: usize) -> DigestConfig {
    DigestConfig {
        name: "desk".into(),
        to: vec!["a@example.org".into()],
        max_items,
        ..DigestConfig::default()
    }
}

const A: (&str, (bool, usize)) = ("Alpha", (true, 0));
const B: (&str, (bool, usize)) = ("Bravo", (true, 1));
const C: (&str, (bool, usize)) = ("Charlie", (true, 2));
const URGENT: (&str, (bool, usize)) = ("Urgent", (false, 9));

fn shown(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("* ")).collect()
}

#[test]
fn an_article_matching_three_rules_appears_once_with_also_matches() {
    let title = "Harbour talks resume in Odesa";
    let entries = vec![
        entry(1, C, "wire", title, 5),
        entry(1, A, "wire", title, 5),
        entry(1, B, "wire", title, 5),
        entry(2, B, "wire", "Bravo-only story about grain corridors", 6),
        entry(3, C, "wire", "Charlie-only story about port insurance", 7),
    ];
    let r = render(
        &Audience::digest(&cfg(40)),
        &Batch::complete(entries),
        &[],
        now(),
    )
    .expect("render");
    for part in [&r.text, &r.html] {
        assert_eq!(part.matches(title).count(), 1, "{part}");
        assert_eq!(
            part.matches("also matches: Bravo, Charlie").count(),
            1,
            "{part}"
        );
    }
    assert!(
        r.subject
            .ends_with("3 articles: Alpha (1), Bravo (1), Charlie (1)"),
        "{}",
        r.subject
    );
    assert!(r.text.contains("3 new articles"), "{}", r.text);
    let alpha = r.text.find("== Alpha (1) ==").unwrap_or(usize::MAX);
    let bravo = r.text.find("== Bravo (1) ==").unwrap_or(0);
    let at = r.text.find(title).unwrap_or(usize::MAX);
    assert!(alpha < at && at < bravo, "under its first rule: {}", r.text);
    assert_eq!((r.shown, r.more), (3, 0));
}

#[test]
fn stories_rank_by_rule_priority_then_outlets_then_recency() {
    let three = "Grain corridor reopens after naval talks";
    let mut entries = vec![
        // Newest, one outlet.
        entry(1, A, "wire", "Newest single-outlet story on drones", 1),
        // Older, three outlets.
        entry(2, A, "wire", three, 50),
        entry(3, A, "daily", three, 52),
        entry(4, A, "herald", three, 55),
        // Oldest, one outlet, but an alert rule.
        entry(5, URGENT, "wire", "Urgent story on air defence", 300),
        // Second newest, one outlet.
        entry(6, A, "wire", "Second single-outlet story on mines", 2),
    ];
    let batch = Batch::complete(entries.clone());
    let r = render(&Audience::digest(&cfg(2)), &batch, &[], now()).expect("render");
    // The alert rule's section comes first; Alpha shows its three-outlet story; the two
    // single-outlet stories are counted and linked, newest first.
    assert_eq!(
        shown(&r.text),
        ["Urgent story on air defence", three],
        "{}",
        r.text
    );
    assert!(
        r.text.contains(
            "  and 2 more, among them:\n  - Newest single-outlet story on drones\n    \
             https://wire.example/1\n  - Second single-outlet story on mines\n"
        ),
        "{}",
        r.text
    );
    assert!(
        r.html.contains("href=\"https://wire.example/1\""),
        "{}",
        r.html
    );
    assert_eq!((r.shown, r.more), (2, 2));
    // Without the alert rule, three stories fit: outlets first, then recency.
    entries.retain(|e| e.article_id != 5);
    let batch = Batch::complete(entries);
    let r = render(&Audience::digest(&cfg(3)), &batch, &[], now()).expect("render");
    assert_eq!(
        shown(&r.text),
        [
            three,
            "Newest single-outlet story on drones",
            "Second single-outlet story on mines"
        ],
        "{}",
        r.text
    );
}
