//! Hostile input, round two (issue 16): inputs an operator or analyst can write that used to take
//! the process down or stall it — nesting deep enough to overflow the stack, rule files too large
//! to read, regexes too costly to run. Each case runs where a regression shows as a failure: the
//! binary spawned (a stack overflow is an abort, not a panic), or a thread with the default 2 MiB
//! test stack.

use std::path::{Path, PathBuf};
use std::process::Output;

use newswatch::model::{Article, FeedMeta};
use newswatch::rules::RuleSet;

use crate::support::bin::newswatch;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

fn check_rules(path: &Path) -> (Option<i32>, String) {
    let out: Output = newswatch(&["check", "--rules", path.to_str().expect("utf-8 temp path")]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `f` on a thread with the default test stack (2 MiB), so a recursion the input drives
/// past its bound fails this test (abort) instead of passing on a big main-thread stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

fn rule(id: &str, query: &str) -> String {
    format!("[[rule]]\nid = \"{id}\"\nquery = '''{query}'''\n")
}

/// Issue 16 item 1: each of these overflowed the stack in `check` (and `run`, `rules test`,
/// reload, which load rules the same way); now each is refused with its place, its rule and the
/// limit, exit 4.
#[test]
fn deep_nesting_is_refused_with_its_place_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain: String = (0..20_000)
        .map(|i| format!("l{i} = ['@l{}']\n", i + 1))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        // The reported inputs: now refused by the query size limit before parsing.
        (
            "parens-10k",
            rule(
                "deep",
                &format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000)),
            ),
            ":3:12: rule deep: the query is 20 KiB long; a query may be at most 16 KiB",
        ),
        (
            "nots-20k",
            rule("deep", &format!("x AND {}a", "NOT ".repeat(20_000))),
            ":3:12: rule deep: the query is 79 KiB long; a query may be at most 16 KiB",
        ),
        // Within the size limit, the depth limit refuses them.
        (
            "parens",
            rule(
                "deep",
                &format!("{}a{}", "(".repeat(8_000), ")".repeat(8_000)),
            ),
            ":3:76: rule deep: the query nests more than 64 levels deep",
        ),
        (
            "nots",
            rule("deep", &format!("x AND {}a", "NOT ".repeat(4_000))),
            ":3:274: rule deep: the query nests more than 64 levels deep",
        ),
        (
            "fields",
            rule("deep", &"title:".repeat(2_700)),
            ":3:396: rule deep: the query nests more than 64 levels deep",
        ),
        (
            "list-chain",
            format!("{}[lists]\n{chain}l20000 = ['a']\n", rule("deep", "@l0")),
            "nests more than 32 deep",
        ),
        (
            "toml-arrays",
            format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            "recursion",
        ),
        (
            "toml-tables",
            format!("x = {}1{}\n", "{a=".repeat(100_000), "}".repeat(100_000)),
            "recursion",
        ),
    ];
    for (name, text, want) in cases {
        let path = write(dir.path(), &format!("{name}.toml"), &text);
        let (code, stderr) = check_rules(&path);
        assert_eq!(
            code,
            Some(4),
            "{name}: {}",
            &stderr[..stderr.len().min(2000)]
        );
        assert!(
            stderr.contains(want),
            "{name}: want {want:?} in {}",
            &stderr[..stderr.len().min(2000)]
        );
    }
}

/// Loads `text` as a rule file on a 2 MiB stack; if it loads, matches and explains rule 0 on an
/// article titled "y healey": (load result, (matches, length of the explain tree)).
fn load_match_explain(text: String) -> (Result<(), String>, Option<(usize, usize)>) {
    on_small_stack(move || {
        let set = RuleSet::from_sources(&[(PathBuf::from("deep.toml"), text)]);
        let explained = set.as_ref().ok().map(|set| {
            let article = Article {
                title: "y healey".into(),
                ..Article::default()
            };
            let feed = FeedMeta::default();
            let hits = set.match_article_unfiltered(&article, &feed);
            (
                hits.len(),
                set.explain(0, &article, &feed).to_string().len(),
            )
        });
        (set.map(|_| ()).map_err(|e| e.to_string()), explained)
    })
}

