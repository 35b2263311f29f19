//! Rendering a digest or alert: groups in display order, stories clustered, the cut that keeps
//! the HTML under Gmail's clipping size, subject and "Also matched" line, the templates filled
//! in. Pure: takes `now`, returns text; building the message around it is `message`'s job.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::digest::cluster::{ClusterOptions, StoryItem, cluster};
use crate::digest::email_safety::{clean_line, clean_subject, display_host, safe_link};
use crate::digest::snippet::{Segment, fold, headline as marked_headline, snippet_window};
use crate::digest::wrap::wrap;
use crate::digest::{Audience, Batch, DigestError, Entry, GroupTotal, Kind, Rendered, group_title};
use crate::model::StoredHit;

const HTML_TEMPLATE: &str = include_str!("../../templates/digest.html");
const TEXT_TEMPLATE: &str = include_str!("../../templates/digest.txt");

/// Subjects longer than this list fewer rules and end in "…" (RFC 5322 asks for short lines).
pub(super) const MAX_SUBJECT_CHARS: usize = 160;
/// Gmail clips messages above 102 KB; the HTML part stays under this (a margin for headers and
/// a client's own wrapping), showing fewer stories, counted in "and N more" and named in a
/// closing "continued" line, until it fits.
pub const MAX_HTML_BYTES: usize = 90_000;
const HEADLINE_MAX: usize = 300;
/// Terms listed on a "matched:" line.
const TERMS_MAX: usize = 8;
/// Groups named on the closing "Also matched" line; the rest are only counted.
const ALSO_NAMES_MAX: usize = 10;
/// Headlines of a group's stories that did not fit, listed as links under its count.
const OVERFLOW_LINKS: usize = 3;

#[derive(Debug, Clone, Serialize)]
struct Group {
    title: String,
    /// The section's anchor for the table of contents (`g1`, `g2`, …).
    anchor: String,
    /// Articles in the group, shown or not (exact, whatever was loaded).
    count: usize,
    /// "14 in the last 24 h · usually 3 a day", from stored matches; empty when unknown.
    trend: String,
    items: Vec<Item>,
    /// Articles of this group not in a shown story.
    more: usize,
    /// The first few stories that did not fit, in the stated order.
    overflow: Vec<Link>,
}

/// A group that shows no story, named (or only counted) on the closing "Also matched" line.
#[derive(Debug, Clone, Serialize)]
struct AlsoMatched {
    title: String,
    count: usize,
    overflow: Vec<Link>,
}

/// A story that did not fit, as a headline link.
#[derive(Debug, Clone, Serialize)]
struct Link {
    headline: String,
    link: Option<String>,
    href: Option<minijinja::Value>,
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
    /// The headline in pieces, the hits marked (`headline` is the same text whole).
    headline_marked: Vec<Segment>,
    /// The distinct terms the headline or the snippet shows (longest form of each).
    terms: String,
    /// Terms that matched only in text the email does not show.
    terms_elsewhere: String,
    /// A term matched in the text fetched from the article page (a `full_text` feed).
    from_page: bool,
    /// The article's language tag (declared, else detected), for the HTML `lang` attribute, so
    /// screen readers and hyphenation treat a German story as German in an English digest.
    lang: Option<String>,
    /// Other outlets that carried the same story.
    also: String,
    /// The same, each outlet linked to its own article (`headline` is the outlet's name).
    also_links: Vec<Link>,
    /// The other groups whose rules matched the shown article ("also matches: …").
    also_matches: String,
    /// The rule sets that found the story's matches, shown per story only when the digest
    /// carries matches of more than one (nodes of a cluster running different rules, or a
    /// reload between matches); empty otherwise.
    rules_version: String,
    /// The articles this story stands for (its representative and the other outlets).
    #[serde(skip)]
    members: Vec<i64>,
    /// The stated order's keys: rule priority, outlets that ran the story, its newest article.
    #[serde(skip)]
    alert: bool,
    #[serde(skip)]
    outlets: usize,
    #[serde(skip)]
    newest: DateTime<Utc>,
}

