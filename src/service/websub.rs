//! The WebSub callback server (issue 20), on `[websub] listen`, apart from `[http]`: a hub's
//! verification of intent (GET with `hub.challenge`, answered only for a subscription this daemon
//! asked for, with the topic it asked for; 404 otherwise) and its content distribution (POST,
//! authenticated by `X-Hub-Signature` with the subscription's secret). A push whose signature is
//! missing or wrong is acknowledged (2xx, as the spec asks) but dropped and counted; a good one is
//! parsed by the feed parser and stored like a poll, and the stream's match stage is woken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, WebSubSettings};
use crate::pipeline::PushSignals;
use crate::service::metrics::Metrics;
use crate::store::{Store, SubState, Subscription};

/// Why a push's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature header")]
    Missing,
    #[error("X-Hub-Signature is not METHOD=HEX")]
    Malformed,
    #[error("X-Hub-Signature uses {0}, expected sha1, sha256, sha384 or sha512")]
    UnknownMethod(String),
    #[error("X-Hub-Signature does not match the body")]
    Mismatch,
}

/// Checks `X-Hub-Signature: METHOD=HEX` (WebSub §8) over `body` with `secret`. Pure.
pub fn verify_signature(
    header: Option<&str>,
    secret: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let (method, hex) = header.split_once('=').ok_or(SignatureError::Malformed)?;
    let given = decode_hex(hex.trim()).ok_or(SignatureError::Malformed)?;
    let method = method.trim().to_ascii_lowercase();
    match mac_matches(&method, secret, body, &given) {
        Some(true) => Ok(()),
        Some(false) => Err(SignatureError::Mismatch),
        None => Err(SignatureError::UnknownMethod(method)),
    }
}

/// Whether `given` is the body's HMAC under `method` (compared in constant time by
/// `Mac::verify_slice`); `None` for a method WebSub does not name.
fn mac_matches(method: &str, secret: &[u8], body: &[u8], given: &[u8]) -> Option<bool> {
    macro_rules! check {
        ($digest:ty) => {{
            // HMAC takes a key of any length; this cannot fail.
            let mut mac = <Hmac<$digest> as Mac>::new_from_slice(secret).ok()?;
            mac.update(body);
            Some(mac.verify_slice(given).is_ok())
        }};
    }
    match method {
        "sha1" => check!(sha1::Sha1),
        "sha256" => check!(sha2::Sha256),
        "sha384" => check!(sha2::Sha384),
        "sha512" => check!(sha2::Sha512),
        _ => None,
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What the handlers share: a store connection of their own (the pipeline keeps its own), the
/// settings, and where to signal the stream.
pub struct Callbacks {
    store: Mutex<Store>,
    settings: WebSubSettings,
    new_feed_window: Duration,
    signals: Arc<PushSignals>,
    metrics: Metrics,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

impl Callbacks {
    /// Opens the callbacks' own store connection (the SQLite file, or a small pool of its own
    /// on `[store]`'s PostgreSQL, connected off the async workers); `None` without `[websub]`.
    pub async fn open(
        config: &Config,
        signals: Arc<PushSignals>,
        metrics: Metrics,
    ) -> anyhow::Result<Option<Callbacks>> {
        let Some(settings) = config.websub.clone() else {
            return Ok(None);
        };
        let store = match &config.store {
            Some(pg) => {
                let pg = crate::config::PostgresSettings {
                    pool_size: pg.pool_size.min(2),
                    node_name: format!("{}-websub", pg.node_name),
                    ..pg.clone()
                };
                tokio::task::spawn_blocking(move || Store::open_postgres(&pg))
                    .await
                    .context("the database task panicked")?
            }
            None => Store::open(&config.state_dir),
        }
        .context("cannot open the state database for WebSub callbacks")?;
        // The feeds that may be pushed: these until a pipeline (one opened by a reload too)
        // sets its own.
        signals.set_feeds(config);
        Ok(Some(Callbacks {
            store: Mutex::new(store),
            settings,
            new_feed_window: config.new_feed_window,
            signals,
            metrics,
        }))
    }

    /// Runs `f` on the callbacks' store on the blocking pool.
    async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut guard = me.store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard).map_err(anyhow::Error::from)
        })
        .await
        .context("the database task panicked")?
    }

    async fn subscription(self: &Arc<Self>, token: &str) -> Option<Subscription> {
        let token = token.to_string();
        match self.db(move |s| s.websub_by_token(&token)).await {
            Ok(sub) => sub,
            Err(e) => {
                warn!(error = format!("{e:#}"), "cannot read WebSub subscriptions");
                None
            }
        }
    }
}

