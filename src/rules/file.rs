//! Rule files: TOML with spans into typed rules and lists, every problem located (file, line,
//! column, rule id) with a hint, all problems at once. Reads nothing itself; `RuleSet::load` does IO.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::syntax::{Expr, ExprKind, QueryError, parse_query, parse_query_warned, suggest};
use super::{Diagnostic, Example, FeedSelector, Priority, RuleInfo};
use crate::diagnostic::LineIndex;

mod document;
pub(crate) use document::parse_sources;

/// Where a string value sits in its file, so offsets inside it become file positions.
#[derive(Debug, Clone)]
pub(crate) struct StrLoc {
    pub file: usize,
    /// Byte offset of the string's first character (after the opening quotes).
    pub inner: usize,
    /// Whether the value is the source text verbatim (no escapes), so offsets map one to one.
    pub verbatim: bool,
}

impl StrLoc {
    pub fn offset(&self, at: usize) -> usize {
        if self.verbatim {
            self.inner + at
        } else {
            self.inner
        }
    }
}

pub(crate) struct Source {
    pub path: PathBuf,
    /// `path` once more, shared by every rule read from the file (`RuleInfo::file`) rather than
    /// copied into each (at 10,000 rules, ~1 MB of copies of one path; issue 22).
    shared_path: Arc<Path>,
    pub text: String,
    lines: LineIndex,
}

impl Source {
    pub fn new(path: PathBuf, text: String) -> Source {
        Source {
            lines: LineIndex::new(&text),
            shared_path: Arc::from(path.as_path()),
            path,
            text,
        }
    }

    /// Byte offset of the start of `line` (1-based).
    pub fn line_start(&self, line: usize) -> usize {
        self.lines.line_start(line)
    }

    /// The line (1-based) of byte `offset`, as its diagnostic would give it.
    pub fn line_of(&self, offset: usize) -> usize {
        self.lines.locate(&self.text, offset).0
    }

    pub fn diagnostic(
        &self,
        offset: usize,
        rule: Option<&str>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Diagnostic {
        Diagnostic {
            subject: rule.map(|id| format!("rule {id}")),
            hint: hint.map(str::to_string),
            ..Diagnostic::at(&self.path, &self.text, &self.lines, offset, message)
        }
    }
}

/// A rule as read from its file, with its parsed query.
pub(crate) struct RawRule {
    pub info: RuleInfo,
    pub query: Option<(Expr, StrLoc)>,
    /// `syntax::warnings` of the query, found while parsing it.
    pub warnings: Vec<QueryError>,
    pub allow_broad: bool,
}

/// One `[[rule]]` table read on its own (in parallel with the others): the rule, its problems,
/// and its id with the id's offset, for the duplicate check that needs every rule before it.
struct ReadRule {
    rule: Option<RawRule>,
    diags: Vec<Diagnostic>,
    id_at: Option<(String, usize)>,
}

/// A list entry as read: parsed query and where it is.
pub(crate) struct RawList {
    pub entries: Vec<(Expr, StrLoc)>,
    /// `FILE:LINE`, for the duplicate-name diagnostic.
    pub defined_at: String,
    pub file: usize,
    pub at: usize,
}

#[derive(Default)]
pub(crate) struct Parsed {
    pub rules: Vec<RawRule>,
    pub lists: HashMap<String, RawList>,
    pub list_order: Vec<String>,
    pub diags: Vec<Diagnostic>,
}

const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "query",
    "priority",
    "feeds",
    "max_age",
    "examples",
    "allow_broad",
];

fn unknown_key(
    src: &Source,
    span: Range<usize>,
    key: &str,
    known: &[&str],
    rule: Option<&str>,
) -> Diagnostic {
    let message = match suggest(key, known.iter().copied()) {
        Some(s) => format!("unknown key `{key}` — did you mean `{s}`?"),
        None => format!("unknown key `{key}`"),
    };
    let hint = format!("allowed keys here: {}", known.join(", "));
    src.diagnostic(span.start, rule, message, Some(&hint))
}

