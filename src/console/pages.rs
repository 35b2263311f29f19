//! The console's overview, feed and rule pages: each gathers through bounded read-only store
//! calls on a blocking thread and renders escaped HTML. `/matches`, `/playground` and
//! `/digests` have their own files.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::html::{Nav, Viewer, ago, attr, cut, enc, esc, page, safe_href, sparkline, time};
use super::{Console, ConsoleError, St, not_found, respond};
use crate::policy::feed_health::Health;
use crate::store::{FeedRecord, MatchFilter, RuleCounts, Store};

/// Days of the per-rule match chart.
pub(super) const CHART_DAYS: usize = 14;
/// Matches listed on a rule's page, notices on a feed's page and the overview.
const RECENT: usize = 20;
/// Polls listed on a feed's page.
const POLLS_SHOWN: usize = 50;
/// Characters of a title shown in a list.
pub(super) const TITLE_MAX: usize = 200;

pub(super) async fn overview(State(c): St, Extension(v): Extension<Viewer>) -> Response {
    respond(c.with_store(move |s, c| overview_page(s, c, &v)).await)
}

fn overview_page(s: &Store, c: &Console, v: &Viewer) -> Result<String, ConsoleError> {
    let now = c.now();
    let records = s.feed_records()?;
    let failing: Vec<&FeedRecord> = records
        .iter()
        .filter(|r| r.health == Health::Failing)
        .collect();
    let silent: Vec<&FeedRecord> = records
        .iter()
        .filter(|r| r.health == Health::Silent)
        .collect();
    let outbox = s.outbox_counts()?;
    let counts = s.rule_counts(now, CHART_DAYS)?;
    let stored: u64 = records.iter().map(|r| r.items_seen).sum();
    let mut b = String::from("<h1>Overview</h1><div class=\"cards\">");
    for (label, value, class) in [
        ("feeds", c.config.feeds.len().to_string(), ""),
        (
            "failing",
            failing.len().to_string(),
            if failing.is_empty() { "ok" } else { "bad" },
        ),
        (
            "silent",
            silent.len().to_string(),
            if silent.is_empty() { "ok" } else { "warn" },
        ),
        ("items stored", stored.to_string(), ""),
        ("outbox queued", outbox.queued.to_string(), ""),
        (
            "outbox failed",
            outbox.failed.to_string(),
            if outbox.failed == 0 { "ok" } else { "bad" },
        ),
        ("emails sent", outbox.sent.to_string(), ""),
    ] {
        let _ = write!(
            b,
            "<div class=\"card\"><b class=\"{class}\">{value}</b>{label}</div>"
        );
    }
    b.push_str("</div>");

    b.push_str("<h2>Matches per rule, last 14 days</h2>");
    b.push_str(&rule_table(c, &counts));

    let _ = write!(b, "<h2>Failing and silent feeds</h2>");
    if failing.is_empty() && silent.is_empty() {
        b.push_str("<p class=\"ok\">Every feed is healthy.</p>");
    } else {
        b.push_str("<div class=\"scroll\"><table><tr><th>feed</th><th>state</th><th>since / last new</th><th>last error</th></tr>");
        for r in failing.iter().chain(&silent) {
            let when = if r.health == Health::Failing {
                r.failing_since
            } else {
                r.last_new_item
            };
            let _ = write!(
                b,
                "<tr><td><a href=\"/feeds/{}\">{}</a></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                enc(&r.name),
                esc(&r.name),
                if r.health == Health::Failing {
                    "bad"
                } else {
                    "warn"
                },
                r.health.as_str(),
                ago(when, now),
                esc(&cut(r.last_error.as_deref().unwrap_or(""), 300)),
            );
        }
        b.push_str("</table></div>");
    }

    b.push_str("<h2>Next digests</h2><div class=\"scroll\"><table><tr><th>digest</th><th>schedule</th><th>next slot</th><th>last sent</th><th>now</th></tr>");
    for d in &c.config.digests {
        let last = s.last_digest_time(&d.name)?;
        let next = d
            .schedule
            .as_ref()
            .and_then(|sch| crate::policy::schedule::next_after(sch, d.timezone, now));
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.name),
            esc(d
                .schedule
                .as_ref()
                .map_or("after news arrives", |s| s.source())),
            next.map_or_else(|| "when there is news".to_string(), |t| time(Some(t))),
            ago(last, now),
            super::send_now::button(c, v, &d.name),
        );
    }
    b.push_str("</table></div>");
    if c.requests.is_none() {
        let _ = write!(
            b,
            "<p class=\"muted\">{}</p>",
            esc(super::send_now::READ_ONLY)
        );
    }
    b.push_str(&stage_table(c, now));
    Ok(page("Overview", Nav::Overview, v, &b))
}

