//! The state database (SQLite, one file `newswatch.db` in the state directory): feeds and their
//! fetch state, articles, rule matches, digests and the outbox of composed emails.
//! The only module that speaks SQL. Synchronous: async callers go through `spawn_blocking` and never
//! hold the connection across an await. Every time comes in as an argument; nothing reads the clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::article::Article;
use crate::fetch::Validators;

/// The database file inside the state directory.
pub const DB_FILE: &str = "newswatch.db";

/// Each entry migrates the schema from version `i` to `i + 1` (`PRAGMA user_version`).
/// Append only: a shipped migration is never edited.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE feeds (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    title         TEXT,
    etag          TEXT,
    last_modified TEXT,
    last_success  INTEGER,
    last_error    TEXT,
    error_count   INTEGER NOT NULL DEFAULT 0,
    next_due      INTEGER
) STRICT;
CREATE TABLE articles (
    id         INTEGER PRIMARY KEY,
    feed       TEXT NOT NULL REFERENCES feeds(name),
    key        TEXT NOT NULL,
    link       TEXT,
    title      TEXT NOT NULL,
    summary    TEXT NOT NULL,
    content    TEXT NOT NULL,
    authors    TEXT NOT NULL,
    categories TEXT NOT NULL,
    lang       TEXT,
    published  INTEGER,
    first_seen INTEGER NOT NULL,
    alertable  INTEGER NOT NULL,
    matched_at INTEGER,
    UNIQUE (feed, key)
) STRICT;
CREATE INDEX articles_unmatched ON articles(id) WHERE alertable = 1 AND matched_at IS NULL;
CREATE TABLE digests (
    id      INTEGER PRIMARY KEY,
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE matches (
    id      INTEGER PRIMARY KEY,
    article INTEGER NOT NULL REFERENCES articles(id),
    rule_id TEXT NOT NULL,
    hits    TEXT NOT NULL,
    digest  INTEGER REFERENCES digests(id),
    UNIQUE (article, rule_id)
) STRICT;
CREATE INDEX matches_unassigned ON matches(id) WHERE digest IS NULL;
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    digest       INTEGER REFERENCES digests(id),
    digest_name  TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    raw          BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox(next_attempt) WHERE status = 'queued';
"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this newswatch knows ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt JSON column: {0}")]
    Json(#[from] serde_json::Error),
    #[error("outbox message {0} does not exist")]
    NoSuchMessage(i64),
}

/// What the store remembers about one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    pub name: String,
    pub title: Option<String>,
    pub validators: Validators,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub error_count: u32,
    pub next_due: Option<DateTime<Utc>>,
}

/// An alertable article stored but not yet run through the matcher.
#[derive(Debug, Clone)]
pub struct PendingArticle {
    pub id: i64,
    pub feed: String,
    pub feed_title: Option<String>,
    pub article: Article,
}

/// One matched term as stored (the DB row's own shape, not the matcher's type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHit {
    pub field: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A rule match not yet part of any digest, with what a digest shows about its article.
#[derive(Debug, Clone)]
pub struct PendingMatch {
    pub id: i64,
    pub rule_id: String,
    pub hits: Vec<StoredHit>,
    pub article_id: i64,
    pub feed: String,
    pub feed_title: Option<String>,
    pub title: String,
    pub link: Option<String>,
    pub summary: String,
    pub published: Option<DateTime<Utc>>,
    pub first_seen: DateTime<Utc>,
}

/// A composed email ready for the outbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub digest_name: String,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Queued,
    Sent,
    Failed,
}

impl OutboxStatus {
    fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> OutboxStatus {
        match s {
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            // The CHECK constraint admits only the three values.
            _ => OutboxStatus::Queued,
        }
    }
}

/// One outbox row.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub digest_name: String,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// What the outbox holds, for summaries and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
}

/// What a successful (non-304) poll brought.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    /// The feed's own title.
    pub title: Option<&'a str>,
    pub validators: &'a Validators,
    pub articles: &'a [Article],
}

