//! The web console (issue 18): server-rendered pages over the state database — overview, feeds,
//! matches, rules, the rule playground, sent digests, channels — served by the daemon beside
//! `/metrics` and by `newswatch console` alone. Reads the store read-only; the only writes are the
//! operator POSTs (retry a failed email or channel message), which go through the store's own
//! write paths.
//! Every response carries a strict CSP (no inline script or style) and every value is escaped
//! (`html`). Who may look is `auth`; the pages are `pages`, `matches`, `playground`, `digests`,
//! `channels`.

mod auth;
mod channels;
mod digests;
pub mod html;
mod labels;
mod matches;
mod pages;
mod playground;
mod send_now;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PostgresSettings};
use crate::rules::RuleSet;
use crate::store::{Store, StoreError};

pub use auth::{AuthError, Users, hash_password};

/// The console's pages' policy: our own stylesheet and script only, no inline anything, no
/// plugins, no framing of the console itself; digests are framed from `/digests/{id}/html`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A sent email's HTML, framed: no script at all, its own inline styles (email HTML has them),
/// images only inline, and a sandbox (a unique origin: it cannot reach the console's cookies).
pub const DIGEST_CSP: &str =
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} for the console: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the console server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the console's worker stopped: {0}")]
    Join(String),
}

/// The configuration and rules the console shows, with what is derived from them; replaced
/// whole when the daemon reloads (`Reload`).
#[derive(Clone)]
struct Live {
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    lists: String,
    labels: Option<Arc<labels::LabelSet>>,
    /// `rules.check_examples()`, run once per rule set (the rule pages show it).
    failing_examples: Arc<Vec<crate::rules::Diagnostic>>,
}

impl Live {
    fn new(config: Arc<Config>, rules: Arc<RuleSet>) -> Live {
        let lists = playground::lists_source(&config.rule_files);
        let labels = labels::load(&config.console.labels, &rules);
        let failing_examples = Arc::new(rules.check_examples());
        Live {
            config,
            rules,
            lists,
            labels,
            failing_examples,
        }
    }
}

/// The daemon's hold on its console: after a reload is applied, `reloaded` gives the console
/// the new configuration and rules (its pages read them from the next request on).
#[derive(Clone)]
pub struct Reload(Arc<RwLock<Live>>);

impl Reload {
    pub fn reloaded(&self, config: Arc<Config>, rules: Arc<RuleSet>) {
        let live = Live::new(config, rules);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = live;
    }
}

/// What every page handler reads: the database (one read-only connection, used on a blocking
/// thread), the configuration and rules (those of the last reload, in the daemon), and who may
/// look. `config`, `rules`, `lists` and `labels` are a request's snapshot of `live`
/// (`Console::current`).
#[derive(Clone)]
pub struct Console {
    store: Arc<Mutex<Store>>,
    config: Arc<Config>,
    rules: Arc<RuleSet>,
    auth: Arc<auth::Auth>,
    /// The configured rule files' `[lists]`, for the playground's queries.
    lists: String,
    corpus: Arc<Mutex<playground::Corpus>>,
    /// `[console] labels`, read against `rules`: the playground's P/R/F1.
    labels: Option<Arc<labels::LabelSet>>,
    failing_examples: Arc<Vec<crate::rules::Diagnostic>>,
    live: Arc<RwLock<Live>>,
    now: fn() -> DateTime<Utc>,
    /// The daemon's queue for "Send digest now"; `None` for the standalone console, which
    /// changes no digest state.
    requests: Option<Arc<crate::live::Requests>>,
    /// The daemon's recent stage timings; `None` for the standalone console.
    stages: Option<crate::live::stage_times::StageTimes>,
}

impl Console {
    /// A console over `config`'s state, read-only: the SQLite file in `state_dir`, or the
    /// PostgreSQL store of `[store]` through a small pool of its own (blocking: call it on a
    /// plain thread). `listen` is where it will be served: any address but loopback needs
    /// authentication configured (users or a trusted header), or this refuses with
    /// [`AuthError::Unprotected`].
    pub fn open(
        config: Arc<Config>,
        rules: Arc<RuleSet>,
        listen: SocketAddr,
    ) -> Result<Console, ConsoleError> {
        let auth = auth::Auth::for_address(&config.console, listen)?;
        let store = match &config.store {
            Some(pg) => Store::open_postgres_read_only(&own_pool(pg))?,
            None => Store::open_read_only(&config.state_dir)?,
        };
        let live = Live::new(config, rules);
        Ok(Console {
            store: Arc::new(Mutex::new(store)),
            config: Arc::clone(&live.config),
            rules: Arc::clone(&live.rules),
            auth: Arc::new(auth),
            lists: live.lists.clone(),
            corpus: playground::corpus(),
            labels: live.labels.clone(),
            failing_examples: Arc::clone(&live.failing_examples),
            live: Arc::new(RwLock::new(live)),
            now: crate::clock::now,
            requests: None,
            stages: None,
        })
    }

    /// The console served by the daemon: "Send digest now" asks its pipeline through
    /// `requests`; the overview shows the stages' recent timings from `stages`.
    #[must_use]
    pub fn with_daemon(
        mut self,
        requests: Arc<crate::live::Requests>,
        stages: crate::live::stage_times::StageTimes,
    ) -> Console {
        self.requests = Some(requests);
        self.stages = Some(stages);
        self
    }

