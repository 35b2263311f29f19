//! Where the literals occur (issue 22): every literal of the rule set in one structure, asked
//! for the literals that start at each token of an article's normalised text. Two kinds, chosen
//! by the number of literals: up to `AUTOMATON_UP_TO`, the Aho-Corasick DFA, run over the text
//! as it is written (`Scan`: one state carried from byte to byte, a step per byte, fast while the
//! DFA fits the cache); above, the token-keyed index (`tokens`: one or two hash lookups per
//! token, whose tables still fit the L2 cache when the DFA no longer does). Both report each
//! literal that occurs with the token it starts at. Pure; built once, on the first article
//! matched or at load (`automaton` decides).

mod tokens;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{Anchored, MatchKind, dfa};

use super::text::TokPos;
pub(crate) use tokens::TokenIndex;

/// Up to this many literals the DFA scan is the faster; above, the token index. Measured with
/// `benches/matcher.rs` (`NEWSWATCH_BENCH_SEARCH`, BENCHMARKS.md "fourth round"): the DFA was
/// ahead up to 4,832 literals, level with the index at 5,690, behind it at 7,263 (by 10-12 %)
/// and at 9,300 (by 11-24 %).
pub const AUTOMATON_UP_TO: usize = 6_000;

/// How the literals are searched; `Auto` chooses by their number (`AUTOMATON_UP_TO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralSearch {
    Auto,
    Automaton,
    Tokens,
}

/// Why the literals' structure could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LiteralsError {
    #[error("the literals' patterns come to more than {} bytes", u32::MAX)]
    TooLarge,
    #[error(transparent)]
    Automaton(#[from] aho_corasick::BuildError),
}

/// Every literal, in one of the two structures.
#[derive(Debug)]
pub(crate) enum Literals {
    Dfa(Box<dfa::DFA>),
    Tokens(TokenIndex),
}

impl Literals {
    /// `patterns` are the literals' `" w1 w2 "` / `" stem"` patterns, in literal order (a
    /// pattern's id is its literal's index).
    pub fn build<'p>(
        patterns: impl ExactSizeIterator<Item = &'p str> + Clone,
    ) -> Result<Literals, LiteralsError> {
        Self::build_as(patterns, LiteralSearch::Auto)
    }

    /// `build` with the structure chosen by the caller (benchmarks, tests).
    pub fn build_as<'p>(
        patterns: impl ExactSizeIterator<Item = &'p str> + Clone,
        search: LiteralSearch,
    ) -> Result<Literals, LiteralsError> {
        let automaton = match search {
            LiteralSearch::Auto => patterns.len() <= AUTOMATON_UP_TO,
            LiteralSearch::Automaton => true,
            LiteralSearch::Tokens => false,
        };
        if automaton {
            // Standard semantics and overlapping matches: every literal that ends is reported,
            // so `" healey "` occurs inside `" john healey "`. No prefilter: every pattern
            // starts with a space, so it would stop at every word (measured: about twice as slow).
            Ok(Literals::Dfa(Box::new(
                dfa::Builder::new()
                    .match_kind(MatchKind::Standard)
                    .prefilter(false)
                    .build(patterns)?,
            )))
        } else {
            TokenIndex::build(patterns).map(Literals::Tokens)
        }
    }
}

/// The scan of one article's normalised text while it is written: the automaton's state and
/// the next byte to read.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    state: Option<StateID>,
    at: usize,
}

impl Scan {
    /// The next byte the scan reads.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Reads `hay` from where the scan stopped to its end. Each literal that ends goes to
    /// `hits` as (literal, token): every pattern starts with the space before a token, so the
    /// token is the one of `toks` (the tokens written so far) that starts one byte after it.
    pub fn advance(
        &mut self,
        a: &dfa::DFA,
        hay: &[u8],
        toks: &[TokPos],
        hits: &mut Vec<(u32, u32)>,
    ) {
        let start = match self.state {
            Some(sid) => Ok(sid),
            None => a.start_state(Anchored::No),
        };
        let Ok(mut sid) = start else { return };
        let mut at = self.at;
        while let Some(&b) = hay.get(at) {
            sid = a.next_state(Anchored::No, sid, b);
            at += 1;
            // Unanchored with standard semantics: a special state is a match (never dead).
            if !a.is_special(sid) || !a.is_match(sid) {
                continue;
            }
            for k in 0..a.match_len(sid) {
                let pid = a.match_pattern(sid, k);
                let word = (at + 1).saturating_sub(a.pattern_len(pid));
                if let Some(tok) = token_at(toks, word) {
                    hits.push((pid.as_u32(), tok));
                }
            }
        }
        (self.state, self.at) = (Some(sid), at);
    }
}

