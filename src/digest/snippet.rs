//! A digest entry's snippet: the window of the summary (or content) that shows the strongest
//! evidence the rule fired on, the hits marked for highlighting; and the headline with its hits
//! marked. Pure; every piece is made a safe line.
//!
//! The strongest window: of every window that starts shortly before a hit, the one whose distinct
//! terms (case-folded) weigh most, a term weighing 1 / its hits in the article (so the rare terms
//! that made the rule fire beat a word repeated everywhere, and NEAR pairs land together), terms
//! the headline already shows weighing nothing; ties go to the summary, then to the earlier window.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::digest::Entry;
use crate::digest::email_safety::clean_line;
use crate::model::StoredHit;

/// Graphemes of context kept before the anchor hit of a snippet (or a short lead, whichever
/// window shows more), and the snippet's whole length.
const SNIPPET_LEAD: usize = 80;
const SHORT_LEAD: usize = 12;
const SNIPPET_MAX: usize = 260;

/// A piece of a snippet; `hit` pieces are highlighted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Segment {
    pub(super) text: String,
    pub(super) hit: bool,
}

/// The part of a field a snippet shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) field: &'static str,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Window {
    /// Whether the snippet shows this hit whole.
    pub(super) fn shows(&self, h: &StoredHit) -> bool {
        h.field == self.field && h.start >= self.start && h.end <= self.end
    }
}

/// The term a hit stands for, for comparing terms: case-folded.
pub(super) fn fold(term: &str) -> String {
    term.trim().to_lowercase()
}

/// The snippet's pieces (see `snippet_window`).
#[cfg(test)]
pub(super) fn snippet(e: &Entry) -> Vec<Segment> {
    snippet_window(e).0
}

/// The strongest window of the summary or content (see the module header), hits marked, and the
/// window shown. With hits only in the headline, the start of the summary, unmarked, and no
/// window.
pub(super) fn snippet_window(e: &Entry) -> (Vec<Segment>, Option<Window>) {
    let mut count: HashMap<String, usize> = HashMap::new();
    for h in &e.hits {
        *count.entry(fold(&h.text)).or_default() += 1;
    }
    let in_title: HashSet<String> = e
        .hits
        .iter()
        .filter(|h| h.field == "title")
        .map(|h| fold(&h.text))
        .collect();
    let mut best: Option<(f64, Window)> = None;
    for (field, text) in [("summary", &e.summary), ("content", &e.content)] {
        let hits: Vec<&StoredHit> = e
            .hits
            .iter()
            .filter(|h| h.field == field && valid_span(text, h.start, h.end))
            .collect();
        for h in &hits {
            for lead in [SNIPPET_LEAD, SHORT_LEAD] {
                let start = window_start(text, h.start, lead);
                let end = window_end(text, start, &hits);
                let w = Window { field, start, end };
                let mut seen: HashSet<String> = HashSet::new();
                let score: f64 = hits
                    .iter()
                    .filter(|x| w.shows(x))
                    .map(|x| fold(&x.text))
                    .filter(|t| !in_title.contains(t) && seen.insert(t.clone()))
                    .map(|t| 1.0 / count.get(&t).copied().unwrap_or(1) as f64)
                    .sum();
                // Strictly better only: ties keep the summary and the earlier window.
                if best.as_ref().is_none_or(|(s, _)| score > *s + 1e-9) {
                    best = Some((score, w));
                }
            }
        }
    }
    let Some((_, w)) = best else {
        let base = if e.summary.trim().is_empty() {
            &e.content
        } else {
            &e.summary
        };
        let t = clean_line(base, SNIPPET_MAX);
        let segments = if t.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                text: t,
                hit: false,
            }]
        };
        return (segments, None);
    };
    let text = if w.field == "summary" {
        &e.summary
    } else {
        &e.content
    };
    let mut spans: Vec<(usize, usize)> = e
        .hits
        .iter()
        .filter(|h| h.field == w.field && valid_span(text, h.start, h.end))
        .map(|h| (h.start, h.end))
        .collect();
    crate::rules::merge_spans(&mut spans);
    let mut out = marked(text, &spans, w.start, w.end, SNIPPET_MAX);
    if w.start > 0 {
        out.insert(
            0,
            Segment {
                text: "… ".into(),
                hit: false,
            },
        );
    }
    if w.end < text.len() {
        out.push(Segment {
            text: " …".into(),
            hit: false,
        });
    }
    (out, Some(w))
}

