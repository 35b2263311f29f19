//! The daemon: repeats `Pipeline::cycle` and owns everything around it — the instance lock, every
//! task (signals, `/metrics` + `/healthz`, the systemd watchdog), sd_notify, SIGHUP reload (a valid
//! new config and rule set replaces the old between cycles; an invalid one is refused, the old set
//! keeps running) and SIGTERM (stop, give the cycle in flight a short grace, exit; unsent email
//! stays in the outbox). It does none of a cycle's work itself and spawns nothing outside its tracker.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::clock;
use crate::config::Config;
use crate::pipeline::{Beats, Pipeline, PushSignals, StreamContext, Summary};
use crate::rules::RuleSet;
use crate::service::health::{self, Check, HealthCheck, HealthReport, Heartbeat};
use crate::service::lock::InstanceLock;
use crate::service::metrics::{Metrics, ReloadResult};
use crate::service::notify::Notifier;
use crate::service::websub::Callbacks;
use crate::store::Store;

/// The daemon sleeps at most this long between looks at what is due, so a clock jump or a
/// retry time in the outbox is noticed without a wake-up source of its own.
const MAX_IDLE: Duration = Duration::from_secs(300);
const MIN_IDLE: Duration = Duration::from_secs(1);

/// After SIGTERM the cycle in flight gets this long to finish; then it is dropped. Dropping is
/// safe: every database write is its own transaction and an email is marked sent only after the
/// server accepted it, so an interrupted send stays queued and goes out after the restart.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Without a systemd watchdog, `/healthz` calls the loop stalled after this long without a
/// finished cycle: the longest idle plus room for a slow cycle.
const STALL_LIMIT: Duration = Duration::from_secs(15 * 60);

/// How often `--watch-rules` looks at the files; a change is acted on once it has been stable for
/// one more look, so an editor's save (write, rename, chmod) becomes one reload.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Daemon switches from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Reload when the config file or a file in a rule directory changes, as SIGHUP does.
    pub watch_rules: bool,
}

