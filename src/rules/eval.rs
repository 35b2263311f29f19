//! `rules eval`, the pure part: rules against labelled articles, as confusion counts per rule and
//! per language, precision, recall and F1 (micro and macro), and every false negative (with the
//! explain tree's failing branch, `eval/why`) and false positive (with the terms that fired).
//! No IO: the caller reads the labels file and prints.

mod why;

use std::collections::BTreeMap;

use super::{Hit, RuleSet};
use crate::model::{Article, FeedMeta};
use crate::rules::ExplainNode;
pub use why::failing_branch;

/// One labelled article: what the matcher sees, and the rules that should match it.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub article: Article,
    pub feed: FeedMeta,
    /// Indices into `RuleSet::rules()` of the rules that should match; every other rule should
    /// not (an empty list is a negative for every rule).
    pub expected: Vec<usize>,
}

/// A confusion matrix: rule verdicts against labels, counted over (rule, article) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Labelled and matched.
    pub tp: usize,
    /// Matched, not labelled.
    pub fp: usize,
    /// Labelled, not matched.
    pub fn_: usize,
    /// Neither.
    pub tn: usize,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }

    /// TP / (TP + FP); `None` when nothing matched (no verdict to be right or wrong about).
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// TP / (TP + FN); `None` when nothing is labelled (nothing to find).
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// 2·TP / (2·TP + FP + FN): the harmonic mean of P and R where both exist, 0 when only one
    /// does (a rule that fires on no positive, or never fires on one), `None` when nothing is
    /// labelled and nothing matched (the rule is unmeasured).
    pub fn f1(&self) -> Option<f64> {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Whether the labels say anything about this rule: a positive, or a match to judge.
    pub fn measured(&self) -> bool {
        self.tp + self.fp + self.fn_ > 0
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The unweighted mean over measured rules (`Counts::measured`), each figure over the rules where
/// it is defined: P over the rules that matched something, R over the rules with a positive label.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Macro {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// How many rules the F1 mean is over.
    pub rules: usize,
}

/// The figures of one language: every rule over the articles with that `lang_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LangCounts {
    pub lang: String,
    pub items: usize,
    pub counts: Counts,
}

/// A labelled article the rule did not match, and why not.
#[derive(Debug, Clone)]
pub struct FalseNegative {
    /// Index into the evaluated items.
    pub item: usize,
    pub rule: usize,
    /// The failing branch of the rule's explain tree (`failing_branch`).
    pub why: ExplainNode,
}

/// An article the rule matched without the label, and the terms that made it match.
#[derive(Debug, Clone)]
pub struct FalsePositive {
    pub item: usize,
    pub rule: usize,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// Indexed like `RuleSet::rules()`.
    pub per_rule: Vec<Counts>,
    /// Sorted by language key.
    pub per_lang: Vec<LangCounts>,
    pub micro: Counts,
    pub macro_avg: Macro,
    /// In rule order, then item order.
    pub false_negatives: Vec<FalseNegative>,
    pub false_positives: Vec<FalsePositive>,
}

impl Report {
    /// Rules the labels say nothing about: no positive label and no match (their P, R and F1 are
    /// undefined, and they are left out of the macro means).
    pub fn unmeasured(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.per_rule.len()).filter(|&r| !self.per_rule[r].measured())
    }
}

/// The language an article is counted under: the primary subtag of its `lang`, lower case
/// (`en-GB` → `en`); `und` (BCP 47's "undetermined") when it has none.
pub fn lang_key(lang: Option<&str>) -> String {
    let primary = lang.and_then(|l| l.split(['-', '_']).next()).map(str::trim);
    match primary {
        Some(p) if !p.is_empty() => p.to_lowercase(),
        _ => "und".to_string(),
    }
}

