//! Why a rule did not match: the failing branch of its explain tree, the nodes that made the root
//! false and nothing else. Satisfied parts are cut; a false list or alternative of plain terms
//! becomes one line ("none of …"). Pure; works on `ExplainNode`s only.

use crate::rules::{ExplainNode, Hit};

/// At most this many terms are named in a "none of" line; more are counted.
const NAMED_TERMS: usize = 6;

/// The part of a false node that makes it false:
/// - `AND`, `title:` and the like: only their false children, each cut the same way;
/// - `OR`: every alternative (all are false), its plain terms folded into one "none of" label;
/// - `@list`: one line, "none of its N terms" (the list is in the rule file);
/// - `NOT`: its operand, which is true, as one node with the terms that occurred;
/// - `NEAR`: both operands; true ones (both true: they occur, but not near enough) with their terms.
///
/// A true node (given at the root) comes back as one node with every term that occurred in it.
pub fn failing_branch(node: &ExplainNode) -> ExplainNode {
    if node.value {
        return satisfied(node);
    }
    if node.children.is_empty() {
        return node.clone();
    }
    let label = node.label.as_str();
    if label.starts_with('@') {
        let n = leaves(node);
        return leaf(format!("{label}: none of its {n} terms occurs"));
    }
    if label == "OR" {
        let (terms, rest): (Vec<&ExplainNode>, Vec<&ExplainNode>) =
            node.children.iter().partition(|c| c.children.is_empty());
        let names: Vec<&str> = terms.iter().map(|t| t.label.as_str()).collect();
        let label = match names.len() {
            0 => "OR".to_string(),
            n if n <= NAMED_TERMS => format!("OR: none of {}", names.join(", ")),
            n => format!("OR: none of its {n} terms"),
        };
        return ExplainNode {
            label,
            value: false,
            hits: Vec::new(),
            children: rest.into_iter().map(failing_branch).collect(),
        };
    }
    let keep_true = label == "NOT" || label.starts_with("NEAR/") || label.starts_with("ONEAR/");
    ExplainNode {
        label: node.label.clone(),
        value: false,
        hits: Vec::new(),
        children: node
            .children
            .iter()
            .filter(|c| keep_true || !c.value)
            .map(failing_branch)
            .collect(),
    }
}

fn leaf(label: String) -> ExplainNode {
    ExplainNode {
        label,
        value: false,
        hits: Vec::new(),
        children: Vec::new(),
    }
}

/// A true node as one line: its label and every hit found below it.
fn satisfied(node: &ExplainNode) -> ExplainNode {
    let mut hits = Vec::new();
    collect_hits(node, &mut hits);
    hits.sort_by_key(|h| (h.field, h.start, h.end));
    hits.dedup();
    ExplainNode {
        label: node.label.clone(),
        value: true,
        hits,
        children: Vec::new(),
    }
}

fn collect_hits(node: &ExplainNode, out: &mut Vec<Hit>) {
    if !node.value {
        return;
    }
    out.extend(node.hits.iter().cloned());
    for c in &node.children {
        collect_hits(c, out);
    }
}

fn leaves(node: &ExplainNode) -> usize {
    if node.children.is_empty() {
        1
    } else {
        node.children.iter().map(leaves).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Article, FeedMeta};
    use crate::rules::{RuleSet, example_article};

    /// The failing branch as indented lines: `false LABEL` / `true LABEL "hit" "hit"`.
    fn render(n: &ExplainNode, depth: usize, out: &mut String) {
        let mark = if n.value { "true" } else { "false" };
        out.push_str(&format!("{:w$}{mark} {}", "", n.label, w = depth * 2));
        for h in &n.hits {
            out.push_str(&format!(" {:?}", h.text));
        }
        out.push('\n');
        for c in &n.children {
            render(c, depth + 1, out);
        }
    }

    /// (query, article text, failing branch): one line per case.
    #[test]
    fn failing_branches() {
        let cases: &[(&str, &str, &str)] = &[
            ("apple", "pear", "false apple\n"),
            (
                "apple AND pear AND plum",
                "a pear",
                "false AND\n  false apple\n  false plum\n",
            ),
            (
                "apple AND NOT pie",
                "apple pie",
                "false AND\n  false NOT\n    true pie \"pie\"\n",
            ),
            (
                "(apple OR pear OR \"plum tart\") AND fig",
                "fig",
                "false AND\n  false OR: none of apple, pear, \"plum tart\"\n",
            ),
            (
                "(a1 OR a2 OR a3 OR a4 OR a5 OR a6 OR a7) AND fig",
                "fig",
                "false AND\n  false OR: none of its 7 terms\n",
            ),
            (
                "@fruit AND fig",
                "fig",
                "false AND\n  false @fruit: none of its 3 terms occurs\n",
            ),
            (
                "apple NEAR/2 pear",
                "apple one two three pear",
                "false NEAR/2\n  true apple \"apple\"\n  true pear \"pear\"\n",
            ),
            (
                "(apple NEAR/2 pear) OR kiwi OR (plum AND fig)",
                "apple",
                "false OR: none of kiwi\n  false NEAR/2\n    true apple \"apple\"\n    false pear\n  false AND\n    false plum\n    false fig\n",
            ),
            (
                "title:apple AND fig",
                "fig",
                "false AND\n  false title:\n    false apple\n",
            ),
        ];
        for (query, text, want) in cases {
            let src = format!(
                "[lists]\nfruit = [\"apple\", \"pear\", \"plum\"]\n[[rule]]\nid = \"r\"\nquery = '{query}'\n"
            );
            let set = RuleSet::from_sources(&[("t.toml".into(), src)])
                .unwrap_or_else(|d| panic!("{query}: {d}"));
            let a: Article = example_article(text);
            let e = set.explain(0, &a, &FeedMeta::default());
            assert!(!e.matched, "{query} on {text:?}");
            let mut got = String::new();
            render(&failing_branch(&e.root), 0, &mut got);
            assert_eq!(&got, want, "{query} on {text:?}\nfull tree:\n{e}");
        }
    }

    #[test]
    fn a_true_node_is_one_line_with_its_terms() {
        let set = RuleSet::from_sources(&[(
            "t.toml".into(),
            "[[rule]]\nid = \"r\"\nquery = '(apple OR pear) AND fig'\n".to_string(),
        )])
        .expect("compiles");
        let e = set.explain(0, &example_article("fig pear apple"), &FeedMeta::default());
        let b = failing_branch(&e.root);
        let terms: Vec<&str> = b.hits.iter().map(|h| h.text.as_str()).collect();
        assert_eq!((b.value, b.children.len()), (true, 0));
        assert_eq!(terms, vec!["fig", "pear", "apple"]);
    }
}
