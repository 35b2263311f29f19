//! The console's HTML: escaping (every value from the store or the request goes through [`esc`]
//! or [`attr`]), the page frame with its navigation, and small shared pieces (times, highlighted
//! segments, a sparkline). Builds strings; no IO. The stylesheet and script are files served
//! from the binary (`assets/`), never inline, so the CSP can forbid inline script and style.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// The console's stylesheet (light and dark by `prefers-color-scheme`).
pub const CSS: &str = include_str!("assets/console.css");
/// The playground's script: updates the results as the query is typed. Our own, no library.
pub const JS: &str = include_str!("assets/playground.js");

/// Text as HTML text or a quoted attribute value: `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
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

/// A value for a double-quoted attribute (the same escaping as text).
pub fn attr(s: &str) -> String {
    esc(s)
}

/// A link target an article gave: only `http(s)` URLs become links; anything else
/// (`javascript:`, `data:`) is `None` and shown as text.
pub fn safe_href(url: &str) -> Option<String> {
    let u = url::Url::parse(url.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| attr(u.as_str()))
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// At most `max` characters of `s`, with `…` when cut (a 1 MB title stays one line).
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Characters of highlighted text `marked` shows.
pub const MARKED_MAX: usize = 400;

/// A time as `2025-03-01 14:05 UTC`, or `—`.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// How long ago (or ahead) `t` is from `now`, in the largest whole unit.
pub fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "never".to_string();
    };
    let secs = (now - t).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let span = match n {
        0..60 => format!("{n}s"),
        60..3600 => format!("{}m", n / 60),
        3600..86_400 => format!("{}h", n / 3600),
        _ => format!("{}d", n / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Pieces of text, the `true` ones highlighted with `<mark>`, at most `MARKED_MAX` characters
/// in all (a headline of 35,000 hits is one line, not a megabyte of `<mark>`).
pub fn marked(pieces: &[(String, bool)]) -> String {
    let mut out = String::new();
    let mut left = MARKED_MAX;
    for (text, hit) in pieces {
        if left == 0 {
            out.push('…');
            break;
        }
        let n = text.chars().count();
        let text = &if n > left {
            cut(text, left)
        } else {
            text.clone()
        };
        left = left.saturating_sub(n);
        if *hit {
            let _ = write!(out, "<mark>{}</mark>", esc(text));
        } else {
            out.push_str(&esc(text));
        }
    }
    out
}

/// A bar chart of daily counts, oldest left, as inline SVG (no script, no inline style).
pub fn sparkline(daily: &[u64]) -> String {
    let max = daily.iter().copied().max().unwrap_or(0).max(1);
    let w = daily.len() * 6;
    let mut out = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} 20\" width=\"{w}\" height=\"20\" role=\"img\" aria-label=\"matches per day, oldest first: {}\">",
        daily
            .iter()
            .rev()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, n) in daily.iter().rev().enumerate() {
        let h = if *n == 0 { 1 } else { 2 + n * 18 / max };
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"5\" height=\"{h}\"/>",
            i * 6,
            20 - h
        );
    }
    out.push_str("</svg>");
    out
}

/// Which entry of the navigation is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Feeds,
    Matches,
    Rules,
    Playground,
    Digests,
    Channels,
    None,
}

/// Who is signed in, and the CSRF token their forms carry (`None`: no sessions, loopback or a
/// trusted proxy).
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user: Option<String>,
    pub csrf: Option<String>,
}

/// The page frame: head, navigation, `body`, footer.
pub fn page(title: &str, nav: Nav, viewer: &Viewer, body: &str) -> String {
    let mut links = String::new();
    for (n, href, label) in [
        (Nav::Overview, "/", "Overview"),
        (Nav::Feeds, "/feeds", "Feeds"),
        (Nav::Matches, "/matches", "Matches"),
        (Nav::Rules, "/rules", "Rules"),
        (Nav::Playground, "/playground", "Playground"),
        (Nav::Digests, "/digests", "Digests"),
        (Nav::Channels, "/channels", "Channels"),
    ] {
        let current = if n == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(links, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let who = match (&viewer.user, &viewer.csrf) {
        (Some(u), Some(token)) => format!(
            "<form class=\"logout\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><span>{}</span> <button type=\"submit\">Sign out</button></form>",
            attr(token),
            esc(u)
        ),
        (Some(u), None) => format!("<span class=\"who\">{}</span>", esc(u)),
        _ => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · newswatch</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/playground.js\" defer></script></head>\
         <body><header><a class=\"brand\" href=\"/\">newswatch</a><nav>{links}</nav>{who}</header>\
         <main>{body}</main></body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
            ("a & \"b\" 'c'",             "a &amp; &quot;b&quot; &#39;c&#39;"),
            ("plain",                     "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(esc(input), *want, "{input}");
        }
    }

    #[test]
    fn only_http_links_become_links() {
        assert_eq!(safe_href("javascript:alert(1)"), None);
        assert_eq!(safe_href(" JaVaScRiPt:alert(1)"), None);
        assert_eq!(safe_href("data:text/html,<b>x</b>"), None);
        assert_eq!(
            safe_href("https://example.org/a?b=1&c=\"2\"").as_deref(),
            Some("https://example.org/a?b=1&amp;c=%222%22")
        );
    }

    #[test]
    fn marked_pieces_are_escaped_and_bounded() {
        let pieces = vec![("a<b ".to_string(), false), ("Healey".to_string(), true)];
        assert_eq!(marked(&pieces), "a&lt;b <mark>Healey</mark>");
        let many: Vec<(String, bool)> = (0..10_000)
            .map(|i| ("Healey ".to_string(), i % 2 == 0))
            .collect();
        let out = marked(&many);
        assert!(out.len() < MARKED_MAX * 4, "{} bytes", out.len());
        assert!(out.ends_with('…'));
    }

    #[test]
    fn cut_keeps_short_text_and_marks_a_cut() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        assert_eq!(cut("ééé", 2), "éé…");
    }
}