impl Item {
    /// The stated order of stories: alert rules first, then more outlets, then newer, then the
    /// lowest article id (so equal input always ranks the same).
    fn rank_key(&self) -> (bool, Reverse<usize>, Reverse<DateTime<Utc>>, i64) {
        (
            !self.alert,
            Reverse(self.outlets),
            Reverse(self.newest),
            self.members.first().copied().unwrap_or(i64::MAX),
        )
    }

    fn link(&self) -> Link {
        Link {
            headline: self.headline.clone(),
            link: self.link.clone(),
            href: self.href.clone(),
        }
    }
}

/// Renders subject, HTML and text. The stories shown are the first `max_items` by the stated
/// order (`Item::rank_key`: rule priority, outlets that ran the story, recency), each in its
/// group's section; what does not fit is counted per group, its first few headlines linked. The
/// HTML stays under `MAX_HTML_BYTES`: when too long, fewer stories are shown.
pub fn render(
    audience: &Audience<'_>,
    batch: &Batch,
    notices: &[String],
    now: DateTime<Utc>,
) -> Result<Rendered, DigestError> {
    // Clustering is the costly part; it runs once, only the cut moves.
    let groups = assemble(
        &batch.groups,
        group(&batch.entries, &batch.groups, audience.timezone),
    );
    let ranked = ranking(&groups);
    let mut budget = audience.max_items.max(1);
    loop {
        let r = render_with(audience, batch, &groups, &ranked, notices, now, budget)?;
        if r.html.len() <= MAX_HTML_BYTES || budget == 1 {
            return Ok(r);
        }
        budget = (budget * 3 / 4).min(r.shown.saturating_sub(1)).max(1);
    }
}

/// Every story as (group, index in the group), in the stated order.
fn ranking(groups: &[Group]) -> Vec<(usize, usize)> {
    let mut all: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| (0..grp.items.len()).map(move |i| (g, i)))
        .collect();
    all.sort_by_key(|&(g, i)| groups[g].items[i].rank_key());
    all
}

