//! Plain data shared by the stages: what a feed item becomes (`Article`, `FeedMeta`), a feed's
//! HTTP validators, a stored match as an email shows it, what one digest would carry, and the
//! outgoing messages of the outbox. No IO, no parsing, no behaviour beyond naming a value: a stage
//! imports these instead of importing another stage for its types.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One feed item, normalised into our own shape (never feed-rs's types past `parse`). Every text
/// field is plain text (markup stripped, entities decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Article {
    /// Stable identity within its feed: guid, else canonical link, else a hash of title and summary.
    /// Never derived from feed-rs's generated ids, which change on every parse.
    pub key: String,
    /// Canonical link (tracking parameters removed), http/https only.
    pub link: Option<String>,
    pub title: String,
    pub summary: String,
    pub content: String,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    /// Declared language tag (`en-GB`), item level or inherited from the feed.
    pub lang: Option<String>,
    /// The language detected from the text when none is declared (`parse::language`); `None`
    /// whenever `lang` is set, so a declared language always wins.
    pub lang_detected: Option<String>,
    pub published: Option<DateTime<Utc>>,
}

/// What the matcher may know about the feed an article came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedMeta {
    /// The configured feed name.
    pub name: String,
    /// The feed's own title, when it declares one.
    pub title: Option<String>,
    /// Configured tags (`uk-press`), matched by rules' `feeds = ["tag:uk-press"]`.
    pub tags: Vec<String>,
}

/// HTTP cache validators remembered per feed (RFC 9110 §8.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// One matched term as stored (the DB row's own shape, not the matcher's type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHit {
    pub field: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A stored rule match with what an email shows about its article.
#[derive(Debug, Clone)]
pub struct PendingMatch {
    pub id: i64,
    pub rule_id: String,
    pub hits: Vec<StoredHit>,
    pub article_id: i64,
    pub feed: String,
    pub feed_title: Option<String>,
    pub title: String,
    pub link: Option<String>,
    /// Shared by every loaded row of the article (`load_rows`): one copy per article, not one
    /// per match (issue 22: at 10,000 rules an article is loaded with up to dozens of matches).
    pub summary: Arc<str>,
    /// The article's full text, for a snippet around a hit found there; shared like `summary`.
    pub content: Arc<str>,
    /// `content` is the article page's text, fetched for a `full_text` feed (issue 20).
    pub full_text: bool,
    /// The article's language: declared, else detected (issue 20).
    pub lang: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub first_seen: DateTime<Utc>,
    /// The rule set the match was found with (`RuleSet::fingerprint`); `None` when unknown (a
    /// match stored before it was recorded).
    pub rules_hash: Option<String>,
}

/// One group of a digest (the caller's key, in practice the rule title) and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub key: String,
    /// Distinct articles among the group's matches.
    pub articles: usize,
}

/// What a digest would carry: exact totals over every selected pending match, and full rows only
/// for what the load plan asked.
#[derive(Debug, Clone, Default)]
pub struct DigestBatch {
    /// Every group with a selected pending match, in the caller's rule order.
    pub groups: Vec<GroupCount>,
    /// For each group (same order), the distinct articles its rules matched per day back from
    /// now: `[0]` the last 24 hours, `[1]` the 24 before, … (`TREND_DAYS` + 1 days); empty until
    /// `daily_counts`.
    pub daily: Vec<Vec<usize>>,
    /// Distinct articles over every group.
    pub articles: usize,
    /// Selected pending matches: what composing the digest assigns to it.
    pub matches: usize,
    /// For each group, the matches of its newest articles, as many articles as the plan asked.
    pub rows: Vec<PendingMatch>,
}

/// A composed email ready for the outbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub digest_name: String,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Queued,
    Sent,
    Failed,
}

/// One outbox row.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub digest_name: String,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// One queued message for a `[[channel]]` (the channel outbox's row): the stored payload is
/// rendered into the service's shape at each attempt; `key` is its idempotency key (and Matrix
/// transaction id), the same on every attempt.
#[derive(Debug, Clone)]
pub struct ChannelMessage {
    pub id: i64,
    pub channel: String,
    /// The `[[alert]]`, `[[digest]]` or `[[spike]]` that made it (or `channels test`).
    pub source: String,
    pub payload: String,
    pub key: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
}

/// One channel's messages by state, for `status`, `/metrics` and the console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    pub channel: String,
    pub counts: OutboxCounts,
    /// Of the queued, those already tried at least once (waiting for their next attempt).
    pub retrying: usize,
    /// The earliest next attempt of a queued message.
    pub next_attempt: Option<DateTime<Utc>>,
    /// The newest error of a queued or failed message.
    pub last_error: Option<String>,
    pub last_sent: Option<DateTime<Utc>>,
}

/// Several rules' matches since a time, as spike detection reads them: per rule (in the order
/// asked), each match's article first-seen time and feed (an index into `feeds`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchTimes {
    pub feeds: Vec<String>,
    pub rules: Vec<Vec<(DateTime<Utc>, u32)>>,
}

/// What the outbox holds, for summaries and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
}

/// How long one alerted article took, measured when its alert was accepted by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLatency {
    /// From its first sight (the response of the poll that brought it) to the alert's acceptance.
    pub from_fetch: std::time::Duration,
    /// From its first sight to its match being recorded.
    pub to_match: Option<std::time::Duration>,
    /// From the feed's publication date, when that date is sane: not after the first sight, and
    /// at most `AlertLatency::SANE_PUBLISHED` before it (an older item is a backlog, not news).
    pub from_published: Option<std::time::Duration>,
}

impl AlertLatency {
    pub const SANE_PUBLISHED: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

    /// From stored milliseconds: first seen, matched, sent; `published` in seconds. `None` for an
    /// article stored before latencies were recorded.
    pub fn from_millis(
        seen: Option<i64>,
        matched: Option<i64>,
        sent: i64,
        published: Option<i64>,
    ) -> Option<AlertLatency> {
        let seen = seen?;
        let span = |from: i64, to: i64| {
            u64::try_from(to - from)
                .ok()
                .map(std::time::Duration::from_millis)
        };
        let published = published
            .and_then(|p| p.checked_mul(1000))
            .filter(|p| span(*p, seen).is_some_and(|d| d <= Self::SANE_PUBLISHED));
        Some(AlertLatency {
            from_fetch: span(seen, sent).unwrap_or_default(),
            to_match: matched.and_then(|m| span(seen, m)),
            from_published: published.and_then(|p| span(p, sent)),
        })
    }
}