/// Serves the callbacks on `listener` until `shutdown`. Bodies are capped at `max_body` bytes,
/// as a poll's are.
pub async fn serve(
    listener: TcpListener,
    callbacks: Callbacks,
    max_body: u64,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let app = Router::new()
        .route("/{*path}", get(verify).post(push))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(callbacks));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving WebSub callbacks");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The callback's token: the path's last segment (a reverse proxy may keep or strip a prefix).
fn token_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such subscription\n").into_response()
}

/// Verification of intent (WebSub §5.3) and a hub's denial (§5.2).
async fn verify(
    State(cb): State<Arc<Callbacks>>,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(sub) = cb.subscription(token_of(&path)).await else {
        return not_found();
    };
    let mode = q.get("hub.mode").map_or("", String::as_str);
    let topic_ok = q.get("hub.topic").is_some_and(|t| *t == sub.topic);
    if !topic_ok {
        warn!(feed = %sub.feed, mode, "WebSub verification for another topic refused");
        return not_found();
    }
    let challenge = q.get("hub.challenge").cloned().unwrap_or_default();
    let now = crate::clock::now();
    let feed = sub.feed.clone();
    let wanted = cb.signals.may_push(&sub.feed);
    let answered = match (mode, sub.state) {
        ("subscribe", SubState::Subscribing | SubState::Active)
            if wanted && !challenge.is_empty() =>
        {
            let lease = q
                .get("hub.lease_seconds")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map_or(cb.settings.lease, Duration::from_secs);
            let f = feed.clone();
            let done = cb.db(move |s| s.websub_verified(&f, lease, now)).await;
            let until = now
                .timestamp()
                .saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
            cb.metrics.websub_lease(&feed, until);
            info!(feed = %feed, lease_secs = lease.as_secs(), "WebSub subscription verified");
            done.map(|()| challenge)
        }
        ("unsubscribe", SubState::Unsubscribing) if !challenge.is_empty() => {
            let f = feed.clone();
            let done = cb.db(move |s| s.websub_forget(&f)).await;
            cb.metrics.websub_lease(&feed, 0);
            info!(feed = %feed, "WebSub unsubscription verified");
            done.map(|()| challenge)
        }
        ("denied", _) => {
            let reason = q
                .get("hub.reason")
                .cloned()
                .unwrap_or_else(|| "no reason given".into());
            let error = format!(
                "the hub denied the subscription: {}",
                reason.chars().take(200).collect::<String>()
            );
            warn!(feed = %feed, error = %error, "WebSub subscription denied; the feed is polled");
            let retry = now
                + chrono::Duration::from_std(crate::pipeline::websub_retry(sub.attempts))
                    .unwrap_or(chrono::Duration::MAX);
            let f = feed.clone();
            let done = cb.db(move |s| s.websub_failed(&f, &error, retry)).await;
            cb.metrics.websub_lease(&feed, 0);
            done.map(|()| String::new())
        }
        _ => {
            debug!(feed = %feed, mode, state = %sub.state, "WebSub verification not expected");
            return not_found();
        }
    };
    cb.signals.changed.notify_one();
    match answered {
        Ok(body) => (StatusCode::OK, body).into_response(),
        Err(e) => {
            warn!(feed = %feed, error = format!("{e:#}"), "cannot record a WebSub verification");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response()
        }
    }
}

