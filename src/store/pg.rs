//! The PostgreSQL backend (issue 17): the state several nodes share. A small pool of synchronous
//! connections (`postgres`, through `r2d2`), each call taking one for its statement or
//! transaction, so a connection the server cut is replaced on the next call. Blocking like the
//! SQLite backend: never call it on an async worker (the driver runs a runtime of its own).
//! Split as the SQLite side is, by table; the cluster's own rows (nodes, leases) are `cluster`,
//! the SQLite-to-PostgreSQL copy is `copy`, and `unported` names what is not written yet.
//! Each pooled connection keeps the statements it prepared (`conn`), which the poll and match
//! write paths use, one statement per batch of rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use secrecy::ExposeSecret;

use super::StoreError;
use crate::config::PostgresSettings;

mod channels;
mod claims;
mod cluster;
mod compose;
mod conn;
mod console;
mod copy;
mod feeds;
mod full_text;
mod host_gates;
mod items;
mod matches;
mod outbox;
mod poll_history;
mod polls;
mod prune;
mod reads;
mod reloads;
mod schema;
mod spikes;
mod unported;
mod websub;

pub(crate) use compose::PgCompose;
pub use copy::CopyReport;
pub use host_gates::HostGates;

use conn::{Conn, Manager};

type Pool = r2d2::Pool<Manager>;

/// How long a call waits for a free or new connection before it fails (the server is down,
/// or every connection of the pool is busy).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The open PostgreSQL state, as node `node`.
pub(crate) struct Postgres {
    /// Always `Some` but in `drop` (see there).
    pool: Option<Pool>,
    /// The URL as configured (it never carries a password), for errors and `status`.
    url: String,
    node: String,
    lease: Duration,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.url)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects (at most `pool_size` connections, opened as needed) and brings the schema up to
    /// date; several nodes starting at once migrate one after the other (`schema::migrate`).
    pub(super) fn connect(settings: &PostgresSettings) -> Result<Postgres, StoreError> {
        let store = Self::pool(settings, false)?;
        schema::migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    /// Connects for reading only (the console): every transaction is read-only on the server's
    /// side (`default_transaction_read_only`), and the schema must be the one this newswatch
    /// knows; nothing migrates it.
    pub(super) fn connect_read_only(settings: &PostgresSettings) -> Result<Postgres, StoreError> {
        let store = Self::pool(settings, true)?;
        schema::check_version(&mut *store.conn()?)?;
        Ok(store)
    }

    fn pool(settings: &PostgresSettings, read_only: bool) -> Result<Postgres, StoreError> {
        let connect_err = |source| StoreError::PgConnect {
            url: settings.url.clone(),
            source,
        };
        let mut config: postgres::Config = settings.url.parse()?;
        if let Some(password) = &settings.password {
            config.password(password.expose_secret());
        }
        config.application_name(&format!("newswatch {}", settings.node_name));
        config.connect_timeout(CONNECT_TIMEOUT);
        if read_only {
            config.options("-c default_transaction_read_only=on");
        }
        let manager = Manager(PostgresConnectionManager::new(config, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // The pool's own log goes through `log`, which nothing here reads; failures come
            // back to the caller as errors instead.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(connect_err)?;
        Ok(Postgres {
            pool: Some(pool),
            url: settings.url.clone(),
            node: settings.node_name.clone(),
            lease: settings.lease,
        })
    }

    /// A second handle on the same pool (`Store::sibling`).
    pub(super) fn sibling(&self) -> Postgres {
        Postgres {
            pool: self.pool.clone(),
            url: self.url.clone(),
            node: self.node.clone(),
            lease: self.lease,
        }
    }

    /// A connection from the pool (a broken one is dropped and replaced by the pool).
    fn conn(&self) -> Result<Conn, StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::PgClosed)?;
        pool.get()
            .map(Conn)
            .map_err(|source| StoreError::PgConnect {
                url: self.url.clone(),
                source,
            })
    }
}

impl Drop for Postgres {
    /// Closes the pool on a plain thread: each connection drops a runtime of its own, which
    /// tokio refuses on an async thread (a pipeline dropped at the end of `run --once`).
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // A panic while closing loses nothing: every write was committed or rolled back.
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

fn ts(t: DateTime<Utc>) -> i64 {
    super::ts(t)
}

fn from_ts(s: i64) -> DateTime<Utc> {
    super::from_ts(s)
}

/// A count or limit stored as BIGINT, back to the unsigned type the model uses (never negative:
/// only this code writes them).
fn unsigned<T: TryFrom<i64> + Default>(v: i64) -> T {
    T::try_from(v).unwrap_or_default()
}
