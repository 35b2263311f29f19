//! Query syntax: a lexer and a recursive-descent parser from query text to an `Expr` tree with spans.
//! Knows nothing of lists' contents, articles or normalisation; every error carries a span and a hint.
//! Precedence, tight to loose: field prefix, NEAR/ONEAR, NOT, AND (explicit or implicit), OR.

mod lex;

use std::fmt;
use std::ops::Range;

use lex::{Tok, lex};

/// A parsed query node with its byte span in the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// An unquoted word as written (`Healey`, `cease-fire`); may normalise to several tokens.
    Term(String),
    /// A quoted phrase's contents.
    Phrase(String),
    /// A word written with a trailing `*`, without the star.
    Prefix(String),
    /// A word written with a trailing `~`, without it: the word plus at most
    /// `INFLECTION_LETTERS` more letters (`Гегсет~` matches `Гегсетом`).
    Inflect(String),
    /// `case:US` or `case:"US Army"`.
    Case(String),
    /// `@name`.
    List(String),
    /// `/pattern/flags`.
    Regex {
        pattern: String,
        flags: String,
    },
    Field {
        field: FieldName,
        inner: Box<Expr>,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Near {
        left: Box<Expr>,
        right: Box<Expr>,
        distance: u32,
        ordered: bool,
    },
}

/// A field a query may be scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldName {
    Title,
    Summary,
    Content,
    /// Title, summary and content, each separately (the default).
    Text,
    Author,
    Category,
    Feed,
    Url,
    Lang,
}

pub const FIELD_NAMES: &[&str] = &[
    "title", "summary", "content", "text", "author", "category", "feed", "url", "site", "lang",
    "case",
];

impl FieldName {
    fn parse(name: &str) -> Option<FieldName> {
        Some(match name {
            "title" => FieldName::Title,
            "summary" => FieldName::Summary,
            "content" => FieldName::Content,
            "text" => FieldName::Text,
            "author" => FieldName::Author,
            "category" => FieldName::Category,
            "feed" => FieldName::Feed,
            "url" | "site" => FieldName::Url,
            "lang" => FieldName::Lang,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FieldName::Title => "title",
            FieldName::Summary => "summary",
            FieldName::Content => "content",
            FieldName::Text => "text",
            FieldName::Author => "author",
            FieldName::Category => "category",
            FieldName::Feed => "feed",
            FieldName::Url => "url",
            FieldName::Lang => "lang",
        }
    }
}

/// NEAR with no distance means NEAR/5 (Meltwater's and Brandwatch's habit).
pub const DEFAULT_NEAR: u32 = 5;

/// `word~` matches the word followed by at most this many letters (an inflectional ending).
pub const INFLECTION_LETTERS: usize = 3;

/// How deep a query may nest: parentheses, `NOT` (and `-`) and field prefixes each add a level.
/// Real queries nest a handful of levels; the bound keeps every walk over the tree (compile,
/// evaluate, explain, display, drop) far from the stack's end (issue 16 item 1).
pub const MAX_QUERY_DEPTH: usize = 64;

/// The longest query (or list entry), in bytes: several times what other monitoring tools allow
/// (a few thousand characters), so a real query never meets it, while a pasted article or a
/// generated monster is refused before it is parsed (issue 16 item 10).
pub const MAX_QUERY_BYTES: usize = 16 << 10;

/// `"a b c"~n` becomes every pair of its words: at most this many words (120 pairs).
pub const MAX_PHRASE_NEAR_WORDS: usize = 16;

/// A problem in a query, located by a byte span of the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl QueryError {
    fn new(span: Range<usize>, message: impl Into<String>, hint: Option<&str>) -> QueryError {
        QueryError {
            span,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

pub const NEAR_OPERANDS: &str = "NEAR operands must be terms, phrases, lists or OR-groups";
const NEAR_HINT: &str = "put the AND or NOT outside the proximity: `(a NEAR/5 b) AND c`";

/// Parses one query. Returns every error it could find (it stops at the first syntax error).
pub fn parse_query(q: &str) -> Result<Expr, Vec<QueryError>> {
    parse_with(q, false).map(|(e, _)| e)
}

/// As `parse_query`, with the query's `warnings` found from the same tokens (one lex per query).
pub(crate) fn parse_query_warned(q: &str) -> Result<(Expr, Vec<QueryError>), Vec<QueryError>> {
    parse_with(q, true)
}

fn parse_with(q: &str, warn: bool) -> Result<(Expr, Vec<QueryError>), Vec<QueryError>> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(vec![QueryError::new(
            0..0,
            format!(
                "the query is {} KiB long; a query may be at most {} KiB",
                q.len().div_ceil(1024),
                MAX_QUERY_BYTES >> 10
            ),
            Some(
                "move long alternatives into lists ([lists]), whose entries are queries of their own",
            ),
        )]);
    }
    let toks = lex(q).map_err(|e| vec![e])?;
    let warned = if warn {
        token_warnings(&toks)
    } else {
        Vec::new()
    };
    if toks.is_empty() {
        return Err(vec![QueryError::new(
            0..q.len(),
            "empty query",
            Some("write at least one term, like `Healey`"),
        )]);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: q.len(),
        soft: Vec::new(),
        depth: 0,
    };
    let result = p.or().and_then(|e| match p.toks.get(p.pos) {
        None => Ok(e),
        Some((Tok::RParen, span)) => Err(QueryError::new(
            span.clone(),
            "unbalanced parentheses: this `)` has no matching `(`",
            Some("remove it or add the missing `(`"),
        )),
        Some((_, span)) => Err(QueryError::new(span.clone(), "unexpected token", None)),
    });
    match result {
        Ok(e) if p.soft.is_empty() => Ok((e, warned)),
        Ok(_) => Err(p.soft),
        Err(e) => {
            p.soft.push(e);
            Err(p.soft)
        }
    }
}

struct Parser<'q> {
    toks: Vec<(Tok<'q>, Range<usize>)>,
    pos: usize,
    end: usize,
    /// Errors that do not stop parsing (an unknown field name).
    soft: Vec<QueryError>,
    /// Open levels of nesting at `pos`; never above `MAX_QUERY_DEPTH`, so recursion is bounded.
    depth: usize,
}

impl<'q> Parser<'q> {
    fn peek(&self) -> Option<&Tok<'q>> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn here(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.end..self.end, |t| t.1.clone())
    }