/// Runs until SIGTERM or SIGINT. Fails (before `READY=1`) when another daemon holds the state
/// directory, the database cannot be opened, or the HTTP address is taken.
pub async fn run_daemon(config: Config, rules: RuleSet, options: Options) -> anyhow::Result<()> {
    // Shared with the console, which shows the set in force (handed over again at each reload).
    let (config, rules) = (Arc::new(config), Arc::new(rules));
    // First, before the database is touched: a second daemon must not even migrate it.
    let _lock = InstanceLock::acquire(&config.state_dir)?;
    let notifier = Arc::new(Notifier::from_env().context("cannot set up sd_notify")?);
    let signals = Signals::install()?;
    let listener = if config.http.enabled {
        Some(health::bind(config.http.listen).await?)
    } else {
        None
    };
    // Its own address, bound before `READY=1` like `[http]`'s: a taken port fails the start.
    let websub_listener = match &config.websub {
        Some(w) => Some(
            tokio::net::TcpListener::bind(w.listen)
                .await
                .with_context(|| format!("cannot listen on {} for WebSub callbacks", w.listen))?,
        ),
        None => None,
    };
    // Creates and migrates the database; the read-only probe below needs it to exist.
    drop(Pipeline::open(&config, &rules).await?);
    let probe_db = match config.store.clone() {
        // Its own small pool on the shared PostgreSQL; connecting blocks, so off the runtime.
        Some(pg) => tokio::task::spawn_blocking(move || Store::open_postgres(&pg))
            .await
            .context("the database task panicked")?,
        None => Store::open_read_only(&config.state_dir),
    }
    .context("cannot open the state database for health checks")?;
    // The console's "Send digest now" goes through this queue to the pipeline's compose stage.
    let requests = Arc::new(crate::live::Requests::default());
    let metrics = Metrics::new();
    let (console, console_reload) = if config.http.enabled && config.console.enabled {
        let (router, reload) =
            open_console(&config, &rules, Arc::clone(&requests), &metrics).await?;
        (Some(router), Some(reload))
    } else {
        (None, None)
    };

    let push = Arc::new(PushSignals::default());
    let callbacks = Callbacks::open(&config, Arc::clone(&push), metrics.clone()).await?;
    let beats = Beats::new();
    // Each stage gets one full period from the start to show progress: a daemon that has just
    // started is not stalled (and the watchdog's first check comes at once).
    for b in beats.all() {
        b.beat();
    }
    let watchdog = notifier.watchdog_interval();
    let shutdown = CancellationToken::new();
    let reload = Arc::new(Notify::new());
    let tracker = TaskTracker::new();
    tracker.spawn(signals.watch(shutdown.clone(), Arc::clone(&reload), Arc::clone(&notifier)));
    if let Some(listener) = listener {
        let probe = Probe {
            db: Arc::new(Mutex::new(probe_db)),
            beats: beats.all(),
            max_age: watchdog.unwrap_or(STALL_LIMIT),
        };
        let serve = health::serve(listener, metrics.clone(), probe, console, shutdown.clone());
        tracker.spawn(async move {
            if let Err(e) = serve.await {
                error!(error = %e, "the /metrics and /healthz server stopped");
            }
        });
    }
    if let (Some(listener), Some(callbacks)) = (websub_listener, callbacks) {
        // The feeds it accepts pushes for follow reloads: every pipeline opened with `push`
        // sets them (`PushSignals::set_feeds`).
        let serve = crate::service::websub::serve(
            listener,
            callbacks,
            config.fetch.max_body_bytes,
            shutdown.clone(),
        );
        tracker.spawn(async move {
            if let Err(e) = serve.await {
                error!(error = %e, "the WebSub callback server stopped");
            }
        });
    }
    if options.watch_rules {
        let watched = Watched::of(&config);
        let dirs: Vec<String> = watched
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        info!(dirs = %dirs.join(", "), "watching the config and rule files");
        tracker.spawn(watched.watch(shutdown.clone(), Arc::clone(&reload)));
    }
    info!(
        feeds = config.feeds.len(),
        rules = rules.rules().len(),
        state_dir = %config.state_dir.display(),
        "daemon started"
    );
    notify(&notifier, Notifier::ready);
    // Started after READY=1, so its first ping (at once) follows the readiness systemd stamps:
    // spawned before, that ping could come first and the next only half a `WatchdogSec` later
    // (5 minutes with the shipped unit).
    tracker.spawn({
        let (notifier, beats, shutdown) = (Arc::clone(&notifier), beats.all(), shutdown.clone());
        async move { health::run_watchdog(&notifier, &beats, shutdown).await }
    });

    let ctx = Loop {
        shutdown: &shutdown,
        reload: Some(&reload),
        notifier: &notifier,
        beats: &beats,
        metrics: &metrics,
        push: &push,
        // A quiet loop still beats at least twice per watchdog period.
        max_idle: watchdog.map_or(MAX_IDLE, |w| (w / 2).clamp(MIN_IDLE, MAX_IDLE)),
        requests: Some(&requests),
        console: console_reload.as_ref(),
    };
    let result = supervise(config, rules, &ctx).await;
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("a task did not stop within the grace period; exiting anyway");
    }
    info!("daemon stopped");
    result
}

/// The web console's routes for the `[http]` address, over its own read-only connection (the
/// SQLite file, or a small pool on `[store]`'s PostgreSQL, opened off the async workers), with
/// the daemon's config and rules, and the handle that gives it the new ones after a reload.
/// Refuses a non-loopback address without authentication, which stops the start.
async fn open_console(
    config: &Arc<Config>,
    rules: &Arc<RuleSet>,
    requests: Arc<crate::live::Requests>,
    metrics: &Metrics,
) -> anyhow::Result<(axum::Router, crate::console::Reload)> {
    let (c, r, listen) = (Arc::clone(config), Arc::clone(rules), config.http.listen);
    let console = tokio::task::spawn_blocking(move || crate::console::Console::open(c, r, listen))
        .await
        .context("the console's opening task panicked")?
        .context("cannot serve the web console (set `[console] enabled = false` to serve only /metrics and /healthz)")?
        .with_daemon(requests, metrics.stage_times());
    let reload = console.reload_handle();
    Ok((crate::console::router(console), reload))
}

