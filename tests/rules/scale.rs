//! The matcher at scale (issue 22): one pathological article costs bounded evidence, whatever
//! its repetitions, and the verdicts do not change.

use std::path::PathBuf;

use newswatch::model::{Article, FeedMeta};
use newswatch::rules::{Field, MATCH_FIELD_CAP, MAX_HITS_PER_ATOM, RuleSet};

use crate::support::demo::shipped_rule_files;

/// The shipped rules plus a NEAR and a regex over the same two names.
fn rule_set() -> RuleSet {
    let mut sources: Vec<(PathBuf, String)> = shipped_rule_files()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read a shipped rule file");
            (f, text)
        })
        .collect();
    sources.push((
        PathBuf::from("extra.toml"),
        "[[rule]]\nid = \"near\"\nquery = 'Healey NEAR/3 Hegseth'\n\
         [[rule]]\nid = \"regex\"\nquery = 'Healey AND /Heg\\w+/'\n"
            .to_string(),
    ));
    RuleSet::from_sources(&sources).expect("the rules compile")
}

fn titled(title: String) -> Article {
    Article {
        title,
        ..Article::default()
    }
}

/// A 1 MB title of `Healey Hegseth ` (matched on its first 256 KiB: 17,476 of each name) made
/// 35,000 hits for one match, which composing its email then compared pairwise (43 s in a debug
/// `run --once`). Each atom now gives at most `MAX_HITS_PER_ATOM` hits, the first in the text,
/// and the same rules match as for the two names once.
#[test]
fn a_repetitive_article_keeps_bounded_evidence_and_the_same_verdicts() {
    let set = rule_set();
    let feed = FeedMeta::default();
    let long = titled("Healey Hegseth ".repeat(1_000_000 / 15));
    assert!(long.title.len() > MATCH_FIELD_CAP);
    let short = titled("Healey Hegseth".to_string());
    let ids = |ms: &[newswatch::rules::RuleMatch]| -> Vec<String> {
        ms.iter().map(|m| set.rules()[m.rule].id.clone()).collect()
    };
    let (got, once) = (
        set.match_article_unfiltered(&long, &feed),
        set.match_article_unfiltered(&short, &feed),
    );
    assert_eq!(ids(&got), ids(&once));
    for want in ["healey-hegseth-talks", "near", "regex"] {
        assert!(
            ids(&got).iter().any(|id| id == want),
            "{want}: {:?}",
            ids(&got)
        );
    }
    for m in &got {
        let id = &set.rules()[m.rule].id;
        for name in ["Healey", "Hegseth"] {
            let n = m.hits.iter().filter(|h| h.text == name).count();
            assert!(
                (1..=MAX_HITS_PER_ATOM).contains(&n),
                "rule {id}: {n} hits of {name}"
            );
        }
        // The first occurrences: the evidence starts where the title does.
        assert_eq!(m.hits[0].field, Field::Title);
        assert_eq!(m.hits[0].start, 0, "rule {id}");
        assert!(m.hits.iter().all(|h| h.end <= 2 * 15 * MAX_HITS_PER_ATOM));
    }
}