/// Every rule of `set` over every item, as the daemon's match step sees the article, but with
/// each rule's `feeds` and `max_age` ignored (as `rules test` does): the labels judge the queries.
pub fn evaluate(set: &RuleSet, items: &[Labelled]) -> Report {
    let n_rules = set.rules().len();
    let mut per_rule = vec![Counts::default(); n_rules];
    let mut langs: BTreeMap<String, (usize, Counts)> = BTreeMap::new();
    let mut fns = Vec::new();
    let mut fps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let matches = set.match_article_unfiltered(&item.article, &item.feed);
        let mut counts = Counts::default();
        let mut m = matches.iter().peekable();
        for (r, rule_counts) in per_rule.iter_mut().enumerate() {
            let fired = m.next_if(|x| x.rule == r);
            let labelled = item.expected.contains(&r);
            let c = match (fired, labelled) {
                (Some(_), true) => Counts {
                    tp: 1,
                    ..Counts::default()
                },
                (Some(hit), false) => {
                    fps.push(FalsePositive {
                        item: i,
                        rule: r,
                        hits: hit.hits.clone(),
                    });
                    Counts {
                        fp: 1,
                        ..Counts::default()
                    }
                }
                (None, true) => {
                    let explained = set.explain(r, &item.article, &item.feed);
                    fns.push(FalseNegative {
                        item: i,
                        rule: r,
                        why: failing_branch(&explained.root),
                    });
                    Counts {
                        fn_: 1,
                        ..Counts::default()
                    }
                }
                (None, false) => Counts {
                    tn: 1,
                    ..Counts::default()
                },
            };
            rule_counts.add(c);
            counts.add(c);
        }
        let lang = langs
            .entry(lang_key(item.article.lang.as_deref()))
            .or_default();
        lang.0 += 1;
        lang.1.add(counts);
    }
    let mut micro = Counts::default();
    for c in &per_rule {
        micro.add(*c);
    }
    fns.sort_by_key(|f| (f.rule, f.item));
    fps.sort_by_key(|f| (f.rule, f.item));
    Report {
        macro_avg: macro_avg(&per_rule),
        per_rule,
        per_lang: langs
            .into_iter()
            .map(|(lang, (items, counts))| LangCounts {
                lang,
                items,
                counts,
            })
            .collect(),
        micro,
        false_negatives: fns,
        false_positives: fps,
    }
}

