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

/// `n` rules, rule `i` searching the made-up word `w{i}x` (and a list every seventh rule).
fn many_rules(n: usize) -> String {
    let mut s = String::from("[lists]\npeople = ['\"John Healey\"', 'Hegseth']\n");
    for i in 0..n {
        let query = if i % 7 == 0 {
            format!("w{i}x AND @people")
        } else {
            format!("w{i}x")
        };
        s.push_str(&format!("\n[[rule]]\nid = \"r{i}\"\nquery = '{query}'\n"));
    }
    s
}

/// Loading 3,000 rules runs on every core (issue 22); what it gives must not show it: each rule
/// keeps its id and verdicts, and there is one warning for all the rules without examples.
#[test]
fn a_large_rule_set_loads_in_order_with_one_summary_warning() {
    let n = 3_000;
    let set = RuleSet::from_sources(&[(PathBuf::from("big.toml"), many_rules(n))])
        .expect("the rules compile");
    assert_eq!(set.rules().len(), n);
    for i in [0, 1, 1_499, 1_500, 2_999] {
        let text = format!("w{i}x met Pete Hegseth");
        let got: Vec<&str> = set
            .match_article_unfiltered(&titled(text), &FeedMeta::default())
            .iter()
            .map(|m| set.rules()[m.rule].id.as_str())
            .collect();
        assert_eq!(got, [format!("r{i}")], "article {i}");
    }
    let warnings: Vec<String> = set
        .warnings()
        .iter()
        .map(|w| w.as_warning().to_string())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "big.toml:4:1: warning: rule r0: rule has no examples, nor do 2999 other rules"
        ),
        "{}",
        warnings[0]
    );
}

/// Errors found while loading in parallel are those of one thread, at their places.
#[test]
fn a_large_rule_set_reports_every_error_at_its_place() {
    let text = many_rules(3_000)
        .replace("id = \"r2500\"", "id = \"r100\"")
        .replace("query = 'w2801x'", "query = 'w2801x AND @nobody'");
    let Err(diags) = RuleSet::from_sources(&[(PathBuf::from("big.toml"), text)]) else {
        panic!("a duplicate id and an unknown list must fail the load");
    };
    let all = diags.to_string();
    // Rule i's header is at line 4 + 4i, its `id` at 5 + 4i, its `query` at 6 + 4i.
    assert!(
        all.contains(
            "big.toml:10005:6: rule r100: duplicate rule id `r100` (first defined at big.toml:405)"
        ),
        "{all}"
    );
    assert!(all.contains("big.toml:11210:"), "{all}");
    assert!(all.contains("unknown list @nobody"), "{all}");
}

/// The rule file is read in chunks of 4,096 `[[rule]]` tables, each dropped once read (issue 22,
/// memory): across chunk boundaries the rules keep their order, and a duplicate id or a bad query
/// is still reported at its place.
#[test]
fn rules_read_in_chunks_keep_their_order_and_their_errors() {
    let n = 10_000;
    let set = RuleSet::from_sources(&[(PathBuf::from("big.toml"), many_rules(n))])
        .expect("the rules compile");
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    let want: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, want);
    for i in [4_095, 4_096, 8_192, 9_999] {
        let got: Vec<&str> = set
            .match_article_unfiltered(
                &titled(format!("w{i}x met Pete Hegseth")),
                &FeedMeta::default(),
            )
            .iter()
            .map(|m| set.rules()[m.rule].id.as_str())
            .collect();
        assert_eq!(got, [format!("r{i}")], "article {i}");
    }
    let text = many_rules(n)
        .replace("id = \"r5000\"", "id = \"r100\"")
        .replace("query = 'w9801x'", "query = 'w9801x AND @nobody'");
    let Err(diags) = RuleSet::from_sources(&[(PathBuf::from("big.toml"), text)]) else {
        panic!("a duplicate id and an unknown list must fail the load");
    };
    let all = diags.to_string();
    // Rule i's `id` is at line 5 + 4i, its `query` at 6 + 4i.
    assert!(
        all.contains(
            "big.toml:20005:6: rule r100: duplicate rule id `r100` (first defined at big.toml:405)"
        ),
        "{all}"
    );
    assert!(all.contains("big.toml:39210:"), "{all}");
    assert!(all.contains("unknown list @nobody"), "{all}");
}

/// A large file is parsed as TOML a piece at a time: a syntax error in each of two pieces is
/// reported at its place in the file, in one run.
#[test]
fn syntax_errors_in_two_pieces_of_a_large_file_are_both_reported() {
    let text = many_rules(10_000)
        .replace("id = \"r1000\"", "id = \"r1000")
        .replace("query = 'w9000x'", "query = w9000x'");
    let Err(diags) = RuleSet::from_sources(&[(PathBuf::from("big.toml"), text)]) else {
        panic!("two syntax errors must fail the load");
    };
    let all = diags.to_string();
    // Rule i's `id` is at line 5 + 4i, its `query` at 6 + 4i.
    assert!(all.contains("big.toml:4005:"), "{all}");
    assert!(all.contains("big.toml:36006:"), "{all}");
    assert!(all.contains("this is not valid TOML"), "{all}");
}
