//! Digest and alert emails: matches grouped by rule, the same story from several outlets shown
//! once, each entry with a highlighted snippet and a "matched:" line, rendered from the templates
//! into a multipart/alternative message (plain text + HTML) with stable headers. A digest renders
//! from a `Batch`: exact totals for every group, entries only for the stories it can show.
//! Pure: no IO, no clock (`now` is an argument). Feed text is untrusted: every string goes through
//! `email_safety` and the HTML template's auto-escaping; only http/https links are emitted.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use crate::cluster::{ClusterOptions, StoryItem, cluster};
use crate::config::{AlertConfig, DigestConfig, Templates};
use crate::digest_spec::WhenEmpty;
use crate::email_safety::{clean_line, clean_subject, display_host, safe_link};
use crate::model::{DigestBatch, GroupCount, PendingMatch, StoredHit};

const HTML_TEMPLATE: &str = include_str!("../templates/digest.html");
const TEXT_TEMPLATE: &str = include_str!("../templates/digest.txt");

/// Subjects longer than this list fewer rules and end in "…" (RFC 5322 asks for short lines).
const MAX_SUBJECT_CHARS: usize = 160;
/// Gmail clips messages above 102 KB; the HTML part stays under this, dropping entries into
/// "and N more" until it fits.
pub const MAX_HTML_BYTES: usize = 100 * 1024;
const HEADLINE_MAX: usize = 300;
/// Graphemes of context kept before the first hit of a snippet, and the snippet's whole length.
const SNIPPET_LEAD: usize = 80;
const SNIPPET_MAX: usize = 260;
/// Terms listed on a "matched:" line.
const TERMS_MAX: usize = 8;
/// Groups named on the closing "Also matched" line; the rest are only counted.
const ALSO_NAMES_MAX: usize = 10;
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
fn display_order(a: (&str, usize), b: (&str, usize)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0))
}

/// Shares `budget` one at a time over `caps` in turn, so a busy group cannot crowd the others
/// out; no share exceeds its cap.
fn round_robin(caps: &[usize], budget: usize) -> Vec<usize> {
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

#[derive(Debug, Clone, Serialize)]
struct Group {
    title: String,
    /// Articles in the group, shown or not (exact, whatever was loaded).
    count: usize,
    items: Vec<Item>,
    /// Articles of this group not in a shown story.
    more: usize,
}

/// A group that shows no story, named (or only counted) on the closing "Also matched" line.
#[derive(Debug, Clone, Serialize)]
struct AlsoMatched {
    title: String,
    count: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Item {
    headline: String,
    link: Option<String>,
    /// The link escaped for an attribute. minijinja's own escaping also turns `/` into `&#x2f;`,
    /// which is valid but makes the HTML unreadable; `&<>"'` are all an attribute needs.
    href: Option<minijinja::Value>,
    /// The link's real host, shown beside the source so a look-alike cannot hide.
    host: Option<String>,
    source: String,
    time: String,
    snippet: Vec<Segment>,
    terms: String,
    /// Other outlets that carried the same story.
    also: String,
    /// The articles this story stands for (its representative and the other outlets).
    #[serde(skip)]
    members: Vec<i64>,
}

/// A piece of a snippet; `hit` pieces are highlighted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Segment {
    text: String,
    hit: bool,
}

/// Line endings as CRLF in one pass (a `\n` already after `\r` is kept). lettre makes a body
/// CRLF by inserting each `\r` in place, which is quadratic: 26 s of CPU for the 14 MB digest of
/// the 10,000-rule benchmark. Given CRLF it has nothing to insert.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        let line = &rest[..i];
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push_str("\r\n");
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out
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
    build(digest_id, &audience, from, &rendered, now).map(Some)
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
    build(id, &audience, from, &rendered, now)
}

/// Renders subject, HTML and text. The HTML stays under `MAX_HTML_BYTES`: when too long, fewer
/// stories are shown and the rest counted in "and N more". Groups that show no story are
/// named on one capped "Also matched" line instead of a section each.
pub fn render(
    audience: &Audience<'_>,
    batch: &Batch,
    notices: &[String],
    now: DateTime<Utc>,
) -> Result<Rendered, DigestError> {
    // Clustering is the costly part; it runs once, only the cut moves.
    let groups = assemble(&batch.groups, group(&batch.entries, audience.timezone));
    let mut budget = audience.max_items.max(1);
    loop {
        let r = render_with(audience, batch, &groups, notices, now, budget)?;
        if r.html.len() <= MAX_HTML_BYTES || budget == 1 {
            return Ok(r);
        }
        budget = (budget * 3 / 4).min(r.shown.saturating_sub(1)).max(1);
    }
}

