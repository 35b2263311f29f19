//! The daemon's pipeline as stages that run side by side, never in cycles: each feed on its own
//! clock (a queue of due times), fetched in its own task when due and when its host allows, its
//! poll stored by one group-committing writer, new articles matched as soon as they are stored,
//! alerts and digests composed when due, the outbox drained as soon as a message enters it.
//! Bounded between stages: a stalled writer stops new requests; nothing fetched is dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::FeedConfig;
use crate::live::stage_times::Stage;
use crate::pipeline::poll::{Finished, Polled, QUEUED_PER_FETCH};
use crate::pipeline::writes::Writes;
use crate::pipeline::{Pipeline, Summary};
use crate::service::health::Heartbeat;
use crate::store::FeedRecord;

/// Articles the match stage takes in one turn before the other stages get theirs (a cold start's
/// backlog is matched in slices, so fetching and storing go on meanwhile).
const MATCH_TURN: usize = 4096;

/// A failed write (disk full, database locked) is tried again after this, doubling up to
/// `WRITE_RETRY_MAX`; its polls wait in memory, and no new request starts while they fill
/// the queue.
const WRITE_RETRY_MIN: Duration = Duration::from_secs(1);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(60);

/// A `[[digest]]` without a schedule collects matches for this long after the first it holds,
/// then goes out with all of them (each feed on its own clock would otherwise make one email
/// per stored poll).
const UNSCHEDULED_WINDOW: Duration = Duration::from_secs(5);

/// A stage that failed (its database work, say) waits this long before its next attempt.
const STAGE_RETRY: Duration = Duration::from_secs(5);

/// The stages' heartbeats: each beats when it finishes a unit of work or finds none to do, so
/// `/healthz` and the watchdog see a stage that stopped making progress.
#[derive(Debug, Clone)]
pub struct Beats {
    /// The scheduler: feeds dispatched and fetches reaped.
    pub fetch: Heartbeat,
    /// The writer: polls committed (or nothing to commit).
    pub store: Heartbeat,
    /// Matching and composition.
    pub matching: Heartbeat,
    /// The outbox drained (or nothing due).
    pub deliver: Heartbeat,
}

impl Beats {
    pub fn new() -> Beats {
        Beats {
            fetch: Heartbeat::new("fetch"),
            store: Heartbeat::new("store"),
            matching: Heartbeat::new("match"),
            deliver: Heartbeat::new("deliver"),
        }
    }

    pub fn all(&self) -> [Heartbeat; 4] {
        [
            self.fetch.clone(),
            self.store.clone(),
            self.matching.clone(),
            self.deliver.clone(),
        ]
    }
}

impl Default for Beats {
    fn default() -> Self {
        Beats::new()
    }
}

/// What a running stream is told and tells: its clock, how long a stage may sleep, its beats,
/// and where its running totals go (the daemon's STATUS line).
pub struct StreamContext<'c> {
    pub clock: &'c (dyn Fn() -> DateTime<Utc> + Sync),
    pub beats: &'c Beats,
    /// The longest any stage sleeps without looking again (a quiet stage still beats).
    pub max_idle: Duration,
    /// Called with the totals since the stream started, after each change.
    pub progress: &'c (dyn Fn(&Summary) + Sync),
    /// Digests to compose now, asked from outside (the console); `None` where nobody asks.
    pub requests: Option<&'c crate::live::Requests>,
}

/// The stream's running totals; each change is reported to the context's `progress`.
struct Totals<'c> {
    sum: std::sync::Mutex<Summary>,
    progress: &'c (dyn Fn(&Summary) + Sync),
}

impl Totals<'_> {
    fn add(&self, f: impl FnOnce(&mut Summary)) {
        let mut sum = self
            .sum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut sum);
        (self.progress)(&sum);
    }
}

/// One fetch task's answer: the feed (its index in the config), its record as it was, the poll,
/// and the permit that keeps its place among the polls not yet stored.
type Fetched = (
    usize,
    FeedRecord,
    (Polled, crate::store::PollStats),
    Option<OwnedSemaphorePermit>,
);

