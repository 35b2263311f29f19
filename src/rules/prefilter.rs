//! The pre-filter (issue 22): which rules an article's literals make candidates, the cheap
//! checks before one is evaluated, and why some rules can never be skipped. A rule is evaluated
//! only when one of its trigger literals occurred (`Node::triggers`), unless it can be true
//! without any literal: those rules are evaluated for every article, and `check --verbose` lists
//! them with the part of the query that is the reason (the view Lucene Monitor's debug output
//! gives). Pure: built from compiled trees once, read per article.

use super::compile::Node;

/// A rule to consider when a literal occurs, if `also` occurred too.
#[derive(Debug, Clone, Copy)]
struct Trigger {
    rule: u32,
    /// A second literal the rule requires (`NONE`: no such single literal).
    also: u32,
    /// Where the rule's groups start in `Prefilter::required`, copied here so a candidate that
    /// fails them costs one cache line, not three dependent loads (100,000 rules); `NONE` when
    /// this literal and `also` are in every group, so the groups hold once both occurred.
    required: u32,
}

impl Trigger {
    const NONE: u32 = u32::MAX;
}

/// The rule set's pre-filter, built at compile time.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    /// The triggers of literal `l` are `triggers[trigger_at[l]..trigger_at[l + 1]]`: one array
    /// (a `Vec` per literal cost a dependent cache miss per literal that occurred, issue 22).
    trigger_at: Vec<u32>,
    triggers: Vec<Trigger>,
    /// Rules that can be true without any of their literals (regex, url or lang; allowed broad).
    always: Vec<u32>,
    /// Every rule's `Node::required` groups, flattened: at a rule's offset, the number of groups,
    /// then each group as its length and its literals. A candidate is evaluated only when every
    /// group has a literal that occurred. Most candidates fail here (100,000 rules: ~550
    /// candidates per article, ~25 evaluated), for a few bit tests in one contiguous run instead
    /// of a tree walk (boxed groups cost three dependent cache misses per candidate).
    required: Vec<u32>,
    /// Each rule's offset in `required`.
    required_at: Vec<u32>,
}

impl Prefilter {
    /// The pre-filter of the rules `nodes` over `lits` literals.
    pub fn build(nodes: &[Node], lits: usize) -> Prefilter {
        let groups_of: Vec<Vec<Vec<u32>>> = nodes
            .iter()
            .map(|node| {
                let mut groups = Vec::new();
                node.required(&mut groups);
                groups.sort();
                groups.dedup();
                // Single literals first: the likeliest to fail.
                groups.sort_by_key(Vec::len);
                groups
            })
            .collect();
        let (required, required_at) = flatten_groups(&groups_of);
        let mut per_lit: Vec<Vec<Trigger>> = vec![Vec::new(); lits];
        let mut always = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let r = u32::try_from(i).unwrap_or(u32::MAX);
            let Some(mut lits) = node.triggers() else {
                always.push(r);
                continue;
            };
            lits.sort_unstable();
            lits.dedup();
            // Another literal the rule cannot match without, checked first, in the trigger entry
            // itself (no trip to the rule's own data).
            let groups = &groups_of[i];
            let also = groups
                .iter()
                .find(|g| g.len() == 1 && lits.binary_search(&g[0]).is_err())
                .map_or(Trigger::NONE, |g| g[0]);
            for l in lits {
                let implied = groups.iter().all(|g| g.contains(&l) || g.contains(&also));
                per_lit[l as usize].push(Trigger {
                    rule: r,
                    also,
                    required: if implied {
                        Trigger::NONE
                    } else {
                        required_at[i]
                    },
                });
            }
        }
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut trigger_at = Vec::with_capacity(lits + 1);
        let mut triggers = Vec::with_capacity(per_lit.iter().map(Vec::len).sum());
        for list in per_lit {
            trigger_at.push(len(triggers.len()));
            triggers.extend(list);
        }
        trigger_at.push(len(triggers.len()));
        Prefilter {
            trigger_at,
            triggers,
            always,
            required,
            required_at,
        }
    }

    /// The rules evaluated for every article.
    pub fn always(&self) -> &[u32] {
        &self.always
    }

    /// Calls `f` with each rule to evaluate for an article, once each: the rules evaluated for
    /// every article, then those the literals `seen` (distinct, each also set in `present`, a
    /// bit per literal) trigger, whose required groups hold. `considered` (a bit per rule, zero)
    /// is scratch; `work` counts the candidates.
    pub fn candidates(
        &self,
        seen: impl Iterator<Item = u32>,
        present: &[u64],
        considered: &mut [u64],
        work: &mut MatchWork,
        mut f: impl FnMut(usize),
    ) {
        let occurred = |l: u32| {
            present
                .get(l as usize / 64)
                .is_some_and(|w| w & (1 << (l % 64)) != 0)
        };
        let always = self.always.iter().map(|&r| {
            let at = self.required_at.get(r as usize).copied();
            (r, at.unwrap_or(Trigger::NONE))
        });
        let triggered = seen.flat_map(|l| {
            let from = self.trigger_at.get(l as usize).copied().unwrap_or(0) as usize;
            let to = self.trigger_at.get(l as usize + 1).copied().unwrap_or(0) as usize;
            self.triggers
                .get(from..to)
                .unwrap_or(&[])
                .iter()
                .filter(move |t| t.also == Trigger::NONE || occurred(t.also))
                .map(|t| (t.rule, t.required))
        });
        for (r, at) in always.chain(triggered) {
            let (word, bit) = (r as usize / 64, 1u64 << (r % 64));
            let Some(w) = considered.get_mut(word) else {
                continue;
            };
            if *w & bit != 0 {
                continue;
            }
            *w |= bit;
            work.candidates += 1;
            if at == Trigger::NONE || groups_hold(&self.required, at, occurred) {
                f(r as usize);
            }
        }
    }
}

