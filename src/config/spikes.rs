//! `[[spike]]`: alert when a rule's matches surge (`policy::spike`), per rule id or glob, to
//! `channel:NAME` recipients. Each key has its default in `SpikeParams::default()`.

use serde::Deserialize;
use toml::Spanned;

use super::build::{Source, duration_within};
use super::channels::split_recipients;
use super::format::HumanDuration;
use crate::digest::spec::RuleSelection;
use crate::policy::spike::{Count, SpikeParams};

/// One `[[spike]]`.
#[derive(Debug, Clone)]
pub struct SpikeConfig {
    pub name: String,
    /// The rules watched (default every rule), each on its own.
    pub rules: RuleSelection,
    /// The `[[channel]]`s that get the alert.
    pub channels: Vec<String>,
    pub params: SpikeParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpike {
    name: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    rules: Option<Spanned<Vec<String>>>,
    window: Option<Spanned<HumanDuration>>,
    baseline: Option<Spanned<HumanDuration>>,
    k: Option<Spanned<f64>>,
    min_count: Option<Spanned<u32>>,
    count: Option<Spanned<String>>,
}

const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_BASELINE: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

pub(super) fn build_spikes(
    src: &mut Source<'_>,
    raw: &[RawSpike],
    channels: &[String],
) -> Vec<SpikeConfig> {
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let name = s.name.get_ref().trim().to_string();
        if name.is_empty() || raw[..i].iter().any(|e| e.name.get_ref().trim() == name) {
            src.error_at(
                s.name.span(),
                format!("spike `name` {name:?} is empty or used twice"),
            );
        }
        let (emails, named) = split_recipients(src, "spike", &s.to, channels);
        for e in &emails {
            src.error_at(
                e.span(),
                format!(
                    "spike {name:?}: `to` takes `channel:NAME` entries only (spike alerts are not emailed yet), not {:?}",
                    e.get_ref()
                ),
            );
        }
        if named.is_empty() && emails.is_empty() {
            src.error_at(
                s.to.span(),
                format!("spike {name:?}: `to` is empty: expected `channel:NAME`"),
            );
        }
        let d = SpikeParams::default();
        let window = duration_within(src, "window", s.window.as_ref(), MIN_WINDOW..=MAX_BASELINE)
            .unwrap_or(d.window);
        let baseline = duration_within(src, "baseline", s.baseline.as_ref(), window..=MAX_BASELINE)
            .unwrap_or(d.baseline);
        let k = match &s.k {
            Some(k) if !(0.5..=20.0).contains(k.get_ref()) => {
                src.error_at(k.span(), format!("spike {name:?}: `k` is 0.5 to 20"));
                d.k
            }
            Some(k) => *k.get_ref(),
            None => d.k,
        };
        let count = match s.count.as_ref().map(|c| (c, c.get_ref().as_str())) {
            None | Some((_, "outlets")) => Count::Outlets,
            Some((_, "matches")) => Count::Matches,
            Some((c, other)) => {
                src.error_at(
                    c.span(),
                    format!(
                        "spike {name:?}: `count` {other:?}: expected \"outlets\" or \"matches\""
                    ),
                );
                Count::Outlets
            }
        };
        let rules = match &s.rules {
            None => RuleSelection::default(),
            Some(r) => RuleSelection::new(r.get_ref()).unwrap_or_else(|errs| {
                for e in errs {
                    src.error_at(r.span(), e);
                }
                RuleSelection::default()
            }),
        };
        out.push(SpikeConfig {
            name,
            rules,
            channels: named,
            params: SpikeParams {
                window,
                baseline,
                k,
                min_count: s.min_count.as_ref().map_or(d.min_count, |m| *m.get_ref()),
                count,
            },
        });
    }
    out
}
