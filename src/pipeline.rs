//! One poll → store → match → digest → deliver cycle (`daemon` repeats it).
//! This is the edge that owns the clock (`clock_now`) and the database handle; the stages it calls
//! are pure or do their own IO. Durable work (a composed digest) goes through the outbox.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tracing::{debug, error, info, warn};

use crate::article::{Article, FeedMeta};
use crate::config::{Config, FeedConfig};
use crate::deliver::{self, Deliverer, Outcome};
use crate::digest::{self, Entry};
use crate::feed_health::{NoticeKind, Thresholds};
use crate::fetch::{FetchOutcome, FetchPolicy, Fetcher, HostLimits, Validators};
use crate::identity::MAX_NEW_ITEMS_PER_POLL;
use crate::lock::InstanceLock;
use crate::metrics::{Metrics, PollResult as PollMetric};
use crate::parse;
use crate::poll_policy::{self, Bounds, CacheHints, FailureKind, Hints, PollInput, RetryAfter};
use crate::rules::RuleSet;
use crate::store::{
    ArticleMatches, FeedRecord, NewMessage, PendingMatch, PollRecord, PollResult, Store,
    StoreError, StoredHit,
};

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
            for (name, url) in &feeds {
                store.ensure_feed(name, url)?;
            }
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
        let records = self
            .db(move |s| {
                names
                    .iter()
                    .map(|n| s.feed_record(n))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let due: Vec<(&FeedConfig, FeedRecord)> = self
            .config
            .feeds
            .iter()
            .zip(records)
            .map(|(f, r)| (f, r.unwrap_or_default()))
            .filter(|(_, r)| which == Feeds::All || is_due(r.next_due, now))
            .collect();
        // The global cap; the fetcher's host gate adds the per-host limit and spacing beneath it.
        let concurrency = self.config.fetch.concurrency.max(1);
        let mut results = futures_util::stream::iter(due)
            .map(|(feed, record)| async move {
                let polled = self.poll_feed(feed, &record).await;
                (feed, record, polled)
            })
            .buffer_unordered(concurrency);
        while let Some((feed, record, polled)) = results.next().await {
            summary.feeds_polled += 1;
            self.record(feed, &record, polled, now, summary).await?;
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

    /// Schedules the feed's next poll from how this one went, and stores the result.
    async fn record(
        &self,
        feed: &FeedConfig,
        record: &FeedRecord,
        polled: Polled,
        now: DateTime<Utc>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
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
        let name = feed.name.clone();
        let window = self.config.new_feed_window;
        let thresholds = Thresholds {
            failing_after: self.config.polling.failing_after,
            silent_factor: self.config.polling.silent_factor,
        };
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
        let stored = self
            .db(move |s| {
                let result = match &polled {
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
                };
                s.record_poll(
                    &name,
                    &PollRecord {
                        result,
                        now,
                        next_due,
                        catch_up_due,
                        new_feed_window: window,
                        max_new: MAX_NEW_ITEMS_PER_POLL,
                        thresholds,
                    },
                )
            })
            .await?;
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
        Ok(())
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

    /// Runs every stored, not yet matched, alertable article through the rules.
    async fn match_pending(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let pending = self.db(|s| s.pending_articles()).await?;
        if pending.is_empty() {
            return Ok(0);
        }
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
                        self.metrics.rule_matched(&rule.id);
                        Some((rule.id.clone(), hits))
                    })
                    .collect();
                ArticleMatches {
                    article: p.id,
                    matches,
                }
            })
            .collect();
        let stored = self.db(move |s| s.record_matches(&results, now)).await?;
        info!(articles = pending.len(), matches = stored, "matched");
        Ok(stored)
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