/// A rule 60 levels deep whose innermost term is `@l0`, and lists `l0..l{lists}` each as deep,
/// each naming the next, the last holding `healey`.
fn nested_lists(lists: usize) -> String {
    let deep = |inner: &str| format!("{}{inner}{}", "(x OR ".repeat(60), ")".repeat(60));
    let mut text = rule("deep", &format!("y AND {}", deep("@l0")));
    text.push_str("[lists]\n");
    for i in 0..lists {
        text.push_str(&format!(
            "l{i} = ['''{}''']\n",
            deep(&format!("@l{}", i + 1))
        ));
    }
    text.push_str(&format!("l{lists} = ['healey']\n"));
    text
}

/// The deepest trees the parser allows, stacked through lists: refused by the compiler past its
/// bound, cleanly; within it they load, match and explain on a 2 MiB stack (the walks over the
/// compiled tree stay within the bound `compile` enforces).
#[test]
fn the_deepest_allowed_rules_match_and_explain_on_a_small_stack() {
    let (set, explained) = load_match_explain(nested_lists(31));
    let err = set.expect_err("deeper than MAX_TREE_DEPTH once expanded");
    assert!(
        err.contains("more than 256 levels deep once its lists are expanded"),
        "{err}"
    );
    assert!(explained.is_none());

    let (set, explained) = load_match_explain(nested_lists(3));
    assert_eq!(set, Ok(()));
    let (matched, explain_len) = explained.expect("loaded");
    assert_eq!(matched, 1);
    assert!(explain_len > 0);
}

