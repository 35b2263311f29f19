//! Compiler: parsed queries into evaluation trees whose leaves are interned literals, and every
//! literal of every rule into one token-keyed index over normalised text (`scan`).
//! Regexes are compiled here, once, each under a size budget; nothing is compiled at match time.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

mod parallel;

use super::Field;
use super::syntax::{Expr, ExprKind, FieldName, INFLECTION_LETTERS, NEAR_OPERANDS, suggest};
use super::text::{exact_form, for_each_token, tokenize};

/// Per-regex compiled-size budget (bytes of the regex crate's program).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// At most this many distinct regexes in one rule set: the escape hatch must stay small.
pub(crate) const MAX_REGEXES: usize = 256;
/// A regex's cost budget, in states of its NFA (`regex_states`). Measured (release build,
/// 2.6 GHz, one 256 KiB field crafted against the regex): 2,183 states (`(a{1,10}){1,99}b`)
/// 105–165 ms, 9,003 (`(?s).{0,999}b` over prose) 16 s, about 40,000 (`(a{1,100}){1,100}b`,
/// issue 16 item 9) 100 s. Ordinary regexes have 40–400 (`(?i)\w+`: 322).
pub(crate) const MAX_REGEX_STATES: usize = 2_500;
/// The budget of all the rule set's regexes together: the worst the regexes can cost one 256 KiB
/// field stays near a second (eight regexes at the budget) however the 256 regexes are spent.
pub(crate) const MAX_REGEX_STATES_TOTAL: usize = 20_000;
/// The most words a term or phrase may hold: a quoted sentence fits, a pasted article does not.
pub(crate) const MAX_PHRASE_WORDS: usize = 64;
/// Lists nest; anything deeper than this is certainly a mistake (cycles are reported elsewhere).
const MAX_LIST_DEPTH: usize = 32;

/// How a failing list's use is reported: `list @a cannot be used here: <why>`.
const LIST_USE: &str = " cannot be used here: ";
/// How deep an evaluation tree may be once lists are expanded: each query is bounded by
/// `MAX_QUERY_DEPTH` alone, but lists inside lists multiply it. Every walk over a `Node` (evaluate,
/// explain, hits, triggers) recurses, so this bound is what keeps them off the stack's end.
pub(crate) const MAX_TREE_DEPTH: usize = 256;

/// A literal: a run of normalised tokens, or a one-token prefix.
#[derive(Debug, Clone)]
pub(crate) struct Literal {
    /// `" w1 w2 "` for terms and phrases, `" stem"` for prefixes.
    pub pattern: String,
    pub ntoks: u32,
}

/// What an occurrence of a literal must also satisfy.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    Any,
    /// For `case:`: the exact (NFKC) form every token must have.
    Exact(Box<[String]>),
    /// For `word~`: at most this many characters after the stem (the literal is a prefix).
    MaxSuffix(u32),
}

/// A bit set of `Field`s.
pub(crate) type Mask = u16;

pub(crate) const fn bit(f: Field) -> Mask {
    1 << (f as u16)
}

pub(crate) const TEXT_MASK: Mask = bit(Field::Title) | bit(Field::Summary) | bit(Field::Content);

fn mask_of(f: FieldName) -> Mask {
    match f {
        FieldName::Title => bit(Field::Title),
        FieldName::Summary => bit(Field::Summary),
        FieldName::Content => bit(Field::Content),
        FieldName::Text => TEXT_MASK,
        FieldName::Author => bit(Field::Author),
        FieldName::Category => bit(Field::Category),
        FieldName::Feed => bit(Field::Feed),
        FieldName::Url => bit(Field::Url),
        FieldName::Lang => bit(Field::Lang),
    }
}

/// An evaluation tree. Field scopes are pushed into the leaves; `Field` and `List` nodes remain
/// only so `explain` can show the query as written.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit {
        lit: u32,
        mask: Mask,
        check: Check,
        label: String,
    },
    Regex {
        re: u32,
        mask: Mask,
        /// The regex matches the empty string, so it is true for any article (a broad query).
        empty: bool,
        label: String,
    },
    Url {
        host: String,
        label: String,
    },
    Lang {
        tag: String,
        label: String,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Near {
        left: Box<Node>,
        right: Box<Node>,
        distance: u32,
        ordered: bool,
    },
    List {
        name: String,
        inner: Box<Node>,
    },
    Field {
        name: FieldName,
        inner: Box<Node>,
    },
}

