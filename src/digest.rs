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
pub mod spike;
mod wrap;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{AlertConfig, DigestConfig, Templates, Unsubscribe};
use crate::digest::email_safety::clean_line;
use crate::digest::spec::WhenEmpty;
use crate::model::{DigestBatch, GroupCount, PendingMatch, StoredHit};

pub use render::{MAX_HTML_BYTES, render};
pub use snippet::highlighted;

/// Articles the composer loads per story it may show, so clustering sees every outlet of a story
/// and the stated order (see `render`) ranks complete stories; at least `LOAD_MIN` (a digest of
/// up to that many articles is ranked exactly), at most `LOAD_MAX` (memory stays bounded whatever
/// is pending; beyond it each group's newest share is ranked).
const LOAD_PER_ITEM: usize = 10;
const LOAD_MIN: usize = 1_000;
const LOAD_MAX: usize = 5_000;

/// What emails need to know of a rule: its title (the group heading), whether it is an alert
/// rule, and its place in the rule files' load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub title: String,
    pub alert: bool,
    pub position: usize,
}

/// Every loaded rule by id. A rule removed since it matched is unknown: it shows its id and
/// comes after every known rule.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    rules: HashMap<String, RuleInfo>,
}

impl RuleBook {
    /// `(id, title, alert)` in load order.
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str, bool)>) -> RuleBook {
        RuleBook {
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(position, (id, title, alert))| {
                    let info = RuleInfo {
                        title: title.to_string(),
                        alert,
                        position,
                    };
                    (id.to_string(), info)
                })
                .collect(),
        }
    }

    /// The rule's title, else its id.
    pub fn title<'a>(&'a self, rule_id: &'a str) -> &'a str {
        self.rules
            .get(rule_id)
            .map_or(rule_id, |r| r.title.as_str())
    }

    /// The digest's rule order: alert rules first (rule priority), then the load order; unknown
    /// rules last. Ties (only among unknown rules) fall to the caller's id order.
    pub fn order(&self, rule_id: &str) -> (bool, usize) {
        self.rules
            .get(rule_id)
            .map_or((true, usize::MAX), |r| (!r.alert, r.position))
    }

    pub fn is_alert(&self, rule_id: &str) -> bool {
        self.rules.get(rule_id).is_some_and(|r| r.alert)
    }
}

/// One matched article under one rule, as the digest shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rule_id: String,
    /// The matching rule's title (the group heading).
    pub rule_title: String,
    /// The rule's place in the digest's rule order (`RuleBook::order`): the first rule of an
    /// article's rules is where the article is shown.
    pub order: (bool, usize),
    /// Whether the rule is an alert rule: its stories rank first (rule priority).
    pub alert: bool,
    /// Configured feed name.
    pub feed: String,
    /// The feed's own title, when it declares one.
    pub feed_title: Option<String>,
    /// Identifies the article across groups, so the subject counts articles, not matches.
    pub article_id: i64,
    pub title: String,
    pub link: Option<String>,
    /// Shared by the entries of one article (`PendingMatch`).
    pub summary: Arc<str>,
    pub content: Arc<str>,
    /// `content` was fetched from the article page (issue 20).
    pub full_text: bool,
    /// The article's language tag, declared or detected.
    pub lang: Option<String>,
    /// Published time, else the time we first saw it.
    pub time: DateTime<Utc>,
    /// Where the rule matched: byte spans into the original field text.
    pub hits: Vec<StoredHit>,
    /// The rule set that found the match (`RuleSet::fingerprint`), when known: the digest
    /// names it (issue 17).
    pub rules_hash: Option<String>,
}

/// An entry's snippet as one plain line (the window with the strongest evidence, no marks), for
/// channels that carry text rather than the email's HTML.
pub fn snippet_text(e: &Entry) -> String {
    snippet::snippet_window(e)
        .0
        .into_iter()
        .map(|s| s.text)
        .collect::<String>()
}

/// One stored match as an entry outside any digest (no rule order): for the web console's
/// snippets and highlights.
pub fn entry(m: &PendingMatch) -> Entry {
    Entry {
        rule_id: m.rule_id.clone(),
        rule_title: m.rule_id.clone(),
        order: (false, 0),
        alert: false,
        feed: m.feed.clone(),
        feed_title: m.feed_title.clone(),
        article_id: m.article_id,
        title: m.title.clone(),
        link: m.link.clone(),
        summary: m.summary.clone(),
        content: m.content.clone(),
        time: m.published.unwrap_or(m.first_seen),
        hits: m.hits.clone(),
        full_text: m.full_text,
        lang: m.lang.clone(),
        rules_hash: m.rules_hash.clone(),
    }
}

