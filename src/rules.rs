//! The `Matcher` seam: rule files compiled into a `RuleSet` that says which rules an article matches.
//! PLACEHOLDER ENGINE: plain terms and quoted phrases only (whole-word, case-insensitive), every atom
//! ANDed, lists ORed. The full rule language (issue 3) replaces everything behind this API.
//! No IO except reading the rule files in `load`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::article::{Article, FeedMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Digest,
    Alert,
}

/// A field of an article that a hit was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Title,
    Summary,
    Content,
    Author,
    Category,
    Feed,
    Url,
    Lang,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Summary => "summary",
            Field::Content => "content",
            Field::Author => "author",
            Field::Category => "category",
            Field::Feed => "feed",
            Field::Url => "url",
            Field::Lang => "lang",
        }
    }
}

/// What an analyst configured about a rule, besides its query.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub priority: Priority,
}

/// One matched term: where in which field of the original article text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub field: Field,
    /// Byte range in the original (un-normalised) field text.
    pub start: usize,
    pub end: usize,
    /// The original text at that range.
    pub text: String,
}

/// A rule that matched an article, with the hits that made it true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index into `RuleSet::rules()`.
    pub rule: usize,
    pub hits: Vec<Hit>,
}

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading rule files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
struct RawRule {
    id: String,
    title: Option<String>,
    query: String,
    priority: Option<String>,
}

/// (byte start, byte end, lower-case word).
type Token = (usize, usize, String);

/// Alternatives of conjunctions of phrases (each phrase a list of lower-case tokens).
type Dnf = Vec<Vec<Vec<String>>>;

/// All rules, compiled once; cheap to share between tasks.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<RuleInfo>,
    queries: Vec<Vec<Vec<Vec<String>>>>,
}

impl RuleSet {
    /// Loads and compiles every rule in `files`; every problem is returned at once.
    pub fn load(files: &[PathBuf]) -> Result<RuleSet, Diagnostics> {
        let mut diags = Vec::new();
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut raw_rules = Vec::new();
        for file in files {
            match read_file(file) {
                Ok(raw) => {
                    lists.extend(raw.lists);
                    raw_rules.extend(raw.rule.into_iter().map(|r| (file.clone(), r)));
                }
                Err(d) => diags.push(d),
            }
        }
        let mut rules = Vec::new();
        let mut queries = Vec::new();
        for (file, raw) in raw_rules {
            let priority = match raw.priority.as_deref() {
                None | Some("digest") => Priority::Digest,
                Some("alert") => Priority::Alert,
                Some(other) => {
                    diags.push(Diagnostic {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        rule: Some(raw.id.clone()),
                        message: format!(
                            "unknown priority {other:?}: expected \"digest\" or \"alert\""
                        ),
                    });
                    continue;
                }
            };
            queries.push(compile(&raw.query, &lists));
            rules.push(RuleInfo {
                title: raw.title.unwrap_or_else(|| raw.id.clone()),
                id: raw.id,
                priority,
            });
        }
        if diags.is_empty() {
            Ok(RuleSet { rules, queries })
        } else {
            Err(Diagnostics(diags))
        }
    }

    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// The rules `article` matches, with their hits. Pure: no IO, no clock but `now`.
    pub fn match_article(
        &self,
        article: &Article,
        _feed: &FeedMeta,
        _now: DateTime<Utc>,
    ) -> Vec<RuleMatch> {
        let fields = [
            (Field::Title, article.title.as_str()),
            (Field::Summary, article.summary.as_str()),
            (Field::Content, article.content.as_str()),
        ];
        let tokenised: Vec<(Field, &str, Vec<Token>)> =
            fields.iter().map(|&(f, t)| (f, t, tokens(t))).collect();
        let mut out = Vec::new();
        for (i, dnf) in self.queries.iter().enumerate() {
            for conj in dnf {
                let mut hits = Vec::new();
                let all = conj.iter().all(|phrase| {
                    let mut found = false;
                    for (field, text, toks) in &tokenised {
                        for w in toks.windows(phrase.len()) {
                            if w.iter().zip(phrase).all(|(t, p)| t.2 == *p) {
                                let (start, end) = (w[0].0, w[w.len() - 1].1);
                                hits.push(Hit {
                                    field: *field,
                                    start,
                                    end,
                                    text: text[start..end].to_string(),
                                });
                                found = true;
                            }
                        }
                    }
                    found
                });
                if all && !conj.is_empty() {
                    out.push(RuleMatch { rule: i, hits });
                    break;
                }
            }
        }
        out
    }
}

fn read_file(file: &Path) -> Result<RawFile, Diagnostic> {
    let text = std::fs::read_to_string(file).map_err(|e| Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        rule: None,
        message: format!("cannot read rule file: {e}"),
    })?;
    toml::from_str(&text).map_err(|e| {
        let off = e.span().map_or(0, |s| s.start);
        let line = text[..off].matches('\n').count() + 1;
        let col = off - text[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column: col,
            rule: None,
            message: e.message().to_string(),
        }
    })
}

fn compile(query: &str, lists: &BTreeMap<String, Vec<String>>) -> Dnf {
    let mut dnf: Dnf = vec![Vec::new()];
    for part in split_query(query) {
        if part == "OR" {
            dnf.push(Vec::new());
            continue;
        }
        if part == "AND"
            || part.starts_with("NEAR")
            || part.starts_with("ONEAR")
            || part == "("
            || part == ")"
        {
            continue;
        }
        if let Some(name) = part.strip_prefix('@') {
            // A list is an OR of its entries: expand the current conjunction once per entry.
            let entries: Vec<Vec<String>> = lists.get(name).map_or_else(Vec::new, |e| {
                e.iter()
                    .map(|q| {
                        tokens(q.trim_matches('"'))
                            .into_iter()
                            .map(|t| t.2)
                            .collect()
                    })
                    .collect()
            });
            let last = dnf.pop().unwrap_or_default();
            for entry in entries {
                let mut c = last.clone();
                c.push(entry);
                dnf.push(c);
            }
            continue;
        }
        let phrase: Vec<String> = tokens(part.trim_matches('"'))
            .into_iter()
            .map(|t| t.2)
            .collect();
        if let Some(c) = dnf.last_mut()
            && !phrase.is_empty()
        {
            c.push(phrase);
        }
    }
    dnf.retain(|c| !c.is_empty());
    dnf
}

fn split_query(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let s: String = chars.by_ref().take_while(|&c| c != '"').collect();
            out.push(format!("\"{s}\""));
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(s);
        }
    }
    out
}

/// Word tokens of `text`: (byte start, byte end, lower-case word); an `'s` possessive is dropped.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let word = text[s..i].to_lowercase();
                out.push((s, i, word));
                start = None;
            }
            _ => {}
        }
    }
    out.retain(|t| t.2 != "s");
    out
}
