//! `/digests`: every email the outbox holds (digests and alerts), newest first, with its delivery
//! state and attempts; one email's page frames its HTML part from `/digests/{id}/html`, served
//! with a sandbox CSP (no script, a unique origin) and shown in an `<iframe sandbox>`. The
//! operator's retry of a failed email is a POST with the CSRF token (the store's own
//! `mark_retry`, on a connection opened for that one write).

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::CsrfForm;
use super::html::{Nav, Viewer, ago, attr, esc, page, time};
use super::{Console, ConsoleError, St, not_found, respond, retry_failed};
use crate::model::OutboxStatus;
use crate::store::{SentEmail, Store};

/// Emails a page lists.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Paging {
    before: Option<i64>,
}

pub(super) async fn digests(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Query(p): Query<Paging>,
) -> Response {
    respond(
        c.with_store(move |s, c| {
            let rows = s.sent_emails(p.before, PAGE)?;
            let mut b = String::from("<h1>Digests and alerts</h1>");
            if rows.is_empty() {
                b.push_str("<p class=\"muted\">Nothing composed yet.</p>");
            } else {
                b.push_str(&table(&rows, c));
            }
            if rows.len() == PAGE
                && let Some(last) = rows.last()
            {
                let _ = write!(
                    b,
                    "<p class=\"pager\"><a rel=\"next\" href=\"/digests?before={}\">Older →</a></p>",
                    last.id
                );
            }
            Ok(page("Digests", Nav::Digests, &v, &b))
        })
        .await,
    )
}

fn table(rows: &[SentEmail], c: &Console) -> String {
    let now = c.now();
    let mut b = String::from(
        "<div class=\"scroll\"><table><tr><th>#</th><th>name</th><th>kind</th><th>state</th><th class=\"opt\">attempts</th><th>composed</th><th class=\"opt\">last error</th></tr>",
    );
    for e in rows {
        let _ = write!(
            b,
            "<tr><td><a href=\"/digests/{id}\">{id}</a></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"opt\">{}</td><td>{}</td><td class=\"opt\">{}</td></tr>",
            esc(&e.digest_name),
            esc(&e.kind),
            status_class(&e.status),
            esc(&e.status),
            e.attempts,
            ago(Some(e.created), now),
            esc(&super::html::cut(
                e.last_error.as_deref().unwrap_or(""),
                200
            )),
            id = e.id,
        );
    }
    b.push_str("</table></div>");
    b
}

fn status_class(status: &str) -> &'static str {
    match status {
        "sent" => "ok",
        "failed" => "bad",
        _ => "warn",
    }
}

pub(super) async fn digest(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Response {
    let v2 = v.clone();
    match c.with_store(move |s, c| digest_page(s, c, &v, id)).await {
        Ok(None) => not_found("no such email in the outbox", &v2),
        other => respond(other.map(Option::unwrap_or_default)),
    }
}

fn digest_page(
    s: &Store,
    c: &Console,
    v: &Viewer,
    id: i64,
) -> Result<Option<String>, ConsoleError> {
    let Some(e) = s
        .sent_emails(Some(id + 1), 1)?
        .into_iter()
        .find(|e| e.id == id)
    else {
        return Ok(None);
    };
    let now = c.now();
    let subject = s
        .email_bytes(id)?
        .and_then(|raw| {
            mail_parser::MessageParser::default()
                .parse(&raw)
                .and_then(|m| m.subject().map(str::to_string))
        })
        .unwrap_or_default();
    let mut b = format!(
        "<h1>{}</h1><div class=\"scroll\"><table>\
         <tr><th>email</th><td>#{id} · {} {}</td></tr>\
         <tr><th>to</th><td>{}</td></tr>\
         <tr><th>state</th><td class=\"{}\">{}</td></tr>\
         <tr><th>attempts</th><td>{}</td></tr>\
         <tr><th>composed</th><td>{}</td></tr>\
         <tr><th>sent</th><td>{}</td></tr>\
         <tr><th>next attempt</th><td>{}</td></tr>\
         <tr><th>last error</th><td>{}</td></tr></table></div>",
        esc(if subject.is_empty() {
            "(no subject)"
        } else {
            &subject
        }),
        esc(&e.kind),
        esc(&e.digest_name),
        esc(&e.recipients.join(", ")),
        status_class(&e.status),
        esc(&e.status),
        e.attempts,
        time(Some(e.created)),
        time(e.sent),
        if e.status == "queued" {
            ago(Some(e.next_attempt), now)
        } else {
            "—".into()
        },
        esc(e.last_error.as_deref().unwrap_or("—")),
    );
    if e.status == "failed"
        && let Some(token) = &v.csrf
    {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/outbox/{id}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Retry sending</button></form>",
            attr(token)
        );
    }
    let _ = write!(
        b,
        "<h2>As sent</h2><iframe class=\"digest\" sandbox=\"\" referrerpolicy=\"no-referrer\" title=\"the email's HTML part\" src=\"/digests/{id}/html\"></iframe>"
    );
    Ok(Some(page("Digest", Nav::Digests, v, &b)))
}

/// The email's HTML part (or its text, escaped) under [`super::DIGEST_CSP`].
pub(super) async fn digest_html(State(c): St, Path(id): Path<i64>) -> Response {
    let result = c
        .with_store(move |s, _| {
            Ok(s.email_bytes(id)?.map(|raw| {
                let parsed = mail_parser::MessageParser::default().parse(&raw);
                let html = parsed
                    .as_ref()
                    .and_then(|m| m.body_html(0).map(std::borrow::Cow::into_owned));
                let text = parsed
                    .as_ref()
                    .and_then(|m| m.body_text(0).map(std::borrow::Cow::into_owned));
                html.unwrap_or_else(|| {
                    format!("<pre>{}</pre>", esc(text.as_deref().unwrap_or("(no body)")))
                })
            }))
        })
        .await;
    match result {
        Ok(Some(html)) => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such email\n").into_response(),
        Err(e) => respond(Err(e)),
    }
}

/// Puts a failed email back in the queue, due now; the delivery stage sends it at its next look.
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
        "email",
        format!("/digests/{id}"),
        move |w, now, user| {
            let m = w.message(id)?;
            if m.status != OutboxStatus::Failed {
                return Ok(false);
            }
            w.mark_retry(id, "retry requested from the console", now)?;
            tracing::info!(message = id, user, "console: failed email queued again");
            Ok(true)
        },
    )
    .await
}
