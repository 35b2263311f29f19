//! The delivery stage: every due outbox message handed to the transport once, its outcome
//! recorded (sent, retry later with back-off, failed for good). Nothing leaves the outbox unsent.
//! Then the channel messages (`channels.rs`). With several nodes, a send holds its claim on the
//! message for as long as it lasts (`while_holding`).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::deliver::{self, SendOutcome};
use crate::pipeline::{Pipeline, Summary, Undelivered};

impl Pipeline<'_> {
    /// Sends every due outbox message once, recording each outcome.
    /// `clock` (when given) stamps each acceptance; otherwise the pass's `now` does.
    pub(super) async fn drain_outbox(
        &self,
        now: DateTime<Utc>,
        clock: Option<&(dyn Fn() -> DateTime<Utc> + Sync)>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        // Claimed at the time of the claim, not of the pass: after a long pass (a cold
        // `run --once`), a claim measured from its start would have run out before the send.
        let claim_at = clock.map_or(now, |c| c());
        let due = self.db(move |s| s.due_messages(claim_at)).await?;
        let mut due = due.into_iter();
        let undelivered = |msg: &crate::model::OutboxMessage, error: String| Undelivered {
            name: msg.digest_name.clone(),
            message_id: msg.message_id.clone(),
            error,
        };
        while let Some(msg) = due.next() {
            if msg.recipients.is_empty() {
                // A set whose `to` names only channels: its email has nobody to go to (its
                // row still carries the composition, and the alert's latency mark).
                let id = msg.id;
                let at = clock.map_or(now, |c| c());
                self.db(move |s| s.mark_sent(id, at)).await?;
                continue;
            }
            // With several nodes, only while this node still holds the message (its claim
            // renewed just now): a node whose claim ran out or whose connection was cut sends
            // nothing another node may be sending. An error counts as no. Always yes on SQLite
            // while the message is queued.
            let id = msg.id;
            let at = clock.map_or(now, |c| c());
            match self.db(move |s| s.holds_message(id, at)).await {
                Ok(true) => {}
                Ok(false) => {
                    info!(message_id = %msg.message_id, "not sending: this node no longer holds the message");
                    continue;
                }
                Err(e) => {
                    warn!(message_id = %msg.message_id, error = format!("{e:#}"), "not sending: cannot renew this node's claim on the message");
                    continue;
                }
            }
            let deliver::Attempt { outcome, quit } = self
                .while_holding(
                    Claim::Email(id),
                    &msg.message_id,
                    now,
                    clock,
                    self.deliverer.send(&msg),
                )
                .await;
            let attempts = msg.attempts + 1;
            match outcome {
                SendOutcome::Sent => {
                    info!(message_id = %msg.message_id, to = %self.deliverer.describe(), "email sent");
                    summary.emails_sent += 1;
                    self.metrics.email_sent();
                    // The time of the acceptance, not of the pass: latencies count to the 250.
                    let accepted = clock.map_or(now, |c| c());
                    let latencies = self.db(move |s| s.mark_sent(id, accepted)).await?;
                    for l in &latencies {
                        self.metrics.observe_alert(l);
                    }
                    // Only now the courtesy QUIT: a kill while the server sits on it must not
                    // find an accepted message unmarked (issue 16).
                    quit.send().await;
                }
                SendOutcome::Retry(err) if attempts < deliver::MAX_ATTEMPTS => {
                    let at = now
                        + chrono::Duration::from_std(deliver::backoff(attempts))
                            .unwrap_or(chrono::Duration::MAX);
                    warn!(message_id = %msg.message_id, error = %err, attempts, retry_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "delivery deferred");
                    summary.emails_deferred += 1;
                    summary
                        .undelivered
                        .push(undelivered(&msg, format!("deferred until {at}: {err}")));
                    for rest in due.by_ref() {
                        summary.undelivered.push(undelivered(
                            &rest,
                            "not tried: the transport deferred an earlier message".into(),
                        ));
                    }
                    self.metrics.email_failed();
                    self.db(move |s| s.mark_retry(id, &err, at)).await?;
                    // A transient failure (down, 421, timeout) is the server's, not this
                    // message's: the rest wait for the next cycle instead of each waiting out
                    // the SMTP deadline while no feed is polled.
                    break;
                }
                SendOutcome::Retry(err) | SendOutcome::Failed(err) => {
                    error!(message_id = %msg.message_id, error = %err, attempts, "delivery failed; message kept in the outbox");
                    summary.emails_failed += 1;
                    summary
                        .undelivered
                        .push(undelivered(&msg, format!("failed: {err}")));
                    self.metrics.email_failed();
                    self.db(move |s| s.mark_failed(id, &err)).await?;
                }
            }
        }
        self.drain_channels(now, clock, summary).await
    }
}

/// A message this node claimed in one of the shared outboxes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Claim {
    /// A row of `outbox` (`holds_message`).
    Email(i64),
    /// A row of `channel_outbox` (`holds_channel_message`).
    Channel(i64),
}

/// A floor on the time between two renewals of a claim during a send (a third of the shortest
/// lease allowed, 5 s, is above it).
const RENEW_MIN: Duration = Duration::from_secs(1);

impl Pipeline<'_> {
    /// Runs `send` while renewing this node's claim on the message every third of `lease`
    /// until it ends (PostgreSQL only; on SQLite the one node holds everything), so a send that
    /// outlasts the lease (an SMTP server holding DATA, a slow service) is not claimed and sent
    /// by another node meanwhile. A renewal that fails (the database away) is tried again a
    /// third later; a claim found lost (this node was stalled past it) is said clearly, since
    /// another node may send the message too, under the same id. The send goes on either way:
    /// it may already have been accepted.
    pub(super) async fn while_holding<T>(
        &self,
        claim: Claim,
        what: &str,
        now: DateTime<Utc>,
        clock: Option<&(dyn Fn() -> DateTime<Utc> + Sync)>,
        send: impl Future<Output = T>,
    ) -> T {
        let Some(pg) = &self.config.store else {
            return send.await;
        };
        let every = (pg.lease / 3).max(RENEW_MIN);
        let started = std::time::Instant::now();
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                // Without a clock (`digest send`, a pass on a fixed `now`) the pass's time plus
                // what the send has taken so far: renewing at `now` would not move the claim.
                let at = clock.map_or_else(
                    || {
                        now + chrono::Duration::from_std(started.elapsed())
                            .unwrap_or(chrono::Duration::zero())
                    },
                    |c| c(),
                );
                let renewed = match claim {
                    Claim::Email(id) => self.db(move |s| s.holds_message(id, at)).await,
                    Claim::Channel(id) => self.db(move |s| s.holds_channel_message(id, at)).await,
                };
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        error!(message_id = %what, "this node lost its claim on the message while sending it (it was stalled past the claim, or the message was taken over): another node may send it too");
                        return;
                    }
                    Err(e) => {
                        warn!(message_id = %what, error = format!("{e:#}"), "cannot renew this node's claim on the message during its send; trying again");
                    }
                }
            }
        };
        tokio::pin!(send, renew);
        let mut renewing = true;
        loop {
            tokio::select! {
                out = &mut send => return out,
                () = &mut renew, if renewing => renewing = false,
            }
        }
    }
}
