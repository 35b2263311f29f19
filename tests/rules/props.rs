//! Property tests for the rule language: the compiled matcher agrees with a deliberately simple
//! reference evaluator (no automaton, no index: nested loops over hand-written tokens) on random
//! queries and articles; the parser and loader never panic; tokens always point into the original text.

use std::path::PathBuf;

use newswatch::model::{Article, FeedMeta};
use newswatch::rules::syntax::parse_query;
use newswatch::rules::text::{Token, tokenize};
use newswatch::rules::{LiteralSearch, RuleSet};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Text,
    Title,
    Summary,
    Content,
}

/// A generated query, evaluated directly by `reference` and printed for the real parser.
#[derive(Debug, Clone)]
enum Q {
    Term(&'static str),
    Phrase(&'static str, &'static str),
    Prefix(&'static str),
    /// `stem~`: the stem plus at most three letters.
    Inflect(&'static str),
    Case(&'static str),
    /// `"a b"~n`: as `a NEAR/n b`.
    PhraseNear(&'static str, &'static str, u32),
    /// `-q`: as `NOT q`.
    Minus(Box<Q>),
    Field(Scope, Box<Q>),
    And(Box<Q>, Box<Q>),
    Or(Box<Q>, Box<Q>),
    Not(Box<Q>),
    Near(Box<Q>, Box<Q>, u32, bool),
}

const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "alphabet", "l", "oeuvre"];
const CASED: &[&str] = &["Alpha", "alpha", "BETA", "Œuvre"];
const PREFIXES: &[&str] = &["alp", "bet", "gam", "oeu"];
/// Text words and, written by hand (not by the library's tokenizer), the tokens each one is:
/// (original text, normalised form). Elision splits `l'alpha`; `ł`, `œ`, `ø` fold.
#[rustfmt::skip]
const TEXT_WORDS: &[(&str, &[(&str, &str)])] = &[
    ("alpha", &[("alpha", "alpha")]), ("Alpha", &[("Alpha", "alpha")]),
    ("ALPHA", &[("ALPHA", "alpha")]), ("beta", &[("beta", "beta")]),
    ("Beta's", &[("Beta", "beta")]), ("gamma", &[("gamma", "gamma")]),
    ("delta", &[("delta", "delta")]), ("alphabet", &[("alphabet", "alphabet")]),
    ("x", &[("x", "x")]), ("y", &[("y", "y")]), ("BETA", &[("BETA", "beta")]),
    ("l'alpha", &[("l", "l"), ("alpha", "alpha")]),
    ("D’Alpha", &[("D", "d"), ("Alpha", "alpha")]),
    ("dell'beta", &[("dell", "dell"), ("beta", "beta")]),
    ("O'alpha", &[("O'alpha", "o'alpha")]),
    ("ałpha", &[("ałpha", "alpha")]), ("ĄLPHA", &[("ĄLPHA", "alpha")]),
    ("Œuvre", &[("Œuvre", "oeuvre")]), ("bøta", &[("bøta", "bota")]),
    ("gammas", &[("gammas", "gammas")]), ("Betaovych", &[("Betaovych", "betaovych")]),
];
const SEPARATORS: &[&str] = &[" ", " ", " ", ". ", ", ", "-", " — "];

fn print(q: &Q) -> String {
    match q {
        Q::Term(w) => (*w).to_string(),
        Q::Phrase(a, b) => format!("\"{a} {b}\""),
        Q::Prefix(p) => format!("{p}*"),
        Q::Inflect(p) => format!("{p}~"),
        Q::Case(w) => format!("case:{w}"),
        Q::PhraseNear(a, b, n) => format!("\"{a} {b}\"~{n}"),
        Q::Minus(inner) if matches!(**inner, Q::Minus(_)) => format!("-({})", print(inner)),
        Q::Minus(inner) => format!("-{}", print(inner)),
        Q::Field(s, inner) => {
            let name = match s {
                Scope::Text => "text",
                Scope::Title => "title",
                Scope::Summary => "summary",
                Scope::Content => "content",
            };
            format!("{name}:({})", print(inner))
        }
        Q::And(a, b) => format!("({} AND {})", print(a), print(b)),
        Q::Or(a, b) => format!("({} OR {})", print(a), print(b)),
        Q::Not(a) => format!("(NOT {})", print(a)),
        Q::Near(a, b, n, ordered) => {
            let op = if *ordered { "ONEAR" } else { "NEAR" };
            format!("({} {op}/{n} {})", print(a), print(b))
        }
    }
}

fn positional() -> impl Strategy<Value = Q> {
    let leaf = prop_oneof![
        proptest::sample::select(WORDS).prop_map(Q::Term),
        (
            proptest::sample::select(WORDS),
            proptest::sample::select(WORDS)
        )
            .prop_map(|(a, b)| Q::Phrase(a, b)),
        proptest::sample::select(PREFIXES).prop_map(Q::Prefix),
        proptest::sample::select(PREFIXES).prop_map(Q::Inflect),
        proptest::sample::select(CASED).prop_map(Q::Case),
    ];
    leaf.prop_recursive(2, 4, 2, |inner| {
        (inner.clone(), inner).prop_map(|(a, b)| Q::Or(Box::new(a), Box::new(b)))
    })
}

fn query() -> impl Strategy<Value = Q> {
    let scope = prop_oneof![
        Just(Scope::Text),
        Just(Scope::Title),
        Just(Scope::Summary),
        Just(Scope::Content)
    ];
    let base = prop_oneof![
        3 => positional(),
        2 => (positional(), positional(), 0u32..4, any::<bool>())
            .prop_map(|(a, b, n, o)| Q::Near(Box::new(a), Box::new(b), n, o)),
        1 => (proptest::sample::select(WORDS), proptest::sample::select(WORDS), 0u32..4)
            .prop_map(|(a, b, n)| Q::PhraseNear(a, b, n)),
    ];
    base.prop_recursive(3, 12, 2, move |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Q::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Q::Or(Box::new(a), Box::new(b))),
            inner.clone().prop_map(|a| Q::Not(Box::new(a))),
            inner.clone().prop_map(|a| Q::Minus(Box::new(a))),
            (scope.clone(), inner).prop_map(|(s, a)| Q::Field(s, Box::new(a))),
        ]
    })
}

