//! `/channels`: each `[[channel]]` (and any channel only the database still knows) with its
//! kind, its target as scheme and host only (a chat webhook's path and every token are
//! credentials), its messages pending, retrying, failed and sent, its last error and next
//! attempt; then the messages that failed for good, each with a retry POST (CSRF token; the
//! store's own `mark_channel_retry`, on a connection opened for that one write).

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::Response;

use super::auth::CsrfForm;
use super::html::{Nav, Viewer, ago, attr, cut, esc, page, time};
use super::{Console, St, respond, retry_failed};
use crate::model::{ChannelCounts, ChannelMessage, OutboxStatus};

/// Failed messages the page lists (newest first).
const FAILED: usize = 100;

pub(super) async fn channels(State(c): St, Extension(v): Extension<Viewer>) -> Response {
    respond(
        c.with_store(move |s, c| {
            let counts = s.channel_counts()?;
            let failed = s.failed_channel_messages(FAILED)?;
            let mut b = String::from("<h1>Channels</h1>");
            b.push_str(&states(c, &counts));
            b.push_str("<h2>Failed messages</h2>");
            if failed.is_empty() {
                b.push_str("<p class=\"muted\">None: every message was delivered or is still being tried.</p>");
            } else {
                b.push_str(&failed_table(c, &v, &failed));
            }
            Ok(page("Channels", Nav::Channels, &v, &b))
        })
        .await,
    )
}

/// One row per configured channel, then per channel only the database knows (removed from the
/// configuration since), with its counts.
fn states(c: &Console, counts: &[ChannelCounts]) -> String {
    let now = c.now();
    let mut rows: Vec<(&str, Option<&str>, Option<String>, ChannelCounts)> = c
        .config
        .channels
        .iter()
        .map(|ch| {
            let n = counts
                .iter()
                .find(|n| n.channel == ch.name)
                .cloned()
                .unwrap_or_default();
            (
                ch.name.as_str(),
                Some(ch.kind.as_str()),
                Some(ch.url.redacted()),
                n,
            )
        })
        .collect();
    for n in counts {
        if !c.config.channels.iter().any(|ch| ch.name == n.channel) {
            rows.push((n.channel.as_str(), None, None, n.clone()));
        }
    }
    if rows.is_empty() {
        return "<p class=\"muted\">No channel is configured and none has messages.</p>".into();
    }
    let mut b = String::from(
        "<div class=\"scroll\"><table><tr><th>channel</th><th>kind</th><th class=\"opt\">target</th>\
         <th>pending</th><th>retrying</th><th>failed</th><th>sent</th><th class=\"opt\">last delivery</th>\
         <th>next attempt</th><th class=\"opt\">last error</th></tr>",
    );
    for (name, kind, target, n) in rows {
        let pending = n.counts.queued.saturating_sub(n.retrying);
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"opt\">{}</td><td>{pending}</td><td class=\"{}\">{}</td>\
             <td class=\"{}\">{}</td><td>{}</td><td class=\"opt\">{}</td><td>{}</td><td class=\"opt\">{}</td></tr>",
            esc(name),
            esc(kind.unwrap_or("(not configured)")),
            esc(target.as_deref().unwrap_or("—")),
            if n.retrying > 0 { "warn" } else { "" },
            n.retrying,
            if n.counts.failed > 0 { "bad" } else { "" },
            n.counts.failed,
            n.counts.sent,
            ago(n.last_sent, now),
            n.next_attempt
                .map_or_else(|| "—".to_string(), |t| ago(Some(t), now)),
            esc(&cut(n.last_error.as_deref().unwrap_or("—"), 200)),
        );
    }
    b.push_str("</table></div>");
    b
}

/// The payload's title (every payload version has one), or nothing.
fn title(m: &ChannelMessage) -> String {
    serde_json::from_str::<serde_json::Value>(&m.payload)
        .ok()
        .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn failed_table(c: &Console, v: &Viewer, failed: &[ChannelMessage]) -> String {
    let now = c.now();
    let mut b = String::from(
        "<div class=\"scroll\"><table><tr><th>#</th><th>channel</th><th>from</th><th>title</th>\
         <th class=\"opt\">attempts</th><th>composed</th><th>error</th><th></th></tr>",
    );
    for m in failed {
        let retry = match &v.csrf {
            Some(token) => format!(
                "<form method=\"post\" action=\"/channels/{}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Retry</button></form>",
                m.id,
                attr(token)
            ),
            None => String::new(),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"opt\">{}</td><td>{}</td><td class=\"bad\">{}</td><td>{retry}</td></tr>",
            m.id,
            esc(&m.channel),
            esc(&m.source),
            esc(&cut(&title(m), 160)),
            m.attempts,
            ago(Some(m.created), now),
            esc(&cut(m.last_error.as_deref().unwrap_or("—"), 200)),
        );
    }
    b.push_str("</table></div>");
    let _ = write!(
        b,
        "<p class=\"muted\">Newest {FAILED} shown. A retried message is due at once, with its idempotency key unchanged; listed {}.</p>",
        time(Some(now))
    );
    b
}

/// Puts a failed channel message back in the queue, due now; the delivery stage sends it at its
/// next look.
pub(super) async fn retry(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    retry_failed(
        &c,
        &v,
        &f.csrf,
        "channel message",
        "/channels".into(),
        move |w, now, user| {
            let m = w.channel_message(id)?;
            if m.status != OutboxStatus::Failed {
                return Ok(false);
            }
            w.mark_channel_retry(id, "retry requested from the console", now)?;
            tracing::info!(message = id, channel = %m.channel, user,
                       "console: failed channel message queued again");
            Ok(true)
        },
    )
    .await
}
