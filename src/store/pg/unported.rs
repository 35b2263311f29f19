//! The contract methods not yet written for PostgreSQL (issue 17 is being built table by
//! table): each fails with `StoreError::NotOnPostgres` naming itself, so a node on PostgreSQL
//! stops at the first one with that message instead of losing anything. Porting a method is
//! deleting its line here and writing it in the file of its table.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Postgres;
use crate::store::{ComposeTx, DigestInfo, Pruned, RowCounts, StoreError, StoredArticle};

macro_rules! unported {
    (
        shared: $(fn $s:ident($($st:ty),*) -> $sr:ty;)*
        exclusive: $(fn $m:ident($($mt:ty),*) -> $mr:ty;)*
    ) => {
        impl Postgres {
            $(
                #[allow(clippy::unused_self)]
                pub(crate) fn $s(&self, $(_: $st),*) -> Result<$sr, StoreError> {
                    Err(StoreError::NotOnPostgres(stringify!($s)))
                }
            )*
            $(
                #[allow(clippy::unused_self)]
                pub(crate) fn $m(&mut self, $(_: $mt),*) -> Result<$mr, StoreError> {
                    Err(StoreError::NotOnPostgres(stringify!($m)))
                }
            )*
        }
    };
}

unported! {
    shared:
    // articles
    fn articles_since(DateTime<Utc>) -> Vec<StoredArticle>;
    fn row_counts() -> RowCounts;
    // alerts
    fn pending_alerts(&str) -> Vec<(i64, DateTime<Utc>)>;
    fn alerts_composed_since(&str, DateTime<Utc>) -> usize;
    // digests
    fn digest_last_slot(&str) -> Option<DateTime<Utc>>;
    fn last_digest_time(&str) -> Option<DateTime<Utc>>;
    fn recent_digests(usize) -> Vec<DigestInfo>;

    exclusive:
    fn prune(DateTime<Utc>, Duration, Duration) -> Pruned;
    fn release_orphaned_alerts(&[String]) -> usize;
    fn begin_compose() -> ComposeTx<'_>;
}
