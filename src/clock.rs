//! The one place newswatch reads the wall clock. Everything else takes `now` as an argument, so
//! schedules, back-off and digests are tested by passing a time in; `clippy.toml` bans
//! `Utc::now` and `SystemTime::now` everywhere but here, and the tidy test checks it.

use chrono::{DateTime, Utc};

/// The current wall-clock time.
#[allow(clippy::disallowed_methods)] // the one sanctioned reader of the wall clock
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