/// The daemon's stage timings over the last minutes: runs that did work, median, slowest, last.
fn stage_table(c: &Console, now: DateTime<Utc>) -> String {
    use crate::live::stage_times::WINDOW;
    let mut b = format!(
        "<h2>Stage timings, last {} minutes</h2>",
        WINDOW.as_secs() / 60
    );
    let Some(stages) = &c.stages else {
        b.push_str("<p class=\"muted\">Kept by the running daemon: its own console (on <code>[http] listen</code>) shows them, and <code>/metrics</code> has the fetch histogram.</p>");
        return b;
    };
    b.push_str("<div class=\"scroll\"><table id=\"stages\"><tr><th>stage</th><th>runs</th><th>median</th><th>slowest</th><th>last</th></tr>");
    for s in stages.summary(now) {
        let last = s.last.map_or_else(
            || "—".to_string(),
            |(at, took)| format!("{} ms, {}", took.as_millis(), ago(Some(at), now)),
        );
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{} ms</td><td>{last}</td></tr>",
            s.stage.as_str(),
            s.runs,
            s.median.as_millis(),
            s.max.as_millis(),
        );
    }
    b.push_str("</table></div><p class=\"muted\">A run is one that did work: a feed fetched, a batch of polls stored, articles matched, emails composed, a delivery pass that sent.</p>");
    b
}

/// Every configured rule with its all-time count and the 14-day chart.
fn rule_table(c: &Console, counts: &[RuleCounts]) -> String {
    let mut b = String::from(
        "<div class=\"scroll\"><table><tr><th>rule</th><th>14 days</th><th>chart</th><th class=\"opt\">all time</th></tr>",
    );
    for r in c.rules.rules() {
        let found = counts.iter().find(|x| x.rule_id == r.id);
        let daily = found.map_or_else(|| vec![0; CHART_DAYS], |x| x.daily.clone());
        let _ = write!(
            b,
            "<tr><td><a href=\"/rules/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"opt\">{}</td></tr>",
            enc(&r.id),
            esc(&r.id),
            daily.iter().sum::<u64>(),
            sparkline(&daily),
            found.map_or(0, |x| x.total),
        );
    }
    b.push_str("</table></div>");
    b
}

pub(super) async fn feeds(State(c): St, Extension(v): Extension<Viewer>) -> Response {
    respond(c.with_store(move |s, c| feeds_page(s, c, &v)).await)
}

fn feeds_page(s: &Store, c: &Console, v: &Viewer) -> Result<String, ConsoleError> {
    let now = c.now();
    let records = s.feed_records()?;
    let mut b = format!(
        "<h1>Feeds</h1><p class=\"muted\">{} configured.</p><div class=\"scroll\"><table><tr><th>feed</th><th>health</th><th>last success</th><th class=\"opt\">next poll</th><th class=\"opt\">items</th><th>last error</th></tr>",
        c.config.feeds.len()
    );
    for f in &c.config.feeds {
        let r = records.iter().find(|r| r.name == f.name);
        let (health, class) = match r.map(|r| r.health) {
            None => ("never polled", "muted"),
            Some(Health::Ok) => ("ok", "ok"),
            Some(Health::Failing) => ("failing", "bad"),
            Some(Health::Silent) => ("silent", "warn"),
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/feeds/{}\">{}</a></td><td class=\"{class}\">{health}</td><td>{}</td><td class=\"opt\">{}</td><td class=\"opt\">{}</td><td>{}</td></tr>",
            enc(&f.name),
            esc(&f.name),
            ago(r.and_then(|r| r.last_success), now),
            ago(r.and_then(|r| r.next_due), now),
            r.map_or(0, |r| r.items_seen),
            esc(&cut(
                r.and_then(|r| r.last_error.as_deref()).unwrap_or(""),
                200
            )),
        );
    }
    b.push_str("</table></div>");
    Ok(page("Feeds", Nav::Feeds, v, &b))
}

