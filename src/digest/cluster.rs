//! Story clustering for a digest: items about the same story from several feeds become one entry
//! (the first source's headline and link, "also: outlet B, outlet C"). Two items are the same
//! story when, within `max_gap` of each other, they share a canonical link, or their headlines are
//! near-identical, or their headlines overlap and their summaries corroborate it; but never two
//! headlines built on one template around different names (`Russian strikes hit Kharkiv` /
//! `Russian strikes hit Odesa`): when each names someone, somewhere or a number the other does
//! not, and their other words are nearly the same (`TEMPLATE_REST`), they are different stories
//! whatever their summaries say (only a shared link joins them).
//! Pure and deterministic: the result does not depend on the input order.

use std::collections::BTreeSet;

use crate::parse::identity::canonical_url;
use chrono::{DateTime, Duration, Utc};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use url::Url;

/// One digest item as clustering sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryItem<'a, Id> {
    pub id: Id,
    /// The outlet shown in "also: …" (the feed's configured name or title).
    pub source: &'a str,
    pub link: Option<&'a str>,
    pub title: &'a str,
    /// Plain-text summary, may be empty; it only corroborates a headline overlap.
    pub summary: &'a str,
    /// Published, else first seen.
    pub seen: DateTime<Utc>,
}

/// Thresholds. The defaults merge no two different stories of the demo feeds (see the oracle
/// test) while catching re-worded headlines whose summaries agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterOptions {
    /// Items further apart than this are never the same story (a follow-up days later is news).
    pub max_gap: Duration,
    /// Headline word-set Jaccard at or above which two headlines are near-identical.
    pub title_jaccard: f64,
    /// Headline overlap (shared words / words of the shorter headline) needed for the
    /// corroborated rule …
    pub corroborated_title_overlap: f64,
    /// … together with this Jaccard over headline + summary words.
    pub corroborated_text_jaccard: f64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_gap: Duration::hours(36),
            title_jaccard: 0.5,
            corroborated_title_overlap: 0.5,
            corroborated_text_jaccard: 0.2,
        }
    }
}

/// Word-set Jaccard of two headlines without their names at or above which they share a
/// template: then different names make different stories.
const TEMPLATE_REST: f64 = 0.75;

/// Headlines with fewer distinct content words than this never match on words alone:
/// "Live updates" or "Morning briefing" from two outlets are not one story.
const MIN_TITLE_WORDS: usize = 3;

/// One digest entry: the earliest item represents the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster<'a, Id> {
    pub representative: Id,
    /// The other items of the story, in time order.
    pub others: Vec<Id>,
    /// Other outlets that carried the story, distinct, in time order, without the
    /// representative's own outlet.
    pub also: Vec<&'a str>,
}

struct Prepared {
    link: Option<String>,
    title: BTreeSet<String>,
    /// Headline and summary words; `None` without a real summary, which corroborates nothing.
    text: Option<BTreeSet<String>>,
    /// The headline's names (see `names`).
    names: BTreeSet<String>,
}

/// Groups `items` into stories. Clusters come in order of their representative (earliest
/// first; ties by source, then id); membership is single-link: an item joins the first cluster
/// holding any item it matches.
pub fn cluster<'a, Id: Clone + Ord>(
    items: &[StoryItem<'a, Id>],
    opts: &ClusterOptions,
) -> Vec<Cluster<'a, Id>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&items[a], &items[b]);
        (a.seen, a.source, &a.id).cmp(&(b.seen, b.source, &b.id))
    });
    let prepared: Vec<Prepared> = items
        .iter()
        .map(|it| {
            let title = words(it.title);
            let summary = words(it.summary);
            let text = (summary.len() >= MIN_TITLE_WORDS).then(|| &title | &summary);
            Prepared {
                link: it.link.and_then(link_key),
                title,
                text,
                names: names(it.title),
            }
        })
        .collect();
    let same_story = |a: usize, b: usize| {
        if (items[a].seen - items[b].seen).abs() > opts.max_gap {
            return false;
        }
        let (pa, pb) = (&prepared[a], &prepared[b]);
        if pa.link.is_some() && pa.link == pb.link {
            return true;
        }
        // One outlet's separate items (live-blog updates, a series) are separate entries: only
        // the same link makes them one. Look-alike headlines merge across outlets only.
        if items[a].source == items[b].source {
            return false;
        }
        if pa.title.len().min(pb.title.len()) < MIN_TITLE_WORDS {
            return false;
        }
        // One template, different names: each side names something the other does not, and
        // apart from the names the headlines are (nearly) the same words.
        if !pa.names.is_subset(&pb.names) && !pb.names.is_subset(&pa.names) {
            let ra: BTreeSet<String> = pa.title.difference(&pa.names).cloned().collect();
            let rb: BTreeSet<String> = pb.title.difference(&pb.names).cloned().collect();
            if jaccard(&ra, &rb) >= TEMPLATE_REST {
                return false;
            }
        }
        let shared = pa.title.intersection(&pb.title).count();
        let union = pa.title.len() + pb.title.len() - shared;
        if ratio(shared, union) >= opts.title_jaccard {
            return true;
        }
        let overlap = ratio(shared, pa.title.len().min(pb.title.len()));
        let corroborated = match (&pa.text, &pb.text) {
            (Some(ta), Some(tb)) => jaccard(ta, tb) >= opts.corroborated_text_jaccard,
            _ => false,
        };
        overlap >= opts.corroborated_title_overlap && corroborated
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &i in &order {
        match groups
            .iter_mut()
            .find(|g| g.iter().any(|&m| same_story(i, m)))
        {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let rep = &items[g[0]];
            let mut also: Vec<&'a str> = Vec::new();
            for &m in &g[1..] {
                let s = items[m].source;
                if s != rep.source && !also.contains(&s) {
                    also.push(s);
                }
            }
            Cluster {
                representative: rep.id.clone(),
                others: g[1..].iter().map(|&m| items[m].id.clone()).collect(),
                also,
            }
        })
        .collect()
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    ratio(shared, a.len() + b.len() - shared)
}

