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
pub use host_gates::{HostGates, HostSlot, SlotTake};

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
    /// Outbox messages the server accepted whose `sent` mark could not be committed (the
    /// database went away after the 250), with when they were accepted: committed before this
    /// node claims anything to send (`outbox.rs`), so it never sends an accepted message again.
    accepted: Vec<(i64, DateTime<Utc>)>,
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
        let connect_err = |reason| StoreError::PgConnect {
            url: settings.url.clone(),
            reason,
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
            accepted: Vec::new(),
        })
    }

    /// A second handle on the same pool (`Store::sibling`).
    pub(super) fn sibling(&self) -> Postgres {
        Postgres {
            pool: self.pool.clone(),
            url: self.url.clone(),
            node: self.node.clone(),
            lease: self.lease,
            // Owed `sent` marks stay with the handle that sends (a sibling writes polls).
            accepted: Vec::new(),
        }
    }

    /// A connection from the pool (a broken one is dropped and replaced by the pool).
    fn conn(&self) -> Result<Conn, StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::PgClosed)?;
        pool.get()
            .map(Conn)
            .map_err(|reason| StoreError::PgConnect {
                url: self.url.clone(),
                reason,
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

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Pg(e)
    }
}

/// `e` and each of its causes, `: `-separated: the driver's own text names only the kind of
/// failure ("error connecting to server"), its cause says which ("No such file or directory").
pub(super) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::super::testing::pg_server::PrivateServer;
    use super::super::testing::t;
    use crate::config::PostgresSettings;
    use crate::store::Store;

    /// PostgreSQL restarted under a running node (`pg_ctl stop -m fast`, then `start`): while it
    /// is down a call fails with an error naming the store; once it is back the pool replaces
    /// the connections the stop cut, and the node carries on with the state as it was.
    #[test]
    fn a_restarted_server_is_reconnected() {
        let server = PrivateServer::start("restart");
        let settings = PostgresSettings {
            url: server.url("restart"),
            password: None,
            pool_size: 2,
            node_name: "node-restart".into(),
            lease: PostgresSettings::DEFAULT_LEASE,
        };
        let mut s = Store::open_postgres(&settings).expect("open");
        s.ensure_feeds([("f1", "https://1.example/")])
            .expect("feeds");
        let now = t("2026-03-01T08:00:00Z");
        assert_eq!(s.claim_feeds(&["f1"], now, 5).expect("claim").len(), 1);

        server.stop();
        let down = s.feed_records().expect_err("the server is down");
        let said = down.to_string();
        assert!(said.contains(&settings.url), "{said}");

        server.start_again();
        let records = s
            .feed_records()
            .expect("a new connection after the restart");
        assert_eq!(
            records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["f1"]
        );
        // The lease taken before the stop is in the database, not in a connection: still held.
        assert_eq!(s.claim_feeds(&["f1"], now, 5).expect("claim").len(), 1);
    }
}
