//! The `websub` table (issue 20): per feed, the hub its document named, the subscription's
//! callback token, secret and state, its lease, and the pushes it brought; and a pushed body's
//! items, stored through the same identity rules as a poll's (`items::store_items`), so an item
//! pushed and later polled (or the reverse) is one article and alerts once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::items::{SqliteItems, store_items};
use super::{Inserted, Sqlite, StoreError, from_ts, ts};
use crate::model::Article;

/// Where a feed's subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// A hub is known; no subscription asked for yet (or the hub changed).
    New,
    /// Subscription asked; the hub's verification of intent has not come yet.
    Subscribing,
    /// Verified; pushes are expected until `lease_until`.
    Active,
    /// Unsubscription asked (the feed left the config or opted out).
    Unsubscribing,
    /// The hub refused, failed or denied; asked again at `next_attempt`. The feed is polled.
    Failed,
}

impl SubState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SubState::New => "new",
            SubState::Subscribing => "subscribing",
            SubState::Active => "active",
            SubState::Unsubscribing => "unsubscribing",
            SubState::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> SubState {
        match s {
            "subscribing" => SubState::Subscribing,
            "active" => SubState::Active,
            "unsubscribing" => SubState::Unsubscribing,
            "failed" => SubState::Failed,
            _ => SubState::New,
        }
    }
}

impl std::fmt::Display for SubState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One feed's WebSub row.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    pub feed: String,
    pub hub: String,
    pub topic: String,
    /// The callback URL's last segment: random, so callbacks cannot be guessed.
    pub token: String,
    /// `hub.secret`: the HMAC key of the hub's `X-Hub-Signature`.
    pub secret: String,
    pub state: SubState,
    pub requested_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub next_attempt: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_push: Option<DateTime<Utc>>,
    pub pushes: u64,
    pub bad_signatures: u64,
}

/// The secret never reaches a log line or `Debug` output.
impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("feed", &self.feed)
            .field("hub", &self.hub)
            .field("topic", &self.topic)
            .field("state", &self.state)
            .field("lease_until", &self.lease_until)
            .field("secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Whether the hub is pushing this feed at `now`: verified, and its lease not over (a
    /// renewal waiting for verification keeps the lease it renews).
    pub fn pushing(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state, SubState::Active | SubState::Subscribing)
            && self.lease_until.is_some_and(|l| l > now)
    }
}

const COLUMNS: &str = "feed, hub, topic, token, secret, state, requested_at, lease_until,
     next_attempt, attempts, last_error, last_push, pushes, bad_signatures";

fn subscription(r: &Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        feed: r.get(0)?,
        hub: r.get(1)?,
        topic: r.get(2)?,
        token: r.get(3)?,
        secret: r.get(4)?,
        state: SubState::parse(&r.get::<_, String>(5)?),
        requested_at: r.get::<_, Option<i64>>(6)?.map(from_ts),
        lease_until: r.get::<_, Option<i64>>(7)?.map(from_ts),
        next_attempt: r.get::<_, Option<i64>>(8)?.map(from_ts),
        attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
        last_error: r.get(10)?,
        last_push: r.get::<_, Option<i64>>(11)?.map(from_ts),
        pushes: u64::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
        bad_signatures: u64::try_from(r.get::<_, i64>(13)?).unwrap_or(0),
    })
}