/// The headline with its hits marked (each piece cleaned, at most `max` characters a piece).
pub(super) fn headline(e: &Entry, max: usize) -> Vec<Segment> {
    let mut spans: Vec<(usize, usize)> = e
        .hits
        .iter()
        .filter(|h| h.field == "title" && valid_span(&e.title, h.start, h.end))
        .map(|h| (h.start, h.end))
        .collect();
    crate::rules::merge_spans(&mut spans);
    marked(&e.title, &spans, 0, e.title.len(), max)
}

/// `lead` characters back from `hit`, moved forward to a word start.
fn window_start(text: &str, hit: usize, lead: usize) -> usize {
    let mut start = text[..hit]
        .char_indices()
        .rev()
        .nth(lead)
        .map_or(0, |(i, _)| i);
    if start > 0 {
        start = text[start..hit]
            .find(char::is_whitespace)
            .map_or(start, |i| start + i);
    }
    start
}

/// `SNIPPET_MAX` characters on from `start`, moved back to a word boundary, but never into a
/// hit that fits whole.
fn window_end(text: &str, start: usize, hits: &[&StoredHit]) -> usize {
    let mut end = text[start..]
        .char_indices()
        .nth(SNIPPET_MAX)
        .map_or(text.len(), |(i, _)| start + i);
    if end < text.len() {
        let keep = hits
            .iter()
            .filter(|h| h.start >= start && h.end <= end)
            .map(|h| h.end)
            .max()
            .unwrap_or(start);
        if let Some(ws) = text[keep..end].rfind(char::is_whitespace) {
            end = keep + ws;
        }
    }
    end
}

/// `text[start..end]` as cleaned pieces, the merged `spans` inside it marked as hits.
fn marked(
    text: &str,
    spans: &[(usize, usize)],
    start: usize,
    end: usize,
    max: usize,
) -> Vec<Segment> {
    let mut raw: Vec<(&str, bool)> = Vec::new();
    let mut at = start;
    for &(s, t) in spans {
        if s < at || t > end {
            continue;
        }
        raw.push((&text[at..s], false));
        raw.push((&text[s..t], true));
        at = t;
    }
    raw.push((&text[at..end], false));
    let mut out: Vec<Segment> = Vec::new();
    let n = raw.len();
    for (i, (piece, hit)) in raw.into_iter().enumerate() {
        let mut cleaned = clean_line(piece, max);
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
    out
}

/// How much of an article's `content` (from its start, in bytes) any snippet of it can read,
/// given every hit an entry of the article may carry (a shown entry merges the hits of the
/// article's other entries): `SNIPPET_MAX` + 2 characters past the last hit in the content,
/// which is past every window's end and shows whether the text goes on (the " …"); nothing when
/// no hit is in the content and the summary stands in; all of it when neither field has a hit and
/// the summary is blank (the snippet is then the content's start, cleaned, whose length in raw
/// characters has no bound). Cutting the rest leaves every snippet as it was.
pub(super) fn content_read<'h>(
    summary: &str,
    content: &str,
    hits: impl IntoIterator<Item = &'h StoredHit>,
) -> usize {
    let (mut last, mut in_summary) = (None::<usize>, false);
    for h in hits {
        if h.field == "content" && valid_span(content, h.start, h.end) {
            last = Some(last.map_or(h.end, |l| l.max(h.end)));
        } else if h.field == "summary" && valid_span(summary, h.start, h.end) {
            in_summary = true;
        }
    }
    match last {
        Some(last) => content[last..]
            .char_indices()
            .nth(SNIPPET_MAX + 2)
            .map_or(content.len(), |(i, _)| last + i),
        None if !in_summary && summary.trim().is_empty() => content.len(),
        None => 0,
    }
}

pub(super) fn valid_span(text: &str, start: usize, end: usize) -> bool {
    start < end && end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end)
}

/// Pieces of text, each with whether it is highlighted.
pub type Pieces = Vec<(String, bool)>;

