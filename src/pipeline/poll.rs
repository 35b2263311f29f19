//! The poll stage: due feeds fetched and parsed concurrently (bounded by `fetch.concurrency`
//! and the host gate) while finished polls are recorded in batches (group commit; `writes`
//! keeps one write in flight on SQLite, a few on PostgreSQL). Each poll's next due time comes
//! from `policy::poll`; a feed's items and state land together.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::config::{Config, FeedConfig};
use crate::fetch::{FetchOutcome, FetchPolicy, Fetcher, HostLimits, HostPermit};
use crate::live::stage_times::Stage;
use crate::model::Article;
use crate::model::Validators;
use crate::parse;
use crate::parse::identity::FLOOD_NEW_ITEMS;
use crate::pipeline::writes::{Batch, Done, Writes};
use crate::pipeline::{Feeds, Pipeline, Summary, is_due};
use crate::policy::feed_health::{NoticeKind, Thresholds};
use crate::policy::poll::{
    self as poll_policy, Bounds, CacheHints, FailureKind, Hints, PollInput, RetryAfter,
};
use crate::service::metrics::{Metrics, PollMetric};
use crate::store::{FeedRecord, PollRecord, PollResult, PollStats, PollStored, Store, StoreError};

/// Polls recorded in one transaction at most (group commit): one commit per batch instead of
/// one per feed. Poll commits skip the WAL sync (`Store::record_polls`).
const WRITE_BATCH: usize = 64;

/// Article text one write batch carries at most (a batch always takes at least one poll).
const WRITE_BATCH_BYTES: usize = 16 << 20;

/// Finished polls that may wait for the writer, per unit of fetch concurrency.
pub(super) const QUEUED_PER_FETCH: usize = 2;

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
pub(super) enum Polled {
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
        /// WebSub hub and self links (the `Link:` header's first), and the URL fetched.
        hub_links: parse::websub::HubLinks,
        fetched_from: String,
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
pub(super) struct Finished<'f> {
    pub(super) report: Report<'f>,
    pub(super) write: PollWrite,
}

/// What is logged about a poll once it is stored.
pub(super) struct Report<'f> {
    pub(super) feed: &'f FeedConfig,
    record: FeedRecord,
    next_due: DateTime<Utc>,
}