/// A field's text and its tokens, from the hand-written table.
fn field_text() -> impl Strategy<Value = (String, Vec<Token>)> {
    proptest::collection::vec(
        (
            proptest::sample::select(TEXT_WORDS),
            proptest::sample::select(SEPARATORS),
        ),
        0..10,
    )
    .prop_map(|parts| {
        let mut text = String::new();
        let mut toks = Vec::new();
        for ((word, parts), sep) in parts {
            let base = text.len();
            let mut at = 0;
            for (original, norm) in parts {
                let start = at + word[at..].find(original).unwrap_or(0);
                toks.push(Token {
                    start: base + start,
                    end: base + start + original.len(),
                    norm: (*norm).to_string(),
                });
                at = start + original.len();
            }
            text.push_str(word);
            text.push_str(sep);
        }
        (text, toks)
    })
}

/// A longer field: several `field_text`s one after another (past the matcher's scan batches).
fn long_field_text() -> impl Strategy<Value = (String, Vec<Token>)> {
    proptest::collection::vec(field_text(), 1..8).prop_map(|parts| {
        let (mut text, mut toks) = (String::new(), Vec::new());
        for (part, part_toks) in parts {
            let base = text.len();
            toks.extend(part_toks.into_iter().map(|t| Token {
                start: t.start + base,
                end: t.end + base,
                norm: t.norm,
            }));
            text.push_str(&part);
        }
        (text, toks)
    })
}

/// The article's three text fields, tokenised.
struct Fields {
    texts: [String; 3],
    toks: [Vec<Token>; 3],
}

fn in_scope(scope: Scope, field: usize) -> bool {
    match scope {
        Scope::Text => true,
        Scope::Title => field == 0,
        Scope::Summary => field == 1,
        Scope::Content => field == 2,
    }
}

