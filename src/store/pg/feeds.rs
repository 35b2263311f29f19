//! The `feeds` table on PostgreSQL, kept in step with the config and read as `status` and the
//! scheduler read it: the same statements as SQLite's `feeds.rs`, with `$n` placeholders.
//! What a poll writes is `polls.rs`.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::Row;

use super::{Postgres, from_ts, ts, unsigned};
use crate::model::Validators;
use crate::policy::feed_health::{Health, NoticeKind};
use crate::store::{FeedNotice, FeedRecord, FeedState, StoreError};

const RECORD_COLUMNS: &str = "name, url, effective_url, title, etag, last_modified, last_success,
    last_error, error_count, failing_since, next_due, hint_ttl, last_new_item, health, items_seen,
    polls, warning";

fn read_record(r: &Row) -> FeedRecord {
    FeedRecord {
        name: r.get(0),
        url: r.get(1),
        effective_url: r.get(2),
        title: r.get(3),
        validators: Validators {
            etag: r.get(4),
            last_modified: r.get(5),
        },
        last_success: r.get::<_, Option<i64>>(6).map(from_ts),
        last_error: r.get(7),
        error_count: unsigned(r.get(8)),
        failing_since: r.get::<_, Option<i64>>(9).map(from_ts),
        next_due: r.get::<_, Option<i64>>(10).map(from_ts),
        hint_ttl: r
            .get::<_, Option<i64>>(11)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        last_new_item: r.get::<_, Option<i64>>(12).map(from_ts),
        health: Health::parse(r.get(13)),
        items_seen: unsigned(r.get(14)),
        polls: unsigned(r.get(15)),
        warning: r.get(16),
    }
}

impl Postgres {
    /// As SQLite's `ensure_feed_list`: one transaction; an edited URL forgets what redirects of
    /// the old one taught. One statement for the list (a name listed twice, which the config
    /// refuses, takes a statement per feed, in order, as the last one must win).
    pub(crate) fn ensure_feed_list(&mut self, feeds: &[(&str, &str)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.cached_transaction()?;
        let names: Vec<&str> = feeds.iter().map(|(name, _)| *name).collect();
        let distinct = names.iter().collect::<HashSet<_>>().len() == names.len();
        let batches: Vec<Vec<(&str, &str)>> = if distinct {
            vec![feeds.to_vec()]
        } else {
            feeds.iter().map(|f| vec![*f]).collect()
        };
        for batch in batches {
            let (names, urls): (Vec<&str>, Vec<&str>) = batch.into_iter().unzip();
            // A feed already stored with its URL is not touched: a start with an unchanged
            // config writes nothing (no row lock, no WAL, no commit to flush).
            tx.execute(
                "INSERT INTO feeds (name, url)
                 SELECT u.name, u.url FROM UNNEST($1::text[], $2::text[]) AS u(name, url)
                 WHERE NOT EXISTS (SELECT 1 FROM feeds f WHERE f.name = u.name AND f.url = u.url)
                 ON CONFLICT (name) DO UPDATE SET
                     effective_url = CASE WHEN feeds.url = excluded.url
                                          THEN feeds.effective_url END,
                     redirect_target = CASE WHEN feeds.url = excluded.url
                                            THEN feeds.redirect_target END,
                     url = excluded.url",
                &[&names, &urls],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn failing_feeds(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT name FROM feeds WHERE last_error IS NOT NULL ORDER BY name COLLATE \"C\"",
            &[],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) fn feed_state(&self, name: &str) -> Result<Option<FeedState>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT name, title, etag, last_modified, last_success, last_error, error_count,
                    next_due
             FROM feeds WHERE name = $1",
            &[&name],
        )?;
        Ok(row.map(|r| FeedState {
            name: r.get(0),
            title: r.get(1),
            validators: Validators {
                etag: r.get(2),
                last_modified: r.get(3),
            },
            last_success: r.get::<_, Option<i64>>(4).map(from_ts),
            last_error: r.get(5),
            error_count: unsigned(r.get(6)),
            next_due: r.get::<_, Option<i64>>(7).map(from_ts),
        }))
    }

    pub(crate) fn feed_record(&self, name: &str) -> Result<Option<FeedRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds WHERE name = $1");
        Ok(self
            .conn()?
            .query_opt(&sql, &[&name])?
            .as_ref()
            .map(read_record))
    }

    pub(crate) fn feed_records(&self) -> Result<Vec<FeedRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds ORDER BY name COLLATE \"C\"");
        Ok(self
            .conn()?
            .query(&sql, &[])?
            .iter()
            .map(read_record)
            .collect())
    }

    pub(crate) fn feed_notices(&self, since: DateTime<Utc>) -> Result<Vec<FeedNotice>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT id, feed, kind, at, detail FROM feed_notices WHERE at >= $1 ORDER BY at, id",
            &[&ts(since)],
        )?;
        Ok(rows
            .iter()
            .map(|r| FeedNotice {
                id: r.get(0),
                feed: r.get(1),
                kind: NoticeKind::parse(r.get(2)),
                at: from_ts(r.get(3)),
                detail: r.get(4),
            })
            .collect())
    }

    pub(crate) fn feed_warnings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT name, warning FROM feeds WHERE warning IS NOT NULL ORDER BY name COLLATE \"C\"",
            &[],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
