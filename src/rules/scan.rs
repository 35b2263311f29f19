//! The literal automaton and its walk (issue 22): every literal of the rule set in one anchored
//! Aho-Corasick automaton over normalised text, walked from the space before each token. A
//! literal can only occur at a token's start (each pattern begins with that space), so an
//! unanchored scan's failure transitions and matches elsewhere were work thrown away; an
//! anchored walk stops at the first byte no literal continues with, and stays near the root,
//! whose states are in cache. Pure; built once at compile time.

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous;
use aho_corasick::{Anchored, BuildError, MatchKind, StartKind, dfa};

/// Above this many literals the DFA's table (one row per state, every byte class) would be
/// hundreds of megabytes: a contiguous NFA instead (the choice `AhoCorasick` makes itself).
const DFA_MAX_LITERALS: usize = 20_000;

/// The automaton of every literal, anchored only.
#[derive(Debug)]
pub(crate) enum Literals {
    Dfa(dfa::DFA),
    Nfa(contiguous::NFA),
}

impl Literals {
    /// `patterns` are the literals' `" w1 w2 "` / `" stem"` patterns, in literal order (a
    /// pattern's id is its literal's index).
    pub fn build<'p>(
        patterns: impl ExactSizeIterator<Item = &'p str> + Clone,
    ) -> Result<Literals, BuildError> {
        // Standard semantics: every literal that ends on the path is reported, so `" john "`
        // and `" john healey "` both occur at `john healey`.
        if patterns.len() <= DFA_MAX_LITERALS {
            dfa::Builder::new()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .prefilter(false)
                .build(patterns)
                .map(Literals::Dfa)
        } else {
            contiguous::Builder::new()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(patterns)
                .map(Literals::Nfa)
        }
    }

    /// Calls `found(literal)` for every literal that occurs in `hay` starting at byte `at`.
    #[inline]
    pub fn walk(&self, hay: &[u8], at: usize, found: impl FnMut(u32)) {
        match self {
            Literals::Dfa(a) => walk(a, hay, at, found),
            Literals::Nfa(a) => walk(a, hay, at, found),
        }
    }
}

#[inline]
fn walk<A: Automaton>(a: &A, hay: &[u8], at: usize, mut found: impl FnMut(u32)) {
    let Ok(mut sid) = a.start_state(Anchored::Yes) else {
        return;
    };
    let Some(rest) = hay.get(at..) else { return };
    for (i, &b) in rest.iter().enumerate() {
        sid = a.next_state(Anchored::Yes, sid, b);
        if !a.is_special(sid) {
            continue;
        }
        if a.is_dead(sid) {
            return;
        }
        if a.is_match(sid) {
            for k in 0..a.match_len(sid) {
                let pid = a.match_pattern(sid, k);
                // A state also lists the literals that end here but started later (copied
                // along its failure link for unanchored searches): not an occurrence at `at`.
                if a.pattern_len(pid) == i + 1 {
                    found(pid.as_u32());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aho_corasick::{AhoCorasick, MatchKind};

    use super::Literals;

    /// Every literal at every anchor, found by the walk, is what an unanchored overlapping scan
    /// finds starting there (the scan the matcher used before, and the bench's bare scan).
    #[test]
    fn the_walk_finds_what_an_overlapping_scan_finds_at_each_anchor() {
        let patterns = [
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
        let hay = " john healey \n he said a b c ab abc \n healey john heal \n";
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .expect("patterns build");
        let mut want: Vec<(usize, u32)> = ac
            .find_overlapping_iter(hay)
            .map(|m| (m.start(), m.pattern().as_u32()))
            .collect();
        want.sort_unstable();
        for (kind, lits) in [
            (
                "dfa",
                Literals::build(patterns.iter().copied()).expect("DFA builds"),
            ),
            (
                "nfa",
                Literals::Nfa(
                    aho_corasick::nfa::contiguous::Builder::new()
                        .match_kind(MatchKind::Standard)
                        .build(patterns)
                        .expect("NFA builds"),
                ),
            ),
        ] {
            let mut got = Vec::new();
            for (at, _) in hay.match_indices(' ') {
                lits.walk(hay.as_bytes(), at, |l| got.push((at, l)));
            }
            got.sort_unstable();
            assert_eq!(got, want, "{kind}");
        }
    }
}
