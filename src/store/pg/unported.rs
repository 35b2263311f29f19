//! The contract methods not yet written for PostgreSQL (issue 17 is being built table by
//! table): each fails with `StoreError::NotOnPostgres` naming itself, so a node on PostgreSQL
//! stops at the first one with that message instead of losing anything. Porting a method is
//! deleting its line here and writing it in the file of its table.

use super::Postgres;
use chrono::{DateTime, Utc};

use crate::model::{ChannelCounts, ChannelMessage, SpikeHeadline};
use crate::store::console::{ArticleView, MatchFilter, MatchView, RuleCounts, SentEmail};
use crate::store::{ComposeTx, PageOutcome, QueuedPage, StoreError};

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
    // channels.rs, spikes.rs (issue 19's tables)
    fn due_channel_messages(DateTime<Utc>) -> Vec<ChannelMessage>;
    fn channel_message(i64) -> ChannelMessage;
    fn next_channel_attempt() -> Option<DateTime<Utc>>;
    fn channel_counts() -> Vec<ChannelCounts>;
    fn rule_match_times(&str, DateTime<Utc>) -> Vec<(DateTime<Utc>, String)>;
    fn rule_headlines(&str, DateTime<Utc>, usize) -> Vec<SpikeHeadline>;
    fn spike_surging(&str, &str) -> bool;
    // console.rs (issue 18's reads)
    fn console_matches(&MatchFilter) -> Vec<MatchView>;
    fn rule_counts(DateTime<Utc>, usize) -> Vec<RuleCounts>;
    fn feed_notice_history(&str, usize) -> Vec<(String, DateTime<Utc>, String)>;
    fn sent_emails(Option<i64>, usize) -> Vec<SentEmail>;
    fn email_bytes(i64) -> Option<Vec<u8>>;
    fn recent_articles(i64, usize) -> Vec<ArticleView>;
    // poll_history.rs (issue 18's per-poll history)
    fn poll_history(&str, usize) -> Vec<crate::store::PollEntry>;
    // full_text.rs (issue 20's full-text queue)
    fn queued_pages(usize) -> Vec<QueuedPage>;
    fn fetched_page(&str) -> Option<PageOutcome>;

    exclusive:
    fn begin_compose() -> ComposeTx<'_>;
    fn queue_channel_message(&str, &str, &str, DateTime<Utc>) -> i64;
    fn mark_channel_sent(i64, DateTime<Utc>) -> ();
    fn mark_channel_retry(i64, &str, DateTime<Utc>) -> ();
    fn mark_channel_failed(i64, &str) -> ();
    fn set_full_text_mode_list(&[(&str, i64)]) -> ();
    fn complete_page(&QueuedPage, &PageOutcome, DateTime<Utc>) -> ();
    fn record_spike(&str, &str, bool, Option<(&[String], &str)>, DateTime<Utc>) -> ();
}
