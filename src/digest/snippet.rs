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
