//! When a feed is next due: its interval, the last outcome, the error count, cache hints and
//! `Retry-After` combined into one instant. Pure: `now` and the jitter are inputs; no clock, no
//! randomness, no IO. A feed is never given up on: the back-off only grows to a cap.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a server asked for in `Retry-After` (RFC 9110 §10.2.3): a delay or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Delay(Duration),
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// Parses both forms; garbage (`soon`, `-5`, a malformed date) is `None`, so the caller falls
    /// back to its own back-off. Absurd values are kept here and clamped by [`next_due`].
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than a u64 holds is still "a very long time", not garbage.
            let secs = value.parse::<u64>().unwrap_or(u64::MAX);
            return Some(RetryAfter::Delay(Duration::from_secs(secs)));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(RetryAfter::At(DateTime::<Utc>::from(at)))
    }

    fn delay_from(self, now: DateTime<Utc>) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

/// Freshness the server declared for the response (RFC 9111 §5.2.2.1 and §5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheHints {
    /// `Cache-Control: max-age`.
    pub max_age: Option<Duration>,
    /// `Expires`, read relative to `date` so our clock's skew does not matter.
    pub expires: Option<DateTime<Utc>>,
    /// The response's `Date` header.
    pub date: Option<DateTime<Utc>>,
}

/// Every hint about how often a feed changes; any may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    pub cache: CacheHints,
    /// RSS `<ttl>`.
    pub ttl: Option<Duration>,
    /// `sy:updatePeriod` / `sy:updateFrequency`.
    pub update_period: Option<Duration>,
}

/// Operator-configurable limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// No feed is polled more often than this, whatever its interval or hints say.
    pub min_delay: Duration,
    /// Hints and `Retry-After` never push a poll further out than this.
    pub max_delay: Duration,
    /// The exponential back-off stops growing here; polling then continues at this pace.
    pub backoff_cap: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            min_delay: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(24 * 3600),
            backoff_cap: Duration::from_secs(6 * 3600),
        }
    }
}

/// How the poll that just finished ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 and a feed that parsed.
    Fetched,
    /// 304.
    NotModified,
    /// Anything else: network, status, size, parse. `retry_after` when the server sent one.
    Failed {
        kind: FailureKind,
        retry_after: Option<RetryAfter>,
    },
}

/// Whether retrying soon can help. Both kinds are retried for ever; a persistent failure only
/// starts its back-off two doublings further out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Timeouts, connection errors, 5xx, 408, 429, truncated bodies.
    Transient,
    /// Most 4xx, refused redirects, not a feed, unparseable: a person has to fix something.
    Persistent,
}

/// Extra doublings a persistent failure starts with.
const PERSISTENT_HEAD_START: u32 = 2;

/// The inputs of one scheduling decision.
#[derive(Debug, Clone, Copy)]
pub struct PollInput {
    /// The feed's configured interval.
    pub interval: Duration,
    pub outcome: Outcome,
    /// Consecutive failures including this one (0 after a success).
    pub consecutive_errors: u32,
    pub hints: Hints,
    pub now: DateTime<Utc>,
    /// A uniform sample in `[0, 1)`; the caller owns the randomness so tests can fix it.
    pub jitter: f64,
}

/// Share of a back-off delay that jitter may remove, so failing feeds do not retry in lockstep.
const JITTER_SHARE: f64 = 0.25;

/// The delay until the next poll; see [`next_due`].
pub fn delay(input: &PollInput, bounds: &Bounds) -> Duration {
    let delay = match input.outcome {
        Outcome::Fetched | Outcome::NotModified => {
            let hint = hint(&input.hints, input.now).map(|h| h.min(bounds.max_delay));
            hint.map_or(input.interval, |h| h.max(input.interval))
        }
        Outcome::Failed { kind, retry_after } => {
            let backoff = jittered(backoff(input, kind, bounds), input.jitter);
            match retry_after {
                Some(ra) => ra.delay_from(input.now).min(bounds.max_delay).max(backoff),
                None => backoff,
            }
        }
    };
    delay.max(bounds.min_delay)
}

