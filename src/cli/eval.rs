//! `newswatch rules eval`: rules against labelled articles (`eval/labels`), printed as tables of
//! precision, recall and F1 per rule and per language, micro and macro totals, then the false
//! negatives and false positives (text or one JSON document). `--min-f1` turns the micro F1 into
//! an exit code for CI. The figures come from `rules::eval`; this module reads and prints only.

pub use crate::labels;

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Exit, load_rules};
use crate::rules::eval::{self, Counts, Report};
use crate::rules::{Diagnostics, ExplainNode, Hit, RuleSet};
use labels::Labels;

/// Which listings follow the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Show {
    /// False negatives: labelled, not matched, with the failing branch of the query.
    Fn,
    /// False positives: matched, not labelled, with the terms that fired.
    Fp,
    /// Both.
    All,
    /// The tables only.
    None,
}

/// What `rules eval` was asked.
#[derive(Debug)]
pub struct Options {
    pub rules: Vec<PathBuf>,
    pub labels: Vec<PathBuf>,
    pub json: bool,
    pub min_f1: Option<f64>,
    pub show: Show,
    pub lang: Option<String>,
}

pub(super) fn eval(opts: &Options) -> Exit {
    let set = match load_rules(&opts.rules) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut labels = labels::read(&opts.labels, &set);
    for w in &labels.warnings {
        eprintln!("warning: {w}");
    }
    if !labels.errors.is_empty() {
        let n = labels.errors.len();
        eprintln!("{}", Diagnostics(std::mem::take(&mut labels.errors)));
        eprintln!("{} in the labels files", super::count(n, "problem"));
        return Exit::Rules;
    }
    if let Some(lang) = &opts.lang
        && let Err(message) = keep_lang(&mut labels, lang)
    {
        eprintln!("error: {message}");
        return Exit::Usage;
    }
    let report = eval::evaluate(&set, &labels.items);
    let show_fn = matches!(opts.show, Show::Fn | Show::All);
    let show_fp = matches!(opts.show, Show::Fp | Show::All);
    if opts.json {
        let doc = to_json(&set, &labels, &report, opts, (show_fn, show_fp));
        outln!("{doc:#}");
    } else {
        out!(
            "{}",
            to_text(&set, &labels, &report, opts, (show_fn, show_fp))
        );
    }
    match (opts.min_f1, report.micro.f1()) {
        (Some(bar), Some(f1)) if f1 < bar => {
            // Four decimals: 0.9499 must not read as 0.950 "below" 0.95.
            eprintln!("error: micro F1 {f1:.4} is below --min-f1 {bar}");
            Exit::BelowBar
        }
        (Some(bar), None) => {
            eprintln!(
                "error: micro F1 is undefined (no item is labelled and no rule matched), so it does not reach --min-f1 {bar}"
            );
            Exit::BelowBar
        }
        _ => Exit::Ok,
    }
}

/// Keeps the items whose `lang_key` is that of `lang`; an error when there are none.
fn keep_lang(labels: &mut Labels, lang: &str) -> Result<(), String> {
    let want = eval::lang_key(Some(lang));
    let keys: Vec<String> = labels
        .items
        .iter()
        .map(|i| eval::lang_key(i.article.lang.as_deref()))
        .collect();
    if !keys.contains(&want) {
        let mut present = keys;
        present.sort();
        present.dedup();
        return Err(format!(
            "no item has lang `{want}` (the labels have: {})",
            present.join(", ")
        ));
    }
    let mut k = keys.iter();
    labels.items.retain(|_| k.next() == Some(&want));
    let mut k = keys.iter();
    labels.origins.retain(|_| k.next() == Some(&want));
    Ok(())
}

/// A figure with three decimals; `–` when undefined (nothing to divide by).
fn fig(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |x| format!("{x:.3}"))
}

