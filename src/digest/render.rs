//! Rendering a digest or alert: groups in display order, stories clustered, the cut that keeps
//! the HTML under Gmail's clipping size, subject and "Also matched" line, the templates filled
//! in. Pure: takes `now`, returns text; building the message around it is `message`'s job.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::digest::cluster::{ClusterOptions, StoryItem, cluster};
use crate::digest::email_safety::{clean_line, clean_subject, display_host, safe_link};
use crate::digest::snippet::{Segment, snippet};
use crate::digest::{
    Audience, Batch, DigestError, Entry, GroupTotal, Kind, Rendered, display_order, group_title,
    round_robin,
};

const HTML_TEMPLATE: &str = include_str!("../../templates/digest.html");
const TEXT_TEMPLATE: &str = include_str!("../../templates/digest.txt");

/// Subjects longer than this list fewer rules and end in "…" (RFC 5322 asks for short lines).
pub(super) const MAX_SUBJECT_CHARS: usize = 160;
/// Gmail clips messages above 102 KB; the HTML part stays under this, dropping entries into
/// "and N more" until it fits.
pub const MAX_HTML_BYTES: usize = 100 * 1024;
const HEADLINE_MAX: usize = 300;
/// Terms listed on a "matched:" line.
const TERMS_MAX: usize = 8;
/// Groups named on the closing "Also matched" line; the rest are only counted.
const ALSO_NAMES_MAX: usize = 10;

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

/// `9940` as `9,940`: the template filter `num`.
pub(super) fn thousands(n: usize) -> String {
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
