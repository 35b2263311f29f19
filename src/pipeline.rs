//! One poll → store → match → compose → deliver cycle (`daemon` repeats it), a file per stage:
//! `poll` (fetch, parse, group-committed writes), `matching`, compose (here), `outbox` (delivery).
//! Owns the database handle; every stage takes `now` as an argument (only `run_once` asks the
//! clock). Durable work (a composed digest) goes through the outbox.

mod matching;
mod outbox;
mod poll;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::config::{AlertConfig, Config, DigestConfig};
use crate::deliver::Deliverer;
use crate::digest;
use crate::digest::alerts::{PendingAlert, plan_alerts};
use crate::fetch::Fetcher;
use crate::model::{DigestBatch, NewMessage};
use crate::policy::schedule;
use crate::rules::RuleSet;
use crate::service::lock::InstanceLock;
use crate::service::metrics::Metrics;
use crate::store::{ComposeTx, Store, StoreError};

pub use poll::Jitter;

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
    pipeline.cycle(crate::clock::now(), Feeds::All).await
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
    /// Feed tags and alert routes, derived from the configuration once.
    routing: matching::Routing,
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
            fetcher: fetcher.with_host_limits(poll::host_limits(config)),
            routing: matching::Routing::new(config, rules),
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
        self.fetcher = fetcher.with_host_limits(poll::host_limits(self.config));
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
        let threads = matching::match_threads();
        summary.matches = matching::off_worker(|| {
            matching::match_backlog(
                &self.store,
                self.rules,
                &self.routing,
                &self.metrics,
                now,
                threads,
            )
        })?;
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
