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

mod batch;
mod feeds;
pub use batch::{DigestBatch, GroupCount};
pub use feeds::{
    DigestInfo, FeedNotice, FeedRecord, PollRecord, PollResult, PollStored, Pruned,
    REDIRECT_REPEATS, RowCounts,
};

/// Prepared statements kept per connection: enough for every statement of a poll's write plus
/// the other stages', so none is re-parsed per feed or per item.
const STATEMENT_CACHE: usize = 64;

/// The database file inside the state directory.
pub const DB_FILE: &str = "newswatch.db";

/// Each entry migrates the schema from version `i` to `i + 1` (`PRAGMA user_version`).
/// Append only: a shipped migration is never edited.
const MIGRATIONS: &[&str] = &[
    r"
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
",
    feeds::MIGRATION,
    r"
-- issue 4: per-digest assignment (several digests with their own rules and schedules), the last
-- schedule slot each digest served, and alert batching. `matches.digest` stays: the first digest
-- a match went into.
ALTER TABLE matches ADD COLUMN recorded INTEGER;
ALTER TABLE digests ADD COLUMN name TEXT;
ALTER TABLE digests ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest';
ALTER TABLE digests ADD COLUMN slot INTEGER;
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest';
CREATE TABLE digest_items (
    digest_name TEXT NOT NULL,
    match_id    INTEGER NOT NULL REFERENCES matches(id),
    digest      INTEGER NOT NULL REFERENCES digests(id),
    PRIMARY KEY (digest_name, match_id)
) STRICT;
INSERT OR IGNORE INTO digest_items (digest_name, match_id, digest)
    SELECT o.digest_name, m.id, m.digest FROM matches m JOIN outbox o ON o.digest = m.digest;
CREATE TABLE digest_slots (
    name      TEXT PRIMARY KEY,
    last_slot INTEGER NOT NULL
) STRICT;
CREATE TABLE alert_items (
    alert_set TEXT NOT NULL,
    match_id  INTEGER NOT NULL REFERENCES matches(id),
    queued    INTEGER NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'deferred')),
    outbox    INTEGER REFERENCES outbox(id),
    PRIMARY KEY (alert_set, match_id)
) STRICT;
CREATE INDEX alert_items_pending ON alert_items(alert_set) WHERE status = 'pending';
",
    r"
-- issue 6: config/rule reloads of the daemon, for `newswatch status`.
CREATE TABLE reloads (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    applied INTEGER NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
",
    r"
-- issue 7: a digest asks, for every pending match, whether an alert set holds it; the primary
-- key (alert_set, match_id) cannot answer by match alone, so each match scanned alert_items.
CREATE INDEX alert_items_match ON alert_items(match_id, status);
",
    r"
-- issue 7: the matcher's to-do list as its own narrow table. Marking `articles.matched_at`
-- rewrote every article's row (its full text) a second time, into the WAL; now a verdict
-- deletes one small row. `matched_at` is no longer written.
CREATE TABLE unmatched (
    article INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE
) STRICT;
INSERT INTO unmatched (article)
    SELECT id FROM articles WHERE alertable = 1 AND matched_at IS NULL;
DROP INDEX articles_unmatched;
",
    r"
-- issue 7: being in a digest is having a `digest_items` row. Marking `matches.digest` as well
-- rewrote every match row (its hits) once more per digest; it is no longer written, and
-- `digest_items` is asked by match (pruning, `pending_matches`).
CREATE INDEX digest_items_match ON digest_items(match_id);
DROP INDEX matches_unassigned;
",
];

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
    #[error(
        "database schema version {found} is older than this newswatch ({known}); run newswatch \
         once (run --once) to upgrade it"
    )]
    TooOld { found: i64, known: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt JSON column: {0}")]
    Json(#[from] serde_json::Error),
    #[error("outbox message {0} does not exist")]
    NoSuchMessage(i64),
}

/// The usual cause of a storage failure, for an operator who would otherwise read SQLite's own
/// words ("disk I/O error … xshmmap") and guess. `None` for errors without a known cause.
pub fn storage_hint(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use rusqlite::ErrorCode;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                    Some(
                        "the state directory is not writable (read-only filesystem or wrong owner)",
                    )
                }
                std::io::ErrorKind::StorageFull => {
                    Some("the filesystem of the state directory is full")
                }
                _ => None,
            };
        }
        if let Some(code) = e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
        {
            return match code {
                ErrorCode::DiskFull | ErrorCode::SystemIoFailure => Some(
                    "the filesystem of the state directory may be full (check `df`), or failing",
                ),
                ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => Some(
                    "the state directory is not writable (read-only filesystem or wrong owner)",
                ),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(
                    "another process holds the database's write lock; newswatch waited 5 s for it",
                ),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    Some("the database file is damaged; restore it from a backup or move it aside")
                }
                _ => None,
            };
        }
        cur = e.source();
    }
    None
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

