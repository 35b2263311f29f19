//! Query syntax: a lexer and a recursive-descent parser from query text to an `Expr` tree with spans.
//! Knows nothing of lists' contents, articles or normalisation; every error carries a span and a hint.
//! Precedence, tight to loose: field prefix, NEAR/ONEAR, NOT, AND (explicit or implicit), OR.

use std::fmt;
use std::ops::Range;

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
    "title", "summary", "content", "text", "author", "category", "feed", "url", "lang", "case",
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
            "url" => FieldName::Url,
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Near { distance: u32, ordered: bool },
    Word(String),
    Quoted(String),
    List(String),
    Regex { pattern: String, flags: String },
    Field(String),
}

fn lex(q: &str) -> Result<Vec<(Tok, Range<usize>)>, QueryError> {
    let mut out = Vec::new();
    let bytes = q.as_bytes();
    let mut i = 0;
    while i < q.len() {
        let c = q[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        match c {
            '(' => {
                out.push((Tok::LParen, i..i + 1));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, i..i + 1));
                i += 1;
            }
            '"' => {
                let Some(len) = q[i + 1..].find('"') else {
                    return Err(QueryError::new(
                        i..q.len(),
                        "unterminated phrase",
                        Some("close the phrase with a second `\"`"),
                    ));
                };
                out.push((
                    Tok::Quoted(q[i + 1..i + 1 + len].to_string()),
                    i..i + len + 2,
                ));
                i += len + 2;
            }
            '/' => {
                let mut j = i + 1;
                let mut pattern = String::new();
                let mut closed = false;
                while j < q.len() {
                    let ch = q[j..].chars().next().unwrap_or(' ');
                    if ch == '\\' && bytes.get(j + 1) == Some(&b'/') {
                        pattern.push('/');
                        j += 2;
                        continue;
                    }
                    if ch == '/' {
                        closed = true;
                        j += 1;
                        break;
                    }
                    pattern.push(ch);
                    j += ch.len_utf8();
                }
                if !closed {
                    return Err(QueryError::new(
                        i..q.len(),
                        "unterminated regex",
                        Some("end the regex with `/` (write `\\/` for a literal slash)"),
                    ));
                }
                let flags_len = q[j..]
                    .find(|ch: char| !ch.is_ascii_alphabetic())
                    .unwrap_or(q.len() - j);
                let flags = q[j..j + flags_len].to_string();
                out.push((Tok::Regex { pattern, flags }, i..j + flags_len));
                i = j + flags_len;
            }
            _ => {
                let len = q[i..]
                    .find(|ch: char| ch.is_whitespace() || matches!(ch, '(' | ')' | '"'))
                    .unwrap_or(q.len() - i);
                let word = &q[i..i + len];
                let span = i..i + len;
                i += len;
                if let Some(name) = word.strip_prefix('@') {
                    out.push((Tok::List(name.to_string()), span));
                } else if let Some(colon) = word.find(':') {
                    out.push((
                        Tok::Field(word[..colon].to_string()),
                        span.start..span.start + colon + 1,
                    ));
                    // The rest of the word (if any) is lexed on its own: rewind to just after the colon.
                    i = span.start + colon + 1;
                } else {
                    out.push((operator(word, &span)?, span));
                }
            }
        }
    }
    Ok(out)
}

fn operator(word: &str, span: &Range<usize>) -> Result<Tok, QueryError> {
    let near = |rest: &str, ordered: bool| -> Result<Tok, QueryError> {
        if rest.is_empty() {
            return Ok(Tok::Near {
                distance: DEFAULT_NEAR,
                ordered,
            });
        }
        let digits = rest.strip_prefix('/').unwrap_or("x");
        match digits.parse::<u32>() {
            Ok(distance) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Tok::Near { distance, ordered })
            }
            _ => Err(QueryError::new(
                span.clone(),
                format!("`{word}`: expected a number of words after the slash"),
                Some(
                    "write NEAR/n with n a whole number, like `NEAR/10`; `NEAR` alone means NEAR/5",
                ),
            )),
        }
    };
    Ok(match word {
        "AND" => Tok::And,
        "OR" => Tok::Or,
        "NOT" => Tok::Not,
        w if w.starts_with("NEAR") && (w.len() == 4 || w.as_bytes()[4] == b'/') => {
            near(&w[4..], false)?
        }
        w if w.starts_with("ONEAR") && (w.len() == 5 || w.as_bytes()[5] == b'/') => {
            near(&w[5..], true)?
        }
        w => Tok::Word(w.to_string()),
    })
}

/// Parses one query. Returns every error it could find (it stops at the first syntax error).
pub fn parse_query(q: &str) -> Result<Expr, Vec<QueryError>> {
    let toks = lex(q).map_err(|e| vec![e])?;
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
        Ok(e) if p.soft.is_empty() => Ok(e),
        Ok(_) => Err(p.soft),
        Err(e) => {
            p.soft.push(e);
            Err(p.soft)
        }
    }
}

struct Parser {
    toks: Vec<(Tok, Range<usize>)>,
    pos: usize,
    end: usize,
    /// Errors that do not stop parsing (an unknown field name).
    soft: Vec<QueryError>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn here(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.end..self.end, |t| t.1.clone())
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
            self.pos += 1;
            let inner = self.unary()?;
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
            Tok::Word(w) => match w.strip_suffix('*') {
                Some(stem) if !stem.contains('*') => ExprKind::Prefix(stem.to_string()),
                _ => ExprKind::Term(w),
            },
            Tok::Quoted(p) => ExprKind::Phrase(p),
            Tok::List(name) => ExprKind::List(name),
            Tok::Regex { pattern, flags } => ExprKind::Regex { pattern, flags },
            Tok::LParen => {
                let inner = self.or()?;
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
            Tok::Field(name) => return self.field(&name, span),
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
                Some(Tok::Word(w)) => w,
                Some(Tok::Quoted(p)) => p,
                _ => {
                    return Err(QueryError::new(
                        inner_span,
                        "`case:` applies to a word or a quoted phrase",
                        Some("write `case:US` or `case:\"US Army\"`"),
                    ));
                }
            };
            self.pos += 1;
            if text.ends_with('*') {
                return Err(QueryError::new(
                    inner_span,
                    "`case:` cannot be combined with a prefix `*`",
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
                    Some("fields are title, summary, content, text, author, category, feed, url, lang and case; to search a literal colon, quote it (\"10:30\")"),
                ));
                FieldName::Text
            }
        };
        let inner = self.primary(None)?;
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
        | ExprKind::Case(_)
        | ExprKind::List(_) => Ok(()),
        ExprKind::Or(items) => items.iter().try_for_each(check_near_operand),
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
}
