//! Spike detection as part of the compose stage: for each `[[spike]]` and each rule it
//! watches, the rule's matches over the baseline go through `policy::spike::detect` (pure);
//! a surge that begins is a composition: its newest matches gathered, its email rendered
//! (`digest::spike`) when the spike has recipients, and the email, the channel messages and the
//! rule's new state committed in one transaction. The state is written only when it changes.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tracing::info;

use crate::channels::payload::{Event, Payload, SpikeFacts};
use crate::config::SpikeConfig;
use crate::digest::spike::{SPIKE_ITEMS, SurgeFacts, compose_spike, surge_text};
use crate::digest::{self, RuleBook};
use crate::model::NewMessage;
use crate::pipeline::Pipeline;
use crate::policy::spike::{Count, Verdict, detect};
use crate::store::{SpikeAlert, Store};

impl Pipeline<'_> {
    /// Looks at every `[[spike]]`; returns the spike alerts composed. One store call per
    /// spike: its rules' matches of the baseline period in one query, then each rule in turn.
    pub(super) async fn detect_spikes(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut alerts = 0;
        // Shared by the pass's store calls, each of which needs its own handle.
        let titles = Arc::clone(&self.settings.rules);
        let from: Arc<str> = Arc::from(self.config.delivery.from.as_str());
        for cfg in &self.config.spikes {
            let rules: Vec<String> = self
                .rules
                .rules()
                .iter()
                .filter(|r| cfg.rules.selects(&r.id))
                .map(|r| r.id.clone())
                .collect();
            if rules.is_empty() {
                continue;
            }
            let cfg = cfg.clone();
            let (titles, from) = (Arc::clone(&titles), Arc::clone(&from));
            alerts += self
                .db_work(move |s| {
                    let p = &cfg.params;
                    let horizon = chrono::Duration::from_std(p.baseline + p.window)
                        .unwrap_or(chrono::Duration::days(15));
                    let times = s.spike_match_times(&rules, now - horizon)?;
                    let mut alerts = 0;
                    for (rule, rows) in rules.iter().zip(&times.rules) {
                        let matches: Vec<(DateTime<Utc>, &str)> = rows
                            .iter()
                            .map(|&(t, f)| (t, times.feeds[f as usize].as_str()))
                            .collect();
                        let alerted = look(s, &cfg, rule, &matches, &titles, &from, now)
                            .with_context(|| {
                                format!("cannot compose spike {:?} for rule {rule:?}", cfg.name)
                            })?;
                        alerts += usize::from(alerted);
                    }
                    Ok(alerts)
                })
                .await?;
        }
        Ok(alerts)
    }
}

/// One rule of one spike at `now`, given its matches of the baseline period: detect, and
/// record what changed. Returns whether an alert was composed.
fn look(
    s: &mut Store,
    cfg: &SpikeConfig,
    rule: &str,
    matches: &[(DateTime<Utc>, &str)],
    titles: &RuleBook,
    from: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let p = &cfg.params;
    let was = s.spike_surging(&cfg.name, rule)?;
    let v = detect(matches, now, p, was);
    if v.surging == was {
        return Ok(false);
    }
    if !v.alert {
        s.record_spike(&cfg.name, rule, v.surging, now)?;
        info!(spike = %cfg.name, rule = %rule, count = v.count, "surge over");
        return Ok(false);
    }
    let window = chrono::Duration::from_std(p.window).unwrap_or(chrono::Duration::hours(1));
    let in_window: Vec<&(DateTime<Utc>, &str)> =
        matches.iter().filter(|(t, _)| *t > now - window).collect();
    let feeds = in_window
        .iter()
        .map(|(_, f)| f)
        .collect::<HashSet<_>>()
        .len();
    let title = titles.title(rule).to_string();
    let surge = surge_text(&SurgeFacts {
        rule_title: &title,
        count: v.count,
        unit: match p.count {
            Count::Outlets => "outlets",
            Count::Matches => "matches",
        },
        window: p.window,
        usual: v.usual,
        threshold: v.threshold,
    });

    let mut tx = s.begin_compose()?;
    let found = tx.gather_surge(rule, now - window, SPIKE_ITEMS)?;
    let entries = digest::entries(&found, titles);
    let email = if cfg.to.is_empty() {
        None
    } else {
        let id = tx.next_digest_id()?;
        let c = compose_spike(id, cfg, &surge, from, &entries, now)?;
        Some((
            id,
            NewMessage {
                digest_name: cfg.name.clone(),
                message_id: c.message_id,
                sender: c.sender,
                recipients: c.recipients,
                raw: c.raw,
            },
        ))
    };
    let payload = spike_payload(
        cfg,
        rule,
        &surge.subject,
        &v,
        &entries,
        in_window.len(),
        feeds,
        now,
    );
    let outbox = tx.commit_spike(
        &SpikeAlert {
            spike: &cfg.name,
            rule,
            email: email.as_ref().map(|(id, m)| (*id, m)),
            channels: &cfg.channels,
            payload: &payload.to_json(),
        },
        now,
    )?;
    let emailed = outbox.is_some();
    info!(spike = %cfg.name, rule = %rule, count = v.count, usual = v.usual, threshold = v.threshold, emailed, "spike alert composed");
    Ok(true)
}

/// The channel message of a surge: its newest matches, and its numbers.
#[allow(clippy::too_many_arguments)]
fn spike_payload(
    cfg: &SpikeConfig,
    rule: &str,
    title: &str,
    v: &Verdict,
    entries: &[digest::Entry],
    matches: usize,
    feeds: usize,
    now: DateTime<Utc>,
) -> Payload {
    let mut payload = Payload::from_entries(Event::Spike, &cfg.name, title, entries, matches, now);
    payload.spike = Some(SpikeFacts {
        rule: rule.to_string(),
        window_seconds: cfg.params.window.as_secs(),
        count: u64::from(v.count),
        feeds: feeds as u64,
        baseline: v.usual,
        threshold: v.threshold,
    });
    payload
}
