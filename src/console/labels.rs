//! The playground's precision, recall and F1 against `[console] labels` (`rules eval`'s JSON
//! Lines files): the labels of the saved rule the query is compared with are the truth, and the
//! query is scored by `rules::eval::evaluate`, the code `rules eval` prints from. The files are
//! read when the console starts (and again on the daemon's reload); the saved rules' own figures
//! are computed then too.

use std::fmt::Write as _;
use std::sync::Arc;

use super::html::esc;
use crate::labels;
use crate::rules::RuleSet;
use crate::rules::eval::{self, Counts, Labelled};

/// The labelled items, or why there are none to use.
#[derive(Debug)]
pub struct LabelSet {
    /// What was read, for the page: the files and their item count.
    source: String,
    items: Vec<Labelled>,
    /// Every problem the files have, `check`-style; the figures are not shown when there are.
    problems: Option<String>,
    /// Each saved rule's counts over the items (indexed like `RuleSet::rules()`).
    saved: Vec<Counts>,
}

/// The configured labels files read against `rules`; `None` when none are configured.
pub fn load(files: &[std::path::PathBuf], rules: &RuleSet) -> Option<Arc<LabelSet>> {
    if files.is_empty() {
        return None;
    }
    let read = labels::read(files, rules);
    let source = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let problems = (!read.errors.is_empty())
        .then(|| crate::rules::Diagnostics(read.errors.clone()).to_string());
    let saved = if problems.is_none() {
        eval::evaluate(rules, &read.items).per_rule
    } else {
        Vec::new()
    };
    Some(Arc::new(LabelSet {
        source,
        items: read.items,
        problems,
        saved,
    }))
}

/// The query's figures against the labels of saved rule `against` (its positives are the
/// items labelled with it; every other item is a negative), beside the saved rule's own.
pub fn score(
    labels: &LabelSet,
    set: &RuleSet,
    rule: usize,
    saved: &RuleSet,
    against: Option<usize>,
) -> String {
    let mut b = String::from("<section id=\"labels\"><h2>Against the labels</h2>");
    if let Some(p) = &labels.problems {
        let _ = write!(
            b,
            "<p>The labels files ({}) have problems; fix them for precision and recall:</p><pre class=\"diag\">{}</pre></section>",
            esc(&labels.source),
            esc(p)
        );
        return b;
    }
    let Some(r) = against else {
        let _ = write!(
            b,
            "<p class=\"muted\">Choose a saved rule under <b>Compare with</b>: the query is scored against that rule's labels in {} ({} items).</p></section>",
            esc(&labels.source),
            labels.items.len()
        );
        return b;
    };
    let items: Vec<Labelled> = labels
        .items
        .iter()
        .map(|l| Labelled {
            article: l.article.clone(),
            feed: l.feed.clone(),
            expected: if l.expected.contains(&r) {
                vec![rule]
            } else {
                Vec::new()
            },
        })
        .collect();
    let query = eval::evaluate(set, &items)
        .per_rule
        .get(rule)
        .copied()
        .unwrap_or_default();
    let positives = items.iter().filter(|l| !l.expected.is_empty()).count();
    let id = &saved.rules()[r].id;
    let _ = write!(
        b,
        "<p class=\"muted\">{} labelled items in {}, {positives} of them labelled <code>{}</code>.</p>\
         <div class=\"scroll\"><table id=\"prf\"><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>TP</th><th>FP</th><th>FN</th></tr>",
        items.len(),
        esc(&labels.source),
        esc(id)
    );
    b.push_str(&row("this query", &query));
    if let Some(c) = labels.saved.get(r) {
        b.push_str(&row(&format!("saved rule {id}"), c));
    }
    b.push_str("</table></div></section>");
    b
}

fn row(label: &str, c: &Counts) -> String {
    let f = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
    format!(
        "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(label),
        f(c.precision()),
        f(c.recall()),
        f(c.f1()),
        c.tp,
        c.fp,
        c.fn_
    )
}
