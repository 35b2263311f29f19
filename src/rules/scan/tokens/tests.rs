//! The token index against the overlapping Aho-Corasick search it replaced: the same (literal,
//! token) pairs on hand-written and random texts and literal sets.

use proptest::prelude::*;

use super::TokenIndex;
use crate::rules::Field;
use crate::rules::matcher::{Doc, Segment};
use crate::rules::scan::tests::{OVERLAP_HAY, OVERLAP_PATTERNS, overlapping};
use crate::rules::scan::{LiteralSearch, Literals, tokens_of};
use crate::rules::text::{TokPos, for_each_token};

/// The index, asked field by field (each field's tokens once its text is written, as the
/// matcher asks it), finds what one overlapping search of the whole text finds.
#[test]
fn the_index_field_by_field_finds_what_an_overlapping_search_finds() {
    let patterns: Vec<String> = OVERLAP_PATTERNS
        .into_iter()
        .chain([" healey jo", " c ab a", " said", " sai", "  b", " ", "b "])
        .map(String::from)
        .collect();
    let hay = OVERLAP_HAY;
    let toks = tokens_of(hay);
    let want = overlapping(&patterns, hay.as_bytes(), &toks);
    assert!(want.len() > 20, "{want:?}");
    let lits = TokenIndex::build(patterns.iter().map(String::as_str)).expect("index builds");
    let mut got = Vec::new();
    // Each field: the text up to its newline and the tokens in it.
    let mut start = 0;
    for end in hay.match_indices('\n').map(|(i, _)| i + 1) {
        let from = toks.partition_point(|t| (t.norm_start as usize) < start);
        let to = toks.partition_point(|t| (t.norm_start as usize) < end);
        let first = u32::try_from(from).unwrap_or(u32::MAX);
        lits.find(&hay.as_bytes()[..end], &toks[from..to], first, &mut got);
        start = end;
    }
    got.sort_unstable();
    assert_eq!(got, want);
}

/// `" w "` needs the space after `w`: a text that ends with the word has none (the matcher
/// always writes one, so only a direct call can show it).
#[test]
fn a_word_at_the_very_end_of_the_text_is_no_whole_word() {
    let patterns = [" healey ", " heal", " john healey "];
    let lits = TokenIndex::build(patterns.into_iter()).expect("index builds");
    let toks = [1, 6].map(|at| TokPos {
        norm_start: at,
        start: 0,
        end: 0,
    });
    let mut got = Vec::new();
    lits.find(b" john healey", &toks, 0, &mut got);
    assert_eq!(got, [(1, 1)]);
    got.clear();
    lits.find(b" john healey ", &toks, 0, &mut got);
    got.sort_unstable();
    assert_eq!(got, [(0, 1), (1, 1), (2, 0)]);
}

/// Words of random fields: ASCII, case, possessives and elisions, accents and ligatures, Cyrillic
/// and Greek, CJK (each ideograph a word), full-width forms, a Katakana sound mark (NFKD gives a
/// space), digits, punctuation.
const TEXT_WORDS: &[&str] = &[
    "Healey",
    "healey",
    "HEALEY",
    "heal",
    "Hegseth's",
    "l'Ukraine",
    "d’Ukraine",
    "Ukraine",
    "ukrainian",
    "plan",
    "plans",
    "peace",
    "Macrón",
    "Straße",
    "ﬁnal",
    "Зеленський",
    "Зеленського",
    "Αθήνα",
    "和平计划",
    "北京",
    "北",
    "ＨＥＡＬＥＹ",
    "カ゛",
    "a",
    "b",
    "ab",
    "28-point",
    "1,000.5",
    "O'Neill",
    "—",
    "…",
];

/// Separators between words.
const SEPARATORS: &[&str] = &[" ", "  ", ", ", ". ", "\n", " – ", "\t", "/"];

/// One article's fields: each a list of (word, separator) picks.
fn fields() -> impl Strategy<Value = Vec<Vec<(usize, usize)>>> {
    prop::collection::vec(
        prop::collection::vec((0..TEXT_WORDS.len(), 0..SEPARATORS.len()), 0..14),
        1..4,
    )
}

/// What a literal is made of: (kind, token, length in tokens or bytes).
fn literal_picks() -> impl Strategy<Value = Vec<(u8, usize, usize)>> {
    prop::collection::vec((0u8..7, 0usize..64, 0usize..8), 1..24)
}

/// The normalised words of `text`.
fn norm_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |_, _, w| out.push(w.to_string()));
    out
}

