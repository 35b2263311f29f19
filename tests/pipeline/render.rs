//! The rendered digest against its snapshots (insta, `tests/pipeline/snapshots/`): two rules,
//! one story carried by two outlets, and a failing-feed notice, through `digest::compose`.
//! A changed template fails here; review with `cargo insta review` (CI never writes snapshots).

use chrono::{DateTime, Utc};
use newswatch::config::DigestConfig;
use newswatch::digest::spec::{RuleSelection, WhenEmpty};
use newswatch::digest::{self, Entry};
use newswatch::model::StoredHit;

use crate::support::mail::Mail;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .expect("a valid RFC 3339 time")
        .with_timezone(&Utc)
}

fn config() -> DigestConfig {
    DigestConfig {
        name: "Main desk".into(),
        to: vec!["Analyst <analyst@example.org>".into()],
        subject_prefix: "[newswatch]".into(),
        title: Some("Morning brief".into()),
        schedule: None,
        timezone: chrono_tz::Europe::London,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
    }
}

/// An entry whose hits are every occurrence of `terms` in the title and summary.
fn entry(
    id: i64,
    rule: &str,
    title: &str,
    link: Option<&str>,
    summary: &str,
    terms: &[&str],
) -> Entry {
    let mut hits = Vec::new();
    for (field, text) in [("title", title), ("summary", summary)] {
        for t in terms {
            for (start, m) in text.match_indices(t) {
                hits.push(StoredHit {
                    field: field.into(),
                    start,
                    end: start + m.len(),
                    text: m.into(),
                });
            }
        }
    }
    Entry {
        rule_id: rule.to_lowercase().replace(' ', "-"),
        rule_title: rule.into(),
        feed: "kyiv-ledger".into(),
        feed_title: Some("Kyiv Ledger".into()),
        article_id: id,
        title: title.into(),
        link: link.map(str::to_string),
        summary: summary.into(),
        content: String::new(),
        time: now(),
        hits,
    }
}

/// The entries of the snapshot digest: two rules, one story carried by two outlets.
fn sample() -> Vec<Entry> {
    let mut wire = entry(
        2,
        "Minerals deal",
        "Kyiv and Washington agree terms of minerals deal",
        Some("https://atlantic-wire.example/2?utm_source=rss"),
        "Officials in Kyiv said the minerals deal text was agreed late on Tuesday.",
        &["minerals deal"],
    );
    wire.feed = "atlantic-wire".into();
    wire.feed_title = Some("Atlantic Wire".into());
    wire.time = now() + chrono::Duration::minutes(30);
    vec![
        entry(
            1,
            "Minerals deal",
            "Kyiv and Washington agree terms of minerals deal, officials say",
            Some("https://kyiv-ledger.example/1"),
            "Ukrainian officials said the minerals deal was agreed after weeks of talks.",
            &["minerals deal"],
        ),
        wire,
        entry(
            3,
            "Healey–Hegseth talks",
            "Healey meets Hegseth at the Pentagon",
            Some("https://kyiv-ledger.example/3"),
            "British Defence Secretary John Healey met Pete Hegseth on Friday for talks on Ukraine.",
            &["Healey", "Hegseth"],
        ),
    ]
}

#[test]
fn rendered_digest_matches_the_snapshots() {
    let notices =
        vec!["Meridian Sports: 3 failed polls in a row; last error: HTTP status 503".to_string()];
    let composed = digest::compose(
        7,
        &config(),
        "newswatch <nw@example.org>",
        &sample(),
        &notices,
        now(),
    )
    .expect("the sample composes")
    .expect("matches make a digest");
    let mail = Mail::parse(&composed.raw);
    assert_eq!(mail.subject, composed.subject);
    assert_eq!(
        composed.subject,
        "[newswatch] Morning brief — 3 articles: Minerals deal (2), Healey–Hegseth talks (1)"
    );
    let text = mail.text.replace("\r\n", "\n");
    let html = mail.html;
    insta::assert_snapshot!("digest.txt", text);
    insta::assert_snapshot!("digest.html", html);
}