/// Cycles with one config and rule set until a signal: on SIGHUP, swaps in a valid new set (a
/// fresh pipeline, so new feeds get their rows and the transport its new settings) or refuses it.
async fn supervise(
    mut config: Arc<Config>,
    mut rules: Arc<RuleSet>,
    ctx: &Loop<'_>,
) -> anyhow::Result<()> {
    let mut note = String::new();
    // The set that ran before the last swap, kept until the new one has opened.
    let mut previous: Option<(Arc<Config>, Arc<RuleSet>)> = None;
    // A refusal seen while no pipeline was open, recorded once the old set has reopened.
    let mut unrecorded_refusal: Option<String> = None;
    loop {
        let pipeline = match Pipeline::open(&config, &rules).await {
            Ok(p) => p
                .with_metrics(ctx.metrics.clone())
                .with_push_signals(Arc::clone(ctx.push)),
            Err(e) => {
                let Some((c, r)) = previous.take() else {
                    return Err(e);
                };
                let problems = vec![format!("{e:#}")];
                note = refuse(ctx, &problems);
                unrecorded_refusal = Some(problems.join("; "));
                notify(ctx.notifier, Notifier::ready);
                (config, rules) = (c, r);
                continue;
            }
        };
        if let Some(problems) = unrecorded_refusal.take() {
            record_reload(&pipeline, false, problems).await;
        }
        if previous.take().is_some() {
            record_reload(
                &pipeline,
                true,
                format!(
                    "{} feeds, {} rules",
                    config.feeds.len(),
                    rules.rules().len()
                ),
            )
            .await;
            ctx.metrics.reload(ReloadResult::Applied);
            if let Some(console) = ctx.console {
                console.reloaded(Arc::clone(&config), Arc::clone(&rules));
            }
            note = format!("; reloaded at {}", clock::now().format("%H:%M:%S UTC"));
            info!(
                feeds = config.feeds.len(),
                rules = rules.rules().len(),
                "reload applied"
            );
            notify(ctx.notifier, |n| n.status(&format!("reloaded{note}")));
            notify(ctx.notifier, Notifier::ready);
        }
        let next = loop {
            match streams(&pipeline, ctx, &note, &clock::now).await {
                Wake::Shutdown => break None,
                Wake::Reload => {
                    notify(ctx.notifier, Notifier::reloading);
                    match candidate(&config) {
                        Ok(set) => break Some(set),
                        Err(problems) => {
                            note = refuse(ctx, &problems);
                            record_reload(&pipeline, false, problems.join("; ")).await;
                            notify(ctx.notifier, Notifier::ready);
                        }
                    }
                }
            }
        };
        drop(pipeline);
        let Some((new_config, new_rules)) = next else {
            return Ok(());
        };
        previous = Some((
            std::mem::replace(&mut config, Arc::new(new_config)),
            std::mem::replace(&mut rules, Arc::new(new_rules)),
        ));
    }
}

/// Keeps the reload's outcome for `newswatch status`. Failing to write it is logged, never fatal:
/// the reload itself has already happened or been refused.
async fn record_reload(pipeline: &Pipeline<'_>, applied: bool, detail: String) {
    let at = clock::now();
    if let Err(e) = pipeline
        .db(move |s| s.record_reload(at, applied, &detail))
        .await
    {
        warn!(error = %format!("{e:#}"), "cannot record the reload in the database");
    }
}

