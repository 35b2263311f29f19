//! A composition as one unit of work the pipeline drives: `Store::begin_compose` opens it, the
//! pipeline gathers what an email carries (`digests.rs`, `alerts.rs`), renders it (pure, in
//! `digest`), then commits the rendered email with what it carries. Dropping the handle instead
//! (rendering failed) changes nothing. The store never calls back into the pipeline. This file
//! holds the handle and forwards each of its methods to the backend's transaction: SQLite's
//! (bodies in `digests.rs`, `alerts.rs`, `channels.rs`) or PostgreSQL's (`pg/compose.rs`).

use chrono::{DateTime, Utc};
use rusqlite::Transaction;

use super::digests::Composition;
use super::pg::PgCompose;
use super::{Sqlite, StoreError};
use crate::model::{DigestBatch, NewMessage, PendingMatch};

/// One open composition: a transaction from gather to commit. The commit relies on what the
/// gather saw: the id reserved for the email before rendering (its Message-ID carries it) and
/// the exact matches gathered (a digest assigns them set-based from a temp table; an alert only
/// those still pending). Nothing on this connection writes in between: the handle borrows the
/// store mutably, and the pipeline composes on one thread at a time. On SQLite another process
/// writing in between (WAL admits one writer) makes the commit fail with `SQLITE_BUSY`, with
/// nothing changed; the next cycle composes again. On PostgreSQL the transaction holds a
/// cluster-wide advisory lock from begin to commit or drop, so nodes compose one at a time and
/// each sees what the one before committed (`pg/compose.rs`).
#[derive(Debug)]
pub struct ComposeTx<'s> {
    inner: Inner<'s>,
}

#[derive(Debug)]
enum Inner<'s> {
    Sqlite(SqliteCompose<'s>),
    Postgres(Box<PgCompose>),
}

/// The SQLite side of a composition.
#[derive(Debug)]
pub(crate) struct SqliteCompose<'s> {
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
            inner: Inner::Sqlite(SqliteCompose {
                tx: self.conn.transaction()?,
                picked: Vec::new(),
                selected: 0,
            }),
        })
    }
}

impl SqliteCompose<'_> {
    fn next_digest_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM digests", [], |r| {
                r.get(0)
            })?)
    }

    fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }
}

impl ComposeTx<'static> {
    pub(super) fn postgres(pg: PgCompose) -> ComposeTx<'static> {
        ComposeTx {
            inner: Inner::Postgres(Box::new(pg)),
        }
    }
}