/// Stored matches as digest entries; a rule removed since it matched shows its id.
pub fn entries(matches: &[PendingMatch], rules: &RuleBook) -> Vec<Entry> {
    matches
        .iter()
        .map(|m| into_entry(m.clone(), rules))
        .collect()
}

/// One stored match made an entry, its text moved rather than copied: a cold cycle's digest
/// holds ~1,000 rows, and rows and entries alive together were ~3.5 MB of its heap peak.
fn into_entry(m: PendingMatch, rules: &RuleBook) -> Entry {
    Entry {
        rule_title: rules.title(&m.rule_id).to_string(),
        order: rules.order(&m.rule_id),
        alert: rules.is_alert(&m.rule_id),
        rule_id: m.rule_id,
        feed: m.feed,
        feed_title: m.feed_title,
        article_id: m.article_id,
        title: m.title,
        link: m.link,
        summary: m.summary,
        content: m.content,
        full_text: m.full_text,
        lang: m.lang,
        time: m.published.unwrap_or(m.first_seen),
        hits: m.hits,
        rules_hash: m.rules_hash,
    }
}

/// `entries` with each content cut after what any snippet of its article can read
/// (`snippet::content_read` over the hits of all the article's entries, which a shown entry
/// merges): a digest renders from ~1,000 loaded rows, and their full texts were about a third
/// of the compose stage's heap peak, though only a window around a hit is ever shown.
fn without_unread_content(mut entries: Vec<Entry>) -> Vec<Entry> {
    let mut hits: HashMap<i64, Vec<&StoredHit>> = HashMap::new();
    let mut texts: HashMap<i64, (&str, &str)> = HashMap::new();
    for e in &entries {
        hits.entry(e.article_id).or_default().extend(&e.hits);
        texts
            .entry(e.article_id)
            .or_insert((&*e.summary, &*e.content));
    }
    let read: HashMap<i64, usize> = texts
        .iter()
        .map(|(id, (summary, content))| {
            let hits = hits.get(id).into_iter().flatten().copied();
            (*id, snippet::content_read(summary, content, hits))
        })
        .collect();
    drop((hits, texts));
    // Every entry of an article carries the same text (one article row), so the cut is the
    // article's: a shorter content is copied once into a buffer of its own size, which the
    // article's entries then share.
    let mut cut: HashMap<i64, Arc<str>> = HashMap::new();
    for e in &mut entries {
        if let Some(&n) = read.get(&e.article_id)
            && n < e.content.len()
        {
            let short = cut
                .entry(e.article_id)
                .or_insert_with(|| Arc::from(&e.content[..n]));
            e.content = Arc::clone(short);
        }
    }
    entries
}

/// What a digest is composed from: exact totals over every match it carries, and entries for
/// (at least) every story that can be shown.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    /// Every group (rule title, as `group_title` makes it) in the digest's rule order, with the
    /// distinct articles it shows: an article matched by several groups counts in its first.
    pub groups: Vec<GroupTotal>,
    /// Distinct articles over every group (the sum of the groups).
    pub articles: usize,
    /// The start of the period the digest covers (its last composition, or a preview's
    /// `--since`); `None` when unknown (a first digest, an alert).
    pub since: Option<DateTime<Utc>>,
}

/// Days of history the trend line compares with (besides the last 24 hours).
pub const TREND_DAYS: usize = 14;

/// One group of a digest and its exact size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTotal {
    pub title: String,
    pub articles: usize,
    /// Distinct articles its rules matched per day back from now (`[0]` the last 24 hours),
    /// `TREND_DAYS` + 1 days; empty when unknown (no trend line).
    pub daily: Vec<usize>,
}

