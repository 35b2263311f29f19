//! The channel message as stored in the outbox and as the `webhook` channel posts it: a
//! versioned JSON document (`version`, the event, its source, title, articles with link, feed,
//! time, snippet and terms). Every other channel renders its own shape from it at send time, so
//! a stored message never depends on a service's format. Pure.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::email_safety::{clean_line, safe_link};
use crate::digest::{Entry, snippet_text};

/// Bumped when a field changes meaning or disappears; new optional fields keep the version.
pub const PAYLOAD_VERSION: u32 = 1;

/// Articles a stored message lists at most (each channel shows fewer when its size limit says
/// so, and counts the rest); `total` is always the whole count.
pub const MAX_ARTICLES: usize = 50;

/// What caused the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// An `[[alert]]` set's batch of urgent matches.
    Alert,
    /// A `[[digest]]`'s summary.
    Digest,
    /// A `[[spike]]`: a rule's matches surged.
    Spike,
    /// `newswatch channels test`.
    Test,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Alert => "alert",
            Event::Digest => "digest",
            Event::Spike => "spike",
            Event::Test => "test",
        }
    }
}

/// The document (see docs/channels.md, "The webhook payload").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub version: u32,
    pub event: Event,
    /// The `[[alert]]`, `[[digest]]` or `[[spike]]` name.
    pub source: String,
    /// One line, like the email's subject.
    pub title: String,
    pub created: DateTime<Utc>,
    /// Articles the event carries in all; `articles` lists the first `MAX_ARTICLES`.
    pub total: usize,
    pub articles: Vec<PayloadArticle>,
    /// For a spike: the numbers behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<SpikeFacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadArticle {
    pub rule: String,
    pub rule_title: String,
    pub title: String,
    /// http(s) only, without credentials; absent when the feed gave none that is safe.
    pub link: Option<String>,
    pub feed: String,
    /// Published, else first seen.
    pub time: DateTime<Utc>,
    pub snippet: String,
    /// The matched words, each once, in order of appearance.
    pub terms: Vec<String>,
}

/// A spike's numbers: matches in the window against the baseline's usual count for a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeFacts {
    pub rule: String,
    pub window_seconds: u64,
    pub count: u64,
    /// Distinct feeds among the window's matches.
    pub feeds: u64,
    pub baseline: f64,
    pub threshold: f64,
}

impl Payload {
    /// A message of `event` from `source` carrying `entries` (each article once, in the given
    /// order, at most `MAX_ARTICLES`), `total` articles in all.
    pub fn from_entries(
        event: Event,
        source: &str,
        title: &str,
        entries: &[Entry],
        total: usize,
        now: DateTime<Utc>,
    ) -> Payload {
        let mut seen = HashSet::new();
        let articles: Vec<PayloadArticle> = entries
            .iter()
            .filter(|e| seen.insert(e.article_id))
            .take(MAX_ARTICLES)
            .map(article)
            .collect();
        Payload {
            version: PAYLOAD_VERSION,
            event,
            source: source.to_string(),
            title: clean_line(title, 200),
            created: now,
            total: total.max(articles.len()),
            articles,
            spike: None,
        }
    }

    /// The stored and posted bytes.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and times always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn article(e: &Entry) -> PayloadArticle {
    let mut terms: Vec<String> = Vec::new();
    for h in &e.hits {
        let t = clean_line(&h.text, 80);
        if !t.is_empty() && !terms.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            terms.push(t);
        }
    }
    PayloadArticle {
        rule: e.rule_id.clone(),
        rule_title: clean_line(&e.rule_title, 200),
        title: clean_line(&e.title, 300),
        link: e.link.as_deref().and_then(safe_link).map(|u| u.to_string()),
        feed: e.feed.clone(),
        time: e.time,
        snippet: snippet_text(e),
        terms,
    }
}