fn str_loc(src: &Source, fi: usize, value: &Spanned<DeValue<'_>>, s: &str) -> StrLoc {
    let span = value.span();
    let raw = &src.text[span.clone()];
    let open = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        let nl = match raw.get(3..) {
            Some(r) if r.starts_with("\r\n") => 2,
            Some(r) if r.starts_with('\n') => 1,
            _ => 0,
        };
        3 + nl
    } else {
        1
    };
    let inner = span.start + open.min(raw.len());
    let verbatim = src.text.get(inner..inner + s.len()) == Some(s);
    StrLoc {
        file: fi,
        inner,
        verbatim,
    }
}

fn lists(p: &mut Parsed, src: &Source, fi: usize, value: &Spanned<DeValue<'_>>) {
    let DeValue::Table(table) = value.get_ref() else {
        p.diags.push(src.diagnostic(
            value.span().start,
            None,
            "`lists` must be a table",
            Some("write [lists] and then `name = ['entry', ...]`"),
        ));
        return;
    };
    for (name, entries) in table {
        let n = name.get_ref().to_string();
        let at = name.span().start;
        if n.is_empty()
            || !n
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        {
            p.diags.push(src.diagnostic(
                at,
                None,
                format!("bad list name `{n}`"),
                Some("list names are lower-case letters, digits, `_` and `-`"),
            ));
            continue;
        }
        if let Some(first) = p.lists.get(&n) {
            let d = src.diagnostic(
                at,
                None,
                format!(
                    "duplicate list `{n}` (first defined at {})",
                    first.defined_at
                ),
                Some("list names are global across all rule files; rename one"),
            );
            p.diags.push(d);
            continue;
        }
        let DeValue::Array(items) = entries.get_ref() else {
            p.diags.push(src.diagnostic(
                entries.span().start,
                None,
                format!("list `{n}` must be an array of strings"),
                Some("write `name = ['\"Full Name\"', 'Surname']`"),
            ));
            continue;
        };
        let mut parsed = Vec::new();
        for item in items {
            let DeValue::String(s) = item.get_ref() else {
                p.diags.push(src.diagnostic(
                    item.span().start,
                    None,
                    format!("entries of list `{n}` must be strings"),
                    None,
                ));
                continue;
            };
            let loc = str_loc(src, fi, item, s);
            match parse_query(s) {
                Ok(e) => parsed.push((e, loc)),
                Err(errs) => {
                    for e in errs {
                        p.diags.push(src.diagnostic(
                            loc.offset(e.span.start),
                            None,
                            format!("in list @{n}: {}", e.message),
                            e.hint.as_deref(),
                        ));
                    }
                }
            }
        }
        if parsed.is_empty() && items.is_empty() {
            p.diags.push(src.diagnostic(
                entries.span().start,
                None,
                format!("list `{n}` is empty"),
                Some("give the list at least one entry, or remove it"),
            ));
        }
        p.list_order.push(n.clone());
        p.lists.insert(
            n,
            RawList {
                defined_at: format!("{}:{}", src.path.display(), src.line_of(at)),
                entries: parsed,
                file: fi,
                at,
            },
        );
    }
}

/// Reports `id` (at byte `at` of `src`) when an earlier rule has it; otherwise remembers where
/// it is (its source and offset: the place is rendered only for a duplicate, issue 22).
fn duplicate_id<'s>(
    p: &mut Parsed,
    src: &'s Source,
    ids: &mut HashMap<String, (&'s Source, usize)>,
    id: String,
    at: usize,
) {
    if let Some((first, first_at)) = ids.get(&id) {
        let place = format!("{}:{}", first.path.display(), first.line_of(*first_at));
        p.diags.push(src.diagnostic(
            at,
            Some(&id),
            format!("duplicate rule id `{id}` (first defined at {place})"),
            Some("rule ids must be unique across all rule files"),
        ));
    } else {
        ids.insert(id, (src, at));
    }
}

fn rule(src: &Source, fi: usize, item: &Spanned<DeValue<'_>>) -> ReadRule {
    let mut read = ReadRule {
        rule: None,
        diags: Vec::new(),
        id_at: None,
    };
    read.rule = rule_table(src, fi, item, &mut read.diags, &mut read.id_at);
    read
}

