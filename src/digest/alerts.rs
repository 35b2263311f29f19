//! Alert batching: matches of `priority = "alert"` rules go out at once, but a burst becomes one
//! email (the first pending match opens a short window; the batch is due when it closes), and an
//! hourly cap per alert set hands the overflow to the next digest instead of dropping it.
//! Pure: the caller passes what is pending, what was sent in the last hour, and `now`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How alerts of one alert set are batched and capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// How long the first pending match waits for others to join its email.
    pub window: Duration,
    /// Alert emails per rolling hour; at the cap, due matches go to the next digest.
    pub max_per_hour: usize,
    /// Matches listed in one alert email; the rest go to the next digest.
    pub max_items: usize,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            window: Duration::from_secs(120),
            max_per_hour: 6,
            max_items: 20,
        }
    }
}

/// A match of an alert rule not yet emailed nor handed to a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAlert<Id> {
    pub id: Id,
    /// When the match was recorded (the daemon's clock at match time).
    pub matched_at: DateTime<Utc>,
}

/// What to do with the pending matches now. Every pending id is in at most one list; an id in
/// neither stays pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPlan<Id> {
    /// One email with these matches, oldest first.
    pub send_now: Vec<Id>,
    /// Over the cap: mark these for the next digest (never lost).
    pub defer_to_digest: Vec<Id>,
    /// When to plan again if nothing changes (the open window's close); `None` when nothing stays
    /// pending.
    pub next_check: Option<DateTime<Utc>>,
    /// The limit that deferred matches, if one did.
    pub limit: Option<AlertLimit>,
}

/// Which `[[alert]]` key held matches back for the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertLimit {
    /// `max_per_hour`: alert emails in the last hour.
    PerHour,
    /// `max_items`: matches in one alert email.
    PerEmail,
}

impl AlertLimit {
    /// The config key, as the log names it.
    pub fn key(self) -> &'static str {
        match self {
            AlertLimit::PerHour => "max_per_hour",
            AlertLimit::PerEmail => "max_items",
        }
    }
}

