//! Digest schedules: `daily 07:00`, `weekdays 07:00 and 17:00`, `mon,wed,fri 08:30`, `every 4h`
//! or 5-field cron, read in an IANA time zone, and the pure answer to "which slot is due now?".
//! Pure: no IO and no clock reads; `now` and the last served slot are parameters.
//! A local slot inside a DST gap fires at the first valid instant after it; a slot in a fall-back
//! overlap fires once, at its first occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How long after a slot a first run (nothing ever served) still serves it. Later than that, a
/// freshly started daemon waits for the next slot instead of mailing a stale brief.
pub const DEFAULT_FIRST_RUN_GRACE: Duration = Duration::hours(1);

/// Slots are searched this many local days ahead or back: enough for any cron expression that
/// can fire at all (`0 0 29 2 *` skips at most eight years).
const SEARCH_DAYS: i64 = 8 * 366 + 2;

/// A parsed schedule. Keeps its source text for messages and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Fixed local times on chosen weekdays (`every Nh` is stored this way too: multiples of N
    /// from local midnight, so it behaves across DST exactly like a list of times).
    Times {
        days: u8,
        times: Vec<NaiveTime>,
    },
    Cron(Cron),
}

/// A 5-field cron expression: minute hour day-of-month month day-of-week, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    minutes: u64,
    hours: u32,
    dom: u32,
    months: u16,
    /// Bit 0 = Sunday … bit 6 = Saturday.
    dow: u8,
    /// Vixie cron: when both day fields are restricted, a day matching either one fires.
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule did not parse: the input and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {input:?}: {message}")]
pub struct ScheduleError {
    pub input: String,
    pub message: String,
}

const FORMS: &str = "expected `daily HH:MM`, `weekdays HH:MM and HH:MM`, `mon,wed,fri HH:MM`, \
                     `every 4h` / `every 30m`, or a 5-field cron expression like `30 8 * * 1-5`";

const WEEKDAYS: u8 = 0b001_1111; // Mon..Fri, bit 0 = Monday
const WEEKENDS: u8 = 0b110_0000;
const ALL_DAYS: u8 = 0b111_1111;

impl Schedule {
    /// The text the schedule was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The local times of day this schedule fires on `date`, ascending.
    fn local_times(&self, date: NaiveDate) -> Vec<NaiveTime> {
        match &self.kind {
            Kind::Times { days, times } => {
                let bit = 1u8 << date.weekday().num_days_from_monday();
                if days & bit != 0 {
                    times.clone()
                } else {
                    Vec::new()
                }
            }
            Kind::Cron(c) => {
                if !c.day_matches(date) {
                    return Vec::new();
                }
                let mut out = Vec::new();
                for h in 0..24u32 {
                    if c.hours & (1 << h) == 0 {
                        continue;
                    }
                    for m in 0..60u32 {
                        if c.minutes & (1 << m) != 0
                            && let Some(t) = NaiveTime::from_hms_opt(h, m, 0)
                        {
                            out.push(t);
                        }
                    }
                }
                out
            }
        }
    }

