//! The query lexer: query text to tokens with spans. Recognises the operators, and the forms
//! analysts bring from other tools: accepts `"a b"~n`, `NEAR/nf` and `-term`, refuses the rest
//! (`?`, inner `*`, `W/n`, `PRE/n`, `^n`, `word~n`, operator typos) with a hint. No parsing here.

use std::borrow::Cow;
use std::ops::Range;

use super::{DEFAULT_NEAR, QueryError, edit_distance};

/// A token borrows its text from the query (issue 22: an allocation per token was a fifth of
/// compiling 100,000 rules); only a regex with an escaped `/` owns its pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok<'q> {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Near {
        distance: u32,
        ordered: bool,
    },
    Word(&'q str),
    Quoted(&'q str),
    /// `"a b"~n` (Brandwatch): the phrase's words within `n` tokens of each other.
    QuotedNear(&'q str, u32),
    List(&'q str),
    Regex {
        pattern: Cow<'q, str>,
        flags: &'q str,
    },
    Field(&'q str),
}

const OPERATORS: &str = "operators are upper case: AND, OR, NOT, NEAR/n, ONEAR/n";

pub(super) fn lex(q: &str) -> Result<Vec<(Tok<'_>, Range<usize>)>, QueryError> {
    let mut out: Vec<(Tok<'_>, Range<usize>)> = Vec::new();
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
            // `-Lammy` (Google, Brandwatch): NOT, at the start or after a space or `(`.
            '-' if starts_operand(q, i + 1)
                && q[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|p| p.is_whitespace() || p == '(') =>
            {
                out.push((Tok::Not, i..i + 1));
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
                let phrase = &q[i + 1..i + 1 + len];
                let end = i + len + 2;
                let (tok, end) = after_phrase(q, phrase, i..end)?;
                out.push((tok, i..end));
                i = end;
            }
            '/' => {
                let mut j = i + 1;
                let mut pattern = Cow::Borrowed("");
                let mut closed = false;
                while j < q.len() {
                    let ch = q[j..].chars().next().unwrap_or(' ');
                    if ch == '\\' && bytes.get(j + 1) == Some(&b'/') {
                        pattern.to_mut().push('/');
                        j += 2;
                        continue;
                    }
                    if ch == '/' {
                        closed = true;
                        j += 1;
                        break;
                    }
                    match &mut pattern {
                        Cow::Borrowed(b) => *b = &q[i + 1..j + ch.len_utf8()],
                        Cow::Owned(o) => o.push(ch),
                    }
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
                let flags = &q[j..j + flags_len];
                out.push((Tok::Regex { pattern, flags }, i..j + flags_len));
                i = j + flags_len;
            }
            _ => {
                // A word ends at a space, a bracket or a quote; outside a list name, also after
                // its first colon (a field prefix), and the rest is lexed on its own. Stopping at
                // the colon keeps `title:title:…` linear: each step scans only its own prefix.
                let list = c == '@';
                let len = q[i..]
                    .find(|ch: char| {
                        ch.is_whitespace() || matches!(ch, '(' | ')' | '"') || (!list && ch == ':')
                    })
                    .unwrap_or(q.len() - i);
                let word = &q[i..i + len];
                let span = i..i + len;
                i += len;
                if let Some(name) = word.strip_prefix('@') {
                    out.push((Tok::List(name), span));
                } else if q[i..].starts_with(':') {
                    i += 1;
                    out.push((Tok::Field(word), span.start..i));
                } else {
                    out.push((operator(word, &span)?, span));
                }
            }
        }
    }
    Ok(out)
}

/// Whether an operand (term, phrase, list, group, field) starts at byte `at`.
fn starts_operand(q: &str, at: usize) -> bool {
    q[at..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '"' | '(' | '@' | '/'))
}

/// What follows a closing quote: `~n` (proximity), or a refused `~` / `^n`.
fn after_phrase<'q>(
    q: &'q str,
    phrase: &'q str,
    span: Range<usize>,
) -> Result<(Tok<'q>, usize), QueryError> {
    let end = span.end;
    let rest = &q[end..];
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if let Some(tail) = rest.strip_prefix('~') {
        let n = digits(tail);
        let glued = tail[n..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == ')');
        if n == 0 || !glued {
            return Err(QueryError::new(
                span.start..end + 1 + n,
                "`~` after a phrase must be followed by a number of words",
                Some("write `\"a b\"~5` for the words within 5 of each other (as `a NEAR/5 b`)"),
            ));
        }
        let distance = near_distance(&tail[..n], &(span.start..end + 1 + n))?;
        return Ok((Tok::QuotedNear(phrase, distance), end + 1 + n));
    }
    if let Some(power) = rest.strip_prefix('^') {
        return Err(boost(end..end + 1 + digits(power)));
    }
    Ok((Tok::Quoted(phrase), end))
}

fn boost(span: Range<usize>) -> QueryError {
    QueryError::new(
        span,
        "boosts (`^n`) do not exist here: a rule matches an article or does not",
        Some("remove the `^n`; to rank, give the rule priority = \"alert\""),
    )
}

fn near_distance(digits: &str, span: &Range<usize>) -> Result<u32, QueryError> {
    digits.parse::<u32>().map_err(|_| {
        QueryError::new(
            span.clone(),
            format!("the distance `{digits}` is too large"),
            Some("NEAR distances count words; use a number below 10000, like `NEAR/50`"),
        )
    })
}

fn operator<'q>(word: &'q str, span: &Range<usize>) -> Result<Tok<'q>, QueryError> {
    match word {
        "AND" => return Ok(Tok::And),
        "OR" => return Ok(Tok::Or),
        "NOT" => return Ok(Tok::Not),
        _ => {}
    }
    let (head, slash) = match word.find('/') {
        Some(at) => (&word[..at], Some(&word[at + 1..])),
        None => (word, None),
    };
    let ordered = head == "ONEAR";
    if head == "NEAR" || ordered {
        let Some(rest) = slash else {
            return Ok(Tok::Near {
                distance: DEFAULT_NEAR,
                ordered,
            });
        };
        // `NEAR/3f` (Meltwater): in order, as ONEAR/3.
        let (digits, f) = match rest.strip_suffix('f') {
            Some(d) => (d, true),
            None => (rest, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QueryError::new(
                span.clone(),
                format!("`{word}`: expected a number of words after the slash"),
                Some(
                    "write NEAR/n with n a whole number, like `NEAR/10`; `NEAR` alone means NEAR/5",
                ),
            ));
        }
        let distance = near_distance(digits, span)?;
        return Ok(Tok::Near {
            distance,
            ordered: ordered || f,
        });
    }
    refuse(word, head, slash, span)?;
    Ok(Tok::Word(word))
}