/// A stored article with its feed and when it was first seen (`articles_since`).
#[derive(Debug, Clone)]
pub struct StoredArticle {
    pub feed: String,
    pub feed_title: Option<String>,
    pub article: Article,
    pub first_seen: DateTime<Utc>,
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
    /// The article's full text, for a snippet around a hit found there.
    pub content: String,
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
        // Recording a poll alone cycles through ~16 statements per feed (`prepare_cached`).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Runs `f` with commits that skip the WAL fsync (`synchronous = NORMAL`), for writes that are
    /// re-derived when lost. A power cut can only drop such commits from the end of the WAL, never
    /// corrupt the file; and the next `FULL` commit (an outbox row, before any email leaves)
    /// syncs the one append-only WAL file, making every earlier commit durable with it.
    fn relaxed<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = f(&mut self.conn);
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        let value = result?;
        restored?;
        Ok(value)
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
            // A URL the user changed replaces any effective URL learned from redirects.
            "INSERT INTO feeds (name, url) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET
                 effective_url = CASE WHEN url = excluded.url THEN effective_url END,
                 redirect_target = CASE WHEN url = excluded.url THEN redirect_target END,
                 url = excluded.url",
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
        let Fetched {
            title,
            validators,
            articles,
        } = poll;
        let stored = self.record_poll(
            feed,
            &PollRecord {
                result: PollResult::Fetched {
                    title,
                    validators,
                    articles,
                    hint_ttl: None,
                    permanent_redirect: None,
                },
                now,
                next_due,
                catch_up_due: next_due,
                new_feed_window,
                max_new: usize::MAX,
                thresholds: crate::policy::feed_health::Thresholds::default(),
            },
        )?;
        Ok(stored.inserted)
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
             FROM unmatched u JOIN articles a ON a.id = u.article JOIN feeds f ON f.name = a.feed
             WHERE u.article > ?1
             ORDER BY u.article LIMIT ?2",
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