fn render_with(
    audience: &Audience<'_>,
    batch: &Batch,
    all: &[Group],
    notices: &[String],
    now: DateTime<Utc>,
    budget: usize,
) -> Result<Rendered, DigestError> {
    let tz = audience.timezone;
    // Round-robin, so a busy rule cannot crowd every other rule out of the email.
    let caps: Vec<usize> = all.iter().map(|g| g.items.len()).collect();
    let keep = round_robin(&caps, budget);
    let mut groups: Vec<Group> = Vec::new();
    let mut also: Vec<AlsoMatched> = Vec::new();
    let (mut also_more_rules, mut also_more_count) = (0usize, 0usize);
    let mut represented: Vec<i64> = Vec::new();
    for (g, k) in all.iter().zip(keep) {
        if k == 0 {
            if also.len() < ALSO_NAMES_MAX {
                also.push(AlsoMatched {
                    title: g.title.clone(),
                    count: g.count,
                });
            } else {
                also_more_rules += 1;
                also_more_count += g.count;
            }
            continue;
        }
        let items: Vec<Item> = g.items[..k].to_vec();
        let mut members: Vec<i64> = items.iter().flat_map(|i| i.members.clone()).collect();
        members.sort_unstable();
        members.dedup();
        represented.extend_from_slice(&members);
        groups.push(Group {
            title: g.title.clone(),
            count: g.count,
            more: g.count.saturating_sub(members.len()),
            items,
        });
    }
    represented.sort_unstable();
    represented.dedup();
    let shown: usize = groups.iter().map(|g| g.items.len()).sum();
    let articles = batch.articles;
    let more = articles.saturating_sub(represented.len());
    let title = audience
        .title
        .map(|t| clean_line(t, 80))
        .filter(|t| !t.is_empty());
    let subject = subject(audience, title.as_deref(), articles, &batch.entries, all);
    let heading = match (audience.kind, articles) {
        (Kind::Digest, 0) => "Nothing new matched your rules".to_string(),
        (Kind::Digest, n) => format!(
            "{n} new {} matched your rules",
            plural(n, "article", "articles")
        ),
        (Kind::Alert, n) => format!("Alert: {n} new {}", plural(n, "article", "articles")),
    };
    let notices: Vec<String> = notices
        .iter()
        .map(|n| clean_line(n, 300))
        .filter(|n| !n.is_empty())
        .collect();
    let ctx = minijinja::context! {
        subject => &subject,
        title => title.clone().unwrap_or_else(|| format!("newswatch {}", audience.kind.as_str())),
        heading => heading,
        groups => &groups,
        more => more,
        also_matched => &also,
        also_more_rules => also_more_rules,
        also_more_count => also_more_count,
        notices => notices,
        kind => audience.kind.as_str(),
        digest_name => clean_line(audience.name, 80),
        generated => local_time(now, tz),
    };
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_filter("num", thousands);
    let render = |name: &'static str, source: &str| {
        let tmpl_err = |source| DigestError::Template { name, source };
        env.template_from_named_str(name, source)
            .map_err(tmpl_err)?
            .render(&ctx)
            .map_err(tmpl_err)
    };
    let (html_src, text_src) = audience
        .templates
        .map_or((HTML_TEMPLATE, TEXT_TEMPLATE), |t| {
            (t.html.as_str(), t.text.as_str())
        });
    // The file name decides auto-escaping: `.html` escapes every interpolated value, in the
    // operator's template too.
    let html = render("digest.html", html_src)?;
    let text = render("digest.txt", text_src)?;
    Ok(Rendered {
        subject,
        html,
        text,
        shown,
        more,
    })
}

/// The message around a rendering: stable Message-ID, Date, List-Id, Auto-Submitted, and the
/// configured recipients only (feed data never reaches an address header).
fn build(
    id: i64,
    audience: &Audience<'_>,
    from: &str,
    r: &Rendered,
    now: DateTime<Utc>,
) -> Result<Composed, DigestError> {
    let sender = parse_mailbox(from)?;
    let domain = sender.email.domain().to_string();
    let slug = slug(audience.name);
    let kind = audience.kind.as_str();
    // Derived from the digest id (and its creation time, so a rebuilt database never reuses one):
    // a retried send carries the same Message-ID and receivers can drop duplicates.
    let message_id = format!("<{kind}-{id}.{slug}.{}@{domain}>", now.timestamp());
    let mut builder = Message::builder()
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(now))
        .from(sender)
        .subject(r.subject.clone())
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            format!("newswatch {kind} {slug} <{slug}.newswatch.{domain}>"),
        ));
    for to in audience.to {
        builder = builder.to(parse_mailbox(to)?);
    }
    let message = builder.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(crlf(&r.text)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(crlf(&r.html)),
            ),
    )?;
    Ok(Composed {
        message_id,
        subject: r.subject.clone(),
        sender: from.to_string(),
        recipients: audience.to.to_vec(),
        raw: message.formatted(),
    })
}

/// `9940` as `9,940`: the template filter `num`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %d %b %Y %H:%M %Z")
        .to_string()
}