/// What the writer stores for one poll (owned: it goes to the blocking pool).
pub(super) struct PollWrite {
    pub(super) name: String,
    polled: Polled,
    /// Its HTTP status, bytes and duration, for the feed's poll history.
    stats: PollStats,
    /// When the poll's response came: the time recorded for it and its new items.
    at: DateTime<Utc>,
    next_due: DateTime<Utc>,
    /// `Polled::weight`, computed once.
    weight: usize,
    /// The stream's place among the polls not yet stored (`Poller::poll_reserving`): given back
    /// when the poll is stored, kept while it waits to be written again.
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

/// A batch's polls, given back with what storing them gave (so a failed batch can be written
/// again).
pub(super) type WriteOutcome = (Vec<PollWrite>, Result<Vec<PollStored>, StoreError>);

impl Pipeline<'_> {
    pub(super) async fn poll(
        &self,
        now: DateTime<Utc>,
        which: Feeds,
        clock: Option<&(dyn Fn() -> DateTime<Utc> + Sync)>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        // Every feed's state in one query; a feed the database does not know yet is new.
        let mut records: HashMap<String, FeedRecord> = self
            .db(|s| s.feed_records())
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let due: Vec<(&FeedConfig, FeedRecord)> = self
            .config
            .feeds
            .iter()
            .map(|f| (f, records.remove(&f.name).unwrap_or_default()))
            .filter(|(_, r)| which == Feeds::All || is_due(r.next_due, now))
            .collect();
        drop(records);
        // Beside running daemons (PostgreSQL), a lease on each feed first, as theirs: a feed
        // another node is polling now is left to it, and the daemons leave these alone until
        // they are stored and released. On SQLite every feed is taken.
        let asked: Vec<String> = due.iter().map(|(f, _)| f.name.clone()).collect();
        let taken: HashSet<String> = self
            .db(move |s| {
                let refs: Vec<&str> = asked.iter().map(String::as_str).collect();
                s.take_feeds(&refs, now)
            })
            .await?
            .into_iter()
            .map(|l| l.feed)
            .collect();
        let held = due.len().saturating_sub(taken.len());
        if held > 0 {
            info!(feeds = held, "not polled: another node is polling them");
        }
        let mut due: Vec<(&FeedConfig, FeedRecord)> = due
            .into_iter()
            .filter(|(f, _)| taken.contains(&f.name))
            .collect();
        // Held until every poll is written (the polls borrow their records): not the
        // collection's growth room too (1.8 MB of 4.7 at 10,000 feeds).
        due.shrink_to_fit();
        // Every due feed waits for its host's turn at once; the global cap (`Poller::slots`) is
        // taken only when the turn has come, so a feed waiting for a slow host holds no slot.
        let concurrency = self.config.fetch.concurrency.max(1);
        let in_flight = due.len().max(1);
        // Each poll borrows its feed's record: every due feed's poll is held at once, so
        // what one holds while it waits is paid ten thousand times at 10,000 feeds.
        let mut results = futures_util::stream::iter(&due)
            .map(|&(feed, ref record)| async move {
                let (polled, stats) = self.poller.poll(feed, record).await;
                // With a clock, the poll's own time: its next due counts from the response, not
                // from the start of the cycle (a feed fetched minutes into a long `run --once`
                // is not due early at the next). Without one, the cycle's `now` (tests).
                let at = clock.map_or(now, |c| c());
                (feed, record, (polled, stats), at)
            })
            .buffer_unordered(in_flight);
        // Fetching and parsing go on while finished polls are written. Each write takes what
        // is queued (group commit: one commit per batch); one is in flight at a time on SQLite,
        // a few on PostgreSQL (`writes`). At most `max_queued` finished polls wait, so what is
        // parsed but not yet stored stays a small multiple of the fetch concurrency.
        let max_queued = concurrency.saturating_mul(QUEUED_PER_FETCH);
        let mut queued: VecDeque<Finished<'_>> = VecDeque::new();
        let mut writes = Writes::new(&self.writers);
        let mut fetching = true;
        loop {
            writes.start(|store, busy| self.write_batch(&mut queued, store, busy));
            if writes.is_empty() {
                // Nothing in flight, so nothing queued either (`start` took it).
                if !fetching {
                    break;
                }
                match results.next().await {
                    Some((feed, record, polled, at)) => {
                        queued.push_back(self.finish(feed, record.clone(), polled, at, summary));
                    }
                    None => fetching = false,
                }
                continue;
            }
            tokio::select! {
                next = results.next(), if fetching && queued.len() < max_queued => match next {
                    Some((feed, record, polled, at)) => {
                        queued.push_back(self.finish(feed, record.clone(), polled, at, summary));
                    }
                    None => fetching = false,
                },
                done = writes.next() => {
                    // A failed write stores nothing of its batch (one transaction) and ends the
                    // cycle with its error, as a failed write of a single feed always did, once
                    // the writes still in flight have ended.
                    if let Err(e) = self.reported(done, summary) {
                        while !writes.is_empty() {
                            let done = writes.next().await;
                            if let Err(other) = self.reported(done, summary) {
                                warn!(error = format!("{other:#}"), "another poll write failed too");
                            }
                        }
                        return Err(e);
                    }
                }
            }
        }
        let taken: Vec<String> = taken.into_iter().collect();
        self.db(move |s| {
            let refs: Vec<&str> = taken.iter().map(String::as_str).collect();
            s.release_feeds(&refs)
        })
        .await?;
        summary.failures.sort();
        let p = &self.config.polling;
        let (retention, keep) = (p.retention, p.keep_identities);
        let pruned = self.db(move |s| s.prune(now, retention, keep)).await?;
        // The links fetched for full text go with the text they gave (issue 20).
        let before = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r));
        if let Some(before) = before {
            let pages = self.db(move |s| s.prune_full_text_pages(before)).await?;
            if pages > 0 {
                info!(pages, "pruned the memory of fetched article pages");
            }
        }
        if pruned.texts > 0 || pruned.identities > 0 {
            info!(
                texts = pruned.texts,
                identities = pruned.identities,
                "pruned old articles"
            );
        }
        Ok(())
    }

    /// Schedules the feed's next poll from how this one went (`now` is when its response came),
    /// counts and logs the outcome, and readies the poll for the writer.
    pub(super) fn finish<'f>(
        &self,
        feed: &'f FeedConfig,
        record: FeedRecord,
        (polled, stats): (Polled, PollStats),
        now: DateTime<Utc>,
        summary: &mut Summary,
    ) -> Finished<'f> {
        summary.feeds_polled += 1;
        let bounds = self.settings.limits.bounds;
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
            interval: self.poll_interval(feed),
            outcome,
            consecutive_errors: errors,
            hints,
            now,
            jitter: self.jitter.sample(&feed.name, now, errors),
        };
        let next_due = poll_policy::next_due(&input, &bounds);
        let name = &feed.name;
        match &polled {
            Polled::NotModified { .. } => {
                self.metrics.poll(PollMetric::NotModified);
                summary.feeds_unchanged += 1;
                debug!(feed = %name, next_due = %when(Some(next_due)), "not modified");
            }
            Polled::Fetched { .. } => self.metrics.poll(PollMetric::Ok),
            Polled::Failed { error, .. } => {
                self.metrics.poll(PollMetric::Error);
                warn!(feed = %name, error = %error, errors, next_due = %when(Some(next_due)), "feed failed");
                summary.feeds_failed += 1;
                summary.failures.push((name.clone(), error.clone()));
            }
        }
        Finished {
            report: Report {
                feed,
                record,
                next_due,
            },
            write: PollWrite {
                name: name.clone(),
                weight: polled.weight(),
                polled,
                stats,
                at: now,
                next_due,
                permit: None,
            },
        }
    }

    /// Logs and counts a finished write of the cycle; its error, if it failed.
    fn reported(
        &self,
        (reports, joined): Done<Report<'_>, WriteOutcome>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let stored = joined
            .context("the database task panicked")?
            .1
            .with_context(|| format!("cannot record the polls of {} feeds", reports.len()))?;
        for (report, stored) in reports.iter().zip(&stored) {
            self.report(report, stored, summary);
        }
        Ok(())
    }

    /// The write of the oldest queued polls whose feed is not in `busy` (up to `WRITE_BATCH`, or
    /// `WRITE_BATCH_BYTES` of article text, but always at least one), in one transaction
    /// through `store`, to run on the blocking pool, with its feeds; the other polls stay
    /// queued, in order. `None` when every queued poll's feed is busy.
    pub(super) fn write_batch<'f>(
        &self,
        queued: &mut VecDeque<Finished<'f>>,
        store: Arc<Mutex<Store>>,
        busy: &HashSet<String>,
    ) -> Option<Batch<Report<'f>, impl FnOnce() -> WriteOutcome + Send + use<>>> {
        let (mut reports, mut writes) = (Vec::new(), Vec::new());
        let mut bytes = 0usize;
        let mut rest = VecDeque::new();
        while let Some(next) = queued.pop_front() {
            if busy.contains(&next.write.name) {
                rest.push_back(next);
                continue;
            }
            let full = writes.len() >= WRITE_BATCH
                || bytes.saturating_add(next.write.weight) > WRITE_BATCH_BYTES;
            if full && !writes.is_empty() {
                rest.push_back(next);
                rest.append(queued);
                break;
            }
            bytes = bytes.saturating_add(next.write.weight);
            reports.push(next.report);
            writes.push(next.write);
        }
        *queued = rest;
        if writes.is_empty() {
            return None;
        }
        let window = self.config.new_feed_window;
        let thresholds = self.settings.limits.thresholds;
        let hubs = self.discovered(writes.iter().filter_map(|w| match &w.polled {
            Polled::Fetched {
                hub_links,
                fetched_from,
                ..
            } => Some((w.name.as_str(), hub_links, fetched_from.as_str())),
            _ => None,
        }));
        let push = Arc::clone(&self.push);
        let metrics = self.metrics.clone();
        let feeds = writes.iter().map(|w| w.name.clone()).collect();
        let work = move || {
            let polls: Vec<(&str, PollRecord<'_>)> = writes
                .iter()
                .map(|w| {
                    let record = PollRecord {
                        result: w.polled.as_result(),
                        now: w.at,
                        next_due: w.next_due,
                        new_feed_window: window,
                        flood_at: FLOOD_NEW_ITEMS,
                        thresholds,
                        stats: w.stats,
                    };
                    (w.name.as_str(), record)
                })
                .collect();
            // As in `db`: a poisoned lock is safe to reuse (transactions roll back on drop).
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            let started = std::time::Instant::now();
            let stored = guard.record_polls(&polls);
            metrics.observe_stage(Stage::Store, started.elapsed());
            drop(polls);
            if stored.is_ok() && record_hubs(&mut guard, &hubs) {
                push.changed.notify_one();
            }
            (writes, stored)
        };
        Some((reports, feeds, work))
    }

    /// Logs and counts what storing one poll changed.
    pub(super) fn report(&self, report: &Report<'_>, stored: &PollStored, summary: &mut Summary) {
        let Report {
            feed,
            record,
            next_due,
        } = report;
        let name = &feed.name;
        if stored.inserted.new > 0 || stored.retitled > 0 {
            info!(feed = %name, new = stored.inserted.new, alertable = stored.inserted.alertable,
                  retitled = stored.retitled, next_due = %when(Some(*next_due)), "polled");
        }
        if stored.flood {
            warn!(feed = %name, new = stored.inserted.new, flood_at = FLOOD_NEW_ITEMS,
                  "a flood of new items in one poll; all stored and matched");
        }
        if stored.churning {
            warn!(feed = %name, churned = stored.churned,
                  "feed republishes most of its items under new ids; known by link or headline, not alerted again");
        }
        summary.new_articles += stored.inserted.new;
        summary.stored_unmatched += stored.inserted.new - stored.inserted.alertable;
        self.metrics
            .new_articles(&feed.name, stored.inserted.new as u64);
        if let Some(to) = &stored.moved_to {
            info!(feed = %name, configured = %feed.url, effective = %to,
                  "permanent redirect seen twice; fetching from the new URL (the config is unchanged)");
        }
        match stored.notice {
            Some(NoticeKind::Failing) => {
                error!(feed = %name, errors = stored.error_count, failing_since = %when(record.failing_since),
                       "feed has been failing for too long");
            }
            Some(NoticeKind::Silent) => {
                warn!(feed = %name, last_new_item = %when(record.last_new_item),
                      "feed has brought nothing new for much longer than usual");
            }
            Some(NoticeKind::Recovered) => info!(feed = %name, "feed recovered"),
            None => {}
        }
    }
}