/// A link's identity for clustering: canonical (tracking parameters and fragment gone), with
/// scheme, `www.` and a trailing slash ignored.
fn link_key(link: &str) -> Option<String> {
    url_key(&canonical_url(link)?)
}

/// `link_key` of a link already made canonical and parsed.
fn url_key(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    let path = url.path().trim_end_matches('/');
    Some(match url.query() {
        Some(q) => format!("{host}{path}?{q}"),
        None => format!("{host}{path}"),
    })
}

/// A headline's names: its capitalised words after the first (the first is capitalised anyway),
/// as `words` folds them, and its numbers. None for a headline in title case (more than half
/// its words capitalised), where capitals say nothing.
fn names(title: &str) -> BTreeSet<String> {
    let tokens: Vec<&str> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| short_ok(w))
        .collect();
    let capital = |w: &str| w.chars().next().is_some_and(char::is_uppercase);
    let capitals = tokens.iter().skip(1).filter(|w| capital(w)).count();
    if capitals * 2 > tokens.len().saturating_sub(1) {
        return BTreeSet::new();
    }
    let number = |w: &str| w.chars().all(|c| c.is_ascii_digit());
    tokens
        .iter()
        .skip(1)
        .filter(|w| capital(w) || number(w))
        .flat_map(|w| {
            // `words` drops a one-digit number; a name is one word.
            if number(w) {
                Some((*w).to_string())
            } else {
                words(w).into_iter().next()
            }
        })
        .collect()
}

/// One-letter words say nothing, but a one-digit number does (`envoy 1` is not `envoy 9`).
fn short_ok(w: &str) -> bool {
    w.chars().nth(1).is_some() || w.chars().all(|c| c.is_ascii_digit())
}

/// Words that say nothing about which story a headline tells.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "against", "amid", "an", "and", "are", "as", "at", "be", "been",
    "before", "but", "by", "for", "from", "has", "have", "he", "her", "his", "in", "into", "is",
    "it", "its", "new", "not", "of", "on", "or", "over", "said", "say", "says", "she", "than",
    "that", "the", "their", "they", "this", "to", "was", "were", "what", "who", "why", "will",
    "with",
];

/// A text's content words: NFKD with accents dropped (`Macrón` = `Macron`), lowercased, split at
/// anything not alphanumeric, stopwords and one-letter words removed, a plural `-s` trimmed.
fn words(text: &str) -> BTreeSet<String> {
    // NFKD leaves ASCII as it is, with no mark to drop: most headlines and summaries skip it
    // (issue 22: the Unicode path was 2.8 % of a cold cycle).
    if text.is_ascii() {
        content_words(&text.to_ascii_lowercase())
    } else {
        content_words(&unicode_fold(text))
    }
}

/// NFKD with combining marks dropped, lowercased.
fn unicode_fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The content words of a folded text.
fn content_words(folded: &str) -> BTreeSet<String> {
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().nth(1).is_some() && !STOPWORDS.contains(w))
        .map(|w| {
            let plural = w.len() > 4 && w.ends_with('s') && !w.ends_with("ss");
            if plural { &w[..w.len() - 1] } else { w }.to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests;
