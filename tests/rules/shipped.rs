//! The shipped rules (their examples, the demo feeds) and the rule CLI on the built binary:
//! `check`, `rules test|explain`, `rules backtest` on a copy of the demo.

use std::path::Path;

use newswatch::model::FeedMeta;
use newswatch::rules::RuleSet;

use crate::support::bin;
use crate::support::demo::{copy_demo, shipped_rule_files};

/// Tidy: every file in rules/ loads, and every example of every shipped rule passes.
#[test]
fn shipped_rules_load_and_their_examples_pass() {
    let files = shipped_rule_files();
    assert!(files.len() >= 2);
    for f in &files {
        if let Err(d) = RuleSet::load(std::slice::from_ref(f)) {
            // A file of rules may use lists from another file; it must load together with them.
            let all = RuleSet::load(&files);
            assert!(all.is_ok(), "{}: {d}", f.display());
        }
    }
    let set = RuleSet::load(&files).expect("the shipped rules load together");
    let failures = set.check_examples();
    assert!(
        failures.is_empty(),
        "{}",
        newswatch::rules::Diagnostics(failures)
    );
    assert!(set.rules().len() >= 8);
    for r in set.rules() {
        let matches = r.examples.iter().filter(|e| e.expect_match).count();
        assert!(
            matches >= 3 && r.examples.len() - matches >= 3,
            "rule {} needs 3+3 examples",
            r.id
        );
    }
}

#[derive(serde::Deserialize)]
struct Manifest {
    article: Vec<ManifestArticle>,
}

#[derive(serde::Deserialize)]
struct ManifestArticle {
    feed: String,
    title: String,
    topics: Vec<String>,
    near_miss: Option<String>,
}

/// The shipped rules find every on-topic demo article for their topic and no near-miss at all.
#[test]
fn shipped_rules_against_the_demo_feeds() {
    let set = RuleSet::load(&shipped_rule_files()).expect("the shipped rules load together");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(dir.join("MANIFEST.toml")).unwrap_or_default())
            .expect("MANIFEST.toml parses");
    let mut problems = Vec::new();
    let mut extra = 0;
    let mut checked = 0;
    for feed_file in [
        "northgate-chronicle.rss",
        "continental-defence.rss",
        "meridian-sports-and-business.rss",
        "atlantic-wire.atom",
        "kyiv-ledger.json",
    ] {
        let bytes = std::fs::read(dir.join(feed_file)).unwrap_or_default();
        let base = url::Url::parse("https://demo.example/").expect("a valid base URL");
        let parsed = newswatch::parse::parse_feed(&bytes, &base)
            .unwrap_or_else(|e| panic!("{feed_file}: {e}"));
        let feed = FeedMeta {
            name: feed_file.to_string(),
            title: parsed.title.clone(),
            tags: Vec::new(),
        };
        for a in &parsed.articles {
            let Some(entry) = manifest
                .article
                .iter()
                .find(|m| m.feed == feed_file && m.title == a.title)
            else {
                problems.push(format!(
                    "{feed_file}: {:?} is not in MANIFEST.toml",
                    a.title
                ));
                continue;
            };
            checked += 1;
            let got: Vec<&str> = set
                .match_article_unfiltered(a, &feed)
                .iter()
                .map(|m| set.rules()[m.rule].id.as_str())
                .collect();
            for t in &entry.topics {
                if !got.contains(&t.as_str()) {
                    problems.push(format!("missed {t}: {:?}", a.title));
                }
            }
            if let Some(trap) = &entry.near_miss
                && !got.is_empty()
            {
                problems.push(format!("near miss {trap} matched {got:?}: {:?}", a.title));
            }
            extra += got
                .iter()
                .filter(|g| !entry.topics.iter().any(|t| t == *g))
                .count();
        }
    }
    assert_eq!(checked, manifest.article.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // FIXME: 1 match outside the labelled topics (issue 14): phased-truce on a planning article
    // whose force would patrol the air and the sea after a ceasefire. (paused-aid-intel on "left
    // Washington without a clear answer on American air or intelligence support" went when
    // "without" had to stand next to the aid word.)
    assert!(extra <= 1, "{extra} matches outside the labelled topics");
}

