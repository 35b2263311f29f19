//! The `websub` table on PostgreSQL (issue 20 on issue 17's backend): SQLite's `websub.rs` with
//! `$n` placeholders — per feed the hub, the callback token and secret, the subscription's
//! state and lease, the pushes — and a pushed body's items stored through the same identity
//! rules as a poll's (`pg/items.rs`). Shared by every node: a callback may reach any of them,
//! and each finds the subscription by its token here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::Row;

use super::items::store_items;
use super::{Postgres, from_ts, ts, unsigned};
use crate::model::Article;
use crate::store::{Inserted, StoreError, SubState, Subscription};

const COLUMNS: &str = "feed, hub, topic, token, secret, state, requested_at, lease_until,
     next_attempt, attempts, last_error, last_push, pushes, bad_signatures";

fn subscription(r: &Row) -> Subscription {
    Subscription {
        feed: r.get(0),
        hub: r.get(1),
        topic: r.get(2),
        token: r.get(3),
        secret: r.get(4),
        state: SubState::parse(r.get(5)),
        requested_at: r.get::<_, Option<i64>>(6).map(from_ts),
        lease_until: r.get::<_, Option<i64>>(7).map(from_ts),
        next_attempt: r.get::<_, Option<i64>>(8).map(from_ts),
        attempts: u32::try_from(r.get::<_, i64>(9)).unwrap_or(u32::MAX),
        last_error: r.get(10),
        last_push: r.get::<_, Option<i64>>(11).map(from_ts),
        pushes: unsigned(r.get(12)),
        bad_signatures: unsigned(r.get(13)),
    }
}

impl Postgres {
    /// Every feed's WebSub row, by feed name.
    pub(crate) fn websub_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let rows = self.conn()?.query(
            &format!("SELECT {COLUMNS} FROM websub ORDER BY feed COLLATE \"C\""),
            &[],
        )?;
        Ok(rows.iter().map(subscription).collect())
    }

    /// The row whose callback token is `token`.
    pub(crate) fn websub_by_token(&self, token: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .conn()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM websub WHERE token = $1"),
                &[&token],
            )?
            .as_ref()
            .map(subscription))
    }

    /// As SQLite's: a new row takes `token` and `secret`; a known feed keeps its own and starts
    /// over only when the hub or the topic changed. Two nodes discovering one hub at once
    /// leave one row, with the first one's token (`ON CONFLICT`).
    pub(crate) fn record_hub(
        &mut self,
        feed: &str,
        hub: &str,
        topic: &str,
        token: &str,
        secret: &str,
    ) -> Result<bool, StoreError> {
        let changed = self.conn()?.execute(
            "INSERT INTO websub (feed, hub, topic, token, secret) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (feed) DO UPDATE SET hub = excluded.hub, topic = excluded.topic,
                 state = 'new', next_attempt = NULL, attempts = 0, last_error = NULL
             WHERE websub.hub != excluded.hub OR websub.topic != excluded.topic",
            &[&feed, &hub, &topic, &token, &secret],
        )?;
        Ok(changed > 0)
    }

    /// As SQLite's: recorded only if the row is as `seen` read it, whether it was. Of two
    /// nodes that read the same row, the second's update finds it changed (the first's
    /// committed, or waited for under its row lock) and that node does not ask the hub.
    pub(crate) fn websub_requested(
        &mut self,
        seen: &Subscription,
        state: SubState,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self.conn()?.execute(
            "UPDATE websub SET state = $2, requested_at = $3, attempts = attempts + 1
             WHERE feed = $1 AND state = $4 AND requested_at IS NOT DISTINCT FROM $5",
            &[
                &seen.feed,
                &state.as_str(),
                &ts(now),
                &seen.state.as_str(),
                &seen.requested_at.map(ts),
            ],
        )?;
        Ok(changed > 0)
    }

    pub(crate) fn websub_failed(
        &mut self,
        feed: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE websub SET state = 'failed', last_error = $2, next_attempt = $3,
                    lease_until = NULL
             WHERE feed = $1",
            &[&feed, &error, &ts(next_attempt)],
        )?;
        Ok(())
    }

    pub(crate) fn websub_verified(
        &mut self,
        feed: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let until = ts(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.conn()?.execute(
            "UPDATE websub SET state = 'active', lease_until = $2, requested_at = $3,
                    attempts = 0, last_error = NULL, next_attempt = NULL
             WHERE feed = $1",
            &[&feed, &until, &ts(now)],
        )?;
        Ok(())
    }

    pub(crate) fn websub_forget(&mut self, feed: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM websub WHERE feed = $1", &[&feed])?;
        Ok(())
    }

    pub(crate) fn websub_bad_signature(&mut self, feed: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE websub SET bad_signatures = bad_signatures + 1 WHERE feed = $1",
            &[&feed],
        )?;
        Ok(())
    }

    /// As SQLite's: the items as a poll stores them, the push counted, one transaction; the
    /// feed's schedule, validators, health and lease are a poll's and are left alone.
    pub(crate) fn record_push(
        &mut self,
        feed: &str,
        articles: &[Article],
        now: DateTime<Utc>,
        new_feed_window: Duration,
    ) -> Result<Inserted, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.cached_transaction()?;
        // Re-derivable as a poll batch is (the hub retries an unacknowledged push, and the
        // feed is polled too); the outbox's commits flush it with theirs.
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let (first_poll, full_text): (bool, i64) = tx
            .query_opt(
                "SELECT last_success IS NULL OR catching_up = 1, full_text
                 FROM feeds WHERE name = $1",
                &[&feed],
            )?
            .map_or((true, 0), |r| (r.get(0), r.get(1)));
        let window = chrono::Duration::from_std(new_feed_window).unwrap_or(chrono::Duration::MAX);
        let cutoff = now.checked_sub_signed(window);
        let items = store_items(&mut tx, feed, articles, now, first_poll, cutoff, full_text)?;
        let new = i64::try_from(items.inserted.new).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE feeds SET items_seen = items_seen + $2,
                    last_new_item = CASE WHEN $2 > 0 THEN $3 ELSE last_new_item END
             WHERE name = $1",
            &[&feed, &new, &ts(now)],
        )?;
        tx.execute(
            "UPDATE websub SET last_push = $2, pushes = pushes + 1 WHERE feed = $1",
            &[&feed, &ts(now)],
        )?;
        tx.commit()?;
        Ok(items.inserted)
    }
}