/// The instant the feed is next due.
pub fn next_due(input: &PollInput, bounds: &Bounds) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(delay(input, bounds)).unwrap_or(chrono::Duration::MAX);
    input
        .now
        .checked_add_signed(d)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The most conservative (longest) of the declared hints.
fn hint(h: &Hints, now: DateTime<Utc>) -> Option<Duration> {
    let expires = h.cache.expires.map(|exp| {
        (exp - h.cache.date.unwrap_or(now))
            .to_std()
            .unwrap_or(Duration::ZERO)
    });
    [h.cache.max_age, expires, h.ttl, h.update_period]
        .into_iter()
        .flatten()
        .max()
}

/// `interval * 2^(errors-1)`, saturating at the cap.
fn backoff(input: &PollInput, kind: FailureKind, bounds: &Bounds) -> Duration {
    let head_start = match kind {
        FailureKind::Transient => 0,
        FailureKind::Persistent => PERSISTENT_HEAD_START,
    };
    let exp = (input.consecutive_errors.max(1) - 1).saturating_add(head_start);
    let base = input.interval.min(bounds.backoff_cap);
    2u32.checked_pow(exp)
        .and_then(|f| base.checked_mul(f))
        .map_or(bounds.backoff_cap, |d| d.min(bounds.backoff_cap))
}