/// (field, first token, token count) of every occurrence of a positional query.
fn occurrences(q: &Q, scope: Scope, f: &Fields) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for field in (0..3).filter(|&i| in_scope(scope, i)) {
        let toks = &f.toks[field];
        for i in 0..toks.len() {
            let hit = match q {
                Q::Term(w) => Some(toks[i].norm == *w).filter(|b| *b).map(|_| 1),
                Q::Phrase(a, b) => {
                    (i + 1 < toks.len() && toks[i].norm == *a && toks[i + 1].norm == *b)
                        .then_some(2)
                }
                Q::Prefix(p) => toks[i].norm.starts_with(p).then_some(1),
                Q::Inflect(p) => toks[i]
                    .norm
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.chars().count() <= 3)
                    .then_some(1),
                Q::Case(w) => {
                    let original = &f.texts[field][toks[i].start..toks[i].end];
                    (original == *w).then_some(1)
                }
                _ => None,
            };
            if let Some(n) = hit {
                out.push((field, i, n));
            }
        }
    }
    match q {
        Q::Or(a, b) => {
            out.extend(occurrences(a, scope, f));
            out.extend(occurrences(b, scope, f));
        }
        Q::Field(s, inner) => out.extend(occurrences(inner, *s, f)),
        _ => {}
    }
    out
}

