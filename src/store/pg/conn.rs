//! A pooled PostgreSQL connection with its statement cache (issue 17's speed-up). The `postgres`
//! driver prepares a `&str` query on every call — a Parse/Describe round trip before the
//! execute's — and keeps no prepared statements of its own; so each connection of the pool
//! carries the statements it prepared, by their SQL text, for as long as it lives (SQLite's
//! `prepare_cached`). A connection the server cut is dropped by the pool with its statements.
//!
//! `Conn` dereferences to the `postgres::Client`, as the pool's connection did: `conn.query(..)`,
//! `conn.transaction()` and `&mut *conn` as a `&mut Client` keep working; the hot paths ask for
//! `cached_transaction` instead, whose statements are prepared once per connection.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;

use crate::store::StoreError;

/// The pool's manager: `r2d2_postgres`'s, each connection with an empty cache beside it.
#[derive(Debug)]
pub(super) struct Manager(pub PostgresConnectionManager<NoTls>);

/// What the pool holds: the client and the statements prepared on it.
pub(super) struct PgConn {
    client: Client,
    statements: Statements,
}

/// A failed connect or check, its causes in its text: the pool keeps only the text of the last
/// one, and the driver's own text says "error connecting to server" without the reason.
#[derive(Debug)]
pub(super) struct ConnectError(String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl From<postgres::Error> for ConnectError {
    fn from(e: postgres::Error) -> ConnectError {
        ConnectError(super::causes(&e))
    }
}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<PgConn, ConnectError> {
        Ok(PgConn {
            client: self.0.connect()?,
            statements: Statements::default(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), ConnectError> {
        Ok(self.0.is_valid(&mut conn.client)?)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// The statements a connection prepared, by their SQL text (always a constant of this code).
#[derive(Default)]
pub(super) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// `sql` prepared on `client` (its connection's cache first).
    fn get(
        &mut self,
        client: &mut impl postgres::GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql)?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }
}

/// A connection out of the pool (back in it when dropped).
pub(crate) struct Conn(pub(super) r2d2::PooledConnection<Manager>);

impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.0.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.0.client
    }
}

impl Conn {
    /// `f` in a transaction whose commit does not wait for the server's WAL flush
    /// (`synchronous_commit = off`): for writes that cost nothing to lose when the server
    /// crashes (a lease, a claim, a heartbeat: taken again, or expired). Nothing is ever
    /// half-written, and the next flushed commit (an outbox row's) flushes these with it; what
    /// they save is a flush each, 3 to 20 ms on a loaded machine against three round trips.
    pub(super) fn relaxed<T>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut tx = self.transaction()?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// A transaction whose statements come from the connection's cache.
    pub(super) fn cached_transaction(&mut self) -> Result<CachedTx<'_>, StoreError> {
        let PgConn { client, statements } = &mut *self.0;
        Ok(CachedTx {
            tx: client.transaction()?,
            statements,
        })
    }
}

/// A transaction, each statement of which is prepared once per connection.
pub(super) struct CachedTx<'c> {
    tx: Transaction<'c>,
    statements: &'c mut Statements,
}

impl CachedTx<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        Ok(self.statements.get(&mut self.tx, sql)?)
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.tx.execute(&s, params)?)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.tx.query(&s, params)?)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.tx.query_opt(&s, params)?)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.tx.query_one(&s, params)?)
    }

    /// A statement sent as text, unprepared (`SET LOCAL …`).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.tx.batch_execute(sql)?)
    }

    pub(super) fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}
