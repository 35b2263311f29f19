//! One poll → store → match → compose → deliver cycle (`daemon` repeats it), a file per stage:
//! `poll` (fetch, parse, group-committed writes), `matching`, compose (here), `outbox` (delivery).
//! Owns the database handle; every stage takes `now` as an argument (only `run_once` asks the
//! clock). Durable work (a composed digest) goes through the outbox.

mod channels;
mod cluster;
mod compose;
mod full_text;
mod matching;
mod outbox;
mod poll;
mod spikes;
mod stream;
mod websub;
mod writes;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tracing::{debug, info};

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::rules::RuleSet;
use crate::service::lock::InstanceLock;
use crate::service::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use poll::Jitter;
pub use stream::{Beats, StreamContext};
pub use websub::{PushSignals, random_token, retry_after as websub_retry};

/// Which feeds a cycle polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feeds {
    /// Every configured feed (`run --once`).
    All,
    /// Feeds whose next poll time has come (the daemon).
    Due,
}

/// What one cycle did, printed by `run --once`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub feeds_polled: usize,
    pub feeds_failed: usize,
    /// Polled and answered 304 Not Modified.
    pub feeds_unchanged: usize,
    pub new_articles: usize,
    /// Of the new articles, those published before `new_feed_window` on a feed's first poll:
    /// stored as seen, never matched (so a new feed does not alert on its back catalogue).
    pub stored_unmatched: usize,
    pub matches: usize,
    /// Emails composed into the outbox this cycle.
    pub emails_composed: usize,
    /// Emails handed over (sent or written) this cycle, including older queued ones.
    pub emails_sent: usize,
    /// Emails that failed transiently and wait in the outbox for another attempt.
    pub emails_deferred: usize,
    /// Emails that failed for good (kept in the outbox, marked failed).
    pub emails_failed: usize,
    /// Channel messages accepted by their service this pass.
    pub channel_sent: usize,
    /// Channel messages that failed transiently and wait for another attempt.
    pub channel_deferred: usize,
    /// Channel messages refused for good (kept, marked failed).
    pub channel_failed: usize,
    /// Every email this pass could not deliver (deferred, failed, or not tried after the
    /// transport deferred an earlier one): what `run --once` names before exiting 6.
    pub undelivered: Vec<Undelivered>,
    /// Where emails go: `smtp host:port`, `files in DIR`, `sendmail CMD`.
    pub destination: String,
    /// When the next scheduled digest or alert batch is due, as composition computed it (the
    /// stream's match-and-compose stage sleeps no longer).
    pub next_digest: Option<DateTime<Utc>>,
    /// (feed name, error) of each failed feed.
    pub failures: Vec<(String, String)>,
}

/// An email (or a channel message: `message_id` is then `channel:NAME KEY`) a pass could not
/// deliver; it stays in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// The `[[digest]]` or `[[alert]]` name.
    pub name: String,
    pub message_id: String,
    pub error: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "polled {} feeds ({} failed, {} unchanged): {} new articles, {} matches",
            self.feeds_polled,
            self.feeds_failed,
            self.feeds_unchanged,
            self.new_articles,
            self.matches
        )?;
        if self.stored_unmatched > 0 {
            // Said, or a first run on an old feed looks like rules that catch nothing.
            write!(
                f,
                " ({} of the new articles {} older than new_feed_window on a first poll: \
                 stored as seen, not matched)",
                self.stored_unmatched,
                if self.stored_unmatched == 1 {
                    "was"
                } else {
                    "were"
                }
            )?;
        }
        writeln!(f)?;
        for (feed, err) in &self.failures {
            writeln!(f, "  feed {feed} failed: {err}")?;
        }
        write!(
            f,
            "emails: {} composed, {} sent, {} deferred, {} failed; delivery: {}",
            self.emails_composed,
            self.emails_sent,
            self.emails_deferred,
            self.emails_failed,
            self.destination
        )?;
        for u in self
            .undelivered
            .iter()
            .filter(|u| !u.message_id.starts_with("channel:"))
        {
            write!(
                f,
                "\n  email {} {} not delivered: {}",
                u.name, u.message_id, u.error
            )?;
        }
        if self.channel_sent + self.channel_deferred + self.channel_failed > 0 {
            write!(
                f,
                "\nchannels: {} sent, {} deferred, {} failed",
                self.channel_sent, self.channel_deferred, self.channel_failed
            )?;
        }
        // A channel message's `message_id` is `channel:NAME KEY`.
        for u in self
            .undelivered
            .iter()
            .filter(|u| u.message_id.starts_with("channel:"))
        {
            write!(
                f,
                "\n  {} of {} not delivered: {}",
                u.message_id, u.name, u.error
            )?;
        }
        Ok(())
    }
}