#[allow(clippy::too_many_arguments)]
fn render_with(
    audience: &Audience<'_>,
    batch: &Batch,
    all: &[Group],
    ranked: &[(usize, usize)],
    notices: &[String],
    now: DateTime<Utc>,
    budget: usize,
) -> Result<Rendered, DigestError> {
    let tz = audience.timezone;
    let mut shown_at: Vec<Vec<bool>> = all.iter().map(|g| vec![false; g.items.len()]).collect();
    for &(g, i) in ranked.iter().take(budget) {
        shown_at[g][i] = true;
    }
    let versions = distinct_versions(batch.entries.iter());
    let mut groups: Vec<Group> = Vec::new();
    let mut also: Vec<AlsoMatched> = Vec::new();
    let (mut also_more_rules, mut also_more_count) = (0usize, 0usize);
    let mut represented: Vec<i64> = Vec::new();
    for (g, shown) in all.iter().zip(&shown_at) {
        let overflow: Vec<Link> = g
            .items
            .iter()
            .zip(shown)
            .filter(|(_, s)| !**s)
            .take(OVERFLOW_LINKS)
            .map(|(i, _)| i.link())
            .collect();
        let items: Vec<&Item> = g
            .items
            .iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
            .collect();
        if items.is_empty() {
            if also.len() < ALSO_NAMES_MAX {
                also.push(AlsoMatched {
                    title: g.title.clone(),
                    count: g.count,
                    overflow,
                });
            } else {
                also_more_rules += 1;
                also_more_count += g.count;
            }
            continue;
        }
        let items: Vec<Item> = items
            .into_iter()
            .cloned()
            .map(|mut i| {
                if versions.len() < 2 {
                    i.rules_version.clear();
                }
                i
            })
            .collect();
        let mut members: Vec<i64> = items.iter().flat_map(|i| i.members.clone()).collect();
        members.sort_unstable();
        members.dedup();
        represented.extend_from_slice(&members);
        groups.push(Group {
            title: g.title.clone(),
            anchor: format!("g{}", groups.len() + 1),
            trend: g.trend.clone(),
            count: g.count,
            more: g.count.saturating_sub(members.len()),
            items,
            overflow,
        });
    }
    represented.sort_unstable();
    represented.dedup();
    let shown: usize = groups.iter().map(|g| g.items.len()).sum();
    // Stories `max_items` would show that the size cut left out: the closing "continued" line.
    let cut = ranked
        .len()
        .min(audience.max_items.max(1))
        .saturating_sub(shown);
    let articles = batch.articles;
    let more = articles.saturating_sub(represented.len());
    let title = audience
        .title
        .map(|t| clean_line(t, 80))
        .filter(|t| !t.is_empty());
    let top = ranked
        .first()
        .map(|&(g, i)| (all[g].title.as_str(), all[g].items[i].headline.as_str()));
    let subject = subject(audience, title.as_deref(), articles, top, all, now);
    let heading = match (audience.kind, articles) {
        (Kind::Digest, 0) => "Nothing new matched your rules".to_string(),
        (Kind::Digest, n) => format!(
            "{n} new {} matched your rules",
            plural(n, "article", "articles")
        ),
        (Kind::Alert, n) => format!("Alert: {n} new {}", plural(n, "article", "articles")),
        (Kind::Spike, _) => audience
            .surge
            .map_or_else(String::new, |s| s.heading.clone()),
    };
    let period = match batch.since {
        Some(since) if since < now => format!(
            "{} · covering {} to {}",
            tz_date(now, tz, "%a %-d %b %Y"),
            tz_date(since, tz, "%a %-d %b %H:%M"),
            tz_date(now, tz, "%a %-d %b %H:%M %Z")
        ),
        _ => tz_date(now, tz, "%a %-d %b %Y, %H:%M %Z"),
    };
    let rules = if audience.rules.is_empty() {
        "every rule".to_string()
    } else {
        clean_line(&audience.rules.join(", "), 300)
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
        toc => groups.len() > 1,
        cut => cut,
        more => more,
        also_matched => &also,
        also_more_rules => also_more_rules,
        also_more_count => also_more_count,
        notices => notices,
        kind => audience.kind.as_str(),
        digest_name => clean_line(audience.name, 80),
        period => period,
        rules => rules,
        unsubscribe_mailto => audience.unsubscribe.mailto.as_deref().map(|m| clean_line(m, 200)),
        unsubscribe_url => audience.unsubscribe.https.as_deref().and_then(safe_link).map(String::from),
        generated => local_time(now, tz),
        rules_versions => versions.join(", "),
        several_versions => versions.len() > 1,
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
    let text = wrap(&render("digest.txt", text_src)?);
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

/// The trend line from daily counts (`[0]` the last 24 hours): that count, and the mean of the
/// days before when the rule matched anything then.
fn trend(daily: &[usize]) -> String {
    let Some((&today, before)) = daily.split_first() else {
        return String::new();
    };
    let total: usize = before.iter().sum();
    if before.is_empty() || total == 0 {
        return format!("{today} in the last 24 h");
    }
    let mean = total as f64 / before.len() as f64;
    let usual = if mean < 0.5 {
        "under 1".to_string()
    } else {
        format!("{mean:.0}")
    };
    format!("{today} in the last 24 h · usually {usual} a day")
}

fn tz_date(t: DateTime<Utc>, tz: Tz, format: &str) -> String {
    t.with_timezone(&tz).format(format).to_string()
}

fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %d %b %Y %H:%M %Z")
        .to_string()
}

/// Each article once: under its first group (the order of `totals`, then the entry's rule
/// order, then title), its entries there merged; then each group's articles clustered into
/// stories, in the stated order (`Item::rank_key`).
fn group(entries: &[Entry], totals: &[GroupTotal], tz: Tz) -> Vec<Group> {
    let index: HashMap<&str, usize> = totals
        .iter()
        .enumerate()
        .map(|(i, t)| (t.title.as_str(), i))
        .collect();
    let titled: Vec<(String, &Entry)> = entries
        .iter()
        .map(|e| (group_title(&e.rule_id, &e.rule_title), e))
        .collect();
    let key = |(t, e): &(String, &Entry)| {
        (
            index.get(t.as_str()).copied().unwrap_or(usize::MAX),
            e.order,
            t.clone(),
        )
    };
    let mut by_article: BTreeMap<i64, Vec<&(String, &Entry)>> = BTreeMap::new();
    for te in &titled {
        by_article.entry(te.1.article_id).or_default().push(te);
    }
    // Group key → (title, articles shown there: the merged entry and its other groups).
    // An article's entry is borrowed, copied only when another entry's hits are merged into it
    // or its hits need sorting (one copy per shown article was ~1 MB of a cold digest's peak).
    let mut by_group: BTreeMap<GroupKey, Vec<Shown<'_>>> = BTreeMap::new();
    for list in by_article.values() {
        let Some(first) = list.iter().map(|te| key(te)).min() else {
            continue;
        };
        let mut merged: Option<Cow<'_, Entry>> = None;
        let mut others: Vec<GroupKey> = Vec::new();
        for te in list {
            let k = key(te);
            if k.2 == first.2 {
                match &mut merged {
                    None => merged = Some(Cow::Borrowed(te.1)),
                    Some(m) => m.to_mut().hits.extend(te.1.hits.iter().cloned()),
                }
            } else if !others.iter().any(|o| o.2 == k.2) {
                others.push(k);
            }
        }
        others.sort();
        if let Some(mut m) = merged {
            let alert = list.iter().any(|te| te.0 == first.2 && te.1.alert);
            if m.alert != alert {
                m.to_mut().alert = alert;
            }
            if !hits_deduped(&m.hits) {
                dedup_hits(&mut m.to_mut().hits);
            }
            let also: Vec<String> = others.into_iter().map(|o| o.2).collect();
            by_group.entry(first).or_default().push((m, also));
        }
    }
    by_group
        .into_iter()
        .map(|((_, _, title), es)| {
            let sources: Vec<String> = es.iter().map(|(e, _)| source_name(e)).collect();
            let items: Vec<StoryItem<'_, usize>> = es
                .iter()
                .enumerate()
                .map(|(i, (e, _))| StoryItem {
                    id: i,
                    source: &sources[i],
                    link: e.link.as_deref(),
                    title: &e.title,
                    summary: &e.summary,
                    seen: e.time,
                })
                .collect();
            let stories = cluster(&items, &ClusterOptions::default());
            let mut items: Vec<Item> = stories
                .iter()
                .map(|s| {
                    let members: Vec<&Shown<'_>> = std::iter::once(s.representative)
                        .chain(s.others.iter().copied())
                        .map(|i| &es[i])
                        .collect();
                    let also: Vec<String> = s.also.iter().map(|a| (*a).to_string()).collect();
                    item(&members, &also, tz)
                })
                .collect();
            items.sort_by_key(Item::rank_key);
            Group {
                title,
                anchor: String::new(),
                trend: String::new(),
                count: es.len(),
                items,
                more: 0,
                overflow: Vec::new(),
            }
        })
        .collect()
}

/// An article shown in a group: its (merged) entry and the other groups it also matches.
type Shown<'a> = (Cow<'a, Entry>, Vec<String>);

