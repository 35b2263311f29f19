//! The state database, split by table: SQLite (one file `newswatch.db` in the state directory,
//! one `impl Sqlite` per file below) or PostgreSQL shared by several nodes (`pg`, issue 17).
//! `Store` is the one contract callers see (`dispatch`). This file opens the database and holds
//! what every table shares. The only module that speaks SQL. Synchronous: async callers go through
//! `spawn_blocking` and never hold a connection across an await (the PostgreSQL driver blocks on a
//! runtime of its own). Every time comes in as an argument; nothing reads the clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags};

mod alerts;
mod articles;
mod batch;
mod channels;
mod cluster;
mod compose;
mod console;
mod digests;
mod dispatch;
mod feeds;
mod full_text;
mod host_gates;
mod items;
mod matches;
mod outbox;
mod pg;
mod poll_history;
mod polls;
mod reloads;
mod rule_days;
mod schema;
mod spikes;
#[cfg(test)]
mod testing;
mod websub;

pub use articles::{PendingArticle, Pruned, RowCounts, StoredArticle};
pub use cluster::{Lease, NodeInfo};
pub use compose::ComposeTx;
pub use console::{ArticleView, MatchFilter, MatchView, RuleCounts, SentEmail};
pub use digests::{Composition, DigestInfo};
pub use feeds::{FeedNotice, FeedRecord, FeedState};
pub use full_text::{MODE_ALWAYS, MODE_OFF, PageOutcome, QueuedPage};
pub use host_gates::{HostGates, HostSlot, SlotTake};
pub use matches::ArticleMatches;
pub use pg::CopyReport;
pub use poll_history::{HISTORY_PER_FEED, PollEntry, PollStats};
pub use polls::{Inserted, PollRecord, PollResult, PollStored, REDIRECT_REPEATS};
pub use reloads::ReloadInfo;
pub use spikes::SpikeAlert;
pub use websub::{SubState, Subscription};

/// Prepared statements kept per connection: enough for every statement of a poll's write plus
/// the other stages', so none is re-parsed per feed or per item.
const STATEMENT_CACHE: usize = 64;

/// SQLite's page cache per connection, in KiB (its default is 2,000 KiB). Pages the cache drops
/// are read again from the OS's file cache, not the disk: a cold cycle of 200 feeds × 50 items
/// peaked 1.7 MB lower at 512 KiB with no CPU cost seen (BENCHMARKS.md, issue 22).
const PAGE_CACHE_KIB: i64 = 512;

/// The database file inside the state directory.
pub const DB_FILE: &str = "newswatch.db";

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
    /// The pool's error already says why (each cause in its text: `pg::conn`), so it is said
    /// once, not again as a source.
    #[error("PostgreSQL store {url}: {reason}")]
    PgConnect {
        /// Without a password (`[store] url` never carries one).
        url: String,
        reason: r2d2::Error,
    },
    /// The driver's error with its causes in the text (its own says only "db error" or
    /// "error connecting to server"), said once.
    #[error("PostgreSQL: {}", pg::causes(.0))]
    Pg(postgres::Error),
    #[error("PostgreSQL store: {0}")]
    PgPool(#[from] r2d2::Error),
    #[error("the PostgreSQL store is closed")]
    PgClosed,
    #[error(
        "{0} is not implemented on the PostgreSQL store yet (issue 17); run this node on SQLite \
         (remove `[store]`) until it is"
    )]
    NotOnPostgres(&'static str),
    #[error(
        "the PostgreSQL store {url} already holds {feeds} feeds: a copy goes into an empty \
         database only (create a new one, or drop this one's tables)"
    )]
    CopyTargetNotEmpty { url: String, feeds: i64 },
    #[error(
        "cannot copy {at} ({rows} rows): PostgreSQL has no place for it yet (issue 17 ports the \
         store table by table); nothing was copied"
    )]
    CopyUnported { at: String, rows: u64 },
    #[error("cannot copy {at}: the value is not a valid {expected}")]
    CopyValue { at: String, expected: String },
    #[error("a copy goes from a SQLite store into a PostgreSQL store")]
    CopyDirection,
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

/// The open state database: the contract every caller uses, whichever backend holds the state.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(pg::Postgres),
}

