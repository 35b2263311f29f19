//! A composition as one unit of work the pipeline drives: `Store::begin_compose` opens it, the
//! pipeline gathers what an email carries (`digests.rs`, `alerts.rs`), renders it (pure, in
//! `digest`), then commits the rendered email with what it carries. Dropping the handle instead
//! (rendering failed) changes nothing. The store never calls back into the pipeline.

use rusqlite::Transaction;

use super::{Sqlite, StoreError};

/// One open composition: a transaction from gather to commit. The commit relies on what the
/// gather saw: the id reserved for the email before rendering (its Message-ID carries it) and
/// the exact matches gathered (a digest assigns them set-based from a temp table; an alert only
/// those still pending). Nothing on this connection writes in between: the handle borrows the
/// store mutably, and the pipeline composes on one thread at a time. Another process writing in
/// between (SQLite's WAL admits one writer) makes the commit fail with `SQLITE_BUSY`, with nothing
/// changed; the next cycle composes again.
#[derive(Debug)]
pub struct ComposeTx<'s> {
    pub(super) tx: Transaction<'s>,
    /// The temp-table group number of each group the last digest gather returned, in its order.
    pub(super) picked: Vec<i64>,
    /// Matches the last digest gather selected: what a digest commit assigns.
    pub(super) selected: usize,
}

impl Sqlite {
    /// Opens a composition (see `ComposeTx`).
    pub fn begin_compose(&mut self) -> Result<ComposeTx<'_>, StoreError> {
        Ok(ComposeTx {
            tx: self.conn.transaction()?,
            picked: Vec::new(),
            selected: 0,
        })
    }
}

impl ComposeTx<'_> {
    /// The id the email composed in this transaction gets (its digest row): the email is rendered,
    /// with the id in its Message-ID, before the row exists.
    pub fn next_digest_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM digests", [], |r| {
                r.get(0)
            })?)
    }

    /// Commits what was written without an email (an alert plan that only deferred).
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }
}
