//! Table tests for `schedule`: parsing, next slot, due-ness across DST, downtime and clock jumps.

use super::*;
use chrono::Timelike;
use chrono_tz::America::New_York;
use chrono_tz::Europe::London;
use chrono_tz::UTC;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
        .with_timezone(&Utc)
}

fn sched(s: &str) -> Schedule {
    s.parse().expect("valid test input")
}

#[test]
fn next_after_table() {
    #[rustfmt::skip]
    let cases: &[(&str, Tz, &str, &str)] = &[
        // schedule, zone, after, expected next slot (UTC)
        ("daily 07:00", London, "2025-01-15T08:00:00Z", "2025-01-16T07:00:00Z"),
        ("daily 07:00", London, "2025-06-15T05:00:00Z", "2025-06-15T06:00:00Z"),
        ("daily 07:00", London, "2025-06-15T06:00:00Z", "2025-06-16T06:00:00Z"),
        ("Daily 07:00", New_York, "2025-03-09T00:00:00Z", "2025-03-09T11:00:00Z"),
        ("daily 07:00", New_York, "2025-03-08T00:00:00Z", "2025-03-08T12:00:00Z"),
        ("weekdays 07:00 and 17:00", London, "2025-01-17T18:00:00Z", "2025-01-20T07:00:00Z"),
        ("weekdays 07:00 and 17:00", London, "2025-01-20T07:00:00Z", "2025-01-20T17:00:00Z"),
        ("weekdays 07:00, 12:00 and 17:00", London, "2025-01-20T07:00:00Z", "2025-01-20T12:00:00Z"),
        ("daily at 06:45", UTC, "2025-01-15T07:00:00Z", "2025-01-16T06:45:00Z"),
        ("weekends 09:00", UTC, "2025-01-15T00:00:00Z", "2025-01-18T09:00:00Z"),
        ("mon,wed,fri 08:30", New_York, "2025-01-14T12:00:00Z", "2025-01-15T13:30:00Z"),
        ("mon, wed, fri 08:30", New_York, "2025-01-15T13:30:00Z", "2025-01-17T13:30:00Z"),
        ("tue-thu 06:00", UTC, "2025-01-16T07:00:00Z", "2025-01-21T06:00:00Z"),
        ("sunday 18:00", UTC, "2025-01-13T00:00:00Z", "2025-01-19T18:00:00Z"),
        ("every 4h", London, "2025-01-15T05:00:00Z", "2025-01-15T08:00:00Z"),
        ("every 4h", London, "2025-07-15T05:00:00Z", "2025-07-15T07:00:00Z"),
        ("every 4h", London, "2025-01-15T21:00:00Z", "2025-01-16T00:00:00Z"),
        ("every 30m", UTC, "2025-01-15T10:00:00Z", "2025-01-15T10:30:00Z"),
        ("every 5h", UTC, "2025-01-15T20:00:00Z", "2025-01-16T00:00:00Z"),
        ("30 8 * * 1-5", New_York, "2025-01-17T14:00:00Z", "2025-01-20T13:30:00Z"),
        ("0 9 1 * *", UTC, "2025-01-01T09:00:00Z", "2025-02-01T09:00:00Z"),
        ("0 0 29 feb *", UTC, "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("*/15 * * * *", UTC, "2025-01-15T10:07:00Z", "2025-01-15T10:15:00Z"),
        ("0 12 13 * fri", UTC, "2025-01-01T00:00:00Z", "2025-01-03T12:00:00Z"),
        ("0 22 * * 7", UTC, "2025-01-13T00:00:00Z", "2025-01-19T22:00:00Z"),
        ("0 8-18/5 * * *", UTC, "2025-01-15T08:00:00Z", "2025-01-15T13:00:00Z"),
        ("5,35 * * jan-mar *", UTC, "2025-03-31T23:40:00Z", "2026-01-01T00:05:00Z"),
        // Spring-forward gap: 01:30 does not exist in London on 30 March 2025 (01:00 GMT → 02:00
        // BST at 01:00Z); the slot fires at the first valid instant after it, 02:00 BST.
        ("daily 01:30", London, "2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z"),
        ("daily 01:30", London, "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"),
        // Gap slot and the gap's end coincide: one instant, not two.
        ("daily 01:30 and 02:00", London, "2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z"),
        ("daily 01:30 and 02:00", London, "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"),
        ("daily 02:30", New_York, "2025-03-09T05:00:00Z", "2025-03-09T07:00:00Z"),
        // Fall-back overlap: 01:30 happens twice; only the first (BST / EDT) fires.
        ("daily 01:30", London, "2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z"),
        ("daily 01:30", London, "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"),
        ("daily 01:30", New_York, "2025-11-02T00:00:00Z", "2025-11-02T05:30:00Z"),
        ("daily 01:30", New_York, "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"),
        ("30 1 * * *", London, "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"),
    ];
    for (s, tz, after, want) in cases {
        let got = next_after(&sched(s), *tz, at(after));
        assert_eq!(got, Some(at(want)), "{s:?} in {tz} after {after}");
    }
}

#[test]
fn parse_errors_say_what_was_expected() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("   ", "empty"),
        ("daily", "no time of day"),
        ("daily 7am", "HH:MM"),
        ("daily 25:00", "HH:MM"),
        ("weekdays 07:00 or 17:00", "found `or`"),
        ("every 4", "every 4h"),
        ("every", "every 4h"),
        ("every 4d", "every 4h"),
        ("every 2m", "out of range"),
        ("every 25h", "out of range"),
        ("fortnightly 07:00", "unknown form starting with `fortnightly`"),
        ("0 9 * *", "unknown form"),
        ("61 * * * *", "cron minute field: expected a number 0–59, found `61`"),
        ("0 24 * * *", "cron hour field"),
        ("0 9 0 * *", "cron day of month field"),
        ("0 9 * 13 *", "cron month field"),
        ("0 9 * * 8", "cron day of week field: expected a number 0–7 or a name"),
        ("0 9 * * mon-", "cron day of week field"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "positive step"),
        ("0 9 * * funday", "found `funday`"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 apr,jun *", "never fires"),
    ];
    for (input, want) in cases {
        match input.parse::<Schedule>() {
            Ok(s) => panic!("{input:?} parsed as {s:?}, wanted an error containing {want:?}"),
            Err(e) => assert!(
                e.to_string().contains(want),
                "{input:?}: error {e} should contain {want:?}"
            ),
        }
    }
}