impl Node {
    /// True for an article in which no atom is true: the definition of a broad query.
    pub fn true_when_nothing_occurs(&self) -> bool {
        match self {
            Node::Regex { empty, .. } => *empty,
            Node::Lit { .. } | Node::Url { .. } | Node::Lang { .. } => false,
            Node::Near { .. } => false,
            Node::And(items) => items.iter().all(Node::true_when_nothing_occurs),
            Node::Or(items) => items.iter().any(Node::true_when_nothing_occurs),
            Node::Not(inner) => !inner.true_when_nothing_occurs(),
            Node::List { inner, .. } | Node::Field { inner, .. } => {
                inner.true_when_nothing_occurs()
            }
        }
    }

    /// Literals of which at least one must occur for this node to be true, the fewest we can
    /// find; `None` when it can be true without any (NOT, regex, url, lang), so the rule is
    /// evaluated for every article. An AND needs only one of its children's sets.
    pub fn triggers(&self) -> Option<Vec<u32>> {
        match self {
            Node::Lit { lit, .. } => Some(vec![*lit]),
            Node::Regex { .. } | Node::Url { .. } | Node::Lang { .. } | Node::Not(_) => None,
            Node::Or(items) => {
                let mut all = Vec::new();
                for n in items {
                    all.extend(n.triggers()?);
                }
                Some(all)
            }
            Node::And(items) => items.iter().filter_map(Node::triggers).min_by_key(Vec::len),
            Node::Near { left, right, .. } => match (left.triggers(), right.triggers()) {
                (Some(l), Some(r)) => Some(if l.len() <= r.len() { l } else { r }),
                (l, r) => l.or(r),
            },
            Node::List { inner, .. } | Node::Field { inner, .. } => inner.triggers(),
        }
    }

    /// Necessary conditions, cheap to test before evaluating: groups of literals, of each of which
    /// at least one must occur (in any field, in any case) for this node to be true. Parts that can
    /// be true without a literal (NOT, regex, url, lang) add no group.
    pub fn required(&self, out: &mut Vec<Vec<u32>>) {
        match self {
            Node::Lit { lit, .. } => out.push(vec![*lit]),
            Node::Regex { .. } | Node::Url { .. } | Node::Lang { .. } | Node::Not(_) => {}
            Node::Or(_) => {
                if let Some(mut any) = self.triggers() {
                    any.sort_unstable();
                    any.dedup();
                    out.push(any);
                }
            }
            Node::And(items) => items.iter().for_each(|n| n.required(out)),
            Node::Near { left, right, .. } => {
                left.required(out);
                right.required(out);
            }
            Node::List { inner, .. } | Node::Field { inner, .. } => inner.required(out),
        }
    }

    /// The fields a positional node's literals are searched in.
    fn fields(&self) -> Mask {
        match self {
            Node::Lit { mask, .. } => *mask,
            Node::Or(items) => items.iter().fold(0, |m, n| m | n.fields()),
            Node::List { inner, .. } | Node::Field { inner, .. } => inner.fields(),
            _ => 0,
        }
    }

    fn is_positional(&self) -> bool {
        match self {
            Node::Lit { .. } => true,
            Node::Or(items) => items.iter().all(Node::is_positional),
            Node::List { inner, .. } | Node::Field { inner, .. } => inner.is_positional(),
            _ => false,
        }
    }
}

