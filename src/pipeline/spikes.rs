//! Spike detection as part of the compose stage: for each `[[spike]]` and each rule it
//! watches, the rule's matches over the baseline go through `policy::spike::detect` (pure);
//! a surge that begins is recorded with its alert (the surge's newest headlines) queued for the
//! spike's channels, in one transaction. The state is written only when it changes.

use chrono::{DateTime, Utc};
use tracing::info;

use crate::channels::payload::{Event, PAYLOAD_VERSION, Payload, PayloadArticle, SpikeFacts};
use crate::config::SpikeConfig;
use crate::digest::email_safety::{clean_line, safe_link};
use crate::model::SpikeHeadline;
use crate::pipeline::Pipeline;
use crate::policy::spike::{Count, Verdict, detect};

/// Headlines a spike alert carries.
const SPIKE_HEADLINES: usize = 10;

impl Pipeline<'_> {
    /// Looks at every `[[spike]]`; returns the spike alerts queued.
    pub(super) async fn detect_spikes(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut alerts = 0;
        for cfg in &self.config.spikes {
            let rules: Vec<String> = self
                .rules
                .rules()
                .iter()
                .filter(|r| cfg.rules.selects(&r.id))
                .map(|r| r.id.clone())
                .collect();
            for rule in rules {
                let title = self.settings.rules.title(&rule).to_string();
                let cfg = cfg.clone();
                let queued = self
                    .db(move |s| {
                        let p = &cfg.params;
                        let horizon = chrono::Duration::from_std(p.baseline + p.window)
                            .unwrap_or(chrono::Duration::days(15));
                        let times = s.rule_match_times(&rule, now - horizon)?;
                        let matches: Vec<(DateTime<Utc>, &str)> =
                            times.iter().map(|(t, f)| (*t, f.as_str())).collect();
                        let was = s.spike_surging(&cfg.name, &rule)?;
                        let v = detect(&matches, now, p, was);
                        if v.surging == was {
                            return Ok(false);
                        }
                        let payload = if v.alert {
                            let window = chrono::Duration::from_std(p.window)
                                .unwrap_or(chrono::Duration::hours(1));
                            let heads = s.rule_headlines(&rule, now - window, SPIKE_HEADLINES)?;
                            let in_window = times.iter().filter(|(t, _)| *t > now - window);
                            Some(spike_payload(&cfg, &rule, &title, &v, &heads, in_window.count(), now))
                        } else {
                            None
                        };
                        let json = payload.as_ref().map(Payload::to_json);
                        let alert = json.as_deref().map(|j| (cfg.channels.as_slice(), j));
                        s.record_spike(&cfg.name, &rule, v.surging, alert, now)?;
                        if v.alert {
                            info!(spike = %cfg.name, rule = %rule, count = v.count, usual = v.usual, threshold = v.threshold, "spike alert queued");
                        } else {
                            info!(spike = %cfg.name, rule = %rule, count = v.count, "surge over");
                        }
                        Ok(v.alert)
                    })
                    .await?;
                alerts += usize::from(queued);
            }
        }
        Ok(alerts)
    }
}

fn spike_payload(
    cfg: &SpikeConfig,
    rule: &str,
    title: &str,
    v: &Verdict,
    heads: &[SpikeHeadline],
    matches: usize,
    now: DateTime<Utc>,
) -> Payload {
    let unit = match cfg.params.count {
        Count::Outlets => "outlets",
        Count::Matches => "matches",
    };
    let minutes = cfg.params.window.as_secs() / 60;
    Payload {
        version: PAYLOAD_VERSION,
        event: Event::Spike,
        source: cfg.name.clone(),
        title: clean_line(
            &format!(
                "Surge: {title} — {} {unit} in {minutes} min (usually {:.0})",
                v.count, v.usual
            ),
            200,
        ),
        created: now,
        total: matches.max(heads.len()),
        articles: heads
            .iter()
            .map(|h| PayloadArticle {
                rule: rule.to_string(),
                rule_title: clean_line(title, 200),
                title: clean_line(&h.title, 300),
                link: h.link.as_deref().and_then(safe_link).map(|u| u.to_string()),
                feed: h.feed.clone(),
                time: h.time,
                snippet: clean_line(&h.summary, 260),
                terms: Vec::new(),
            })
            .collect(),
        spike: Some(SpikeFacts {
            rule: rule.to_string(),
            window_seconds: cfg.params.window.as_secs(),
            count: u64::from(v.count),
            feeds: heads
                .iter()
                .map(|h| h.feed.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len() as u64,
            baseline: v.usual,
            threshold: v.threshold,
        }),
    }
}
