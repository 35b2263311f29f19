//! The operator's HTTP endpoint (axum): `/metrics` (Prometheus/OpenMetrics text) and `/healthz`
//! (200 only when every check passes, 503 otherwise, one line per check either way).
//! What "healthy" means is supplied by the daemon through [`HealthCheck`]; [`Heartbeat`] is the
//! loops' proof of progress. This module serves; it opens no database and polls no feed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::service::metrics::{self, Metrics};
use crate::service::notify::Notifier;

/// A health check that does not answer within this is a failed check (a hung database is down).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} for /metrics and /healthz")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics and health server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// One line of `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The answer to "is the daemon healthy?"; healthy when there is at least one check and all pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    pub checks: Vec<Check>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let verdict = if c.ok { "ok" } else { "FAIL" };
            out.push_str(&format!("{}: {verdict}", c.name));
            if !c.detail.is_empty() {
                out.push_str(&format!(" ({})", c.detail));
            }
            out.push('\n');
        }
        out
    }
}

/// Supplied by the daemon: ping the database, look at the loops' heartbeats.
pub trait HealthCheck: Send + Sync + 'static {
    fn check(&self) -> impl Future<Output = HealthReport> + Send;
}

/// When a loop last finished a unit of work. Clones share the same clock reading; uses tokio's
/// clock so tests can pause and advance it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    name: &'static str,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Heartbeat {
    pub fn new(name: &'static str) -> Heartbeat {
        Heartbeat {
            name,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Called by the loop after each completed pass (a poll cycle, a delivery pass).
    pub fn beat(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Time since the last beat; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.map(|t| t.elapsed())
    }

    /// Passes when the loop beat within `max_age`. Also the daemon's test before `WATCHDOG=1`.
    pub fn check(&self, max_age: Duration) -> Check {
        match self.age() {
            None => Check::fail(self.name, "no progress yet"),
            Some(age) if age <= max_age => {
                Check::pass(self.name, format!("last progress {}s ago", age.as_secs()))
            }
            Some(age) => Check::fail(
                self.name,
                format!(
                    "stalled: last progress {}s ago, limit {}s",
                    age.as_secs(),
                    max_age.as_secs()
                ),
            ),
        }
    }
}

/// Sends `WATCHDOG=1` every half `WatchdogSec`, but only while every heartbeat is younger than
/// `WatchdogSec`: a loop stuck on a hung await stops the pings and systemd restarts us.
/// Returns at once when systemd asked for no watchdog, and when `shutdown` is cancelled.
pub async fn run_watchdog(notifier: &Notifier, beats: &[Heartbeat], shutdown: CancellationToken) {
    let Some(limit) = notifier.watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(limit / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stalled = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let stalled: Vec<Check> = beats
            .iter()
            .map(|b| b.check(limit))
            .filter(|c| !c.ok)
            .collect();
        if stalled.is_empty() {
            was_stalled = false;
            if let Err(e) = notifier.watchdog() {
                tracing::warn!(error = %e, "cannot ping the systemd watchdog");
            }
        } else if !was_stalled {
            was_stalled = true;
            for c in &stalled {
                tracing::error!(task = c.name, state = %c.detail, "no progress: withholding the watchdog ping");
            }
        }
    }
}

/// Binds the listener; done before `READY=1` so a taken port fails the start, not a later task.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` is cancelled, and the web
/// console's routes (`console`) beside them when given.
pub async fn serve<H: HealthCheck>(
    listener: TcpListener,
    metrics: Metrics,
    health: H,
    console: Option<Router>,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
        .merge(
            Router::new()
                .route("/healthz", get(healthz_handler::<H>))
                .with_state(Arc::new(health)),
        )
        .merge(console.unwrap_or_default());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(HttpError::Serve)
}

async fn metrics_handler(State(metrics): State<Metrics>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
        .into_response()
}

async fn healthz_handler<H: HealthCheck>(State(health): State<Arc<H>>) -> Response {
    let report = tokio::time::timeout(CHECK_TIMEOUT, health.check())
        .await
        .unwrap_or_else(|_| HealthReport {
            checks: vec![Check::fail(
                "health check",
                format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
            )],
        });
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        report.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pings(sock: &std::os::unix::net::UnixDatagram) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while let Ok(len) = sock.recv(&mut buf) {
            assert_eq!(&buf[..len], b"WATCHDOG=1");
            n += 1;
        }
        n
    }

    async fn run_for(d: Duration) {
        // Let the watchdog task run at every instant it is due within `d`.
        for _ in 0..d.as_secs() {
            tokio::time::advance(Duration::from_secs(1)).await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_only_while_loops_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        sock.set_nonblocking(true).expect("nonblocking");
        let notifier = Notifier::from_vars(Some(path.as_os_str()), Some("10000000"), None, 1)
            .expect("notifier");
        let poll = Heartbeat::new("poll loop");
        let deliver = Heartbeat::new("delivery loop");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let beats = vec![poll.clone(), deliver.clone()];
            let shutdown = shutdown.clone();
            async move { run_watchdog(&notifier, &beats, shutdown).await }
        });

        run_for(Duration::from_secs(6)).await;
        assert_eq!(pings(&sock), 0, "no ping before both loops made progress");

        for _ in 0..4 {
            poll.beat();
            deliver.beat();
            run_for(Duration::from_secs(5)).await;
        }
        // Ticks at 10, 15, 20 and 25 s each see both loops fresh.
        assert_eq!(pings(&sock), 4, "pings every 5 s while both loops beat");

        // The delivery loop hangs; the poll loop keeps going.
        for _ in 0..4 {
            poll.beat();
            run_for(Duration::from_secs(5)).await;
        }
        // Delivery last beat at 21 s: fresh at the 30 s tick, stale (14 s) from the 35 s tick on.
        assert_eq!(pings(&sock), 1, "pings stop once a loop is 10 s stale");
        run_for(Duration::from_secs(10)).await;
        assert_eq!(pings(&sock), 0);

        shutdown.cancel();
        task.await.expect("watchdog task ends on shutdown");
    }

    #[tokio::test]
    async fn watchdog_without_watchdog_sec_returns_at_once() {
        run_watchdog(&Notifier::disabled(), &[], CancellationToken::new()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_goes_stale() {
        let hb = Heartbeat::new("poll loop");
        assert!(!hb.check(Duration::from_secs(60)).ok);
        hb.clone().beat();
        tokio::time::advance(Duration::from_secs(60)).await;
        let c = hb.check(Duration::from_secs(60));
        assert!(c.ok, "{c:?}");
        tokio::time::advance(Duration::from_secs(1)).await;
        let c = hb.check(Duration::from_secs(60));
        assert_eq!(c.detail, "stalled: last progress 61s ago, limit 60s");
        assert!(!c.ok);
    }

    #[test]
    fn health_table() {
        let p = || Check::pass("a", "");
        let f = || Check::fail("b", "down");
        #[rustfmt::skip]
        let cases: Vec<(Vec<Check>, bool, &str)> = vec![
            (vec![],         false, ""),
            (vec![p()],      true,  "a: ok\n"),
            (vec![p(), f()], false, "a: ok\nb: FAIL (down)\n"),
        ];
        for (checks, healthy, text) in cases {
            let h = HealthReport { checks };
            assert_eq!((h.is_healthy(), h.render().as_str()), (healthy, text));
        }
    }
}