impl Pipeline<'_> {
    /// Runs every stage until `stop` resolves; then stops starting work, writes what was fetched
    /// (one attempt) and returns. The caller bounds that wind-down (dropping the future is safe:
    /// every write is a transaction, and an email is marked sent only once accepted).
    pub async fn stream(
        &self,
        stop: impl Future<Output = ()>,
        ctx: &StreamContext<'_>,
    ) -> anyhow::Result<()> {
        let stopping = CancellationToken::new();
        let stored = Notify::new();
        let composed = Notify::new();
        let totals = Totals {
            sum: std::sync::Mutex::new(Summary {
                destination: self.deliverer.describe(),
                ..Summary::default()
            }),
            progress: ctx.progress,
        };
        // A stage that fails stops the others, so the stream ends with its error and the daemon
        // starts it again; without this the failed stage would stay gone while the rest ran on.
        let ending = |r: anyhow::Result<()>| {
            if r.is_err() {
                stopping.cancel();
            }
            r
        };
        let stages = async {
            let (fetched, matched, delivered, (), (), (), ()) = tokio::join!(
                async { ending(self.fetch_and_store(&stopping, &stored, ctx, &totals).await) },
                async {
                    ending(
                        self.match_and_compose(&stopping, &stored, &composed, ctx, &totals)
                            .await,
                    )
                },
                async { ending(self.deliver_stage(&stopping, &composed, ctx, &totals).await) },
                self.full_text_stage(&stopping, &stored, ctx.clock, ctx.max_idle),
                self.websub_stage(&stopping, ctx.clock, ctx.max_idle),
                self.pushes_wake_matching(&stopping, &stored),
                self.beat_stage(&stopping, ctx.clock),
            );
            (fetched, matched, delivered)
        };
        tokio::pin!(stages);
        let (fetched, matched, delivered) = tokio::select! {
            r = &mut stages => r,
            () = stop => {
                stopping.cancel();
                stages.await
            }
        };
        fetched.and(matched).and(delivered)
    }

    /// A push stored by the WebSub callback server wakes the match stage, as a stored poll does.
    async fn pushes_wake_matching(&self, stopping: &CancellationToken, stored: &Notify) {
        if self.config.websub.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                () = self.push.pushed.notified() => stored.notify_one(),
            }
        }
    }

    /// The scheduler and the writer: dispatches each feed when due, reaps finished polls into
    /// the write queue, commits them in batches, and puts each stored feed back on its clock.
    async fn fetch_and_store(
        &self,
        stopping: &CancellationToken,
        stored: &Notify,
        ctx: &StreamContext<'_>,
        totals: &Totals<'_>,
    ) -> anyhow::Result<()> {
        let feeds = &self.config.feeds;
        // Read until the database answers (PostgreSQL restarting): the stage starts then.
        let mut records: HashMap<String, FeedRecord> = loop {
            match self.db(|s| s.feed_records()).await {
                Ok(all) => break all.into_iter().map(|r| (r.name.clone(), r)).collect(),
                Err(e) => {
                    error!(
                        error = format!("{e:#}"),
                        "cannot read the feeds' state; trying again shortly"
                    );
                    tokio::select! {
                        () = stopping.cancelled() => return Ok(()),
                        () = tokio::time::sleep(STAGE_RETRY) => {}
                    }
                }
            }
        };
        let now = (ctx.clock)();
        // (due, feed index); a feed in flight or waiting to be written is in neither.
        let mut clock: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> = feeds
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let due = records.get(&f.name).and_then(|r| r.next_due);
                Reverse((due.unwrap_or(now), i))
            })
            .collect();
        let index: HashMap<&str, usize> = feeds
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect();
        let concurrency = self.config.fetch.concurrency.max(1);
        let unstored = Arc::new(Semaphore::new(concurrency.saturating_mul(QUEUED_PER_FETCH)));
        let mut fetching: JoinSet<Fetched> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut queued: VecDeque<Finished<'_>> = VecDeque::new();
        let mut writing = Writes::new(&self.writers);
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut failures: u32 = 0;
        ctx.beats.fetch.beat();
        ctx.beats.store.beat();
        loop {
            let now = (ctx.clock)();
            let stopping_now = stopping.is_cancelled();
            let mut due_now: Vec<usize> = Vec::new();
            // With several nodes, no more feeds than this node has fetch slots free: a feed
            // claimed but left waiting behind its own fetches is one another node could be
            // polling (issue 17: three nodes polled no more than one). Alone, every due feed
            // goes to the fetcher, whose per-host gates pick what starts first.
            let free = if self.config.store.is_some() {
                concurrency.saturating_sub(in_flight.len())
            } else {
                usize::MAX
            };
            loop {
                match clock.peek() {
                    Some(Reverse((due, _)))
                        if *due <= now && !stopping_now && due_now.len() < free => {}
                    _ => break,
                }
                let Some(Reverse((_, i))) = clock.pop() else {
                    break;
                };
                due_now.push(i);
            }
            for i in self
                .claim_due(&due_now, now, &mut records, &mut clock)
                .await
            {
                let feed: FeedConfig = feeds[i].clone();
                let record = records.get(&feed.name).cloned().unwrap_or_default();
                let poller = self.poller.clone();
                let reserve = Arc::clone(&unstored);
                let handle = fetching.spawn(async move {
                    let (polled, stats, permit) =
                        poller.poll_reserving(&feed, &record, Some(reserve)).await;
                    (i, record, (polled, stats), permit)
                });
                in_flight.insert(handle.id(), i);
            }
            let may_write = retry_at.is_none_or(|t| t <= tokio::time::Instant::now());
            if may_write {
                writing.start(|store, busy| self.write_batch(&mut queued, store, busy));
            }
            if writing.is_empty() && queued.is_empty() {
                ctx.beats.store.beat();
            }
            if stopping_now && writing.is_empty() && (queued.is_empty() || failures > 0) {
                if !queued.is_empty() {
                    warn!(
                        polls = queued.len(),
                        "stopping with polls not stored; their feeds are fetched again at the next start"
                    );
                }
                // Leases this node still holds (polls aborted or not stored) go back to the
                // cluster now rather than when they expire.
                let names: Vec<String> = feeds.iter().map(|f| f.name.clone()).collect();
                let released = self
                    .db(move |s| {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        s.release_feeds(&names)
                    })
                    .await;
                if let Err(e) = released {
                    warn!(
                        error = format!("{e:#}"),
                        "cannot release this node's feed leases; they expire on their own"
                    );
                }
                // Likewise the hosts' request slots its aborted fetches held (several nodes).
                if let Some(shared) = self.poller.fetcher.shared_spacing() {
                    shared.release_all_slots().await;
                }
                return Ok(());
            }
            // The next instant anything here is due: a feed (none once stopping: due feeds stay
            // on the heap, and would wake this loop at once), or the retry of a failed write.
            // With every slot taken (several nodes), a finished fetch wakes it, not the clock.
            let slots_full = self.config.store.is_some() && in_flight.len() >= concurrency;
            let next_feed = clock
                .peek()
                .map(|Reverse((due, _))| *due)
                .filter(|_| !stopping_now && !slots_full);
            let mut idle = next_feed
                .map_or(ctx.max_idle, |d| {
                    (d - now).to_std().unwrap_or(Duration::ZERO)
                })
                .min(ctx.max_idle);
            if let Some(t) = retry_at {
                idle = idle.min(t.saturating_duration_since(tokio::time::Instant::now()));
            }
            tokio::select! {
                () = stopping.cancelled(), if !stopping_now => {
                    fetching.abort_all();
                }
                Some(joined) = fetching.join_next_with_id(), if !fetching.is_empty() => {
                    ctx.beats.fetch.beat();
                    match joined {
                        Ok((id, (i, record, polled, permit))) => {
                            in_flight.remove(&id);
                            let at = (ctx.clock)();
                            let mut summary = Summary::default();
                            let mut finished = self.finish(&feeds[i], record, polled, at, &mut summary);
                            finished.write.permit = permit;
                            totals.add(|t| {
                                t.feeds_polled += summary.feeds_polled;
                                t.feeds_failed += summary.feeds_failed;
                                t.feeds_unchanged += summary.feeds_unchanged;
                            });
                            queued.push_back(finished);
                        }
                        Err(e) => {
                            // A panicked poll (a bug) must not take its feed off the clock; an
                            // aborted one (stopping) needs no clock any more.
                            if let Some(i) = in_flight.remove(&e.id())
                                && e.is_panic()
                            {
                                error!(feed = %feeds[i].name, "the poll panicked; trying again later");
                                let later = (ctx.clock)()
                                    + chrono::Duration::from_std(self.settings.limits.bounds.min_delay)
                                        .unwrap_or(chrono::Duration::MAX);
                                clock.push(Reverse((later, i)));
                            }
                        }
                    }
                }
                (reports, joined) = writing.next(), if !writing.is_empty() => {
                    let (mut writes, outcome) = match joined {
                        Ok(r) => r,
                        Err(e) => anyhow::bail!("the database task panicked: {e}"),
                    };
                    match outcome {
                        Ok(stored_polls) => {
                            failures = 0;
                            retry_at = None;
                            // Stored: their places among the unstored polls go.
                            for w in &mut writes {
                                w.permit = None;
                            }
                            let mut summary = Summary::default();
                            for (report, s) in reports.iter().zip(&stored_polls) {
                                self.report(report, s, &mut summary);
                            }
                            totals.add(|t| t.new_articles += summary.new_articles);
                            if summary.new_articles > 0 {
                                stored.notify_one();
                            }
                            ctx.beats.store.beat();
                            // Back on its clock at the due time the store recorded.
                            // Stored: the leases go (the stored next due keeps every node off
                            // the feed until then).
                            let names: Vec<String> = writes.iter().map(|w| w.name.clone()).collect();
                            let fresh = self
                                .db(move |s| {
                                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                                    s.release_feeds(&refs)?;
                                    names.iter().map(|n| s.feed_record(n)).collect::<Result<Vec<_>, _>>()
                                })
                                .await;
                            match fresh {
                                Ok(fresh) => {
                                    for (w, r) in writes.iter().zip(fresh) {
                                        let Some(&i) = index.get(w.name.as_str()) else {
                                            continue;
                                        };
                                        let r = r.unwrap_or_default();
                                        let due = r.next_due.unwrap_or_else(&ctx.clock);
                                        records.insert(w.name.clone(), r);
                                        clock.push(Reverse((due, i)));
                                    }
                                }
                                Err(e) => {
                                    // Stored, but the database went away before this node
                                    // read the feeds back (PostgreSQL restarting): each is
                                    // asked again after a recheck, when the claim finds it
                                    // not yet due and puts it on the clock at its stored due
                                    // time; its lease runs out on its own.
                                    let again = (ctx.clock)()
                                        + chrono::Duration::from_std(self.recheck())
                                            .unwrap_or_default();
                                    warn!(error = format!("{e:#}"), feeds = writes.len(),
                                          "polls stored, but cannot read their feeds back; asking again shortly");
                                    for w in &writes {
                                        if let Some(&i) = index.get(w.name.as_str()) {
                                            clock.push(Reverse((again, i)));
                                        }
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let wait = WRITE_RETRY_MIN
                                .saturating_mul(1 << failures.min(6).saturating_sub(1))
                                .min(WRITE_RETRY_MAX);
                            error!(error = %e, polls = writes.len(), attempts = failures,
                                   retry_secs = wait.as_secs(),
                                   "cannot store polls; fetching pauses, they are written again");
                            retry_at = Some(tokio::time::Instant::now() + wait);
                            // Back at the front, in order, with their permits.
                            let again: Vec<_> = reports
                                .into_iter()
                                .zip(writes)
                                .map(|(report, write)| Finished { report, write })
                                .collect();
                            for item in again.into_iter().rev() {
                                queued.push_front(item);
                            }
                        }
                    }
                }
                () = tokio::time::sleep(idle) => {
                    if fetching.is_empty() {
                        ctx.beats.fetch.beat();
                    }
                }
            }
        }
    }

    /// Matches what was stored, in turns, then composes the alerts and digests that are due;
    /// wakes when the writer stored new articles, when a digest or alert batch is due, and at
    /// least every `max_idle`.
    async fn match_and_compose(
        &self,
        stopping: &CancellationToken,
        stored: &Notify,
        composed: &Notify,
        ctx: &StreamContext<'_>,
        totals: &Totals<'_>,
    ) -> anyhow::Result<()> {
        let unscheduled = self.config.digests.iter().any(|d| d.schedule.is_none());
        // Since when matches wait for an unscheduled digest (from the start: a previous run may
        // have left some).
        let mut held_since = unscheduled.then(tokio::time::Instant::now);
        loop {
            if stopping.is_cancelled() {
                return Ok(());
            }
            let now = (ctx.clock)();
            let mut next: Option<DateTime<Utc>> = None;
            let mut failed = false;
            loop {
                let started = std::time::Instant::now();
                let turn = self.match_pending(now, MATCH_TURN);
                match turn {
                    Ok((n, drained)) => {
                        if n > 0 {
                            self.metrics.observe_stage(Stage::Match, started.elapsed());
                        }
                        totals.add(|t| t.matches += n);
                        if n > 0 && unscheduled {
                            held_since.get_or_insert_with(tokio::time::Instant::now);
                        }
                        if drained || stopping.is_cancelled() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    Err(e) => {
                        error!(
                            error = format!("{e:#}"),
                            "matching failed; trying again shortly"
                        );
                        failed = true;
                        break;
                    }
                }
            }
            let settled = held_since.is_some_and(|h| h.elapsed() >= UNSCHEDULED_WINDOW);
            if !failed && !stopping.is_cancelled() {
                let started = std::time::Instant::now();
                match self.compose(now, settled).await {
                    Ok((n, wake)) => {
                        next = wake;
                        if settled {
                            held_since = None;
                        }
                        if n > 0 {
                            self.metrics
                                .observe_stage(Stage::Compose, started.elapsed());
                            totals.add(|t| t.emails_composed += n);
                            composed.notify_one();
                        }
                    }
                    Err(e) => {
                        error!(
                            error = format!("{e:#}"),
                            "composing failed; trying again shortly"
                        );
                        failed = true;
                    }
                }
            }
            if !stopping.is_cancelled()
                && let Some(r) = ctx.requests
            {
                let n = self.serve_requests(r, now).await;
                if n > 0 {
                    totals.add(|t| t.emails_composed += n);
                    composed.notify_one();
                }
            }
            let mut idle = if failed {
                STAGE_RETRY
            } else {
                ctx.beats.matching.beat();
                next.map_or(ctx.max_idle, |d| {
                    (d - (ctx.clock)()).to_std().unwrap_or(Duration::ZERO)
                })
            }
            .min(ctx.max_idle);
            if let Some(h) = held_since.filter(|_| !failed) {
                let settle = h + UNSCHEDULED_WINDOW;
                idle = idle.min(settle.saturating_duration_since(tokio::time::Instant::now()));
            }
            tokio::select! {
                () = stopping.cancelled() => return Ok(()),
                () = stored.notified() => {}
                () = requested(ctx.requests) => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// Sends every due outbox message; wakes when one was composed, when a retry is due, and at
    /// least every `max_idle`. A send within the transport's deadlines counts as progress.
    async fn deliver_stage(
        &self,
        stopping: &CancellationToken,
        composed: &Notify,
        ctx: &StreamContext<'_>,
        totals: &Totals<'_>,
    ) -> anyhow::Result<()> {
        // One SMTP attempt and one attempt per channel at most, each within its deadline.
        let channels = self.channels.longest_pass();
        let bound = match self.deliverer.longest_attempt() {
            Some(smtp) => Some(smtp + channels),
            None if channels.is_zero() => None,
            None => Some(channels),
        };
        loop {
            if stopping.is_cancelled() {
                return Ok(());
            }
            let now = (ctx.clock)();
            let mut summary = Summary::default();
            let delivering = std::time::Instant::now();
            let drained = {
                let drain = self.drain_outbox(now, Some(ctx.clock), &mut summary);
                tokio::pin!(drain);
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        r = &mut drain => break r,
                        _ = tick.tick() => {
                            // Within the longest one attempt may take, a send is progress.
                            if bound.is_some_and(|b| started.elapsed() <= b) {
                                ctx.beats.deliver.beat();
                            }
                        }
                    }
                }
            };
            let attempted = summary.emails_sent
                + summary.emails_deferred
                + summary.emails_failed
                + summary.channel_sent
                + summary.channel_deferred
                + summary.channel_failed;
            if attempted > 0 {
                self.metrics
                    .observe_stage(Stage::Deliver, delivering.elapsed());
            }
            let failed = match drained {
                Ok(()) => {
                    ctx.beats.deliver.beat();
                    false
                }
                Err(e) => {
                    error!(
                        error = format!("{e:#}"),
                        "delivery pass failed; trying again shortly"
                    );
                    true
                }
            };
            if summary.channel_sent + summary.channel_deferred + summary.channel_failed > 0 {
                info!(
                    sent = summary.channel_sent,
                    deferred = summary.channel_deferred,
                    failed = summary.channel_failed,
                    "channel messages drained"
                );
            }
            if summary.emails_sent + summary.emails_deferred + summary.emails_failed > 0 {
                totals.add(|t| {
                    t.emails_sent += summary.emails_sent;
                    t.emails_deferred += summary.emails_deferred;
                    t.emails_failed += summary.emails_failed;
                });
                info!(
                    sent = summary.emails_sent,
                    deferred = summary.emails_deferred,
                    failed = summary.emails_failed,
                    "outbox drained"
                );
            }
            match self.backlog().await {
                Ok((failing, queued)) => {
                    self.metrics.set_feeds_in_error(failing as u64);
                    self.metrics.set_emails_queued(queued as u64);
                }
                Err(e) => warn!(
                    error = format!("{e:#}"),
                    "cannot count failing feeds and queued email"
                ),
            }
            let next = if failed {
                None
            } else {
                self.db(|s| {
                    Ok(crate::pipeline::earliest(
                        s.next_outbox_attempt()?,
                        s.next_channel_attempt()?,
                    ))
                })
                .await
                .unwrap_or(None)
            };
            let mut idle = if failed {
                STAGE_RETRY
            } else {
                next.map_or(ctx.max_idle, |d| {
                    (d - (ctx.clock)()).to_std().unwrap_or(Duration::ZERO)
                })
            }
            .min(ctx.max_idle);
            if self.config.store.is_some() {
                // Another node's composition, or a stalled node's claim running out, wakes
                // nothing here: look again at least every quarter lease, so a message another
                // node cannot send is taken over about a lease after its last renewal.
                idle = idle.min(self.recheck());
            }
            tokio::select! {
                () = stopping.cancelled() => return Ok(()),
                () = composed.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}

/// Resolves when a digest is asked for from outside; never where nobody can ask.
async fn requested(requests: Option<&crate::live::Requests>) {
    match requests {
        Some(r) => r.queued().await,
        None => std::future::pending().await,
    }
}