fn rule_table(
    src: &Source,
    fi: usize,
    item: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
    id_at: &mut Option<(String, usize)>,
) -> Option<RawRule> {
    let at = item.span().start;
    let DeValue::Table(t) = item.get_ref() else {
        diags.push(src.diagnostic(at, None, "a rule must be a table", None));
        return None;
    };
    let string = |key: &str| -> Option<(&Spanned<DeValue<'_>>, String)> {
        t.get(key).and_then(|v| match v.get_ref() {
            DeValue::String(s) => Some((v, s.to_string())),
            _ => None,
        })
    };
    let raw_id = string("id").map(|(_, s)| s);
    let id = match t.get("id") {
        None => {
            diags.push(src.diagnostic(
                at,
                None,
                "rule has no `id`",
                Some("add `id = \"short-name\"` (lower-case letters, digits and `-`)"),
            ));
            None
        }
        Some(v) => match string("id") {
            Some((_, s))
                if !s.is_empty()
                    && s.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) =>
            {
                *id_at = Some((s.clone(), v.span().start));
                Some(s)
            }
            _ => {
                diags.push(src.diagnostic(
                    v.span().start,
                    raw_id.as_deref(),
                    "bad rule id",
                    Some("ids are lower-case letters, digits and `-`, like \"minerals-deal\""),
                ));
                None
            }
        },
    };
    let rid = id.as_deref().or(raw_id.as_deref());
    for (key, _) in t {
        let k = key.get_ref().as_ref();
        if !RULE_KEYS.contains(&k) {
            diags.push(unknown_key(src, key.span(), k, RULE_KEYS, rid));
        }
    }
    let title = string("title").map(|(_, s)| s);
    let priority = match t.get("priority") {
        None => Priority::Digest,
        Some(v) => match v.get_ref().as_str() {
            Some("digest") => Priority::Digest,
            Some("alert") => Priority::Alert,
            _ => {
                diags.push(src.diagnostic(
                    v.span().start,
                    rid,
                    "bad priority",
                    Some("priority is \"alert\" (immediate email) or \"digest\" (the default)"),
                ));
                Priority::Digest
            }
        },
    };
    let mut warnings = Vec::new();
    let query = match t.get("query") {
        None => {
            diags.push(src.diagnostic(
                at,
                rid,
                "rule has no `query`",
                Some("add `query = '...'`, like `query = '@healey NEAR/20 @hegseth'`"),
            ));
            None
        }
        Some(v) => match v.get_ref() {
            DeValue::String(s) => {
                let loc = str_loc(src, fi, v, s);
                match parse_query_warned(s) {
                    Ok((e, warned)) => {
                        warnings = warned;
                        Some((e, loc))
                    }
                    Err(errs) => {
                        for e in errs {
                            diags.push(src.diagnostic(
                                loc.offset(e.span.start),
                                rid,
                                e.message,
                                e.hint.as_deref(),
                            ));
                        }
                        None
                    }
                }
            }
            _ => {
                diags.push(src.diagnostic(v.span().start, rid, "`query` must be a string", None));
                None
            }
        },
    };
    let mut feeds = Vec::new();
    if let Some(v) = t.get("feeds") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for f in items {
                    match f.get_ref().as_str() {
                        Some(s) if !s.trim().is_empty() => {
                            feeds.push(match s.strip_prefix("tag:") {
                                Some(tag) => FeedSelector::Tag(tag.to_string()),
                                None => FeedSelector::Name(s.to_string()),
                            });
                        }
                        _ => diags.push(src.diagnostic(
                            f.span().start,
                            rid,
                            "feeds entries must be feed names or \"tag:NAME\"",
                            None,
                        )),
                    }
                }
            }
            _ => diags.push(src.diagnostic(
                v.span().start,
                rid,
                "`feeds` must be an array of strings",
                Some("write `feeds = [\"tag:uk-press\", \"bbc-world\"]`"),
            )),
        }
    }
    let max_age = match t.get("max_age") {
        None => None,
        Some(v) => match v.get_ref().as_str().map(crate::units::parse_duration) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                diags.push(src.diagnostic(v.span().start, rid, e, None));
                None
            }
            None => {
                diags.push(src.diagnostic(
                    v.span().start,
                    rid,
                    "`max_age` must be a string like \"48h\"",
                    None,
                ));
                None
            }
        },
    };
    let allow_broad = match t.get("allow_broad") {
        None => false,
        Some(v) => {
            if let Some(b) = v.get_ref().as_bool() {
                b
            } else {
                diags.push(src.diagnostic(
                    v.span().start,
                    rid,
                    "`allow_broad` must be true or false",
                    None,
                ));
                false
            }
        }
    };
    let examples = examples(src, t.get("examples"), rid, diags);
    let id = id?;
    Some(RawRule {
        info: RuleInfo {
            title: title.unwrap_or_else(|| id.clone()),
            id,
            priority,
            query: string("query").map(|(_, s)| s).unwrap_or_default(),
            file: Arc::clone(&src.shared_path),
            line: src.line_of(at),
            feeds,
            max_age,
            examples,
        },
        query,
        warnings,
        allow_broad,
    })
}