/// The headline and the snippet of one stored match as the digest shows them, as (text,
/// highlighted) pieces: for the web console's lists, which escape and mark them themselves.
pub fn highlighted(e: &Entry, title_max: usize) -> (Pieces, Pieces) {
    let pieces = |v: Vec<Segment>| v.into_iter().map(|s| (s.text, s.hit)).collect();
    (pieces(headline(e, title_max)), pieces(snippet_window(e).0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(field: &str, text: &str, term: &str, nth: usize) -> StoredHit {
        let start = text.match_indices(term).nth(nth).expect("term in text").0;
        StoredHit {
            field: field.into(),
            start,
            end: start + term.len(),
            text: term.into(),
        }
    }

    fn entry(summary: &str, content: &str, hits: Vec<StoredHit>) -> Entry {
        crate::digest::entry(&crate::model::PendingMatch {
            id: 1,
            rule_id: "r".into(),
            hits,
            article_id: 1,
            feed: "f".into(),
            feed_title: None,
            title: "A headline".into(),
            link: None,
            summary: summary.into(),
            content: content.into(),
            full_text: false,
            lang: None,
            published: None,
            first_seen: chrono::DateTime::UNIX_EPOCH,
            rules_hash: None,
        })
    }

    /// The snippet of an entry whose content is cut to `content_read` is the snippet of the
    /// whole entry, over hits at the start, middle and end of long and short contents, with
    /// multi-byte text, with and without a summary, and with hits only in the headline.
    #[test]
    fn cutting_the_content_after_what_a_snippet_reads_changes_no_snippet() {
        let words = "Минерали угода Healey заявив, що переговори з Hegseth тривають. ";
        let long = words.repeat(40);
        let short = "Healey met Hegseth.";
        let spaced = format!("{}   Healey", " \n".repeat(400));
        // (summary, content, hits: (field, term, nth occurrence))
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str, usize)>);
        let cases: Vec<Case<'_>> = vec![
            ("", &long, vec![("content", "Healey", 0)]),
            (
                "",
                &long,
                vec![("content", "Healey", 3), ("content", "Hegseth", 3)],
            ),
            ("", &long, vec![("content", "Hegseth", 39)]),
            ("Talks go on.", &long, vec![("content", "Healey", 20)]),
            ("Healey in Kyiv.", &long, vec![("summary", "Healey", 0)]),
            (
                "Healey in Kyiv.",
                &long,
                vec![("summary", "Healey", 0), ("content", "Hegseth", 1)],
            ),
            ("", &long, vec![("title", "headline", 0)]),
            ("  ", &long, vec![]),
            ("A summary.", &long, vec![]),
            ("", short, vec![("content", "Hegseth", 0)]),
            ("", &spaced, vec![]),
            ("", &spaced, vec![("content", "Healey", 0)]),
        ];
        for (i, (summary, content, hits)) in cases.into_iter().enumerate() {
            let hits: Vec<StoredHit> = hits
                .into_iter()
                .map(|(field, term, n)| {
                    let text = match field {
                        "summary" => summary,
                        "title" => "A headline",
                        _ => content,
                    };
                    hit(field, text, term, n)
                })
                .collect();
            let whole = entry(summary, content, hits.clone());
            let n = content_read(summary, content, &hits);
            let cut = entry(summary, &content[..n], hits);
            assert_eq!(snippet_window(&cut), snippet_window(&whole), "case {i}");
        }
        // What the cut is for: a hit near the start of a long text leaves most of it unread.
        let early = [hit("content", &long, "Healey", 0)];
        assert!(content_read("", &long, &early) < long.len() / 4);
        assert_eq!(content_read("A summary.", &long, []), 0);
        assert_eq!(content_read("", &long, []), long.len());
    }

    /// A digest's entries of one article are cut after the last hit of any of them: the entry
    /// shown merges the others' hits, so its snippet may need a later part of the text than its
    /// own hits do.
    #[test]
    fn an_articles_entries_keep_what_the_hits_of_all_of_them_read() {
        let long = "Healey spoke. ".repeat(30) + &"Hegseth replied. ".repeat(100);
        let early = entry("", &long, vec![hit("content", &long, "Healey", 0)]);
        let mut late = entry("", &long, vec![hit("content", &long, "Hegseth", 50)]);
        late.rule_id = "other".into();
        let mut elsewhere = entry("", &long, vec![hit("content", &long, "Healey", 0)]);
        elsewhere.article_id = 2;
        let last = late.hits[0].end;
        let cut = crate::digest::without_unread_content(vec![early, late, elsewhere]);
        assert!(cut[0].content.len() > last && cut[0].content.len() < long.len());
        assert_eq!(cut[0].content, cut[1].content);
        // The cut is made once for the article, and its entries share it.
        assert!(std::sync::Arc::ptr_eq(&cut[0].content, &cut[1].content));
        let n = content_read("", &long, [&cut[0].hits[0]]);
        assert_eq!(
            &*cut[2].content,
            &long[..n],
            "another article is cut by its own hits"
        );
    }
}