/// The index of the token of `toks` (sorted by position) whose word starts at byte `word` of the
/// normalised text. A literal just ended, so its first token is among the last few.
fn token_at(toks: &[TokPos], word: usize) -> Option<u32> {
    for (i, t) in toks.iter().enumerate().rev() {
        let at = t.norm_start as usize;
        if at == word {
            return u32::try_from(i).ok();
        }
        if at < word {
            return None;
        }
    }
    None
}

/// The tokens of a test text: a token after every space that does not end a field (`\n`).
#[cfg(test)]
pub(crate) fn tokens_of(hay: &str) -> Vec<TokPos> {
    hay.match_indices(' ')
        .filter(|(i, _)| hay.as_bytes().get(i + 1) != Some(&b'\n'))
        .map(|(i, _)| TokPos {
            norm_start: u32::try_from(i + 1).unwrap_or(u32::MAX),
            start: 0,
            end: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use aho_corasick::{AhoCorasick, MatchKind};

    use super::{LiteralSearch, Literals, Scan, tokens_of};
    use crate::rules::text::TokPos;

    /// Literals that nest, overlap and share prefixes, and a text of three fields in which
    /// they occur at token starts (the token index's tests add more of their own).
    pub(super) const OVERLAP_PATTERNS: [&str; 10] = [
        " john ",
        " john healey ",
        " healey ",
        " heal",
        " he",
        " ey ",
        " a b ",
        " b ",
        " b c ",
        " ab",
    ];
    pub(super) const OVERLAP_HAY: &str =
        " john healey \n he said a b c ab abc \n healey john heal \n";

    /// What an overlapping Aho-Corasick search reports: every occurrence of a pattern in `norm`
    /// that starts with the space before a token, as (pattern, token), sorted.
    pub(super) fn overlapping<P: AsRef<[u8]>>(
        patterns: &[P],
        norm: &[u8],
        toks: &[TokPos],
    ) -> Vec<(u32, u32)> {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .expect("patterns build");
        let token = |at: usize| toks.iter().position(|t| t.norm_start as usize == at + 1);
        let mut want: Vec<(u32, u32)> = ac
            .find_overlapping_iter(norm)
            .filter_map(|m| Some((m.pattern().as_u32(), u32::try_from(token(m.start())?).ok()?)))
            .collect();
        want.sort_unstable();
        want
    }

    /// The scan, fed a text in pieces (as the normaliser writes it), finds what one overlapping
    /// search of the whole text finds, each occurrence with the token it starts at.
    #[test]
    fn the_scan_in_pieces_finds_what_an_overlapping_search_finds() {
        let (patterns, hay) = (OVERLAP_PATTERNS, OVERLAP_HAY);
        let toks = tokens_of(hay);
        let want = overlapping(&patterns, hay.as_bytes(), &toks);
        // Every occurrence starts at a token.
        let all = AhoCorasick::new(patterns).expect("patterns build");
        assert_eq!(want.len(), all.find_overlapping_iter(hay).count());
        let lits = Literals::build_as(patterns.iter().copied(), LiteralSearch::Automaton)
            .expect("DFA builds");
        let Literals::Dfa(dfa) = &lits else {
            panic!("an automaton was asked for");
        };
        {
            for piece in [1, 3, 7, hay.len()] {
                let (mut scan, mut got) = (Scan::default(), Vec::new());
                let mut end = 0;
                while end < hay.len() {
                    end = (end + piece).min(hay.len());
                    // The tokens written so far: those that start before `end`.
                    let written = toks.partition_point(|t| (t.norm_start as usize) < end);
                    scan.advance(dfa, &hay.as_bytes()[..end], &toks[..written], &mut got);
                }
                got.sort_unstable();
                assert_eq!(got, want, "pieces of {piece}");
            }
        }
    }
}