    /// Enters one level of nesting at the token `span`, refusing to go past `MAX_QUERY_DEPTH`.
    fn enter(&mut self, span: Range<usize>) -> Result<(), QueryError> {
        if self.depth >= MAX_QUERY_DEPTH {
            return Err(QueryError::new(
                span,
                format!(
                    "the query nests more than {MAX_QUERY_DEPTH} levels deep (parentheses, NOT and field prefixes)"
                ),
                Some(
                    "flatten it: `a OR b OR c` needs no parentheses, `NOT NOT a` is `a`; move long alternatives into a list",
                ),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(join(items, ExprKind::Or))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                    items.push(self.unary()?);
                }
                Some(
                    Tok::Not
                    | Tok::LParen
                    | Tok::Word(_)
                    | Tok::Quoted(_)
                    | Tok::QuotedNear(..)
                    | Tok::List(_)
                    | Tok::Regex { .. }
                    | Tok::Field(_),
                ) => items.push(self.unary()?),
                _ => break,
            }
        }
        Ok(join(items, ExprKind::And))
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.peek() == Some(&Tok::Not) {
            let start = self.here().start;
            self.enter(self.here())?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            let span = start..inner.span.end;
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.near()
    }

    fn near(&mut self) -> Result<Expr, QueryError> {
        let left = self.primary(None)?;
        let Some(&Tok::Near { distance, ordered }) = self.peek() else {
            return Ok(left);
        };
        let op_span = self.here();
        check_near_operand(&left)?;
        self.pos += 1;
        let right = self.primary(Some(&op_span))?;
        check_near_operand(&right)?;
        if let Some(Tok::Near { .. }) = self.peek() {
            return Err(QueryError::new(
                self.here(),
                "proximity chains like `a NEAR b NEAR c` are not allowed",
                Some("combine two proximities with AND: `(a NEAR b) AND (b NEAR c)`"),
            ));
        }
        let span = left.span.start..right.span.end;
        Ok(Expr {
            kind: ExprKind::Near {
                left: Box::new(left),
                right: Box::new(right),
                distance,
                ordered,
            },
            span,
        })
    }

    /// `after_near` is the span of a NEAR operator this primary is the right operand of.
    fn primary(&mut self, after_near: Option<&Range<usize>>) -> Result<Expr, QueryError> {
        let span = self.here();
        let Some(tok) = self.peek().cloned() else {
            let what = if after_near.is_some() {
                "NEAR needs a right operand"
            } else {
                "the query ends where a term was expected"
            };
            return Err(QueryError::new(
                span,
                what,
                Some("add a term, phrase or list"),
            ));
        };
        self.pos += 1;
        let kind = match tok {
            Tok::Word(w) => {
                if let Some(stem) = w.strip_suffix('*') {
                    ExprKind::Prefix(stem.to_string())
                } else if let Some(stem) = w.strip_suffix('~') {
                    ExprKind::Inflect(stem.to_string())
                } else {
                    ExprKind::Term(w.to_string())
                }
            }
            Tok::Quoted(p) => ExprKind::Phrase(p.to_string()),
            Tok::QuotedNear(p, distance) => return phrase_near(p, distance, span),
            Tok::List(name) => ExprKind::List(name.to_string()),
            Tok::Regex { pattern, flags } => ExprKind::Regex {
                pattern: pattern.into_owned(),
                flags: flags.to_string(),
            },
            Tok::LParen => {
                self.enter(span.clone())?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(QueryError::new(
                        span,
                        "unbalanced parentheses: this `(` is never closed",
                        Some("add the missing `)`"),
                    ));
                }
                let end = self.here().end;
                self.pos += 1;
                return Ok(Expr {
                    kind: inner.kind,
                    span: span.start..end,
                });
            }
            Tok::Field(name) => return self.field(name, span),
            Tok::RParen => {
                return Err(QueryError::new(
                    span,
                    "unbalanced parentheses: this `)` has no matching `(`",
                    Some("remove it, or add the missing `(` or the term before it"),
                ));
            }
            Tok::Not if after_near.is_some() => {
                return Err(QueryError::new(span, NEAR_OPERANDS, Some(NEAR_HINT)));
            }
            Tok::And | Tok::Or | Tok::Not | Tok::Near { .. } => {
                return Err(QueryError::new(
                    span,
                    "an operator is missing its operand here",
                    Some(
                        "operators are upper case; write a term between two operators, or quote the word (`\"and\"`)",
                    ),
                ));
            }
        };
        Ok(Expr { kind, span })
    }