fn examples(
    src: &Source,
    v: Option<&Spanned<DeValue<'_>>>,
    rid: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Example> {
    let mut out = Vec::new();
    let Some(v) = v else { return out };
    let DeValue::Table(t) = v.get_ref() else {
        diags.push(src.diagnostic(
            v.span().start,
            rid,
            "`examples` must be a table",
            Some("write `examples.match = [...]` and `examples.no_match = [...]`"),
        ));
        return out;
    };
    for (key, value) in t {
        let expect = match key.get_ref().as_ref() {
            "match" => true,
            "no_match" => false,
            other => {
                diags.push(unknown_key(
                    src,
                    key.span(),
                    other,
                    &["match", "no_match"],
                    rid,
                ));
                continue;
            }
        };
        let DeValue::Array(items) = value.get_ref() else {
            diags.push(src.diagnostic(
                value.span().start,
                rid,
                "examples must be an array of strings",
                None,
            ));
            continue;
        };
        for item in items {
            match item.get_ref().as_str() {
                Some(s) => {
                    let d = src.diagnostic(item.span().start, None, "", None);
                    out.push(Example {
                        text: s.to_string(),
                        expect_match: expect,
                        line: d.line,
                        column: d.column,
                        source_line: d.source_line,
                        source_skip: d.source_skip,
                    });
                }
                None => diags.push(src.diagnostic(
                    item.span().start,
                    rid,
                    "examples must be strings",
                    None,
                )),
            }
        }
    }
    out
}

/// Unknown references and cycles among lists, reported even for lists no rule uses.
pub(crate) fn check_lists(p: &Parsed, sources: &[Source]) -> (Vec<Diagnostic>, HashSet<String>) {
    let mut diags = Vec::new();
    let mut cyclic = HashSet::new();
    let names: Vec<&str> = p.list_order.iter().map(String::as_str).collect();
    for name in &p.list_order {
        let list = &p.lists[name];
        for (e, loc) in &list.entries {
            let mut refs = Vec::new();
            list_refs(e, &mut refs);
            for (r, span) in refs {
                if !p.lists.contains_key(&r) {
                    let message = match suggest(&r, names.iter().copied()) {
                        Some(s) => {
                            format!("in list @{name}: unknown list @{r} — did you mean @{s}?")
                        }
                        None => format!("in list @{name}: unknown list @{r}"),
                    };
                    diags.push(sources[loc.file].diagnostic(
                        loc.offset(span.start),
                        None,
                        message,
                        Some("lists are defined under [lists] in any rule file"),
                    ));
                }
            }
        }
    }
    // Depth-first search; a back edge is a cycle, reported once at the list that closes it.
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut reported = HashSet::new();
    for name in &p.list_order {
        let mut stack = Vec::new();
        visit(p, name, &mut state, &mut stack, &mut |cycle: Vec<
            String,
        >| {
            let key = {
                let mut c = cycle.clone();
                c.sort();
                c
            };
            cyclic.extend(cycle.iter().cloned());
            if !reported.insert(key) {
                return;
            }
            let first = &p.lists[&cycle[0]];
            let path = cycle
                .iter()
                .chain(std::iter::once(&cycle[0]))
                .map(|n| format!("@{n}"))
                .collect::<Vec<_>>()
                .join(" → ");
            diags.push(sources[first.file].diagnostic(
                first.at,
                None,
                format!("list cycle: {path}"),
                Some("a list may not contain itself, directly or through other lists"),
            ));
        });
    }
    (diags, cyclic)
}

/// Depth-first from `name`, with an explicit stack (a chain of 20,000 lists must not recurse
/// 20,000 deep): calls `on_cycle` with the path of each back edge found.
fn visit<'p>(
    p: &'p Parsed,
    name: &'p str,
    state: &mut HashMap<&'p str, u8>,
    stack: &mut Vec<&'p str>,
    on_cycle: &mut dyn FnMut(Vec<String>),
) {
    // Each frame: a list on the path and the lists its entries refer to, still to visit.
    let mut frames: Vec<(&'p str, Vec<&'p str>)> = Vec::new();
    let mut next = Some(name);
    loop {
        if let Some(name) = next.take() {
            match state.get(name) {
                Some(2) => {}
                Some(1) => {
                    if let Some(pos) = stack.iter().position(|n| *n == name) {
                        on_cycle(stack[pos..].iter().map(|s| (*s).to_string()).collect());
                    }
                }
                _ => {
                    if let Some((key, list)) = p.lists.get_key_value(name) {
                        state.insert(key, 1);
                        stack.push(key);
                        let mut refs = Vec::new();
                        for (e, _) in &list.entries {
                            list_refs(e, &mut refs);
                        }
                        let mut targets: Vec<&'p str> = refs
                            .iter()
                            .filter_map(|(r, _)| p.lists.get_key_value(r).map(|(k, _)| k.as_str()))
                            .collect();
                        targets.reverse();
                        frames.push((key, targets));
                    }
                }
            }
        }
        let Some((key, targets)) = frames.last_mut() else {
            return;
        };
        if let Some(t) = targets.pop() {
            next = Some(t);
        } else {
            state.insert(*key, 2);
            stack.pop();
            frames.pop();
        }
    }
}

