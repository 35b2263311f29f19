//! The store contract: every public `Store` method, forwarded to the backend that holds the state
//! (`Sqlite`, or `pg::Postgres`). A method a new table brings is one line here, plus its SQLite
//! and PostgreSQL bodies (the PostgreSQL one may be a line of `pg/unported.rs` until written). No SQL here.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::console::{ArticleView, MatchFilter, MatchView, RuleCounts, SentEmail};
use super::{
    ArticleMatches, Backend, ComposeTx, DigestInfo, FeedNotice, FeedRecord, FeedState, HostGates,
    Inserted, Lease, NodeInfo, PageOutcome, PendingArticle, PollEntry, PollRecord, PollStored,
    Pruned, QueuedPage, ReloadInfo, RowCounts, Store, StoreError, StoredArticle, SubState,
    Subscription,
};
use crate::model::{
    AlertLatency, Article, ChannelCounts, ChannelMessage, MatchTimes, OutboxCounts, OutboxMessage,
};

/// `contract! { shared: fn a(x: T) -> R; ... exclusive: fn b(...) -> R; ... }` writes, for each,
/// `pub fn` on `Store` that calls the same method on the backend in use (`&self` for `shared`,
/// `&mut self` for `exclusive`).
macro_rules! contract {
    (
        shared: $(fn $s:ident($($sa:ident: $st:ty),*) -> $sr:ty;)*
        exclusive: $(fn $m:ident($($ma:ident: $mt:ty),*) -> $mr:ty;)*
    ) => {
        impl Store {
            $(
                pub fn $s(&self, $($sa: $st),*) -> $sr {
                    match &self.backend {
                        Backend::Sqlite(b) => b.$s($($sa),*),
                        Backend::Postgres(b) => b.$s($($sa),*),
                    }
                }
            )*
            $(
                pub fn $m(&mut self, $($ma: $mt),*) -> $mr {
                    match &mut self.backend {
                        Backend::Sqlite(b) => b.$m($($ma),*),
                        Backend::Postgres(b) => b.$m($($ma),*),
                    }
                }
            )*
        }
    };
}