/// A jitter sample in `[0, 1)` from a hash of its inputs: feeds failing together spread out,
/// yet a given seed replays the same schedule.
pub fn hashed_jitter(seed: u64, feed: &str, now: DateTime<Utc>, errors: u32) -> f64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(feed.as_bytes());
    h.update([0]);
    h.update(now.timestamp().to_le_bytes());
    h.update(errors.to_le_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // 53 bits fill an f64 mantissa exactly, so the result stays below 1.
    (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

fn jittered(d: Duration, jitter: f64) -> Duration {
    let j = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    d.mul_f64(1.0 - JITTER_SHARE * j)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 60;
    const H: u64 = 3600;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn at(offset_secs: i64) -> DateTime<Utc> {
        now() + chrono::Duration::seconds(offset_secs)
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    fn fail(ra: Option<RetryAfter>) -> Outcome {
        Outcome::Failed {
            kind: FailureKind::Transient,
            retry_after: ra,
        }
    }

    #[test]
    fn next_due_table() {
        let ok = Outcome::Fetched;
        let nm = Outcome::NotModified;
        let hard = Outcome::Failed {
            kind: FailureKind::Persistent,
            retry_after: None,
        };
        let none = Hints::default();
        let max_age = |s| Hints {
            cache: CacheHints {
                max_age: secs(s),
                ..CacheHints::default()
            },
            ..Hints::default()
        };
        let expires = |date: Option<i64>, exp: i64| Hints {
            cache: CacheHints {
                expires: Some(at(exp)),
                date: date.map(at),
                max_age: None,
            },
            ..Hints::default()
        };
        let ttl = |s| Hints {
            ttl: secs(s),
            ..Hints::default()
        };
        let period = |s| Hints {
            update_period: secs(s),
            ..Hints::default()
        };
        let ra_delay = |s| Some(RetryAfter::Delay(Duration::from_secs(s)));
        let ra_at = |s| Some(RetryAfter::At(at(s)));
        // (name, interval, outcome, errors, hints, jitter, expected delay in seconds)
        #[rustfmt::skip]
        let cases: &[(&str, u64, Outcome, u32, Hints, f64, u64)] = &[
            ("ok, no hints", 15 * M, ok, 0, none, 0.0, 15 * M),
            ("304, no hints", 15 * M, nm, 0, none, 0.9, 15 * M),
            ("interval below floor", M, ok, 0, none, 0.0, 5 * M),
            ("max-age shorter than interval", 15 * M, ok, 0, max_age(60), 0.0, 15 * M),
            ("max-age longer", 15 * M, ok, 0, max_age(2 * H), 0.0, 2 * H),
            ("max-age huge, clamped", 15 * M, ok, 0, max_age(400 * 24 * H), 0.0, 24 * H),
            ("expires relative to Date", 15 * M, ok, 0, expires(Some(-7200), -3600), 0.0, H),
            ("expires without Date", 15 * M, ok, 0, expires(None, 3 * 3600), 0.0, 3 * H),
            ("expires in the past", 15 * M, ok, 0, expires(None, -60), 0.0, 15 * M),
            ("rss ttl", 15 * M, nm, 0, ttl(H), 0.0, H),
            ("sy:updatePeriod daily", 15 * M, ok, 0, period(24 * H), 0.0, 24 * H),
            ("interval above max kept", 48 * H, ok, 0, ttl(H), 0.0, 48 * H),
            ("first error", 15 * M, fail(None), 1, none, 0.0, 15 * M),
            ("second error", 15 * M, fail(None), 2, none, 0.0, 30 * M),
            ("third error", 15 * M, fail(None), 3, none, 0.0, H),
            ("third error, full jitter", 15 * M, fail(None), 3, none, 1.0, 45 * M),
            ("tenth error capped", 15 * M, fail(None), 10, none, 0.0, 6 * H),
            ("error count overflow capped", 15 * M, fail(None), u32::MAX, none, 0.0, 6 * H),
            ("nan jitter ignored", 15 * M, fail(None), 2, none, f64::NAN, 30 * M),
            ("retry-after seconds", 15 * M, fail(ra_delay(2 * H)), 1, none, 0.0, 2 * H),
            ("retry-after shorter than back-off", 15 * M, fail(ra_delay(30)), 2, none, 0.0, 30 * M),
            ("retry-after date", 15 * M, fail(ra_at(3 * 3600)), 1, none, 0.0, 3 * H),
            ("retry-after date in the past", 15 * M, fail(ra_at(-60)), 1, none, 0.0, 15 * M),
            ("retry-after huge, clamped", 15 * M, fail(ra_delay(u64::MAX)), 1, none, 0.0, 24 * H),
            ("hints ignored on failure", 15 * M, fail(None), 1, ttl(12 * H), 0.0, 15 * M),
            ("persistent first error", 15 * M, hard, 1, none, 0.0, H),
            ("persistent second error", 15 * M, hard, 2, none, 0.0, 2 * H),
            ("persistent many errors capped", 15 * M, hard, 9, none, 0.0, 6 * H),
            ("persistent overflow capped", 15 * M, hard, u32::MAX, none, 0.0, 6 * H),
        ];
        let bounds = Bounds::default();
        for &(name, interval, outcome, errors, hints, jitter, want) in cases {
            let input = PollInput {
                interval: Duration::from_secs(interval),
                outcome,
                consecutive_errors: errors,
                hints,
                now: now(),
                jitter,
            };
            assert_eq!(delay(&input, &bounds), Duration::from_secs(want), "{name}");
            assert_eq!(next_due(&input, &bounds), at(want as i64), "{name}");
        }
    }

    #[test]
    fn hashed_jitter_is_reproducible_and_spread() {
        let a = hashed_jitter(7, "feed-a", now(), 3);
        assert_eq!(a, hashed_jitter(7, "feed-a", now(), 3));
        let samples: Vec<f64> = (0..64)
            .map(|i| hashed_jitter(7, &format!("feed-{i}"), now(), 3))
            .collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        let low = samples.iter().filter(|&&j| j < 0.5).count();
        assert!((16..=48).contains(&low), "{low} of 64 below 0.5");
        assert_ne!(a, hashed_jitter(8, "feed-a", now(), 3));
    }

    #[test]
    fn retry_after_parsing() {
        let d = |s| Some(RetryAfter::Delay(Duration::from_secs(s)));
        let date = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|d| d.with_timezone(&Utc))
            .ok();
        #[rustfmt::skip]
        let cases: &[(&str, Option<RetryAfter>)] = &[
            ("120", d(120)),
            (" 0 ", d(0)),
            ("99999999999999999999999", d(u64::MAX)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", date.map(RetryAfter::At)),
            ("Wednesday, 21-Oct-15 07:28:00 GMT", date.map(RetryAfter::At)),
            ("Wed Oct 21 07:28:00 2015", date.map(RetryAfter::At)),
            ("soon", None),
            ("-5", None),
            ("1.5", None),
            ("", None),
            ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ];
        for &(input, want) in cases {
            assert_eq!(RetryAfter::parse(input), want, "{input:?}");
        }
    }
}