/// Runs one full cycle: every feed polled once, matches digested, the outbox drained.
pub async fn run_once(config: &Config, rules: &RuleSet) -> anyhow::Result<Summary> {
    // Two overlapping runs would poll and send twice (the cron-job failure this tool avoids).
    let _lock = InstanceLock::acquire(&config.state_dir)?;
    let pipeline = Pipeline::open(config, rules).await?;
    pipeline
        .cycle_timed(crate::clock::now(), Feeds::All, Some(&crate::clock::now))
        .await
}

/// The stages wired together for one configuration. Each cycle borrows it; nothing is spawned
/// that outlives a call.
#[derive(Debug)]
pub struct Pipeline<'a> {
    config: &'a Config,
    rules: &'a RuleSet,
    store: Arc<Mutex<Store>>,
    /// The handles poll writes go through, one write in flight on each (`writes`): `store`
    /// itself on SQLite; on PostgreSQL handles of their own on its pool.
    writers: Vec<Arc<Mutex<Store>>>,
    /// Fetches and parses; holds the fetcher (with its host gate) and the global slots.
    poller: poll::Poller,
    deliverer: Deliverer,
    /// The `[[channel]]`s and their HTTP client.
    channels: crate::channels::Channels,
    metrics: Metrics,
    jitter: Jitter,
    /// What the stages need from the configuration and the rules, derived once at open.
    settings: Settings,
    /// robots.txt per origin, for the full-text stage.
    robots: full_text::RobotsCache,
    /// Our robots.txt product token (`newswatch`, from the User-Agent).
    product: String,
    /// The feeds a WebSub hub pushes (polled at `backup_interval`).
    pushing: websub::Pushing,
    /// From the WebSub callback server: pushes stored, subscriptions verified.
    push: Arc<PushSignals>,
    /// When this pipeline opened: the node's start, as its heartbeat reports it.
    started: DateTime<Utc>,
}

/// What the stages need from the configuration and the rules, derived once when the pipeline
/// opens (a reload opens a new pipeline), not again per feed, batch or digest.
#[derive(Debug)]
struct Settings {
    limits: poll::Limits,
    /// Feed tags and alert routes, for the match stage.
    routing: matching::Routing,
    /// Rule id → title, priority and place: the groups of digests and alerts, and their order.
    /// Shared with the store thread's compose closures, not copied per digest (at 10,000 rules
    /// a copy was ~1 MB of the compose stage's heap peak, issue 22).
    rules: std::sync::Arc<crate::digest::RuleBook>,
}

impl Settings {
    fn new(config: &Config, rules: &RuleSet) -> Settings {
        Settings {
            limits: poll::Limits::new(config),
            routing: matching::Routing::new(config, rules),
            rules: std::sync::Arc::new(crate::digest::RuleBook::new(rules.rules().iter().map(
                |r| {
                    (
                        r.id.as_str(),
                        r.title.as_str(),
                        r.priority == crate::rules::Priority::Alert,
                    )
                },
            ))),
        }
    }
}