/// Plans one alert set's pending matches at `now`. `sent_in_last_hour` counts this set's alert
/// emails sent in `(now - 1h, now]`. Matches queued at the same time are taken in `Id` order, so a
/// caller whose ids follow the content (not the timing) gets the same batch for the same input.
///
/// A match stamped later than `now` means the clock was stepped back since it was recorded; the
/// elapsed time is then unknown, and an urgent alert is better early than an hour late, so its
/// window counts as closed.
pub fn plan_alerts<Id: Copy + Ord>(
    pending: &[PendingAlert<Id>],
    sent_in_last_hour: usize,
    policy: &AlertPolicy,
    now: DateTime<Utc>,
) -> AlertPlan<Id> {
    let mut batch: Vec<PendingAlert<Id>> = pending.to_vec();
    batch.sort_by_key(|p| (p.matched_at, p.id));
    batch.dedup_by_key(|p| p.id);
    let idle = AlertPlan {
        send_now: Vec::new(),
        defer_to_digest: Vec::new(),
        next_check: None,
        limit: None,
    };
    let Some(first) = batch.first() else {
        return idle;
    };
    // A window too long for chrono is a window that never closes on its own.
    let window = chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::MAX);
    let closes = first.matched_at.checked_add_signed(window);
    let stepped_back = first.matched_at > now;
    if let Some(closes) = closes
        && now < closes
        && !stepped_back
    {
        return AlertPlan {
            next_check: Some(closes),
            ..idle
        };
    }
    let ids = batch.iter().map(|p| p.id);
    if sent_in_last_hour >= policy.max_per_hour {
        return AlertPlan {
            defer_to_digest: ids.collect(),
            limit: Some(AlertLimit::PerHour),
            ..idle
        };
    }
    let take = policy.max_items.max(1);
    let defer: Vec<Id> = ids.clone().skip(take).collect();
    AlertPlan {
        send_now: ids.take(take).collect(),
        limit: (!defer.is_empty()).then_some(AlertLimit::PerEmail),
        defer_to_digest: defer,
        next_check: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-04T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn secs(s: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(s)
    }

    /// name, pending (id, matched at t0+s), sent in last hour, policy (window s, cap, items),
    /// now (t0+s), expected send, expected defer, expected next check (t0+s).
    type Case<'a> = (
        &'a str,
        &'a [(u32, i64)],
        usize,
        (u64, usize, usize),
        i64,
        &'a [u32],
        &'a [u32],
        Option<i64>,
    );

    #[test]
    fn plan_alerts_table() {
        const P: (u64, usize, usize) = (120, 6, 20);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("nothing pending", &[], 0, P, 0, &[], &[], None),
            ("first match opens the window", &[(1, 0)], 0, P, 0, &[], &[], Some(120)),
            ("window still open", &[(1, 0), (2, 30)], 0, P, 119, &[], &[], Some(120)),
            ("window closes: one email for the burst", &[(1, 0), (2, 30), (3, 90)], 0, P, 120, &[1, 2, 3], &[], None),
            ("late poll still sends the burst once", &[(1, 0), (2, 30)], 0, P, 900, &[1, 2], &[], None),
            ("window opens at the oldest, not the newest", &[(2, 100), (1, 0)], 0, P, 120, &[1, 2], &[], None),
            ("same match twice is listed once", &[(1, 0), (1, 0)], 0, P, 120, &[1], &[], None),
            ("ties ordered by id", &[(9, 0), (3, 0)], 0, P, 120, &[3, 9], &[], None),
            ("under the cap", &[(1, 0)], 5, P, 120, &[1], &[], None),
            ("at the cap: overflow goes to the digest", &[(1, 0), (2, 10)], 6, P, 120, &[], &[1, 2], None),
            ("over the cap", &[(1, 0)], 9, P, 120, &[], &[1], None),
            ("at the cap but window open: wait", &[(1, 0)], 6, P, 60, &[], &[], Some(120)),
            ("too many items for one email", &[(1, 0), (2, 1), (3, 2), (4, 3)], 0, (120, 6, 2), 120, &[1, 2], &[3, 4], None),
            ("zero window sends at once", &[(1, 0)], 0, (0, 6, 20), 0, &[1], &[], None),
            ("cap of zero disables alert email", &[(1, 0)], 0, (120, 0, 20), 120, &[], &[1], None),
            ("clock stepped back: send rather than wait", &[(1, 3600)], 0, P, 0, &[1], &[], None),
            ("max_items 0 still sends one", &[(1, 0), (2, 0)], 0, (120, 6, 0), 120, &[1], &[2], None),
        ];
        for (name, pending, sent, (window, cap, items), now, send, defer, next) in cases {
            let pending: Vec<PendingAlert<u32>> = pending
                .iter()
                .map(|(id, s)| PendingAlert {
                    id: *id,
                    matched_at: secs(*s),
                })
                .collect();
            let policy = AlertPolicy {
                window: Duration::from_secs(*window),
                max_per_hour: *cap,
                max_items: *items,
            };
            let plan = plan_alerts(&pending, *sent, &policy, secs(*now));
            assert_eq!(plan.send_now, *send, "{name}: send_now");
            assert_eq!(plan.defer_to_digest, *defer, "{name}: defer_to_digest");
            assert_eq!(plan.next_check, next.map(secs), "{name}: next_check");
            let want_limit = match (defer.is_empty(), *sent >= *cap) {
                (true, _) => None,
                (false, true) => Some(AlertLimit::PerHour),
                (false, false) => Some(AlertLimit::PerEmail),
            };
            assert_eq!(plan.limit, want_limit, "{name}: limit");
        }
    }

    /// A burst of 50 matches over 90 seconds, polled every 10 seconds, becomes exactly one
    /// email plus one hand-over to the digest; no match is lost or sent twice.
    #[test]
    fn burst_simulation_one_email_nothing_lost() {
        let policy = AlertPolicy::default();
        let mut pending: Vec<PendingAlert<u32>> = Vec::new();
        let (mut emails, mut sent, mut deferred) = (0, Vec::<u32>::new(), Vec::<u32>::new());
        for tick in 0..60i64 {
            let now = secs(tick * 10);
            for k in 0..5u32 {
                let id = u32::try_from(tick).unwrap_or(0) * 5 + k;
                if tick < 10 {
                    pending.push(PendingAlert {
                        id,
                        matched_at: now,
                    });
                }
            }
            let plan = plan_alerts(&pending, emails, &policy, now);
            if !plan.send_now.is_empty() {
                emails += 1;
            }
            sent.extend(&plan.send_now);
            deferred.extend(&plan.defer_to_digest);
            pending.retain(|p| {
                !plan.send_now.contains(&p.id) && !plan.defer_to_digest.contains(&p.id)
            });
        }
        assert_eq!(emails, 1);
        assert_eq!(sent, (0..20).collect::<Vec<u32>>());
        assert_eq!(deferred, (20..50).collect::<Vec<u32>>());
        assert!(pending.is_empty());
    }

    #[test]
    fn plan_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AlertPolicy>();
        assert_send_sync::<AlertPlan<i64>>();
        assert_send_sync::<PendingAlert<i64>>();
    }
}
