//! Explain: a rule's query tree for one article, every node with its truth value and the spans
//! that made it true. Built from the same evaluation code as matching, so it cannot disagree.

use std::fmt;

use super::compile::Node;
use super::matcher::{Ctx, Doc};
use super::{Hit, RuleInfo, hits_of};

/// A rule's query tree evaluated against one article.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub rule: String,
    pub matched: bool,
    pub root: ExplainNode,
}

/// One node of the query tree: its operator or atom, its value, and (when true) its hits.
#[derive(Debug, Clone)]
pub struct ExplainNode {
    pub label: String,
    pub value: bool,
    pub hits: Vec<Hit>,
    pub children: Vec<ExplainNode>,
}

pub(crate) fn explain(ctx: &Ctx<'_>, doc: &Doc<'_>, info: &RuleInfo, node: &Node) -> Explanation {
    let root = explain_node(ctx, doc, node);
    Explanation {
        rule: info.id.clone(),
        matched: root.value,
        root,
    }
}

fn explain_node(ctx: &Ctx<'_>, doc: &Doc<'_>, node: &Node) -> ExplainNode {
    let value = ctx.eval(doc, node);
    let leaf_hits = || {
        if value {
            hits_of(ctx, doc, node)
        } else {
            Vec::new()
        }
    };
    let (label, hits, children) = match node {
        Node::Lit { label, .. }
        | Node::Regex { label, .. }
        | Node::Url { label, .. }
        | Node::Lang { label, .. } => (label.clone(), leaf_hits(), Vec::new()),
        Node::And(items) => ("AND".to_string(), Vec::new(), kids(ctx, doc, items)),
        Node::Or(items) => ("OR".to_string(), Vec::new(), kids(ctx, doc, items)),
        Node::Not(inner) => (
            "NOT".to_string(),
            Vec::new(),
            vec![explain_node(ctx, doc, inner)],
        ),
        Node::Near {
            left,
            right,
            distance,
            ordered,
        } => {
            let op = if *ordered { "ONEAR" } else { "NEAR" };
            (
                format!("{op}/{distance}"),
                leaf_hits(),
                vec![explain_node(ctx, doc, left), explain_node(ctx, doc, right)],
            )
        }
        Node::List { name, inner } => {
            let children = match inner.as_ref() {
                Node::Or(items) => kids(ctx, doc, items),
                other => vec![explain_node(ctx, doc, other)],
            };
            (format!("@{name}"), Vec::new(), children)
        }
        Node::Field { name, inner } => (
            format!("{}:", name.as_str()),
            Vec::new(),
            vec![explain_node(ctx, doc, inner)],
        ),
    };
    ExplainNode {
        label,
        value,
        hits,
        children,
    }
}

fn kids(ctx: &Ctx<'_>, doc: &Doc<'_>, items: &[Node]) -> Vec<ExplainNode> {
    items.iter().map(|n| explain_node(ctx, doc, n)).collect()
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.matched {
            "matches"
        } else {
            "does not match"
        };
        writeln!(f, "rule {} {verdict}", self.rule)?;
        write_node(f, &self.root, 0)
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &ExplainNode, depth: usize) -> fmt::Result {
    let mark = if n.value { "true " } else { "false" };
    write!(f, "{:indent$}{mark} {}", "", n.label, indent = depth * 2)?;
    for h in &n.hits {
        write!(
            f,
            "  [{} {}..{} {:?}]",
            h.field.as_str(),
            h.start,
            h.end,
            h.text
        )?;
    }
    writeln!(f)?;
    for c in &n.children {
        write_node(f, c, depth + 1)?;
    }
    Ok(())
}