impl<'a> Pipeline<'a> {
    /// Opens the state database (creating it) and builds the fetcher and the transport.
    pub async fn open(config: &'a Config, rules: &'a RuleSet) -> anyhow::Result<Pipeline<'a>> {
        let state_dir = config.state_dir.clone();
        let feeds: Vec<(String, String)> = config
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.url.to_string()))
            .collect();
        let modes: Vec<(String, i64)> = config
            .feeds
            .iter()
            .map(|f| {
                let mode = match f.full_text {
                    crate::config::FullText::Off => crate::store::MODE_OFF,
                    crate::config::FullText::Always => crate::store::MODE_ALWAYS,
                    crate::config::FullText::Auto { min_words } => {
                        i64::try_from(min_words).unwrap_or(i64::MAX)
                    }
                };
                (f.name.clone(), mode)
            })
            .collect();
        let pg = config.store.clone();
        let store = tokio::task::spawn_blocking(move || -> Result<Store, StoreError> {
            // `[store]`: the PostgreSQL several nodes share (issue 17); else SQLite in state_dir.
            let mut store = match &pg {
                Some(settings) => Store::open_postgres(settings)?,
                None => Store::open(&state_dir)?,
            };
            store.ensure_feeds(feeds.iter().map(|(n, u)| (n.as_str(), u.as_str())))?;
            store.set_full_text_modes(modes.iter().map(|(n, m)| (n.as_str(), *m)))?;
            Ok(store)
        })
        .await
        .context("the database task panicked")?
        .with_context(|| match &config.store {
            Some(pg) => format!("cannot open the PostgreSQL store {}", pg.url),
            None => format!(
                "cannot open the state database in {}",
                config.state_dir.display()
            ),
        })?;
        let fetcher = Fetcher::new(&config.fetch, &config.user_agent)
            .context("cannot build the HTTP client")?;
        let deliverer = Deliverer::new(&config.delivery)?;
        let channels = crate::channels::Channels::new(&config.channels, &config.user_agent);
        let settings = Settings::new(config, rules);
        let metrics = Metrics::new();
        let shared = cluster::shared_spacing(&store);
        let pool = config.store.as_ref().map(|pg| pg.pool_size);
        let store = Arc::new(Mutex::new(store));
        let writers = writes::writers(&store, pool);
        Ok(Pipeline {
            config,
            rules,
            store,
            writers,
            poller: poll::Poller {
                fetcher: fetcher
                    .with_shared_spacing(shared)
                    .with_host_limits(settings.limits.hosts),
                slots: Arc::new(tokio::sync::Semaphore::new(config.fetch.concurrency.max(1))),
                metrics: metrics.clone(),
                websub: config.websub.is_some(),
            },
            settings,
            deliverer,
            channels,
            metrics,
            jitter: Jitter::Hashed { seed: 0 },
            robots: full_text::RobotsCache::default(),
            product: config
                .user_agent
                .split(['/', ' '])
                .next()
                .unwrap_or("newswatch")
                .to_ascii_lowercase(),
            pushing: websub::Pushing::default(),
            push: Arc::new(PushSignals::default()),
            started: crate::clock::now(),
        })
    }

    /// Replaces the fetcher (tests: one that treats a loopback address as public). The
    /// configured per-host limits are applied to it.
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: Fetcher) -> Self {
        let shared = self.poller.fetcher.shared_spacing();
        self.poller.fetcher = fetcher
            .with_shared_spacing(shared)
            .with_host_limits(self.settings.limits.hosts);
        self
    }

    /// Replaces the source of back-off jitter.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Counts this pipeline's work in `metrics` (the daemon's registry) instead of a private one.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.poller.metrics = metrics.clone();
        self.metrics = metrics;
        self
    }

    /// Listens to the daemon's WebSub callback server (pushes stored, subscriptions verified).
    #[must_use]
    pub fn with_push_signals(mut self, push: Arc<PushSignals>) -> Self {
        push.set_feeds(self.config);
        self.push = push;
        self
    }

    /// The registry this pipeline counts in (its own, or the daemon's: `with_metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration this pipeline runs.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// Runs `f` on the database on the blocking pool; the lock is never held across an await.
    pub(crate) async fn db<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_blocking_pool(move |s| Ok(f(s)?)).await
    }

    /// `db` for a unit of work of the compose stage that does more than store calls (a
    /// composition renders its email between gathering and committing), on the same one
    /// connection and thread. In `run --once` on SQLite (a current-thread runtime) the stage
    /// has the runtime to itself, so the work runs on the calling thread, as the match stage
    /// does: no hand-off, and what it allocates comes from the calling thread's malloc arena,
    /// where the configuration's parse and the poll stage left memory free. On a thread of the
    /// blocking pool it took fresh pages in one cold cycle of two: at 10,000 feeds the peak
    /// RSS was 58 or 65 MB by that alone (BENCHMARKS.md, issue 22). PostgreSQL's driver blocks
    /// on a runtime of its own, which tokio refuses inside another one: it keeps the pool.
    async fn db_work<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> anyhow::Result<T> + Send + 'static,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let alone = self.config.store.is_none()
            && Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !alone {
            return self.on_blocking_pool(f).await;
        }
        let mut guard = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic is an error of this unit, as on the blocking pool, not of the process.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut guard)))
            .map_err(|_| anyhow::anyhow!("the database task panicked"))?
    }

    /// `f` on the store's one connection, on a thread of the blocking pool.
    async fn on_blocking_pool<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> anyhow::Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            // A panic in another database call cannot leave SQLite half-written (transactions
            // roll back on drop), so a poisoned lock is safe to reuse.
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .context("the database task panicked")?
    }

    /// One cycle at `now`: poll (all or due feeds), store, match, compose one digest per
    /// `[[digest]]`, then deliver every due outbox message. Every poll is recorded at `now`
    /// (the step tests drive); `run --once` uses [`Pipeline::cycle_timed`].
    pub async fn cycle(&self, now: DateTime<Utc>, which: Feeds) -> anyhow::Result<Summary> {
        self.cycle_timed(now, which, None).await
    }

    /// `cycle`, with each poll recorded (and its next due counted) from `clock` read when its
    /// response came.
    pub async fn cycle_timed(
        &self,
        now: DateTime<Utc>,
        which: Feeds,
        clock: Option<&(dyn Fn() -> DateTime<Utc> + Sync)>,
    ) -> anyhow::Result<Summary> {
        let mut summary = Summary {
            destination: self.deliverer.describe(),
            ..Summary::default()
        };
        // Where a cycle's time goes, for operators and the benchmark (monotonic, never `now`).
        let ms = |since: std::time::Instant| since.elapsed().as_millis() as u64;
        self.beat(now).await?;
        let started = std::time::Instant::now();
        self.poll(now, which, clock, &mut summary).await?;
        // Full text before matching: a queued item is matched once, on its page's text.
        if self.full_text_configured() {
            while self.full_text_pass(now, None).await? > 0 {}
        }
        let poll_ms = ms(started);
        let started = std::time::Instant::now();
        (summary.matches, _) = self.match_pending(now, usize::MAX)?;
        let match_ms = ms(started);
        let started = std::time::Instant::now();
        (summary.emails_composed, summary.next_digest) = self.compose(now, true).await?;
        let compose_ms = ms(started);
        let started = std::time::Instant::now();
        self.drain_outbox(now, clock, &mut summary).await?;
        let deliver_ms = ms(started);
        // An idle daemon wake-up (nothing due, nothing sent) is not worth an info line.
        if summary.feeds_polled > 0 || summary.emails_composed > 0 || summary.emails_sent > 0 {
            info!(
                feeds = summary.feeds_polled,
                poll_ms, match_ms, compose_ms, deliver_ms, "cycle stages"
            );
        } else {
            debug!(poll_ms, match_ms, compose_ms, deliver_ms, "cycle stages");
        }
        Ok(summary)
    }

    /// The match stage over what is pending, up to `limit` articles (see `match_backlog`), on
    /// every core, without stalling the runtime's other tasks. The stage (its store calls
    /// included) runs on a plain thread of its own, never on a runtime thread: the PostgreSQL
    /// driver blocks on a runtime of its own, which tokio refuses inside another one (the
    /// tests' current-thread runtime). A scoped thread rather than `spawn_blocking`: the stage
    /// borrows the pipeline's rule set, which is not `'static`.
    fn match_pending(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<(usize, bool)> {
        let threads = matching::match_threads();
        matching::off_worker(|| {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        matching::match_backlog(
                            &self.store,
                            self.rules,
                            &self.settings.routing,
                            &self.metrics,
                            now,
                            threads,
                            limit,
                        )
                    })
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        })
    }

    /// Configured feeds whose last poll failed, and emails waiting in the outbox: the daemon's
    /// gauges. Two queries, whatever the number of feeds (the delivery stage asks after every
    /// pass).
    pub(crate) async fn backlog(&self) -> anyhow::Result<(usize, usize)> {
        let (failing, queued) = self
            .db(|s| Ok((s.failing_feeds()?, s.outbox_counts()?.queued)))
            .await?;
        let configured: std::collections::HashSet<&str> =
            self.config.feeds.iter().map(|f| f.name.as_str()).collect();
        let failing = failing
            .iter()
            .filter(|n| configured.contains(n.as_str()))
            .count();
        Ok((failing, queued))
    }

    /// Where this pipeline delivers.
    pub fn destination(&self) -> String {
        self.deliverer.describe()
    }
}

