//! `check --verbose`: the pre-filter's view of a loaded rule set (issue 22). How many literals
//! the automaton searches, and every rule evaluated for every article because it needs no
//! literal, with where it is and why: each costs a tree walk per article, at any scale.

use crate::rules::RuleSet;

/// Prints the view after `check`'s summary line.
pub(super) fn print(set: &RuleSet) {
    let unfiltered = set.unfiltered();
    let rules = set.rules();
    outln!(
        "pre-filter: {} literals found in one pass over each article; a rule is evaluated only \
         for articles in which one of its terms occurs, except {} evaluated for every article",
        set.literal_count(),
        super::count(unfiltered.len(), "rule")
    );
    for u in &unfiltered {
        let info = &rules[u.rule];
        outln!(
            "  {}:{}: rule {}: {}",
            info.file.display(),
            info.line,
            info.id,
            u.reason
        );
    }
}
