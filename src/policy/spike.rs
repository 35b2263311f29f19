//! When a rule's matches surge (`[[spike]]`, issue 19): the last `window` against the rule's
//! usual rate over `baseline` (buckets of one window each), robustly: the median and the MAD
//! (scaled to σ), the same time of week counted as usual too (a weekly rhythm is not a surge),
//! and a minimum count. By default a bucket counts outlets (distinct feeds with a match), so one
//! feed's flood is one outlet, not a surge across outlets; `matches` counts every match.
//! Hysteresis: a surge alerts once, and not again until the rate has fallen back. Pure: the
//! matches, the state and `now` come in as arguments.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Distinct feeds with at least one match: a flood from one feed counts once.
    Outlets,
    /// Every match.
    Matches,
}

/// A `[[spike]]`'s numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeParams {
    pub window: Duration,
    pub baseline: Duration,
    /// How many σ (1.4826 × MAD, at least 1) above the usual count a surge starts.
    pub k: f64,
    /// The least count in the window that can be a surge.
    pub min_count: u32,
    pub count: Count,
}

impl Default for SpikeParams {
    fn default() -> Self {
        SpikeParams {
            window: Duration::from_secs(3600),
            baseline: Duration::from_secs(14 * 86_400),
            k: 3.0,
            min_count: 5,
            count: Count::Outlets,
        }
    }
}

/// What the detector concluded at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The window's count.
    pub count: u32,
    /// The usual count: the larger of the baseline's median and the same time of week's.
    pub usual: f64,
    /// The count a surge needs.
    pub threshold: f64,
    /// In a surge now (the state to pass next time).
    pub surging: bool,
    /// A surge began now: send the spike alert.
    pub alert: bool,
}

const WEEK: i64 = 7 * 86_400;

