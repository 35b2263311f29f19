//! Digest and alert emails: matches grouped by rule, the same story from several outlets shown
//! once, each entry with a highlighted snippet and a "matched:" line. A digest renders from a
//! `Batch`: exact totals for every group, entries only for the stories it can show (`render`),
//! then becomes a multipart/alternative message with stable headers (`message`).
//! Pure: no IO, no clock (`now` is an argument). Feed text is untrusted: every string goes through
//! `email_safety` and the HTML template's auto-escaping; only http/https links are emitted.

pub mod alerts;
pub mod cluster;
pub mod email_safety;
mod message;
mod render;
mod snippet;
pub mod spec;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{AlertConfig, DigestConfig, Templates};
use crate::digest::email_safety::clean_line;
use crate::digest::spec::WhenEmpty;
use crate::model::{DigestBatch, GroupCount, PendingMatch, StoredHit};

pub use render::{MAX_HTML_BYTES, render};

/// Articles loaded per shown story, so clustering still finds the other outlets of a story.
const LOAD_MARGIN: usize = 3;

/// One matched article under one rule, as the digest shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rule_id: String,
    /// The matching rule's title (the group heading).
    pub rule_title: String,
    /// Configured feed name.
    pub feed: String,
    /// The feed's own title, when it declares one.
    pub feed_title: Option<String>,
    /// Identifies the article across groups, so the subject counts articles, not matches.
    pub article_id: i64,
    pub title: String,
    pub link: Option<String>,
    pub summary: String,
    pub content: String,
    /// Published time, else the time we first saw it.
    pub time: DateTime<Utc>,
    /// Where the rule matched: byte spans into the original field text.
    pub hits: Vec<StoredHit>,
}

/// Stored matches as digest entries; a rule removed since it matched shows its id.
pub fn entries(matches: &[PendingMatch], titles: &HashMap<String, String>) -> Vec<Entry> {
    matches
        .iter()
        .map(|m| Entry {
            rule_id: m.rule_id.clone(),
            rule_title: titles
                .get(&m.rule_id)
                .cloned()
                .unwrap_or_else(|| m.rule_id.clone()),
            feed: m.feed.clone(),
            feed_title: m.feed_title.clone(),
            article_id: m.article_id,
            title: m.title.clone(),
            link: m.link.clone(),
            summary: m.summary.clone(),
            content: m.content.clone(),
            time: m.published.unwrap_or(m.first_seen),
            hits: m.hits.clone(),
        })
        .collect()
}

/// What a digest is composed from: exact totals over every match it carries, and entries for
/// (at least) every story that can be shown.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    /// Every group (rule title, as `group_title` makes it) with its distinct articles.
    pub groups: Vec<GroupTotal>,
    /// Distinct articles over every group.
    pub articles: usize,
}

/// One group of a digest and its exact size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTotal {
    pub title: String,
    pub articles: usize,
}

impl Batch {
    /// A batch whose entries are every match it carries (alerts, previews of a few, tests): the
    /// totals are counted from the entries.
    pub fn complete(entries: Vec<Entry>) -> Batch {
        let mut by_title: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for e in &entries {
            by_title
                .entry(group_title(&e.rule_id, &e.rule_title))
                .or_default()
                .push(e.article_id);
        }
        let groups = by_title
            .into_iter()
            .map(|(title, mut ids)| {
                ids.sort_unstable();
                ids.dedup();
                GroupTotal {
                    title,
                    articles: ids.len(),
                }
            })
            .collect();
        let mut ids: Vec<i64> = entries.iter().map(|e| e.article_id).collect();
        ids.sort_unstable();
        ids.dedup();
        Batch {
            entries,
            groups,
            articles: ids.len(),
        }
    }

    /// What the store gathered (groups keyed by `group_title`), rows made entries.
    pub fn from_store(b: &DigestBatch, titles: &HashMap<String, String>) -> Batch {
        Batch {
            entries: entries(&b.rows, titles),
            groups: b
                .groups
                .iter()
                .map(|g| GroupTotal {
                    title: g.key.clone(),
                    articles: g.articles,
                })
                .collect(),
            articles: b.articles,
        }
    }
}

/// The group (section) a rule's matches go into: its title, else its id, made a safe line.
/// Rules sharing a title share a group.
pub fn group_title(rule_id: &str, rule_title: &str) -> String {
    let title = clean_line(rule_title, 120);
    if title.is_empty() {
        clean_line(rule_id, 120)
    } else {
        title
    }
}