/// (exit code, stdout, stderr) of the built binary run from the repository root.
fn newswatch(args: &[&str]) -> (i32, String, String) {
    let out = bin::newswatch(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_check_test_and_explain() {
    let (code, out, err) = newswatch(&[
        "check",
        "--rules",
        "rules/actors.toml",
        "rules/ukraine-peace.toml",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 9 rules in 2 files"), "{out}");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\nid = \"a\"\nquery = 'Healey'\nexamples.match = [\"Lammy\"]\n[[rule]]\nid = \"b\"\nquery = '(x'\n").expect("write a file in the temporary directory");
    let (code, _, err) = newswatch(&["check", "--rules", bad.to_str().unwrap_or_default()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("bad.toml:7:10: rule b: unbalanced parentheses"),
        "{err}"
    );
    std::fs::write(
        &bad,
        "[[rule]]\nid = \"a\"\nquery = 'Healey'\nexamples.match = [\"Lammy\"]\n",
    )
    .expect("write a file in the temporary directory");
    let (code, _, err) = newswatch(&["check", "--rules", bad.to_str().unwrap_or_default()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("bad.toml:4:19: rule a: example should match but does not: \"Lammy\""),
        "{err}"
    );
    assert!(err.contains("false Healey"), "{err}");

    let (code, out, err) = newswatch(&[
        "rules",
        "test",
        "--rules",
        "rules/actors.toml",
        "rules/ukraine-peace.toml",
        "--title",
        "Healey meets Hegseth",
        "--text",
        "<p>Talks at the <b>Pentagon</b>.</p>",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["article"], "Healey meets Hegseth");
    assert_eq!(v["matches"][0]["rule"], "healey-hegseth-talks");
    assert_eq!(
        v["matches"][0]["terms"],
        serde_json::json!(["Healey", "Hegseth"])
    );

    let (code, out, err) = newswatch(&[
        "rules",
        "test",
        "--rules",
        "rules/actors.toml",
        "rules/ukraine-peace.toml",
        "--feed",
        "config/demo/feeds/meridian-sports-and-business.rss",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 12);
    assert!(out.lines().all(|l| l.ends_with("\"matches\":[]}")), "{out}");

    let (code, out, err) = newswatch(&[
        "rules",
        "explain",
        "healey-hegseth-talks",
        "--rules",
        "rules/actors.toml",
        "rules/ukraine-peace.toml",
        "--text",
        "Healey opened a school",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("rule healey-hegseth-talks does not match\nfalse AND\n  true  OR"),
        "{out}"
    );
    let (code, _, err) = newswatch(&[
        "rules",
        "explain",
        "healey-hegseth-talk",
        "--rules",
        "rules/actors.toml",
        "rules/ukraine-peace.toml",
        "--text",
        "x",
    ]);
    assert_eq!(code, 4);
    assert!(
        err.contains("did you mean `healey-hegseth-talks`?"),
        "{err}"
    );
}

/// (marker, rule, feed, date, title) of each backtest line; the summary after the blank line.
fn backtest_lines(out: &str) -> Vec<[String; 5]> {
    out.lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let mut parts = l.splitn(5, "  ").map(|p| p.trim().to_string());
            std::array::from_fn(|_| parts.next().unwrap_or_default())
        })
        .collect()
}

fn count(lines: &[[String; 5]], marker: &str, rule: &str) -> usize {
    lines
        .iter()
        .filter(|l| l[0] == marker && l[1] == rule)
        .count()
}

#[test]
fn backtest_marks_new_same_and_gone_against_the_rules_in_force() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = copy_demo(tmp.path());
    let config = config.to_str().unwrap_or_default();
    let (code, out, err) = newswatch(&["run", "--once", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("64 new articles, 88 matches"), "{out}");

    // The configured rules against themselves: every line `same`, counts as the daemon stored them.
    let (code, out, err) = newswatch(&["rules", "backtest", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    let lines = backtest_lines(&out);
    assert_eq!(lines.len(), 88, "{out}");
    assert!(lines.iter().all(|l| l[0] == "same"), "{out}");
    assert!(
        out.contains("64 articles first seen since ")
            && out.contains("(9 rules backtested against 9 in force)"),
        "{out}"
    );
    let minerals = count(&lines, "same", "minerals-deal");
    let talks = count(&lines, "same", "healey-hegseth-talks");
    assert!(minerals >= 2 && talks >= 1, "{out}");
    assert!(
        out.contains(&format!(
            "minerals-deal: would match {minerals}, of which 0 new; 0 no longer matched"
        )),
        "{out}"
    );

    // An edit: one rule widened, one narrowed, one added; the other rules in force are not in the
    // candidate files and so are not reported.
    let edited = tmp.path().join("edited.toml");
    std::fs::write(
        &edited,
        r#"
[[rule]]
id = "healey-hegseth-talks"
query = '@healey OR @hegseth'

[[rule]]
id = "minerals-deal"
query = '(mineral* OR "rare earths") NEAR/6 (deal OR deals OR agreement OR framework OR signing OR draft OR accord) AND @ukraine AND "Kyiv lawmakers"'

[[rule]]
id = "hegseth-only"
query = '@hegseth'
"#,
    )
    .expect("write the edited rule file");
    let actors = tmp.path().join("rules/actors.toml");
    let db = tmp.path().join("state/newswatch.db");
    let before = std::fs::read(&db).expect("the state database exists after a run");
    let (code, out, err) = newswatch(&[
        "rules",
        "backtest",
        "--config",
        config,
        "--rules",
        actors.to_str().unwrap_or_default(),
        edited.to_str().unwrap_or_default(),
        "--since",
        "2d",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read(&db).unwrap_or_default(),
        before,
        "the database is not written"
    );
    let lines = backtest_lines(&out);
    assert!(lines.iter().all(|l| l[1] != "us-backstop"), "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l[3].len() == 10 && !l[2].is_empty() && !l[4].is_empty()),
        "{out}"
    );

    // Widened: everything it matched before, and more.
    let (new, same) = (
        count(&lines, "NEW", "healey-hegseth-talks"),
        count(&lines, "same", "healey-hegseth-talks"),
    );
    assert_eq!(same, talks, "{out}");
    assert!(new > 0, "{out}");
    assert_eq!(count(&lines, "GONE", "healey-hegseth-talks"), 0, "{out}");
    assert!(
        out.contains(&format!(
            "healey-hegseth-talks: would match {}, of which {new} new; 0 no longer matched",
            new + same
        )),
        "{out}"
    );
    // Narrowed: a subset of what it matched before.
    let (same, gone) = (
        count(&lines, "same", "minerals-deal"),
        count(&lines, "GONE", "minerals-deal"),
    );
    assert_eq!(count(&lines, "NEW", "minerals-deal"), 0, "{out}");
    assert!(same >= 1 && gone >= 1, "{out}");
    assert_eq!(same + gone, minerals, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l[0] == "same" && l[1] == "minerals-deal" && l[4].contains("Kyiv lawmakers")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "minerals-deal: would match {same}, of which 0 new; {gone} no longer matched"
        )),
        "{out}"
    );
    // Added: a rule the config does not have matches only NEW.
    let n = count(&lines, "NEW", "hegseth-only");
    assert!(n >= talks, "{out}");
    assert_eq!(
        lines.iter().filter(|l| l[1] == "hegseth-only").count(),
        n,
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "hegseth-only: would match {n}, of which {n} new; 0 no longer matched"
        )),
        "{out}"
    );

    // A duration without a unit is a usage error, as everywhere in newswatch.
    let (code, out, err) = newswatch(&["rules", "backtest", "--config", config, "--since", "7"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("expected a number with a unit"), "{err}");
}

#[test]
fn cli_check_warnings_strict_json_and_highlights() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("w.toml");
    let rules = "[[rule]]\nid = \"w\"\nquery = 'Weimar AND /Weimar\\+/'\n\n[[rule]]\nid = \"u\"\nquery = 'url:bücher.de'\nexamples.match = []\n";
    std::fs::write(&file, rules).expect("write a file in the temporary directory");
    let path = file.to_str().unwrap_or_default();
    let (code, out, err) = newswatch(&["check", "--rules", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("w.toml:1:1: warning: rule w: rule has no examples"),
        "{err}"
    );
    assert!(out.contains("2 warnings"), "{out}");
    let (code, _, err) = newswatch(&["check", "--strict", "--rules", path]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("(failing: --strict)"), "{err}");

    // The word `Weimar` inside the regex's `Weimar+`: the longer span is marked.
    let (code, out, err) = newswatch(&[
        "rules",
        "test",
        "--rules",
        path,
        "--text",
        "the Weimar+ group",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the [[Weimar+]] group"), "{out}");

    // No title: the article is its link; a term found twice is listed once; an IDN link host.
    let article = dir.path().join("a.json");
    std::fs::write(
        &article,
        r#"{"link": "https://www.bücher.de/x", "summary": "Weimar+ and Weimar+", "content": "Weimar+"}"#,
    )
    .expect("write a file in the temporary directory");
    let (code, out, err) = newswatch(&[
        "rules",
        "test",
        "--rules",
        path,
        "--article",
        article.to_str().unwrap_or_default(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["article"], "https://www.bücher.de/x");
    assert_eq!(v["link"], "https://www.bücher.de/x");
    assert_eq!(v["matches"][0]["rule"], "w");
    assert_eq!(
        v["matches"][0]["terms"],
        serde_json::json!(["Weimar", "Weimar+"])
    );
    assert_eq!(v["matches"][1]["rule"], "u");
    assert_eq!(
        v["matches"][1]["terms"],
        serde_json::json!(["www.bücher.de"])
    );
}