    fn field(&mut self, name: &str, span: Range<usize>) -> Result<Expr, QueryError> {
        let glued = self
            .toks
            .get(self.pos)
            .is_some_and(|t| t.1.start == span.end);
        if !glued {
            return Err(QueryError::new(
                span,
                format!("`{name}:` must be followed directly by what it applies to"),
                Some("write `title:Healey` or `title:(a OR b)`, without a space after the colon"),
            ));
        }
        if name == "case" {
            let inner_span = self.here();
            let text = match self.peek().cloned() {
                Some(Tok::Word(w)) => w.to_string(),
                Some(Tok::Quoted(p)) => p.to_string(),
                _ => {
                    return Err(QueryError::new(
                        inner_span,
                        "`case:` applies to a word or a quoted phrase",
                        Some("write `case:US` or `case:\"US Army\"`"),
                    ));
                }
            };
            self.pos += 1;
            if text.ends_with('*') || text.ends_with('~') {
                return Err(QueryError::new(
                    inner_span,
                    "`case:` cannot be combined with a prefix `*` or inflection `~`",
                    Some("write the whole word, or use a regex like /US\\w*/"),
                ));
            }
            return Ok(Expr {
                kind: ExprKind::Case(text),
                span: span.start..inner_span.end,
            });
        }
        let field = match FieldName::parse(name) {
            Some(f) => f,
            None => {
                let suggestion = suggest(name, FIELD_NAMES.iter().copied());
                let message = match &suggestion {
                    Some(s) => format!("unknown field `{name}:` — did you mean `{s}:`?"),
                    None => format!("unknown field `{name}:`"),
                };
                self.soft.push(QueryError::new(
                    span.clone(),
                    message,
                    Some("fields are title, summary, content, text, author, category, feed, url (or site), lang and case; to search a literal colon, quote it (\"10:30\")"),
                ));
                FieldName::Text
            }
        };
        self.enter(span.clone())?;
        let inner = self.primary(None)?;
        self.depth -= 1;
        let end = inner.span.end;
        Ok(Expr {
            kind: ExprKind::Field {
                field,
                inner: Box::new(inner),
            },
            span: span.start..end,
        })
    }
}