pub(crate) fn list_refs(e: &Expr, out: &mut Vec<(String, Range<usize>)>) {
    match &e.kind {
        ExprKind::List(n) => out.push((n.clone(), e.span.clone())),
        ExprKind::And(items) | ExprKind::Or(items) => items.iter().for_each(|i| list_refs(i, out)),
        ExprKind::Not(inner) | ExprKind::Field { inner, .. } => list_refs(inner, out),
        ExprKind::Near { left, right, .. } => {
            list_refs(left, out);
            list_refs(right, out);
        }
        _ => {}
    }
}

/// The largest rule file read, as for the config: room for tens of thousands of rules and long
/// lists (the 10,000 generated rules of `benches/matcher.rs` are 0.6 MB), while a wrong path (a
/// log, a disk image, `/dev/zero`) is refused after reading at most this much, before the TOML
/// parser sees it.
pub const MAX_RULE_FILE_BYTES: u64 = 16 << 20;

/// Reads rule files, each bounded by `MAX_RULE_FILE_BYTES`; unreadable files become diagnostics.
pub(crate) fn read_sources(files: &[PathBuf]) -> (Vec<Source>, Vec<Diagnostic>) {
    let mut sources = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match read_bounded(f) {
            Ok(text) => sources.push(Source::new(f.clone(), text)),
            Err(message) => diags.push(Diagnostic::whole_file(f, message)),
        }
    }
    (sources, diags)
}

fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read rule file: {e}");
    // A FIFO or a device has no size to trust and may never end (opening a FIFO blocks): refused
    // before opening, and again on the handle in case the path was swapped meanwhile.
    let not_regular = || "cannot read rule file: not a regular file".to_string();
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(MAX_RULE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "rule file is larger than {} MiB: expected TOML rules, not this",
            MAX_RULE_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read rule file: invalid UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        )
    })
}

pub(crate) fn duration_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
