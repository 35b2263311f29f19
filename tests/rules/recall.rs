//! Issue 14's targets for the shipped rules on the labelled set `rules/eval/`, measured by the
//! built binary's `rules eval --json`: micro F1 and precision, and F1 in every language, on the
//! tuning set and on the held-out fifth separately. Each failure prints the figures.

use serde_json::Value;

use crate::support::bin;

const RULES: [&str; 2] = ["rules/actors.toml", "rules/ukraine-peace.toml"];

/// What one labels file must reach.
struct Targets {
    micro_f1: f64,
    micro_precision: f64,
    language_f1: f64,
}

/// Issue 14: micro F1 ≥ 0.95, every language ≥ 0.90, precision ≥ 0.95.
const ISSUE_14: Targets = Targets {
    micro_f1: 0.95,
    micro_precision: 0.95,
    language_f1: 0.90,
};

/// `rules eval --json` over the shipped rules and one labels file.
fn eval(labels: &str) -> Value {
    let mut args = vec!["rules", "eval", "--json", "--show", "none", "--rules"];
    args.extend_from_slice(&RULES);
    args.extend_from_slice(&["--labels", labels]);
    let out = bin::newswatch(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A figure of the report; an undefined one (`null`) counts as 0, below every target.
fn figure(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// Every figure of `report` below `t`, one line each, and the figures themselves.
fn shortfalls(report: &Value, t: &Targets) -> (Vec<String>, String) {
    let micro = &report["micro"];
    let mut figures = format!(
        "micro P {:.3} R {:.3} F1 {:.3}",
        figure(micro, "precision"),
        figure(micro, "recall"),
        figure(micro, "f1")
    );
    let mut short = Vec::new();
    if figure(micro, "f1") < t.micro_f1 {
        short.push(format!(
            "micro F1 {:.3} < {}",
            figure(micro, "f1"),
            t.micro_f1
        ));
    }
    if figure(micro, "precision") < t.micro_precision {
        short.push(format!(
            "micro precision {:.3} < {}",
            figure(micro, "precision"),
            t.micro_precision
        ));
    }
    let languages = report["languages"].as_array().cloned().unwrap_or_default();
    assert!(languages.len() >= 6, "six languages or more: {report}");
    for l in &languages {
        let lang = l["lang"].as_str().unwrap_or("?");
        let f1 = figure(l, "f1");
        figures.push_str(&format!("; {lang} {f1:.3}"));
        if f1 < t.language_f1 {
            short.push(format!("{lang} F1 {f1:.3} < {}", t.language_f1));
        }
    }
    (short, figures)
}

#[test]
fn shipped_rules_reach_the_targets_on_the_tuning_set() {
    let report = eval("rules/eval/tune.jsonl");
    assert!(
        report["unmeasured"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    let (short, figures) = shortfalls(&report, &ISSUE_14);
    assert!(short.is_empty(), "{}\n{figures}", short.join("\n"));
}

#[test]
fn shipped_rules_on_the_held_out_fifth() {
    let report = eval("rules/eval/holdout.jsonl");
    let (short, figures) = shortfalls(&report, &ISSUE_14);
    // Tuning never looks at this file. It is the first batch's held-out fifth plus a fourth batch
    // written for it alone, from the topic page, by an author who had not read the rules
    // (rules/eval/README.md, point 9).
    assert!(short.is_empty(), "{}\n{figures}", short.join("\n"));
}