/// A problem found while compiling a query, at a span of that query.
#[derive(Debug, Clone)]
pub(crate) struct CompileError {
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

fn err(span: &Range<usize>, message: impl Into<String>, hint: Option<&str>) -> CompileError {
    CompileError {
        span: span.clone(),
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

/// The rule set's lists, by name: each entry a parsed query. Shared by the threads of a load.
pub(crate) type Lists = Arc<HashMap<String, Vec<Expr>>>;

/// Interns literals and regexes across all rules.
#[derive(Default)]
pub(crate) struct Builder {
    pub lists: Lists,
    lit_ids: HashMap<String, u32>,
    pub lits: Vec<Literal>,
    regex_ids: HashMap<(String, String), u32>,
    pub regexes: Vec<Regex>,
    /// `regex_states` of each regex in `regexes`.
    regex_costs: Vec<usize>,
    /// `regex_states` of every regex in `regexes`, summed.
    regex_states: usize,
    /// Levels of `node` on the stack; never above `MAX_TREE_DEPTH`.
    level: usize,
}

impl Builder {
    pub fn new(lists: Lists) -> Builder {
        Builder {
            lists,
            ..Builder::default()
        }
    }

    pub fn compile(&mut self, e: &Expr) -> Result<Node, Vec<CompileError>> {
        let mut errors = Vec::new();
        let node = self.node(e, FieldName::Text, 0, &mut errors);
        if errors.is_empty() {
            Ok(node)
        } else {
            Err(errors)
        }
    }

    /// `depth` counts lists entered; `self.level` counts every level, lists expanded.
    fn node(
        &mut self,
        e: &Expr,
        scope: FieldName,
        depth: usize,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        if self.level >= MAX_TREE_DEPTH {
            errors.push(err(
                &e.span,
                format!("the query nests more than {MAX_TREE_DEPTH} levels deep once its lists are expanded"),
                Some("flatten the lists: a list of alternatives needs no parentheses, and lists of lists rarely need more than a few levels"),
            ));
            return dummy();
        }
        self.level += 1;
        let node = self.node_at(e, scope, depth, errors);
        self.level -= 1;
        node
    }

    fn node_at(
        &mut self,
        e: &Expr,
        scope: FieldName,
        depth: usize,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        let label = || e.to_string();
        match &e.kind {
            ExprKind::Term(t) | ExprKind::Phrase(t) => match scope {
                FieldName::Url => Node::Url {
                    host: url_host(t),
                    label: label(),
                },
                FieldName::Lang => self.lang(t, e, errors),
                _ => self.words(t, e, scope, false, errors),
            },
            ExprKind::Case(t) => self.words(t, e, scope, true, errors),
            ExprKind::Prefix(stem) => self.prefix(stem, e, scope, Check::Any, errors),
            ExprKind::Inflect(stem) => {
                let max = u32::try_from(INFLECTION_LETTERS).unwrap_or(u32::MAX);
                self.prefix(stem, e, scope, Check::MaxSuffix(max), errors)
            }
            ExprKind::List(name) => self.list(name, e, scope, depth, errors),
            ExprKind::Regex { pattern, flags } => self.regex(pattern, flags, e, scope, errors),
            ExprKind::Field { field, inner } => Node::Field {
                name: *field,
                inner: Box::new(self.node(inner, *field, depth, errors)),
            },
            ExprKind::And(items) => Node::And(
                items
                    .iter()
                    .map(|i| self.node(i, scope, depth, errors))
                    .collect(),
            ),
            ExprKind::Or(items) => Node::Or(
                items
                    .iter()
                    .map(|i| self.node(i, scope, depth, errors))
                    .collect(),
            ),
            ExprKind::Not(inner) => Node::Not(Box::new(self.node(inner, scope, depth, errors))),
            ExprKind::Near {
                left,
                right,
                distance,
                ordered,
            } => {
                let l = self.node(left, scope, depth, errors);
                let r = self.node(right, scope, depth, errors);
                for (n, x) in [(&l, left), (&r, right)] {
                    if !n.is_positional() {
                        let why = match &x.kind {
                            ExprKind::List(name) => format!(
                                "{NEAR_OPERANDS}; list @{name} has an entry that is not a term, phrase or list"
                            ),
                            _ => NEAR_OPERANDS.to_string(),
                        };
                        errors.push(err(
                            &x.span,
                            why,
                            Some("url:, lang:, regexes, AND and NOT cannot be proximity operands"),
                        ));
                    }
                }
                // A failed or empty operand has no fields; it is reported (or harmless) elsewhere.
                let (lf, rf) = (l.fields(), r.fields());
                if lf != 0 && rf != 0 && lf & rf == 0 {
                    errors.push(err(
                        &e.span,
                        "NEAR needs both sides in the same field: these can never be near each other",
                        Some("put the field outside the proximity, `title:(a NEAR/3 b)`, or combine the fields with AND"),
                    ));
                }
                Node::Near {
                    left: Box::new(l),
                    right: Box::new(r),
                    distance: *distance,
                    ordered: *ordered,
                }
            }
        }
    }

    /// `lang:en`, `lang:en-GB`; a language name (`lang:english`) or anything that is not a
    /// language tag is an error with the tag to write.
    fn lang(&self, t: &str, e: &Expr, errors: &mut Vec<CompileError>) -> Node {
        let tag = t.trim().replace('_', "-").to_ascii_lowercase();
        let primary = tag.split('-').next().unwrap_or("");
        let plausible = (2..=3).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_alphabetic())
            && tag.split('-').all(|s| {
                !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !plausible {
            let named = LANGUAGE_NAMES
                .iter()
                .find(|(name, _)| primary == *name || tag.starts_with(name))
                .map(|(_, code)| *code);
            let message = match named {
                Some(code) => {
                    format!("`lang:{t}` is not a language tag — did you mean `lang:{code}`?")
                }
                None => format!("`lang:{t}` is not a language tag"),
            };
            errors.push(err(
                &e.span,
                message,
                Some("lang: takes an ISO 639 code, optionally with a region: `lang:en`, `lang:fr`, `lang:uk`, `lang:en-GB`"),
            ));
            return dummy();
        }
        Node::Lang {
            tag,
            label: e.to_string(),
        }
    }

    /// `stem*` and `stem~`: one prefix literal (shared by both), with `check` for `stem~`.
    fn prefix(
        &mut self,
        stem: &str,
        e: &Expr,
        scope: FieldName,
        check: Check,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        let mark = if matches!(check, Check::Any) {
            '*'
        } else {
            '~'
        };
        let toks = tokenize(stem);
        match toks.as_slice() {
            [one] if one.norm.chars().count() >= 3 => {
                let pattern = format!(" {}", one.norm);
                Node::Lit {
                    lit: self.intern(pattern, 1),
                    mask: mask_of(scope),
                    check,
                    label: leaf_label(e),
                }
            }
            [_] => {
                errors.push(err(
                    &e.span,
                    format!("`{stem}{mark}` is too short"),
                    Some(&format!("write at least 3 characters before `{mark}`")),
                ));
                dummy()
            }
            _ => {
                errors.push(err(
                    &e.span,
                    format!("`{stem}{mark}` must be a single word"),
                    Some(&format!(
                        "`{mark}` applies to one word; use a phrase or NEAR for several"
                    )),
                ));
                dummy()
            }
        }
    }

    fn words(
        &mut self,
        text: &str,
        e: &Expr,
        scope: FieldName,
        case: bool,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        let mut pattern = String::with_capacity(text.len() + 2);
        let mut ranges = Vec::new();
        for_each_token(text, |start, end, norm| {
            pattern.push(' ');
            pattern.push_str(norm);
            ranges.push(start..end);
        });
        pattern.push(' ');
        if ranges.len() > MAX_PHRASE_WORDS {
            errors.push(err(
                &e.span,
                format!(
                    "a phrase of {} words: at most {MAX_PHRASE_WORDS}",
                    ranges.len()
                ),
                Some("quote the few words that identify the story, and combine phrases with AND or NEAR"),
            ));
            return dummy();
        }
        if ranges.is_empty() {
            errors.push(err(
                &e.span,
                format!("`{e}` contains no words"),
                Some("punctuation is not searchable on its own; use a regex"),
            ));
            return dummy();
        }
        let check = if case {
            Check::Exact(
                ranges
                    .iter()
                    .map(|r| exact_form(&text[r.clone()]))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            )
        } else {
            Check::Any
        };
        let ntoks = u32::try_from(ranges.len()).unwrap_or(u32::MAX);
        Node::Lit {
            lit: self.intern(pattern, ntoks),
            mask: mask_of(scope),
            check,
            label: leaf_label(e),
        }
    }

    fn list(
        &mut self,
        name: &str,
        e: &Expr,
        scope: FieldName,
        depth: usize,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        let lists = Arc::clone(&self.lists);
        let Some(entries) = lists.get(name) else {
            let message = match suggest(name, self.lists.keys().map(String::as_str)) {
                Some(s) => format!("unknown list @{name} — did you mean @{s}?"),
                None => format!("unknown list @{name}"),
            };
            errors.push(err(
                &e.span,
                message,
                Some("lists are defined under [lists] in any rule file"),
            ));
            return dummy();
        };
        if depth >= MAX_LIST_DEPTH {
            errors.push(err(
                &e.span,
                format!("list @{name} nests more than {MAX_LIST_DEPTH} deep"),
                Some("lists may not refer to themselves, directly or indirectly"),
            ));
            return dummy();
        }
        // Errors inside the entries are reported where the entries are; here only that the use fails.
        let mut inner_errors = Vec::new();
        let items: Vec<Node> = entries
            .iter()
            .map(|x| self.node(x, scope, depth + 1, &mut inner_errors))
            .collect();
        if let Some(first) = inner_errors.first() {
            // The innermost reason and how many lists it came through: nesting each inner
            // message made a chain of N lists print N² characters (2,000 lists: 2.4 MB).
            let after = first.message.rsplit(LIST_USE).next().unwrap_or_default();
            let wrapped = first.message.contains(LIST_USE);
            let (through, cause) = match after
                .strip_prefix("(through ")
                .and_then(|r| r.split_once(" more lists) "))
            {
                Some((n, rest)) => (n.parse::<usize>().unwrap_or(0) + 1, rest),
                None => (usize::from(wrapped), after),
            };
            let message = if through == 0 {
                format!("list @{name}{LIST_USE}{cause}")
            } else {
                format!("list @{name}{LIST_USE}(through {through} more lists) {cause}")
            };
            errors.push(err(&e.span, message, first.hint.as_deref()));
        }
        Node::List {
            name: name.to_string(),
            inner: Box::new(Node::Or(items)),
        }
    }

    fn regex(
        &mut self,
        pattern: &str,
        flags: &str,
        e: &Expr,
        scope: FieldName,
        errors: &mut Vec<CompileError>,
    ) -> Node {
        let key = (pattern.to_string(), flags.to_string());
        if let Some(&re) = self.regex_ids.get(&key) {
            return Node::Regex {
                re,
                mask: mask_of(scope),
                empty: self.regexes[re as usize].is_match(""),
                label: e.to_string(),
            };
        }
        if let Some(bad) = flags.chars().find(|c| !"imsxU".contains(*c)) {
            errors.push(err(
                &e.span,
                format!("unknown regex flag `{bad}`"),
                Some("flags are i (ignore case), m (multi-line), s (dot matches newline), x (verbose), U (swap greed)"),
            ));
            return dummy();
        }
        if self.regexes.len() >= MAX_REGEXES {
            errors.push(err(
                &e.span,
                format!("too many regexes: a rule set may hold at most {MAX_REGEXES}"),
                Some("use terms, phrases and prefixes; they are all matched by one automaton"),
            ));
            return dummy();
        }
        let states = regex_states(pattern, flags);
        if states > MAX_REGEX_STATES {
            errors.push(err(
                &e.span,
                format!(
                    "regex too costly: it compiles to {states} automaton states, at most {MAX_REGEX_STATES}"
                ),
                Some("counted repetitions multiply when nested (`(a{1,100}){1,100}` is 10,000 copies of `a`) and `.` or `\\w` is several states each: use smaller bounds, `+` or `*`, or NEAR/n for words close together"),
            ));
            return dummy();
        }
        if self.regex_states + states > MAX_REGEX_STATES_TOTAL {
            errors.push(err(
                &e.span,
                format!(
                    "regex too costly: the rule set's regexes together would compile to {} automaton states, at most {MAX_REGEX_STATES_TOTAL}",
                    self.regex_states + states
                ),
                Some("use terms, phrases and prefixes where you can; they are all matched by one automaton"),
            ));
            return dummy();
        }
        let built = RegexBuilder::new(pattern)
            .case_insensitive(flags.contains('i'))
            .multi_line(flags.contains('m'))
            .dot_matches_new_line(flags.contains('s'))
            .ignore_whitespace(flags.contains('x'))
            .swap_greed(flags.contains('U'))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build();
        match built {
            Ok(re) => {
                let id = u32::try_from(self.regexes.len()).unwrap_or(u32::MAX);
                let empty = re.is_match("");
                self.regexes.push(re);
                self.regex_costs.push(states);
                self.regex_states += states;
                self.regex_ids.insert(key, id);
                Node::Regex {
                    re: id,
                    mask: mask_of(scope),
                    empty,
                    label: e.to_string(),
                }
            }
            Err(error) => {
                let detail = error.to_string();
                let last = detail
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                errors.push(err(
                    &e.span,
                    format!("bad regex: {last}"),
                    Some("regexes use the Rust regex crate's syntax (no look-around or backreferences), and must compile under 1 MiB"),
                ));
                dummy()
            }
        }
    }

    fn intern(&mut self, pattern: String, ntoks: u32) -> u32 {
        if let Some(&id) = self.lit_ids.get(&pattern) {
            return id;
        }
        let id = u32::try_from(self.lits.len()).unwrap_or(u32::MAX);
        self.lit_ids.insert(pattern.clone(), id);
        self.lits.push(Literal { pattern, ntoks });
        id
    }
}

/// How many states the regex crate's Thompson NFA for `pattern` has (built the same way, without
/// shrinking): what a search tracks at once when the lazy DFA gives up, so what its time per byte
/// grows with. Counted repetitions are written out (`(a{1,100}){1,100}` is 10,000 copies), a
/// Unicode class is a UTF-8 automaton (`.` about nine states). A pattern that does not build
/// counts 0 here; the regex build reports it.
fn regex_states(pattern: &str, flags: &str) -> usize {
    use regex_automata::nfa::thompson::{Config, NFA};
    use regex_automata::util::syntax;
    NFA::compiler()
        .syntax(
            syntax::Config::new()
                .case_insensitive(flags.contains('i'))
                .multi_line(flags.contains('m'))
                .dot_matches_new_line(flags.contains('s'))
                .ignore_whitespace(flags.contains('x'))
                .swap_greed(flags.contains('U')),
        )
        .configure(
            Config::new()
                .shrink(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
        )
        .build(pattern)
        .map_or(0, |nfa| nfa.states().len())
}

/// Language names analysts write instead of tags, for the `lang:` hint.
const LANGUAGE_NAMES: &[(&str, &str)] = &[
    ("english", "en"),
    ("french", "fr"),
    ("german", "de"),
    ("ukrainian", "uk"),
    ("russian", "ru"),
    ("polish", "pl"),
    ("italian", "it"),
    ("spanish", "es"),
    ("portuguese", "pt"),
    ("dutch", "nl"),
];

/// The host a `url:` term names, lower case, as the link's parsed host would be: an
/// internationalised name in punycode (`bücher.de` → `xn--bcher-kva.de`).
fn url_host(t: &str) -> String {
    let host = t.trim().trim_end_matches('.');
    if host.is_ascii() {
        return host.to_ascii_lowercase();
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) => d.trim_end_matches('.').to_string(),
        _ => host.to_lowercase(),
    }
}

/// Stands in for a node that failed to compile; never evaluated (the rule set is rejected).
fn dummy() -> Node {
    Node::Or(Vec::new())
}

/// `e.to_string()` for a term, phrase or prefix, written without the formatting machinery (one
/// allocation of the right size: 100,000 rules format about 350,000 labels, issue 22).
fn leaf_label(e: &Expr) -> String {
    let (open, text, close) = match &e.kind {
        ExprKind::Term(t) => ("", t, ""),
        ExprKind::Phrase(p) => ("\"", p, "\""),
        ExprKind::Prefix(p) => ("", p, "*"),
        ExprKind::Inflect(p) => ("", p, "~"),
        _ => return e.to_string(),
    };
    let mut label = String::with_capacity(open.len() + text.len() + close.len());
    label.push_str(open);
    label.push_str(text);
    label.push_str(close);
    label
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaf_labels_are_the_display_form() {
        for q in [
            "Healey",
            "\"John Healey\"",
            "heal*",
            "Гегсет~",
            "case:US",
            "/a\\/b/i",
            "x-y",
        ] {
            let e = crate::rules::syntax::parse_query(q).expect("parses");
            assert_eq!(super::leaf_label(&e), e.to_string(), "{q}");
        }
    }
}