/// Decides at `now` from the rule's matches (`(time, feed)`, any order, at least the last
/// `baseline + window`), whether it was `surging` at the last look.
pub fn detect(
    matches: &[(DateTime<Utc>, &str)],
    now: DateTime<Utc>,
    p: &SpikeParams,
    surging: bool,
) -> Verdict {
    let window = chrono::Duration::from_std(p.window).unwrap_or(chrono::Duration::hours(1));
    let win_s = window.num_seconds().max(1);
    let buckets = (p.baseline.as_secs() as i64 / win_s).max(1);
    // Bucket i covers (now - (i+1)·window, now - i·window]; 0 is the current window.
    let mut feeds: Vec<HashSet<&str>> = vec![HashSet::new(); buckets as usize + 1];
    let mut counts: Vec<u32> = vec![0; buckets as usize + 1];
    for &(at, feed) in matches {
        let age = (now - at).num_seconds();
        if age < 0 {
            continue;
        }
        let i = age / win_s;
        if i <= buckets {
            let i = i as usize;
            feeds[i].insert(feed);
            counts[i] += 1;
        }
    }
    let metric = |i: usize| -> f64 {
        match p.count {
            Count::Outlets => feeds[i].len() as f64,
            Count::Matches => f64::from(counts[i]),
        }
    };
    let count = metric(0) as u32;
    let base: Vec<f64> = (1..=buckets as usize).map(metric).collect();
    let m = median(base.clone());
    let sigma = (1.4826 * median(base.iter().map(|x| (x - m).abs()).collect())).max(1.0);
    // The same window one, two… weeks ago, when the baseline reaches that far.
    let per_week = (WEEK / win_s) as usize;
    let seasonal: Vec<f64> = (1..)
        .map(|w| w * per_week)
        .take_while(|&i| per_week > 0 && i <= buckets as usize)
        .map(metric)
        .collect();
    let usual = if seasonal.is_empty() {
        m
    } else {
        m.max(median(seasonal))
    };
    let threshold = (usual + p.k * sigma).max(f64::from(p.min_count));
    let now_surging = if surging {
        // Fallen back: below the usual count plus one σ (not merely below the threshold).
        f64::from(count) > usual + sigma
    } else {
        f64::from(count) >= threshold
    };
    Verdict {
        count,
        usual,
        threshold,
        surging: now_surging,
        alert: now_surging && !surging,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-03-02T10:00:00Z"; // a Monday

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(NOW)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    const FEEDS: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

    /// Matches for the hour `hours_ago` back (0: the current window): `outlets` feeds, each
    /// with `per_feed` matches spread over the hour.
    fn hour(
        out: &mut Vec<(DateTime<Utc>, &'static str)>,
        hours_ago: i64,
        outlets: usize,
        per_feed: usize,
    ) {
        let end = now() - chrono::Duration::hours(hours_ago);
        for f in 0..outlets {
            for j in 0..per_feed {
                let secs = 1 + ((f * per_feed + j) * 3599 / (outlets * per_feed).max(1)) as i64;
                out.push((
                    end - chrono::Duration::seconds(secs.min(3599)),
                    FEEDS[f % FEEDS.len()],
                ));
            }
        }
    }

    /// 14 days of hourly history from `usual(hours_ago)` (outlets, matches per outlet), then the
    /// current hour's (outlets, matches per outlet).
    fn series(
        usual: impl Fn(i64) -> (usize, usize),
        current: (usize, usize),
    ) -> Vec<(DateTime<Utc>, &'static str)> {
        let mut out = Vec::new();
        for h in 1..=14 * 24 {
            let (o, n) = usual(h);
            hour(&mut out, h, o, n);
        }
        hour(&mut out, 0, current.0, current.1);
        out
    }

    #[test]
    fn surges_are_told_from_rhythms_slow_rises_and_floods() {
        let p = SpikeParams::default();
        let by_matches = SpikeParams {
            count: Count::Matches,
            ..p
        };
        let steady = |_| (2, 1);
        // Monday 09:00–10:00 is the weekly briefing: 8 outlets every week.
        let weekly = |h: i64| if h % (7 * 24) == 0 { (8, 1) } else { (2, 1) };
        // From 1 outlet an hour two weeks ago to 4 now, a little at a time.
        let slow = |h: i64| (1 + ((14 * 24 - h) * 3 / (14 * 24)) as usize, 1);
        // (case, history, current hour, params, surging before, (alert, surging after))
        type Row<'a> = (
            &'a str,
            &'a dyn Fn(i64) -> (usize, usize),
            (usize, usize),
            SpikeParams,
            bool,
            (bool, bool),
        );
        let rows: [Row<'_>; 11] = [
            ("steady", &steady, (2, 1), p, false, (false, false)),
            (
                "steady, one more outlet",
                &steady,
                (4, 1),
                p,
                false,
                (false, false),
            ),
            ("true surge", &steady, (9, 2), p, false, (true, true)),
            (
                "surge goes on: no second alert",
                &steady,
                (9, 2),
                p,
                true,
                (false, true),
            ),
            (
                "surge easing, still above usual",
                &steady,
                (4, 1),
                p,
                true,
                (false, true),
            ),
            ("fallen back", &steady, (3, 1), p, true, (false, false)),
            (
                "weekly rhythm at its usual hour",
                &weekly,
                (8, 1),
                p,
                false,
                (false, false),
            ),
            (
                "surge beyond the weekly rhythm",
                &weekly,
                (12, 1),
                p,
                false,
                (true, true),
            ),
            ("slow rise", &slow, (4, 1), p, false, (false, false)),
            (
                "one feed floods: one outlet",
                &steady,
                (1, 60),
                p,
                false,
                (false, false),
            ),
            (
                "one feed floods, counting matches",
                &steady,
                (1, 60),
                by_matches,
                false,
                (true, true),
            ),
        ];
        for (case, usual, current, params, before, (alert, after)) in rows {
            let m = series(usual, current);
            let v = detect(&m, now(), &params, before);
            assert_eq!((v.alert, v.surging), (alert, after), "{case}: {v:?}");
        }
    }

    #[test]
    fn a_quiet_rule_needs_the_minimum_count() {
        let p = SpikeParams::default();
        // Nothing for two weeks: MAD 0, σ floored at 1, so 3 outlets are not yet a surge.
        for (outlets, alert) in [(3, false), (4, false), (5, true)] {
            let mut m = Vec::new();
            hour(&mut m, 0, outlets, 1);
            assert_eq!(
                detect(&m, now(), &p, false).alert,
                alert,
                "{outlets} outlets"
            );
        }
        assert!(!detect(&[], now(), &p, false).alert);
    }
}