fn header(labels: &Labels, report: &Report, lang: Option<&str>) -> String {
    let per_file: Vec<String> = labels
        .files
        .iter()
        .enumerate()
        .map(|(f, p)| {
            let n = labels.origins.iter().filter(|o| o.file == f).count();
            format!("{} {n}", p.display())
        })
        .collect();
    let only = lang
        .map(|l| format!(", lang {} only", eval::lang_key(Some(l))))
        .unwrap_or_default();
    format!(
        "{} items ({}){only}, {} rules\n",
        labels.items.len(),
        per_file.join(", "),
        report.per_rule.len()
    )
}

fn to_text(
    set: &RuleSet,
    labels: &Labels,
    report: &Report,
    opts: &Options,
    (show_fn, show_fp): (bool, bool),
) -> String {
    use std::fmt::Write;
    let mut out = header(labels, report, opts.lang.as_deref());
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    let w = ids
        .iter()
        .map(|i| i.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let row = |name: &str, c: &Counts| {
        format!(
            "{name:<w$}  {:>5}  {:>5}  {:>5}  {:>4}  {:>4}  {:>4}\n",
            fig(c.precision()),
            fig(c.recall()),
            fig(c.f1()),
            c.tp,
            c.fp,
            c.fn_
        )
    };
    let _ = write!(
        out,
        "\n{:<w$}  {:>5}  {:>5}  {:>5}  {:>4}  {:>4}  {:>4}\n",
        "rule", "P", "R", "F1", "TP", "FP", "FN"
    );
    for (r, c) in report.per_rule.iter().enumerate() {
        if c.measured() {
            out.push_str(&row(ids[r], c));
        }
    }
    let unmeasured: Vec<&str> = report.unmeasured().map(|r| ids[r]).collect();
    if !unmeasured.is_empty() {
        let _ = writeln!(
            out,
            "unmeasured (no item labelled for it, and it matched none): {}",
            unmeasured.join(", ")
        );
    }
    let _ = write!(
        out,
        "\n{:<w$}  {:>5}  {:>5}  {:>5}  {:>4}  {:>4}  {:>4}  items\n",
        "lang", "P", "R", "F1", "TP", "FP", "FN"
    );
    for l in &report.per_lang {
        let line = row(&l.lang, &l.counts);
        let _ = writeln!(out, "{}  {:>5}", line.trim_end(), l.items);
    }
    let m = &report.micro;
    let _ = write!(
        out,
        "\nmicro  P {}  R {}  F1 {}  (TP {}, FP {}, FN {})\n",
        fig(m.precision()),
        fig(m.recall()),
        fig(m.f1()),
        m.tp,
        m.fp,
        m.fn_
    );
    let a = &report.macro_avg;
    let _ = writeln!(
        out,
        "macro  P {}  R {}  F1 {}  (mean over {} measured rules)",
        fig(a.precision),
        fig(a.recall),
        fig(a.f1),
        a.rules
    );
    if show_fn {
        let _ = write!(
            out,
            "\nfalse negatives: {} (labelled, not matched)\n",
            report.false_negatives.len()
        );
        for f in &report.false_negatives {
            out.push_str(&item_line(ids[f.rule], labels, f.item));
            write_why(&mut out, &f.why, 2);
        }
    }
    if show_fp {
        let _ = write!(
            out,
            "\nfalse positives: {} (matched, not labelled)\n",
            report.false_positives.len()
        );
        for f in &report.false_positives {
            out.push_str(&item_line(ids[f.rule], labels, f.item));
            let _ = writeln!(out, "    fired: {}", terms(&f.hits));
        }
    }
    out
}

/// Titles longer than this are cut in listings.
const TITLE_CHARS: usize = 90;

fn item_line(rule: &str, labels: &Labels, item: usize) -> String {
    let (o, a) = (&labels.origins[item], &labels.items[item].article);
    let mut title: String = a.title.chars().take(TITLE_CHARS).collect();
    if a.title.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    format!(
        "  {rule}  {}  [{}]  {title}  ({}:{})\n",
        o.id,
        eval::lang_key(a.lang.as_deref()),
        labels.files[o.file].display(),
        o.line
    )
}

/// `title "Weimar", summary "Ukraine"`: each field and term once, in text order.
fn terms(hits: &[Hit]) -> String {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for h in hits {
        let t = (h.field.as_str(), h.text.as_str());
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen.iter()
        .map(|(f, t)| format!("{f} {t:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_why(out: &mut String, n: &ExplainNode, depth: usize) {
    let mark = if n.value { "true " } else { "false" };
    out.push_str(&format!("{:w$}{mark} {}", "", n.label, w = depth * 2));
    if !n.hits.is_empty() {
        out.push_str(&format!("  ({})", terms(&n.hits)));
    }
    out.push('\n');
    for c in &n.children {
        write_why(out, c, depth + 1);
    }
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "tp": c.tp, "fp": c.fp, "fn": c.fn_, "tn": c.tn,
        "precision": c.precision(), "recall": c.recall(), "f1": c.f1(),
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
    v
}

fn hits_json(hits: &[Hit]) -> Value {
    hits.iter()
        .map(|h| json!({"field": h.field.as_str(), "text": h.text}))
        .collect()
}

fn why_json(n: &ExplainNode) -> Value {
    json!({
        "node": n.label,
        "value": n.value,
        "terms": hits_json(&n.hits),
        "children": n.children.iter().map(why_json).collect::<Vec<_>>(),
    })
}

fn item_json(labels: &Labels, item: usize, rule: &str) -> Value {
    let (o, a) = (&labels.origins[item], &labels.items[item].article);
    json!({
        "rule": rule,
        "id": o.id,
        "lang": eval::lang_key(a.lang.as_deref()),
        "title": a.title,
        "file": labels.files[o.file].display().to_string(),
        "line": o.line,
    })
}

fn to_json(
    set: &RuleSet,
    labels: &Labels,
    report: &Report,
    opts: &Options,
    (show_fn, show_fp): (bool, bool),
) -> Value {
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    let files: Vec<Value> = labels
        .files
        .iter()
        .enumerate()
        .map(|(f, p)| {
            let n = labels.origins.iter().filter(|o| o.file == f).count();
            json!({"path": p.display().to_string(), "items": n})
        })
        .collect();
    let rules: Vec<Value> = report
        .per_rule
        .iter()
        .enumerate()
        .map(|(r, c)| {
            with(
                with(counts_json(c), "id", json!(ids[r])),
                "measured",
                json!(c.measured()),
            )
        })
        .collect();
    let langs: Vec<Value> = report
        .per_lang
        .iter()
        .map(|l| {
            with(
                with(counts_json(&l.counts), "lang", json!(l.lang)),
                "items",
                json!(l.items),
            )
        })
        .collect();
    let a = &report.macro_avg;
    let mut doc = json!({
        "items": labels.items.len(),
        "files": files,
        "lang": opts.lang.as_deref().map(|l| eval::lang_key(Some(l))),
        "rules": rules,
        "unmeasured": report.unmeasured().map(|r| ids[r]).collect::<Vec<_>>(),
        "languages": langs,
        "micro": counts_json(&report.micro),
        "macro": {"precision": a.precision, "recall": a.recall, "f1": a.f1, "rules": a.rules},
    });
    if show_fn {
        let fns: Vec<Value> = report
            .false_negatives
            .iter()
            .map(|f| {
                with(
                    item_json(labels, f.item, ids[f.rule]),
                    "why",
                    why_json(&f.why),
                )
            })
            .collect();
        doc = with(doc, "false_negatives", Value::Array(fns));
    }
    if show_fp {
        let fps: Vec<Value> = report
            .false_positives
            .iter()
            .map(|f| {
                with(
                    item_json(labels, f.item, ids[f.rule]),
                    "terms",
                    hits_json(&f.hits),
                )
            })
            .collect();
        doc = with(doc, "false_positives", Value::Array(fps));
    }
    doc
}
