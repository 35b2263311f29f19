//! The daemon's recent stage timings for the console's overview: each stage's runs that did
//! work (a batch of polls fetched or stored, articles matched, emails composed or delivered),
//! kept for the last `WINDOW` in memory, summarised per stage. Fed by the same calls that
//! update `/metrics`; nothing is persisted (a restart starts empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// How far back the summary looks.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Runs kept per stage at most (a busy fetch stage polls a thousand feeds in a window).
const KEEP: usize = 4_096;

/// A stage of the pipeline, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    Store,
    Match,
    Compose,
    Deliver,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Fetch,
        Stage::Store,
        Stage::Match,
        Stage::Compose,
        Stage::Deliver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Store => "store",
            Stage::Match => "match",
            Stage::Compose => "compose",
            Stage::Deliver => "deliver",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One stage's runs within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSummary {
    pub stage: Stage,
    pub runs: usize,
    pub median: Duration,
    pub max: Duration,
    pub last: Option<(DateTime<Utc>, Duration)>,
}

/// One stage's runs: when each finished and how long it took, oldest first.
type Runs = VecDeque<(DateTime<Utc>, Duration)>;

/// Shared between the stages (writers) and the console (reader); clones share.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    runs: Arc<Mutex<[Runs; 5]>>,
}

impl StageTimes {
    /// One run of `stage` that finished at `at` and took `took`.
    pub fn record(&self, stage: Stage, at: DateTime<Utc>, took: Duration) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let q = &mut runs[stage.index()];
        if q.len() >= KEEP {
            q.pop_front();
        }
        q.push_back((at, took));
    }

    /// Each stage's runs in the `WINDOW` before `now` (older ones are dropped).
    pub fn summary(&self, now: DateTime<Utc>) -> Vec<StageSummary> {
        let cutoff = now - chrono::Duration::from_std(WINDOW).unwrap_or(chrono::Duration::MAX);
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        Stage::ALL
            .iter()
            .map(|&stage| {
                let q = &mut runs[stage.index()];
                while q.front().is_some_and(|(at, _)| *at < cutoff) {
                    q.pop_front();
                }
                let mut took: Vec<Duration> = q.iter().map(|(_, d)| *d).collect();
                took.sort_unstable();
                StageSummary {
                    stage,
                    runs: took.len(),
                    median: took.get(took.len() / 2).copied().unwrap_or_default(),
                    max: took.last().copied().unwrap_or_default(),
                    last: q.back().copied(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn runs_in_the_window_are_summarised_per_stage() {
        let t = StageTimes::default();
        let ms = Duration::from_millis;
        t.record(Stage::Fetch, at("2026-01-01T09:00:00Z"), ms(900));
        for (s, d) in [("10:00:00", 30), ("10:01:00", 10), ("10:02:00", 20)] {
            t.record(Stage::Fetch, at(&format!("2026-01-01T{s}Z")), ms(d));
        }
        t.record(Stage::Deliver, at("2026-01-01T10:03:00Z"), ms(250));
        let s = t.summary(at("2026-01-01T10:05:00Z"));
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].stage, Stage::Fetch);
        assert_eq!(
            (s[0].runs, s[0].median, s[0].max),
            (3, ms(20), ms(30)),
            "the 09:00 run is out of the window"
        );
        assert_eq!(s[0].last, Some((at("2026-01-01T10:02:00Z"), ms(20))));
        assert_eq!((s[1].runs, s[1].last), (0, None));
        assert_eq!(
            (s[4].stage, s[4].runs, s[4].max),
            (Stage::Deliver, 1, ms(250))
        );
    }
}