/// Groups entries by rule title (largest group first, then by title), clusters each group's
/// articles into stories, newest story first.
fn group(entries: &[Entry], tz: Tz) -> Vec<Group> {
    let mut by_rule: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_rule
            .entry(group_title(&e.rule_id, &e.rule_title))
            .or_default()
            .push(e);
    }
    let mut groups: Vec<Group> = by_rule
        .into_iter()
        .map(|(title, mut es)| {
            es.sort_by_key(|e| e.article_id);
            es.dedup_by_key(|e| e.article_id);
            let sources: Vec<String> = es.iter().map(|e| source_name(e)).collect();
            let items: Vec<StoryItem<'_, usize>> = es
                .iter()
                .enumerate()
                .map(|(i, e)| StoryItem {
                    id: i,
                    source: &sources[i],
                    link: e.link.as_deref(),
                    title: &e.title,
                    summary: &e.summary,
                    seen: e.time,
                })
                .collect();
            let mut stories = cluster(&items, &ClusterOptions::default());
            stories.sort_by(|a, b| {
                let (ea, eb) = (es[a.representative], es[b.representative]);
                eb.time
                    .cmp(&ea.time)
                    .then(ea.article_id.cmp(&eb.article_id))
            });
            let items: Vec<Item> = stories
                .iter()
                .map(|s| {
                    let members: Vec<&Entry> = std::iter::once(s.representative)
                        .chain(s.others.iter().copied())
                        .map(|i| es[i])
                        .collect();
                    let also: Vec<String> = s.also.iter().map(|a| (*a).to_string()).collect();
                    item(&members, &also, tz)
                })
                .collect();
            Group {
                title,
                count: es.len(),
                items,
                more: 0,
            }
        })
        .collect();
    groups.sort_by(|a, b| display_order((&a.title, a.count), (&b.title, b.count)));
    groups
}

/// Every group of `totals` in display order, with its exact size and the stories clustered from
/// whatever of it was loaded (`loaded`, from `group`). A loaded group missing from the totals
/// (a caller's slip) keeps what it has rather than vanish.
fn assemble(totals: &[GroupTotal], loaded: Vec<Group>) -> Vec<Group> {
    let mut loaded: BTreeMap<String, Group> =
        loaded.into_iter().map(|g| (g.title.clone(), g)).collect();
    let mut all: Vec<Group> = totals
        .iter()
        .map(|t| {
            let items = loaded.remove(&t.title).map(|g| g.items).unwrap_or_default();
            Group {
                title: t.title.clone(),
                count: t.articles,
                items,
                more: 0,
            }
        })
        .collect();
    all.extend(loaded.into_values());
    all.sort_by(|a, b| display_order((&a.title, a.count), (&b.title, b.count)));
    all
}

fn source_name(e: &Entry) -> String {
    match e.feed_title.as_deref().map(|t| clean_line(t, 80)) {
        Some(t) if !t.is_empty() && t != e.feed => t,
        _ => clean_line(&e.feed, 80),
    }
}

/// One story: the representative's headline, link, source and snippet; terms from every member.
fn item(members: &[&Entry], also: &[String], tz: Tz) -> Item {
    let mut ids: Vec<i64> = members.iter().map(|m| m.article_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let e = members[0];
    let mut terms: Vec<String> = Vec::new();
    for h in members.iter().flat_map(|m| &m.hits) {
        let t = clean_line(&h.text, 60);
        if !t.is_empty()
            && terms.len() < TERMS_MAX
            && !terms.iter().any(|x| x.to_lowercase() == t.to_lowercase())
        {
            terms.push(t);
        }
    }
    let headline = clean_line(&e.title, HEADLINE_MAX);
    let link = e.link.as_deref().and_then(safe_link);
    Item {
        headline: if headline.is_empty() {
            "(untitled)".into()
        } else {
            headline
        },
        href: link
            .as_ref()
            .map(|l| minijinja::Value::from_safe_string(escape_attr(l.as_str()))),
        host: link.as_ref().map(display_host),
        link: link.map(String::from),
        source: source_name(e),
        time: local_time(e.time, tz),
        snippet: snippet(e),
        terms: terms.join(", "),
        also: also.join(", "),
        members: ids,
    }
}

/// A window of the summary (or content) around the first hit there, hits marked. With hits only
/// in the headline, the start of the summary, unmarked.
fn snippet(e: &Entry) -> Vec<Segment> {
    let field_text = |field: &str| match field {
        "summary" => Some(e.summary.as_str()),
        "content" => Some(e.content.as_str()),
        _ => None,
    };
    let first = ["summary", "content"].iter().find_map(|f| {
        let text = field_text(f)?;
        let mut spans: Vec<(usize, usize)> = e
            .hits
            .iter()
            .filter(|h| h.field == *f && valid_span(text, h.start, h.end))
            .map(|h| (h.start, h.end))
            .collect();
        spans.sort_unstable();
        (!spans.is_empty()).then_some((text, spans))
    });
    let Some((text, spans)) = first else {
        let base = if e.summary.trim().is_empty() {
            &e.content
        } else {
            &e.summary
        };
        let t = clean_line(base, SNIPPET_MAX);
        return if t.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                text: t,
                hit: false,
            }]
        };
    };
    // Back up SNIPPET_LEAD characters from the first hit, to a word start.
    let hit0 = spans[0].0;
    let mut start = text[..hit0]
        .char_indices()
        .rev()
        .nth(SNIPPET_LEAD)
        .map_or(0, |(i, _)| i);
    if start > 0 {
        start = text[start..hit0]
            .find(char::is_whitespace)
            .map_or(start, |i| start + i);
    }
    let mut end = text[start..]
        .char_indices()
        .nth(SNIPPET_MAX)
        .map_or(text.len(), |(i, _)| start + i);
    if end < text.len() {
        // End on a word boundary, but never before the first hit.
        let last_hit_end = spans[0].1.min(end);
        if let Some(ws) = text[last_hit_end..end].rfind(char::is_whitespace) {
            end = last_hit_end + ws;
        }
    }
    let mut raw: Vec<(&str, bool)> = Vec::new();
    let mut at = start;
    for (s, t) in spans {
        if s < at || t > end {
            continue;
        }
        raw.push((&text[at..s], false));
        raw.push((&text[s..t], true));
        at = t;
    }
    raw.push((&text[at..end], false));
    let mut out: Vec<Segment> = Vec::new();
    let lead = start > 0;
    let tail = end < text.len();
    let n = raw.len();
    for (i, (piece, hit)) in raw.into_iter().enumerate() {
        let mut cleaned = clean_line(piece, SNIPPET_MAX);
        if cleaned.is_empty() {
            if piece.chars().any(char::is_whitespace) && !hit {
                cleaned = " ".into();
            } else {
                continue;
            }
        } else if !hit {
            if piece.starts_with(char::is_whitespace) && i > 0 {
                cleaned.insert(0, ' ');
            }
            if piece.ends_with(char::is_whitespace) && i + 1 < n {
                cleaned.push(' ');
            }
        }
        out.push(Segment { text: cleaned, hit });
    }
    if lead {
        out.insert(
            0,
            Segment {
                text: "… ".into(),
                hit: false,
            },
        );
    }
    if tail {
        out.push(Segment {
            text: " …".into(),
            hit: false,
        });
    }
    out
}

