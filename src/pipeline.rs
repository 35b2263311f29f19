//! One poll → store → match → digest → deliver cycle, and the daemon loop that repeats it.
//! This is the edge that owns the clock (`clock_now`), the tasks and the database handle; the stages
//! it calls are pure or do their own IO. Durable work (a composed digest) goes through the outbox.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::article::{Article, FeedMeta};
use crate::config::{Config, FeedConfig};
use crate::deliver::{self, Deliverer, Outcome};
use crate::digest::{self, Entry};
use crate::fetch::{FetchOutcome, Fetcher, Validators};
use crate::parse;
use crate::rules::RuleSet;
use crate::store::{
    ArticleMatches, Fetched, NewMessage, PendingMatch, Store, StoreError, StoredHit,
};

/// The daemon sleeps at most this long between looks at what is due, so a clock jump or a
/// retry time in the outbox is noticed without a wake-up source of its own.
const MAX_IDLE: Duration = Duration::from_secs(300);
const MIN_IDLE: Duration = Duration::from_secs(1);

/// Pending articles matched per database round trip: bounds the memory a large backlog (a cold
/// cycle of 10,000 feeds is 500,000 articles) holds at once, at one transaction per chunk.
const MATCH_CHUNK: usize = 1024;

/// The one place the pipeline reads the wall clock; everything below takes `now` as an argument.
fn clock_now() -> DateTime<Utc> {
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
    let pipeline = Pipeline::open(config, rules).await?;
    pipeline.cycle(clock_now(), Feeds::All).await
}

/// Polls each feed at its own interval until SIGTERM or SIGINT.
pub async fn run_daemon(config: &Config, rules: &RuleSet) -> anyhow::Result<()> {
    let pipeline = Pipeline::open(config, rules).await?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(Signals::install()?.watch(shutdown.clone()));
    info!(feeds = config.feeds.len(), delivery = %pipeline.deliverer.describe(), "daemon started");
    let result = pipeline.run_until(&shutdown, clock_now).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    info!("daemon stopped");
    result
}

/// SIGTERM and SIGINT listeners, installed before the first cycle: a signal that arrives while
/// the first poll runs must stop the daemon gracefully, not kill it with the default action.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn watch(mut self, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            _ = self.term.recv() => { info!(signal = "SIGTERM", "shutting down"); shutdown.cancel(); }
            _ = self.int.recv() => { info!(signal = "SIGINT", "shutting down"); shutdown.cancel(); }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn watch(self, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            r = tokio::signal::ctrl_c() => {
                if r.is_ok() {
                    info!(signal = "ctrl-c", "shutting down");
                    shutdown.cancel();
                }
            }
        }
    }
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
}