/// The rules one article matched (possibly none), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleMatches {
    pub article: i64,
    /// (rule id, hits)
    pub matches: Vec<(String, Vec<StoredHit>)>,
}

/// The result of storing one successful poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Items never seen before.
    pub new: usize,
    /// Of the new items, those that will be matched (the rest were too old on a first poll).
    pub alertable: usize,
}

/// The open state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(s: i64) -> DateTime<Utc> {
    // Every stored time was written by `ts` from a valid DateTime, so it converts back.
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

impl Store {
    /// Opens (creating when missing) `newswatch.db` in `state_dir`; the directory is made 0700.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        Self::open_file(&state_dir.join(DB_FILE))
    }

    /// Opens the database at exactly `path`.
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // WAL lets readers run beside the writer; FULL makes a committed outbox row survive power
        // loss, so an email is never lost between "composed" and "sent".
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Makes sure a configured feed has a row (a new feed starts due now) and its URL is current.
    pub fn ensure_feed(&mut self, name: &str, url: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO feeds (name, url) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET url = excluded.url",
            params![name, url],
        )?;
        Ok(())
    }

    /// `ensure_feed` for every `(name, url)` in one transaction: one commit (one WAL sync) at
    /// start-up instead of one per configured feed.
    pub fn ensure_feeds<'f>(
        &mut self,
        feeds: impl IntoIterator<Item = (&'f str, &'f str)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO feeds (name, url) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET url = excluded.url",
            )?;
            for (name, url) in feeds {
                stmt.execute(params![name, url])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn feed_state(&self, name: &str) -> Result<Option<FeedState>, StoreError> {
        // Cached: a cycle asks once per configured feed (10,000 at the top of the benchmark).
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, title, etag, last_modified, last_success, last_error, error_count,
                        next_due
                 FROM feeds WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(FeedState {
                    name: r.get(0)?,
                    title: r.get(1)?,
                    validators: Validators {
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                    },
                    last_success: r.get::<_, Option<i64>>(4)?.map(from_ts),
                    last_error: r.get(5)?,
                    error_count: r.get(6)?,
                    next_due: r.get::<_, Option<i64>>(7)?.map(from_ts),
                })
            })
            .optional()?)
    }

    /// Stores one successful poll in one transaction: the items (telling which are new) and the
    /// feed's new validators and schedule. On the first successful poll of a feed, items published
    /// before `now - new_feed_window` are stored as seen but never alerted, so adding a feed does
    /// not flood the digest with its archive; items without a date count as new.
    pub fn record_fetched(
        &mut self,
        feed: &str,
        poll: Fetched<'_>,
        now: DateTime<Utc>,
        new_feed_window: Duration,
        next_due: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        let tx = self.conn.transaction()?;
        let first_poll: bool = tx
            .query_row(
                "SELECT last_success IS NULL FROM feeds WHERE name = ?1",
                [feed],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(true);
        let window = chrono::Duration::from_std(new_feed_window).unwrap_or(chrono::Duration::MAX);
        let cutoff = now.checked_sub_signed(window);
        let Fetched {
            title,
            validators,
            articles,
        } = poll;
        let inserted = insert_articles(&tx, feed, articles, now, first_poll, cutoff)?;
        tx.execute(
            "UPDATE feeds SET title = ?2, etag = ?3, last_modified = ?4, last_success = ?5,
                              last_error = NULL, error_count = 0, next_due = ?6
             WHERE name = ?1",
            params![
                feed,
                title,
                validators.etag,
                validators.last_modified,
                ts(now),
                ts(next_due)
            ],
        )?;
        tx.commit()?;
        Ok(inserted)
    }

    /// A 304: the feed is unchanged; only the schedule moves.
    pub fn record_not_modified(
        &mut self,
        feed: &str,
        now: DateTime<Utc>,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE feeds SET last_success = ?2, last_error = NULL, error_count = 0, next_due = ?3
             WHERE name = ?1",
            params![feed, ts(now), ts(next_due)],
        )?;
        Ok(())
    }

    /// A failed fetch or parse: counted and remembered; validators stay as they were.
    pub fn record_failure(
        &mut self,
        feed: &str,
        error: &str,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE feeds SET last_error = ?2, error_count = error_count + 1, next_due = ?3
             WHERE name = ?1",
            params![feed, error, ts(next_due)],
        )?;
        Ok(())
    }

    /// Alertable articles the matcher has not seen yet, oldest first.
    pub fn pending_articles(&self) -> Result<Vec<PendingArticle>, StoreError> {
        self.pending_articles_after(0, usize::MAX)
    }

    /// At most `limit` pending articles with an id above `after`, oldest first: the matcher
    /// walks a large backlog in bounded chunks instead of holding every article in memory.
    pub fn pending_articles_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PendingArticle>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.alertable = 1 AND a.matched_at IS NULL AND a.id > ?1
             ORDER BY a.id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                Article {
                    key: r.get(3)?,
                    link: r.get(4)?,
                    title: r.get(5)?,
                    summary: r.get(6)?,
                    content: r.get(7)?,
                    authors: Vec::new(),
                    categories: Vec::new(),
                    lang: r.get(10)?,
                    published: r.get::<_, Option<i64>>(11)?.map(from_ts),
                },
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, feed, feed_title, mut article, authors, categories) = row?;
            article.authors = serde_json::from_str(&authors)?;
            article.categories = serde_json::from_str(&categories)?;
            out.push(PendingArticle {
                id,
                feed,
                feed_title,
                article,
            });
        }
        Ok(out)
    }

    /// Records the matcher's verdict on articles in one transaction: each listed article is marked
    /// matched (even with no rule matching) and its matches stored. Returns matches stored.
    pub fn record_matches(
        &mut self,
        results: &[ArticleMatches],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut count = 0;
        {
            let mut mark = tx.prepare("UPDATE articles SET matched_at = ?2 WHERE id = ?1")?;
            let mut insert = tx.prepare(
                "INSERT INTO matches (article, rule_id, hits) VALUES (?1, ?2, ?3)
                 ON CONFLICT (article, rule_id) DO NOTHING",
            )?;
            for am in results {
                mark.execute(params![am.article, ts(now)])?;
                for (rule_id, hits) in &am.matches {
                    count += insert.execute(params![
                        am.article,
                        rule_id,
                        serde_json::to_string(hits)?
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(count)
    }

    /// Matches not yet in a digest, oldest first.
    pub fn pending_matches(&self) -> Result<Vec<PendingMatch>, StoreError> {
        pending_matches(&self.conn)
    }

    /// Composes one digest from every unassigned match, in one transaction: a digest row is
    /// created, `compose(digest_id, created, matches)` builds the emails, they go into the outbox
    /// and the matches are assigned to the digest. If `compose` fails or returns no message, nothing
    /// changes. Returns the digest id and the outbox ids, or `None` when nothing was pending.
    pub fn compose_digest<E>(
        &mut self,
        now: DateTime<Utc>,
        compose: impl FnOnce(i64, &[PendingMatch]) -> Result<Vec<NewMessage>, E>,
    ) -> Result<Option<(i64, Vec<i64>)>, ComposeError<E>> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let matches = pending_matches(&tx)?;
        if matches.is_empty() {
            return Ok(None);
        }
        tx.execute("INSERT INTO digests (created) VALUES (?1)", [ts(now)])
            .map_err(StoreError::from)?;
        let digest_id = tx.last_insert_rowid();
        let messages = compose(digest_id, &matches).map_err(ComposeError::Compose)?;
        if messages.is_empty() {
            return Ok(None);
        }
        let mut ids = Vec::new();
        for m in &messages {
            tx.execute(
                "INSERT INTO outbox (digest, digest_name, message_id, sender, recipients, raw,
                                     status, next_attempt, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
                params![
                    digest_id,
                    m.digest_name,
                    m.message_id,
                    m.sender,
                    serde_json::to_string(&m.recipients).map_err(StoreError::from)?,
                    m.raw,
                    ts(now)
                ],
            )
            .map_err(StoreError::from)?;
            ids.push(tx.last_insert_rowid());
        }
        {
            let mut assign = tx
                .prepare("UPDATE matches SET digest = ?1 WHERE id = ?2")
                .map_err(StoreError::from)?;
            for m in &matches {
                assign
                    .execute(params![digest_id, m.id])
                    .map_err(StoreError::from)?;
            }
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(Some((digest_id, ids)))
    }

    /// Queued messages whose next attempt is due at `now`, oldest first.
    pub fn due_messages(&self, now: DateTime<Utc>) -> Result<Vec<OutboxMessage>, StoreError> {
        self.outbox_where("status = 'queued' AND next_attempt <= ?1", ts(now))
    }

    pub fn message(&self, id: i64) -> Result<OutboxMessage, StoreError> {
        self.outbox_where("id = ?1", id)?
            .pop()
            .ok_or(StoreError::NoSuchMessage(id))
    }

    fn outbox_where(&self, cond: &str, arg: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "SELECT id, digest_name, message_id, sender, recipients, raw, status, attempts,
                    next_attempt, last_error
             FROM outbox WHERE {cond} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([arg], |r| {
            Ok((
                OutboxMessage {
                    id: r.get(0)?,
                    digest_name: r.get(1)?,
                    message_id: r.get(2)?,
                    sender: r.get(3)?,
                    recipients: Vec::new(),
                    raw: r.get(5)?,
                    status: OutboxStatus::parse(&r.get::<_, String>(6)?),
                    attempts: r.get(7)?,
                    next_attempt: from_ts(r.get(8)?),
                    last_error: r.get(9)?,
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut m, recipients) = row?;
            m.recipients = serde_json::from_str(&recipients)?;
            out.push(m);
        }
        Ok(out)
    }

    /// The message was accepted.
    pub fn mark_sent(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_status(id, OutboxStatus::Sent, None, Some(now), None)
    }

    /// A transient failure: try again at `next_attempt`.
    pub fn mark_retry(
        &mut self,
        id: i64,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_status(
            id,
            OutboxStatus::Queued,
            Some(error),
            None,
            Some(next_attempt),
        )
    }

    /// A permanent failure: the message is kept, never retried automatically.
    pub fn mark_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.set_status(id, OutboxStatus::Failed, Some(error), None, None)
    }

    fn set_status(
        &mut self,
        id: i64,
        status: OutboxStatus,
        error: Option<&str>,
        sent: Option<DateTime<Utc>>,
        next_attempt: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE outbox SET status = ?2, attempts = attempts + 1, last_error = ?3,
                               sent = COALESCE(?4, sent),
                               next_attempt = COALESCE(?5, next_attempt)
             WHERE id = ?1",
            params![
                id,
                status.as_str(),
                error,
                sent.map(ts),
                next_attempt.map(ts)
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchMessage(id));
        }
        Ok(())
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
        let mut counts = OutboxCounts::default();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            let n = usize::try_from(n).unwrap_or(0);
            match OutboxStatus::parse(&status) {
                OutboxStatus::Queued => counts.queued = n,
                OutboxStatus::Sent => counts.sent = n,
                OutboxStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// The earliest time a queued message wants another attempt.
    pub fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(next_attempt) FROM outbox WHERE status = 'queued'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(from_ts))
    }
}

/// `compose_digest` failed: in the database, or in the caller's composer.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("composing the digest failed: {0}")]
    Compose(E),
}

fn insert_articles(
    tx: &Transaction<'_>,
    feed: &str,
    articles: &[Article],
    now: DateTime<Utc>,
    first_poll: bool,
    cutoff: Option<DateTime<Utc>>,
) -> Result<Inserted, StoreError> {
    let mut stmt = tx.prepare(
        "INSERT INTO articles (feed, key, link, title, summary, content, authors, categories, lang,
                               published, first_seen, alertable)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (feed, key) DO NOTHING",
    )?;
    let mut inserted = Inserted::default();
    for a in articles {
        let too_old = first_poll
            && match (a.published, cutoff) {
                (Some(p), Some(c)) => p < c,
                _ => false,
            };
        let n = stmt.execute(params![
            feed,
            a.key,
            a.link,
            a.title,
            a.summary,
            a.content,
            serde_json::to_string(&a.authors)?,
            serde_json::to_string(&a.categories)?,
            a.lang,
            a.published.map(ts),
            ts(now),
            !too_old,
        ])?;
        if n > 0 {
            inserted.new += 1;
            if !too_old {
                inserted.alertable += 1;
            }
        }
    }
    Ok(inserted)
}

fn pending_matches(conn: &Connection) -> Result<Vec<PendingMatch>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
                a.published, a.first_seen
         FROM matches m JOIN articles a ON a.id = m.article JOIN feeds f ON f.name = a.feed
         WHERE m.digest IS NULL
         ORDER BY m.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(2)?,
            PendingMatch {
                id: r.get(0)?,
                rule_id: r.get(1)?,
                hits: Vec::new(),
                article_id: r.get(3)?,
                feed: r.get(4)?,
                feed_title: r.get(5)?,
                title: r.get(6)?,
                link: r.get(7)?,
                summary: r.get(8)?,
                published: r.get::<_, Option<i64>>(9)?.map(from_ts),
                first_seen: from_ts(r.get(10)?),
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (hits, mut m) = row?;
        m.hits = serde_json::from_str(&hits)?;
        out.push(m);
    }
    Ok(out)
}

/// Creates `dir` (and parents) readable by the owner only: it holds what the user subscribes to.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamps are valid")
            .with_timezone(&Utc)
    }

    fn art(key: &str, published: Option<&str>) -> Article {
        Article {
            key: key.to_string(),
            link: Some(format!("https://example.org/{key}")),
            title: format!("Title {key}"),
            summary: "summary".into(),
            published: published.map(t),
            authors: vec!["A. Writer".into()],
            ..Article::default()
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state")).expect("open store");
        (dir, store)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn opens_with_wal_and_latest_schema_and_private_dir() {
        let (dir, store) = open();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perm = std::fs::metadata(dir.path().join("state"))
                .unwrap()
                .permissions();
            assert_eq!(perm.mode() & 0o777, 0o700);
        }
        drop(store);
        // Reopening an up-to-date database runs no migration and keeps the data.
        let again = Store::open(&dir.path().join("state")).unwrap();
        assert_eq!(again.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let (dir, store) = open();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        let err = Store::open(&dir.path().join("state")).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn second_insert_of_the_same_items_is_not_new() {
        let (_dir, mut s) = open();
        let now = t("2025-03-10T12:00:00Z");
        s.ensure_feed("f", "https://example.org/feed").unwrap();
        let items = [art("a", Some("2025-03-10T10:00:00Z")), art("b", None)];
        let v = Validators::default();
        let first = s
            .record_fetched(
                "f",
                Fetched {
                    title: None,
                    validators: &v,
                    articles: &items,
                },
                now,
                DAY,
                now,
            )
            .unwrap();
        assert_eq!(
            first,
            Inserted {
                new: 2,
                alertable: 2
            }
        );
        let items2 = [art("b", None), art("c", Some("2025-03-10T11:00:00Z"))];
        let second = s
            .record_fetched(
                "f",
                Fetched {
                    title: None,
                    validators: &v,
                    articles: &items2,
                },
                now,
                DAY,
                now,
            )
            .unwrap();
        assert_eq!(
            second,
            Inserted {
                new: 1,
                alertable: 1
            }
        );
        let keys: Vec<String> = s
            .pending_articles()
            .unwrap()
            .into_iter()
            .map(|p| p.article.key)
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn first_poll_stores_old_items_as_seen_but_later_polls_alert_on_everything() {
        // (key, published, alertable on the first poll)
        let cases = [
            ("fresh", Some("2025-03-10T00:00:00Z"), true),
            ("edge", Some("2025-03-09T12:00:00Z"), true),
            ("old", Some("2025-03-09T11:59:59Z"), false),
            ("ancient", Some("2020-01-01T00:00:00Z"), false),
            ("undated", None, true),
        ];
        let (_dir, mut s) = open();
        let now = t("2025-03-10T12:00:00Z");
        s.ensure_feed("f", "https://example.org/feed").unwrap();
        let items: Vec<Article> = cases.iter().map(|(k, p, _)| art(k, *p)).collect();
        let v = Validators::default();
        let got = s
            .record_fetched(
                "f",
                Fetched {
                    title: None,
                    validators: &v,
                    articles: &items,
                },
                now,
                DAY,
                now,
            )
            .unwrap();
        let expect_alertable = cases.iter().filter(|c| c.2).count();
        assert_eq!(
            got,
            Inserted {
                new: 5,
                alertable: expect_alertable
            }
        );
        let pending: Vec<String> = s
            .pending_articles()
            .unwrap()
            .into_iter()
            .map(|p| p.article.key)
            .collect();
        let expected: Vec<&str> = cases.iter().filter(|c| c.2).map(|c| c.0).collect();
        assert_eq!(pending, expected);

        // After the first successful poll, even an old item is news.
        let later = [art("late-but-old", Some("2019-01-01T00:00:00Z"))];
        let got = s
            .record_fetched(
                "f",
                Fetched {
                    title: None,
                    validators: &v,
                    articles: &later,
                },
                now,
                DAY,
                now,
            )
            .unwrap();
        assert_eq!(
            got,
            Inserted {
                new: 1,
                alertable: 1
            }
        );
    }

    #[test]
    fn a_failed_first_poll_keeps_the_feed_new() {
        let (_dir, mut s) = open();
        let now = t("2025-03-10T12:00:00Z");
        s.ensure_feed("f", "https://example.org/feed").unwrap();
        s.record_failure("f", "HTTP status 500", now).unwrap();
        s.record_failure("f", "HTTP status 503", now).unwrap();
        let st = s.feed_state("f").unwrap().unwrap();
        assert_eq!(
            (st.error_count, st.last_error.as_deref()),
            (2, Some("HTTP status 503"))
        );
        let items = [art("old", Some("2020-01-01T00:00:00Z"))];
        let v = Validators {
            etag: Some("\"x\"".into()),
            last_modified: None,
        };
        let got = s
            .record_fetched(
                "f",
                Fetched {
                    title: Some("Feed"),
                    validators: &v,
                    articles: &items,
                },
                now,
                DAY,
                now,
            )
            .unwrap();
        assert_eq!(
            got,
            Inserted {
                new: 1,
                alertable: 0
            }
        );
        let st = s.feed_state("f").unwrap().unwrap();
        assert_eq!(st.error_count, 0);
        assert_eq!(st.last_error, None);
        assert_eq!(st.validators, v);
        assert_eq!(st.title.as_deref(), Some("Feed"));
        assert_eq!(st.last_success, Some(now));
    }

    fn hit(text: &str) -> StoredHit {
        StoredHit {
            field: "title".into(),
            start: 0,
            end: text.len(),
            text: text.into(),
        }
    }

    fn msg(id: &str) -> NewMessage {
        NewMessage {
            digest_name: "main".into(),
            message_id: id.into(),
            sender: "nw@example.org".into(),
            recipients: vec!["a@example.org".into()],
            raw: b"Subject: x\r\n\r\nbody".to_vec(),
        }
    }

    fn store_with_matches() -> (tempfile::TempDir, Store, DateTime<Utc>) {
        let (dir, mut s) = open();
        let now = t("2025-03-10T12:00:00Z");
        s.ensure_feed("f", "https://example.org/feed").unwrap();
        let items = [art("a", None), art("b", None)];
        s.record_fetched(
            "f",
            Fetched {
                title: None,
                validators: &Validators::default(),
                articles: &items,
            },
            now,
            DAY,
            now,
        )
        .unwrap();
        let pending = s.pending_articles().unwrap();
        let results = vec![
            ArticleMatches {
                article: pending[0].id,
                matches: vec![("minerals".to_string(), vec![hit("minerals deal")])],
            },
            ArticleMatches {
                article: pending[1].id,
                matches: vec![],
            },
        ];
        assert_eq!(s.record_matches(&results, now).unwrap(), 1);
        assert!(s.pending_articles().unwrap().is_empty());
        (dir, s, now)
    }

    #[test]
    fn compose_assigns_matches_and_queues_in_one_step() {
        let (_dir, mut s, now) = store_with_matches();
        let pending = s.pending_matches().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].hits, vec![hit("minerals deal")]);
        let (digest, ids) = s
            .compose_digest(now, |id, m| {
                assert_eq!(m.len(), 1);
                Ok::<_, std::convert::Infallible>(vec![msg(&format!("<d{id}@x>"))])
            })
            .unwrap()
            .unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            s.message(ids[0]).unwrap().message_id,
            format!("<d{digest}@x>")
        );
        assert!(s.pending_matches().unwrap().is_empty());
        // Nothing pending: no digest.
        let none = s
            .compose_digest(
                now,
                |_, _| -> Result<Vec<NewMessage>, std::convert::Infallible> {
                    panic!("compose must not run without matches")
                },
            )
            .unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn a_failing_composer_leaves_matches_pending() {
        let (_dir, mut s, now) = store_with_matches();
        let err = s
            .compose_digest(now, |_, _| Err("template broke"))
            .unwrap_err();
        assert!(matches!(err, ComposeError::Compose("template broke")));
        assert_eq!(s.pending_matches().unwrap().len(), 1);
        assert_eq!(s.outbox_counts().unwrap(), OutboxCounts::default());
    }

    #[test]
    fn outbox_state_transitions() {
        let (_dir, mut s, now) = store_with_matches();
        let (_, ids) = s
            .compose_digest(now, |_, _| {
                Ok::<_, std::convert::Infallible>(vec![msg("<m@x>")])
            })
            .unwrap()
            .unwrap();
        let id = ids[0];
        assert_eq!(s.due_messages(now).unwrap().len(), 1);
        assert_eq!(s.next_outbox_attempt().unwrap(), Some(now));

        let retry_at = now + chrono::Duration::minutes(2);
        s.mark_retry(id, "451 try later", retry_at).unwrap();
        assert!(
            s.due_messages(now).unwrap().is_empty(),
            "not due before its retry time"
        );
        let m = s.due_messages(retry_at).unwrap().pop().unwrap();
        assert_eq!((m.status, m.attempts), (OutboxStatus::Queued, 1));
        assert_eq!(m.last_error.as_deref(), Some("451 try later"));
        assert_eq!(m.recipients, ["a@example.org"]);

        s.mark_sent(id, retry_at).unwrap();
        let m = s.message(id).unwrap();
        assert_eq!(
            (m.status, m.attempts, m.last_error),
            (OutboxStatus::Sent, 2, None)
        );
        assert!(s.due_messages(retry_at).unwrap().is_empty());
        assert_eq!(
            s.outbox_counts().unwrap(),
            OutboxCounts {
                queued: 0,
                sent: 1,
                failed: 0
            }
        );
        assert_eq!(s.next_outbox_attempt().unwrap(), None);
    }

    #[test]
    fn a_failed_message_is_kept_but_not_retried() {
        let (_dir, mut s, now) = store_with_matches();
        let (_, ids) = s
            .compose_digest(now, |_, _| {
                Ok::<_, std::convert::Infallible>(vec![msg("<m@x>")])
            })
            .unwrap()
            .unwrap();
        s.mark_failed(ids[0], "550 no such user").unwrap();
        let far = now + chrono::Duration::days(30);
        assert!(s.due_messages(far).unwrap().is_empty());
        let m = s.message(ids[0]).unwrap();
        assert_eq!(m.status, OutboxStatus::Failed);
        assert_eq!(m.raw, msg("<m@x>").raw);
        assert!(matches!(
            s.mark_sent(999, now),
            Err(StoreError::NoSuchMessage(999))
        ));
    }
}
