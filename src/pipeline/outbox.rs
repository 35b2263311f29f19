//! The delivery stage: every due outbox message handed to the transport once, its outcome
//! recorded (sent, retry later with back-off, failed for good). Nothing leaves the outbox unsent.
//! Then the channel messages (`channels.rs`).

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
            let deliver::Attempt { outcome, quit } = self.deliverer.send(&msg).await;
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