/// The macro means of `per_rule` (see `Macro`).
pub fn macro_avg(per_rule: &[Counts]) -> Macro {
    let mean = |f: fn(&Counts) -> Option<f64>| {
        let xs: Vec<f64> = per_rule
            .iter()
            .filter(|c| c.measured())
            .filter_map(f)
            .collect();
        let n = xs.len() as f64;
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / n)
    };
    Macro {
        precision: mean(Counts::precision),
        recall: mean(Counts::recall),
        f1: mean(Counts::f1),
        rules: per_rule.iter().filter(|c| c.measured()).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(tp: usize, fp: usize, fn_: usize, tn: usize) -> Counts {
        Counts { tp, fp, fn_, tn }
    }

    /// Precision, recall and F1 as expected; `None` where undefined.
    type Figures = (Option<f64>, Option<f64>, Option<f64>);

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        }
    }

    /// (counts, (P, R, F1)): the edge cases are the rows with a `None`.
    #[test]
    #[rustfmt::skip]
    fn precision_recall_f1() {
        let rows: &[(Counts, Figures)] = &[
            (c(2, 0, 1, 5), (Some(1.0), Some(2.0 / 3.0), Some(0.8))),
            (c(3, 1, 1, 0), (Some(0.75), Some(0.75), Some(0.75))),
            (c(1, 3, 0, 0), (Some(0.25), Some(1.0), Some(0.4))),
            // Nothing matched: P undefined, R 0, F1 0.
            (c(0, 0, 4, 9), (None, Some(0.0), Some(0.0))),
            // Nothing labelled, something matched: P 0, R undefined, F1 0.
            (c(0, 2, 0, 9), (Some(0.0), None, Some(0.0))),
            // Nothing labelled, nothing matched: unmeasured.
            (c(0, 0, 0, 9), (None, None, None)),
            (c(0, 0, 0, 0), (None, None, None)),
            (c(0, 1, 1, 0), (Some(0.0), Some(0.0), Some(0.0))),
        ];
        for (i, (k, (p, r, f))) in rows.iter().enumerate() {
            assert!(close(k.precision(), *p), "row {i}: P {:?}", k.precision());
            assert!(close(k.recall(), *r), "row {i}: R {:?}", k.recall());
            assert!(close(k.f1(), *f), "row {i}: F1 {:?}", k.f1());
            assert_eq!(k.measured(), f.is_some(), "row {i}");
        }
    }

    /// (per-rule counts, macro (P, R, F1), rules measured).
    #[test]
    #[rustfmt::skip]
    fn macro_means_skip_unmeasured_rules_and_undefined_figures() {
        let rows: &[(&[Counts], Figures, usize)] = &[
            (&[], (None, None, None), 0),
            (&[c(0, 0, 0, 7)], (None, None, None), 0),
            (&[c(1, 0, 0, 0), c(0, 0, 0, 7)], (Some(1.0), Some(1.0), Some(1.0)), 1),
            // P over the rule that fired; R over both; F1 over both (0 for the silent one).
            (&[c(1, 0, 1, 0), c(0, 0, 2, 0)], (Some(1.0), Some(0.25), Some(1.0 / 3.0)), 2),
            // A rule with no positive but a match: P 0 counts, R is not defined for it.
            (&[c(2, 0, 0, 0), c(0, 1, 0, 0)], (Some(0.5), Some(1.0), Some(0.5)), 2),
        ];
        for (i, (per_rule, (p, r, f), n)) in rows.iter().enumerate() {
            let m = macro_avg(per_rule);
            assert!(close(m.precision, *p), "row {i}: {m:?}");
            assert!(close(m.recall, *r), "row {i}: {m:?}");
            assert!(close(m.f1, *f), "row {i}: {m:?}");
            assert_eq!(m.rules, *n, "row {i}");
        }
    }

    #[test]
    fn language_keys() {
        for (lang, key) in [
            (None, "und"),
            (Some(""), "und"),
            (Some("en"), "en"),
            (Some("en-GB"), "en"),
            (Some("EN_us"), "en"),
            (Some("uk"), "uk"),
            (Some(" de "), "de"),
        ] {
            assert_eq!(lang_key(lang), key, "{lang:?}");
        }
    }

    fn item(title: &str, lang: Option<&str>, expected: &[usize]) -> Labelled {
        Labelled {
            article: Article {
                title: title.to_string(),
                lang: lang.map(str::to_string),
                ..Article::default()
            },
            feed: FeedMeta::default(),
            expected: expected.to_vec(),
        }
    }

    #[test]
    fn evaluate_counts_per_rule_and_language_and_lists_the_errors() {
        let set = RuleSet::from_sources(&[(
            "t.toml".into(),
            "[[rule]]\nid = \"a\"\nquery = 'apple AND NOT pie'\n\
             [[rule]]\nid = \"b\"\nquery = 'banana NEAR/2 split'\n\
             [[rule]]\nid = \"c\"\nquery = 'cherry'\n"
                .to_string(),
        )])
        .expect("the test rules compile");
        let items = [
            item("apple", Some("en"), &[0]),              // a TP
            item("apple pie", Some("en-GB"), &[0]),       // a FN (NOT fired)
            item("banana split", None, &[1]),             // b TP
            item("banana long way to split", None, &[1]), // b FN (not near)
            item("apple banana split", Some("fr"), &[1]), // a FP, b TP
            item("nothing", Some("fr"), &[]),
        ];
        let r = evaluate(&set, &items);
        assert_eq!(
            r.per_rule,
            vec![c(1, 1, 1, 3), c(2, 0, 1, 3), c(0, 0, 0, 6)]
        );
        assert_eq!(r.micro, c(3, 1, 2, 12));
        assert_eq!(r.unmeasured().collect::<Vec<_>>(), vec![2]);
        let langs: Vec<(&str, usize, Counts)> = r
            .per_lang
            .iter()
            .map(|l| (l.lang.as_str(), l.items, l.counts))
            .collect();
        assert_eq!(
            langs,
            vec![
                ("en", 2, c(1, 0, 1, 4)),
                ("fr", 2, c(1, 1, 0, 4)),
                ("und", 2, c(1, 0, 1, 4))
            ]
        );
        let fns: Vec<(usize, usize, &str)> = r
            .false_negatives
            .iter()
            .map(|f| (f.rule, f.item, f.why.label.as_str()))
            .collect();
        assert_eq!(fns, vec![(0, 1, "AND"), (1, 3, "NEAR/2")]);
        let fps: Vec<(usize, usize, Vec<&str>)> = r
            .false_positives
            .iter()
            .map(|f| {
                (
                    f.rule,
                    f.item,
                    f.hits.iter().map(|h| h.text.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(fps, vec![(0, 4, vec!["apple"])]);
        assert_eq!(r.macro_avg.rules, 2);
    }
}