/// Content distribution (WebSub §7–8): the body is the feed (or the new part of it).
async fn push(
    State(cb): State<Arc<Callbacks>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sub) = cb.subscription(token_of(&path)).await else {
        return not_found();
    };
    let feed = sub.feed.clone();
    if !cb.signals.may_push(&feed) {
        cb.metrics.websub_push(&feed, "gone");
        // 410 tells the hub to stop (the stage unsubscribes too).
        return (StatusCode::GONE, "feed no longer configured\n").into_response();
    }
    let signature = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    if let Err(e) = verify_signature(signature, sub.secret.as_bytes(), &body) {
        warn!(feed = %feed, error = %e, bytes = body.len(), "WebSub push dropped: bad signature");
        cb.metrics.websub_push(&feed, "bad_signature");
        let f = feed.clone();
        if let Err(e) = cb.db(move |s| s.websub_bad_signature(&f)).await {
            warn!(feed = %feed, error = format!("{e:#}"), "cannot count a bad WebSub signature");
        }
        // Acknowledged, as WebSub §8 asks: the hub must not learn which secret is right.
        return StatusCode::ACCEPTED.into_response();
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(base) = url::Url::parse(&sub.topic) else {
        return StatusCode::ACCEPTED.into_response();
    };
    // A push's own hub links change nothing: the subscription is already made.
    let parsed = crate::parse::parse_feed_off_thread(body.to_vec(), base, content_type, false);
    let parsed = match parsed.await {
        Ok(p) => p,
        Err(e) => {
            warn!(feed = %feed, error = %e, "WebSub push dropped: not a feed the parser reads");
            cb.metrics.websub_push(&feed, "unparseable");
            return StatusCode::ACCEPTED.into_response();
        }
    };
    let (now, window, f) = (crate::clock::now(), cb.new_feed_window, feed.clone());
    let articles = parsed.articles;
    let listed = articles.len();
    match cb
        .db(move |s| s.record_push(&f, &articles, now, window))
        .await
    {
        Ok(inserted) => {
            info!(feed = %feed, listed, new = inserted.new, alertable = inserted.alertable, "WebSub push stored");
            cb.metrics.websub_push(&feed, "stored");
            cb.metrics.new_articles(&feed, inserted.new as u64);
            cb.signals.pushed.notify_one();
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => {
            // Not acknowledged: the hub delivers it again (WebSub §7 retries non-2xx).
            warn!(feed = %feed, error = format!("{e:#}"), "cannot store a WebSub push; the hub will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! sign {
        ($digest:ty, $secret:expr, $body:expr) => {{
            let mut mac = <Hmac<$digest> as Mac>::new_from_slice($secret).expect("key");
            mac.update($body);
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }};
    }

    #[test]
    fn every_spec_method_verifies_and_tampering_fails() {
        let (secret, body) = (b"s3cret", b"<feed/>");
        for (method, sig) in [
            ("sha1", sign!(sha1::Sha1, secret, body)),
            ("sha256", sign!(sha2::Sha256, secret, body)),
            ("sha384", sign!(sha2::Sha384, secret, body)),
            ("sha512", sign!(sha2::Sha512, secret, body)),
        ] {
            let header = format!("{method}={sig}");
            assert_eq!(
                verify_signature(Some(&header), secret, body),
                Ok(()),
                "{method}"
            );
            assert_eq!(
                verify_signature(Some(&header), secret, b"<feed>forged</feed>"),
                Err(SignatureError::Mismatch),
                "{method}"
            );
            assert_eq!(
                verify_signature(Some(&header), b"other", body),
                Err(SignatureError::Mismatch)
            );
        }
        assert_eq!(
            verify_signature(None, secret, body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("sha256"), secret, body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(Some("sha256=zz"), secret, body),
            Err(SignatureError::Malformed)
        );
        assert!(matches!(
            verify_signature(Some("md5=00"), secret, body),
            Err(SignatureError::UnknownMethod(_))
        ));
    }

    #[test]
    fn the_token_is_the_last_segment() {
        assert_eq!(token_of("websub/abc"), "abc");
        assert_eq!(token_of("abc"), "abc");
    }
}