fn check_near_operand(e: &Expr) -> Result<(), QueryError> {
    match &e.kind {
        ExprKind::Term(_)
        | ExprKind::Phrase(_)
        | ExprKind::Prefix(_)
        | ExprKind::Inflect(_)
        | ExprKind::Case(_)
        | ExprKind::List(_) => Ok(()),
        ExprKind::Or(items) => items.iter().try_for_each(check_near_operand),
        ExprKind::Regex { .. } => Err(QueryError::new(
            e.span.clone(),
            format!("{NEAR_OPERANDS}; a regex cannot be one"),
            Some(
                "combine it with AND instead: `(a NEAR/5 b) AND /re/`, or AND NOT to exclude; or write the distance into the regex",
            ),
        )),
        ExprKind::Field { field, inner } if !matches!(field, FieldName::Url | FieldName::Lang) => {
            check_near_operand(inner)
        }
        _ => Err(QueryError::new(
            e.span.clone(),
            NEAR_OPERANDS,
            Some(NEAR_HINT),
        )),
    }
}

fn join(mut items: Vec<Expr>, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if items.len() == 1 {
        return items.pop().unwrap_or_else(|| Expr {
            kind: ExprKind::And(Vec::new()),
            span: 0..0,
        });
    }
    let span = items[0].span.start..items[items.len() - 1].span.end;
    Expr {
        kind: make(items),
        span,
    }
}

/// `"a b c"~n` (Brandwatch): every pair of the phrase's words within `n` tokens, any order.
fn phrase_near(phrase: &str, distance: u32, span: Range<usize>) -> Result<Expr, QueryError> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    if words.len() < 2 {
        return Err(QueryError::new(
            span,
            "`\"…\"~n` needs at least two words in the quotes",
            Some("write the word alone, or `word~` for its inflected forms"),
        ));
    }
    if words.len() > MAX_PHRASE_NEAR_WORDS {
        return Err(QueryError::new(
            span,
            format!(
                "`\"…\"~n` with {} words: at most {MAX_PHRASE_NEAR_WORDS} (every pair of words becomes a proximity)",
                words.len()
            ),
            Some("keep the few words that matter, or combine proximities with AND"),
        ));
    }
    let term = |w: &str| Expr {
        kind: ExprKind::Term(w.to_string()),
        span: span.clone(),
    };
    let mut pairs = Vec::new();
    for (i, a) in words.iter().enumerate() {
        for b in &words[i + 1..] {
            pairs.push(Expr {
                kind: ExprKind::Near {
                    left: Box::new(term(a)),
                    right: Box::new(term(b)),
                    distance,
                    ordered: false,
                },
                span: span.clone(),
            });
        }
    }
    Ok(join(pairs, ExprKind::And))
}

/// Lower-case `and`, `or`, `not`, `near` between two terms: searched as words, which is rarely
/// what was meant. Not errors (the spec keeps them words), warnings for `check`.
pub fn warnings(q: &str) -> Vec<QueryError> {
    lex(q).map(|toks| token_warnings(&toks)).unwrap_or_default()
}

fn token_warnings(toks: &[(Tok<'_>, Range<usize>)]) -> Vec<QueryError> {
    let ends = |t: &Tok| {
        matches!(
            t,
            Tok::Word(_) | Tok::Quoted(_) | Tok::QuotedNear(..) | Tok::List(_) | Tok::RParen
        )
    };
    let starts = |t: &Tok| {
        matches!(
            t,
            Tok::Word(_)
                | Tok::Quoted(_)
                | Tok::QuotedNear(..)
                | Tok::List(_)
                | Tok::LParen
                | Tok::Field(_)
                | Tok::Regex { .. }
        )
    };
    let mut out = Vec::new();
    for w in toks.windows(3) {
        let (Tok::Word(word), span) = &w[1] else {
            continue;
        };
        // ASCII case folding is enough: no other character lower-cases into these four words.
        let Some(op) = ["AND", "OR", "NOT", "NEAR"]
            .into_iter()
            .find(|op| word.eq_ignore_ascii_case(op))
        else {
            continue;
        };
        if !ends(&w[0].0) || !starts(&w[2].0) {
            continue;
        }
        out.push(QueryError {
            span: span.clone(),
            message: format!("`{word}` is searched as a word, not as the operator {op}"),
            hint: Some(format!(
                "write `{op}` for the operator; to search the word on purpose, quote it (`\"{word}\"`)"
            )),
        });
    }
    out
}

/// The closest candidate to `word` within a small edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Term(t) => f.write_str(t),
            ExprKind::Phrase(p) => write!(f, "\"{p}\""),
            ExprKind::Prefix(p) => write!(f, "{p}*"),
            ExprKind::Inflect(p) => write!(f, "{p}~"),
            ExprKind::Case(t) if t.contains(char::is_whitespace) => write!(f, "case:\"{t}\""),
            ExprKind::Case(t) => write!(f, "case:{t}"),
            ExprKind::List(n) => write!(f, "@{n}"),
            ExprKind::Regex { pattern, flags } => {
                write!(f, "/{}/{flags}", pattern.replace('/', "\\/"))
            }
            ExprKind::Field { field, inner } => write!(f, "{}:{}", field.as_str(), Paren(inner)),
            ExprKind::And(items) => write_joined(f, items, " AND "),
            ExprKind::Or(items) => write_joined(f, items, " OR "),
            ExprKind::Not(inner) => write!(f, "NOT {}", Paren(inner)),
            ExprKind::Near {
                left,
                right,
                distance,
                ordered,
            } => {
                let op = if *ordered { "ONEAR" } else { "NEAR" };
                write!(f, "{} {op}/{distance} {}", Paren(left), Paren(right))
            }
        }
    }
}

