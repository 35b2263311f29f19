//! One poll → store → match → digest → deliver cycle (`daemon` repeats it).
//! This is the edge that owns the clock (`clock_now`) and the database handle; the stages it calls
//! are pure or do their own IO. Durable work (a composed digest) goes through the outbox.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tracing::{debug, error, info, warn};

use crate::alerts::{PendingAlert, plan_alerts};
use crate::config::{AlertConfig, DigestConfig};
use crate::config::{Config, FeedConfig};
use crate::deliver::{self, Deliverer, Outcome};
use crate::digest;
use crate::feed_health::{NoticeKind, Thresholds};
use crate::fetch::{FetchOutcome, FetchPolicy, Fetcher, HostLimits};
use crate::identity::MAX_NEW_ITEMS_PER_POLL;
use crate::lock::InstanceLock;
use crate::metrics::{Metrics, PollResult as PollMetric};
use crate::model::{Article, DigestBatch, FeedMeta, NewMessage, StoredHit, Validators};
use crate::parse;
use crate::poll_policy::{self, Bounds, CacheHints, FailureKind, Hints, PollInput, RetryAfter};
use crate::rules::Priority;
use crate::rules::RuleSet;
use crate::schedule;
use crate::store::{
    ArticleMatches, ComposeTx, FeedRecord, PollRecord, PollResult, PollStored, Store, StoreError,
};

/// Pending articles matched per thread per database round trip: bounds the memory a large backlog
/// (a cold cycle of 10,000 feeds is 500,000 articles) holds at once, at one transaction per chunk.
const MATCH_CHUNK: usize = 512;

/// Threads the match stage uses: every core the process may run on (cgroup quota and affinity
/// included), at most 8.
fn match_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Runs CPU-bound `f` without stalling the runtime's other tasks: on a multi-thread runtime the
/// worker hands them to another worker first; a current-thread runtime (tests) simply runs it.
fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Polls recorded in one transaction at most (group commit): one commit per batch instead of
/// one per feed. Poll commits skip the WAL sync (`Store::record_polls`).
const WRITE_BATCH: usize = 64;

/// Article text one write batch carries at most (a batch always takes at least one poll).
const WRITE_BATCH_BYTES: usize = 16 << 20;

/// Finished polls that may wait for the writer, per unit of fetch concurrency.
const QUEUED_PER_FETCH: usize = 2;

/// The one place the pipeline reads the wall clock; everything below takes `now` as an argument.
pub(crate) fn clock_now() -> DateTime<Utc> {
    Utc::now()
}

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
    pub matches: usize,
    /// Emails composed into the outbox this cycle.
    pub emails_composed: usize,
    /// Emails handed over (sent or written) this cycle, including older queued ones.
    pub emails_sent: usize,
    /// Emails that failed transiently and wait in the outbox for another attempt.
    pub emails_deferred: usize,
    /// Emails that failed for good (kept in the outbox, marked failed).
    pub emails_failed: usize,
    /// Where emails go: `smtp host:port`, `files in DIR`, `sendmail CMD`.
    pub destination: String,
    /// (feed name, error) of each failed feed.
    pub failures: Vec<(String, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "polled {} feeds ({} failed, {} unchanged): {} new articles, {} matches",
            self.feeds_polled,
            self.feeds_failed,
            self.feeds_unchanged,
            self.new_articles,
            self.matches
        )?;
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
        )
    }
}

/// Runs one full cycle: every feed polled once, matches digested, the outbox drained.
pub async fn run_once(config: &Config, rules: &RuleSet) -> anyhow::Result<Summary> {
    // Two overlapping runs would poll and send twice (the cron-job failure this tool avoids).
    let _lock = InstanceLock::acquire(&config.state_dir)?;
    let pipeline = Pipeline::open(config, rules).await?;
    pipeline.cycle(clock_now(), Feeds::All).await
}

/// The stages wired together for one configuration. Each cycle borrows it; nothing is spawned
/// that outlives a call.
#[derive(Debug)]
pub struct Pipeline<'a> {
    config: &'a Config,
    rules: &'a RuleSet,
    store: Arc<Mutex<Store>>,
    fetcher: Fetcher,
    deliverer: Deliverer,
    /// When the next scheduled digest or alert batch is due, as of the last `compose`.
    digest_wake: Mutex<Option<DateTime<Utc>>>,
    metrics: Metrics,
    jitter: Jitter,
}

/// Where the back-off jitter of failing feeds comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// A hash of the seed, the feed, the time and its error count: spread out, yet reproducible.
    Hashed { seed: u64 },
    /// The same sample for every feed (tests that assert exact times use `Fixed(0.0)`).
    Fixed(f64),
}

impl Jitter {
    fn sample(self, feed: &str, now: DateTime<Utc>, errors: u32) -> f64 {
        match self {
            Jitter::Hashed { seed } => poll_policy::hashed_jitter(seed, feed, now, errors),
            Jitter::Fixed(j) => j,
        }
    }
}