/// Logs every problem, counts and announces the refusal; returns the note every later STATUS
/// carries until a reload succeeds.
fn refuse(ctx: &Loop<'_>, problems: &[String]) -> String {
    for p in problems {
        error!(problem = %p, "reload refused");
    }
    ctx.metrics.reload(ReloadResult::Refused);
    let note = format!(
        "; reload refused at {} ({} problem{}, see the log), running the previous config and rules",
        clock::now().format("%H:%M:%S UTC"),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    notify(ctx.notifier, |n| n.status(&format!("reload refused{note}")));
    note
}

/// The config file and rules as they are on disk now, or every problem with them.
fn candidate(current: &Config) -> Result<(Config, RuleSet), Vec<String>> {
    info!(config = %current.path.display(), "reloading config and rules");
    let config = Config::load(&current.path)
        .map_err(|errs| errs.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut problems = Vec::new();
    if config.state_dir != current.state_dir {
        problems.push(format!(
            "{}: state_dir changed from {} to {}; that needs a restart",
            config.path.display(),
            current.state_dir.display(),
            config.state_dir.display()
        ));
    }
    let rules = RuleSet::load(&config.rule_files);
    match &rules {
        Err(d) => problems.extend(d.0.iter().map(ToString::to_string)),
        // As at start: a rule limited to a feed or tag the config lacks would match nothing.
        Ok(set) => {
            let (names, tags) = config.feed_names_and_tags();
            problems.extend(
                set.check_feeds(&names, &tags)
                    .iter()
                    .map(ToString::to_string),
            );
        }
    }
    match rules {
        Ok(rules) if problems.is_empty() => {
            if config.http != current.http {
                warn!("the [http] section changed; the old address stays in use until a restart");
            }
            Ok((config, rules))
        }
        _ => Err(problems),
    }
}

/// What the cycle loop needs besides the pipeline: its signals in, its progress reports out.
struct Loop<'a> {
    shutdown: &'a CancellationToken,
    /// Woken by SIGHUP; `None` where reloads are not possible.
    reload: Option<&'a Notify>,
    notifier: &'a Notifier,
    beats: &'a Beats,
    metrics: &'a Metrics,
    /// From the WebSub callback server to every pipeline a reload opens.
    push: &'a Arc<PushSignals>,
    max_idle: Duration,
    /// Digests the console asks for; `None` where no console can ask.
    requests: Option<&'a crate::live::Requests>,
    /// The console the daemon serves, told of each applied reload.
    console: Option<&'a crate::console::Reload>,
}

/// Why the cycle loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Shutdown,
    Reload,
}

/// Runs the pipeline's stages (`Pipeline::stream`) with `clock` until `shutdown` fires. A
/// stream that fails (the database cannot be read at its start, say) is logged and started
/// again.
pub async fn run_until(
    pipeline: &Pipeline<'_>,
    shutdown: &CancellationToken,
    clock: impl Fn() -> DateTime<Utc> + Sync,
) -> anyhow::Result<()> {
    let ctx = Loop {
        shutdown,
        reload: None,
        notifier: &Notifier::disabled(),
        beats: &Beats::new(),
        metrics: &Metrics::new(),
        push: &Arc::new(PushSignals::default()),
        max_idle: MAX_IDLE,
        requests: None,
        console: None,
    };
    streams(pipeline, &ctx, "", &clock).await;
    Ok(())
}

/// Runs the stream until a signal; returns which one. After the signal the stream gets
/// `SHUTDOWN_GRACE` to store what it fetched and finish a send in flight, then it is dropped.
async fn streams(
    pipeline: &Pipeline<'_>,
    ctx: &Loop<'_>,
    note: &str,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> Wake {
    let started = clock();
    let last_status = Mutex::new(None::<tokio::time::Instant>);
    let progress = |s: &Summary| {
        // At most one STATUS a second: a busy stream reports after every poll and send.
        let mut last = last_status.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
        notify(ctx.notifier, |n| n.status(&status_line(started, s, note)));
    };
    let stream_ctx = StreamContext {
        clock,
        beats: ctx.beats,
        max_idle: ctx.max_idle,
        progress: &progress,
        requests: ctx.requests,
    };
    loop {
        if ctx.shutdown.is_cancelled() {
            return Wake::Shutdown;
        }
        let stop = CancellationToken::new();
        let stream = pipeline.stream(stop.clone().cancelled_owned(), &stream_ctx);
        tokio::pin!(stream);
        let (wake, outcome) = tokio::select! {
            r = &mut stream => (None, Some(r)),
            () = ctx.shutdown.cancelled() => (Some(Wake::Shutdown), None),
            () = reload_requested(ctx.reload) => (Some(Wake::Reload), None),
        };
        if let Some(wake) = wake {
            stop.cancel();
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut stream).await {
                Ok(Err(e)) => error!(
                    error = format!("{e:#}"),
                    "the pipeline failed while stopping"
                ),
                Ok(Ok(())) => {}
                Err(_) => warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "abandoning the work in flight; unsent email stays in the outbox"
                ),
            }
            return wake;
        }
        if let Some(Err(e)) = outcome {
            error!(
                error = format!("{e:#}"),
                "the pipeline failed; starting it again"
            );
            notify(ctx.notifier, |n| {
                n.status(&format!(
                    "{}: pipeline failed: {e:#}{note}",
                    clock().format("%H:%M:%S UTC")
                ))
            });
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Wake::Shutdown,
            () = reload_requested(ctx.reload) => return Wake::Reload,
            () = tokio::time::sleep(MIN_IDLE * 5) => {}
        }
    }
}

