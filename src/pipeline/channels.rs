//! The delivery stage for `[[channel]]` messages: every due message tried once, its outcome
//! recorded with the email outbox's rules (back-off 1 min doubling to 6 h, or the service's
//! `Retry-After`; given up and kept after `deliver::MAX_ATTEMPTS`; a permanent refusal kept and
//! reported). A channel that deferred one message is not tried again in the same pass.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::channels::ChannelOutcome;
use crate::deliver;
use crate::pipeline::outbox::Claim;
use crate::pipeline::{Pipeline, Summary, Undelivered};

impl Pipeline<'_> {
    /// Sends every due channel message once, recording each outcome.
    pub(super) async fn drain_channels(
        &self,
        now: DateTime<Utc>,
        clock: Option<&(dyn Fn() -> DateTime<Utc> + Sync)>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        // Claimed at the time of the claim (see `drain_outbox`).
        let claim_at = clock.map_or(now, |c| c());
        let due = self.db(move |s| s.due_channel_messages(claim_at)).await?;
        let mut deferred: HashSet<String> = HashSet::new();
        for msg in due {
            let undelivered = |error: String| Undelivered {
                name: msg.source.clone(),
                message_id: format!("channel:{} {}", msg.channel, msg.key),
                error,
            };
            let Some(cfg) = self.channels.get(&msg.channel) else {
                // Kept queued: the channel may come back with the next reload.
                warn!(channel = %msg.channel, id = msg.id, "a queued message names a channel the configuration no longer has; kept");
                summary
                    .undelivered
                    .push(undelivered("its channel is no longer configured".into()));
                continue;
            };
            if deferred.contains(&msg.channel) {
                summary.undelivered.push(undelivered(
                    "not tried: the channel deferred an earlier message".into(),
                ));
                continue;
            }
            // As for email (`outbox.rs`): on PostgreSQL the claim is renewed just before the
            // send, and a node that no longer holds the message leaves it to its holder.
            let id = msg.id;
            let at = clock.map_or(now, |c| c());
            match self.db(move |s| s.holds_channel_message(id, at)).await {
                Ok(true) => {}
                Ok(false) => {
                    info!(channel = %msg.channel, key = %msg.key, "not sending: this node no longer holds the channel message");
                    continue;
                }
                Err(e) => {
                    warn!(channel = %msg.channel, key = %msg.key, error = format!("{e:#}"), "not sending: cannot renew this node's claim on the channel message");
                    continue;
                }
            }
            let outcome = self
                .while_holding(
                    Claim::Channel(id),
                    &format!("channel:{} {}", msg.channel, msg.key),
                    now,
                    clock,
                    self.channels.send(cfg, &msg, now),
                )
                .await;
            let attempts = msg.attempts + 1;
            match outcome {
                ChannelOutcome::Sent => {
                    info!(channel = %msg.channel, key = %msg.key, "channel message sent");
                    summary.channel_sent += 1;
                    self.metrics.channel_attempt(&msg.channel, "sent");
                    let at = clock.map_or(now, |c| c());
                    self.db(move |s| s.mark_channel_sent(id, at)).await?;
                }
                ChannelOutcome::Retry { error, after } if attempts < deliver::MAX_ATTEMPTS => {
                    let wait = after.unwrap_or_else(|| deliver::backoff(attempts));
                    let at =
                        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                    warn!(channel = %msg.channel, key = %msg.key, error = %error, attempts, retry_at = %at, "channel message deferred");
                    summary.channel_deferred += 1;
                    summary
                        .undelivered
                        .push(undelivered(format!("deferred until {at}: {error}")));
                    self.metrics.channel_attempt(&msg.channel, "retry");
                    deferred.insert(msg.channel.clone());
                    self.db(move |s| s.mark_channel_retry(id, &error, at))
                        .await?;
                }
                ChannelOutcome::Retry { error, .. } | ChannelOutcome::Failed(error) => {
                    error!(channel = %msg.channel, key = %msg.key, error = %error, attempts, "channel message failed; kept in the outbox");
                    summary.channel_failed += 1;
                    summary
                        .undelivered
                        .push(undelivered(format!("failed: {error}")));
                    self.metrics.channel_attempt(&msg.channel, "failed");
                    self.db(move |s| s.mark_channel_failed(id, &error)).await?;
                }
            }
        }
        let counts = self.db(|s| s.channel_counts()).await?;
        for c in &counts {
            self.metrics
                .set_channel_messages(&c.channel, c.counts.queued, c.counts.failed);
        }
        Ok(())
    }
}