/// The result of polling one feed.
enum Polled {
    NotModified {
        cache: CacheHints,
        permanent_redirect: Option<String>,
    },
    Fetched {
        title: Option<String>,
        validators: Validators,
        articles: Vec<Article>,
        cache: CacheHints,
        /// The longest of the feed's `ttl` and `sy:updatePeriod`.
        feed_hint: Option<Duration>,
        permanent_redirect: Option<String>,
    },
    Failed {
        error: String,
        kind: FailureKind,
        retry_after: Option<RetryAfter>,
    },
}

impl Polled {
    /// The poll as the store records it.
    fn as_result(&self) -> PollResult<'_> {
        match self {
            Polled::NotModified {
                permanent_redirect, ..
            } => PollResult::NotModified {
                permanent_redirect: permanent_redirect.as_deref(),
            },
            Polled::Fetched {
                title,
                validators,
                articles,
                feed_hint,
                permanent_redirect,
                ..
            } => PollResult::Fetched {
                title: title.as_deref(),
                validators,
                articles,
                hint_ttl: *feed_hint,
                permanent_redirect: permanent_redirect.as_deref(),
            },
            Polled::Failed { error, .. } => PollResult::Failed { error },
        }
    }

    /// Roughly the bytes the poll's articles hold, for the write batch's budget.
    fn weight(&self) -> usize {
        match self {
            Polled::Fetched { articles, .. } => articles
                .iter()
                .map(|a| {
                    a.key.len()
                        + a.title.len()
                        + a.summary.len()
                        + a.content.len()
                        + a.link.as_ref().map_or(0, String::len)
                })
                .sum(),
            Polled::NotModified { .. } | Polled::Failed { .. } => 0,
        }
    }
}

/// A finished poll on its way to the store.
struct Finished<'f> {
    report: Report<'f>,
    write: PollWrite,
}

/// What is logged about a poll once it is stored.
struct Report<'f> {
    feed: &'f FeedConfig,
    record: FeedRecord,
    next_due: DateTime<Utc>,
    catch_up_due: DateTime<Utc>,
}

/// What the writer stores for one poll (owned: it goes to the blocking pool).
struct PollWrite {
    name: String,
    polled: Polled,
    next_due: DateTime<Utc>,
    catch_up_due: DateTime<Utc>,
    /// `Polled::weight`, computed once.
    weight: usize,
}

