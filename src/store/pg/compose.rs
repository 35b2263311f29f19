//! A composition on PostgreSQL (`ComposeTx`'s second backend): one pooled connection held from
//! begin to commit, inside one transaction that first takes a cluster-wide advisory lock, so
//! nodes compose one at a time and each begins after the previous one committed (under READ
//! COMMITTED every later statement sees that commit: the slot it served, the matches it
//! assigned, the alerts it sent). The gather fills temp tables (each connection's own, emptied
//! by a commit or a rollback) with SQLite's statements (`digests.rs`) in PostgreSQL's spelling.
//! Dropping the handle uncommitted rolls back, which also releases the lock.

use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use postgres::types::ToSql;

use super::{Conn, Postgres, from_ts, ts};
use crate::model::{DigestBatch, NewMessage, PendingMatch};
use crate::store::digests::{self, Composition};
use crate::store::matches::{PENDING_FOR_DIGEST, RECORDED_SINCE};
use crate::store::{ComposeTx, SpikeAlert, StoreError};

/// The advisory lock every composition holds ("nwcompos" as a number): one composer at a time
/// in the whole cluster. Compositions are short (gather, render, commit), so the wait is too.
const COMPOSE_LOCK: i64 = 0x6e77_636f_6d70_6f73;

/// The SQLite spelling of a digest statement in PostgreSQL's: `$n` placeholders, temp tables
/// in `pg_temp`, `INSERT OR IGNORE` as `ON CONFLICT DO NOTHING`.
fn spelled(sql: &str) -> String {
    sql.replace("temp.", "pg_temp.")
        .replace("?1", "$1")
        .replace("?2", "$2")
}

/// SQLite's `digests::FIRST_SQL`, one row per article. Grouped first, then each article read by
/// its key: a join of the temp table (which has no statistics) to `articles` was planned as a
/// hash join over every article, 17 ms for 150 picks on the benchmark's 10,000 (0.6 ms this
/// way), and a scan of the whole table for every composition on a large store.
const FIRST_SQL: &str = "
    INSERT INTO pg_temp.digest_first (article, grp, at)
    SELECT g.article, g.grp, COALESCE(a.published, a.first_seen)
    FROM (SELECT article, MIN(grp) AS grp FROM pg_temp.digest_pick GROUP BY article) AS g
    JOIN LATERAL (SELECT published, first_seen FROM articles WHERE id = g.article) AS a ON true";

