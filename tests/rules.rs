//! Test binary for the rule language: the conformance table and diagnostics, property tests
//! against a reference evaluator, and the shipped rules with the rule CLI. Fast and pure except
//! the CLI cases (with `rules eval` on a fixture, and the shipped rules' recall targets on
//! `rules/eval/`), which run the built binary.

#[path = "support/support.rs"]
mod support;

#[path = "rules/conformance.rs"]
mod conformance;
#[path = "rules/docs.rs"]
mod docs;
#[path = "rules/eval.rs"]
mod eval;
#[path = "rules/index.rs"]
mod index;
#[path = "rules/prefilter.rs"]
mod prefilter;
#[path = "rules/props.rs"]
mod props;
#[path = "rules/recall.rs"]
mod recall;
#[path = "rules/scale.rs"]
mod scale;
#[path = "rules/shipped.rs"]
mod shipped;
#[path = "rules/tidy.rs"]
mod tidy;