contract! {
    shared:
    // schema.rs
    fn schema_version() -> Result<i64, StoreError>;
    // feeds.rs
    fn failing_feeds() -> Result<Vec<String>, StoreError>;
    fn feed_state(name: &str) -> Result<Option<FeedState>, StoreError>;
    fn feed_record(name: &str) -> Result<Option<FeedRecord>, StoreError>;
    fn feed_records() -> Result<Vec<FeedRecord>, StoreError>;
    fn feed_notices(since: DateTime<Utc>) -> Result<Vec<FeedNotice>, StoreError>;
    fn feed_warnings() -> Result<Vec<(String, String)>, StoreError>;
    // articles.rs
    fn pending_articles() -> Result<Vec<PendingArticle>, StoreError>;
    fn pending_articles_after(after: i64, limit: usize) -> Result<Vec<PendingArticle>, StoreError>;
    fn articles_since(cutoff: DateTime<Utc>) -> Result<Vec<StoredArticle>, StoreError>;
    fn row_counts() -> Result<RowCounts, StoreError>;
    // alerts.rs
    fn pending_alerts(set: &str) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError>;
    fn alerts_composed_since(set: &str, since: DateTime<Utc>) -> Result<usize, StoreError>;
    // digests.rs
    fn digest_last_slot(name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn last_digest_time(name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn recent_digests(limit: usize) -> Result<Vec<DigestInfo>, StoreError>;
    // outbox.rs
    fn message(id: i64) -> Result<OutboxMessage, StoreError>;
    fn alert_latencies(since: DateTime<Utc>) -> Result<Vec<AlertLatency>, StoreError>;
    fn outbox_counts() -> Result<OutboxCounts, StoreError>;
    fn queued_messages() -> Result<Vec<OutboxMessage>, StoreError>;
    fn next_outbox_attempt() -> Result<Option<DateTime<Utc>>, StoreError>;
    // rule_days.rs
    fn rule_counts(now: DateTime<Utc>, days: usize) -> Result<Vec<RuleCounts>, StoreError>;
    // poll_history.rs
    fn poll_history(feed: &str, limit: usize) -> Result<Vec<PollEntry>, StoreError>;
    // reloads.rs
    fn record_reload(at: DateTime<Utc>, applied: bool, detail: &str) -> Result<(), StoreError>;
    fn last_reload() -> Result<Option<ReloadInfo>, StoreError>;
    // pg/nodes.rs (cluster; on SQLite the one node is the whole cluster)
    fn nodes() -> Result<Vec<NodeInfo>, StoreError>;
    // host_gates.rs
    fn host_gates() -> Option<HostGates>;
    // console.rs (the web console's reads)
    fn console_matches(f: &MatchFilter) -> Result<Vec<MatchView>, StoreError>;
    fn feed_notice_history(feed: &str, limit_to: usize)
        -> Result<Vec<(String, DateTime<Utc>, String)>, StoreError>;
    fn sent_emails(before: Option<i64>, limit_to: usize) -> Result<Vec<SentEmail>, StoreError>;
    fn email_bytes(id: i64) -> Result<Option<Vec<u8>>, StoreError>;
    fn recent_articles(after: i64, limit_to: usize) -> Result<Vec<ArticleView>, StoreError>;
    // matches.rs
    fn match_counts() -> Result<Vec<(String, u64, u64)>, StoreError>;
    // channels.rs
    fn channel_message(id: i64) -> Result<ChannelMessage, StoreError>;
    fn next_channel_attempt() -> Result<Option<DateTime<Utc>>, StoreError>;
    fn channel_counts() -> Result<Vec<ChannelCounts>, StoreError>;
    fn failed_channel_messages(limit: usize) -> Result<Vec<ChannelMessage>, StoreError>;
    // spikes.rs
    fn spike_match_times(rules: &[String], since: DateTime<Utc>)
        -> Result<MatchTimes, StoreError>;
    fn spike_surging(spike: &str, rule: &str) -> Result<bool, StoreError>;
    // full_text.rs
    fn queued_pages(limit: usize) -> Result<Vec<QueuedPage>, StoreError>;
    fn fetched_page(link: &str) -> Result<Option<PageOutcome>, StoreError>;
    fn due_pages(now: DateTime<Utc>, limit: usize) -> Result<Vec<QueuedPage>, StoreError>;
    // websub.rs
    fn websub_subscriptions() -> Result<Vec<Subscription>, StoreError>;
    fn websub_by_token(token: &str) -> Result<Option<Subscription>, StoreError>;

    exclusive:
    // feeds.rs
    fn ensure_feed_list(feeds: &[(&str, &str)]) -> Result<(), StoreError>;
    // articles.rs
    fn prune(now: DateTime<Utc>, retention: Duration, keep_identities: Duration)
        -> Result<Pruned, StoreError>;
    // alerts.rs
    fn release_orphaned_alerts(configured: &[String]) -> Result<usize, StoreError>;
    // matches.rs
    fn record_matches(
        results: &[ArticleMatches],
        now: DateTime<Utc>,
        alert_routes: &HashMap<String, Vec<String>>,
        rules_hash: &str
    ) -> Result<usize, StoreError>;
    // compose.rs
    fn begin_compose() -> Result<ComposeTx<'_>, StoreError>;
    // outbox.rs
    fn due_messages(now: DateTime<Utc>) -> Result<Vec<OutboxMessage>, StoreError>;
    fn mark_sent(id: i64, now: DateTime<Utc>) -> Result<Vec<AlertLatency>, StoreError>;
    fn mark_retry(id: i64, error: &str, next_attempt: DateTime<Utc>) -> Result<(), StoreError>;
    fn mark_failed(id: i64, error: &str) -> Result<(), StoreError>;
    // polls.rs
    fn record_poll(feed: &str, poll: &PollRecord<'_>) -> Result<PollStored, StoreError>;
    fn record_polls(polls: &[(&str, PollRecord<'_>)]) -> Result<Vec<PollStored>, StoreError>;
    // pg/nodes.rs, pg/leases.rs (cluster)
    fn heartbeat(node: &NodeInfo) -> Result<(), StoreError>;
    fn claim_feeds(names: &[&str], now: DateTime<Utc>, limit: usize)
        -> Result<Vec<Lease>, StoreError>;
    fn take_feeds(names: &[&str], now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError>;
    fn release_feeds(names: &[&str]) -> Result<(), StoreError>;
    fn claim_pending_articles(after: i64, now: DateTime<Utc>, limit: usize)
        -> Result<Vec<PendingArticle>, StoreError>;
    fn holds_message(id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
    fn due_channel_messages(now: DateTime<Utc>) -> Result<Vec<ChannelMessage>, StoreError>;
    fn holds_channel_message(id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
    // channels.rs
    fn queue_channel_message(source: &str, channel: &str, payload: &str, now: DateTime<Utc>)
        -> Result<i64, StoreError>;
    fn mark_channel_sent(id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;
    fn mark_channel_retry(id: i64, error: &str, next_attempt: DateTime<Utc>)
        -> Result<(), StoreError>;
    fn mark_channel_failed(id: i64, error: &str) -> Result<(), StoreError>;
    // full_text.rs
    fn set_full_text_mode_list(modes: &[(&str, i64)]) -> Result<(), StoreError>;
    fn complete_page(page: &QueuedPage, outcome: &PageOutcome, now: DateTime<Utc>)
        -> Result<(), StoreError>;
    fn defer_page(article: i64, next_attempt: DateTime<Utc>) -> Result<(), StoreError>;
    fn prune_full_text_pages(before: DateTime<Utc>) -> Result<usize, StoreError>;
    // spikes.rs
    fn record_spike(spike: &str, rule: &str, surging: bool, now: DateTime<Utc>)
        -> Result<(), StoreError>;
    // websub.rs
    fn record_hub(feed: &str, hub: &str, topic: &str, token: &str, secret: &str)
        -> Result<bool, StoreError>;
    fn websub_requested(seen: &Subscription, state: SubState, now: DateTime<Utc>)
        -> Result<bool, StoreError>;
    fn websub_failed(feed: &str, error: &str, next_attempt: DateTime<Utc>)
        -> Result<(), StoreError>;
    fn websub_verified(feed: &str, lease: Duration, now: DateTime<Utc>) -> Result<(), StoreError>;
    fn websub_forget(feed: &str) -> Result<(), StoreError>;
    fn websub_bad_signature(feed: &str) -> Result<(), StoreError>;
    fn record_push(feed: &str, articles: &[Article], now: DateTime<Utc>, new_feed_window: Duration)
        -> Result<Inserted, StoreError>;
}

impl Store {
    /// Makes sure every configured `(name, url)` has a row and its URL is current (see the
    /// backends' `ensure_feed_list`), in one transaction.
    pub fn ensure_feeds<'f>(
        &mut self,
        feeds: impl IntoIterator<Item = (&'f str, &'f str)>,
    ) -> Result<(), StoreError> {
        let list: Vec<(&str, &str)> = feeds.into_iter().collect();
        self.ensure_feed_list(&list)
    }
}
