//! The pre-filter's view of the rule set (issue 22): which rules it can skip, and why it can
//! never skip the others. A rule is evaluated only when one of its trigger literals occurred
//! (`Node::triggers`), unless it can be true without any literal: those rules are evaluated for
//! every article, and `check --verbose` lists them with the part of the query that is the reason
//! (the view Lucene Monitor's debug output gives). Pure: reads compiled trees only.

use super::compile::Node;

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
