//! `rules backtest`, the pure part: run candidate rules and the rules in force over the same
//! stored articles and say, per rule and article, what is new, the same, or no longer matched.
//! No IO: the caller reads the store and prints; `progress` is called once per article.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::RuleSet;
use crate::model::{Article, FeedMeta};

/// How a candidate rule's verdict on one article compares with the rule of that id in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The candidate matches; the rule in force (if it exists at all) does not.
    New,
    /// Both match.
    Same,
    /// The rule in force matches; the candidate no longer does.
    Gone,
}

impl Change {
    pub fn marker(self) -> &'static str {
        match self {
            Change::New => "NEW",
            Change::Same => "same",
            Change::Gone => "GONE",
        }
    }
}

/// One stored article as the backtest sees it.
#[derive(Debug, Clone)]
pub struct StoredItem {
    pub feed: FeedMeta,
    pub article: Article,
    pub first_seen: DateTime<Utc>,
}

/// One line of the listing: article `item` (index into the input) under rule `rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub rule: String,
    pub change: Change,
    pub item: usize,
}

/// Per candidate rule: would match `matched`, of which `new` are new; `gone` no longer matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub matched: usize,
    pub new: usize,
    pub gone: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    /// Every candidate rule id, in candidate order, with its counts (zero when nothing matched).
    pub tallies: Vec<(String, Tally)>,
}

/// Runs both rule sets over `items`. Each article is matched as the daemon would have matched it
/// when it first saw it: `feeds` apply, and `max_age` is measured at `first_seen`. Only rule ids
/// in `candidate` are compared; a rule in force that the candidate files do not define is not
/// reported as GONE (backtesting one edited file says nothing about the others).
pub fn run(
    current: &RuleSet,
    candidate: &RuleSet,
    items: &[StoredItem],
    mut progress: impl FnMut(),
) -> Report {
    let ids: Vec<&str> = candidate.rules().iter().map(|r| r.id.as_str()).collect();
    let index: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut tallies: Vec<Tally> = vec![Tally::default(); ids.len()];
    let mut lines = Vec::new();
    for (item, s) in items.iter().enumerate() {
        let now = s.first_seen;
        let cand: Vec<usize> = candidate
            .match_article(&s.article, &s.feed, now)
            .into_iter()
            .map(|m| m.rule)
            .collect();
        let in_force: Vec<usize> = current
            .match_article(&s.article, &s.feed, now)
            .into_iter()
            .filter_map(|m| index.get(current.rules()[m.rule].id.as_str()).copied())
            .collect();
        let mut verdicts: Vec<(usize, Change)> = cand
            .iter()
            .map(|&r| {
                let change = if in_force.contains(&r) {
                    Change::Same
                } else {
                    Change::New
                };
                (r, change)
            })
            .collect();
        verdicts.extend(
            in_force
                .iter()
                .filter(|r| !cand.contains(r))
                .map(|&r| (r, Change::Gone)),
        );
        verdicts.sort_unstable();
        for (r, change) in verdicts {
            let t = &mut tallies[r];
            match change {
                Change::New => {
                    t.matched += 1;
                    t.new += 1;
                }
                Change::Same => t.matched += 1,
                Change::Gone => t.gone += 1,
            }
            lines.push(Line {
                rule: ids[r].to_string(),
                change,
                item,
            });
        }
        progress();
    }
    Report {
        lines,
        tallies: ids.iter().map(ToString::to_string).zip(tallies).collect(),
    }
}
