//! When the literal automaton (`scan::Literals`) is built (issue 22): on the first article
//! matched, not at load, so a run in which nothing new arrives (every feed a 304) never pays for
//! it; but at load whenever its build could fail, so a rule set too large for it is still refused
//! there, with its file named. Owns no matching; the automaton itself is `scan`'s.

use std::sync::OnceLock;

use super::compile::Literal;
use super::scan::{Literals, LiteralsError};

/// The automaton's identifiers (states, transitions, matches, patterns) are indexes below
/// `i32::MAX` (aho-corasick 1.1's `StateID::LIMIT`); its build fails only when one would not fit.
const ID_LIMIT: u64 = i32::MAX as u64 - 1;

/// The literal automaton of a rule set, built once: at load (`new`) when `cannot_fail` cannot
/// show that its build succeeds, else on first use (`get`, given the same literals).
#[derive(Debug, Default)]
pub(crate) struct LazyLiterals {
    built: OnceLock<Option<Literals>>,
}

impl LazyLiterals {
    /// The automaton of `lits`, or the reason it cannot be built (`Err` only from a build made
    /// here, at load: a deferred build is one `cannot_fail` proved to succeed).
    pub fn new(lits: &[Literal]) -> Result<LazyLiterals, LiteralsError> {
        Self::with_limit(lits, ID_LIMIT)
    }

    /// `new` with the identifier limit as a parameter, so a test can force the build at load.
    fn with_limit(lits: &[Literal], limit: u64) -> Result<LazyLiterals, LiteralsError> {
        let lazy = LazyLiterals::default();
        if !cannot_fail(lits.iter().map(|l| l.pattern.len()), limit) {
            let built = build(lits)?;
            // A fresh `OnceLock` takes the value: `set` only fails on one already set.
            let _ = lazy.built.set(built);
        }
        Ok(lazy)
    }

    /// The automaton of `lits` (those given to `new`), built now if it was not yet; `None` when
    /// no rule has a literal.
    pub fn get(&self, lits: &[Literal]) -> Option<&Literals> {
        self.built
            .get_or_init(|| {
                // `cannot_fail` held for these patterns when the build was deferred, so the
                // error arm is unreachable; were it reached, matching would find no literal
                // (never a crash), and the rules needing one would not match.
                build(lits).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "the literal automaton could not be built");
                    None
                })
            })
            .as_ref()
    }

    /// `literals`, already built (benchmarks choosing the structure themselves).
    pub fn built(literals: Literals) -> LazyLiterals {
        let lazy = LazyLiterals::default();
        let _ = lazy.built.set(Some(literals));
        lazy
    }

    /// Whether the automaton exists yet.
    #[cfg(test)]
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

fn build(lits: &[Literal]) -> Result<Option<Literals>, LiteralsError> {
    if lits.is_empty() {
        return Ok(None);
    }
    Literals::build(lits.iter().map(|l| l.pattern.as_str())).map(Some)
}

/// Whether patterns of these lengths surely build, with every identifier of the automaton below
/// `limit`. A conservative bound over both of `scan::Literals`' forms. The DFA (up to
/// `AUTOMATON_UP_TO` literals): its trie has at most one state per pattern byte (plus four fixed
/// states), each state takes at most 512 transition slots (its stride: 257 byte classes rounded
/// up to a power of two), and the matches copied along failure links are at most one per byte
/// of the longest pattern (the patterns that are suffixes of its path). The token index (above):
/// it fails only when the patterns come to more than `u32::MAX` bytes, which a total under
/// `limit` excludes. 150,000 patterns of 17 bytes (about 100,000 generated rules' worth,
/// estimated) make 1.4 G against the limit's 2.1 G.
fn cannot_fail(lens: impl Iterator<Item = usize>, limit: u64) -> bool {
    let (mut count, mut bytes, mut longest) = (0u64, 0u64, 0u64);
    for len in lens {
        let len = len as u64;
        count += 1;
        bytes = bytes.saturating_add(len);
        longest = longest.max(len);
    }
    let states = bytes.saturating_add(4);
    let per_state = 512u64.saturating_add(longest);
    count < limit && states.saturating_mul(per_state) < limit
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{ID_LIMIT, LazyLiterals, cannot_fail};
    use crate::model::FeedMeta;
    use crate::rules::compile::Literal;
    use crate::rules::{RuleSet, example_article};

    /// (pattern lengths, whether the build is deferred as surely succeeding).
    #[test]
    fn the_bound_defers_only_builds_that_cannot_fail() {
        let cases: &[(&[usize], u64, bool)] = &[
            (&[], ID_LIMIT, true),
            (&[8, 12, 30], ID_LIMIT, true),
            // 100,000 rules' worth of literals: ~150,000 patterns of ~17 bytes.
            (&[17; 150_000], ID_LIMIT, true),
            // Four million states at 512 slots each: over the limit, built at load.
            (&[1_000; 4_000], ID_LIMIT, false),
            // One pattern as long as the limit allows states.
            (&[3_000_000], ID_LIMIT, false),
            (&[8], 0, false),
        ];
        for (lens, limit, want) in cases {
            assert_eq!(
                cannot_fail(lens.iter().copied(), *limit),
                *want,
                "{} patterns, limit {limit}",
                lens.len()
            );
        }
    }

    fn lits(patterns: &[&str]) -> Vec<Literal> {
        patterns
            .iter()
            .map(|p| Literal {
                pattern: (*p).to_string(),
                ntoks: 1,
            })
            .collect()
    }

    /// Deferred, the automaton is built by the first `get`; over the bound, at load.
    #[test]
    fn the_automaton_is_built_on_first_use_unless_its_build_could_fail() {
        let lits = lits(&[" healey ", " kyiv "]);
        let lazy = LazyLiterals::new(&lits).expect("builds");
        assert!(!lazy.is_built(), "deferred at load");
        assert!(lazy.get(&lits).is_some());
        assert!(lazy.is_built(), "built on first use");
        let eager = LazyLiterals::with_limit(&lits, 1).expect("builds");
        assert!(eager.is_built(), "built at load when the bound fails");
        let none = LazyLiterals::new(&[]).expect("nothing to build");
        assert!(none.get(&[]).is_none(), "no literal, no automaton");
    }

    /// A loaded rule set has no automaton until it matches an article, and then finds what it
    /// would have found with one built at load.
    #[test]
    fn a_rule_set_builds_its_automaton_at_its_first_match() {
        let rules = "[[rule]]\nid = \"a\"\nquery = \"Healey AND Kyiv\"\n";
        let set = RuleSet::from_sources(&[(PathBuf::from("r.toml"), rules.to_string())])
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!set.ac.is_built(), "not built at load");
        let hit = example_article("John Healey arrived in Kyiv");
        let miss = example_article("John Healey arrived in Paris");
        let feed = FeedMeta::default();
        assert_eq!(set.match_article_unfiltered(&miss, &feed).len(), 0);
        assert!(set.ac.is_built(), "built by the first match");
        assert_eq!(set.match_article_unfiltered(&hit, &feed).len(), 1);
    }
}