/// The one write in flight: a batch of polls being recorded in one transaction.
struct Writing<'f> {
    /// In the batch's order, which is the order of the results.
    reports: Vec<Report<'f>>,
    task: tokio::task::JoinHandle<Result<Vec<PollStored>, StoreError>>,
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
        let store = tokio::task::spawn_blocking(move || -> Result<Store, StoreError> {
            let mut store = Store::open(&state_dir)?;
            store.ensure_feeds(feeds.iter().map(|(n, u)| (n.as_str(), u.as_str())))?;
            Ok(store)
        })
        .await
        .context("the database task panicked")?
        .with_context(|| {
            format!(
                "cannot open the state database in {}",
                config.state_dir.display()
            )
        })?;
        let fetcher = Fetcher::new(&config.fetch, &config.user_agent)
            .context("cannot build the HTTP client")?;
        let deliverer = Deliverer::new(&config.delivery)?;
        Ok(Pipeline {
            config,
            rules,
            store: Arc::new(Mutex::new(store)),
            fetcher: fetcher.with_host_limits(host_limits(config)),
            deliverer,
            metrics: Metrics::new(),
            jitter: Jitter::Hashed { seed: 0 },
            digest_wake: Mutex::new(None),
        })
    }

    /// Replaces the fetcher (tests: one that treats a loopback address as public). The
    /// configured per-host limits are applied to it.
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: Fetcher) -> Self {
        self.fetcher = fetcher.with_host_limits(host_limits(self.config));
        self
    }

    /// Replaces the source of back-off jitter.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    fn bounds(&self) -> Bounds {
        let p = &self.config.polling;
        Bounds {
            min_delay: p.min_interval,
            max_delay: p.max_interval,
            backoff_cap: p.backoff_cap,
        }
    }

    /// Counts this pipeline's work in `metrics` (the daemon's registry) instead of a private one.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
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
        self.db_work(move |s| Ok(f(s)?)).await
    }

    /// `db` for a unit of work that does more than store calls (a composition renders its email
    /// between gathering and committing), on the same one connection and thread.
    async fn db_work<T, F>(&self, f: F) -> anyhow::Result<T>
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
    /// `[[digest]]`, then deliver every due outbox message.
    pub async fn cycle(&self, now: DateTime<Utc>, which: Feeds) -> anyhow::Result<Summary> {
        let mut summary = Summary {
            destination: self.deliverer.describe(),
            ..Summary::default()
        };
        // Where a cycle's time goes, for operators and the benchmark (monotonic, never `now`).
        let ms = |since: std::time::Instant| since.elapsed().as_millis() as u64;
        let started = std::time::Instant::now();
        self.poll(now, which, &mut summary).await?;
        let poll_ms = ms(started);
        let started = std::time::Instant::now();
        summary.matches = self.match_pending(now).await?;
        let match_ms = ms(started);
        let started = std::time::Instant::now();
        summary.emails_composed = self.compose(now).await?;
        let compose_ms = ms(started);
        let started = std::time::Instant::now();
        self.drain_outbox(now, &mut summary).await?;
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

    async fn poll(
        &self,
        now: DateTime<Utc>,
        which: Feeds,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        // Every feed's state in one query; a feed the database does not know yet is new.
        let records: HashMap<String, FeedRecord> = self
            .db(|s| s.feed_records())
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let due: Vec<(&FeedConfig, FeedRecord)> = self
            .config
            .feeds
            .iter()
            .map(|f| (f, records.get(&f.name).cloned().unwrap_or_default()))
            .filter(|(_, r)| which == Feeds::All || is_due(r.next_due, now))
            .collect();
        drop(records);
        // The global cap; the fetcher's host gate adds the per-host limit and spacing beneath it.
        let concurrency = self.config.fetch.concurrency.max(1);
        let mut results = futures_util::stream::iter(due)
            .map(|(feed, record)| async move {
                let polled = self.poll_feed(feed, &record).await;
                (feed, record, polled)
            })
            .buffer_unordered(concurrency);
        // Fetching and parsing go on while finished polls are written. One write is in flight at
        // a time and takes everything queued meanwhile (group commit: one commit per batch);
        // at most `max_queued` finished polls wait for it, so what is parsed but not yet stored
        // stays a small multiple of the fetch concurrency.
        let max_queued = concurrency.saturating_mul(QUEUED_PER_FETCH);
        let mut queued: VecDeque<Finished<'_>> = VecDeque::new();
        let mut writing: Option<Writing<'_>> = None;
        let mut fetching = true;
        loop {
            if writing.is_none() && !queued.is_empty() {
                writing = Some(self.write_batch(&mut queued, now));
            }
            let Some(write) = writing.as_mut() else {
                if !fetching {
                    break;
                }
                match results.next().await {
                    Some((feed, record, polled)) => {
                        queued.push_back(self.finish(feed, record, polled, now, summary));
                    }
                    None => fetching = false,
                }
                continue;
            };
            tokio::select! {
                next = results.next(), if fetching && queued.len() < max_queued => match next {
                    Some((feed, record, polled)) => {
                        queued.push_back(self.finish(feed, record, polled, now, summary));
                    }
                    None => fetching = false,
                },
                stored = &mut write.task => {
                    let reports = writing.take().map(|w| w.reports).unwrap_or_default();
                    // A failed write stores nothing of its batch (one transaction) and ends the
                    // cycle with the error, as a failed write of a single feed always did.
                    let stored = stored
                        .context("the database task panicked")?
                        .with_context(|| format!("cannot record the polls of {} feeds", reports.len()))?;
                    for (report, stored) in reports.iter().zip(&stored) {
                        self.report(report, stored, summary);
                    }
                }
            }
        }
        summary.failures.sort();
        let p = &self.config.polling;
        let (retention, keep) = (p.retention, p.keep_identities);
        let pruned = self.db(move |s| s.prune(now, retention, keep)).await?;
        if pruned.texts > 0 || pruned.identities > 0 {
            info!(
                texts = pruned.texts,
                identities = pruned.identities,
                "pruned old articles"
            );
        }
        Ok(())
    }

    /// Schedules the feed's next poll from how this one went, counts and logs the outcome, and
    /// readies the poll for the writer.
    fn finish<'f>(
        &self,
        feed: &'f FeedConfig,
        record: FeedRecord,
        polled: Polled,
        now: DateTime<Utc>,
        summary: &mut Summary,
    ) -> Finished<'f> {
        summary.feeds_polled += 1;
        let bounds = self.bounds();
        let (outcome, errors, hints) = match &polled {
            Polled::NotModified { cache, .. } => (
                poll_policy::Outcome::NotModified,
                0,
                // A 304 has no body to read `ttl` from: the last full fetch's hint still holds.
                Hints {
                    cache: *cache,
                    ttl: record.hint_ttl,
                    update_period: None,
                },
            ),
            Polled::Fetched {
                cache, feed_hint, ..
            } => (
                poll_policy::Outcome::Fetched,
                0,
                Hints {
                    cache: *cache,
                    ttl: *feed_hint,
                    update_period: None,
                },
            ),
            Polled::Failed {
                kind, retry_after, ..
            } => (
                poll_policy::Outcome::Failed {
                    kind: *kind,
                    retry_after: *retry_after,
                },
                record.error_count.saturating_add(1),
                Hints::default(),
            ),
        };
        let input = PollInput {
            interval: feed.interval,
            outcome,
            consecutive_errors: errors,
            hints,
            now,
            jitter: self.jitter.sample(&feed.name, now, errors),
        };
        let next_due = poll_policy::next_due(&input, &bounds);
        let catch_up_due = now
            .checked_add_signed(
                chrono::Duration::from_std(bounds.min_delay).unwrap_or(chrono::Duration::MAX),
            )
            .unwrap_or(next_due);
        let name = &feed.name;
        match &polled {
            Polled::NotModified { .. } => {
                self.metrics.poll(PollMetric::NotModified);
                summary.feeds_unchanged += 1;
                debug!(feed = %name, next_due = %next_due, "not modified");
            }
            Polled::Fetched { .. } => self.metrics.poll(PollMetric::Ok),
            Polled::Failed { error, .. } => {
                self.metrics.poll(PollMetric::Error);
                warn!(feed = %name, error = %error, errors, next_due = %next_due, "feed failed");
                summary.feeds_failed += 1;
                summary.failures.push((name.clone(), error.clone()));
            }
        }
        Finished {
            report: Report {
                feed,
                record,
                next_due,
                catch_up_due,
            },
            write: PollWrite {
                name: name.clone(),
                weight: polled.weight(),
                polled,
                next_due,
                catch_up_due,
            },
        }
    }

    /// Starts writing the oldest queued polls (up to `WRITE_BATCH`, or `WRITE_BATCH_BYTES` of
    /// article text, but always at least one) in one transaction on the blocking pool.
    fn write_batch<'f>(
        &self,
        queued: &mut VecDeque<Finished<'f>>,
        now: DateTime<Utc>,
    ) -> Writing<'f> {
        let (mut reports, mut writes) = (Vec::new(), Vec::new());
        let mut bytes = 0usize;
        while let Some(next) = queued.front() {
            let full = writes.len() >= WRITE_BATCH
                || bytes.saturating_add(next.write.weight) > WRITE_BATCH_BYTES;
            if full && !writes.is_empty() {
                break;
            }
            let Some(next) = queued.pop_front() else {
                break;
            };
            bytes = bytes.saturating_add(next.write.weight);
            reports.push(next.report);
            writes.push(next.write);
        }
        let store = Arc::clone(&self.store);
        let window = self.config.new_feed_window;
        let thresholds = Thresholds {
            failing_after: self.config.polling.failing_after,
            silent_factor: self.config.polling.silent_factor,
        };
        let task = tokio::task::spawn_blocking(move || {
            let polls: Vec<(&str, PollRecord<'_>)> = writes
                .iter()
                .map(|w| {
                    let record = PollRecord {
                        result: w.polled.as_result(),
                        now,
                        next_due: w.next_due,
                        catch_up_due: w.catch_up_due,
                        new_feed_window: window,
                        max_new: MAX_NEW_ITEMS_PER_POLL,
                        thresholds,
                    };
                    (w.name.as_str(), record)
                })
                .collect();
            // As in `db`: a poisoned lock is safe to reuse (transactions roll back on drop).
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            guard.record_polls(&polls)
        });
        Writing { reports, task }
    }

    /// Logs and counts what storing one poll changed.
    fn report(&self, report: &Report<'_>, stored: &PollStored, summary: &mut Summary) {
        let Report {
            feed,
            record,
            next_due,
            catch_up_due,
        } = report;
        let name = &feed.name;
        if stored.inserted.new > 0 || stored.retitled > 0 || stored.deferred > 0 {
            info!(feed = %name, new = stored.inserted.new, alertable = stored.inserted.alertable,
                  retitled = stored.retitled, next_due = %next_due, "polled");
        }
        if stored.deferred > 0 {
            warn!(feed = %name, taken = stored.inserted.new, deferred = stored.deferred,
                  cap = MAX_NEW_ITEMS_PER_POLL, next_due = %catch_up_due,
                  "more new items than one poll takes; the rest are taken on the next poll");
        }
        summary.new_articles += stored.inserted.new;
        self.metrics
            .new_articles(&feed.name, stored.inserted.new as u64);
        if let Some(to) = &stored.moved_to {
            info!(feed = %name, configured = %feed.url, effective = %to,
                  "permanent redirect seen twice; fetching from the new URL (the config is unchanged)");
        }
        match stored.notice {
            Some(NoticeKind::Failing) => {
                error!(feed = %name, errors = stored.error_count, failing_since = ?record.failing_since,
                       "feed has been failing for too long");
            }
            Some(NoticeKind::Silent) => {
                warn!(feed = %name, last_new_item = ?record.last_new_item,
                      "feed has brought nothing new for much longer than usual");
            }
            Some(NoticeKind::Recovered) => info!(feed = %name, "feed recovered"),
            None => {}
        }
    }

    async fn poll_feed(&self, feed: &FeedConfig, record: &FeedRecord) -> Polled {
        let url = record
            .effective_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .unwrap_or_else(|| feed.url.clone());
        let policy = FetchPolicy {
            allow_private_network: feed.allow_private_network,
        };
        let failed = |e: &dyn std::fmt::Display, kind, retry_after| Polled::Failed {
            error: e.to_string(),
            kind,
            retry_after,
        };
        let started = tokio::time::Instant::now();
        let fetched = self
            .fetcher
            .fetch_with(&url, &record.validators, &policy)
            .await;
        self.metrics.observe_fetch(started.elapsed());
        let report = match fetched {
            Ok(r) => r,
            Err(e) => return failed(&e, e.failure_kind(), e.retry_after()),
        };
        let permanent_redirect = report.permanent_redirect.map(|u| u.to_string());
        let (body, validators, content_type) = match report.outcome {
            FetchOutcome::NotModified => {
                return Polled::NotModified {
                    cache: report.cache,
                    permanent_redirect,
                };
            }
            FetchOutcome::Fetched {
                body,
                validators,
                content_type,
            } => (body, validators, content_type),
        };
        match parse::parse_feed_off_thread(body, report.final_url, content_type).await {
            Ok(p) => Polled::Fetched {
                title: p.title,
                validators,
                articles: p.articles,
                cache: report.cache,
                feed_hint: p.ttl.max(p.update_period),
                permanent_redirect,
            },
            // Unparseable bytes are recorded as an error; the seen-set is left alone.
            Err(e) => failed(&e, FailureKind::Persistent, None),
        }
    }

    /// Runs every stored, not yet matched, alertable article through the rules, on every core
    /// the process may use. CPU-bound: the async worker hands its other tasks away first.
    async fn match_pending(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let threads = match_threads();
        off_worker(|| self.match_backlog(now, threads))
    }

    /// The match stage, blocking: chunks of pending articles are read and their verdicts
    /// written on this thread while `threads` scoped threads match the chunk in between.
    fn match_backlog(&self, now: DateTime<Utc>, threads: usize) -> anyhow::Result<usize> {
        let store = || self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let tags: HashMap<&str, &[String]> = self
            .config
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), f.tags.as_slice()))
            .collect();
        let routes = self.alert_routes();
        let chunk = MATCH_CHUNK * threads;
        let (mut articles, mut stored) = (0, 0);
        let mut record = |results: &[ArticleMatches]| -> anyhow::Result<()> {
            if !results.is_empty() {
                stored += store().record_matches(results, now, &routes)?;
            }
            Ok(())
        };
        let mut next = store().pending_articles_after(0, chunk)?;
        let mut verdicts: Vec<ArticleMatches> = Vec::new();
        while let Some(last) = next.last().map(|p| p.id) {
            let current = std::mem::take(&mut next);
            articles += current.len();
            // While the chunk is matched: the previous chunk's verdicts are written and the next
            // chunk read (SQLite is one connection; only this thread touches it).
            let (done, read) = std::thread::scope(|s| {
                let workers: Vec<_> = current
                    .chunks(current.len().div_ceil(threads))
                    .map(|part| s.spawn(|| self.match_articles(part, &tags, now)))
                    .collect();
                let io = record(&verdicts)
                    .and_then(|()| Ok(store().pending_articles_after(last, chunk)?));
                let done: Vec<ArticleMatches> = workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect();
                (done, io)
            });
            verdicts = done;
            next = read?;
        }
        record(&verdicts)?;
        if articles > 0 {
            info!(articles, matches = stored, threads, "matched");
        }
        Ok(stored)
    }

    /// Verdicts for `pending`, in order. Pure apart from the metrics.
    fn match_articles(
        &self,
        pending: &[crate::store::PendingArticle],
        tags: &HashMap<&str, &[String]>,
        now: DateTime<Utc>,
    ) -> Vec<ArticleMatches> {
        let rules = self.rules.rules();
        pending
            .iter()
            .map(|p| {
                let meta = FeedMeta {
                    name: p.feed.clone(),
                    title: p.feed_title.clone(),
                    tags: tags
                        .get(p.feed.as_str())
                        .map_or_else(Vec::new, |t| t.to_vec()),
                };
                let matches = self
                    .rules
                    .match_article(&p.article, &meta, now)
                    .into_iter()
                    .filter_map(|m| {
                        let rule = rules.get(m.rule)?;
                        let hits = m
                            .hits
                            .into_iter()
                            .map(|h| StoredHit {
                                field: h.field.as_str().to_string(),
                                start: h.start,
                                end: h.end,
                                text: h.text,
                            })
                            .collect();
                        self.metrics.rule_matched(&rule.id);
                        Some((rule.id.clone(), hits))
                    })
                    .collect();
                ArticleMatches {
                    article: p.id,
                    matches,
                }
            })
            .collect()
    }

    /// Alert rules go to the alert sets that select them; with no set, to the digests.
    fn alert_routes(&self) -> HashMap<String, Vec<String>> {
        self.rules
            .rules()
            .iter()
            .filter(|r| r.priority == Priority::Alert)
            .map(|r| {
                let sets = self
                    .config
                    .alerts
                    .iter()
                    .filter(|a| a.rules.selects(&r.id))
                    .map(|a| a.name.clone())
                    .collect();
                (r.id.clone(), sets)
            })
            .collect()
    }

    /// Batches pending alerts into alert emails, then composes each `[[digest]]` that is due
    /// (every cycle when it has no schedule). Each email enters the outbox in the transaction
    /// that assigns its matches (and records the served slot).
    async fn compose(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut composed = 0;
        let mut wake: Option<DateTime<Utc>> = None;
        let sets: Vec<String> = self.config.alerts.iter().map(|a| a.name.clone()).collect();
        let released = self.db(move |s| s.release_orphaned_alerts(&sets)).await?;
        if released > 0 {
            warn!(
                released,
                "pending alerts of a removed [[alert]] set go to the digests"
            );
        }
        for set in &self.config.alerts {
            let (n, next) = self.compose_alerts(set, now).await?;
            composed += n;
            wake = earliest(wake, next);
        }
        for cfg in &self.config.digests {
            composed += self.compose_due_digest(cfg, now).await?;
            if let Some(sched) = &cfg.schedule {
                wake = earliest(wake, schedule::next_after(sched, cfg.timezone, now));
            }
        }
        *self
            .digest_wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = wake;
        Ok(composed)
    }

    /// When the next scheduled digest or alert batch wants a cycle, as of the last one; the
    /// daemon sleeps no longer than this.
    pub fn next_digest_wake(&self) -> Option<DateTime<Utc>> {
        *self
            .digest_wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn rule_titles(&self) -> HashMap<String, String> {
        self.rules
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.title.clone()))
            .collect()
    }

    /// Composes digest `cfg` if its schedule has a slot due, marking the slot served (every cycle
    /// when it has no schedule). Returns emails composed (0 or 1).
    async fn compose_due_digest(
        &self,
        cfg: &DigestConfig,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let slot = match &cfg.schedule {
            Some(sched) => {
                let name = cfg.name.clone();
                let last = self.db(move |s| s.digest_last_slot(&name)).await?;
                match schedule::due(
                    sched,
                    cfg.timezone,
                    last,
                    now,
                    schedule::DEFAULT_FIRST_RUN_GRACE,
                ) {
                    Some(slot) => Some(slot),
                    None => return Ok(0),
                }
            }
            None => None,
        };
        self.compose_digest(cfg, now, slot).await
    }

    /// Composes digest `cfg` now whatever its schedule (`digest send`); no slot is marked served.
    /// Returns emails composed (0 or 1).
    async fn compose_forced_digest(
        &self,
        cfg: &DigestConfig,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        self.compose_digest(cfg, now, None).await
    }

    /// One digest as a unit of work: gather its pending matches (store), render (pure, `digest`),
    /// commit the email with the matches it carries and the served `slot` (store), in one
    /// transaction. A rendering error rolls everything back, the slot included. The three steps
    /// run on one blocking thread holding the store's one connection, so no other stage writes
    /// between gather and commit (`ComposeTx` says what happens if another process does).
    async fn compose_digest(
        &self,
        cfg: &DigestConfig,
        now: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
    ) -> anyhow::Result<usize> {
        let titles = self.rule_titles();
        let notices = self.feed_notices(&cfg.name, now).await?;
        let from = self.config.delivery.from.clone();
        let cfg2 = cfg.clone();
        let composed = self
            .db_work(move |s| {
                let mut tx = s.begin_compose()?;
                let batch = gather_digest(&mut tx, &cfg2, &titles, None)?;
                let id = tx.next_digest_id()?;
                let batch = digest::Batch::from_store(&batch, &titles);
                let message =
                    digest::compose_batch(id, &cfg2, &from, &batch, &notices, now)?.map(|c| {
                        NewMessage {
                            digest_name: cfg2.name.clone(),
                            message_id: c.message_id,
                            sender: c.sender,
                            recipients: c.recipients,
                            raw: c.raw,
                        }
                    });
                Ok(tx.commit_digest(&cfg2.name, id, now, slot, message.as_ref())?)
            })
            .await
            .with_context(|| format!("cannot compose digest {:?}", cfg.name))?;
        Ok(match composed {
            Some(c) => {
                info!(digest = %cfg.name, id = c.digest, matches = c.matches, slot = ?slot, "digest composed");
                1
            }
            None => {
                if let Some(slot) = slot {
                    debug!(digest = %cfg.name, %slot, "nothing to send at this slot");
                }
                0
            }
        })
    }

    /// Plans alert set `set` and applies the plan. Returns emails composed and when to look again.
    async fn compose_alerts(
        &self,
        set: &AlertConfig,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(usize, Option<DateTime<Utc>>)> {
        let name = set.name.clone();
        let hour_ago = now - chrono::Duration::hours(1);
        let (pending, sent) = self
            .db(move |s| {
                Ok((
                    s.pending_alerts(&name)?,
                    s.alerts_composed_since(&name, hour_ago)?,
                ))
            })
            .await?;
        if pending.is_empty() {
            return Ok((0, None));
        }
        let pending: Vec<PendingAlert<i64>> = pending
            .into_iter()
            .map(|(id, matched_at)| PendingAlert { id, matched_at })
            .collect();
        let plan = plan_alerts(&pending, sent, &set.policy, now);
        if plan.send_now.is_empty() && plan.defer_to_digest.is_empty() {
            return Ok((0, plan.next_check));
        }
        if !plan.defer_to_digest.is_empty() {
            warn!(alert = %set.name, deferred = plan.defer_to_digest.len(), sent_last_hour = sent, "alert cap reached; matches go to the next digest");
        }
        let titles = self.rule_titles();
        let from = self.config.delivery.from.clone();
        let cfg = set.clone();
        let outbox = self
            .db_work(move |s| {
                let mut tx = s.begin_compose()?;
                tx.defer_alerts(&cfg.name, &plan.defer_to_digest)?;
                let matches = tx.gather_alert(&cfg.name, &plan.send_now)?;
                if matches.is_empty() {
                    tx.commit()?;
                    return Ok(None);
                }
                let id = tx.next_digest_id()?;
                let entries = digest::entries(&matches, &titles);
                let c = digest::compose_alert(id, &cfg, &from, &entries, now)?;
                let message = NewMessage {
                    digest_name: cfg.name.clone(),
                    message_id: c.message_id,
                    sender: c.sender,
                    recipients: c.recipients,
                    raw: c.raw,
                };
                let ids: Vec<i64> = matches.iter().map(|m| m.id).collect();
                Ok(Some(tx.commit_alert(&cfg.name, id, now, &message, &ids)?))
            })
            .await
            .with_context(|| format!("cannot compose alert {:?}", set.name))?;
        if let Some(id) = outbox {
            info!(alert = %set.name, outbox = id, "alert composed");
        }
        Ok((usize::from(outbox.is_some()), plan.next_check))
    }

    /// Feed-health lines for digest `name`'s "Sources" section: the failing, silent and
    /// recovered notices raised since that digest was last composed (the last day, the first
    /// time), so each notice reaches each digest's readers once.
    async fn feed_notices(&self, name: &str, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        let name = name.to_string();
        self.db(move |s| {
            let since = s
                .last_digest_time(&name)?
                .unwrap_or(now - chrono::Duration::days(1));
            Ok(s.feed_notices(since)?
                .into_iter()
                .map(|n| format!("{}: {} — {}", n.feed, n.kind.as_str(), n.detail))
                .collect())
        })
        .await
    }

    /// Renders digest `name` from stored matches without sending or consuming anything: the
    /// matches recorded in the last `since`, else those the digest has not carried yet.
    pub async fn preview_digest(
        &self,
        name: &str,
        since: Option<Duration>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<digest::Rendered> {
        let cfg = self.digest_config(name)?;
        let from =
            since.map(|d| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
        let titles = self.rule_titles();
        let (cfg2, titles2) = (cfg.clone(), titles.clone());
        let gathered = self
            .db(move |s| {
                // Never committed: dropping the transaction changes nothing.
                let mut tx = s.begin_compose()?;
                gather_digest(&mut tx, &cfg2, &titles2, from)
            })
            .await?;
        let batch = digest::Batch::from_store(&gathered, &titles);
        let notices = self.feed_notices(name, now).await?;
        Ok(digest::render(
            &digest::Audience::digest(cfg),
            &batch,
            &notices,
            now,
        )?)
    }

    /// Composes digest `name` now, whatever its schedule (the slot is not marked served), then
    /// delivers every due outbox message.
    pub async fn send_digest_now(&self, name: &str, now: DateTime<Utc>) -> anyhow::Result<Summary> {
        let cfg = self.digest_config(name)?;
        let mut summary = Summary {
            destination: self.deliverer.describe(),
            ..Summary::default()
        };
        summary.emails_composed = self.compose_forced_digest(cfg, now).await?;
        self.drain_outbox(now, &mut summary).await?;
        Ok(summary)
    }

    fn digest_config(&self, name: &str) -> anyhow::Result<&'a DigestConfig> {
        self.config
            .digests
            .iter()
            .find(|d| d.name == name)
            .with_context(|| {
                let known: Vec<&str> = self
                    .config
                    .digests
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect();
                format!(
                    "no [[digest]] named {name:?} (configured: {})",
                    known.join(", ")
                )
            })
    }

    /// Sends every due outbox message once, recording each outcome.
    async fn drain_outbox(&self, now: DateTime<Utc>, summary: &mut Summary) -> anyhow::Result<()> {
        let due = self.db(move |s| s.due_messages(now)).await?;
        for msg in due {
            let outcome = self.deliverer.send(&msg).await;
            let id = msg.id;
            let attempts = msg.attempts + 1;
            match outcome {
                Outcome::Sent => {
                    info!(message_id = %msg.message_id, to = %self.deliverer.describe(), "email sent");
                    summary.emails_sent += 1;
                    self.metrics.email_sent();
                    self.db(move |s| s.mark_sent(id, now)).await?;
                }
                Outcome::Retry(err) if attempts < deliver::MAX_ATTEMPTS => {
                    let at = now
                        + chrono::Duration::from_std(deliver::backoff(attempts))
                            .unwrap_or(chrono::Duration::MAX);
                    warn!(message_id = %msg.message_id, error = %err, attempts, retry_at = %at, "delivery deferred");
                    summary.emails_deferred += 1;
                    self.metrics.email_failed();
                    self.db(move |s| s.mark_retry(id, &err, at)).await?;
                    // A transient failure (down, 421, timeout) is the server's, not this
                    // message's: the rest wait for the next cycle instead of each waiting out
                    // the SMTP deadline while no feed is polled.
                    break;
                }
                Outcome::Retry(err) | Outcome::Failed(err) => {
                    error!(message_id = %msg.message_id, error = %err, attempts, "delivery failed; message kept in the outbox");
                    summary.emails_failed += 1;
                    self.metrics.email_failed();
                    self.db(move |s| s.mark_failed(id, &err)).await?;
                }
            }
        }
        Ok(())
    }

    /// The earliest time a configured feed or a queued email wants attention.
    pub(crate) async fn next_wake(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let names: Vec<String> = self.config.feeds.iter().map(|f| f.name.clone()).collect();
        self.db(move |s| {
            let mut wake = s.next_outbox_attempt()?;
            for n in &names {
                let due = s.feed_state(n)?.and_then(|st| st.next_due);
                wake = match (wake, due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(wake)
        })
        .await
        .map(|w| earliest(w, self.next_digest_wake()))
    }

    /// Feeds whose last poll failed, and emails waiting in the outbox: the daemon's gauges.
    pub(crate) async fn backlog(&self) -> anyhow::Result<(usize, usize)> {
        let names: Vec<String> = self.config.feeds.iter().map(|f| f.name.clone()).collect();
        self.db(move |s| {
            let mut failing = 0;
            for n in &names {
                if s.feed_state(n)?.is_some_and(|st| st.last_error.is_some()) {
                    failing += 1;
                }
            }
            Ok((failing, s.outbox_counts()?.queued))
        })
        .await
    }

    /// Where this pipeline delivers.
    pub fn destination(&self) -> String {
        self.deliverer.describe()
    }
}

/// Gathers what digest `cfg` would carry in `tx`: the matches it has not carried yet (or, with
/// `since`, every match recorded since then), grouped by rule title, with full rows for the
/// articles it can show (`digest::load_plan`).
fn gather_digest(
    tx: &mut ComposeTx<'_>,
    cfg: &DigestConfig,
    titles: &HashMap<String, String>,
    since: Option<DateTime<Utc>>,
) -> Result<DigestBatch, StoreError> {
    let rules: Vec<(String, String)> = tx
        .matched_rules()?
        .into_iter()
        .filter_map(|rule| digest_group(cfg, titles, &rule).map(|group| (rule, group)))
        .collect();
    let mut batch = match since {
        Some(t) => tx.gather_since(t, &rules)?,
        None => tx.gather_pending(&cfg.name, &rules)?,
    };
    batch.rows = tx.load_rows(&digest::load_plan(&batch.groups, cfg.max_items))?;
    Ok(batch)
}

/// The group (section) of digest `cfg` that rule `rule_id`'s matches go into, `None` when the
/// digest does not carry that rule. A rule removed since it matched shows its id.
fn digest_group(
    cfg: &DigestConfig,
    titles: &HashMap<String, String>,
    rule_id: &str,
) -> Option<String> {
    cfg.rules
        .selects(rule_id)
        .then(|| digest::group_title(rule_id, titles.get(rule_id).map_or(rule_id, String::as_str)))
}

fn host_limits(config: &Config) -> HostLimits {
    HostLimits {
        per_host: config.polling.per_host,
        spacing: config.polling.host_spacing,
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
}