/// What polling needs from `[fetch]`, derived once when the pipeline opens.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) bounds: Bounds,
    pub(super) hosts: HostLimits,
    pub(super) thresholds: Thresholds,
}

impl Limits {
    pub(super) fn new(config: &Config) -> Limits {
        let p = &config.polling;
        Limits {
            bounds: Bounds {
                min_delay: p.min_interval,
                max_delay: p.max_interval,
                backoff_cap: p.backoff_cap,
            },
            hosts: HostLimits {
                per_host: p.per_host,
                spacing: p.host_spacing,
            },
            thresholds: Thresholds {
                failing_after: p.failing_after,
                silent_factor: p.silent_factor,
            },
        }
    }
}

/// Fetches and parses one feed at a time for whoever calls it: the cycle's futures and the
/// stream's tasks (owned and cheap to clone, so a spawned task can hold one).
#[derive(Debug, Clone)]
pub(super) struct Poller {
    pub(super) fetcher: Fetcher,
    /// `fetch.concurrency`: requests (and their parses) in flight at once, all hosts together.
    pub(super) slots: Arc<Semaphore>,
    pub(super) metrics: Metrics,
    /// `[websub]` is configured: a feed's document is searched for its hub links.
    pub(super) websub: bool,
}

impl Poller {
    /// Fetches and parses one feed: waits for its host's turn, then for a global slot, which
    /// it holds through the fetch and the parse.
    pub(super) async fn poll(&self, feed: &FeedConfig, record: &FeedRecord) -> (Polled, PollStats) {
        let (polled, stats, _) = self.poll_reserving(feed, record, None).await;
        (polled, stats)
    }

