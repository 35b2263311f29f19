//! The compose stage as units of work the pipeline drives: for each alert set and each due
//! `[[digest]]`, gather (store) → render (`digest`, pure) → commit (store), in one transaction,
//! so an email enters the outbox together with the matches it carries and the slot it serves.
//! Also `digest preview` (gather and render, never committed) and `digest send`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::channels::payload::{Event, Payload};
use crate::config::{AlertConfig, DigestConfig};
use crate::digest;
use crate::digest::RuleBook;
use crate::digest::alerts::{AlertLimit, PendingAlert, plan_alerts};
use crate::model::{DigestBatch, NewMessage};
use crate::pipeline::{Pipeline, Summary, earliest};
use crate::policy::schedule;
use crate::store::{ComposeTx, StoreError};

impl<'a> Pipeline<'a> {
    /// Batches pending alerts into alert emails, then composes each `[[digest]]` that is due
    /// (one with no schedule: when `unscheduled` says so — every cycle; in the stream, once
    /// the news has settled). Each email enters the outbox in the transaction that assigns its
    /// matches (and records the served slot).
    /// Returns the emails composed and when the next scheduled digest or alert batch is due.
    pub(super) async fn compose(
        &self,
        now: DateTime<Utc>,
        unscheduled: bool,
    ) -> anyhow::Result<(usize, Option<DateTime<Utc>>)> {
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
        // Spike alerts go out through channels, not as emails: not counted as composed.
        self.detect_spikes(now).await?;
        for cfg in &self.config.digests {
            if cfg.schedule.is_none() && !unscheduled {
                continue;
            }
            composed += self.compose_due_digest(cfg, now).await?;
            if let Some(sched) = &cfg.schedule {
                wake = earliest(wake, schedule::next_after(sched, cfg.timezone, now));
            }
        }
        Ok((composed, wake))
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
        let titles = Arc::clone(&self.settings.rules);
        let notices = self.feed_notices(&cfg.name, now).await?;
        let from = self.config.delivery.from.clone();
        let cfg2 = cfg.clone();
        let composed = self
            .db_work(move |s| {
                let since = s.last_digest_time(&cfg2.name)?;
                let mut tx = s.begin_compose()?;
                // Another node may have served this slot since it was found due (on
                // PostgreSQL the composition began after that node's commit): one email a slot.
                if let Some(slot) = slot
                    && tx.last_slot(&cfg2.name)?.is_some_and(|last| last >= slot)
                {
                    return Ok(None);
                }
                let batch = gather_digest(&mut tx, &cfg2, &titles, None, now)?;
                let id = tx.next_digest_id()?;
                let mut batch = digest::Batch::from_store(batch, &titles);
                batch.since = since;
                let composed = digest::compose_batch(id, &cfg2, &from, &batch, &notices, now)?;
                if let Some(c) = &composed
                    && !cfg2.channels.is_empty()
                {
                    let payload = Payload::from_entries(
                        Event::Digest,
                        &cfg2.name,
                        &c.subject,
                        &batch.entries,
                        batch.articles,
                        now,
                    );
                    tx.queue_channels(id, &cfg2.name, &cfg2.channels, &payload.to_json(), now)?;
                }
                let message = composed.map(|c| NewMessage {
                    digest_name: cfg2.name.clone(),
                    message_id: c.message_id,
                    sender: c.sender,
                    recipients: c.recipients,
                    raw: c.raw,
                });
                Ok(tx.commit_digest(&cfg2.name, id, now, slot, message.as_ref())?)
            })
            .await
            .with_context(|| format!("cannot compose digest {:?}", cfg.name))?;
        Ok(match composed {
            Some(c) => {
                info!(digest = %cfg.name, id = c.digest, matches = c.matches, slot = %slot.map_or_else(|| "unscheduled".to_string(), |s| s.to_rfc3339_opts(SECS, true)), "digest composed");
                1
            }
            None => {
                if let Some(slot) = slot {
                    debug!(digest = %cfg.name, slot = %slot.to_rfc3339_opts(SECS, true), "nothing to send at this slot");
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
        // Ids in the store's content order (place, match id): matches queued together are
        // batched by what they are, not by which poll was stored first.
        let pending: Vec<PendingAlert<(usize, i64)>> = pending
            .into_iter()
            .enumerate()
            .map(|(place, (id, matched_at))| PendingAlert {
                id: (place, id),
                matched_at,
            })
            .collect();
        let plan = plan_alerts(&pending, sent, &set.policy, now);
        let send_now: Vec<i64> = plan.send_now.iter().map(|p| p.1).collect();
        let defer: Vec<i64> = plan.defer_to_digest.iter().map(|p| p.1).collect();
        if plan.send_now.is_empty() && plan.defer_to_digest.is_empty() {
            return Ok((0, plan.next_check));
        }
        match plan.limit {
            Some(AlertLimit::PerHour) => warn!(
                alert = %set.name,
                deferred = plan.defer_to_digest.len(),
                sent_last_hour = sent,
                max_per_hour = set.policy.max_per_hour,
                "alert limit max_per_hour reached; matches go to the next digest"
            ),
            Some(AlertLimit::PerEmail) => warn!(
                alert = %set.name,
                deferred = plan.defer_to_digest.len(),
                sent = plan.send_now.len(),
                max_items = set.policy.max_items,
                "alert limit max_items (matches per alert email) reached; the rest go to the next digest"
            ),
            None => {}
        }
        let titles = Arc::clone(&self.settings.rules);
        let from = self.config.delivery.from.clone();
        let cfg = set.clone();
        let outbox = self
            .db_work(move |s| {
                let mut tx = s.begin_compose()?;
                tx.defer_alerts(&cfg.name, &defer)?;
                let matches = tx.gather_alert(&cfg.name, &send_now)?;
                if matches.is_empty() {
                    tx.commit()?;
                    return Ok(None);
                }
                let id = tx.next_digest_id()?;
                let entries = digest::entries(&matches, &titles);
                let c = digest::compose_alert(id, &cfg, &from, &entries, now)?;
                if !cfg.channels.is_empty() {
                    let articles = entries
                        .iter()
                        .map(|e| e.article_id)
                        .collect::<std::collections::HashSet<_>>()
                        .len();
                    let payload = Payload::from_entries(
                        Event::Alert,
                        &cfg.name,
                        &c.subject,
                        &entries,
                        articles,
                        now,
                    );
                    tx.queue_channels(id, &cfg.name, &cfg.channels, &payload.to_json(), now)?;
                }
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
    /// time), so each notice reaches each digest's readers once; then every standing feed
    /// warning (a flood, guid churn), in every digest while it stands.
    async fn feed_notices(&self, name: &str, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        let name = name.to_string();
        self.db(move |s| {
            let since = s
                .last_digest_time(&name)?
                .unwrap_or(now - chrono::Duration::days(1));
            let notices = s.feed_notices(since)?.into_iter();
            let warnings = s.feed_warnings()?.into_iter();
            Ok(notices
                .map(|n| format!("{}: {} — {}", n.feed, n.kind.as_str(), n.detail))
                .chain(warnings.map(|(feed, w)| format!("{feed}: warning — {w}")))
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
        let titles = Arc::clone(&self.settings.rules);
        let (cfg2, titles2) = (cfg.clone(), Arc::clone(&titles));
        let (gathered, last) = self
            .db(move |s| {
                let last = s.last_digest_time(&cfg2.name)?;
                // Never committed: dropping the transaction changes nothing.
                let mut tx = s.begin_compose()?;
                Ok((gather_digest(&mut tx, &cfg2, &titles2, from, now)?, last))
            })
            .await?;
        let mut batch = digest::Batch::from_store(gathered, &titles);
        batch.since = from.or(last);
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
        self.drain_outbox(now, None, &mut summary).await?;
        Ok(summary)
    }

    /// Composes every digest asked for from outside (the console's "Send digest now"), as
    /// `send_digest_now` does but leaving delivery to the delivery stage; each request gets its
    /// outcome. Returns the emails composed.
    pub(super) async fn serve_requests(
        &self,
        requests: &crate::live::Requests,
        now: DateTime<Utc>,
    ) -> usize {
        let mut total = 0;
        for r in requests.take() {
            let outcome = match self.digest_config(&r.digest) {
                Ok(cfg) => self
                    .compose_forced_digest(cfg, now)
                    .await
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("{e:#}")),
            };
            match &outcome {
                Ok(n) => {
                    total += n;
                    tracing::info!(digest = %r.digest, emails = n, "digest composed on request");
                }
                Err(e) => {
                    tracing::warn!(digest = %r.digest, error = %e, "requested digest not composed");
                }
            }
            // The asker may have stopped waiting; the email is in the outbox all the same.
            let _ = r.reply.send(outcome);
        }
        total
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
}

/// Gathers what digest `cfg` would carry in `tx`: the matches it has not carried yet (or, with
/// `since`, every match recorded since then that no alert email carried: what a send over that
/// window would carry), grouped by rule title in the digest's rule order, with full rows for
/// the articles it can show (`digest::load_plan`).
fn gather_digest(
    tx: &mut ComposeTx<'_>,
    cfg: &DigestConfig,
    titles: &RuleBook,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DigestBatch, StoreError> {
    let rules: Vec<(String, String)> = tx
        .matched_rules()?
        .into_iter()
        .filter_map(|rule| digest_group(cfg, titles, &rule).map(|group| (rule, group)))
        .collect();
    let rules = digest::ordered_groups(titles, rules);
    let mut batch = match since {
        Some(t) => tx.gather_since(t, &rules)?,
        None => tx.gather_pending(&cfg.name, &rules)?,
    };
    batch.rows = tx.load_rows(&digest::load_plan(&batch.groups, cfg.max_items))?;
    batch.daily = tx.daily_counts(now, digest::TREND_DAYS)?;
    Ok(batch)
}

/// The group (section) of digest `cfg` that rule `rule_id`'s matches go into, `None` when the
/// digest does not carry that rule. A rule removed since it matched shows its id.
fn digest_group(cfg: &DigestConfig, titles: &RuleBook, rule_id: &str) -> Option<String> {
    cfg.rules
        .selects(rule_id)
        .then(|| digest::group_title(rule_id, titles.title(rule_id)))
}

/// Log fields show times to the second.
const SECS: chrono::SecondsFormat = chrono::SecondsFormat::Secs;