    /// What the daemon calls after a reload to hand the console the new set.
    pub fn reload_handle(&self) -> Reload {
        Reload(Arc::clone(&self.live))
    }

    /// This console with the configuration and rules in force now.
    fn current(&self) -> Console {
        let live = self
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Console {
            config: live.config,
            rules: live.rules,
            lists: live.lists,
            labels: live.labels,
            failing_examples: live.failing_examples,
            ..self.clone()
        }
    }

    /// Runs `f` with the store on a blocking thread (a page's queries), returning its HTML.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &Console) -> Result<T, ConsoleError> + Send + 'static,
    ) -> Result<T, ConsoleError> {
        let me = self.current();
        tokio::task::spawn_blocking(move || {
            let store = me.store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&store, &me)
        })
        .await
        .map_err(|e| ConsoleError::Join(e.to_string()))?
    }

    fn now(&self) -> DateTime<Utc> {
        (self.now)()
    }
}

/// The console's routes, with its headers and authentication on every one of them.
pub fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/feeds", get(pages::feeds))
        .route("/feeds/{id}", get(pages::feed))
        .route("/matches", get(matches::matches))
        .route("/rules", get(pages::rules))
        .route("/rules/{id}", get(pages::rule))
        .route("/playground", get(playground::playground))
        .route("/digests", get(digests::digests))
        .route("/digests/{id}", get(digests::digest))
        .route("/digests/{id}/html", get(digests::digest_html))
        .route("/outbox/{id}/retry", post(digests::retry))
        .route("/channels", get(channels::channels))
        .route("/channels/{id}/retry", post(channels::retry))
        .route("/send-now/{name}", post(send_now::send_now))
        .route("/logout", post(auth::logout))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require,
        ));
    Router::new()
        .merge(pages)
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/assets/console.css", get(css))
        .route("/assets/playground.js", get(js))
        .with_state(console)
        .layer(middleware::from_fn(security_headers))
}

/// Serves the console alone on `listener` until `shutdown` (`newswatch console`).
pub async fn serve(
    listener: TcpListener,
    console: Console,
    shutdown: CancellationToken,
) -> Result<(), ConsoleError> {
    axum::serve(listener, router(console))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(ConsoleError::Serve)
}

/// Binds the console's own address (standalone).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ConsoleError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Bind { addr, source })
}

async fn security_headers(req: Request, next: Next) -> Response {
    let is_digest_frame = req.uri().path().ends_with("/html");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let csp = if is_digest_frame { DIGEST_CSP } else { CSP };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_digest_frame {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::JS,
    )
        .into_response()
}

/// A page, or the error as a page (500, the error's own words: it names the database file).
fn respond(result: Result<String, ConsoleError>) -> Response {
    match result {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "console page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(html::page(
                    "Error",
                    html::Nav::None,
                    &html::Viewer::default(),
                    &format!("<h1>Error</h1><p>{}</p>", html::esc(&e.to_string())),
                )),
            )
                .into_response()
        }
    }
}

/// A retry POST's work: puts a failed email or channel message (`what`) back in the queue, due
/// now, and answers 303 to `done`; 403 without the session's CSRF token, 409 unless it failed,
/// 404 if unknown. `requeue` gets a writable connection of its own (the console's is read-only:
/// the SQLite file opened for writing, or one PostgreSQL connection),
/// the time and the user, and says whether the item had failed and is queued again.
async fn retry_failed(
    c: &Console,
    viewer: &html::Viewer,
    csrf: &str,
    what: &'static str,
    done: String,
    requeue: impl FnOnce(&mut Store, DateTime<Utc>, &str) -> Result<bool, StoreError> + Send + 'static,
) -> Response {
    if !auth::csrf_ok(viewer, csrf) {
        return (StatusCode::FORBIDDEN, "invalid or missing CSRF token\n").into_response();
    }
    let user = viewer.user.clone().unwrap_or_else(|| "-".into());
    let result = c
        .with_store(move |_, c| {
            let mut w = match &c.config.store {
                Some(pg) => Store::open_postgres(&PostgresSettings {
                    pool_size: 1,
                    ..own_pool(pg)
                })?,
                None => Store::open_file(&c.config.state_dir.join(crate::store::DB_FILE))?,
            };
            Ok(requeue(&mut w, c.now(), &user)?)
        })
        .await;
    match result {
        Ok(true) => axum::response::Redirect::to(&done).into_response(),
        Ok(false) => (
            StatusCode::CONFLICT,
            format!("only a failed {what} can be retried\n"),
        )
            .into_response(),
        Err(ConsoleError::Store(StoreError::NoSuchMessage(_))) => {
            (StatusCode::NOT_FOUND, format!("no such {what}\n")).into_response()
        }
        Err(e) => respond(Err(e)),
    }
}

/// The console's own connections to a PostgreSQL store: at most two (one request reads at a
/// time), named after the node's so `pg_stat_activity` tells them apart.
fn own_pool(pg: &PostgresSettings) -> PostgresSettings {
    PostgresSettings {
        pool_size: pg.pool_size.min(2),
        node_name: format!("{}-console", pg.node_name),
        ..pg.clone()
    }
}

/// 404 as a page.
fn not_found(what: &str, viewer: &html::Viewer) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(html::page(
            "Not found",
            html::Nav::None,
            viewer,
            &format!("<h1>Not found</h1><p>{}</p>", html::esc(what)),
        )),
    )
        .into_response()
}

/// The state a page handler extracts.
type St = State<Console>;