    /// `poll`, taking a permit of `unstored` (when given) between the host's turn and the global
    /// slot: the stream's writer returns it once the poll is stored, so a stalled writer stops
    /// new requests instead of piling up (or dropping) what was fetched.
    pub(super) async fn poll_reserving(
        &self,
        feed: &FeedConfig,
        record: &FeedRecord,
        unstored: Option<Arc<Semaphore>>,
    ) -> (Polled, PollStats, Option<OwnedSemaphorePermit>) {
        let url = record
            .effective_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .unwrap_or_else(|| feed.url.clone());
        let policy = FetchPolicy {
            allow_private_network: feed.allow_private_network,
            request: Some(Arc::clone(&feed.request)),
            page: false,
        };
        let turn = self.fetcher.host_turn(&url).await;
        // Neither semaphore is ever closed, so acquiring only fails if that changes.
        let reserved = match unstored {
            Some(u) => u.acquire_owned().await.ok(),
            None => None,
        };
        let _slot = self.slots.acquire().await.ok();
        let hubs = self.websub && feed.websub;
        // Boxed: the request's and the parse's state (over 2 KB) is allocated when the turn and
        // the slot have come, so a feed still waiting for them costs only this function's
        // state. A cycle holds every due feed's poll at once: 10,000 unboxed ones were
        // 24.5 MB of its 51.6 MB heap peak (issue 22).
        let (polled, stats) =
            Box::pin(self.fetch_and_parse(turn, &url, record, &policy, hubs)).await;
        (polled, stats, reserved)
    }