    /// The instants this schedule fires on local `date` in `tz`, ascending, deduplicated (two
    /// slots can land on one instant when one of them sits in a DST gap).
    fn instants_on(&self, tz: Tz, date: NaiveDate) -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> = self
            .local_times(date)
            .into_iter()
            .filter_map(|t| resolve_local(tz, date.and_time(t)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Maps a local wall-clock time to the instant it fires at. In a fall-back overlap the first
/// occurrence wins; in a spring-forward gap the first valid local minute after it (the end of
/// the gap). Gaps are whole minutes in every tz database zone, so a minute walk finds the end.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // The longest gap in the tz database is a day (Samoa skipped 2011-12-30).
    (1..=26 * 60).find_map(|m| {
        tz.from_local_datetime(&(local + Duration::minutes(m)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The earliest slot strictly after `after`.
pub fn next_after(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Start a day early: a slot late on the previous local day can be pushed past midnight by a gap.
    let start = after.with_timezone(&tz).date_naive() - Duration::days(1);
    (0..SEARCH_DAYS).find_map(|d| {
        let date = start + Duration::days(d);
        schedule
            .instants_on(tz, date)
            .into_iter()
            .find(|t| *t > after)
    })
}

/// The latest slot at or before `at`.
pub fn latest_at_or_before(
    schedule: &Schedule,
    tz: Tz,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let start = at.with_timezone(&tz).date_naive() + Duration::days(1);
    (0..SEARCH_DAYS).find_map(|d| {
        let date = start - Duration::days(d);
        schedule
            .instants_on(tz, date)
            .into_iter()
            .rev()
            .find(|t| *t <= at)
    })
}

/// Which slot, if any, is due at `now`, given the slot served last (`last_served`, as returned by
/// an earlier call and recorded once the digest was queued).
///
/// - However many slots passed since `last_served` (daemon down, laptop asleep), only the most
///   recent one is returned: one digest, not one per missed slot.
/// - A slot at or before `last_served` is never returned again, so a clock stepped backwards
///   cannot repeat a digest. (A clock that ran ahead and was corrected delays digests until real
///   time passes the recorded slot; we prefer that to a duplicate.)
/// - With no `last_served` (first run), the most recent slot is served only if it is at most
///   `first_run_grace` old: starting the daemon at 07:20 still sends the 07:00 brief, starting it
///   at noon waits for the next slot instead of mailing a morning brief at lunch.
pub fn due(
    schedule: &Schedule,
    tz: Tz,
    last_served: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    first_run_grace: Duration,
) -> Option<DateTime<Utc>> {
    let slot = latest_at_or_before(schedule, tz, now)?;
    match last_served {
        Some(last) => (slot > last).then_some(slot),
        None => (now - slot <= first_run_grace).then_some(slot),
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(input: &str) -> Result<Self, ScheduleError> {
        let err = |message: String| ScheduleError {
            input: input.to_string(),
            message,
        };
        let text = input.trim().to_ascii_lowercase();
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some(first) = words.first().copied() else {
            return Err(err(format!("empty; {FORMS}")));
        };
        // Day words may be written `mon,wed,fri` or `mon, wed, fri`.
        let day_words = words
            .iter()
            .take_while(|w| parse_days(w.trim_matches(',')).is_some())
            .count();
        let kind = if first == "every" {
            parse_every(&words[1..]).map_err(err)?
        } else if day_words > 0 {
            let days = words[..day_words]
                .iter()
                .filter_map(|w| parse_days(w.trim_matches(',')))
                .fold(0, |a, b| a | b);
            let times = parse_times(&words[day_words..]).map_err(err)?;
            Kind::Times { days, times }
        } else if words.len() == 5 && first.starts_with(|c: char| c.is_ascii_digit() || c == '*') {
            let cron = parse_cron(&words).map_err(err)?;
            // Catch `0 0 30 2 *` at load rather than scanning years for a slot at every tick.
            let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
            if !(0..SEARCH_DAYS).any(|d| cron.day_matches(epoch + Duration::days(d))) {
                return Err(err("this cron expression never fires (no such day)".into()));
            }
            Kind::Cron(cron)
        } else {
            return Err(err(format!(
                "unknown form starting with `{first}`; {FORMS}"
            )));
        };
        Ok(Schedule {
            source: input.trim().to_string(),
            kind,
        })
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Self, ScheduleError> {
        s.parse()
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses an IANA zone name (`Europe/London`), with a hint when it is not one.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: expected an IANA name like `Europe/London` or `UTC`")
    })
}

fn parse_every(rest: &[&str]) -> Result<Kind, String> {
    let expected = || "`every` takes one interval: `every 4h`, `every 30m` (5m to 24h)".to_string();
    let [arg] = rest else {
        return Err(expected());
    };
    let (num, unit) = arg.split_at(arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len()));
    let n: i64 = num.parse().map_err(|_| expected())?;
    let minutes = match unit {
        "m" | "min" => n,
        "h" => n * 60,
        _ => return Err(expected()),
    };
    if !(5..=24 * 60).contains(&minutes) {
        return Err(format!("interval `{arg}` out of range: {}", expected()));
    }
    let times = (0..24 * 60)
        .step_by(usize::try_from(minutes).map_err(|_| expected())?)
        .filter_map(|m: i64| {
            let m = u32::try_from(m).ok()?;
            NaiveTime::from_hms_opt(m / 60, m % 60, 0)
        })
        .collect();
    Ok(Kind::Times {
        days: ALL_DAYS,
        times,
    })
}

/// `daily`, `weekdays`, `weekends`, or a day list `mon,wed,fri` / `mon-fri`.
fn parse_days(word: &str) -> Option<u8> {
    match word {
        "daily" => return Some(ALL_DAYS),
        "weekdays" => return Some(WEEKDAYS),
        "weekends" => return Some(WEEKENDS),
        _ => {}
    }
    let mut days = 0u8;
    for part in word.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                if a > b {
                    return None;
                }
                for d in a..=b {
                    days |= 1 << d;
                }
            }
            None => days |= 1 << day_index(part)?,
        }
    }
    Some(days)
}

/// Monday = 0 … Sunday = 6.
fn day_index(word: &str) -> Option<u8> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let i = NAMES
        .iter()
        .position(|n| word.len() >= 3 && n.starts_with(word))?;
    u8::try_from(i).ok()
}

/// `07:00`, `07:00 and 17:00`, `07:00, 12:00 and 17:00`.
fn parse_times(words: &[&str]) -> Result<Vec<NaiveTime>, String> {
    let mut times = Vec::new();
    for w in words {
        for part in w.split(',').filter(|p| !p.is_empty()) {
            if part == "and" || part == "at" {
                continue;
            }
            let t = NaiveTime::parse_from_str(part, "%H:%M").map_err(|_| {
                format!("expected a time of day as HH:MM (24-hour, like `07:00`), found `{part}`")
            })?;
            times.push(t);
        }
    }
    if times.is_empty() {
        return Err(format!("no time of day given; {FORMS}"));
    }
    times.sort_unstable();
    times.dedup();
    Ok(times)
}

fn parse_cron(fields: &[&str]) -> Result<Cron, String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DOWS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let minutes = cron_field(fields[0], "minute", 0, 59, &[])?;
    let hours = cron_field(fields[1], "hour", 0, 23, &[])?;
    let dom = cron_field(fields[2], "day of month", 1, 31, &[])?;
    let months = cron_field(fields[3], "month", 1, 12, &MONTHS)?;
    let mut dow = cron_field(fields[4], "day of week", 0, 7, &DOWS)?;
    if dow & (1 << 7) != 0 {
        dow = (dow | 1) & 0x7f; // 7 is Sunday too
    }
    Ok(Cron {
        minutes,
        hours: u32::try_from(hours).map_err(|_| "hour out of range".to_string())?,
        dom: u32::try_from(dom).map_err(|_| "day of month out of range".to_string())?,
        months: u16::try_from(months).map_err(|_| "month out of range".to_string())?,
        dow: u8::try_from(dow).map_err(|_| "day of week out of range".to_string())?,
        dom_star: fields[2].starts_with('*'),
        dow_star: fields[4].starts_with('*'),
    })
}

/// One cron field as a bit set: lists of `*`, `N`, `N-M`, each optionally `/step`; names allowed
/// where `names` are given (index + `lo`).
fn cron_field(field: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| *n == s) {
            return Ok(u32::try_from(i).unwrap_or(u32::MAX).saturating_add(lo));
        }
        match s.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "cron {what} field: expected a number {lo}–{hi}{}, found `{s}`",
                if names.is_empty() { "" } else { " or a name" }
            )),
        }
    };
    let mut bits = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("cron {what} field: expected a positive step after `/`, found `{s}`")
                })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            // `N/step` means N to the end of the range.
            (a, if step > 1 { hi } else { a })
        };
        if a > b {
            return Err(format!("cron {what} field: range `{range}` runs backwards"));
        }
        for v in (a..=b).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl Cron {
    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom_ok = self.dom & (1 << date.day()) != 0;
        let dow_ok = self.dow & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }
}

/// Anything shared between tasks must stay shareable.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Schedule>();
};

#[cfg(test)]
mod tests;
