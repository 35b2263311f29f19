//! The labels files of `rules eval` and of the console's playground: JSON Lines, one labelled
//! article per line, made into the `Article` and `FeedMeta` that `rules test --article` would
//! build (markup stripped). Every problem is reported at once, with file, line and column; rule
//! ids are resolved against the rule set. `read` does the file IO; `parse` is the rest, public
//! for the benchmark.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::diagnostic::Diagnostic;
use crate::model::{Article, FeedMeta};
use crate::parse::html::html_to_text;
use crate::parse::language;
use crate::rules::RuleSet;
use crate::rules::eval::Labelled;

/// Where a labelled item was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Index into `Labels::files`.
    pub file: usize,
    /// 1-based.
    pub line: usize,
    /// The item's `id`.
    pub id: String,
}

/// Every item of every labels file, in file order.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub files: Vec<PathBuf>,
    pub items: Vec<Labelled>,
    /// Parallel to `items`.
    pub origins: Vec<Origin>,
    /// Fields this program does not know, each reported once per file (ignored, not fatal).
    pub warnings: Vec<Diagnostic>,
    /// Every problem that makes the labels unusable; the items are only meaningful without any.
    pub errors: Vec<Diagnostic>,
}

/// One line of a labels file.
#[derive(Debug, Deserialize)]
struct Line {
    id: String,
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    content: String,
    lang: Option<String>,
    feed: Option<String>,
    /// RFC 3339.
    published: Option<String>,
    link: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    /// The rules that should match; `[]` is a negative for every rule. Required, so a misspelt
    /// key cannot turn a positive into a negative.
    labels: Vec<String>,
    /// Free text for the people who keep the file; never read.
    #[serde(rename = "note")]
    _note: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Reads and parses every file; every problem in any of them is in `errors`.
pub fn read(files: &[PathBuf], set: &RuleSet) -> Labels {
    let mut sources = Vec::new();
    let mut unreadable = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => sources.push((f.clone(), text)),
            Err(e) => unreadable.push(Diagnostic::whole_file(f, format!("cannot read: {e}"))),
        }
    }
    let mut labels = parse(&sources, set);
    unreadable.append(&mut labels.errors);
    labels.errors = unreadable;
    labels
}