    /// The request (in the host's `turn`, released as soon as the response is read) and the
    /// parse; the document searched for WebSub hub links only when `hubs`.
    async fn fetch_and_parse(
        &self,
        turn: Option<HostPermit>,
        url: &url::Url,
        record: &FeedRecord,
        policy: &FetchPolicy,
        hubs: bool,
    ) -> (Polled, PollStats) {
        let failed = |e: &dyn std::fmt::Display, kind, retry_after| Polled::Failed {
            error: e.to_string(),
            kind,
            retry_after,
        };
        let started = tokio::time::Instant::now();
        let fetched = self
            .fetcher
            .fetch_in_turn(url, &record.validators, policy)
            .await;
        if let Some(turn) = turn {
            turn.release().await;
        }
        let took = started.elapsed();
        self.metrics.observe_fetch(took);
        let mut stats = PollStats {
            status: None,
            bytes: None,
            duration: took,
        };
        let report = match fetched {
            Ok(r) => r,
            Err(e) => {
                stats.status = e.status();
                return (failed(&e, e.failure_kind(), e.retry_after()), stats);
            }
        };
        stats.status = report.status;
        let permanent_redirect = report.permanent_redirect.map(|u| u.to_string());
        let header_links = parse::websub::from_link_headers(
            report.link_headers.iter().map(String::as_str),
            &report.final_url,
        );
        let fetched_from = report.final_url.to_string();
        let (body, validators, content_type) = match report.outcome {
            FetchOutcome::NotModified => {
                let polled = Polled::NotModified {
                    cache: report.cache,
                    permanent_redirect,
                };
                return (polled, stats);
            }
            FetchOutcome::Fetched {
                body,
                validators,
                content_type,
            } => (body, validators, content_type),
        };
        stats.bytes = Some(body.len() as u64);
        let parsed = parse::parse_feed_off_thread(body, report.final_url, content_type, hubs);
        let polled = match parsed.await {
            Ok(p) => Polled::Fetched {
                title: p.title,
                validators,
                articles: p.articles,
                cache: report.cache,
                feed_hint: p.ttl.max(p.update_period),
                permanent_redirect,
                hub_links: header_links.or(p.hub_links),
                fetched_from,
            },
            // Unparseable bytes are recorded as an error; the seen-set is left alone. A cut body
            // may come whole next time.
            Err(e) if e.is_transient() => failed(&e, FailureKind::Transient, None),
            Err(e) => failed(&e, FailureKind::Persistent, None),
        };
        (polled, stats)
    }
}

/// Records the hubs a batch of polls discovered; a failure is logged, not the batch's (the next
/// poll discovers them again). Whether a feed's hub is new or changed.
fn record_hubs(store: &mut crate::store::Store, hubs: &[(String, String, String)]) -> bool {
    let mut changed = false;
    for (feed, hub, topic) in hubs {
        let recorded = crate::pipeline::random_token(24).and_then(|token| {
            let secret = crate::pipeline::random_token(32)?;
            Ok(store.record_hub(feed, hub, topic, &token, &secret)?)
        });
        match recorded {
            Ok(true) => {
                changed = true;
                info!(feed = %feed, hub = %hub, topic = %topic, "WebSub hub discovered");
            }
            Ok(false) => {}
            Err(e) => {
                warn!(feed = %feed, error = format!("{e:#}"), "cannot record the feed's WebSub hub");
            }
        }
    }
    changed
}

/// A time for a log field: RFC 3339 to the second, or `never`.
fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
