//! "Send digest now" (`POST /send-now/{name}`, CSRF-checked): the console served by the daemon
//! asks the daemon's pipeline (`live::Requests`) to compose the named digest's pending
//! matches at once, through the same compose path as a scheduled slot; the email enters the
//! outbox and the delivery stage sends it. The standalone console changes no digest state and
//! says so (409), pointing at `newswatch digest send`.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::auth::{CsrfForm, csrf_ok};
use super::html::{Nav, Viewer, attr, enc, esc, page};
use super::{Console, St, not_found};

/// How long the page waits for the pipeline's answer (a compose turn in flight finishes first);
/// past it the request stays queued and the page says so.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// What the standalone console says about sending.
pub(super) const READ_ONLY: &str = "This console runs alone and is read-only: it sends nothing. \
     Use the console the daemon serves, or `newswatch digest send NAME --config F` when no daemon runs.";

pub(super) async fn send_now(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    // Refused before anything else: the standalone console has nothing to act with.
    let Some(requests) = &c.requests else {
        return (StatusCode::CONFLICT, format!("{READ_ONLY}\n")).into_response();
    };
    if !csrf_ok(&v, &f.csrf) {
        return (StatusCode::FORBIDDEN, "invalid or missing CSRF token\n").into_response();
    }
    if !c.current().config.digests.iter().any(|d| d.name == name) {
        return not_found("no [[digest]] of that name in the configuration", &v);
    }
    let Some(answer) = requests.send_now(&name) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many digests are already waiting to be composed; try again shortly\n",
        )
            .into_response();
    };
    tracing::info!(
        digest = %name,
        user = v.user.as_deref().unwrap_or("-"),
        "console: digest asked for now"
    );
    let (status, message) = match tokio::time::timeout(ANSWER_WAIT, answer).await {
        Ok(Ok(Ok(0))) => (
            StatusCode::OK,
            "Nothing was pending for this digest: no email was composed.".to_string(),
        ),
        Ok(Ok(Ok(n))) => (
            StatusCode::OK,
            format!(
                "Composed {n} email{}: it is in the outbox, and the daemon's delivery is sending it now.",
                if n == 1 { "" } else { "s" }
            ),
        ),
        Ok(Ok(Err(e))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The digest could not be composed: {e}"),
        ),
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The daemon's pipeline stopped before composing it (a reload or a shutdown); try again."
                .to_string(),
        ),
        Err(_) => (
            StatusCode::ACCEPTED,
            format!(
                "Asked; the pipeline has not answered within {} s. The digest will be composed at its next turn.",
                ANSWER_WAIT.as_secs()
            ),
        ),
    };
    let mut b = format!(
        "<h1>Send digest now: {}</h1><p id=\"send-outcome\" role=\"status\">{}</p>",
        esc(&name),
        esc(&message)
    );
    let _ = write!(
        b,
        "<p><a href=\"/digests\">Digests and alerts</a> · <a href=\"/\">Overview</a></p>"
    );
    (status, Html(page("Send digest now", Nav::Digests, &v, &b))).into_response()
}

/// The overview's cell for digest `name`: a Send now button (the daemon's console, a viewer
/// with a CSRF token), else a dash.
pub(super) fn button(c: &Console, v: &Viewer, name: &str) -> String {
    match (&c.requests, &v.csrf) {
        (Some(_), Some(token)) => format!(
            "<form method=\"post\" action=\"/send-now/{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Send now</button></form>",
            enc(name),
            attr(token)
        ),
        _ => "—".to_string(),
    }
}