/// The temp tables a gather fills, each connection's own.
const TEMP_TABLES: &str = "
    CREATE TEMP TABLE IF NOT EXISTS digest_rules (
        rule_id TEXT PRIMARY KEY,
        grp     BIGINT NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS digest_pick (
        match_id BIGINT PRIMARY KEY,
        article  BIGINT NOT NULL,
        grp      BIGINT NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS digest_first (
        article BIGINT PRIMARY KEY,
        grp     BIGINT NOT NULL,
        at      BIGINT NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE INDEX IF NOT EXISTS digest_pick_article ON pg_temp.digest_pick (article);
    CREATE INDEX IF NOT EXISTS digest_first_grp ON pg_temp.digest_first (grp, at DESC, article DESC);";

/// An open composition on PostgreSQL.
pub(crate) struct PgCompose {
    /// In a cell: `postgres` reads through `&mut`, and the handle's reads take `&self` (as on
    /// SQLite). Never borrowed across a call: each method borrows it for its statements.
    conn: RefCell<Conn>,
    /// Until commit: dropping an open composition rolls it back.
    open: bool,
    /// As SQLite's: the temp-table group number of each group the last gather returned.
    picked: Vec<i64>,
    /// Matches the last digest gather selected.
    selected: usize,
}

impl std::fmt::Debug for PgCompose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCompose")
            .field("open", &self.open)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl Drop for PgCompose {
    fn drop(&mut self) {
        if self.open {
            // On a connection the server cut there is nothing to roll back; the pool drops it.
            let _ = self.conn.get_mut().batch_execute("ROLLBACK");
        }
    }
}

impl Postgres {
    /// Opens a composition: a transaction on a connection of its own, holding the compose lock.
    pub(crate) fn begin_compose(&mut self) -> Result<ComposeTx<'static>, StoreError> {
        let mut conn = self.conn()?;
        // The gather's temp tables, kept by the pooled connection (`ON COMMIT DELETE ROWS`):
        // made once per connection, not per composition, and outside it, so that their first
        // creation's catalog writes do not make a composition that queues nothing wait for a
        // WAL flush (14 ms on the loaded bench machine). A composition that queues an email
        // waits for its own.
        conn.relaxed(|tx| tx.batch_execute(TEMP_TABLES))?;
        conn.batch_execute("BEGIN")?;
        // From here on, dropping `pg` rolls back (an error below included).
        let mut pg = PgCompose {
            conn: RefCell::new(conn),
            open: true,
            picked: Vec::new(),
            selected: 0,
        };
        pg.conn
            .get_mut()
            .execute("SELECT pg_advisory_xact_lock($1)", &[&COMPOSE_LOCK])?;
        Ok(ComposeTx::postgres(pg))
    }
}

impl PgCompose {
    fn c(&self) -> std::cell::RefMut<'_, Conn> {
        self.conn.borrow_mut()
    }

    pub(crate) fn next_digest_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .c()
            .query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM digests", &[])?
            .get(0))
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.conn.get_mut().batch_execute("COMMIT")?;
        self.open = false;
        Ok(())
    }

    pub(crate) fn matched_rules(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .c()
            .query(digests::RULES_SQL, &[])?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(crate) fn gather_pending(
        &mut self,
        name: &str,
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        self.gather(PENDING_FOR_DIGEST, &name, rules)
    }

    pub(crate) fn gather_since(
        &mut self,
        since: DateTime<Utc>,
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        self.gather(RECORDED_SINCE, &ts(since), rules)
    }

    /// SQLite's `digests::gather` on this transaction.
    fn gather(
        &mut self,
        cond: &str,
        arg: &(dyn ToSql + Sync),
        rules: &[(String, String)],
    ) -> Result<DigestBatch, StoreError> {
        let conn = self.conn.get_mut();
        // Created by `begin_compose`; emptied by each commit or rollback, and here too, for a
        // second gather in one composition.
        conn.batch_execute(
            "DELETE FROM pg_temp.digest_rules;
             DELETE FROM pg_temp.digest_pick;
             DELETE FROM pg_temp.digest_first;",
        )?;
        let (numbered, keys) = digests::group_numbers(rules);
        let (ids, grps): (Vec<&str>, Vec<i64>) = numbered.into_iter().unzip();
        conn.execute(
            "INSERT INTO pg_temp.digest_rules (rule_id, grp)
             SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[])",
            &[&ids, &grps],
        )?;
        let matches = conn.execute(&spelled(&digests::pick_sql(&spelled(cond))), &[arg])?;
        conn.execute(FIRST_SQL, &[])?;
        let counts = conn
            .query(
                "SELECT grp, COUNT(*) FROM pg_temp.digest_first GROUP BY grp",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let articles: i64 = conn
            .query_one("SELECT COUNT(*) FROM pg_temp.digest_first", &[])?
            .get(0);
        let matches = usize::try_from(matches).unwrap_or(usize::MAX);
        let (batch, picked) = digests::batch_of(keys, counts, articles, matches);
        self.picked = picked;
        self.selected = batch.matches;
        Ok(batch)
    }

    pub(crate) fn daily_counts(
        &self,
        now: DateTime<Utc>,
        days: usize,
    ) -> Result<Vec<Vec<usize>>, StoreError> {
        if self.picked.is_empty() {
            // As on SQLite: no group gathered, no trend to count.
            return Ok(Vec::new());
        }
        let span = i64::try_from(days + 1)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400);
        let counts = self
            .c()
            .query(&spelled(digests::DAILY_SQL), &[&ts(now), &span])?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(digests::place_daily(&self.picked, days, counts))
    }

    pub(crate) fn load_rows(&self, plan: &[usize]) -> Result<Vec<PendingMatch>, StoreError> {
        let mut conn = self.c();
        let stmt = conn.prepare(&spelled(digests::ROWS_SQL))?;
        let mut rows = Vec::new();
        for (grp, n) in self.picked.iter().zip(plan) {
            if *n == 0 {
                continue;
            }
            let limit = i64::try_from(*n).unwrap_or(i64::MAX);
            for r in conn.query(&stmt, &[grp, &limit])? {
                rows.push(pending_match(&r)?);
            }
        }
        Ok(rows)
    }

    pub(crate) fn last_slot(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .c()
            .query_opt(
                "SELECT last_slot FROM digest_slots WHERE name = $1",
                &[&name],
            )?
            .map(|r| from_ts(r.get(0))))
    }

    pub(crate) fn commit_digest(
        mut self,
        name: &str,
        id: i64,
        now: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
        message: Option<&NewMessage>,
    ) -> Result<Option<Composition>, StoreError> {
        let conn = self.conn.get_mut();
        if let Some(slot) = slot {
            conn.execute(
                "INSERT INTO digest_slots (name, last_slot) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot",
                &[&name, &ts(slot)],
            )?;
        }
        let Some(message) = message else {
            self.commit()?;
            return Ok(None);
        };
        conn.execute(
            "INSERT INTO digests (id, created, name, kind, slot) VALUES ($1, $2, $3, 'digest', $4)",
            &[&id, &ts(now), &name, &slot.map(ts)],
        )?;
        let outbox = insert_outbox(conn, id, "digest", &message.digest_name, message, now)?;
        conn.execute(
            "INSERT INTO digest_items (digest_name, match_id, digest)
             SELECT $1, match_id, $2 FROM pg_temp.digest_pick
             ON CONFLICT DO NOTHING",
            &[&name, &id],
        )?;
        let matches = self.selected;
        self.commit()?;
        Ok(Some(Composition {
            digest: id,
            outbox,
            matches,
        }))
    }

    pub(crate) fn defer_alerts(&mut self, set: &str, ids: &[i64]) -> Result<(), StoreError> {
        self.conn.get_mut().execute(
            "UPDATE alert_items SET status = 'deferred'
             WHERE alert_set = $1 AND match_id = ANY($2) AND status = 'pending'",
            &[&set, &ids],
        )?;
        Ok(())
    }

    pub(crate) fn gather_alert(
        &mut self,
        set: &str,
        ids: &[i64],
    ) -> Result<Vec<PendingMatch>, StoreError> {
        let rows = self.conn.get_mut().query(
            &format!(
                "SELECT {MATCH_COLUMNS} FROM matches m JOIN articles a ON a.id = m.article
                 JOIN feeds f ON f.name = a.feed
                 WHERE m.id = ANY($2) AND EXISTS (SELECT 1 FROM alert_items ai
                     WHERE ai.alert_set = $1 AND ai.match_id = m.id AND ai.status = 'pending')
                 ORDER BY m.id"
            ),
            &[&set, &ids],
        )?;
        // In the order of `ids`, as SQLite's (one id at a time).
        let mut by_id: std::collections::HashMap<i64, PendingMatch> = rows
            .iter()
            .map(|r| pending_match(r).map(|m| (m.id, m)))
            .collect::<Result<_, _>>()?;
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    pub(crate) fn commit_alert(
        mut self,
        set: &str,
        id: i64,
        now: DateTime<Utc>,
        message: &NewMessage,
        matches: &[i64],
    ) -> Result<i64, StoreError> {
        let conn = self.conn.get_mut();
        conn.execute(
            "INSERT INTO digests (id, created, name, kind) VALUES ($1, $2, $3, 'alert')",
            &[&id, &ts(now), &set],
        )?;
        let outbox = insert_outbox(conn, id, "alert", set, message, now)?;
        conn.execute(
            "UPDATE alert_items SET status = 'sent', outbox = $3
             WHERE alert_set = $1 AND match_id = ANY($2)",
            &[&set, &matches, &outbox],
        )?;
        self.commit()?;
        Ok(outbox)
    }

    pub(crate) fn queue_channels(
        &mut self,
        digest: i64,
        source: &str,
        channels: &[String],
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.get_mut();
        for channel in channels {
            super::channels::insert(&mut **conn, Some(digest), source, channel, payload, now)?;
        }
        Ok(())
    }
}