impl Sqlite {
    /// Every feed's WebSub row, by feed name. Empty on a database older than the table (a
    /// read-only caller never migrates).
    pub fn websub_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        if self.schema_version()? < super::schema::websub_version() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM websub ORDER BY feed"))?;
        let rows = stmt.query_map([], subscription)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The row whose callback token is `token`.
    pub fn websub_by_token(&self, token: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM websub WHERE token = ?1"))?
            .query_row([token], subscription)
            .optional()?)
    }

    /// Records the hub and topic a poll of `feed` discovered. A new row takes `token` and
    /// `secret`; a known feed keeps its own, and starts over (`new`) only when the hub or the
    /// topic changed. Whether anything changed.
    pub fn record_hub(
        &mut self,
        feed: &str,
        hub: &str,
        topic: &str,
        token: &str,
        secret: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "INSERT INTO websub (feed, hub, topic, token, secret) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (feed) DO UPDATE SET hub = excluded.hub, topic = excluded.topic,
                 state = 'new', next_attempt = NULL, attempts = 0, last_error = NULL
             WHERE websub.hub != excluded.hub OR websub.topic != excluded.topic",
            )?
            .execute(params![feed, hub, topic, token, secret])?;
        Ok(changed > 0)
    }

    /// A subscription (or unsubscription) request is about to go to the hub: recorded only if
    /// the row is still as `seen` read it (its state and request time), and whether it was —
    /// the caller asks the hub only then. On a shared store, of two nodes that read the same
    /// row, one asks.
    pub fn websub_requested(
        &mut self,
        seen: &Subscription,
        state: SubState,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE websub SET state = ?2, requested_at = ?3, attempts = attempts + 1
                 WHERE feed = ?1 AND state = ?4 AND requested_at IS ?5",
            )?
            .execute(params![
                seen.feed,
                state.as_str(),
                ts(now),
                seen.state.as_str(),
                seen.requested_at.map(ts),
            ])?;
        Ok(changed > 0)
    }

    /// The hub refused or could not be reached, or denied the subscription: asked again at
    /// `next_attempt`; until then the feed is polled at its own interval.
    pub fn websub_failed(
        &mut self,
        feed: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE websub SET state = 'failed', last_error = ?2, next_attempt = ?3,
                        lease_until = NULL
                 WHERE feed = ?1",
            )?
            .execute(params![feed, error, ts(next_attempt)])?;
        Ok(())
    }

    /// The hub verified the subscription with a lease of `lease` (from `now`, which becomes the
    /// time the lease was granted: `requested_at`).
    pub fn websub_verified(
        &mut self,
        feed: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let until = ts(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.conn
            .prepare_cached(
                "UPDATE websub SET state = 'active', lease_until = ?2, requested_at = ?3,
                        attempts = 0, last_error = NULL, next_attempt = NULL
                 WHERE feed = ?1",
            )?
            .execute(params![feed, until, ts(now)])?;
        Ok(())
    }

    /// The hub verified an unsubscription: the row goes (a later hub starts afresh).
    pub fn websub_forget(&mut self, feed: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM websub WHERE feed = ?1")?
            .execute([feed])?;
        Ok(())
    }

    /// A push whose signature did not verify: counted, its body dropped.
    pub fn websub_bad_signature(&mut self, feed: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE websub SET bad_signatures = bad_signatures + 1 WHERE feed = ?1",
            )?
            .execute([feed])?;
        Ok(())
    }

    /// Stores a pushed body's items as a poll would (same identities, the same new-feed window
    /// on a feed never polled), in one transaction with the push's count. The feed's schedule,
    /// validators and health are a poll's and are left alone.
    pub fn record_push(
        &mut self,
        feed: &str,
        articles: &[Article],
        now: DateTime<Utc>,
        new_feed_window: Duration,
    ) -> Result<Inserted, StoreError> {
        self.relaxed(|conn| {
            let tx = conn.transaction()?;
            let first_poll: bool = tx
                .prepare_cached(
                    "SELECT last_success IS NULL OR catching_up = 1 FROM feeds WHERE name = ?1",
                )?
                .query_row([feed], |r| r.get(0))
                .optional()?
                .unwrap_or(true);
            let window =
                chrono::Duration::from_std(new_feed_window).unwrap_or(chrono::Duration::MAX);
            let cutoff = now.checked_sub_signed(window);
            let items = store_items(
                &mut SqliteItems::new(&tx, feed),
                feed,
                articles,
                now,
                first_poll,
                cutoff,
            )?;
            let new = items.inserted.new as i64;
            tx.prepare_cached(
                "UPDATE feeds SET items_seen = items_seen + ?2,
                        last_new_item = CASE WHEN ?2 > 0 THEN ?3 ELSE last_new_item END
                 WHERE name = ?1",
            )?
            .execute(params![feed, new, ts(now)])?;
            tx.prepare_cached(
                "UPDATE websub SET last_push = ?2, pushes = pushes + 1 WHERE feed = ?1",
            )?
            .execute(params![feed, ts(now)])?;
            tx.commit()?;
            Ok(items.inserted)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SubState;
    use crate::model::{Article, Validators};
    use crate::store::testing::{feed, fetched, on_both_backends, t};

    fn art(key: &str) -> Article {
        Article {
            key: format!("id:{key}"),
            link: Some(format!("https://e.example/{key}")),
            title: format!("Story {key}"),
            published: Some(t("2026-03-01T11:00:00Z")),
            ..Article::default()
        }
    }

    on_both_backends! {
        fn a_hub_is_recorded_once_and_a_new_hub_starts_over(s) {
            feed(s, "f", "https://e.example/feed");
            assert!(
                s.record_hub(
                    "f",
                    "https://hub.example/",
                    "https://e.example/feed",
                    "tok1",
                    "sec1"
                )
                .expect("hub")
            );
            s.websub_verified("f", Duration::from_secs(3600), t("2026-03-01T12:00:00Z"))
                .expect("verified");
            // The same hub again: nothing changes, the token and secret stay.
            assert!(
                !s.record_hub(
                    "f",
                    "https://hub.example/",
                    "https://e.example/feed",
                    "tok2",
                    "sec2"
                )
                .expect("hub")
            );
            let sub = s.websub_by_token("tok1").expect("read").expect("row");
            assert_eq!((sub.state, sub.secret.as_str()), (SubState::Active, "sec1"));
            assert!(sub.pushing(t("2026-03-01T12:59:59Z")));
            assert!(!sub.pushing(t("2026-03-01T13:00:00Z")));
            assert!(!format!("{sub:?}").contains("sec1"));
            // Another hub: subscribed again from the start, same callback.
            assert!(
                s.record_hub(
                    "f",
                    "https://hub2.example/",
                    "https://e.example/feed",
                    "tok3",
                    "sec3"
                )
                .expect("hub")
            );
            let sub = s.websub_by_token("tok1").expect("read").expect("row");
            assert_eq!(
                (sub.state, sub.hub.as_str()),
                (SubState::New, "https://hub2.example/")
            );
            assert!(s.websub_by_token("tok3").expect("read").is_none());
        }

        /// A request is recorded once per reading of the row: a second caller holding the
        /// same (now stale) row is told no, so it does not ask the hub too.
        fn of_two_that_read_the_same_row_one_asks_the_hub(s) {
            feed(s, "f", "https://e.example/feed");
            s.record_hub("f", "https://hub.example/", "https://e.example/feed", "tok", "sec")
                .expect("hub");
            let seen = s.websub_by_token("tok").expect("read").expect("row");
            let now = t("2026-03-01T12:00:00Z");
            assert!(s.websub_requested(&seen, SubState::Subscribing, now).expect("first"));
            assert!(!s.websub_requested(&seen, SubState::Subscribing, now).expect("stale"));
            s.websub_verified("f", Duration::from_secs(3600), now).expect("verified");
            // A renewal, read afresh, is recorded; the stale reading of it is not.
            let active = s.websub_by_token("tok").expect("read").expect("row");
            let later = t("2026-03-01T12:50:00Z");
            assert!(s.websub_requested(&active, SubState::Subscribing, later).expect("renew"));
            assert!(!s.websub_requested(&active, SubState::Subscribing, later).expect("stale"));
            let sub = s.websub_by_token("tok").expect("read").expect("row");
            assert_eq!(
                (sub.state, sub.requested_at, sub.attempts),
                (SubState::Subscribing, Some(later), 1)
            );
        }

        fn a_pushed_item_polled_later_is_one_article(s) {
            feed(s, "f", "https://e.example/feed");
            let now = t("2026-03-01T12:00:00Z");
            let window = Duration::from_secs(48 * 3600);
            let v = Validators::default();
            s.record_poll("f", &fetched(None, &v, &[art("a")], now, window))
                .expect("poll");
            s.record_hub(
                "f",
                "https://hub.example/",
                "https://e.example/feed",
                "tok",
                "sec",
            )
            .expect("hub");
            let pushed = s
                .record_push("f", &[art("a"), art("b")], now, window)
                .expect("push");
            assert_eq!((pushed.new, pushed.alertable), (1, 1));
            let later = t("2026-03-01T12:10:00Z");
            let polled = s
                .record_poll(
                    "f",
                    &fetched(None, &v, &[art("a"), art("b")], later, window),
                )
                .expect("poll");
            assert_eq!(polled.inserted.new, 0);
            let sub = s.websub_by_token("tok").expect("read").expect("row");
            assert_eq!((sub.pushes, sub.last_push), (1, Some(now)));
            s.websub_bad_signature("f").expect("count");
            assert_eq!(s.websub_subscriptions().expect("all")[0].bad_signatures, 1);
            s.websub_forget("f").expect("forget");
            assert!(s.websub_subscriptions().expect("all").is_empty());
        }
    }
}