fn valid_span(text: &str, start: usize, end: usize) -> bool {
    start < end && end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end)
}

/// `[newswatch] Morning brief — 12 articles: Minerals deal (5), Healey–Hegseth talks (3)`;
/// an alert about one article: `[newswatch alert] Healey–Hegseth talks: <headline>`.
fn subject(
    audience: &Audience<'_>,
    title: Option<&str>,
    articles: usize,
    entries: &[Entry],
    groups: &[Group],
) -> String {
    let prefix = clean_line(audience.subject_prefix, 40);
    let mut s = prefix;
    if let Some(t) = title {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(t);
        s.push_str(" —");
    }
    if !s.is_empty() {
        s.push(' ');
    }
    if audience.kind == Kind::Alert && articles == 1 && groups.len() == 1 {
        s.push_str(&format!(
            "{}: {}",
            groups[0].title,
            clean_line(&entries[0].title, 120)
        ));
        return clean_subject(&s);
    }
    if articles == 0 {
        s.push_str("nothing new");
        return clean_subject(&s);
    }
    s.push_str(&format!(
        "{articles} {}",
        plural(articles, "article", "articles")
    ));
    for (i, g) in groups.iter().enumerate() {
        let part = format!(
            "{}{} ({})",
            if i == 0 { ": " } else { ", " },
            g.title,
            g.count
        );
        if s.chars().count() + part.chars().count() > MAX_SUBJECT_CHARS {
            s.push_str(if i == 0 { ": …" } else { ", …" });
            break;
        }
        s.push_str(&part);
    }
    clean_subject(&s)
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "digest".into() } else { s }
}