/// name, schedule, zone, last served, now, first-run grace, expected slot.
type DueCase<'a> = (
    &'a str,
    &'a str,
    Tz,
    Option<&'a str>,
    &'a str,
    Duration,
    Option<&'a str>,
);

#[test]
fn due_table() {
    let h1 = DEFAULT_FIRST_RUN_GRACE;
    #[rustfmt::skip]
    let cases: &[DueCase] = &[
        // name, schedule, zone, last served, now, first-run grace, expected slot
        ("first run just after a slot serves it", "daily 07:00", London, None, "2025-01-15T07:20:00Z", h1, Some("2025-01-15T07:00:00Z")),
        ("first run at the slot instant", "daily 07:00", London, None, "2025-01-15T07:00:00Z", h1, Some("2025-01-15T07:00:00Z")),
        ("first run long after waits for the next slot", "daily 07:00", London, None, "2025-01-15T12:00:00Z", h1, None),
        ("first run before today's slot sends no backlog", "daily 07:00", London, None, "2025-01-15T06:59:00Z", h1, None),
        ("first run with a wide grace", "daily 07:00", London, None, "2025-01-15T12:00:00Z", Duration::hours(6), Some("2025-01-15T07:00:00Z")),
        ("first run with zero grace", "daily 07:00", London, None, "2025-01-15T07:00:01Z", Duration::zero(), None),
        ("nothing due before the slot", "daily 07:00", London, Some("2025-01-14T07:00:00Z"), "2025-01-15T06:59:59Z", h1, None),
        ("due exactly at the slot", "daily 07:00", London, Some("2025-01-14T07:00:00Z"), "2025-01-15T07:00:00Z", h1, Some("2025-01-15T07:00:00Z")),
        ("already served", "daily 07:00", London, Some("2025-01-15T07:00:00Z"), "2025-01-15T07:20:00Z", h1, None),
        ("down three days: one send, the latest slot", "daily 07:00", London, Some("2025-01-10T07:00:00Z"), "2025-01-13T09:00:00Z", h1, Some("2025-01-13T07:00:00Z")),
        ("down three days, back before today's slot", "daily 07:00", London, Some("2025-01-10T07:00:00Z"), "2025-01-13T06:00:00Z", h1, Some("2025-01-12T07:00:00Z")),
        ("down over a weekend: Friday 17:00 once", "weekdays 07:00 and 17:00", London, Some("2025-01-17T07:00:00Z"), "2025-01-20T06:00:00Z", h1, Some("2025-01-17T17:00:00Z")),
        ("clock stepped back before a served slot", "daily 07:00", London, Some("2025-01-15T07:00:00Z"), "2025-01-15T06:30:00Z", h1, None),
        ("clock stepped back a day", "daily 07:00", London, Some("2025-01-15T07:00:00Z"), "2025-01-14T07:30:00Z", h1, None),
        ("DST gap slot is due at the gap's end", "daily 01:30", London, Some("2025-03-29T01:30:00Z"), "2025-03-30T01:00:00Z", h1, Some("2025-03-30T01:00:00Z")),
        ("DST gap slot not due inside the gap", "daily 01:30", London, Some("2025-03-29T01:30:00Z"), "2025-03-30T00:59:59Z", h1, None),
        ("fall-back overlap: second 01:30 is not a new slot", "daily 01:30", London, Some("2025-10-26T00:30:00Z"), "2025-10-26T01:45:00Z", h1, None),
        ("New York fall-back: first 01:30 EDT", "daily 01:30", New_York, Some("2025-11-01T05:30:00Z"), "2025-11-02T05:31:00Z", h1, Some("2025-11-02T05:30:00Z")),
        ("every 4h missed two slots", "every 4h", UTC, Some("2025-01-15T00:00:00Z"), "2025-01-15T09:00:00Z", h1, Some("2025-01-15T08:00:00Z")),
        ("cron weekday slot", "30 8 * * 1-5", New_York, Some("2025-01-17T13:30:00Z"), "2025-01-20T13:31:00Z", h1, Some("2025-01-20T13:30:00Z")),
    ];
    for (name, s, tz, last, now, grace, want) in cases {
        let got = due(&sched(s), *tz, last.map(at), at(now), *grace);
        assert_eq!(
            got,
            want.map(at),
            "{name}: {s:?} in {tz}, last {last:?}, now {now}"
        );
    }
}