/// `forward! { fn name[ref | mut | own](arg: T, ...) -> R; ... }` writes each method of
/// `ComposeTx` (taking `&self`, `&mut self` or `self`), calling the same one on the backend's side.
macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident[$kind:ident]($($a:ident: $t:ty),*) -> $r:ty;)*) => {
        impl ComposeTx<'_> {
            $(forward!(@method $kind [$(#[$doc])*] $name ($($a: $t),*) $r);)*
        }
    };
    (@method ref [$($doc:tt)*] $name:ident ($($a:ident: $t:ty),*) $r:ty) => {
        $($doc)*
        pub fn $name(&self, $($a: $t),*) -> Result<$r, StoreError> {
            match &self.inner {
                Inner::Sqlite(b) => b.$name($($a),*),
                Inner::Postgres(b) => b.$name($($a),*),
            }
        }
    };
    (@method mut [$($doc:tt)*] $name:ident ($($a:ident: $t:ty),*) $r:ty) => {
        $($doc)*
        pub fn $name(&mut self, $($a: $t),*) -> Result<$r, StoreError> {
            match &mut self.inner {
                Inner::Sqlite(b) => b.$name($($a),*),
                Inner::Postgres(b) => b.$name($($a),*),
            }
        }
    };
    (@method own [$($doc:tt)*] $name:ident ($($a:ident: $t:ty),*) $r:ty) => {
        $($doc)*
        pub fn $name(self, $($a: $t),*) -> Result<$r, StoreError> {
            match self.inner {
                Inner::Sqlite(b) => b.$name($($a),*),
                Inner::Postgres(b) => b.$name($($a),*),
            }
        }
    };
}

forward! {
    /// The id the email composed in this transaction gets (its digest row): the email is
    /// rendered, with the id in its Message-ID, before the row exists.
    fn next_digest_id[ref]() -> i64;
    /// Commits what was written without an email (an alert plan that only deferred).
    fn commit[own]() -> ();
    /// Every rule id with a stored match: the caller decides which of them a digest carries,
    /// and in which group (rule selection is globs, Rust's business; asked once per rule).
    fn matched_rules[ref]() -> Vec<String>;
    /// Selects the matches digest `name` has not carried yet whose rule `rules` lists as
    /// (rule id, group key), and counts them: exact totals for every group; `rows` stay empty
    /// until `load_rows`. Every selected match is what `commit_digest` assigns.
    fn gather_pending[mut](name: &str, rules: &[(String, String)]) -> DigestBatch;
    /// `gather_pending` over every match recorded at or after `since`, carried or not
    /// (previews).
    fn gather_since[mut](since: DateTime<Utc>, rules: &[(String, String)]) -> DigestBatch;
    /// For each group of the last gather, the distinct articles its rules matched (by when the
    /// match was recorded) per day back from `now`, `days` + 1 days: the trend line.
    fn daily_counts[ref](now: DateTime<Utc>, days: usize) -> Vec<Vec<usize>>;
    /// The full rows of the last gather's groups: every picked match of the `plan[i]` newest
    /// articles whose first group is `i` (newest by published, else first seen).
    fn load_rows[ref](plan: &[usize]) -> Vec<PendingMatch>;
    /// Rule `rule`'s newest `limit` matches whose article was first seen after `since`, with
    /// what an email shows of them (the surge's headlines), newest first.
    fn gather_surge[mut](rule: &str, since: DateTime<Utc>, limit: usize) -> Vec<PendingMatch>;
    /// Commits a surge that begins: the rule's state, the email (its digest row of kind
    /// `spike` and its outbox row) and a channel message per channel, in one transaction.
    /// Returns the email's outbox id.
    fn commit_spike[own](alert: &super::SpikeAlert<'_>, now: DateTime<Utc>) -> Option<i64>;
    /// Commits digest `name` (id from `next_digest_id`): with a `message`, the digest row, its
    /// outbox row and the assignment of every gathered match (shown or only counted), all or
    /// nothing; `slot` (when scheduled) is recorded as served either way. No message (nothing
    /// worth sending) leaves the matches pending.
    fn commit_digest[own](
        name: &str,
        id: i64,
        now: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
        message: Option<&NewMessage>
    ) -> Option<Composition>;
    /// The last schedule slot digest `name` served, as this transaction sees it: on
    /// PostgreSQL, after every composition another node committed before this one began.
    fn last_slot[ref](name: &str) -> Option<DateTime<Utc>>;
    /// Hands the matches `ids` that alert set `set` still holds pending to the digests.
    fn defer_alerts[mut](set: &str, ids: &[i64]) -> ();
    /// The matches of `ids` that alert set `set` still holds pending, for its email; ids no
    /// longer pending (a plan applied twice, or by another node) are left out.
    fn gather_alert[mut](set: &str, ids: &[i64]) -> Vec<PendingMatch>;
    /// Commits alert email `message` of set `set` (id from `next_digest_id`): its digest and
    /// outbox rows, and the `matches` it carries marked sent. Returns the outbox id.
    fn commit_alert[own](
        set: &str,
        id: i64,
        now: DateTime<Utc>,
        message: &NewMessage,
        matches: &[i64]
    ) -> i64;
    /// Queues `payload` for each of `channels`, in the composition's transaction (it commits
    /// with the email and the matches it carries, or not at all).
    fn queue_channels[mut](
        digest: i64,
        source: &str,
        channels: &[String],
        payload: &str,
        now: DateTime<Utc>
    ) -> ();
}