fn parse_mailbox(s: &str) -> Result<Mailbox, DigestError> {
    s.parse()
        .map_err(|e: lettre::address::AddressError| DigestError::Address {
            address: s.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest_spec::RuleSelection;

    fn now() -> DateTime<Utc> {
        at("2025-03-10T12:00:00Z")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn crlf_line_endings() {
        // (input, output)
        let cases = [
            ("", ""),
            ("a", "a"),
            ("a\nb", "a\r\nb"),
            ("a\r\nb\n", "a\r\nb\r\n"),
            ("\n\n", "\r\n\r\n"),
            ("x\r", "x\r"),
            ("é\nü\r\n", "é\r\nü\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(crlf(input), want, "{input:?}");
        }
    }

    fn cfg() -> DigestConfig {
        DigestConfig {
            name: "Main desk".into(),
            to: vec!["Analyst <analyst@example.org>".into()],
            subject_prefix: "[newswatch]".into(),
            title: Some("Morning brief".into()),
            schedule: None,
            timezone: chrono_tz::Europe::London,
            rules: RuleSelection::default(),
            max_items: 50,
            when_empty: WhenEmpty::Skip,
            templates: None,
        }
    }

    /// An entry whose hits are every occurrence of `terms` in the title and summary.
    fn entry(
        id: i64,
        rule: &str,
        title: &str,
        link: Option<&str>,
        summary: &str,
        terms: &[&str],
    ) -> Entry {
        let mut hits = Vec::new();
        for (field, text) in [("title", title), ("summary", summary)] {
            for t in terms {
                for (start, m) in text.match_indices(t) {
                    hits.push(StoredHit {
                        field: field.into(),
                        start,
                        end: start + m.len(),
                        text: m.into(),
                    });
                }
            }
        }
        Entry {
            rule_id: rule.to_lowercase().replace(' ', "-"),
            rule_title: rule.into(),
            feed: "kyiv-ledger".into(),
            feed_title: Some("Kyiv Ledger".into()),
            article_id: id,
            title: title.into(),
            link: link.map(str::to_string),
            summary: summary.into(),
            content: String::new(),
            time: now(),
            hits,
        }
    }

    struct Parts {
        subject: String,
        text: String,
        html: String,
        raw: String,
    }

    fn render_with_cfg(c: &DigestConfig, entries: &[Entry], notices: &[String]) -> Parts {
        let composed = compose(7, c, "newswatch <nw@example.org>", entries, notices, now())
            .expect("compose")
            .expect("some digest");
        let msg = mail_parser::MessageParser::default()
            .parse(&composed.raw)
            .expect("parsable MIME");
        assert_eq!(msg.subject(), Some(composed.subject.as_str()));
        Parts {
            subject: composed.subject,
            text: msg.body_text(0).expect("text part").replace("\r\n", "\n"),
            html: msg.body_html(0).expect("html part").into_owned(),
            raw: String::from_utf8_lossy(&composed.raw).into_owned(),
        }
    }

    fn render(entries: &[Entry]) -> Parts {
        render_with_cfg(&cfg(), entries, &[])
    }

    /// The entries of the snapshot digest: two rules, one story carried by two outlets.
    fn sample() -> Vec<Entry> {
        let mut wire = entry(
            2,
            "Minerals deal",
            "Kyiv and Washington agree terms of minerals deal",
            Some("https://atlantic-wire.example/2?utm_source=rss"),
            "Officials in Kyiv said the minerals deal text was agreed late on Tuesday.",
            &["minerals deal"],
        );
        wire.feed = "atlantic-wire".into();
        wire.feed_title = Some("Atlantic Wire".into());
        wire.time = now() + chrono::Duration::minutes(30);
        vec![
            entry(
                1,
                "Minerals deal",
                "Kyiv and Washington agree terms of minerals deal, officials say",
                Some("https://kyiv-ledger.example/1"),
                "Ukrainian officials said the minerals deal was agreed after weeks of talks.",
                &["minerals deal"],
            ),
            wire,
            entry(
                3,
                "Healey–Hegseth talks",
                "Healey meets Hegseth at the Pentagon",
                Some("https://kyiv-ledger.example/3"),
                "British Defence Secretary John Healey met Pete Hegseth on Friday for talks on Ukraine.",
                &["Healey", "Hegseth"],
            ),
        ]
    }

    fn check_snapshot(file: &str, got: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(file);
        if std::env::var_os("NEWSWATCH_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, got).expect("write snapshot");
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with NEWSWATCH_UPDATE_SNAPSHOTS=1 to create it",
                path.display()
            )
        });
        assert!(
            got == want,
            "{file} differs from its snapshot (NEWSWATCH_UPDATE_SNAPSHOTS=1 regenerates):\n{got}"
        );
    }

    use std::path::Path;

    #[test]
    fn rendered_digest_matches_the_snapshots() {
        let notices = vec![
            "Meridian Sports: 3 failed polls in a row; last error: HTTP status 503".to_string(),
        ];
        let p = render_with_cfg(&cfg(), &sample(), &notices);
        assert_eq!(
            p.subject,
            "[newswatch] Morning brief — 3 articles: Minerals deal (2), Healey–Hegseth talks (1)"
        );
        check_snapshot("digest.txt", &p.text);
        check_snapshot("digest.html", &p.html);
    }

    #[test]
    fn nothing_matched_means_no_email_unless_asked() {
        assert!(
            compose(1, &cfg(), "nw@example.org", &[], &[], now())
                .unwrap()
                .is_none()
        );
        let mut c = cfg();
        c.when_empty = WhenEmpty::Send;
        let p = render_with_cfg(&c, &[], &[]);
        assert_eq!(p.subject, "[newswatch] Morning brief — nothing new");
        assert!(
            p.text.contains("Nothing new matched your rules"),
            "{}",
            p.text
        );
    }

    #[test]
    fn one_story_from_two_outlets_is_one_entry_with_also() {
        let p = render(&sample());
        for part in [&p.text, &p.html] {
            assert_eq!(
                part.matches("agree terms of minerals deal").count(),
                1,
                "{part}"
            );
            assert!(part.contains("also: Atlantic Wire"), "{part}");
            assert!(part.contains("matched: Healey, Hegseth"), "{part}");
            assert!(
                part.contains("Mon 10 Mar 2025 12:00 GMT"),
                "local time: {part}"
            );
            assert!(
                part.contains("kyiv-ledger.example"),
                "the host is shown: {part}"
            );
        }
        assert!(p.text.contains("*minerals deal*"), "{}", p.text);
        assert!(p.html.contains(">minerals deal</mark>"), "{}", p.html);
        for header in [
            "Auto-Submitted: auto-generated",
            "List-Id: newswatch digest main-desk <main-desk.newswatch.example.org>",
            "Message-ID: <digest-7.main-desk.1741608000@example.org>",
            "Date: Mon, 10 Mar 2025 12:00:00 +0000",
            "multipart/alternative",
            "To: Analyst <analyst@example.org>",
        ] {
            assert!(
                p.raw.contains(header),
                "{header:?} missing from:\n{}",
                p.raw
            );
        }
    }

    #[test]
    fn html_is_made_for_email() {
        let p = render(&sample());
        for needle in [
            "<table role=\"presentation\"",
            "max-width:640px",
            "<meta name=\"color-scheme\" content=\"light dark\">",
            "prefers-color-scheme: dark",
            "background-color:#ffffff",
            "color:#111827",
        ] {
            assert!(p.html.contains(needle), "{needle:?} missing");
        }
        for banned in ["<script", "<img", "<link", "src=", "@import", "url("] {
            assert!(!p.html.contains(banned), "{banned:?} in the HTML");
        }
    }

    #[test]
    fn snippets_centre_on_the_first_hit_and_mark_every_hit() {
        // (summary, terms, snippet as plain text with *hits*)
        let long = format!(
            "{} the minerals deal was signed. {}",
            "word ".repeat(40),
            "tail ".repeat(80)
        );
        #[rustfmt::skip]
        let cases: Vec<(&str, &[&str], String)> = vec![
            ("Healey met Hegseth.", &["Healey", "Hegseth"], "*Healey* met *Hegseth*.".into()),
            ("No hit here.", &["absent"], "No hit here.".into()),
            ("Line\r\nbreak <b>minerals deal</b>\u{202e}", &["minerals deal"], "Line break <b>*minerals deal*</b>".into()),
            (&long, &["minerals deal"], format!("… {}the *minerals deal* was signed. {}…", "word ".repeat(15), "tail ".repeat(30))),
        ];
        for (summary, terms, want) in &cases {
            let e = entry(1, "R", "Headline", None, summary, terms);
            let got: String = snippet(&e)
                .iter()
                .map(|s| {
                    if s.hit {
                        format!("*{}*", s.text)
                    } else {
                        s.text.clone()
                    }
                })
                .collect();
            assert_eq!(&got, want, "{summary:?}");
        }
        // A span that does not fit the text (a changed rule engine, a corrupt row) is ignored.
        let mut e = entry(1, "R", "Headline", None, "Ünïcode text", &[]);
        e.hits.push(StoredHit {
            field: "summary".into(),
            start: 1,
            end: 99,
            text: "x".into(),
        });
        assert_eq!(
            snippet(&e),
            vec![Segment {
                text: "Ünïcode text".into(),
                hit: false
            }]
        );
    }

    #[test]
    fn hostile_feed_content_never_reaches_the_email() {
        let hostile = [
            (
                "<script>alert(1)</script>Minerals deal",
                "https://ok.example/1",
                "<img src=\"https://track.example/pixel.gif\" width=\"1\" height=\"1\">minerals deal",
            ),
            (
                "<a href=\"x\" onmouseover=\"steal()\">Minerals deal</a>",
                "javascript:alert(document.cookie)",
                "onerror=alert(1) minerals deal",
            ),
            (
                "Minerals deal\r\nBcc: victim@example.org",
                "data:text/html;base64,PHNjcmlwdD4=",
                "<iframe src=//evil.example></iframe> minerals deal",
            ),
            (
                "Minerals deal \u{202e}lmth.exe\u{202c} \u{200b}",
                "https://paypal.com@evil.example/login",
                "<style>body{display:none}</style> minerals deal",
            ),
            (
                "Minerals deal\u{1b}[31m red",
                "JaVaScRiPt:alert(1)",
                "vbscript:msgbox minerals deal",
            ),
        ];
        let entries: Vec<Entry> = hostile
            .iter()
            .enumerate()
            .map(|(i, (title, link, summary))| {
                let mut e = entry(
                    i as i64 + 1,
                    "Evil\r\nX-Injected: 1",
                    title,
                    Some(link),
                    summary,
                    &["minerals deal", "Minerals deal"],
                );
                e.feed_title = Some("Feed <img src=x onerror=alert(1)>\u{202e}".into());
                e
            })
            .collect();
        let p = render(&entries);
        // Every tag in the HTML is one of ours, with no event handler, script URL or remote source.
        let tags = regex::Regex::new(r"<[^>]*>").expect("valid regex");
        let allowed = [
            "!doctype", "html", "head", "meta", "title", "style", "body", "table", "tr", "td",
            "div", "span", "a", "mark",
        ];
        for tag in tags.find_iter(&p.html).map(|m| m.as_str().to_lowercase()) {
            let name = tag
                .trim_start_matches(['<', '/'])
                .split([' ', '>'])
                .next()
                .unwrap_or_default()
                .to_string();
            assert!(allowed.contains(&name.as_str()), "foreign tag {tag}");
            for banned in [
                " on",
                "javascript:",
                "vbscript:",
                "data:",
                "src=",
                "paypal.com@",
            ] {
                assert!(!tag.contains(banned), "{banned:?} in {tag}");
            }
        }
        assert_eq!(
            p.html.matches("<style>").count(),
            1,
            "only the dark-mode block"
        );
        for banned in [
            "\u{202e}",
            "\u{200b}",
            "\u{1b}",
            "paypal.com@",
            "javascript:",
            "data:text",
            "JaVaScRiPt",
        ] {
            assert!(
                !p.html.contains(banned),
                "{banned:?} in the HTML:\n{}",
                p.html
            );
        }
        // The link with userinfo keeps only its real host, and says so.
        assert!(
            p.html.contains("href=\"https://evil.example/login\""),
            "{}",
            p.html
        );
        assert!(p.text.contains("https://evil.example/login"));
        for banned in [
            "javascript:",
            "data:text",
            "paypal.com@",
            "\u{202e}",
            "\u{200b}",
            "\u{1b}",
        ] {
            assert!(
                !p.text.to_lowercase().contains(banned),
                "{banned:?} in the text:\n{}",
                p.text
            );
        }
        for c in ['\r', '\n', '\u{202e}', '\u{200b}', '\u{1b}'] {
            assert!(
                !p.subject.contains(c),
                "{c:?} in the subject {:?}",
                p.subject
            );
        }
        let head = &p.raw[..p.raw.find("\r\n\r\n").expect("a header block")];
        assert!(
            !head.contains("\nX-Injected") && !head.contains("\nBcc:"),
            "{head}"
        );
        assert!(
            !head.contains("victim@example.org") || head.contains("Subject:"),
            "{head}"
        );
        // The escaped text is still there for the reader.
        assert!(
            p.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            p.html
        );
    }

    #[test]
    fn a_huge_digest_stays_under_gmail_clipping() {
        let summary = "Officials said the minerals deal would be signed within days. ".repeat(20);
        let entries: Vec<Entry> = (0..1000)
            .map(|i| {
                let mut e = entry(
                    i,
                    &format!("Rule {}", i % 7),
                    &format!("alpha{i} beta{} gamma{} delta{}", i * 3, i * 5, i * 7),
                    Some(&format!("https://k.example/{i}")),
                    &summary,
                    &["minerals deal"],
                );
                e.time = now() - chrono::Duration::minutes(i);
                e
            })
            .collect();
        let mut c = cfg();
        c.max_items = 10_000;
        let p = render_with_cfg(&c, &entries, &[]);
        assert!(p.html.len() <= MAX_HTML_BYTES, "{} bytes", p.html.len());
        assert!(
            p.html.len() > MAX_HTML_BYTES / 2,
            "not needlessly short: {}",
            p.html.len()
        );
        assert!(p.text.contains(" more"), "the rest is counted");
        assert!(
            p.subject
                .starts_with("[newswatch] Morning brief — 1000 articles: Rule"),
            "{}",
            p.subject
        );
        // Every rule keeps some entries: the cap is shared round-robin.
        for r in 0..7 {
            assert!(p.text.contains(&format!("== Rule {r} (")), "rule {r}");
        }
        let mut small = cfg();
        small.max_items = 5;
        let p = render_with_cfg(&small, &entries, &[]);
        assert_eq!(p.text.matches("\n* ").count(), 5);
    }

    #[test]
    fn load_plan_table() {
        // (group sizes, max_items, articles to load per group)
        #[rustfmt::skip]
        let cases: &[(&[usize], usize, &[usize])] = &[
            (&[], 50, &[]),
            (&[1], 50, &[1]),
            (&[1000], 50, &[150]),
            (&[1000, 2], 50, &[148, 2]),
            (&[10, 10, 10], 2, &[0, 3, 3]),  // ties by key: "g0" < "g1" < "g2", sizes desc first
            (&[5, 9, 7], 2, &[0, 3, 3]),
            (&[5, 9, 7], 1, &[0, 3, 0]),
            (&[4, 4], 0, &[0, 3]),          // max_items 0 still shows one
        ];
        for (sizes, max_items, want) in cases {
            let groups: Vec<GroupCount> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| GroupCount {
                    // Reverse keys so "largest, then by key" is not the input order.
                    key: format!("g{}", sizes.len() - i),
                    articles: *n,
                })
                .collect();
            assert_eq!(
                load_plan(&groups, *max_items),
                *want,
                "{sizes:?} max_items {max_items}"
            );
        }
    }

    #[test]
    fn thousands_of_groups_close_with_one_capped_line() {
        let entries: Vec<Entry> = (0..12_000)
            .map(|i| {
                let rule = i % 5_000;
                let mut e = entry(
                    i,
                    &format!("Rule {rule:04}"),
                    &format!("alpha{i} beta{} gamma{}", i * 3, i * 7),
                    Some(&format!("https://k.example/{i}")),
                    "Officials said the minerals deal would be signed within days.",
                    &["minerals deal"],
                );
                e.time = now() - chrono::Duration::minutes(i);
                e
            })
            .collect();
        let p = render(&entries);
        assert!(p.html.len() <= MAX_HTML_BYTES, "{} bytes", p.html.len());
        assert!(p.text.len() <= MAX_HTML_BYTES, "{} bytes", p.text.len());
        // max_items (50) sections, largest groups first (Rule 0000..1999 have 3 articles).
        assert_eq!(p.text.matches("\n== Rule ").count(), 50, "{}", p.text);
        assert!(p.text.contains("\n== Rule 0000 (3) =="), "{}", p.text);
        assert!(p.text.contains("\n  and 2 more\n"), "{}", p.text);
        assert!(
            p.text
                .contains("\n== Also matched ==\n- Rule 0050 (3)\n- Rule 0051 (3)\n"),
            "{}",
            p.text
        );
        // 5,000 groups: 50 shown, 10 named, the rest counted: 1,950 with 3, 3,000 with 2.
        assert!(
            p.text.contains("- and 4,940 more rules (11,820 matches)\n"),
            "{}",
            p.text
        );
        assert!(
            p.html.contains("Also matched</td>")
                && p.html.contains("and 4,940 more rules (11,820 matches)"),
            "{}",
            p.html
        );
        assert!(
            p.subject
                .starts_with("[newswatch] Morning brief — 12000 articles: Rule 0000 (3), "),
            "{}",
            p.subject
        );
    }

    #[test]
    fn counts_come_from_the_totals_not_from_what_was_loaded() {
        let batch = Batch {
            entries: sample(),
            groups: vec![
                GroupTotal {
                    title: "Minerals deal".into(),
                    articles: 700,
                },
                GroupTotal {
                    title: "Healey–Hegseth talks".into(),
                    articles: 40,
                },
                GroupTotal {
                    title: "Weimar plus".into(),
                    articles: 1,
                },
            ],
            articles: 735,
        };
        let composed = compose_batch(7, &cfg(), "nw@example.org", &batch, &[], now())
            .expect("compose")
            .expect("a digest");
        assert_eq!(
            composed.subject,
            "[newswatch] Morning brief — 735 articles: Minerals deal (700), \
             Healey–Hegseth talks (40), Weimar plus (1)"
        );
        let r = super::render(&Audience::digest(&cfg()), &batch, &[], now()).expect("render");
        assert!(
            r.text.starts_with("Morning brief\n735 new articles"),
            "{}",
            r.text
        );
        // The shown story stands for two articles (two outlets): 698 more.
        assert!(r.text.contains("== Minerals deal (700) =="), "{}", r.text);
        assert!(r.text.contains("\n  and 698 more\n"), "{}", r.text);
        assert!(r.text.contains("\n  and 39 more\n"), "{}", r.text);
        // Loaded nothing of it, yet within max_items: named on the closing line.
        assert!(
            r.text.contains("== Also matched ==\n- Weimar plus (1)\n"),
            "{}",
            r.text
        );
        assert_eq!((r.shown, r.more), (2, 735 - 3));
    }

    #[test]
    fn thousands_separators() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (9_940, "9,940"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), want);
        }
    }

    #[test]
    fn operators_templates_replace_the_built_in_ones_and_still_escape() {
        let mut c = cfg();
        c.templates = Some(Templates {
            html: "<h1>{{ title }}</h1>{% for g in groups %}{% for i in g.items %}<p>{{ i.headline }}</p>{% endfor %}{% endfor %}".into(),
            text: "{{ heading }}".into(),
        });
        let mut e = sample();
        e[0].title = "<script>x</script> minerals deal".into();
        let p = render_with_cfg(&c, &e, &[]);
        assert!(
            p.html.starts_with("<h1>Morning brief</h1><p>"),
            "{}",
            p.html
        );
        assert!(
            p.html.contains("&lt;script&gt;") && !p.html.contains("<script"),
            "{}",
            p.html
        );
        assert_eq!(p.text, "3 new articles matched your rules");
    }

    #[test]
    fn alert_subjects() {
        let set = AlertConfig {
            name: "breaking".into(),
            to: vec!["duty@example.org".into()],
            rules: RuleSelection::default(),
            policy: crate::alerts::AlertPolicy::default(),
            subject_prefix: "[newswatch alert]".into(),
        };
        let one = &sample()[2..];
        let c = compose_alert(4, &set, "nw@example.org", one, now()).expect("alert");
        assert_eq!(
            c.subject,
            "[newswatch alert] Healey–Hegseth talks: Healey meets Hegseth at the Pentagon"
        );
        assert!(c.message_id.starts_with("<alert-4.breaking."));
        assert_eq!(c.recipients, ["duty@example.org"]);
        let c = compose_alert(5, &set, "nw@example.org", &sample(), now()).expect("alert");
        assert_eq!(
            c.subject,
            "[newswatch alert] 3 articles: Minerals deal (2), Healey–Hegseth talks (1)"
        );
    }

    #[test]
    fn long_subjects_are_cut_at_a_rule_boundary() {
        let entries: Vec<Entry> = (0..30)
            .map(|i| {
                entry(
                    i,
                    &format!("A rather long rule title number {i:02}"),
                    &format!("t{i}"),
                    None,
                    "",
                    &[],
                )
            })
            .collect();
        let p = render(&entries);
        assert!(
            p.subject.starts_with(
                "[newswatch] Morning brief — 30 articles: A rather long rule title number 00 (1)"
            ),
            "{}",
            p.subject
        );
        assert!(p.subject.ends_with(", …"), "{}", p.subject);
        assert!(p.subject.chars().count() <= MAX_SUBJECT_CHARS + 3);
    }
}