/// `groups` (each rule's required groups) as one flat array and each rule's offset in it: at
/// the offset, the number of groups, then each group's length and literals.
fn flatten_groups(groups: &[Vec<Vec<u32>>]) -> (Vec<u32>, Vec<u32>) {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut flat = Vec::new();
    let mut at = Vec::with_capacity(groups.len());
    for rule in groups {
        at.push(len(flat.len()));
        flat.push(len(rule.len()));
        for g in rule {
            flat.push(len(g.len()));
            flat.extend_from_slice(g);
        }
    }
    (flat, at)
}

/// Whether every required group at `at` in `flat` has a literal for which `occurred` holds.
fn groups_hold(flat: &[u32], at: u32, occurred: impl Fn(u32) -> bool) -> bool {
    let mut i = at as usize;
    let Some(&groups) = flat.get(i) else {
        return true;
    };
    i += 1;
    for _ in 0..groups {
        let n = flat.get(i).map_or(0, |&n| n as usize);
        let group = flat.get(i + 1..i + 1 + n).unwrap_or(&[]);
        if !group.iter().any(|&l| occurred(l)) {
            return false;
        }
        i += 1 + n;
    }
    true
}

/// How much of the rule set one article cost: counted by the match step for `/metrics` and the
/// benches. `evaluated / rules` is the share of rules the pre-filter let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchWork {
    /// Rules in the set.
    pub rules: usize,
    /// Rules a literal of the article triggered, plus those evaluated for every article.
    pub candidates: usize,
    /// Candidates that passed the required-literal check and whose query was evaluated.
    pub evaluated: usize,
}

impl MatchWork {
    /// The share of the rule set evaluated for this article, 0 for an empty set.
    pub fn evaluated_share(&self) -> f64 {
        if self.rules == 0 {
            return 0.0;
        }
        // Rule counts are far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let share = self.evaluated as f64 / self.rules as f64;
        share
    }
}

/// Why `node` can be true without any of its literals, naming the part that makes it so; `None`
/// when the pre-filter can skip it (some literal must occur). Follows `Node::triggers`: an OR is
/// unfilterable when one branch is, an AND only when every operand is.
pub(crate) fn unfiltered_reason(node: &Node) -> Option<String> {
    match node {
        Node::Lit { .. } | Node::Near { .. } => None,
        Node::Regex { label, .. } => {
            Some(format!("the regex `{label}` is searched without a literal"))
        }
        Node::Url { host, .. } => Some(format!("`url:{host}` tests the link, not the text")),
        Node::Lang { tag, .. } => Some(format!("`lang:{tag}` tests the language, not the text")),
        Node::Not(inner) => Some(format!(
            "`NOT {}` is true when its term is absent",
            label_of(inner)
        )),
        Node::Or(items) => items.iter().find_map(|n| {
            unfiltered_reason(n).map(|why| format!("an OR branch needs no literal: {why}"))
        }),
        Node::And(items) => {
            let reasons: Option<Vec<String>> = items.iter().map(unfiltered_reason).collect();
            reasons.map(|r| format!("no AND operand needs a literal: {}", r.join("; ")))
        }
        Node::List { name, inner } => {
            unfiltered_reason(inner).map(|why| format!("list @{name}: {why}"))
        }
        Node::Field { inner, .. } => unfiltered_reason(inner),
    }
}

/// A short label for a node in a reason: an atom's text, an operator's name.
fn label_of(node: &Node) -> String {
    match node {
        Node::Lit { label, .. } | Node::Regex { label, .. } => label.clone(),
        Node::Url { host, .. } => format!("url:{host}"),
        Node::Lang { tag, .. } => format!("lang:{tag}"),
        Node::List { name, .. } => format!("@{name}"),
        Node::Field { name, inner } => format!("{}:{}", name.as_str(), label_of(inner)),
        Node::And(_) => "(… AND …)".to_string(),
        Node::Or(_) => "(… OR …)".to_string(),
        Node::Not(inner) => format!("NOT {}", label_of(inner)),
        Node::Near { .. } => "(… NEAR …)".to_string(),
    }
}