impl Batch {
    /// A batch whose entries are every match it carries (alerts, previews of a few, tests): the
    /// groups are ordered by their first rule's `order`, then title, and counted from the entries.
    pub fn complete(entries: Vec<Entry>) -> Batch {
        let mut rank: BTreeMap<String, (bool, usize)> = BTreeMap::new();
        for e in &entries {
            let r = rank
                .entry(group_title(&e.rule_id, &e.rule_title))
                .or_insert(e.order);
            *r = (*r).min(e.order);
        }
        let mut order: Vec<(&String, &(bool, usize))> = rank.iter().collect();
        order.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)));
        let index: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.as_str(), i))
            .collect();
        let mut first: BTreeMap<i64, usize> = BTreeMap::new();
        for e in &entries {
            let g = index[group_title(&e.rule_id, &e.rule_title).as_str()];
            let f = first.entry(e.article_id).or_insert(g);
            *f = (*f).min(g);
        }
        let mut counts = vec![0usize; order.len()];
        for g in first.values() {
            counts[*g] += 1;
        }
        let groups = order
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|((title, _), articles)| GroupTotal {
                title: (*title).clone(),
                articles,
                daily: Vec::new(),
            })
            .collect();
        let articles = first.len();
        Batch {
            entries,
            groups,
            articles,
            since: None,
        }
    }

    /// What the store gathered (groups keyed by `group_title`, in rule order), rows made entries
    /// (moved, not copied).
    pub fn from_store(b: DigestBatch, rules: &RuleBook) -> Batch {
        let mut daily = b.daily.into_iter();
        Batch {
            entries: without_unread_content(
                b.rows.into_iter().map(|m| into_entry(m, rules)).collect(),
            ),
            groups: b
                .groups
                .into_iter()
                .map(|g| GroupTotal {
                    title: g.key,
                    articles: g.articles,
                    daily: daily.next().unwrap_or_default(),
                })
                .collect(),
            articles: b.articles,
            since: None,
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

/// The rules a digest carries as (rule id, group) in the digest's rule order (`RuleBook::order`,
/// then id): the order its groups are numbered, shown, and an article's first group is found in.
pub fn ordered_groups(
    rules: &RuleBook,
    mut selected: Vec<(String, String)>,
) -> Vec<(String, String)> {
    selected.sort_by(|a, b| {
        rules
            .order(&a.0)
            .cmp(&rules.order(&b.0))
            .then_with(|| a.0.cmp(&b.0))
    });
    selected
}

/// How many of each group's newest articles the composer loads (by index into `groups`, which
/// are in rule order, each counting the articles it shows): a budget of `LOAD_PER_ITEM` per
/// story shown, within `LOAD_MIN..=LOAD_MAX`, shared round-robin so every group has its newest
/// stories ranked. Up to `LOAD_MIN` articles, everything is loaded.
pub fn load_plan(groups: &[GroupCount], max_items: usize) -> Vec<usize> {
    let budget = max_items
        .max(1)
        .saturating_mul(LOAD_PER_ITEM)
        .clamp(LOAD_MIN, LOAD_MAX);
    let caps: Vec<usize> = groups.iter().map(|g| g.articles).collect();
    round_robin(&caps, budget)
}

/// Shares `budget` over `caps` in turn, so a busy group cannot crowd the others out; no share
/// exceeds its cap.
pub(super) fn round_robin(caps: &[usize], budget: usize) -> Vec<usize> {
    let mut keep = vec![0usize; caps.len()];
    let mut left = budget;
    let mut open: Vec<usize> = (0..caps.len()).filter(|&i| caps[i] > 0).collect();
    while left > 0 && !open.is_empty() {
        // Whole rounds at once: every open group takes the smallest remaining need, or an
        // equal share of what is left.
        let need = open.iter().map(|&i| caps[i] - keep[i]).min().unwrap_or(0);
        let per = need.min(left / open.len());
        if per == 0 {
            for &i in open.iter().take(left) {
                keep[i] += 1;
            }
            break;
        }
        for &i in &open {
            keep[i] += per;
        }
        left -= per * open.len();
        open.retain(|&i| keep[i] < caps[i]);
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
#[derive(Debug, Clone)]
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
    /// The rule patterns it carries, as configured (empty: every rule), for the footer.
    pub rules: Vec<&'a str>,
    pub unsubscribe: &'a Unsubscribe,
    /// A spike alert's own subject and heading (the surge in numbers); none for the others.
    pub surge: Option<&'a spike::SurgeText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Digest,
    Alert,
    Spike,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Digest => "digest",
            Kind::Alert => "alert",
            Kind::Spike => "spike",
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
            rules: cfg.rules.patterns(),
            unsubscribe: &cfg.unsubscribe,
            surge: None,
        }
    }

    pub fn alert(cfg: &'a AlertConfig) -> Self {
        Audience {
            kind: Kind::Alert,
            name: &cfg.name,
            title: cfg.title.as_deref(),
            subject_prefix: &cfg.subject_prefix,
            to: &cfg.to,
            timezone: cfg.timezone,
            max_items: cfg.policy.max_items,
            templates: None,
            rules: cfg.rules.patterns(),
            unsubscribe: &cfg.unsubscribe,
            surge: None,
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
