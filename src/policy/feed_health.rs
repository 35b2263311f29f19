//! Feed health: whether a feed has been failing, or silent, for long enough to tell the operator,
//! and when it has recovered. Pure: `now` and the feed's stored history are inputs; the store
//! keeps the state and the notices, the digest renders them. One notice per change of state.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A feed's health as last told to the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Ok,
    /// Fetching or parsing has failed for longer than `failing_after`.
    Failing,
    /// Fetching works, but nothing new has come for much longer than the feed's cadence.
    Silent,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Failing => "failing",
            Health::Silent => "silent",
        }
    }

    /// Unknown text (a newer schema's value) reads as `Ok`: the next poll re-assesses it.
    pub fn parse(s: &str) -> Health {
        match s {
            "failing" => Health::Failing,
            "silent" => Health::Silent,
            _ => Health::Ok,
        }
    }
}

/// What an operator notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Failing,
    Silent,
    Recovered,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Failing => "failing",
            NoticeKind::Silent => "silent",
            NoticeKind::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> NoticeKind {
        match s {
            "failing" => NoticeKind::Failing,
            "silent" => NoticeKind::Silent,
            _ => NoticeKind::Recovered,
        }
    }
}

/// Operator-configurable thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub failing_after: Duration,
    /// Silent when nothing new came for `silent_factor` times the usual cadence.
    pub silent_factor: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failing_after: Duration::from_secs(24 * 3600),
            silent_factor: 10,
        }
    }
}

/// Polls with new items needed before a cadence is trusted enough to call a feed silent.
pub const MIN_CADENCE_SAMPLES: u32 = 3;

/// A feed's history right after one poll was recorded.
#[derive(Debug, Clone, Copy)]
pub struct HealthInput {
    pub health: Health,
    /// Consecutive failures, including this poll's (0 after a success).
    pub error_count: u32,
    /// When the current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last poll that brought an item never seen before.
    pub last_new_item: Option<DateTime<Utc>>,
    /// Typical time between polls that bring new items.
    pub cadence: Option<Duration>,
    pub cadence_samples: u32,
    pub now: DateTime<Utc>,
}

/// The health after this poll, and the notice to record if it changed.
pub fn assess(input: &HealthInput, t: &Thresholds) -> (Health, Option<NoticeKind>) {
    let since = |at: Option<DateTime<Utc>>| {
        at.and_then(|a| (input.now - a).to_std().ok())
            .unwrap_or(Duration::ZERO)
    };
    if input.error_count > 0 {
        if input.health != Health::Failing && since(input.failing_since) >= t.failing_after {
            return (Health::Failing, Some(NoticeKind::Failing));
        }
        return (input.health, None);
    }
    let brought_news = input.last_new_item == Some(input.now);
    match input.health {
        Health::Failing => (Health::Ok, Some(NoticeKind::Recovered)),
        Health::Silent if brought_news => (Health::Ok, Some(NoticeKind::Recovered)),
        Health::Silent => (Health::Silent, None),
        Health::Ok => match silent_after(input, t) {
            Some(limit) if since(input.last_new_item) > limit => {
                (Health::Silent, Some(NoticeKind::Silent))
            }
            _ => (Health::Ok, None),
        },
    }
}

/// How long a feed may bring nothing new before it counts as silent, once its cadence is known.
fn silent_after(input: &HealthInput, t: &Thresholds) -> Option<Duration> {
    if input.cadence_samples < MIN_CADENCE_SAMPLES || input.last_new_item.is_none() {
        return None;
    }
    let cadence = input.cadence?;
    Some(
        cadence
            .checked_mul(t.silent_factor)
            .unwrap_or(Duration::MAX)
            .max(t.failing_after),
    )
}

/// The cadence after a poll that brought new items `gap` after the previous such poll: a moving
/// average that forgets slowly, so one burst does not make a daily feed look silent.
pub fn next_cadence(previous: Option<Duration>, gap: Duration) -> Duration {
    match previous {
        None => gap,
        Some(p) => (p * 3 + gap) / 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn at(h: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_700_000_000 + h * H, 0)
    }

    /// (name, health, errors, failing_since, last_new_item, cadence, samples, now, expected)
    type Case = (
        &'static str,
        Health,
        u32,
        Option<i64>,
        Option<i64>,
        Option<Duration>,
        u32,
        i64,
        (Health, Option<NoticeKind>),
    );

    #[test]
    fn notices_table() {
        let t = Thresholds {
            failing_after: Duration::from_secs(24 * 3600),
            silent_factor: 10,
        };
        let hourly = Some(Duration::from_secs(3600));
        let daily = Some(Duration::from_secs(24 * 3600));
        use Health::{Failing, Ok as Fine, Silent};
        use NoticeKind as N;
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("first failure", Fine, 1, Some(0), None, None, 0, 0, (Fine, None)),
            ("failing 23h", Fine, 9, Some(0), None, None, 0, 23, (Fine, None)),
            ("failing 24h", Fine, 10, Some(0), None, None, 0, 24, (Failing, Some(N::Failing))),
            ("still failing: no repeat", Failing, 11, Some(0), None, None, 0, 30, (Failing, None)),
            ("recovered", Failing, 0, None, Some(0), hourly, 5, 31, (Fine, Some(N::Recovered))),
            ("healthy", Fine, 0, None, Some(10), hourly, 5, 11, (Fine, None)),
            ("hourly feed quiet 23h: floor is 24h", Fine, 0, None, Some(0), hourly, 5, 23, (Fine, None)),
            ("hourly feed quiet 25h", Fine, 0, None, Some(0), hourly, 5, 25, (Silent, Some(N::Silent))),
            ("daily feed quiet 5 days", Fine, 0, None, Some(0), daily, 5, 120, (Fine, None)),
            ("daily feed quiet 11 days", Fine, 0, None, Some(0), daily, 5, 264, (Silent, Some(N::Silent))),
            ("cadence unknown: never silent", Fine, 0, None, Some(0), hourly, 2, 1000, (Fine, None)),
            ("silent stays silent", Silent, 0, None, Some(0), hourly, 5, 40, (Silent, None)),
            ("silent then news", Silent, 0, None, Some(41), hourly, 5, 41, (Fine, Some(N::Recovered))),
            ("silent then failing 24h", Silent, 3, Some(50), Some(0), hourly, 5, 74, (Failing, Some(N::Failing))),
        ];
        for &(name, health, errors, since, last_new, cadence, samples, now, want) in cases {
            let input = HealthInput {
                health,
                error_count: errors,
                failing_since: since.and_then(at),
                last_new_item: last_new.and_then(at),
                cadence,
                cadence_samples: samples,
                now: at(now).unwrap_or_default(),
            };
            assert_eq!(assess(&input, &t), want, "{name}");
        }
    }

    #[test]
    fn cadence_moves_slowly() {
        let h = Duration::from_secs(3600);
        assert_eq!(next_cadence(None, h), h);
        assert_eq!(next_cadence(Some(h), h * 5), h * 2);
    }
}