/// A feed never polled is due at once.
pub fn is_due(next_due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    next_due.is_none_or(|d| d <= now)
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn due() {
        let now = t("2025-03-10T12:00:00Z");
        // (next_due, due?)
        let due_cases = [
            (None, true),
            (Some("2025-03-10T11:59:59Z"), true),
            (Some("2025-03-10T12:00:00Z"), true),
            (Some("2025-03-10T12:00:01Z"), false),
        ];
        for (next, want) in due_cases {
            assert_eq!(is_due(next.map(t), now), want, "{next:?}");
        }
    }

    /// A pipeline over a fresh SQLite store in `dir`, with one rule and no feeds.
    fn config(dir: &std::path::Path) -> (Config, RuleSet) {
        std::fs::create_dir_all(dir.join("rules")).expect("create in the temporary directory");
        std::fs::write(
            dir.join("rules/r.toml"),
            "[[rule]]\nid = \"r\"\nquery = \"minerals\"\n",
        )
        .expect("write in the temporary directory");
        let path = dir.join("newswatch.toml");
        let text = "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\n\
                    [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n";
        std::fs::write(&path, text).expect("write in the temporary directory");
        let config = Config::load(&path).expect("the test config loads");
        let rules = RuleSet::load(&config.rule_files).expect("the test rule loads");
        (config, rules)
    }

    /// What `db_work` runs, and where: the thread, and the store's answer.
    async fn unit_of_work(p: &Pipeline<'_>) -> (std::thread::ThreadId, usize) {
        p.db_work(|s| Ok((std::thread::current().id(), s.recent_digests(10)?.len())))
            .await
            .expect("the unit of work runs")
    }

    /// A compose-stage unit of work runs on the calling thread when the stage has a
    /// current-thread runtime to itself over SQLite (`run --once`), on the blocking pool on a
    /// multi-thread runtime. A panic in one is an error of the unit either way, and the store
    /// answers the next one.
    #[test]
    fn compose_work_runs_where_the_stage_is_alone_and_a_panic_stays_an_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (config, rules) = config(dir.path());
        for flavor in ["current-thread", "multi-thread"] {
            let rt = match flavor {
                "current-thread" => tokio::runtime::Builder::new_current_thread(),
                _ => tokio::runtime::Builder::new_multi_thread(),
            }
            .enable_all()
            .build()
            .expect("a runtime");
            rt.block_on(async {
                let p = Pipeline::open(&config, &rules)
                    .await
                    .expect("the pipeline opens");
                let caller = std::thread::current().id();
                let (ran_on, digests) = unit_of_work(&p).await;
                assert_eq!(digests, 0, "{flavor}");
                assert_eq!(ran_on == caller, flavor == "current-thread", "{flavor}");
                let panicked = p
                    .db_work(|_| -> anyhow::Result<()> { panic!("a bug in a composition") })
                    .await
                    .expect_err("a panic is an error");
                assert!(
                    panicked.to_string().contains("panicked"),
                    "{flavor}: {panicked:#}"
                );
                assert_eq!(
                    unit_of_work(&p).await.1,
                    0,
                    "{flavor}: the store answers after it"
                );
            });
        }
    }
}
