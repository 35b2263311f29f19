//! The contract methods not yet written for PostgreSQL: each fails with
//! `StoreError::NotOnPostgres` naming itself, so a node on PostgreSQL stops at the first one with
//! that message instead of losing anything. Porting a method is deleting its line here and
//! writing it in the file of its table. Empty since issue 17's port; a new SQLite method may
//! start here.

// What the lines of the list name (none at the moment: every contract method is written).
#[allow(unused_imports)]
use super::Postgres;
#[allow(unused_imports)]
use chrono::{DateTime, Utc};

use crate::model::Article;
use crate::store::{Inserted, StoreError, SubState, Subscription};

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
    // websub.rs (issue 20's WebSub subscriptions; `[websub]` with `[store]` is refused at load)
    fn websub_subscriptions() -> Vec<Subscription>;
    fn websub_by_token(&str) -> Option<Subscription>;

    exclusive:
    fn record_hub(&str, &str, &str, &str, &str) -> bool;
    fn websub_requested(&str, SubState, DateTime<Utc>) -> ();
    fn websub_failed(&str, &str, DateTime<Utc>) -> ();
    fn websub_verified(&str, std::time::Duration, DateTime<Utc>) -> ();
    fn websub_forget(&str) -> ();
    fn websub_bad_signature(&str) -> ();
    fn record_push(&str, &[Article], DateTime<Utc>, std::time::Duration) -> Inserted;
}