/// A daemon ticking every few minutes through DST weeks serves each local day's 07:00 exactly
/// once, at 07:00 local, even when its clock is stepped back an hour and replays.
#[test]
fn simulated_daemon_sends_once_per_local_day_across_dst() {
    #[rustfmt::skip]
    let windows: &[(Tz, &str, &str)] = &[
        (London, "2025-03-25T00:00:00Z", "2025-04-05T00:00:00Z"),
        (London, "2025-10-20T00:00:00Z", "2025-11-02T00:00:00Z"),
        (New_York, "2025-03-04T00:00:00Z", "2025-03-15T00:00:00Z"),
        (New_York, "2025-10-28T00:00:00Z", "2025-11-08T00:00:00Z"),
    ];
    let s = sched("daily 07:00");
    for (tz, from, to) in windows {
        let (from, to) = (at(from), at(to));
        let mut last = None;
        let mut sent: Vec<DateTime<Utc>> = Vec::new();
        let mut now = from;
        let mut stepped_back = 0;
        let mut last_step_day = None;
        while now < to {
            if let Some(slot) = due(&s, *tz, last, now, DEFAULT_FIRST_RUN_GRACE) {
                sent.push(slot);
                last = Some(slot);
            }
            now += Duration::minutes(7);
            // Every 3 days at 08:00 UTC the clock is stepped back 90 minutes.
            let today = now.date_naive();
            if now.hour() == 8
                && now.minute() < 7
                && now.day() % 3 == 0
                && last_step_day != Some(today)
            {
                now -= Duration::minutes(90);
                stepped_back += 1;
                last_step_day = Some(today);
            }
        }
        assert!(stepped_back > 0, "the simulation must exercise clock steps");
        let mut days: Vec<NaiveDate> = sent
            .iter()
            .map(|t| t.with_timezone(tz).date_naive())
            .collect();
        let n = days.len();
        days.dedup();
        assert_eq!(days.len(), n, "{tz}: a local day got two digests: {sent:?}");
        for t in &sent {
            assert_eq!(
                t.with_timezone(tz).time(),
                NaiveTime::from_hms_opt(7, 0, 0).unwrap_or_default(),
                "{tz}: sent at the wrong local time: {t}"
            );
        }
        let first_day = from.with_timezone(tz).date_naive();
        let last_day = (to - Duration::minutes(1)).with_timezone(tz).date_naive();
        let expected_days = (last_day - first_day).num_days() + 1;
        let expected = usize::try_from(expected_days).unwrap_or(0);
        // The first local day is served only if the simulation starts before its 07:00.
        assert!(
            n == expected || n + 1 == expected,
            "{tz}: {n} digests over {expected} local days: {sent:?}"
        );
    }
}

/// `next_after` and `latest_at_or_before` walk the same slots: every slot found forwards is
/// found backwards from itself, across DST days in both zones.
#[test]
fn forward_and_backward_walks_agree() {
    for s in ["daily 07:00", "daily 01:30", "every 4h", "0 */6 * * 0,3"] {
        let s = sched(s);
        for (tz, from) in [
            (London, "2025-03-28T00:00:00Z"),
            (London, "2025-10-24T00:00:00Z"),
            (New_York, "2025-03-07T00:00:00Z"),
            (New_York, "2025-10-31T00:00:00Z"),
        ] {
            let mut t = at(from);
            let mut prev = None;
            for _ in 0..20 {
                let Some(next) = next_after(&s, tz, t) else {
                    panic!("{s} in {tz}: no slot after {t}");
                };
                assert!(next > t);
                assert_eq!(latest_at_or_before(&s, tz, next), Some(next), "{s} {tz}");
                if prev.is_some() {
                    let before = latest_at_or_before(&s, tz, next - Duration::seconds(1));
                    assert_eq!(before, prev, "{s} {tz}: a slot between {t} and {next}");
                }
                prev = Some(next);
                t = next;
            }
        }
    }
}

#[test]
fn deserializes_from_toml_and_keeps_its_source() {
    #[derive(serde::Deserialize)]
    struct D {
        schedule: Schedule,
    }
    let d: D = toml::from_str("schedule = \"weekdays 07:00 and 17:00\"").expect("valid test input");
    assert_eq!(d.schedule.to_string(), "weekdays 07:00 and 17:00");
    let e = toml::from_str::<D>("schedule = \"hourly\"")
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("expected `daily HH:MM`")));
    assert!(parse_tz("Europe/London").is_ok());
    assert!(parse_tz("Europe/Londres").is_err_and(|e| e.contains("IANA")));
}
