//! The last-resort reader for feeds feed-rs rejects even after repair (an unescaped `<` in a
//! title, a missing close tag): pulls items out of RSS/Atom-shaped text with forgiving patterns.
//! Pure. Returns raw field text (HTML allowed); `parse` turns it into plain text.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

#[derive(Debug, Default)]
pub struct LenientFeed {
    pub title: Option<String>,
    pub items: Vec<LenientItem>,
}

#[derive(Debug, Default)]
pub struct LenientItem {
    pub guid: Option<String>,
    pub link: Option<String>,
    pub title: String,
    pub summary: String,
    pub content: String,
    pub published: Option<DateTime<Utc>>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a constant regex compiles")
}

/// `None` when the text does not look like a feed at all.
pub fn extract(text: &str) -> Option<LenientFeed> {
    static ROOT: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)<(rss|feed|rdf:rdf|channel)\b"));
    static ITEM: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?is)<(?:item|entry)\b[^>]*>(.*?)(?:</(?:item|entry)\s*>|$)"));
    ROOT.find(text)?;
    let first_item = ITEM.find(text).map_or(text.len(), |m| m.start());
    let title = field(&text[..first_item], &["title"]).filter(|t| !t.trim().is_empty());
    let items: Vec<LenientItem> = ITEM
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| item(m.as_str()))
        .filter(|i| !(i.title.trim().is_empty() && i.link.is_none() && i.summary.is_empty()))
        .collect();
    if title.is_none() && items.is_empty() {
        return None;
    }
    Some(LenientFeed { title, items })
}

fn item(block: &str) -> LenientItem {
    LenientItem {
        guid: field(block, &["guid", "id"]).filter(|g| !g.trim().is_empty()),
        link: link(block),
        title: field(block, &["title"]).unwrap_or_default(),
        summary: field(block, &["description", "summary"]).unwrap_or_default(),
        content: field(block, &["encoded", "content"]).unwrap_or_default(),
        published: field(block, &["pubDate", "published", "date", "updated"])
            .and_then(|d| date(&d)),
    }
}

/// The text of the first non-empty element named one of `names` (any namespace prefix), CDATA
/// unwrapped and XML entities decoded. Scanned by hand: the close tag must match the open tag,
/// which the regex crate cannot express, and markup inside (`<b>`) must not end the element.
fn field(block: &str, names: &[&str]) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so indices into `lower` are valid in `block`.
    let lower = block.to_ascii_lowercase();
    for name in names {
        let name = name.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find('<') {
            let start = from + i;
            from = start + 1;
            let tag = &lower[start + 1..];
            let tag_name = &tag[..tag
                .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                .unwrap_or(tag.len())];
            if tag_name.rsplit(':').next() != Some(name.as_str()) {
                continue;
            }
            let Some(gt) = lower[start..].find('>').map(|j| start + j) else {
                break;
            };
            if lower[..gt].ends_with('/') {
                continue;
            }
            let close = format!("</{tag_name}");
            let Some(end) = lower[gt + 1..].find(&close).map(|j| gt + 1 + j) else {
                continue;
            };
            return Some(text_of(&block[gt + 1..end]));
        }
    }
    None
}

fn text_of(raw: &str) -> String {
    static CDATA: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)<!\[CDATA\[(.*?)\]\]>"));
    if CDATA.is_match(raw) {
        let mut out = String::new();
        let mut last = 0;
        for c in CDATA.captures_iter(raw) {
            if let (Some(whole), Some(inner)) = (c.get(0), c.get(1)) {
                out.push_str(&htmlize::unescape(&raw[last..whole.start()]));
                out.push_str(inner.as_str());
                last = whole.end();
            }
        }
        out.push_str(&htmlize::unescape(&raw[last..]));
        return out.trim().to_string();
    }
    htmlize::unescape(raw).trim().to_string()
}

/// RSS `<link>text</link>`, else Atom `<link href>` with rel alternate or no rel.
fn link(block: &str) -> Option<String> {
    static ATOM: LazyLock<Regex> = LazyLock::new(|| re(r"(?is)<link\b([^>]*?)/?>"));
    static HREF: LazyLock<Regex> = LazyLock::new(|| re(r#"(?is)\bhref\s*=\s*["']([^"']+)["']"#));
    static REL: LazyLock<Regex> = LazyLock::new(|| re(r#"(?is)\brel\s*=\s*["']([^"']+)["']"#));
    if let Some(text) = field(block, &["link"]).filter(|t| !t.is_empty()) {
        return Some(text);
    }
    ATOM.captures_iter(block).find_map(|c| {
        let attrs = c.get(1)?.as_str();
        let rel = REL
            .captures(attrs)
            .and_then(|r| r.get(1))
            .map(|m| m.as_str());
        if rel.is_some_and(|r| !r.eq_ignore_ascii_case("alternate")) {
            return None;
        }
        HREF.captures(attrs)
            .and_then(|h| h.get(1))
            .map(|m| htmlize::unescape(m.as_str()).into_owned())
    })
}

fn date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc2822(s)
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::extract;

    #[test]
    fn extracts_items_from_broken_rss() {
        let text = r#"<rss><channel><title>Broken &amp; Co</title>
            <item><title>1 < 2 in <b>Kyiv</b></title><link>https://e.com/1</link>
              <guid isPermaLink="false">g1</guid><description><![CDATA[<p>A & B</p>]]></description>
              <pubDate>Tue, 04 Mar 2025 10:00:00 +0000</pubDate></item>
            <item><title>Second</title><link>https://e.com/2</link>
        "#;
        let feed = extract(text).unwrap_or_default();
        assert_eq!(feed.title.as_deref(), Some("Broken & Co"));
        assert_eq!(feed.items.len(), 2);
        let first = &feed.items[0];
        assert_eq!(first.guid.as_deref(), Some("g1"));
        assert_eq!(first.link.as_deref(), Some("https://e.com/1"));
        assert_eq!(first.summary, "<p>A & B</p>");
        assert!(first.published.is_some());
        assert_eq!(feed.items[1].title, "Second");
    }

    #[test]
    fn atom_links_and_non_feeds() {
        let text = r#"<feed><title>T</title><entry><title>E</title>
            <link rel="self" href="https://e.com/self"/><link href="https://e.com/a?x=1&amp;y=2"/>
            <id>tag:e.com,2025:1</id></entry></feed>"#;
        let feed = extract(text).unwrap_or_default();
        assert_eq!(
            feed.items[0].link.as_deref(),
            Some("https://e.com/a?x=1&y=2")
        );
        assert_eq!(feed.items[0].guid.as_deref(), Some("tag:e.com,2025:1"));
        assert!(extract("<html><body>hello</body></html>").is_none());
    }
}