/// Errors for words that are operators misspelt or syntax from other tools.
fn refuse(
    word: &str,
    head: &str,
    slash: Option<&str>,
    span: &Range<usize>,
) -> Result<(), QueryError> {
    let e = |message: String, hint: &str| Err(QueryError::new(span.clone(), message, Some(hint)));
    let number = slash.filter(|d| {
        let d = d.strip_suffix('f').unwrap_or(d);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    });
    if let Some(n) = number {
        let upper = head.to_ascii_uppercase();
        if upper == "NEAR" || upper == "ONEAR" {
            return e(
                format!("`{word}` is not an operator — did you mean `{upper}/{n}`?"),
                OPERATORS,
            );
        }
        if upper == "W" || upper == "PRE" {
            return e(
                format!("`{word}` is not supported — did you mean `NEAR/{n}` or `ONEAR/{n}`?"),
                "write `a NEAR/n b` for any order, `a ONEAR/n b` for `a` before `b`",
            );
        }
        if head.len() >= 3 && head.bytes().all(|b| b.is_ascii_alphabetic()) {
            for op in ["NEAR", "ONEAR"] {
                if edit_distance(&upper, op) <= 2 {
                    return e(
                        format!("unknown operator `{word}` — did you mean `{op}/{n}`?"),
                        OPERATORS,
                    );
                }
            }
        }
    }
    for op in ["NEAR", "ONEAR"] {
        if let Some(n) = word.strip_prefix(op)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return e(
                format!("unknown operator `{word}` — did you mean `{op}/{n}`?"),
                OPERATORS,
            );
        }
    }
    for (typo, fix) in [("ANDNOT", "AND NOT"), ("ORNOT", "OR NOT")] {
        if word.eq_ignore_ascii_case(typo) {
            return e(
                format!("unknown operator `{word}` — did you mean `{fix}`?"),
                "write the two operators with a space between them; to search the word, quote it",
            );
        }
    }
    if !word.contains(['?', '*', '^', '~']) {
        return Ok(());
    }
    let chars: Vec<char> = word.chars().collect();
    let alnum_near = |k: usize| {
        (k > 0 && chars[k - 1].is_alphanumeric())
            || chars.get(k + 1).is_some_and(|c| c.is_alphanumeric())
    };
    if let Some(k) = chars.iter().position(|&c| c == '?')
        && alnum_near(k)
    {
        return e(
            format!("`?` (one-character wildcard) is not supported: `{word}`"),
            "list the spellings, `(colour OR color)`, or use a regex, `/colou?r/i`",
        );
    }
    if chars.iter().rev().skip(1).any(|&c| c == '*') || (chars.len() > 1 && chars[0] == '*') {
        return e(
            format!("`*` only ends a word (a prefix): `{word}`"),
            "write the prefix as `word*` (at least 3 characters before it), or use a regex for the rest",
        );
    }
    if let Some(at) = word.find('^')
        && word[at + 1..].starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(boost(span.start + at..span.end));
    }
    if let Some(at) = word.find('~')
        && at + 1 < word.len()
    {
        return e(
            format!("`{word}`: `~` after a word means its inflected forms and ends the word"),
            "write `word~` for the word with up to 3 more letters; fuzzy matching is not supported; for proximity write `\"a b\"~5` or `a NEAR/5 b`",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        fn toks(q: &str) -> Vec<Tok<'_>> {
            lex(q)
                .unwrap_or_else(|e| panic!("{q}: {e:?}"))
                .into_iter()
                .map(|t| t.0)
                .collect()
        }
        assert_eq!(
            toks("a NEAR/3f b"),
            [
                Tok::Word("a"),
                Tok::Near {
                    distance: 3,
                    ordered: true
                },
                Tok::Word("b")
            ]
        );
        assert_eq!(toks("\"a b\"~4"), [Tok::QuotedNear("a b", 4)]);
        assert_eq!(
            toks("-a (-b) x-y - z"),
            [
                Tok::Not,
                Tok::Word("a"),
                Tok::LParen,
                Tok::Not,
                Tok::Word("b"),
                Tok::RParen,
                Tok::Word("x-y"),
                Tok::Word("-"),
                Tok::Word("z")
            ]
        );
    }
}