/// Displays compound expressions in parentheses so the printed query parses back the same.
struct Paren<'a>(&'a Expr);

impl fmt::Display for Paren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            ExprKind::And(_) | ExprKind::Or(_) | ExprKind::Not(_) | ExprKind::Near { .. } => {
                write!(f, "({})", self.0)
            }
            _ => write!(f, "{}", self.0),
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{}", Paren(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_round_trips() {
        let cases = [
            (
                "Healey AND NOT Lammy NEAR/3 Hegseth",
                "Healey AND (NOT (Lammy NEAR/3 Hegseth))",
            ),
            ("a b OR c", "(a AND b) OR c"),
            ("title:(a OR b) c", "title:(a OR b) AND c"),
            ("a NEAR b", "a NEAR/5 b"),
            ("a ONEAR/0 \"x y\"", "a ONEAR/0 \"x y\""),
            ("case:US mineral*", "case:US AND mineral*"),
            ("/minerals?\\s+deal/i", "/minerals?\\s+deal/i"),
            ("Гегсет~ -Lammy", "Гегсет~ AND (NOT Lammy)"),
            ("\"a b\"~3", "a NEAR/3 b"),
            (
                "\"a b c\"~2",
                "(a NEAR/2 b) AND (a NEAR/2 c) AND (b NEAR/2 c)",
            ),
            ("a NEAR/2f b", "a ONEAR/2 b"),
            ("site:bbc.co.uk", "url:bbc.co.uk"),
        ];
        for (q, want) in cases {
            let e = parse_query(q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
            assert_eq!(e.to_string(), want, "{q}");
        }
    }

    #[test]
    fn errors() {
        let cases = [
            ("(a OR b", "never closed"),
            ("a OR b)", "no matching"),
            ("a NEAR (b AND c)", NEAR_OPERANDS),
            ("a NEAR NOT b", NEAR_OPERANDS),
            ("a NEAR b NEAR c", "chains"),
            ("a NEAR/x b", "expected a number"),
            ("a NEAR/99999999999 b", "too large"),
            ("a NAER/3 b", "did you mean `NEAR/3`"),
            ("a near/3 b", "did you mean `NEAR/3`"),
            ("a NEAR3 b", "did you mean `NEAR/3`"),
            ("a ONAER/2 b", "did you mean `ONEAR/2`"),
            ("a ANDNOT b", "did you mean `AND NOT`"),
            ("a W/3 b", "did you mean `NEAR/3`"),
            ("colo?r", "wildcard"),
            ("*ukraine", "only ends a word"),
            ("Healey~2", "inflected forms"),
            ("Healey^2", "boosts"),
            ("\"a b\"^2", "boosts"),
            ("\"a\"~2", "at least two words"),
            ("titel:x", "did you mean `title:`"),
            ("\"open", "unterminated phrase"),
            ("", "empty query"),
            ("a AND", "ends where"),
        ];
        for (q, want) in cases {
            let errs = parse_query(q).expect_err(q);
            assert!(
                errs.iter().any(|e| e.message.contains(want)),
                "{q}: {errs:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded_at_the_limit() {
        let nest = |n: usize| {
            [
                format!("{}a{}", "(".repeat(n), ")".repeat(n)),
                format!("x {}a", "NOT ".repeat(n)),
                format!("x {}a{}", "-(".repeat(n), ")".repeat(n)),
                format!("{}a", "title:".repeat(n)),
            ]
        };
        for q in nest(MAX_QUERY_DEPTH / 2) {
            assert!(parse_query(&q).is_ok(), "{q}");
        }
        for q in nest(MAX_QUERY_DEPTH + 1) {
            let errs = parse_query(&q).expect_err(&q);
            assert!(
                errs.iter()
                    .any(|e| e.message.contains("more than 64 levels")),
                "{q}: {errs:?}"
            );
        }
    }
}