/// Parses labels files given as (name, text); ids are unique across all of them.
pub fn parse(sources: &[(PathBuf, String)], set: &RuleSet) -> Labels {
    let mut out = Labels::default();
    let mut diags = Vec::new();
    // id → (file, line) of its first use.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for (f, (path, text)) in sources.iter().enumerate() {
        out.files.push(path.clone());
        let mut unknown_fields = BTreeSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let at = |column: usize, message: String| Diagnostic {
                line,
                column,
                ..Diagnostic::whole_file(path, message)
            };
            let parsed: Line = match serde_json::from_str(raw) {
                Ok(l) => l,
                Err(e) => {
                    diags.push(json_error(&at, raw, &e));
                    continue;
                }
            };
            for key in parsed.other.keys() {
                if unknown_fields.insert(key.clone()) {
                    let col = column_of(raw, &format!("\"{key}\""));
                    out.warnings.push(Diagnostic {
                        hint: Some(KNOWN_FIELDS.to_string()),
                        ..at(col, format!("unknown field `{key}` is ignored"))
                    });
                }
            }
            let before = diags.len();
            if parsed.id.trim().is_empty() {
                diags.push(at(column_of(raw, "\"id\""), "`id` is empty".to_string()));
            } else if let Some(&(pf, pl)) = seen.get(&parsed.id) {
                diags.push(at(
                    column_of(raw, "\"id\""),
                    format!(
                        "duplicate id `{}` (first at {}:{pl})",
                        parsed.id,
                        sources[pf].0.display()
                    ),
                ));
            } else {
                seen.insert(parsed.id.clone(), (f, line));
            }
            let mut expected = Vec::new();
            for label in &parsed.labels {
                let col = column_of(raw, &format!("\"{label}\""));
                match set.find(label) {
                    Some(r) if expected.contains(&r) => {
                        diags.push(at(col, format!("rule `{label}` is labelled twice")));
                    }
                    Some(r) => expected.push(r),
                    None => {
                        let ids = set.rules().iter().map(|r| r.id.as_str());
                        let hint = crate::rules::syntax::suggest(label, ids)
                            .map(|s| format!("did you mean `{s}`?"));
                        diags.push(Diagnostic {
                            hint: hint.or_else(|| {
                                Some("labels name rule ids of the --rules files".to_string())
                            }),
                            ..at(col, format!("no rule `{label}` in the rule files"))
                        });
                    }
                }
            }
            expected.sort_unstable();
            let published = match parsed
                .published
                .as_deref()
                .map(DateTime::parse_from_rfc3339)
            {
                None => None,
                Some(Ok(t)) => Some(t.with_timezone(&Utc)),
                Some(Err(e)) => {
                    let col = column_of(raw, "\"published\"");
                    diags.push(Diagnostic {
                        hint: Some(
                            "write it as 2025-03-01T09:30:00Z or 2025-03-01T10:30:00+01:00"
                                .to_string(),
                        ),
                        ..at(col, format!("`published` is not an RFC 3339 time: {e}"))
                    });
                    None
                }
            };
            if diags.len() > before {
                continue;
            }
            out.origins.push(Origin {
                file: f,
                line,
                id: parsed.id.clone(),
            });
            let (title, summary, content) = (
                html_to_text(&parsed.title),
                html_to_text(&parsed.summary),
                html_to_text(&parsed.content),
            );
            // As the feeds' items are: detected only when none is declared.
            let lang_detected = match parsed.lang {
                Some(_) => None,
                None => language::detect(&title, &summary, &content).map(str::to_string),
            };
            out.items.push(Labelled {
                article: Article {
                    key: parsed.id,
                    link: parsed.link,
                    title,
                    summary,
                    content,
                    authors: parsed.authors,
                    categories: parsed.categories,
                    lang: parsed.lang,
                    lang_detected,
                    published,
                },
                feed: FeedMeta {
                    name: parsed.feed.unwrap_or_default(),
                    ..FeedMeta::default()
                },
                expected,
            });
        }
    }
    out.errors = diags;
    out
}

const KNOWN_FIELDS: &str = "known fields: id, title, summary, content, lang, feed, published, link, authors, categories, labels, note";

/// Longest line shown under a JSON syntax error (a longer one would wrap the caret away).
const SHOWN_LINE: usize = 200;

/// A serde_json error as a diagnostic at its column, without serde's own "at line 1 column N".
fn json_error(
    at: &dyn Fn(usize, String) -> Diagnostic,
    raw: &str,
    e: &serde_json::Error,
) -> Diagnostic {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let message = if e.is_data() {
        message.to_string()
    } else {
        format!("malformed JSON: {message}")
    };
    let mut d = at(e.column().max(1), message);
    if raw.chars().count() <= SHOWN_LINE {
        d.source_line = raw.to_string();
    }
    if d.message.starts_with("missing field") {
        d.hint =
            Some("every line needs `id`, `title` and `labels` (`[]` for a negative)".to_string());
    }
    d
}