pub(super) async fn feed(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Path(name): Path<String>,
) -> Response {
    let v2 = v.clone();
    match c.with_store(move |s, c| feed_page(s, c, &v, &name)).await {
        Ok(None) => not_found("no such feed in the configuration", &v2),
        Ok(Some(html)) => respond(Ok(html)),
        Err(e) => respond(Err(e)),
    }
}

fn feed_page(
    s: &Store,
    c: &Console,
    v: &Viewer,
    name: &str,
) -> Result<Option<String>, ConsoleError> {
    let Some(f) = c.config.feeds.iter().find(|f| f.name == name) else {
        return Ok(None);
    };
    let now = c.now();
    let r = s.feed_record(name)?.unwrap_or_default();
    let mut b = format!("<h1>{}</h1><div class=\"scroll\"><table>", esc(&f.name));
    let rows: Vec<(&str, String)> = vec![
        ("configured URL", esc(f.url.as_str())),
        (
            "fetched from",
            esc(r.effective_url.as_deref().unwrap_or("the configured URL")),
        ),
        ("feed title", esc(r.title.as_deref().unwrap_or("—"))),
        ("tags", esc(&f.tags.join(", "))),
        ("health", r.health.as_str().to_string()),
        ("interval", format!("{}s", f.interval.as_secs())),
        (
            "last success",
            format!("{} ({})", time(r.last_success), ago(r.last_success, now)),
        ),
        (
            "next poll",
            format!("{} ({})", time(r.next_due), ago(r.next_due, now)),
        ),
        ("failing since", time(r.failing_since)),
        ("last new item", ago(r.last_new_item, now)),
        ("polls", r.polls.to_string()),
        ("items stored", r.items_seen.to_string()),
        ("errors in a row", r.error_count.to_string()),
        ("last error", esc(r.last_error.as_deref().unwrap_or("—"))),
        ("warning", esc(r.warning.as_deref().unwrap_or("—"))),
        (
            "cache validators",
            esc(&format!(
                "ETag {} · Last-Modified {}",
                r.validators.etag.as_deref().unwrap_or("—"),
                r.validators.last_modified.as_deref().unwrap_or("—")
            )),
        ),
    ];
    for (k, val) in rows {
        let _ = write!(b, "<tr><th>{k}</th><td>{val}</td></tr>");
    }
    b.push_str("</table></div>");
    b.push_str(&poll_table(&s.poll_history(name, POLLS_SHOWN)?, now));
    b.push_str("<h2>Health notices</h2>");
    let notices = s.feed_notice_history(name, RECENT)?;
    if notices.is_empty() {
        b.push_str("<p class=\"muted\">None.</p>");
    } else {
        b.push_str("<ul>");
        for (kind, at, detail) in notices {
            let _ = write!(
                b,
                "<li>{} <b>{}</b> {}</li>",
                time(Some(at)),
                esc(&kind),
                esc(&detail)
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        "<p><a href=\"/matches?feed={}\">Matches from this feed</a></p>",
        enc(name)
    );
    Ok(Some(page(&f.name, Nav::Feeds, v, &b)))
}

/// A feed's last polls, newest first: when, outcome and status, bytes, items, new, duration,
/// error.
fn poll_table(polls: &[crate::store::PollEntry], now: DateTime<Utc>) -> String {
    let mut b = format!(
        "<h2>Last polls</h2><p class=\"muted\">The newest {POLLS_SHOWN} (the last {} are kept).</p>",
        crate::store::HISTORY_PER_FEED
    );
    if polls.is_empty() {
        b.push_str("<p class=\"muted\">No poll recorded yet.</p>");
        return b;
    }
    b.push_str("<div class=\"scroll\"><table id=\"polls\"><tr><th>when</th><th>outcome</th><th>status</th><th class=\"opt\">bytes</th><th>items</th><th>new</th><th class=\"opt\">duration</th><th>error</th></tr>");
    let dash = || "—".to_string();
    for p in polls {
        let class = match p.outcome.as_str() {
            "failed" => "bad",
            "fetched" => "ok",
            _ => "",
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td class=\"opt\">{}</td><td>{}</td><td>{}</td><td class=\"opt\">{} ms</td><td>{}</td></tr>",
            when(p.at, now),
            esc(&p.outcome),
            p.status.map_or_else(dash, |s| s.to_string()),
            p.bytes.map_or_else(dash, |b| b.to_string()),
            p.items.map_or_else(dash, |n| n.to_string()),
            p.new_items,
            p.duration_ms,
            esc(&cut(p.error.as_deref().unwrap_or(""), 200)),
        );
    }
    b.push_str("</table></div>");
    b
}

pub(super) async fn rules(State(c): St, Extension(v): Extension<Viewer>) -> Response {
    respond(
        c.with_store(move |s, c| {
            let counts = s.rule_counts(c.now(), CHART_DAYS)?;
            let mut b = format!(
                "<h1>Rules</h1><p class=\"muted\">{} rules from {} files.</p>",
                c.rules.rules().len(),
                c.config.rule_files.len()
            );
            b.push_str(&rule_table(c, &counts));
            Ok(page("Rules", Nav::Rules, &v, &b))
        })
        .await,
    )
}

pub(super) async fn rule(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let v2 = v.clone();
    match c.with_store(move |s, c| rule_page(s, c, &v, &id)).await {
        Ok(None) => not_found("no such rule in the loaded rules", &v2),
        Ok(Some(html)) => respond(Ok(html)),
        Err(e) => respond(Err(e)),
    }
}

fn rule_page(s: &Store, c: &Console, v: &Viewer, id: &str) -> Result<Option<String>, ConsoleError> {
    let Some(i) = c.rules.find(id) else {
        return Ok(None);
    };
    let r = &c.rules.rules()[i];
    let counts = s.rule_counts(c.now(), CHART_DAYS)?;
    let found = counts.iter().find(|x| x.rule_id == r.id);
    let failing_here = c
        .failing_examples
        .iter()
        .filter(|d| d.subject.as_deref() == Some(&format!("rule {}", r.id)))
        .count();
    let mut b = format!(
        "<h1>{}</h1><p>{} · <code>{}</code> · {}:{}</p><pre>{}</pre>",
        esc(&r.title),
        esc(&format!("{:?}", r.priority).to_lowercase()),
        esc(&r.id),
        esc(&r.file.display().to_string()),
        r.line,
        esc(&r.query)
    );
    let examples = if r.examples.is_empty() {
        "<span class=\"warn\">no examples</span>".to_string()
    } else if failing_here == 0 {
        format!(
            "<span class=\"ok\">all {} examples pass</span>",
            r.examples.len()
        )
    } else {
        format!(
            "<span class=\"bad\">{failing_here} of {} examples fail</span> (<code>newswatch check</code> shows why)",
            r.examples.len()
        )
    };
    let daily = found.map_or_else(|| vec![0; CHART_DAYS], |x| x.daily.clone());
    let _ = write!(
        b,
        "<p>Examples: {examples}</p><p>Matches: {} all time, {} in 14 days {}</p>",
        found.map_or(0, |x| x.total),
        daily.iter().sum::<u64>(),
        sparkline(&daily)
    );
    let _ = write!(
        b,
        "<p><a href=\"/playground?q={}&amp;against={}\">Try it in the playground</a></p><h2>Last matches</h2>",
        enc(&r.query),
        enc(&r.id)
    );
    let recent = s.console_matches(&MatchFilter {
        rule: Some(r.id.clone()),
        limit: RECENT,
        ..MatchFilter::default()
    })?;
    b.push_str(&super::matches::list(&recent, c));
    Ok(Some(page(&r.title, Nav::Rules, v, &b)))
}

/// An article's title as a link when its link is http(s), else as text.
pub(super) fn title_link(title: &str, link: Option<&str>) -> String {
    let t = esc(&cut(title, TITLE_MAX));
    match link.and_then(safe_href) {
        Some(href) => format!("<a href=\"{href}\" rel=\"noopener noreferrer\">{t}</a>"),
        None => t,
    }
}

/// A time and how long ago.
pub(super) fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        attr(&t.to_rfc3339()),
        ago(Some(t), now)
    )
}