async fn reload_requested(reload: Option<&Notify>) {
    match reload {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// The one line `systemctl status` shows: totals since the stream (re)started.
fn status_line(since: DateTime<Utc>, s: &Summary, note: &str) -> String {
    format!(
        "since {}: {} polls ({} failed), {} new articles, {} matches, {} emails sent, {} deferred{note}",
        since.format("%H:%M:%S UTC"),
        s.feeds_polled,
        s.feeds_failed,
        s.new_articles,
        s.matches,
        s.emails_sent,
        s.emails_deferred
    )
}

/// sd_notify failures are logged, never fatal: systemd going away must not stop the monitoring.
fn notify(
    notifier: &Notifier,
    send: impl FnOnce(&Notifier) -> Result<(), crate::service::notify::NotifyError>,
) {
    if let Err(e) = send(notifier) {
        warn!(error = %e, "cannot notify systemd");
    }
}

/// `/healthz`: the database answers on its own read-only connection (so a long cycle holding
/// the writer does not make the check time out) and the loop finished a cycle recently.
struct Probe {
    db: Arc<Mutex<Store>>,
    /// One per stage of the stream.
    beats: [Heartbeat; 4],
    max_age: Duration,
}

impl HealthCheck for Probe {
    async fn check(&self) -> HealthReport {
        let db = Arc::clone(&self.db);
        let answer = tokio::task::spawn_blocking(move || {
            // A panicked check leaves nothing half-done on a read-only connection.
            db.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .outbox_counts()
        })
        .await;
        let database = match answer {
            Ok(Ok(c)) => Check::pass("database", format!("{} emails queued", c.queued)),
            Ok(Err(e)) => Check::fail("database", e.to_string()),
            Err(e) => Check::fail("database", format!("the check panicked: {e}")),
        };
        let mut checks = vec![database];
        checks.extend(self.beats.iter().map(|b| b.check(self.max_age)));
        HealthReport { checks }
    }
}

/// SIGTERM, SIGINT and SIGHUP listeners, installed before `READY=1`: a signal that arrives while
/// the first poll runs must stop (or reload) the daemon, not kill it with the default action.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    /// SIGHUPs that arrive during a cycle collapse into one reload after it.
    async fn watch(
        mut self,
        shutdown: CancellationToken,
        reload: Arc<Notify>,
        notifier: Arc<Notifier>,
    ) {
        let name = loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = self.term.recv() => break "SIGTERM",
                Some(()) = self.int.recv() => break "SIGINT",
                Some(()) = self.hup.recv() => {
                    info!(signal = "SIGHUP", "reload requested");
                    reload.notify_one();
                }
                else => return,
            }
        };
        info!(signal = name, "shutting down");
        notify(&notifier, Notifier::stopping);
        shutdown.cancel();
    }
}

/// The files `--watch-rules` looks at: the config file, and every `.toml` file in the directories
/// the rule files were found in at startup (a new file there is seen; a changed `rules` list in
/// the config is watched from the next start). Directories, not files: editors save by rename.
#[derive(Debug)]
struct Watched {
    config: PathBuf,
    dirs: Vec<PathBuf>,
}

/// (path, length, modification time) of each watched file, sorted.
type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

impl Watched {
    fn of(config: &Config) -> Watched {
        let mut dirs: Vec<PathBuf> = config
            .rule_files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        Watched {
            config: config.path.clone(),
            dirs,
        }
    }

    /// A few `stat`s: cheap enough to run on the async worker every half second.
    fn fingerprint(&self) -> Fingerprint {
        let stat = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| (p.to_path_buf(), m.len(), m.modified().ok()))
        };
        let mut files: Fingerprint = stat(&self.config).into_iter().collect();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            files.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .filter_map(|p| stat(&p)),
            );
        }
        files.sort();
        files
    }

    async fn watch(self, shutdown: CancellationToken, reload: Arc<Notify>) {
        let mut applied = self.fingerprint();
        let mut seen = applied.clone();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.fingerprint();
            // Changed since the last reload, and the same as half a second ago: the save is done.
            if now != applied && now == seen {
                info!("config or rule files changed; reloading");
                reload.notify_one();
                applied = now.clone();
            }
            seen = now;
        }
    }
}