/// Where a group comes: its place in the totals, its first rule's order, its title.
type GroupKey = (usize, (bool, usize), String);

/// Whether `hits` are already as `dedup_hits` leaves them: sorted, no span twice.
fn hits_deduped(hits: &[StoredHit]) -> bool {
    hits.windows(2)
        .all(|w| (&w[0].field, w[0].start, w[0].end) < (&w[1].field, w[1].start, w[1].end))
}

fn dedup_hits(hits: &mut Vec<StoredHit>) {
    hits.sort_by(|a, b| (&a.field, a.start, a.end).cmp(&(&b.field, b.start, b.end)));
    hits.dedup_by(|a, b| a.field == b.field && a.start == b.start && a.end == b.end);
}

/// Every group of `totals` in their order, with its exact size and the stories clustered from
/// whatever of it was loaded (`loaded`, from `group`). A loaded group missing from the totals
/// (a caller's slip) keeps what it has rather than vanish, after the others.
fn assemble(totals: &[GroupTotal], loaded: Vec<Group>) -> Vec<Group> {
    let mut loaded: BTreeMap<String, Group> =
        loaded.into_iter().map(|g| (g.title.clone(), g)).collect();
    let mut all: Vec<Group> = totals
        .iter()
        .map(|t| {
            let items = loaded.remove(&t.title).map(|g| g.items).unwrap_or_default();
            Group {
                title: t.title.clone(),
                anchor: String::new(),
                trend: trend(&t.daily),
                count: t.articles,
                items,
                more: 0,
                overflow: Vec::new(),
            }
        })
        .collect();
    all.extend(loaded.into_values());
    all
}