/// The SQLite backend: one connection, one process (the instance lock sees to that).
#[derive(Debug)]
pub(crate) struct Sqlite {
    conn: Connection,
    /// Outbox messages the server accepted (250 to the final dot) whose `sent` mark failed to
    /// commit (disk full, say), with when they were accepted. Retried before any message is
    /// handed out to send again (`due_messages`), so an accepted message is never sent twice by
    /// this process; see `outbox.rs`.
    accepted: Vec<(i64, DateTime<Utc>)>,
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
        Ok(Store {
            backend: Backend::Sqlite(Sqlite::open_file(path)?),
        })
    }

    /// Opens an existing database for reading only (`newswatch status`): no directory is made,
    /// no migration runs, nothing is written.
    pub fn open_read_only(state_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(Sqlite::open_read_only(state_dir)?),
        })
    }

    /// Connects to the PostgreSQL state of `[store]` (creating or upgrading its schema) as node
    /// `settings.node_name`. Blocking: call it from `spawn_blocking` or a plain thread.
    pub fn open_postgres(settings: &crate::config::PostgresSettings) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(pg::Postgres::connect(settings)?),
        })
    }

    /// Connects to the PostgreSQL state of `[store]` for reading only (the console): the
    /// server refuses any write on these connections, and a schema this newswatch does not
    /// know exactly is refused (`TooOld`, `TooNew`), never migrated. Blocking, as `open_postgres`.
    pub fn open_postgres_read_only(
        settings: &crate::config::PostgresSettings,
    ) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(pg::Postgres::connect_read_only(settings)?),
        })
    }

    /// Another handle on this PostgreSQL store's connection pool (the same node and settings),
    /// for work that runs beside this handle's: the poll writer's batches in flight (issue 17).
    /// `None` on SQLite, whose one connection is its one writer.
    pub fn sibling(&self) -> Option<Store> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(Store {
                backend: Backend::Postgres(pg.sibling()),
            }),
        }
    }

    /// Which backend holds the state, for logs and `status`: `sqlite` or `postgresql`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// Copies this SQLite state into `target`, an empty PostgreSQL store, in one transaction
    /// (`newswatch store migrate-to`). This store is only read.
    pub fn copy_into(&self, target: &mut Store) -> Result<CopyReport, StoreError> {
        match (&self.backend, &mut target.backend) {
            (Backend::Sqlite(src), Backend::Postgres(dst)) => dst.copy_from(src),
            _ => Err(StoreError::CopyDirection),
        }
    }

    /// The SQLite backend, for the unit tests that look under the contract (pragmas, triggers).
    #[cfg(test)]
    fn sqlite(&self) -> &Sqlite {
        match &self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("this test inspects SQLite itself"),
        }
    }

    /// The SQLite connection under the contract, for those tests.
    #[cfg(test)]
    fn conn(&self) -> &Connection {
        &self.sqlite().conn
    }

    #[cfg(test)]
    fn sqlite_mut(&mut self) -> &mut Sqlite {
        match &mut self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("this test inspects SQLite itself"),
        }
    }
}

impl Sqlite {
    /// Opens the database at exactly `path`.
    fn open_file(path: &Path) -> Result<Sqlite, StoreError> {
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
        set_page_cache(&conn).map_err(open_err)?;
        let mut store = Sqlite {
            conn,
            accepted: Vec::new(),
        };
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

    fn open_read_only(state_dir: &Path) -> Result<Sqlite, StoreError> {
        let path = state_dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        set_page_cache(&conn).map_err(open_err)?;
        let store = Sqlite {
            conn,
            accepted: Vec::new(),
        };
        let found = store.schema_version()?;
        let known = schema::MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found < known {
            return Err(StoreError::TooOld { found, known });
        }
        Ok(store)
    }
}

/// Bounds the page cache of `conn`'s main database and of its temp database (the compose
/// transaction's temp tables), each to `PAGE_CACHE_KIB` (a negative `cache_size` is KiB).
fn set_page_cache(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(Some("main"), "cache_size", -PAGE_CACHE_KIB)?;
    conn.pragma_update(Some("temp"), "cache_size", -PAGE_CACHE_KIB)
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
    use super::testing::open;
    use super::*;

    #[test]
    fn opens_with_wal_and_latest_schema_and_private_dir() {
        let (dir, store) = open();
        let latest = schema::MIGRATIONS.len() as i64;
        assert_eq!(store.schema_version().unwrap(), latest);
        let mode: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        for db in ["main", "temp"] {
            let kib: i64 = store
                .conn()
                .pragma_query_value(Some(db), "cache_size", |r| r.get(0))
                .unwrap();
            assert_eq!(kib, -PAGE_CACHE_KIB, "{db}");
        }
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
        assert_eq!(again.schema_version().unwrap(), latest);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let (dir, store) = open();
        store
            .conn()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        let err = Store::open(&dir.path().join("state")).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }
}