/// The first `k` bytes of `w`, cut back to a character boundary, at least one character.
fn head(w: &str, k: usize) -> &str {
    let mut k = k.clamp(1, w.len());
    while !w.is_char_boundary(k) {
        k += 1;
    }
    &w[..k]
}

/// A literal set drawn from the article's own words (so most occur) and from words it lacks:
/// terms, phrases, prefixes, phrases ending in a prefix, case-sensitive forms as written
/// (upper case: they occur only through their normalised form), and patterns the compiler never
/// makes (a lone space, a double space, no leading space).
fn patterns(words: &[String], picks: &[(u8, usize, usize)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let fallback = ["absent".to_string()];
    let words = if words.is_empty() { &fallback } else { words };
    for &(kind, at, len) in picks {
        let w = |k: usize| words[(at + k) % words.len()].as_str();
        let p = match kind {
            0 => {
                let run: Vec<&str> = (0..1 + len % 3).map(w).collect();
                format!(" {} ", run.join(" "))
            }
            1 => format!(" {}", head(w(0), 1 + len)),
            2 => format!(" {} {}", w(0), head(w(1), 1 + len)),
            3 => format!(" {} ", w(0).to_uppercase()),
            4 => {
                let other = TEXT_WORDS[(at + len) % TEXT_WORDS.len()];
                match norm_words(other).first() {
                    Some(n) => format!(" {n} peace "),
                    None => continue,
                }
            }
            5 => [" ", "  ", "  a", "a ", " a  b "][len % 5].to_string(),
            _ => format!(" {} {} ", w(0), head(w(1), 1 + len)),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

proptest! {
    /// Issue 22: the token index (and the DFA scan) reports exactly the (literal, token) pairs the overlapping
    /// Aho-Corasick search of the same normalised text reports, through the matcher's own
    /// normalisation and field-by-field lookup.
    #[test]
    fn the_token_index_finds_what_an_overlapping_search_finds(
        fields in fields(),
        picks in literal_picks(),
    ) {
        let texts: Vec<String> = fields
            .iter()
            .map(|f| f.iter().map(|&(w, s)| [TEXT_WORDS[w], SEPARATORS[s]].concat()).collect())
            .collect();
        let words: Vec<String> = texts.iter().flat_map(|t| norm_words(t)).collect();
        let patterns = patterns(&words, &picks);
        let mut want = None;
        for search in [LiteralSearch::Tokens, LiteralSearch::Automaton] {
            let lits = Literals::build_as(patterns.iter().map(String::as_str), search)
                .expect("literals build");
            let segments = texts
                .iter()
                .map(|t| Segment { field: Field::Content, text: t })
                .collect();
            let doc = Doc::from_segments(segments, None, None, Some(&lits));
            let want = want.get_or_insert_with(|| {
                let mut want = overlapping(&patterns, &doc.norm, &doc.toks);
                want.dedup();
                want
            });
            prop_assert_eq!(&doc.hits, &*want, "{:?}: patterns {:?} over {:?}",
                search, patterns, String::from_utf8_lossy(&doc.norm));
        }
    }
}

/// The index finds literals in every script the normaliser writes, and a stem as short as the
/// shortest key or longer.
#[test]
fn stems_and_words_of_every_script_are_found() {
    let patterns: Vec<String> = [
        " 和 ",
        " 和 平 计 ",
        " зеленськии ",
        " зелен",
        " зеленського ",
        " αθηνα ",
        " heal",
        " healey ",
        " ukrain",
        " final ",
        " l ukraine ",
    ]
    .map(String::from)
    .to_vec();
    let text = "和平计划: Зеленський, Зеленського, Αθήνα, Healey's ﬁnal plan for l'Ukraine.";
    let lits = Literals::build_as(patterns.iter().map(String::as_str), LiteralSearch::Tokens)
        .expect("index builds");
    let segments = vec![Segment {
        field: Field::Content,
        text,
    }];
    let doc = Doc::from_segments(segments, None, None, Some(&lits));
    let want = overlapping(&patterns, &doc.norm, &doc.toks);
    assert_eq!(doc.hits, want);
    let found: Vec<u32> = doc.literals().collect();
    let missing: Vec<&String> = patterns
        .iter()
        .enumerate()
        .filter(|(i, _)| !found.contains(&u32::try_from(*i).unwrap_or(u32::MAX)))
        .map(|(_, p)| p)
        .collect();
    assert!(
        missing.is_empty(),
        "not found: {missing:?} in {:?}",
        String::from_utf8_lossy(&doc.norm)
    );
}
