//! `[[spike]]`: alert when a rule's matches surge (`policy::spike`), per rule id or glob, to
//! email addresses and `channel:NAME` recipients, like `[[alert]]`. Each detector key has its
//! default in `SpikeParams::default()`.

use serde::Deserialize;
use toml::Spanned;

use super::Unsubscribe;
use super::build::{Source, duration_within};
use super::digests::{check_recipients, unsubscribe};
use super::format::HumanDuration;
use crate::digest::spec::RuleSelection;
use crate::policy::schedule::parse_tz;
use crate::policy::spike::{Count, SpikeParams};

/// One `[[spike]]`.
#[derive(Debug, Clone)]
pub struct SpikeConfig {
    pub name: String,
    /// The rules watched (default every rule), each on its own.
    pub rules: RuleSelection,
    /// The email recipients of the alert (none: it goes to channels only).
    pub to: Vec<String>,
    /// The `[[channel]]`s that get the alert.
    pub channels: Vec<String>,
    pub params: SpikeParams,
    /// The zone the email shows times in.
    pub timezone: chrono_tz::Tz,
    pub unsubscribe: Unsubscribe,
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
    timezone: Option<Spanned<String>>,
    unsubscribe: Option<Spanned<String>>,
    unsubscribe_url: Option<Spanned<String>>,
}

const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_BASELINE: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// `zone`: the first digest's time zone, the default of a spike's `timezone` (as for alerts).
pub(super) fn build_spikes(
    src: &mut Source<'_>,
    raw: &[RawSpike],
    zone: Option<chrono_tz::Tz>,
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
        let (to, named) = check_recipients(src, "spike", &s.to, channels);
        let default_zone = zone.unwrap_or(chrono_tz::UTC);
        let timezone = s.timezone.as_ref().map_or(default_zone, |tz| {
            parse_tz(tz.get_ref()).unwrap_or_else(|msg| {
                src.error_at(tz.span(), msg);
                default_zone
            })
        });
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
            unsubscribe: unsubscribe(src, s.unsubscribe.as_ref(), s.unsubscribe_url.as_ref()),
            name,
            rules,
            to,
            channels: named,
            timezone,
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
