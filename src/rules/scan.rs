//! The literal automaton and its walks (issue 22): every literal of the rule set in one anchored
//! Aho-Corasick automaton over normalised text. A literal only ever starts at the space before a
//! token, so each token starts a walk there, taken on over the bytes written after it until no
//! literal continues (the unanchored overlapping scan this replaces also found literals
//! elsewhere, which the matcher then dropped). Pure; built once at compile time.

use aho_corasick::automaton::{Automaton, StateID};
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
    #[cfg(test)]
    pub fn walk(&self, hay: &[u8], at: usize, mut found: impl FnMut(u32)) {
        let mut walks = Walks::default();
        let mut hits = Vec::new();
        walks.start(self, hay, at, 0, &mut hits);
        walks.finish(self, hay, &mut hits);
        hits.iter().for_each(|&(l, _)| found(l));
    }
}

/// Walks under way while a text is being normalised: each token's walk starts when the token is
/// written and goes on over the bytes written after it until no literal continues. Scanning
/// as the text is written, instead of after, lets the processor fold the next words while a
/// walk waits for the automaton's memory (issue 22: the walk is bound by cache misses, the
/// folding by instructions).
#[derive(Debug, Default)]
pub(crate) struct Walks {
    active: Vec<Walk>,
}

#[derive(Debug, Clone, Copy)]
struct Walk {
    /// The token the walk started at (its literals' first token).
    tok: u32,
    /// Where it started (the space before the token) and the next byte it reads.
    from: usize,
    at: usize,
    sid: StateID,
}

impl Walks {
    /// Starts a walk for token `tok` at byte `from` of `hay` (the space before the token), and
    /// takes every walk as far as `hay` goes; occurrences go to `hits` as (literal, token).
    pub fn start(
        &mut self,
        lits: &Literals,
        hay: &[u8],
        from: usize,
        tok: u32,
        hits: &mut Vec<(u32, u32)>,
    ) {
        let start = match lits {
            Literals::Dfa(a) => a.start_state(Anchored::Yes),
            Literals::Nfa(a) => a.start_state(Anchored::Yes),
        };
        if let Ok(sid) = start {
            self.active.push(Walk {
                tok,
                from,
                at: from,
                sid,
            });
        }
        self.advance(lits, hay, hits);
    }

    /// Takes every walk to the end of `hay`, which is complete: none is left under way.
    pub fn finish(&mut self, lits: &Literals, hay: &[u8], hits: &mut Vec<(u32, u32)>) {
        self.advance(lits, hay, hits);
        self.active.clear();
    }

    /// Drops every walk under way.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    fn advance(&mut self, lits: &Literals, hay: &[u8], hits: &mut Vec<(u32, u32)>) {
        match lits {
            Literals::Dfa(a) => advance(a, &mut self.active, hay, hits),
            Literals::Nfa(a) => advance(a, &mut self.active, hay, hits),
        }
    }
}

/// Takes every walk of `active` to the end of `hay`, dropping those that are over (their order
/// does not matter: the hits are sorted after).
#[inline]
fn advance<A: Automaton>(a: &A, active: &mut Vec<Walk>, hay: &[u8], hits: &mut Vec<(u32, u32)>) {
    let mut k = 0;
    while let Some(w) = active.get_mut(k) {
        if step(a, hay, w, hits) {
            k += 1;
        } else {
            active.swap_remove(k);
        }
    }
}

/// Takes `w` over `hay[w.at..]`; false once no literal continues (the walk is over).
#[inline]
fn step<A: Automaton>(a: &A, hay: &[u8], w: &mut Walk, hits: &mut Vec<(u32, u32)>) -> bool {
    let (mut sid, mut at) = (w.sid, w.at);
    let alive = loop {
        let Some(&b) = hay.get(at) else {
            break true;
        };
        sid = a.next_state(Anchored::Yes, sid, b);
        at += 1;
        if !a.is_special(sid) {
            continue;
        }
        if a.is_dead(sid) {
            break false;
        }
        if a.is_match(sid) {
            for k in 0..a.match_len(sid) {
                let pid = a.match_pattern(sid, k);
                // A state also lists the literals that end here but started later (copied
                // along its failure link for unanchored searches): not an occurrence here.
                if a.pattern_len(pid) == at - w.from {
                    hits.push((pid.as_u32(), w.tok));
                }
            }
        }
    };
    (w.sid, w.at) = (sid, at);
    alive
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