/// How many of each group's newest articles the composer needs (by index into `groups`): only
/// the first `max_items` groups in display order can show a story, and among them the stories
/// are shared round-robin; each gets its round-robin share of `LOAD_MARGIN * max_items`
/// articles, so clustering sees the other outlets of what it shows.
pub fn load_plan(groups: &[GroupCount], max_items: usize) -> Vec<usize> {
    let max_items = max_items.max(1);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| {
        display_order(
            (&groups[a].key, groups[a].articles),
            (&groups[b].key, groups[b].articles),
        )
    });
    order.truncate(max_items);
    let caps: Vec<usize> = order.iter().map(|&i| groups[i].articles).collect();
    let shares = round_robin(&caps, max_items.saturating_mul(LOAD_MARGIN));
    let mut plan = vec![0; groups.len()];
    for (i, n) in order.into_iter().zip(shares) {
        plan[i] = n;
    }
    plan
}

/// Largest group first, then by title: the order of the sections, the subject and the plan.
pub(super) fn display_order(a: (&str, usize), b: (&str, usize)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0))
}

/// Shares `budget` one at a time over `caps` in turn, so a busy group cannot crowd the others
/// out; no share exceeds its cap.
pub(super) fn round_robin(caps: &[usize], budget: usize) -> Vec<usize> {
    let mut keep = vec![0usize; caps.len()];
    let mut left = budget;
    while left > 0 {
        let mut gave = false;
        for (k, cap) in keep.iter_mut().zip(caps) {
            if left == 0 {
                break;
            }
            if *k < *cap {
                *k += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    keep
}

/// A composed email, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Composed {
    pub message_id: String,
    pub subject: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The whole RFC 5322 message as it goes on the wire.
    pub raw: Vec<u8>,
}

/// The two bodies and the subject, before they become a message (also what `digest preview` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Stories shown, and the articles only counted (in "and N more" or "Also matched").
    pub shown: usize,
    pub more: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// What kind of email, and for whom: the parts of `[[digest]]` / `[[alert]]` rendering needs.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub subject_prefix: &'a str,
    pub to: &'a [String],
    pub timezone: Tz,
    pub max_items: usize,
    /// The operator's templates; the built-in ones when `None`.
    pub templates: Option<&'a Templates>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Digest,
    Alert,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Digest => "digest",
            Kind::Alert => "alert",
        }
    }
}

impl<'a> Audience<'a> {
    pub fn digest(cfg: &'a DigestConfig) -> Self {
        Audience {
            kind: Kind::Digest,
            name: &cfg.name,
            title: cfg.title.as_deref(),
            subject_prefix: &cfg.subject_prefix,
            to: &cfg.to,
            timezone: cfg.timezone,
            max_items: cfg.max_items,
            templates: cfg.templates.as_ref(),
        }
    }

    /// Alerts show times in UTC: an alert set has no zone of its own.
    pub fn alert(cfg: &'a AlertConfig) -> Self {
        Audience {
            kind: Kind::Alert,
            name: &cfg.name,
            title: None,
            subject_prefix: &cfg.subject_prefix,
            to: &cfg.to,
            timezone: Tz::UTC,
            max_items: cfg.policy.max_items,
            templates: None,
        }
    }
}

/// Composes digest `digest_id` for `cfg` from `entries`, every match it carries. `None` when
/// there is nothing to send (no entries and `when_empty = "skip"`). `notices` (feed-health lines)
/// fill the "Sources" section.
pub fn compose(
    digest_id: i64,
    cfg: &DigestConfig,
    from: &str,
    entries: &[Entry],
    notices: &[String],
    now: DateTime<Utc>,
) -> Result<Option<Composed>, DigestError> {
    compose_batch(
        digest_id,
        cfg,
        from,
        &Batch::complete(entries.to_vec()),
        notices,
        now,
    )
}

/// `compose` from a batch whose entries may be only the showable part of what it counts.
pub fn compose_batch(
    digest_id: i64,
    cfg: &DigestConfig,
    from: &str,
    batch: &Batch,
    notices: &[String],
    now: DateTime<Utc>,
) -> Result<Option<Composed>, DigestError> {
    if batch.groups.is_empty() && cfg.when_empty == WhenEmpty::Skip {
        return Ok(None);
    }
    let audience = Audience::digest(cfg);
    let rendered = render(&audience, batch, notices, now)?;
    message::build(digest_id, &audience, from, &rendered, now).map(Some)
}

/// Composes one alert email for alert set `cfg` (the caller sends only non-empty batches).
pub fn compose_alert(
    id: i64,
    cfg: &AlertConfig,
    from: &str,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> Result<Composed, DigestError> {
    let audience = Audience::alert(cfg);
    let rendered = render(&audience, &Batch::complete(entries.to_vec()), &[], now)?;
    message::build(id, &audience, from, &rendered, now)
}

#[cfg(test)]
mod tests;