    /// Every stored article first seen at or after `cutoff` (alertable or not), oldest first.
    pub fn articles_since(&self, cutoff: DateTime<Utc>) -> Result<Vec<StoredArticle>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.feed, f.title, a.key, a.link, a.title, a.summary, a.content,
                    a.authors, a.categories, a.lang, a.published, a.first_seen
             FROM articles a JOIN feeds f ON f.name = a.feed
             WHERE a.first_seen >= ?1
             ORDER BY a.first_seen, a.id",
        )?;
        let rows = stmt.query_map([ts(cutoff)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                Article {
                    key: r.get(2)?,
                    link: r.get(3)?,
                    title: r.get(4)?,
                    summary: r.get(5)?,
                    content: r.get(6)?,
                    authors: Vec::new(),
                    categories: Vec::new(),
                    lang: r.get(9)?,
                    published: r.get::<_, Option<i64>>(10)?.map(from_ts),
                },
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (feed, feed_title, mut article, authors, categories, first_seen) = row?;
            article.authors = serde_json::from_str(&authors)?;
            article.categories = serde_json::from_str(&categories)?;
            out.push(StoredArticle {
                feed,
                feed_title,
                article,
                first_seen: from_ts(first_seen),
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
        self.record_matches_routed(results, now, |_| Vec::new())
    }

    /// `record_matches`, and in the same transaction every new match of a rule that
    /// `alert_sets(rule_id)` routes to alert sets is queued as a pending alert in each of them:
    /// a crash cannot leave a match that neither an alert nor a digest will carry.
    pub fn record_matches_routed(
        &mut self,
        results: &[ArticleMatches],
        now: DateTime<Utc>,
        alert_sets: impl Fn(&str) -> Vec<String>,
    ) -> Result<usize, StoreError> {
        // A verdict lost to a power cut is re-derived: its articles are still unmatched.
        self.relaxed(|conn| {
            let tx = conn.transaction()?;
            let mut count = 0;
            {
                let mut mark = tx.prepare_cached("DELETE FROM unmatched WHERE article = ?1")?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO matches (article, rule_id, hits, recorded) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (article, rule_id) DO NOTHING",
                )?;
                let mut queue = tx.prepare_cached(
                    "INSERT OR IGNORE INTO alert_items (alert_set, match_id, queued, status)
                     VALUES (?1, ?2, ?3, 'pending')",
                )?;
                let at = ts(now);
                for am in results {
                    mark.execute([am.article])?;
                    for (rule_id, hits) in &am.matches {
                        let n = insert.execute(params![
                            am.article,
                            rule_id,
                            serde_json::to_string(hits)?,
                            at
                        ])?;
                        if n == 0 {
                            continue;
                        }
                        count += n;
                        let match_id = tx.last_insert_rowid();
                        for set in alert_sets(rule_id) {
                            queue.execute(params![set, match_id, at])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(count)
        })
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

impl Store {
    /// Matches digest `name` has not carried yet, oldest first: every match not assigned to it,
    /// except those an alert set holds (pending or sent) unless some set deferred them to the
    /// digests. The caller filters by the digest's rules.
    pub fn pending_for_digest(&self, name: &str) -> Result<Vec<PendingMatch>, StoreError> {
        select_matches(&self.conn, PENDING_FOR_DIGEST, params![name])
    }

    /// Every match recorded at or after `since` (assigned or not), for previews. Read-only.
    pub fn matches_since(&self, since: DateTime<Utc>) -> Result<Vec<PendingMatch>, StoreError> {
        select_matches(&self.conn, RECORDED_SINCE, params![ts(since)])
    }

    /// The last schedule slot digest `name` served (composed, or skipped because empty).
    pub fn digest_last_slot(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_slot FROM digest_slots WHERE name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(from_ts))
    }

    /// Composes digest `name` in one transaction. Every pending match whose rule `group_of`
    /// puts into a group (`None`: not this digest's rule) is gathered set-based; `compose` gets
    /// the exact totals and full rows for `plan(groups)[i]` newest articles of group `i` only.
    /// A returned message enters the outbox, every gathered match (shown or only counted) is
    /// assigned to the digest, and `slot` (when scheduled) is recorded as served, all or nothing.
    /// `compose` returning `None` (nothing worth sending) still records the slot.
    pub fn compose_named<E>(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
        group_of: impl Fn(&str) -> Option<String>,
        plan: impl FnOnce(&[GroupCount]) -> Vec<usize>,
        compose: impl FnOnce(i64, &DigestBatch) -> Result<Option<NewMessage>, E>,
    ) -> Result<Option<Composition>, ComposeError<E>> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let gathered = batch::gather(&tx, PENDING_FOR_DIGEST, &name, group_of, plan)?;
        let digest_id: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM digests", [], |r| {
                r.get(0)
            })
            .map_err(StoreError::from)?;
        let message = compose(digest_id, &gathered).map_err(ComposeError::Compose)?;
        if let Some(slot) = slot {
            tx.execute(
                "INSERT INTO digest_slots (name, last_slot) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot",
                params![name, ts(slot)],
            )
            .map_err(StoreError::from)?;
        }
        let Some(message) = message else {
            batch::clear(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO digests (id, created, name, kind, slot) VALUES (?1, ?2, ?3, 'digest', ?4)",
            params![digest_id, ts(now), name, slot.map(ts)],
        )
        .map_err(StoreError::from)?;
        let outbox = insert_outbox(&tx, digest_id, "digest", &message, now)?;
        batch::assign(&tx, name, digest_id)?;
        batch::clear(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(Some(Composition {
            digest: digest_id,
            outbox,
            matches: gathered.matches,
        }))
    }

    /// What `compose_named` would hand its composer, without changing anything: the matches
    /// digest `name` has not carried yet, or (with `since`) every match recorded since then.
    pub fn preview_batch(
        &mut self,
        name: &str,
        since: Option<DateTime<Utc>>,
        group_of: impl Fn(&str) -> Option<String>,
        plan: impl FnOnce(&[GroupCount]) -> Vec<usize>,
    ) -> Result<DigestBatch, StoreError> {
        let tx = self.conn.transaction()?;
        // Dropping the transaction rolls the temp tables back.
        match since {
            Some(t) => batch::gather(&tx, RECORDED_SINCE, &ts(t), group_of, plan),
            None => batch::gather(&tx, PENDING_FOR_DIGEST, &name, group_of, plan),
        }
    }

    /// Matches alert set `set` holds pending: (match id, when queued).
    pub fn pending_alerts(&self, set: &str) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT match_id, queued FROM alert_items
             WHERE alert_set = ?1 AND status = 'pending' ORDER BY match_id",
        )?;
        let rows = stmt.query_map([set], |r| Ok((r.get(0)?, from_ts(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Alert emails of `set` composed after `since`.
    pub fn alerts_composed_since(
        &self,
        set: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND digest_name = ?1 AND created > ?2",
            params![set, ts(since)],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Applies an alert plan in one transaction: `defer` go to the digests; `send` are given to
    /// `compose(digest_id, matches)` and the email enters the outbox with them marked sent.
    /// Ids no longer pending in `set` are ignored. Returns the outbox id when one was queued.
    pub fn commit_alert<E>(
        &mut self,
        set: &str,
        now: DateTime<Utc>,
        send: &[i64],
        defer: &[i64],
        compose: impl FnOnce(i64, &[PendingMatch]) -> Result<NewMessage, E>,
    ) -> Result<Option<i64>, ComposeError<E>> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        for id in defer {
            tx.execute(
                "UPDATE alert_items SET status = 'deferred'
                 WHERE alert_set = ?1 AND match_id = ?2 AND status = 'pending'",
                params![set, id],
            )
            .map_err(StoreError::from)?;
        }
        let mut matches = Vec::new();
        for id in send {
            let still: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM alert_items
                     WHERE alert_set = ?1 AND match_id = ?2 AND status = 'pending')",
                    params![set, id],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?;
            if still {
                matches.extend(select_matches(&tx, "m.id = ?1", params![id])?);
            }
        }
        if matches.is_empty() {
            tx.commit().map_err(StoreError::from)?;
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO digests (created, name, kind) VALUES (?1, ?2, 'alert')",
            params![ts(now), set],
        )
        .map_err(StoreError::from)?;
        let digest_id = tx.last_insert_rowid();
        let mut message = compose(digest_id, &matches).map_err(ComposeError::Compose)?;
        // The hourly cap counts the set's rows by this name.
        set.clone_into(&mut message.digest_name);
        let outbox = insert_outbox(&tx, digest_id, "alert", &message, now)?;
        for m in &matches {
            tx.execute(
                "UPDATE alert_items SET status = 'sent', outbox = ?3
                 WHERE alert_set = ?1 AND match_id = ?2",
                params![set, m.id, outbox],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(Some(outbox))
    }

    /// Hands the pending alerts of sets no longer configured to the digests, so removing an
    /// `[[alert]]` from the config never strands a match. Returns how many were released.
    pub fn release_orphaned_alerts(&mut self, configured: &[String]) -> Result<usize, StoreError> {
        let list = serde_json::to_string(configured)?;
        Ok(self.conn.execute(
            "UPDATE alert_items SET status = 'deferred'
             WHERE status = 'pending' AND alert_set NOT IN (SELECT value FROM json_each(?1))",
            [list],
        )?)
    }

    /// The earliest time a pending alert's window closes, over every set: `queued + window`.
    pub fn oldest_pending_alert(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(queued) FROM alert_items WHERE status = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(from_ts))
    }

    /// Outbox messages that failed for good, newest first, for `status` and logs.
    pub fn failed_messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut all = self.outbox_where("status = 'failed' AND ?1 = ?1", 0)?;
        all.reverse();
        Ok(all)
    }
}

/// Not yet carried by digest `?1`, and not held by an alert set (unless one deferred it).
/// In no digest yet: neither a named digest (`digest_items`) nor the single digest of before
/// issue 4 (`matches.digest`, no longer written).
const IN_NO_DIGEST: &str = "m.digest IS NULL
    AND NOT EXISTS (SELECT 1 FROM digest_items di WHERE di.match_id = m.id)";

const PENDING_FOR_DIGEST: &str =
    "NOT EXISTS (SELECT 1 FROM digest_items di WHERE di.digest_name = ?1 AND di.match_id = m.id)
     AND (NOT EXISTS (SELECT 1 FROM alert_items ai WHERE ai.match_id = m.id)
          OR EXISTS (SELECT 1 FROM alert_items ai
                     WHERE ai.match_id = m.id AND ai.status = 'deferred'))";

/// Recorded at or after `?1`; matches from before issue 4 have no `recorded` and use the article's
/// first sighting.
const RECORDED_SINCE: &str = "COALESCE(m.recorded,
    (SELECT a.first_seen FROM articles a WHERE a.id = m.article)) >= ?1";

/// What `compose_named` queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Composition {
    pub digest: i64,
    pub outbox: i64,
    /// Matches the digest carried.
    pub matches: usize,
}

fn insert_outbox<E>(
    tx: &Transaction<'_>,
    digest_id: i64,
    kind: &str,
    m: &NewMessage,
    now: DateTime<Utc>,
) -> Result<i64, ComposeError<E>> {
    tx.execute(
        "INSERT INTO outbox (digest, digest_name, message_id, sender, recipients, raw,
                             status, next_attempt, created, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7, ?8)",
        params![
            digest_id,
            m.digest_name,
            m.message_id,
            m.sender,
            serde_json::to_string(&m.recipients).map_err(StoreError::from)?,
            m.raw,
            ts(now),
            kind
        ],
    )
    .map_err(StoreError::from)?;
    Ok(tx.last_insert_rowid())
}

/// `compose_digest` failed: in the database, or in the caller's composer.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("composing the digest failed: {0}")]
    Compose(E),
}

fn pending_matches(conn: &Connection) -> Result<Vec<PendingMatch>, StoreError> {
    select_matches(conn, IN_NO_DIGEST, [])
}

fn select_matches(
    conn: &Connection,
    cond: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PendingMatch>, StoreError> {
    let sql = format!(
        "SELECT m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title, a.link, a.summary,
                a.published, a.first_seen, a.content
         FROM matches m JOIN articles a ON a.id = m.article JOIN feeds f ON f.name = a.feed
         WHERE {cond}
         ORDER BY m.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(pending_match(r)?);
    }
    Ok(out)
}

/// A `PendingMatch` from a row of `m.id, m.rule_id, m.hits, a.id, a.feed, f.title, a.title,
/// a.link, a.summary, a.published, a.first_seen, a.content` (the column order of every query
/// that loads matches for an email).
fn pending_match(r: &rusqlite::Row<'_>) -> Result<PendingMatch, StoreError> {
    let hits: String = r.get(2)?;
    Ok(PendingMatch {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        hits: serde_json::from_str(&hits)?,
        article_id: r.get(3)?,
        feed: r.get(4)?,
        feed_title: r.get(5)?,
        title: r.get(6)?,
        link: r.get(7)?,
        summary: r.get(8)?,
        content: r.get(11)?,
        published: r.get::<_, Option<i64>>(9)?.map(from_ts),
        first_seen: from_ts(r.get(10)?),
    })
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

/// One reload of the daemon's config and rules, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadInfo {
    pub at: DateTime<Utc>,
    /// Applied, or refused (the previous set kept running).
    pub applied: bool,
    /// What was loaded, or why it was refused.
    pub detail: String,
}

impl Store {
    pub fn record_reload(
        &self,
        at: DateTime<Utc>,
        applied: bool,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO reloads (at, applied, detail) VALUES (?1, ?2, ?3)",
            params![ts(at), applied, detail],
        )?;
        Ok(())
    }

    pub fn last_reload(&self) -> Result<Option<ReloadInfo>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT at, applied, detail FROM reloads ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ReloadInfo {
                        at: from_ts(r.get(0)?),
                        applied: r.get(1)?,
                        detail: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration to the `unmatched` table carries over exactly the articles the matcher still
    /// owed a verdict: alertable and unmatched; not matched ones, not ones outside the window.
    #[test]
    fn the_matchers_to_do_list_survives_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE unmatched"))
            .expect("the migration");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            for sql in &MIGRATIONS[..before] {
                conn.execute_batch(sql).expect("older schema");
            }
            conn.pragma_update(None, "user_version", before as i64)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO feeds (name, url) VALUES ('f', 'https://e.example/');
                 INSERT INTO articles (id, feed, key, title, summary, content, authors, categories,
                                       first_seen, alertable, matched_at)
                 VALUES (1, 'f', 'a', 'Matched', '', '', '[]', '[]', 1, 1, 5),
                        (2, 'f', 'b', 'Owed', '', '', '[]', '[]', 1, 1, NULL),
                        (3, 'f', 'c', 'Too old', '', '', '[]', '[]', 1, 0, NULL);",
            )
            .expect("rows");
        }
        let store = Store::open(dir.path()).expect("upgrade");
        let owed: Vec<String> = store
            .pending_articles()
            .expect("pending")
            .into_iter()
            .map(|p| p.article.title)
            .collect();
        assert_eq!(owed, ["Owed"]);
    }

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

    /// A store holding feed `f` with two freshly fetched articles, `a` and `b`, not yet matched.
    fn store_with_two_articles() -> (tempfile::TempDir, Store, DateTime<Utc>) {
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
        (dir, s, now)
    }

    fn store_with_matches() -> (tempfile::TempDir, Store, DateTime<Utc>) {
        let (dir, mut s, now) = store_with_two_articles();
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

    /// Every rule into one group.
    fn all(_: &str) -> Option<String> {
        Some("all".into())
    }

    /// Up to 10 articles of every group.
    fn plan(groups: &[GroupCount]) -> Vec<usize> {
        vec![10; groups.len()]
    }

    #[test]
    fn named_digests_assign_per_digest_and_record_the_slot_atomically() {
        let (_dir, mut s, now) = store_with_matches();
        let slot = Some(now);
        // A failing composer changes nothing, not even the slot.
        let err = s
            .compose_named("a", now, slot, all, plan, |_, _| Err("broke"))
            .unwrap_err();
        assert!(matches!(err, ComposeError::Compose("broke")));
        assert_eq!(s.digest_last_slot("a").unwrap(), None);
        // Nothing worth sending: the slot is served, the match stays pending.
        let none = s
            .compose_named("a", now, slot, all, plan, |_, _| {
                Ok::<_, std::convert::Infallible>(None)
            })
            .unwrap();
        assert!(none.is_none());
        assert_eq!(s.digest_last_slot("a").unwrap(), slot);
        assert_eq!(s.pending_for_digest("a").unwrap().len(), 1);
        // Composed for "a": gone for "a", still pending for "b".
        let c = s
            .compose_named("a", now, None, all, plan, |id, b| {
                assert_eq!((b.matches, b.articles, b.rows.len()), (1, 1, 1));
                Ok::<_, std::convert::Infallible>(Some(msg(&format!("<d{id}@x>"))))
            })
            .unwrap()
            .unwrap();
        assert_eq!(c.matches, 1);
        assert!(s.pending_for_digest("a").unwrap().is_empty());
        assert_eq!(s.pending_for_digest("b").unwrap().len(), 1);
        assert_eq!(
            s.message(c.outbox).unwrap().message_id,
            format!("<d{}@x>", c.digest)
        );
        // A digest whose rules select nothing composes from nothing.
        let c = s
            .compose_named(
                "b",
                now,
                None,
                |_| None,
                plan,
                |_, b| {
                    assert!(b.groups.is_empty() && b.rows.is_empty() && b.matches == 0);
                    Ok::<_, std::convert::Infallible>(None)
                },
            )
            .unwrap();
        assert!(c.is_none());
    }

    #[test]
    fn alerts_hold_matches_back_from_digests_until_deferred() {
        let (_dir, mut s, now) = store_with_two_articles();
        let pending = s.pending_articles().unwrap();
        let results: Vec<ArticleMatches> = pending
            .iter()
            .map(|p| ArticleMatches {
                article: p.id,
                matches: vec![("urgent".into(), vec![hit("x")])],
            })
            .collect();
        s.record_matches_routed(&results, now, |rule| {
            if rule == "urgent" {
                vec!["breaking".into()]
            } else {
                Vec::new()
            }
        })
        .unwrap();
        let queued = s.pending_alerts("breaking").unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(s.oldest_pending_alert().unwrap(), Some(now));
        assert!(
            s.pending_for_digest("d").unwrap().is_empty(),
            "held by the alert set"
        );
        let (first, second) = (queued[0].0, queued[1].0);
        let out = s
            .commit_alert("breaking", now, &[first], &[second], |_, m| {
                assert_eq!(m.len(), 1);
                Ok::<_, std::convert::Infallible>(msg("<a1@x>"))
            })
            .unwrap();
        assert!(out.is_some());
        assert!(s.pending_alerts("breaking").unwrap().is_empty());
        assert_eq!(
            s.alerts_composed_since("breaking", now - chrono::Duration::hours(1))
                .unwrap(),
            1
        );
        let digest: Vec<i64> = s
            .pending_for_digest("d")
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            digest,
            [second],
            "only the deferred match reaches the digest"
        );
        // A set removed from the config releases what it held.
        s.record_matches_routed(
            &[ArticleMatches {
                article: pending[0].id,
                matches: vec![("other".into(), vec![hit("y")])],
            }],
            now,
            |_| vec!["gone".into()],
        )
        .unwrap();
        assert_eq!(s.pending_alerts("gone").unwrap().len(), 1);
        assert_eq!(s.release_orphaned_alerts(&["breaking".into()]).unwrap(), 1);
        assert_eq!(s.pending_for_digest("d").unwrap().len(), 2);
        // Applying the same plan again does nothing: those ids are no longer pending.
        let again = s
            .commit_alert(
                "breaking",
                now,
                &[first],
                &[],
                |_, _| -> Result<NewMessage, std::convert::Infallible> {
                    panic!("nothing to send")
                },
            )
            .unwrap();
        assert!(again.is_none());
    }
}
