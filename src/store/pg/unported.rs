//! The contract methods not yet written for PostgreSQL (issue 17 is being built table by
//! table): each fails with `StoreError::NotOnPostgres` naming itself, so a node on PostgreSQL
//! stops at the first one with that message instead of losing anything. Porting a method is
//! deleting its line here and writing it in the file of its table.

use super::Postgres;
use chrono::{DateTime, Utc};

use crate::store::StoreError;
use crate::store::console::{ArticleView, MatchFilter, MatchView, RuleCounts, SentEmail};

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
    // console.rs (issue 18's reads)
    fn console_matches(&MatchFilter) -> Vec<MatchView>;
    fn rule_counts(DateTime<Utc>, usize) -> Vec<RuleCounts>;
    fn feed_notice_history(&str, usize) -> Vec<(String, DateTime<Utc>, String)>;
    fn sent_emails(Option<i64>, usize) -> Vec<SentEmail>;
    fn email_bytes(i64) -> Option<Vec<u8>>;
    fn recent_articles(i64, usize) -> Vec<ArticleView>;

    exclusive:
}