fn reference(q: &Q, scope: Scope, f: &Fields) -> bool {
    match q {
        Q::Term(_) | Q::Phrase(..) | Q::Prefix(_) | Q::Inflect(_) | Q::Case(_) => {
            !occurrences(q, scope, f).is_empty()
        }
        Q::PhraseNear(a, b, n) => reference(
            &Q::Near(Box::new(Q::Term(a)), Box::new(Q::Term(b)), *n, false),
            scope,
            f,
        ),
        Q::Minus(a) => !reference(a, scope, f),
        Q::Field(s, inner) => reference(inner, *s, f),
        Q::And(a, b) => reference(a, scope, f) && reference(b, scope, f),
        Q::Or(a, b) => reference(a, scope, f) || reference(b, scope, f),
        Q::Not(a) => !reference(a, scope, f),
        Q::Near(a, b, n, ordered) => {
            let ls = occurrences(a, scope, f);
            let rs = occurrences(b, scope, f);
            ls.iter().any(|l| {
                rs.iter().any(|r| {
                    let (l_end, r_end) = (l.1 + l.2, r.1 + r.2);
                    l.0 == r.0
                        && if l_end <= r.1 {
                            r.1 - l_end <= *n as usize
                        } else if r_end <= l.1 {
                            !ordered && l.1 - r_end <= *n as usize
                        } else {
                            false
                        }
                })
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn matcher_agrees_with_reference(q in query(), (title, title_toks) in field_text(), (summary, summary_toks) in field_text(), (content, content_toks) in field_text()) {
        let text = print(&q);
        let toml = format!("[[rule]]\nid = \"r\"\nquery = '''{text}'''\nallow_broad = true\n");
        let set = RuleSet::from_sources(&[(PathBuf::from("p.toml"), toml)])
            .map_err(|d| TestCaseError::fail(format!("{text}: {d}")))?;
        let fields = Fields {
            toks: [title_toks, summary_toks, content_toks],
            texts: [title.clone(), summary.clone(), content.clone()],
        };
        let article = Article { title, summary, content, ..Article::default() };
        let got = !set.match_article_unfiltered(&article, &FeedMeta::default()).is_empty();
        let want = reference(&q, Scope::Text, &fields);
        prop_assert_eq!(got, want, "query {} on {:?}", text, fields.texts);
    }

    /// Issue 22: many rules in one set share the literals' search (the DFA scan or the token
    /// index, both tried) and the pre-filter (trigger lists, required groups, each rule
    /// considered once), and articles matched one after another share the thread's buffers:
    /// every rule's verdict is still the reference's, article by article, and its hits are
    /// those it has alone in a set.
    #[test]
    fn a_rule_set_agrees_with_the_reference_rule_by_rule(
        qs in proptest::collection::vec(query(), 1..8),
        articles in proptest::collection::vec((field_text(), field_text(), long_field_text()), 1..4),
    ) {
        let texts: Vec<String> = qs.iter().map(print).collect();
        let toml = |rules: &[(usize, &String)]| -> String {
            rules
                .iter()
                .map(|(i, t)| format!("[[rule]]\nid = \"r{i}\"\nquery = '''{t}'''\nallow_broad = true\n"))
                .collect()
        };
        let all: Vec<(usize, &String)> = texts.iter().enumerate().collect();
        // The set's literals searched both ways: the DFA scan and the token index.
        let mut sets = Vec::new();
        for search in [LiteralSearch::Automaton, LiteralSearch::Tokens] {
            let set = RuleSet::from_sources(&[(PathBuf::from("p.toml"), toml(&all))])
                .map_err(|d| TestCaseError::fail(format!("{texts:?}: {d}")))?
                .with_literal_search(search)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            sets.push((search, set));
        }
        let alone: Vec<RuleSet> = all
            .iter()
            .map(|r| RuleSet::from_sources(&[(PathBuf::from("p.toml"), toml(&[*r]))]))
            .collect::<Result<_, _>>()
            .map_err(|d| TestCaseError::fail(d.to_string()))?;
        for ((title, title_toks), (summary, summary_toks), (content, content_toks)) in articles {
            let fields = Fields {
                toks: [title_toks, summary_toks, content_toks],
                texts: [title.clone(), summary.clone(), content.clone()],
            };
            let article = Article { title, summary, content, ..Article::default() };
            for (search, set) in &sets {
                let got = set.match_article_unfiltered(&article, &FeedMeta::default());
                for (r, q) in qs.iter().enumerate() {
                    let hits = got.iter().find(|m| m.rule == r).map(|m| &m.hits);
                    let want = reference(q, Scope::Text, &fields);
                    prop_assert_eq!(hits.is_some(), want, "{:?}: rule {} on {:?}", search, texts[r], fields.texts);
                    let own = alone[r].match_article_unfiltered(&article, &FeedMeta::default());
                    prop_assert_eq!(hits, own.first().map(|m| &m.hits), "{:?}: hits of {}", search, texts[r]);
                }
            }
        }
    }

    #[test]
    fn parser_never_panics(q in "\\PC{0,40}") {
        let _ = parse_query(&q);
    }

    #[test]
    fn parser_never_panics_on_query_like_input(
        parts in proptest::collection::vec(proptest::sample::select(&[
            "a", "\"", "(", ")", "AND", "OR", "NOT", "NEAR", "NEAR/2", "ONEAR/x", "@", "@a", "/", "/x/i",
            "title:", "case:", "url:", "*", "ab*", ":", "\\", "'", "é", "\u{200B}", " ", "titel:", "NEAR/99999999999",
            "~", "ab~", "~3", "-", "^2", "?", "NEAR/3f", "near/3", "W/2", "NAER/2", "ANDNOT", "site:", "lang:",
        ][..]), 0..12)
    ) {
        let q: String = parts.concat();
        let _ = parse_query(&q);
        let toml = format!("[lists]\na = ['x']\n[[rule]]\nid = \"r\"\nquery = '''{}'''\n", q.replace('\'', ""));
        let _ = RuleSet::from_sources(&[(PathBuf::from("p.toml"), toml)]);
    }

    #[test]
    fn rule_files_never_panic(text in "\\PC{0,200}") {
        let _ = RuleSet::from_sources(&[(PathBuf::from("p.toml"), text)]);
    }

    #[test]
    fn tokens_point_into_the_original(text in "\\PC{0,60}") {
        let mut last = 0;
        for t in tokenize(&text) {
            prop_assert!(t.start >= last && t.start < t.end && t.end <= text.len());
            prop_assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
            prop_assert!(!t.norm.is_empty() && !t.norm.contains(char::is_whitespace));
            last = t.end;
        }
    }

    #[test]
    fn matching_is_deterministic_and_hits_are_original_text(content in "\\PC{0,80}") {
        let toml = "[[rule]]\nid = \"r\"\nquery = 'a OR e OR /[0-9]+/'\n";
        let set = RuleSet::from_sources(&[(PathBuf::from("p.toml"), toml.to_string())])
            .map_err(|d| TestCaseError::fail(d.to_string()))?;
        let article = Article { content: content.clone(), ..Article::default() };
        let first = set.match_article_unfiltered(&article, &FeedMeta::default());
        prop_assert_eq!(&first, &set.match_article_unfiltered(&article, &FeedMeta::default()));
        for m in &first {
            for h in &m.hits {
                prop_assert_eq!(content.get(h.start..h.end), Some(h.text.as_str()));
            }
        }
    }
}