/// The result of polling one feed.
enum Polled {
    NotModified,
    Fetched {
        title: Option<String>,
        validators: Validators,
        articles: Vec<Article>,
    },
    Failed(String),
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
            .context("cannot build the HTTP client")?
            .with_host_limits(config.host_limits);
        let deliverer = Deliverer::new(&config.delivery)?;
        Ok(Pipeline {
            config,
            rules,
            store: Arc::new(Mutex::new(store)),
            fetcher,
            deliverer,
        })
    }

    /// Runs `f` on the database on the blocking pool; the lock is never held across an await.
    async fn db<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let result = tokio::task::spawn_blocking(move || {
            // A panic in another database call cannot leave SQLite half-written (transactions
            // roll back on drop), so a poisoned lock is safe to reuse.
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .context("the database task panicked")?;
        Ok(result?)
    }

    /// One cycle at `now`: poll (all or due feeds), store, match, compose one digest per
    /// `[[digest]]`, then deliver every due outbox message.
    pub async fn cycle(&self, now: DateTime<Utc>, which: Feeds) -> anyhow::Result<Summary> {
        let mut summary = Summary {
            destination: self.deliverer.describe(),
            ..Summary::default()
        };
        self.poll(now, which, &mut summary).await?;
        summary.matches = self.match_pending(now).await?;
        summary.emails_composed = self.compose(now).await?;
        self.drain_outbox(now, &mut summary).await?;
        Ok(summary)
    }

    async fn poll(
        &self,
        now: DateTime<Utc>,
        which: Feeds,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = self.config.feeds.iter().map(|f| f.name.clone()).collect();
        let states = self
            .db(move |s| {
                names
                    .iter()
                    .map(|n| s.feed_state(n))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let due: Vec<(&FeedConfig, Validators)> = self
            .config
            .feeds
            .iter()
            .zip(states)
            .filter(|(_, st)| {
                which == Feeds::All || is_due(st.as_ref().and_then(|s| s.next_due), now)
            })
            .map(|(f, st)| (f, st.map(|s| s.validators).unwrap_or_default()))
            .collect();
        let concurrency = self.config.fetch.concurrency.max(1);
        let mut results = futures_util::stream::iter(due)
            .map(
                |(feed, validators)| async move { (feed, self.poll_feed(feed, &validators).await) },
            )
            .buffer_unordered(concurrency);
        while let Some((feed, polled)) = results.next().await {
            summary.feeds_polled += 1;
            let name = feed.name.clone();
            let next_due =
                now + chrono::Duration::from_std(feed.interval).unwrap_or(chrono::Duration::MAX);
            match polled {
                Polled::NotModified => {
                    summary.feeds_unchanged += 1;
                    debug!(feed = %name, "not modified");
                    self.db(move |s| s.record_not_modified(&name, now, next_due))
                        .await?;
                }
                Polled::Fetched {
                    title,
                    validators,
                    articles,
                } => {
                    let window = self.config.new_feed_window;
                    let count = articles.len();
                    let inserted = self
                        .db(move |s| {
                            let poll = Fetched {
                                title: title.as_deref(),
                                validators: &validators,
                                articles: &articles,
                            };
                            s.record_fetched(&name, poll, now, window, next_due)
                        })
                        .await?;
                    info!(feed = %feed.name, items = count, new = inserted.new, alertable = inserted.alertable, "polled");
                    summary.new_articles += inserted.new;
                }
                Polled::Failed(err) => {
                    warn!(feed = %name, error = %err, "feed failed");
                    summary.feeds_failed += 1;
                    summary.failures.push((name.clone(), err.clone()));
                    self.db(move |s| s.record_failure(&name, &err, next_due))
                        .await?;
                }
            }
        }
        summary.failures.sort();
        Ok(())
    }

    async fn poll_feed(&self, feed: &FeedConfig, validators: &Validators) -> Polled {
        match self.fetcher.fetch(&feed.url, validators).await {
            Err(e) => Polled::Failed(e.to_string()),
            Ok(FetchOutcome::NotModified) => Polled::NotModified,
            Ok(FetchOutcome::Fetched {
                body, validators, ..
            }) => {
                let url = feed.url.clone();
                // Parsing a large feed is CPU work; keep it off the async workers.
                let parsed =
                    tokio::task::spawn_blocking(move || parse::parse_feed(&body, &url)).await;
                match parsed {
                    Ok(Ok(p)) => Polled::Fetched {
                        title: p.title,
                        validators,
                        articles: p.articles,
                    },
                    Ok(Err(e)) => Polled::Failed(e.to_string()),
                    Err(e) => Polled::Failed(format!("the parser panicked: {e}")),
                }
            }
        }
    }

    /// Runs every stored, not yet matched, alertable article through the rules.
    async fn match_pending(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut after = 0;
        let (mut articles, mut stored) = (0, 0);
        loop {
            let pending = self
                .db(move |s| s.pending_articles_after(after, MATCH_CHUNK))
                .await?;
            let Some(last) = pending.last() else { break };
            after = last.id;
            articles += pending.len();
            stored += self.match_chunk(&pending, now).await?;
        }
        if articles > 0 {
            info!(articles, matches = stored, "matched");
        }
        Ok(stored)
    }

    /// Matches one chunk of pending articles and records the verdicts in one transaction.
    async fn match_chunk(
        &self,
        pending: &[crate::store::PendingArticle],
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let tags: HashMap<&str, &[String]> = self
            .config
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), f.tags.as_slice()))
            .collect();
        let rules = self.rules.rules();
        let results: Vec<ArticleMatches> = pending
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
                                // Debug, not a method: the rule engine is being replaced and
                                // its `Field` is guaranteed only to be printable.
                                field: format!("{:?}", h.field).to_lowercase(),
                                start: h.start,
                                end: h.end,
                                text: h.text,
                            })
                            .collect();
                        Some((rule.id.clone(), hits))
                    })
                    .collect();
                ArticleMatches {
                    article: p.id,
                    matches,
                }
            })
            .collect();
        self.db(move |s| s.record_matches(&results, now)).await
    }

    /// Composes one digest per configured `[[digest]]` from every unassigned match; the emails
    /// enter the outbox in the same transaction that assigns the matches.
    async fn compose(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        if self.config.digests.is_empty() {
            return Ok(0);
        }
        let titles: HashMap<String, String> = self
            .rules
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.title.clone()))
            .collect();
        let digests = self.config.digests.clone();
        let from = self.config.delivery.from.clone();
        let composed = self
            .db(move |s| {
                Ok(s.compose_digest(now, |digest_id, matches| {
                    let entries = entries(matches, &titles);
                    let mut out = Vec::new();
                    for cfg in &digests {
                        if let Some(c) = digest::compose(digest_id, cfg, &from, &entries, now)? {
                            out.push(NewMessage {
                                digest_name: cfg.name.clone(),
                                message_id: c.message_id,
                                sender: c.sender,
                                recipients: c.recipients,
                                raw: c.raw,
                            });
                        }
                    }
                    Ok::<_, digest::DigestError>(out)
                }))
            })
            .await?
            .context("cannot compose the digest")?;
        Ok(match composed {
            Some((digest, ids)) => {
                info!(digest, emails = ids.len(), "digest composed");
                ids.len()
            }
            None => 0,
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
                    self.db(move |s| s.mark_sent(id, now)).await?;
                }
                Outcome::Retry(err) if attempts < deliver::MAX_ATTEMPTS => {
                    let at = now
                        + chrono::Duration::from_std(deliver::backoff(attempts))
                            .unwrap_or(chrono::Duration::MAX);
                    warn!(message_id = %msg.message_id, error = %err, attempts, retry_at = %at, "delivery deferred");
                    summary.emails_deferred += 1;
                    self.db(move |s| s.mark_retry(id, &err, at)).await?;
                }
                Outcome::Retry(err) | Outcome::Failed(err) => {
                    error!(message_id = %msg.message_id, error = %err, attempts, "delivery failed; message kept in the outbox");
                    summary.emails_failed += 1;
                    self.db(move |s| s.mark_failed(id, &err)).await?;
                }
            }
        }
        Ok(())
    }

    /// Repeats `cycle(clock(), Feeds::Due)` until `shutdown` fires, sleeping until the next feed
    /// or outbox retry is due. A cycle that fails is logged and retried on the next wake-up.
    pub async fn run_until(
        &self,
        shutdown: &CancellationToken,
        clock: impl Fn() -> DateTime<Utc>,
    ) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            let now = clock();
            match self.cycle(now, Feeds::Due).await {
                Ok(s) if s.feeds_polled > 0 || s.emails_sent > 0 => {
                    info!(
                        polled = s.feeds_polled,
                        failed = s.feeds_failed,
                        new = s.new_articles,
                        matches = s.matches,
                        sent = s.emails_sent,
                        "cycle done"
                    );
                }
                Ok(_) => {}
                Err(e) => error!(error = format!("{e:#}"), "cycle failed"),
            }
            let wake = self.next_wake().await.unwrap_or(None);
            let idle = idle_time(wake, clock());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(idle) => {}
            }
        }
        Ok(())
    }

    /// The earliest time a configured feed or a queued email wants attention.
    async fn next_wake(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
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

/// How long the daemon sleeps before its next look, given the earliest wake-up time.
pub fn idle_time(wake: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    wake.map_or(MAX_IDLE, |w| (w - now).to_std().unwrap_or(MIN_IDLE))
        .clamp(MIN_IDLE, MAX_IDLE)
}

/// Unassigned matches as digest entries; a rule removed since it matched shows its id.
fn entries(matches: &[PendingMatch], titles: &HashMap<String, String>) -> Vec<Entry> {
    matches
        .iter()
        .map(|m| Entry {
            rule_title: titles
                .get(&m.rule_id)
                .cloned()
                .unwrap_or_else(|| m.rule_id.clone()),
            feed: m.feed.clone(),
            feed_title: m.feed_title.clone(),
            article_id: m.article_id,
            title: m.title.clone(),
            link: m.link.clone(),
            time: m.published.unwrap_or(m.first_seen),
            terms: m.hits.iter().map(|h| h.text.clone()).collect(),
        })
        .collect()
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
    fn due_and_idle() {
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
        // (wake, idle seconds)
        let idle_cases = [
            (None, 300),
            (Some("2025-03-10T12:00:30Z"), 30),
            (Some("2025-03-10T11:00:00Z"), 1),
            (Some("2025-03-10T12:00:00Z"), 1),
            (Some("2025-03-11T12:00:00Z"), 300),
        ];
        for (wake, secs) in idle_cases {
            assert_eq!(
                idle_time(wake.map(t), now),
                Duration::from_secs(secs),
                "{wake:?}"
            );
        }
    }
}
