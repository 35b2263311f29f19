//! `newswatch status`: every configured feed's fetch state, the outbox and the last digests, as
//! text or JSON. Gathers through read-only store calls (never writes, never migrates); rendering
//! is pure and takes `now`; only `status` itself prints.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Exit, load_config_read_only};
use crate::config::Config;
use crate::model::{AlertLatency, OutboxCounts, OutboxMessage};
use crate::store::{DigestInfo, FeedNotice, FeedRecord, NodeInfo, ReloadInfo, Store, StoreError};

/// Digests listed by `status`.
const RECENT_DIGESTS: usize = 5;
/// Queued messages listed by `status`, oldest first.
const LISTED_QUEUED: usize = 20;
/// Feed notices listed by `status`, newest last.
const RECENT_NOTICES: usize = 20;

/// Prints the report of the config at `path`, as text or JSON.
pub(super) fn status(path: &std::path::Path, json: bool) -> Exit {
    let config = match load_config_read_only(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let now = crate::clock::now();
    match gather(&config, now) {
        Ok(report) if json => {
            outln!("{:#}", render_json(&report));
            Exit::Ok
        }
        Ok(report) => {
            out!("{}", render_text(&report, now));
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// One configured feed and what the database knows about it (`None`: never polled).
#[derive(Debug, Clone)]
pub struct FeedLine {
    pub name: String,
    pub url: String,
    pub record: Option<FeedRecord>,
    /// Its WebSub subscription, when its hub is known (issue 20).
    pub push: Option<crate::store::Subscription>,
}

#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Whether a state database exists yet.
    pub database: bool,
    pub feeds: Vec<FeedLine>,
    pub outbox: OutboxCounts,
    /// Per rule id: stored matches, and those not yet in a digest.
    pub rules: Vec<(String, u64, u64)>,
    /// The oldest queued messages (at most `LISTED_QUEUED`).
    pub queued: Vec<OutboxMessage>,
    pub digests: Vec<DigestInfo>,
    pub notices: Vec<FeedNotice>,
    /// The daemon's last config/rule reload (SIGHUP or `--watch-rules`), if any.
    pub last_reload: Option<ReloadInfo>,
    /// Latencies of the articles alerted in the last `LATENCY_WINDOW`.
    pub latency: Latency,
    /// Each `[[channel]]` and its messages by state.
    pub channels: Vec<super::channels::ChannelLine>,
    /// The cluster's nodes (PostgreSQL `[store]`); empty on SQLite, where there is one.
    pub nodes: Vec<NodeInfo>,
    /// Each configured digest's next scheduled slot after now.
    pub next_slots: Vec<NextSlot>,
}

/// When a `[[digest]]` is next due by its schedule (`None`: it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextSlot {
    pub name: String,
    pub at: Option<DateTime<Utc>>,
}

/// Latency figures over the articles alerted recently: each a (p50, p90, max) in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latency {
    pub alerted: usize,
    pub from_fetch: Option<[u64; 3]>,
    pub to_match: Option<[u64; 3]>,
    pub from_published: Option<[u64; 3]>,
}

impl Latency {
    fn of(all: &[AlertLatency]) -> Latency {
        let spread = |mut ms: Vec<u64>| -> Option<[u64; 3]> {
            ms.sort_unstable();
            let at = |q: usize| ms[(ms.len() - 1) * q / 100];
            (!ms.is_empty()).then(|| [at(50), at(90), at(100)])
        };
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Latency {
            alerted: all.len(),
            from_fetch: spread(all.iter().map(|l| millis(l.from_fetch)).collect()),
            to_match: spread(all.iter().filter_map(|l| l.to_match.map(millis)).collect()),
            from_published: spread(
                all.iter()
                    .filter_map(|l| l.from_published.map(millis))
                    .collect(),
            ),
        }
    }
}

/// The window `status` reports latencies over.
const LATENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Reads the report from the state database of `config`, if there is one.
pub fn gather(config: &Config, now: DateTime<Utc>) -> Result<StatusReport, StoreError> {
    let db = config.state_dir.join(crate::store::DB_FILE);
    let store = if let Some(pg) = &config.store {
        Some(Store::open_postgres(pg)?)
    } else if db.exists() {
        Some(Store::open_read_only(&config.state_dir)?)
    } else {
        None
    };
    // WebSub rows, when push is configured (on either backend).
    let mut subs = match (&store, &config.websub) {
        (Some(s), Some(_)) => s.websub_subscriptions()?,
        _ => Vec::new(),
    };
    let mut feeds = Vec::new();
    for f in &config.feeds {
        let record = match &store {
            Some(s) => s.feed_record(&f.name)?,
            None => None,
        };
        let push = subs
            .iter()
            .position(|s| s.feed == f.name)
            .map(|i| subs.swap_remove(i));
        feeds.push(FeedLine {
            name: f.name.clone(),
            url: f.url.to_string(),
            record,
            push,
        });
    }
    let last_reload = match &store {
        Some(s) => s.last_reload()?,
        None => None,
    };
    let (outbox, digests, notices) = match &store {
        Some(s) => (s.outbox_counts()?, s.recent_digests(RECENT_DIGESTS)?, {
            let all = s.feed_notices(DateTime::<Utc>::MIN_UTC)?;
            all[all.len().saturating_sub(RECENT_NOTICES)..].to_vec()
        }),
        None => (OutboxCounts::default(), Vec::new(), Vec::new()),
    };
    let rules = match &store {
        Some(s) => s.match_counts()?,
        None => Vec::new(),
    };
    let queued = match &store {
        Some(s) => {
            let mut q = s.queued_messages()?;
            q.truncate(LISTED_QUEUED);
            q
        }
        None => Vec::new(),
    };
    let latency = match &store {
        Some(s) => Latency::of(&s.alert_latencies(now - LATENCY_WINDOW)?),
        None => Latency::default(),
    };
    let channel_counts = match &store {
        Some(s) => s.channel_counts()?,
        None => Vec::new(),
    };
    let nodes = match &store {
        Some(s) => s.nodes()?,
        None => Vec::new(),
    };
    let next_slots = config
        .digests
        .iter()
        .map(|d| NextSlot {
            name: d.name.clone(),
            at: d
                .schedule
                .as_ref()
                .and_then(|s| crate::policy::schedule::next_after(s, d.timezone, now)),
        })
        .collect();
    Ok(StatusReport {
        channels: super::channels::channel_lines(config, &channel_counts),
        rules,
        queued,
        next_slots,
        latency,
        nodes,
        database: store.is_some(),
        feeds,
        outbox,
        digests,
        notices,
        last_reload,
    })
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// Human-readable report.
pub fn render_text(r: &StatusReport, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    if !r.database {
        out.push_str("no state database yet: newswatch has not run with this config\n");
    }
    for f in &r.feeds {
        let _ = writeln!(out, "feed {}", f.name);
        let Some(rec) = &f.record else {
            let _ = writeln!(
                out,
                "  url:          {}\n  state:        never polled",
                f.url
            );
            continue;
        };
        let _ = writeln!(out, "  url:          {}", f.url);
        if let Some(eff) = &rec.effective_url {
            let _ = writeln!(out, "  effective url: {eff} (permanent redirect)");
        }
        let due = match rec.next_due {
            Some(d) if d <= now => format!("{} (due now)", when(Some(d))),
            d => when(d),
        };
        let _ = writeln!(
            out,
            "  health:       {}\n  last success: {}\n  next due:     {due}\n  errors:       {}",
            rec.health.as_str(),
            when(rec.last_success),
            rec.error_count
        );
        if let Some(e) = &rec.last_error {
            let _ = writeln!(out, "  last error:   {e}");
        }
        if let Some(w) = &rec.warning {
            let _ = writeln!(out, "  warning:      {w}");
        }
        let _ = writeln!(
            out,
            "  items seen:   {} in {} polls",
            rec.items_seen, rec.polls
        );
        if let Some(p) = &f.push {
            let state = if p.pushing(now) {
                format!("subscribed until {}", when(p.lease_until))
            } else {
                p.state.to_string()
            };
            let _ = writeln!(
                out,
                "  websub:       {state} at {} ({} pushes, last {}, {} bad signatures)",
                p.hub,
                p.pushes,
                when(p.last_push),
                p.bad_signatures
            );
            if let Some(e) = &p.last_error {
                let _ = writeln!(out, "  websub error: {e}");
            }
        }
    }
    let o = r.outbox;
    let _ = writeln!(
        out,
        "outbox: {} queued, {} sent, {} failed",
        o.queued, o.sent, o.failed
    );
    for m in &r.queued {
        let _ = writeln!(
            out,
            "  queued #{} ({}): attempt {} next at {}{}",
            m.id,
            m.digest_name,
            m.attempts + 1,
            when(Some(m.next_attempt)),
            m.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    out.push_str(&super::channels::render_text(&r.channels));
    for d in &r.digests {
        // "alert breaking #1", "digest briefing #2": what the config calls it, and its number.
        let name = d
            .name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}{name} #{}: {} ({} of {} emails sent)",
            d.kind,
            d.id,
            when(Some(d.created)),
            d.sent,
            d.emails
        );
    }
    for (rule, all, pending) in &r.rules {
        let _ = writeln!(
            out,
            "rule {rule}: {all} {} ({pending} not yet in a digest)",
            if *all == 1 { "match" } else { "matches" }
        );
    }
    for n in &r.next_slots {
        let _ = writeln!(
            out,
            "next digest {}: {}",
            n.name,
            n.at.map_or_else(
                || "none (no schedule: whenever there is news)".to_string(),
                |t| when(Some(t))
            )
        );
    }
    match &r.last_reload {
        None if !r.database => {}
        None => {
            let _ = writeln!(out, "last reload: none since the database was created");
        }
        Some(l) => {
            let _ = writeln!(
                out,
                "last reload: {} {} ({})",
                when(Some(l.at)),
                if l.applied { "applied" } else { "refused" },
                l.detail
            );
        }
    }
    if r.latency.alerted > 0 {
        let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let line = |name: &str, v: Option<[u64; 3]>| {
            v.map(|[p50, p90, max]| {
                format!(
                    "  {:<24} p50 {}, p90 {}, max {}\n",
                    format!("{name}:"),
                    secs(p50),
                    secs(p90),
                    secs(max)
                )
            })
            .unwrap_or_default()
        };
        let _ = write!(
            out,
            "alert latency, last 24 h ({} articles alerted):\n{}{}{}",
            r.latency.alerted,
            line("fetch to alert sent", r.latency.from_fetch),
            line("fetch to matched", r.latency.to_match),
            line("published to alert sent", r.latency.from_published),
        );
    }
    let hashes: std::collections::BTreeSet<&str> =
        r.nodes.iter().map(|n| n.rules_hash.as_str()).collect();
    for n in &r.nodes {
        let ago = (now - n.heartbeat).num_seconds();
        let _ = writeln!(
            out,
            "node {}: last heartbeat {} ({ago} s ago), version {}, rules {}{}, {} feed leases",
            n.name,
            when(Some(n.heartbeat)),
            n.version,
            n.rules_hash,
            if hashes.len() > 1 { " (differs)" } else { "" },
            n.leases
        );
    }
    for n in &r.notices {
        let _ = writeln!(
            out,
            "notice {}: feed {} {} {}",
            when(Some(n.at)),
            n.feed,
            n.kind.as_str(),
            n.detail
        );
    }
    out
}

/// Machine-readable report; times are RFC 3339, absent values `null`.
pub fn render_json(r: &StatusReport) -> Value {
    let t = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    let feeds: Vec<Value> = r
        .feeds
        .iter()
        .map(|f| match &f.record {
            None => json!({"name": f.name, "url": f.url, "polled": false}),
            Some(rec) => json!({
                "name": f.name,
                "url": f.url,
                "polled": true,
                "effective_url": rec.effective_url,
                "health": rec.health.as_str(),
                "last_success": t(rec.last_success),
                "last_error": rec.last_error,
                "error_count": rec.error_count,
                "failing_since": t(rec.failing_since),
                "next_due": t(rec.next_due),
                "items_seen": rec.items_seen,
                "polls": rec.polls,
                "warning": rec.warning,
                "websub": f.push.as_ref().map(|p| json!({
                    "hub": p.hub,
                    "topic": p.topic,
                    "state": p.state.to_string(),
                    "subscribed_until": t(p.lease_until),
                    "last_push": t(p.last_push),
                    "pushes": p.pushes,
                    "bad_signatures": p.bad_signatures,
                    "last_error": p.last_error,
                })),
            }),
        })
        .collect();
    json!({
        "database": r.database,
        "feeds": feeds,
        "outbox": {"queued": r.outbox.queued, "sent": r.outbox.sent, "failed": r.outbox.failed},
        "channels": super::channels::render_json(&r.channels),
        "rules": r.rules.iter().map(|(rule, all, pending)| json!({
            "rule": rule, "matches": all, "not_in_digest": pending,
        })).collect::<Vec<_>>(),
        "queued": r.queued.iter().map(|m| json!({
            "id": m.id, "name": m.digest_name, "attempts": m.attempts,
            "next_attempt": m.next_attempt.to_rfc3339(), "last_error": m.last_error,
        })).collect::<Vec<_>>(),
        "last_reload": r.last_reload.as_ref().map(|l| json!({
            "at": l.at.to_rfc3339(), "applied": l.applied, "detail": l.detail,
        })),
        "next_digests": r.next_slots.iter().map(|n| json!({
            "name": n.name, "at": n.at.map(|t| t.to_rfc3339()),
        })).collect::<Vec<_>>(),
        "digests": r.digests.iter().map(|d| json!({
            "id": d.id, "kind": d.kind, "name": d.name, "created": d.created.to_rfc3339(), "emails": d.emails, "sent": d.sent,
        })).collect::<Vec<_>>(),
        "alert_latency_ms": {
            "window_hours": LATENCY_WINDOW.num_hours(),
            "alerted": r.latency.alerted,
            "fetch_to_sent": r.latency.from_fetch.map(|[p50, p90, max]| json!({"p50": p50, "p90": p90, "max": max})),
            "fetch_to_matched": r.latency.to_match.map(|[p50, p90, max]| json!({"p50": p50, "p90": p90, "max": max})),
            "published_to_sent": r.latency.from_published.map(|[p50, p90, max]| json!({"p50": p50, "p90": p90, "max": max})),
        },
        "nodes": r.nodes.iter().map(|n| json!({
            "name": n.name, "started": n.started.to_rfc3339(),
            "heartbeat": n.heartbeat.to_rfc3339(), "version": n.version,
            "rules_hash": n.rules_hash, "leases": n.leases,
        })).collect::<Vec<_>>(),
        "notices": r.notices.iter().map(|n| json!({
            "feed": n.feed, "kind": n.kind.as_str(), "at": n.at.to_rfc3339(), "detail": n.detail,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each node is listed with its heartbeat and leases; a node whose rules differ says so.
    #[test]
    fn nodes_are_listed_and_differing_rules_named() {
        let now = DateTime::from_timestamp(1_772_000_000, 0).unwrap_or_default();
        let node = |name: &str, hash: &str, leases| NodeInfo {
            name: name.into(),
            started: now - chrono::Duration::hours(1),
            heartbeat: now - chrono::Duration::seconds(5),
            version: "0.1.0".into(),
            rules_hash: hash.into(),
            leases,
        };
        let mut report = StatusReport {
            database: true,
            feeds: Vec::new(),
            outbox: OutboxCounts::default(),
            digests: Vec::new(),
            notices: Vec::new(),
            last_reload: None,
            latency: Latency::default(),
            channels: Vec::new(),
            rules: Vec::new(),
            queued: Vec::new(),
            next_slots: Vec::new(),
            nodes: vec![node("a", "r1", 3), node("b", "r1", 0)],
        };
        let text = render_text(&report, now);
        assert!(text.contains("node a: last heartbeat 2026-02-25 06:13:15Z (5 s ago), version 0.1.0, rules r1, 3 feed leases"), "{text}");
        assert!(!text.contains("differs"), "{text}");
        report.nodes[1].rules_hash = "r2".into();
        let text = render_text(&report, now);
        assert!(text.contains("node b: last heartbeat 2026-02-25 06:13:15Z (5 s ago), version 0.1.0, rules r2 (differs), 0 feed leases"), "{text}");
        let json = render_json(&report);
        assert_eq!(json["nodes"][0]["leases"], 3);
        assert_eq!(json["nodes"][1]["rules_hash"], "r2");
    }
}
