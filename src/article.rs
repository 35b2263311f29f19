//! The article: what one feed item becomes after parsing, and the feed facts matching needs.
//! Plain data; no IO, no parsing. Every text field is plain text (markup stripped, entities decoded).

use chrono::{DateTime, Utc};

/// One feed item, normalised into our own shape (never feed-rs's types past `parse`).
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
