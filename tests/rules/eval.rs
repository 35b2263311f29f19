//! `rules eval` on the built binary with a small fixture (tests/fixtures/eval/) whose figures are
//! worked out by hand below: the counts, P/R/F1 per rule and language, micro and macro, the
//! listings (a snapshot), `--min-f1`, `--lang`, and the errors of a bad labels file.

use serde_json::Value;

use crate::support::bin;

const RULES: &str = "tests/fixtures/eval/rules.toml";
const TUNE: &str = "tests/fixtures/eval/tune.jsonl";
const HELDOUT: &str = "tests/fixtures/eval/heldout.jsonl";

/// (exit code, stdout, stderr).
fn newswatch(args: &[&str]) -> (i32, String, String) {
    let out = bin::newswatch(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn eval(extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["rules", "eval", "--rules", RULES, "--labels", TUNE, HELDOUT];
    args.extend_from_slice(extra);
    newswatch(&args)
}

/// A figure as the JSON has it, to three decimals; `None` for `null` (undefined).
fn fig(v: &Value) -> Option<String> {
    v.as_f64().map(|x| format!("{x:.3}"))
}

/// `[tp, fp, fn, tn]`, then P, R, F1 as `0.667` or `-`.
fn row(v: &Value) -> String {
    let n = |k: &str| v[k].as_u64().map_or("?".to_string(), |x| x.to_string());
    let f = |k: &str| fig(&v[k]).unwrap_or_else(|| "-".to_string());
    format!(
        "{} {} {} {}  {} {} {}",
        n("tp"),
        n("fp"),
        n("fn"),
        n("tn"),
        f("precision"),
        f("recall"),
        f("f1")
    )
}

/// The fixture by hand (12 items, 4 rules, 48 verdicts):
/// - talks (`@healey NEAR/10 @hegseth`): t1, t3 found; t2 ("the Pentagon chief") missed; t4
///   (Denis Healey ... Hegseth) a false positive. P 2/3, R 2/3, F1 4/6.
/// - truce (English words only): u2 found; u1 (German) and u4 (Ukrainian) missed; w3 ("a truce in
///   Ukraine" in a Weimar item) a false positive. P 1/2, R 1/3, F1 2/5.
/// - weimar: w1 and w3 found, w2 (the Triangle) rightly not. P, R, F1 1.
/// - minerals: no label, no match: unmeasured.
///
/// Micro: TP 5, FP 2, FN 3, TN 38: P 5/7, R 5/8, F1 10/15. Macro over the 3 measured rules:
/// P (2/3 + 1/2 + 1)/3, R (2/3 + 1/3 + 1)/3, F1 (2/3 + 2/5 + 1)/3.
#[test]
fn fixture_counts_and_figures() {
    let (code, out, err) = eval(&["--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["items"], 12);
    assert_eq!(
        v["files"],
        serde_json::json!([{"path": TUNE, "items": 8}, {"path": HELDOUT, "items": 4}])
    );
    let rules: Vec<String> = v["rules"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| format!("{} {}", r["id"].as_str().unwrap_or("?"), row(r)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        rules,
        [
            "talks 2 1 1 8  0.667 0.667 0.667",
            "truce 1 1 2 8  0.500 0.333 0.400",
            "weimar 2 0 0 10  1.000 1.000 1.000",
            "minerals 0 0 0 12  - - -",
        ]
    );
    assert_eq!(v["unmeasured"], serde_json::json!(["minerals"]));
    let langs: Vec<String> = v["languages"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    format!(
                        "{} ({}) {}",
                        l["lang"].as_str().unwrap_or("?"),
                        l["items"],
                        row(l)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        langs,
        [
            "de (2) 0 0 1 7  - 0.000 0.000",
            "en (5) 2 1 1 16  0.667 0.667 0.667",
            "fr (1) 1 0 0 3  1.000 1.000 1.000",
            "pl (1) 1 0 0 3  1.000 1.000 1.000",
            "uk (1) 0 0 1 3  - 0.000 0.000",
            "und (2) 1 1 0 6  0.500 1.000 0.667",
        ]
    );
    assert_eq!(row(&v["micro"]), "5 2 3 38  0.714 0.625 0.667");
    let m = &v["macro"];
    assert_eq!(
        (
            fig(&m["precision"]),
            fig(&m["recall"]),
            fig(&m["f1"]),
            &m["rules"]
        ),
        (
            Some("0.722".to_string()),
            Some("0.667".to_string()),
            Some("0.689".to_string()),
            &Value::from(3)
        )
    );
    let listed = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|xs| {
                xs.iter()
                    .map(|x| format!("{} {} {}:{}", x["rule"], x["id"], x["file"], x["line"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        listed("false_negatives"),
        [
            format!("\"talks\" \"t2\" \"{TUNE}\":2"),
            format!("\"truce\" \"u1\" \"{TUNE}\":5"),
            format!("\"truce\" \"u4\" \"{HELDOUT}\":4"),
        ]
    );
    assert_eq!(
        listed("false_positives"),
        [
            format!("\"talks\" \"t4\" \"{TUNE}\":4"),
            format!("\"truce\" \"w3\" \"{HELDOUT}\":2")
        ]
    );
    assert_eq!(
        v["false_positives"][1]["terms"],
        serde_json::json!([{"field": "summary", "text": "truce"}, {"field": "summary", "text": "Ukraine"}])
    );
    assert_eq!(v["false_negatives"][0]["why"]["node"], "NEAR/10");
    assert_eq!(
        v["false_negatives"][0]["why"]["children"][1]["node"],
        "@hegseth: none of its 2 terms occurs"
    );

    // --show narrows the listings; the figures stay.
    let (code, out, err) = eval(&["--json", "--show", "fp"]);
    assert_eq!(code, 0, "{err}");
    let fp_only: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(fp_only.get("false_negatives").is_none(), "{out}");
    assert_eq!(fp_only["false_positives"], v["false_positives"]);
    assert_eq!(fp_only["micro"], v["micro"]);
}

/// The human output: tables, totals and both listings, as an analyst reads them.
#[test]
fn fixture_text_output() {
    let (code, out, err) = eval(&[]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("eval_fixture", out);
    let (code, tables, err) = eval(&["--show", "none"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        tables,
        out[..out.find("\nfalse negatives").unwrap_or(out.len())].to_string()
    );
}

#[test]
fn min_f1_is_an_exit_code() {
    // Micro F1 is 10/15 = 0.667.
    let (code, _, err) = eval(&["--show", "none", "--min-f1", "0.66"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = eval(&["--show", "none", "--min-f1", "0.67"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        out.contains("micro  P 0.714"),
        "the report is printed all the same: {out}"
    );
    assert!(
        err.contains("error: micro F1 0.6667 is below --min-f1 0.67"),
        "{err}"
    );
    let (code, _, err) = eval(&["--min-f1", "1.5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected a number from 0 to 1"), "{err}");
}

#[test]
fn lang_selects_the_items_of_one_language() {
    let (code, out, err) = eval(&["--lang", "DE", "--show", "fn"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!(
            "2 items ({TUNE} 1, {HELDOUT} 1), lang de only, 4 rules\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("micro  P –  R 0.000  F1 0.000  (TP 0, FP 0, FN 1)"),
        "{out}"
    );
    assert!(
        out.contains(
            "unmeasured (no item labelled for it, and it matched none): talks, weimar, minerals"
        ),
        "{out}"
    );
    let (code, _, err) = eval(&["--lang", "it"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no item has lang `it` (the labels have: de, en, fr, pl, uk, und)"),
        "{err}"
    );
}

#[test]
fn labels_file_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = dir.path().join("bad.jsonl");
    let bad_s = bad.to_str().unwrap_or_default();
    std::fs::write(
        &bad,
        concat!(
            "{\"id\":\"a\",\"title\":\"Healey\",\"labels\":[\"talks\"]}\n",
            "{\"id\":\"b\",\"title\":\"Hegseth\",\"labels\":[\"talk\"]}\n",
            "{\"id\":\"c\",\"title\":\"x\",\"labels\":[]\n",
            "{\"id\":\"a\",\"title\":\"again\",\"labels\":[],\"lables\":[\"truce\"]}\n",
        ),
    )
    .expect("write the labels file");
    let (code, out, err) = newswatch(&["rules", "eval", "--rules", RULES, "--labels", bad_s]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    for want in [
        format!("error: {bad_s}:2:39: no rule `talk` in the rule files\n"),
        "  = hint: did you mean `talks`?".to_string(),
        format!("error: {bad_s}:3:33: malformed JSON: EOF while parsing an object\n"),
        format!("error: {bad_s}:4:2: duplicate id `a` (first at {bad_s}:1)"),
        format!("warning: {bad_s}:4:39: unknown field `lables` is ignored"),
        "3 problems in the labels files".to_string(),
    ] {
        assert!(err.contains(&want), "{want:?} in:\n{err}");
    }

    // An unreadable file, and ids repeated across files.
    let (code, _, err) = newswatch(&[
        "rules",
        "eval",
        "--rules",
        RULES,
        "--labels",
        TUNE,
        TUNE,
        "missing.jsonl",
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("missing.jsonl: cannot read"), "{err}");
    assert!(
        err.contains(&format!(
            "{TUNE}:1:2: duplicate id `t1` (first at {TUNE}:1)"
        )),
        "{err}"
    );
    // Bad rules are reported as by `check`.
    let (code, _, err) = newswatch(&["rules", "eval", "--rules", bad_s, "--labels", TUNE]);
    assert_eq!(code, 4, "{err}");
}
