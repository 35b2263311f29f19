//! A digest entry's snippet: a window of the summary (or content) around the hits that made the
//! rule fire, the hits marked for highlighting. Pure; every piece is made a safe line.

use serde::Serialize;

use crate::digest::Entry;
use crate::digest::email_safety::clean_line;

/// Graphemes of context kept before the first hit of a snippet, and the snippet's whole length.
const SNIPPET_LEAD: usize = 80;
const SNIPPET_MAX: usize = 260;

/// A piece of a snippet; `hit` pieces are highlighted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Segment {
    pub(super) text: String,
    pub(super) hit: bool,
}

/// A window of the summary (or content) around the first hit there, hits marked. With hits only
/// in the headline, the start of the summary, unmarked.
pub(super) fn snippet(e: &Entry) -> Vec<Segment> {
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
        crate::rules::merge_spans(&mut spans);
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

pub(super) fn valid_span(text: &str, start: usize, end: usize) -> bool {
    start < end && end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end)
}
