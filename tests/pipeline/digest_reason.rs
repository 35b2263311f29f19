//! The reason in view, as a property over the demo corpus: every shipped rule run over every demo
//! feed, the matches rendered as one digest; in every entry, each term on its "matched:" line is
//! visible in the entry's headline or snippet (issue 15).

use chrono::{DateTime, Utc};
use newswatch::config::DigestConfig;
use newswatch::digest::{self, Audience, Batch, Entry};
use newswatch::model::{FeedMeta, StoredHit};
use newswatch::rules::RuleSet;

use crate::support::demo::{DEMO_FEEDS, demo_feed, shipped_rule_files};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Every (article, rule) match of the shipped rules over the demo feeds, as digest entries.
fn demo_entries() -> Vec<Entry> {
    let rules = RuleSet::load(&shipped_rule_files()).expect("the shipped rules load");
    let base = url::Url::parse("http://127.0.0.1/").expect("url");
    let mut entries = Vec::new();
    let mut id = 0;
    for f in DEMO_FEEDS {
        let parsed = newswatch::parse::parse_feed(&demo_feed(f), &base).expect("demo feed parses");
        let feed = FeedMeta {
            name: f.split('.').next().unwrap_or(f).to_string(),
            title: parsed.title.clone(),
            tags: Vec::new(),
        };
        for a in parsed.articles {
            id += 1;
            for m in rules.match_article_unfiltered(&a, &feed) {
                let rule = &rules.rules()[m.rule];
                entries.push(Entry {
                    rules_hash: None,
                    rule_id: rule.id.clone(),
                    rule_title: rule.title.clone(),
                    order: (rule.priority != newswatch::rules::Priority::Alert, m.rule),
                    alert: rule.priority == newswatch::rules::Priority::Alert,
                    feed: feed.name.clone(),
                    feed_title: feed.title.clone(),
                    article_id: id,
                    title: a.title.clone(),
                    link: a.link.clone(),
                    summary: a.summary.as_str().into(),
                    content: a.content.as_str().into(),
                    full_text: false,
                    lang: None,
                    time: a.published.unwrap_or_else(now),
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
                });
            }
        }
    }
    entries
}

#[test]
fn every_matched_term_is_visible_in_the_headline_or_snippet() {
    let entries = demo_entries();
    assert!(entries.len() > 20, "the demo matches: {}", entries.len());
    let cfg = DigestConfig {
        name: "demo".into(),
        to: vec!["a@example.org".into()],
        channels: Vec::new(),
        max_items: 1_000,
        ..DigestConfig::default()
    };
    let r = digest::render(
        &Audience::digest(&cfg),
        &Batch::complete(entries),
        &[],
        now(),
    )
    .expect("render");
    let mut checked = 0;
    for block in r.text.split("\n* ").skip(1) {
        let block = block.split("\n\n").next().unwrap_or_default();
        let lines: Vec<&str> = block.lines().collect();
        let Some(at) = lines.iter().position(|l| l.starts_with("  matched:")) else {
            panic!("no matched line in\n{block}");
        };
        let shown = lines[..at]
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.starts_with("http"))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        // The text part is wrapped: the matched line goes on until the "also" lines.
        let matched = lines[at..]
            .iter()
            .take_while(|l| !l.starts_with("  also"))
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let terms = matched
            .trim_start_matches("matched: ")
            .split(" · in the full text: ")
            .next()
            .unwrap_or_default();
        for t in terms.split(", ").filter(|t| !t.is_empty()) {
            assert!(
                shown.contains(&t.to_lowercase()),
                "{t:?} is not in the headline or snippet of\n{block}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked} terms checked:\n{}", r.text);
    // The text part is wrapped at 78 columns; only a URL may be longer.
    for l in r.text.lines() {
        assert!(
            l.chars().count() <= 78 || l.trim().starts_with("http"),
            "{l:?}"
        );
    }
}