/// Issue 16 item 12: a `file://` feed that is not a regular file used to be read to its end
/// (`/dev/zero`: 4.2 GB RSS; a FIFO: a poll that never ends). Now refused before it is opened,
/// while a regular file is still read, within the body cap.
#[tokio::test]
async fn file_feeds_that_are_not_regular_files_are_refused() {
    use newswatch::config::FetchSettings;
    use newswatch::fetch::{FetchError, Fetcher};
    use newswatch::model::Validators;
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("feed.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).expect("write");
    let settings = FetchSettings {
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
        max_body_bytes: 1 << 20,
        concurrency: 1,
        default_interval: Duration::from_secs(900),
        proxy: None,
        full_text_concurrency: 1,
    };
    let fetcher = Fetcher::new(&settings, "newswatch-test/1.0").expect("fetcher");
    // The FIFO first: on code that opens it, the fetch blocks and the guard fails the test
    // before `/dev/zero` could eat the machine's memory.
    for (path, want) in [
        (fifo.as_path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (dir.path(), "not a regular file"),
        (big.as_path(), "larger than the 1048576-byte limit"),
    ] {
        let url = url::Url::from_file_path(path).expect("absolute path");
        let fetched = tokio::time::timeout(
            Duration::from_secs(20),
            fetcher.fetch(&url, &Validators::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: the fetch does not end", path.display()));
        let err = fetched
            .err()
            .unwrap_or_else(|| panic!("{}: refused", path.display()));
        assert!(err.to_string().contains(want), "{}: {err}", path.display());
        assert!(
            matches!(err, FetchError::File { .. } | FetchError::TooLarge(_)),
            "{err:?}"
        );
    }
}

/// Issue 16 item 12: a rule file is read with a bound (16 MiB) before the TOML parser sees it;
/// a 60 MB rule string used to cost 1.3 GB. Run under a 1 GiB address-space limit, so a reader
/// that takes it whole fails here; a device is refused without reading it.
#[test]
fn rule_files_are_read_with_a_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    let text = rule("big", &format!("\"{}\"", "word ".repeat(12_000_000)));
    std::fs::write(&big, text).expect("write");
    for (path, want) in [
        (big.as_path(), "big.toml: rule file is larger than 16 MiB"),
        (
            Path::new("/dev/zero"),
            "/dev/zero: cannot read rule file: not a regular file",
        ),
    ] {
        let (code, stderr) = check_rules_in_1_gib(path);
        assert_eq!(code, Some(4), "{}: {stderr}", path.display());
        assert!(stderr.contains(want), "{}: {stderr}", path.display());
    }
}

/// Runs `check --rules FILE` under a 1 GiB address-space limit: (exit code, stderr).
fn check_rules_in_1_gib(path: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" check --rules \"$1\"")
        .arg(crate::support::bin::BIN)
        .arg(path)
        .output()
        .expect("sh runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 16 item 10: loading was quadratic wherever many positions fell on one long line: every
/// rule, example and warning copied its whole source line and counted its column from the line's
/// start (10,000 rules on one line: gigabytes). A diagnostic now shows a window of a long line and
/// finds its column from checkpoints, so 10,000 failing examples on one line cost a few MB.
#[test]
fn a_rule_file_on_one_line_loads_in_linear_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let items: Vec<String> = (0..10_000)
        .map(|i| format!("{{id = \"r{i}\", query = 'w{i}', examples = {{no_match = ['w{i}']}}}}"))
        .collect();
    let path = write(
        dir.path(),
        "one-line.toml",
        &format!("rule = [{}]\n", items.join(", ")),
    );
    let (code, stderr) = check_rules_in_1_gib(&path);
    assert_eq!(code, Some(4), "{}", &stderr[..stderr.len().min(2000)]);
    // Every example is checked and counted; the report shows the first 20 (`MAX_SHOWN`).
    assert_eq!(
        stderr.matches("example should not match but does").count(),
        20,
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(
        stderr.contains("and 9980 more errors not shown"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(
        stderr.len() < 10 << 20,
        "{} bytes of diagnostics",
        stderr.len()
    );
    // The caret still points at the example, inside the window.
    assert!(stderr.contains("one-line.toml:1:"), "{}", &stderr[..2000]);
    assert!(
        stderr.contains("no_match = ['w19']"),
        "the window holds the example"
    );
}

/// Issue 16 item 10: what a query may hold is bounded, each with the limit in its message.
#[test]
fn oversized_queries_and_phrases_are_refused_with_the_limit() {
    let words = |n: usize| {
        (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cases = [
        (words(3_000), "a query may be at most 16 KiB"),
        (
            format!("\"{}\"", words(65)),
            "a phrase of 65 words: at most 64",
        ),
        (format!("\"{}\"~5", words(17)), "with 17 words: at most 16"),
    ];
    for (query, want) in cases {
        let text = rule("big", &query);
        let err = RuleSet::from_sources(&[(PathBuf::from("big.toml"), text)])
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "{want}: {err}");
        assert!(
            err.contains("big.toml:3:") && err.contains("rule big"),
            "{err}"
        );
    }
    let ok = rule(
        "fine",
        &format!("\"{}\" AND \"{}\"~5", words(64), words(16)),
    );
    assert!(RuleSet::from_sources(&[(PathBuf::from("ok.toml"), ok)]).is_ok());
}

/// Issue 16 item 9: `/(a{1,100}){1,100}b/` passed `check`, and three 200 KB articles then took
/// 73 s to match. A regex's cost (its pattern with counted repetitions written out) is budgeted at
/// load, alone and for the rule set together, and refused with the figure and a hint.
#[test]
fn costly_regexes_are_refused_at_load() {
    let refused = [
        (
            "/(a{1,100}){1,100}b/",
            "compiles to 20205 automaton states, at most 2500",
        ),
        (
            "/(?s).{0,999}b/",
            "compiles to 9003 automaton states, at most 2500",
        ),
        (
            "/a{5000}/",
            "compiles to 5005 automaton states, at most 2500",
        ),
    ];
    for (regex, want) in refused {
        let text = rule("costly", &format!("Healey AND {regex}"));
        let err = RuleSet::from_sources(&[(PathBuf::from("re.toml"), text)])
            .expect_err(regex)
            .to_string();
        assert!(err.contains(want), "{regex}: {err}");
        assert!(
            err.contains("re.toml:3:23: rule costly: regex too costly"),
            "{err}"
        );
        assert!(err.contains("hint: counted repetitions multiply"), "{err}");
    }
    // Ordinary regexes pass, and so does one at the budget.
    for regex in [
        r"/minerals?\s+(deal|agreement)/i",
        r"/\b[0-9]{2}-day\b/",
        "/a{1,1200}/",
    ] {
        let text = rule("fine", &format!("Healey AND {regex}"));
        assert!(
            RuleSet::from_sources(&[(PathBuf::from("re.toml"), text)]).is_ok(),
            "{regex}"
        );
    }
    // Together: eight regexes near the budget fill the set's; the ninth is refused.
    let many: String = (0..9)
        .map(|i| rule(&format!("r{i}"), &format!("Healey AND /a{{1,1200}}b{i}/")))
        .collect();
    let err = RuleSet::from_sources(&[(PathBuf::from("re.toml"), many)])
        .expect_err("over the set's budget")
        .to_string();
    assert_eq!(err.matches("regex too costly").count(), 1, "{err}");
    assert!(
        err.contains("rule r8: regex too costly: the rule set's regexes together would compile to 21654 automaton states, at most 20000"),
        "{err}"
    );
}

/// Issue 16 item 9: every field is matched on its first 256 KiB (`MATCH_FIELD_CAP`), so the
/// costliest regex the budget allows, over a 10 MB body crafted for it, runs over 256 KiB; a
/// term past the cap is not seen, one before it is, and `text_capped` tells the match stage.
#[test]
fn article_text_is_capped_before_matching() {
    use newswatch::rules::{MATCH_FIELD_CAP, text_capped};
    let text = format!(
        "{}{}",
        rule("costly", r"/(a{1,10}){1,99}b/"),
        rule("late", "Healey AND Hegseth")
    )
    .replace(
        "[[rule]]\nid = \"costly\"",
        "[[rule]]\nid = \"costly\"\nallow_broad = true",
    );
    let set = RuleSet::from_sources(&[(PathBuf::from("cap.toml"), text)]).expect("loads");
    let feed = FeedMeta::default();
    let mut body = String::from("Healey ");
    body.push_str(&"a".repeat(10 << 20));
    body.push_str("b Hegseth");
    let article = Article {
        content: body,
        ..Article::default()
    };
    let (matched, capped) = on_small_stack(move || {
        let matched: Vec<usize> = set
            .match_article_unfiltered(&article, &feed)
            .iter()
            .map(|m| m.rule)
            .collect();
        (matched, text_capped(&article))
    });
    // Neither the `b` nor `Hegseth` lies within the first 256 KiB.
    assert_eq!(matched, Vec::<usize>::new());
    assert!(capped);
    let short = Article {
        content: "Healey met Hegseth".into(),
        ..Article::default()
    };
    assert!(!text_capped(&short));
    let at_cap = Article {
        content: "a".repeat(MATCH_FIELD_CAP),
        ..Article::default()
    };
    assert!(!text_capped(&at_cap));
}

/// Issue 16 item 9, at run time: the match stage gives each article a regex time budget; a rule
/// whose verdict needed a regex after the budget ran out is reported as skipped, with no verdict
/// (not even under NOT, where "no match" would have made it true), while literal rules are never
/// cut short. A zero budget makes the cut deterministic.
#[test]
fn a_spent_regex_budget_skips_the_rule_for_that_article() {
    let text = format!(
        "{}{}{}",
        rule("costly", r"/(a{1,10}){1,99}b/"),
        rule("negated", r"Healey AND NOT /Hegseth\s+resigns/"),
        rule("plain", "Healey AND Hegseth")
    )
    .replace(
        "[[rule]]\nid = \"costly\"",
        "[[rule]]\nid = \"costly\"\nallow_broad = true",
    );
    let set = RuleSet::from_sources(&[(PathBuf::from("budget.toml"), text)]).expect("loads");
    let ids = |rules: &[usize]| -> Vec<String> {
        rules.iter().map(|&r| set.rules()[r].id.clone()).collect()
    };
    let article = Article {
        content: "Healey met Hegseth; aaab".into(),
        ..Article::default()
    };
    let feed = FeedMeta::default();
    let now = newswatch::clock::now();
    let v = set.match_article_within(&article, &feed, now, std::time::Duration::ZERO);
    let (matched, skipped) = (v.matches, v.skipped);
    let matched: Vec<usize> = matched.iter().map(|m| m.rule).collect();
    assert_eq!(ids(&matched), ["plain"]);
    assert_eq!(ids(&skipped), ["costly", "negated"]);
    let v = set.match_article_within(&article, &feed, now, std::time::Duration::from_secs(60));
    let (matched, skipped) = (v.matches, v.skipped);
    let matched: Vec<usize> = matched.iter().map(|m| m.rule).collect();
    assert_eq!(ids(&matched), ["costly", "negated", "plain"]);
    assert!(skipped.is_empty());
}