fn source_name(e: &Entry) -> String {
    match e.feed_title.as_deref().map(|t| clean_line(t, 80)) {
        Some(t) if !t.is_empty() && t != e.feed => t,
        _ => clean_line(&e.feed, 80),
    }
}

/// One story: the representative's headline, link, source, snippet and terms (its own: the
/// other outlets' words may not be in what is shown), and the other groups it also matches.
fn item(members: &[&Shown<'_>], also: &[String], tz: Tz) -> Item {
    let mut ids: Vec<i64> = members.iter().map(|m| m.0.article_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let (e, also_matches) = members[0];
    let (snippet, window) = snippet_window(e);
    let visible = |h: &StoredHit| h.field == "title" || window.is_some_and(|w| w.shows(h));
    let (shown, elsewhere): (Vec<&StoredHit>, Vec<&StoredHit>) =
        e.hits.iter().partition(|h| visible(h));
    let shown = distinct_terms(&shown, &[]);
    let elsewhere = distinct_terms(&elsewhere, &shown);
    let mut outlets: Vec<String> = members.iter().map(|m| source_name(&m.0)).collect();
    outlets.sort_unstable();
    outlets.dedup();
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
        snippet,
        headline_marked: marked_headline(e, HEADLINE_MAX),
        terms: shown.join(", "),
        terms_elsewhere: elsewhere.join(", "),
        from_page: e.full_text && e.hits.iter().any(|h| h.field == "content"),
        lang: e.lang.as_deref().and_then(lang_attr),
        also: also.join(", "),
        also_links: also_links(members),
        also_matches: also_matches.join(", "),
        rules_version: distinct_versions(members.iter().map(|m| &*m.0)).join(", "),
        members: ids,
        alert: members.iter().any(|m| m.0.alert),
        outlets: outlets.len(),
        newest: members.iter().map(|m| m.0.time).max().unwrap_or(e.time),
    }
}

/// The known rule-set versions of `entries`, each once, in order (issue 17).
fn distinct_versions<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<String> {
    let mut v: Vec<String> = entries
        .filter_map(|e| e.rules_hash.as_deref())
        .map(|h| clean_line(h, 64))
        .filter(|h| !h.is_empty())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The other outlets of a story, each once (its first article), linked to its own article.
fn also_links(members: &[&Shown<'_>]) -> Vec<Link> {
    let rep = source_name(&members[0].0);
    let mut seen: Vec<String> = vec![rep];
    let mut out = Vec::new();
    for m in members.iter().skip(1) {
        let e = &m.0;
        let name = source_name(e);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let link = e.link.as_deref().and_then(safe_link);
        out.push(Link {
            headline: name,
            href: link
                .as_ref()
                .map(|l| minijinja::Value::from_safe_string(escape_attr(l.as_str()))),
            link: link.map(String::from),
        });
    }
    out
}

/// The distinct terms of `hits`, each once in its longest form (`forces` stands for `force`,
/// `Emmanuel Macron` for `Macron`; compared case-folded), in order of appearance, at most
/// `TERMS_MAX`; none already in `known` (or contained in one of them).
fn distinct_terms(hits: &[&StoredHit], known: &[String]) -> Vec<String> {
    let mut hits: Vec<&StoredHit> = hits.to_vec();
    hits.sort_by_key(|a| (field_rank(&a.field), a.start));
    // Each folded term once, at its first appearance: a match may carry thousands of hits of the
    // same few terms, and the "is there a longer one" test below is quadratic in what it gets.
    let mut seen = std::collections::HashSet::new();
    let mut terms: Vec<(String, String)> = Vec::new();
    for h in &hits {
        let t = clean_line(&h.text, 60);
        if t.is_empty() {
            continue;
        }
        let f = fold(&t);
        if seen.insert(f.clone()) {
            terms.push((t, f));
        }
    }
    let known: Vec<String> = known.iter().map(|t| fold(t)).collect();
    let mut out: Vec<String> = Vec::new();
    for (t, f) in &terms {
        let longer = terms
            .iter()
            .any(|(_, g)| g.len() > f.len() && g.contains(f.as_str()));
        let known = known.iter().any(|k| k.contains(f.as_str()));
        if longer || known || out.len() >= TERMS_MAX {
            continue;
        }
        out.push(t.clone());
    }
    out
}

fn field_rank(field: &str) -> u8 {
    match field {
        "title" => 0,
        "summary" => 1,
        _ => 2,
    }
}

/// A digest: `[newswatch] Morning brief, Mon 10 Mar — 12 articles: Minerals deal (5),
/// Healey–Hegseth talks (3)` (the date in the digest's zone). An alert (its title is in the heading, not here): about one article `[alert]
/// Healey–Hegseth talks: <headline>`; about several, the count and the top story's headline
/// (`[alert] 3 articles: <headline> (+2 more)`). `top` is the first story by the stated order.
fn subject(
    audience: &Audience<'_>,
    title: Option<&str>,
    articles: usize,
    top: Option<(&str, &str)>,
    groups: &[Group],
    now: DateTime<Utc>,
) -> String {
    if let Some(surge) = audience.surge {
        return clean_subject(&surge.subject);
    }
    let prefix = clean_line(audience.subject_prefix, 40);
    let mut s = prefix;
    if audience.kind == Kind::Digest {
        if !s.is_empty() {
            s.push(' ');
        }
        let date = tz_date(now, audience.timezone, "%a %-d %b");
        match title {
            Some(t) => s.push_str(&format!("{t}, {date} —")),
            None => s.push_str(&format!("{date} —")),
        }
    }
    if !s.is_empty() {
        s.push(' ');
    }
    if audience.kind == Kind::Alert
        && let Some((group, headline)) = top
    {
        let headline = clean_line(headline, 120);
        if articles <= 1 {
            s.push_str(&format!("{group}: {headline}"));
        } else {
            s.push_str(&format!(
                "{articles} articles: {headline} (+{} more)",
                articles - 1
            ));
        }
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

/// A language tag safe for an attribute (BCP 47 shape: letters, digits and `-`), else none:
/// `en_GB` → `en-GB`; `de"><script` → none.
fn lang_attr(tag: &str) -> Option<String> {
    let tag = tag.trim().replace('_', "-");
    (!tag.is_empty()
        && tag.len() <= 35
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    .then_some(tag)
}

#[cfg(test)]
mod tests;