/// The 1-based column (in characters) of the first `needle` in `line`, or 1.
fn column_of(line: &str, needle: &str) -> usize {
    line.find(needle)
        .map_or(1, |i| line[..i].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> RuleSet {
        RuleSet::from_sources(&[(
            PathBuf::from("r.toml"),
            "[[rule]]\nid = \"talks\"\nquery = 'Healey'\n[[rule]]\nid = \"deal\"\nquery = 'minerals'\n"
                .to_string(),
        )])
        .expect("the test rules compile")
    }

    fn errors(text: &str) -> Vec<String> {
        let l = parse(&[(PathBuf::from("l.jsonl"), text.to_string())], &set());
        assert!(l.items.len() < text.lines().count(), "{text}");
        l.errors
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn items_become_articles_as_rules_test_builds_them() {
        let text = concat!(
            r#"{"id":"a","title":"<b>Healey</b> &amp; co","summary":"s","lang":"en-GB","feed":"bbc","published":"2025-03-01T10:00:00+01:00","labels":["deal","talks"]}"#,
            "\n\n",
            r#"{"id":"b","title":"t","labels":[],"note":"hard negative"}"#,
            "\n"
        );
        let l = parse(&[(PathBuf::from("l.jsonl"), text.to_string())], &set());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.items.len(), 2);
        let a = &l.items[0];
        assert_eq!(a.article.title, "Healey & co");
        assert_eq!(a.article.key, "a");
        assert_eq!(a.article.lang.as_deref(), Some("en-GB"));
        assert_eq!(a.feed.name, "bbc");
        assert_eq!(a.expected, vec![0, 1]);
        assert_eq!(
            a.article.published.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-03-01T09:00:00+00:00")
        );
        assert_eq!(
            l.origins[1],
            Origin {
                file: 0,
                line: 3,
                id: "b".to_string()
            }
        );
        assert!(l.items[1].expected.is_empty());
        assert!(l.warnings.is_empty());
    }

    /// (file text, every error as `line:column: message`).
    #[test]
    fn every_problem_with_its_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "{\"id\":\"a\",\"title\":\"t\",\"labels\":[]}\n{\"id\":\"b\",\"title\":\"t\",\"labels\":[}\n",
                &["2:33: malformed JSON: expected value"],
            ),
            (
                "[1,2]\n",
                &["1:1: invalid type: sequence, expected struct Line"],
            ),
            (
                "{\"title\":\"t\",\"labels\":[]}\n",
                &["1:25: missing field `id`"],
            ),
            (
                "{\"id\":\"a\",\"labels\":[]}\n",
                &["1:22: missing field `title`"],
            ),
            (
                "{\"id\":\"a\",\"title\":\"t\"}\n",
                &["1:22: missing field `labels`"],
            ),
            (
                "{\"id\":\"a\",\"title\":\"t\",\"labels\":[]}\n{\"id\":\"a\",\"title\":\"u\",\"labels\":[]}\n",
                &["2:2: duplicate id `a` (first at l.jsonl:1)"],
            ),
            (
                "{\"id\":\" \",\"title\":\"t\",\"labels\":[]}\n",
                &["1:2: `id` is empty"],
            ),
            (
                "{\"id\":\"a\",\"title\":\"t\",\"labels\":[\"talk\",\"deal\",\"deal\"]}\n",
                &[
                    "1:33: no rule `talk` in the rule files",
                    "1:40: rule `deal` is labelled twice",
                ],
            ),
            (
                "{\"id\":\"a\",\"title\":\"t\",\"published\":\"yesterday\",\"labels\":[]}\n",
                &["1:23: `published` is not an RFC 3339 time: premature end of input"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&errors(text), want, "{text}");
        }
    }

    #[test]
    fn an_unknown_rule_gets_a_suggestion_and_unknown_fields_a_warning() {
        let text = "{\"id\":\"a\",\"title\":\"t\",\"labels\":[\"talk\"]}\n";
        let d = parse(&[(PathBuf::from("l.jsonl"), text.to_string())], &set()).errors;
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `talks`?"));

        let text = "{\"id\":\"a\",\"title\":\"t\",\"lables\":[\"talks\"],\"labels\":[]}\n{\"id\":\"b\",\"title\":\"t\",\"lables\":[],\"labels\":[]}\n";
        let l = parse(&[(PathBuf::from("l.jsonl"), text.to_string())], &set());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let w: Vec<String> = l
            .warnings
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(w, vec!["1:23: unknown field `lables` is ignored"]);
    }
}