impl PgCompose {
    /// As SQLite's `gather_surge`: rule `rule`'s newest `limit` matches first seen after
    /// `since`, newest first.
    pub(crate) fn gather_surge(
        &mut self,
        rule: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingMatch>, StoreError> {
        let rows = self.conn.get_mut().query(
            &format!(
                "SELECT {MATCH_COLUMNS} FROM matches m JOIN articles a ON a.id = m.article
                 JOIN feeds f ON f.name = a.feed
                 WHERE m.rule_id = $1 AND a.first_seen > $2
                 ORDER BY a.first_seen DESC, a.id DESC LIMIT $3"
            ),
            &[&rule, &ts(since), &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        rows.iter().map(pending_match).collect()
    }

    /// As SQLite's `commit_spike`: the rule's state, the email and the channel messages, in
    /// the composition's transaction.
    pub(crate) fn commit_spike(
        mut self,
        alert: &SpikeAlert<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.get_mut();
        super::spikes::set_state(&mut **conn, alert.spike, alert.rule, true, now)?;
        let mut outbox = None;
        let digest = match alert.email {
            Some((id, message)) => {
                conn.execute(
                    "INSERT INTO digests (id, created, name, kind) VALUES ($1, $2, $3, 'spike')",
                    &[&id, &ts(now), &alert.spike],
                )?;
                outbox = Some(insert_outbox(conn, id, "spike", alert.spike, message, now)?);
                Some(id)
            }
            None => None,
        };
        for channel in alert.channels {
            super::channels::insert(
                &mut **conn,
                digest,
                alert.spike,
                channel,
                alert.payload,
                now,
            )?;
        }
        self.commit()?;
        Ok(outbox)
    }
}

/// The outbox row of an email composed now (as SQLite's `insert_outbox`); returns its id.
fn insert_outbox(
    conn: &mut Conn,
    digest_id: i64,
    kind: &str,
    digest_name: &str,
    m: &NewMessage,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(conn
        .query_one(
            "INSERT INTO outbox (digest, digest_name, message_id, sender, recipients, raw,
                                 status, next_attempt, created, kind)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7, $8)
             RETURNING id",
            &[
                &digest_id,
                &digest_name,
                &m.message_id,
                &m.sender,
                &serde_json::to_string(&m.recipients)?,
                &m.raw,
                &ts(now),
                &kind,
            ],
        )?
        .get(0))
}

/// The columns every query that loads matches for an email reads, in `pending_match`'s order.
const MATCH_COLUMNS: &str = "m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link,
    a.summary, a.published, a.first_seen, a.content, a.full_text,
    COALESCE(a.lang, a.lang_detected), m.rules_hash";

/// SQLite's `matches::pending_match` for a PostgreSQL row.
fn pending_match(r: &postgres::Row) -> Result<PendingMatch, StoreError> {
    Ok(PendingMatch {
        id: r.get(0),
        rule_id: r.get(1),
        hits: serde_json::from_str(r.get(2))?,
        article_id: r.get(3),
        feed: r.get(4),
        feed_title: r.get(5),
        title: r.get(6),
        link: r.get(7),
        summary: Arc::from(r.get::<_, &str>(8)),
        published: r.get::<_, Option<i64>>(9).map(from_ts),
        first_seen: from_ts(r.get(10)),
        content: Arc::from(r.get::<_, &str>(11)),
        full_text: r.get::<_, i64>(12) != 0,
        lang: r.get(13),
        rules_hash: r.get(14),
    })
}
