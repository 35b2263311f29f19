//! The contract methods not yet written for PostgreSQL: each fails with
//! `StoreError::NotOnPostgres` naming itself, so a node on PostgreSQL stops at the first one with
//! that message instead of losing anything. Porting a method is deleting its line here and
//! writing it in the file of its table. Empty since the console's poll history and WebSub were
//! ported (issues 18 and 20 on issue 17's backend); a new SQLite method may start here, as
//! `fn name(ArgType, …) -> ReturnType;` under `shared:` (`&self`) or `exclusive:` (`&mut self`).

// What the lines of the list name (none at the moment: every contract method is written).
#[allow(unused_imports)]
use super::Postgres;
#[allow(unused_imports)]
use crate::store::StoreError;

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
    exclusive:
}
