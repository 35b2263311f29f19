//! A spike alert's email: the surge's newest matches rendered with the alert's templates, under
//! a subject and heading that state the surge in numbers ("Surge: Minerals deal — 4 outlets in
//! the last hour (usually ~0)"). The same line titles the spike's channel messages. Pure.

use chrono::{DateTime, Utc};

use crate::config::SpikeConfig;
use crate::digest::email_safety::clean_line;
use crate::digest::{Audience, Batch, Composed, DigestError, Entry, Kind, message, render};

/// Stories a spike email shows (the surge's newest headlines).
pub const SPIKE_ITEMS: usize = 10;

/// What a surge looks like in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurgeText {
    /// The email's title: "Surge: <rule title>".
    pub title: String,
    /// One line: the email's subject and the channel message's title.
    pub subject: String,
    /// The email's heading, under its title: the numbers behind the alert.
    pub heading: String,
}

/// The numbers of one surge, as the detector saw them.
#[derive(Debug, Clone, Copy)]
pub struct SurgeFacts<'a> {
    pub rule_title: &'a str,
    /// Outlets or matches in the window.
    pub count: u32,
    /// `"outlets"` or `"matches"`.
    pub unit: &'a str,
    pub window: std::time::Duration,
    pub usual: f64,
    pub threshold: f64,
}

/// "the last hour", "the last 30 min", "the last 2 hours", "the last day".
fn last(window: std::time::Duration) -> String {
    let secs = window.as_secs();
    match secs {
        3600 => "the last hour".to_string(),
        86_400 => "the last day".to_string(),
        s if s % 86_400 == 0 => format!("the last {} days", s / 86_400),
        s if s % 3600 == 0 => format!("the last {} hours", s / 3600),
        s => format!("the last {} min", s.div_ceil(60)),
    }
}

/// The subject and heading of a surge.
pub fn surge_text(f: &SurgeFacts<'_>) -> SurgeText {
    let title = clean_line(f.rule_title, 120);
    let last = last(f.window);
    SurgeText {
        title: format!("Surge: {title}"),
        subject: clean_line(
            &format!(
                "Surge: {title} — {} {} in {last} (usually ~{:.0})",
                f.count, f.unit, f.usual
            ),
            200,
        ),
        heading: format!(
            "{} {} in {last}; usually ~{:.0}, an alert from {:.0}",
            f.count, f.unit, f.usual, f.threshold
        ),
    }
}

/// Composes spike `cfg`'s email `id` about one surge from its newest matches (`entries`).
pub fn compose_spike(
    id: i64,
    cfg: &SpikeConfig,
    surge: &SurgeText,
    from: &str,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> Result<Composed, DigestError> {
    let audience = Audience {
        kind: Kind::Spike,
        name: &cfg.name,
        title: Some(&surge.title),
        subject_prefix: "",
        to: &cfg.to,
        timezone: cfg.timezone,
        max_items: SPIKE_ITEMS,
        templates: None,
        rules: cfg.rules.patterns(),
        unsubscribe: &cfg.unsubscribe,
        surge: Some(surge),
    };
    let rendered = render(&audience, &Batch::complete(entries.to_vec()), &[], now)?;
    message::build(id, &audience, from, &rendered, now)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_surge_in_words() {
        let facts = |window: u64, unit| SurgeFacts {
            rule_title: "Minerals deal",
            count: 4,
            unit,
            window: Duration::from_secs(window),
            usual: 0.4,
            threshold: 3.0,
        };
        let t = surge_text(&facts(3600, "outlets"));
        assert_eq!(
            t.subject,
            "Surge: Minerals deal — 4 outlets in the last hour (usually ~0)"
        );
        assert_eq!(t.title, "Surge: Minerals deal");
        assert_eq!(
            t.heading,
            "4 outlets in the last hour; usually ~0, an alert from 3"
        );
        for (window, words) in [
            (1800, "the last 30 min"),
            (7200, "the last 2 hours"),
            (86_400, "the last day"),
            (172_800, "the last 2 days"),
            (90, "the last 2 min"),
        ] {
            assert!(
                surge_text(&facts(window, "matches"))
                    .subject
                    .contains(&format!("4 matches in {words} ")),
                "{window}"
            );
        }
    }
}
