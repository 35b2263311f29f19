//! WebSub discovery (W3C WebSub §4): a feed's hub and its own canonical URL (the topic), from the
//! document (`<link rel="hub">` / `<atom:link rel="hub">` at the top of RSS or Atom, JSON Feed's
//! `hubs` and `feed_url`) and from HTTP `Link:` headers, which take precedence. Pure: bytes and
//! header values in, URLs out; a malformed document yields nothing rather than an error (its
//! items are the parser's business).

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use url::Url;

/// What a feed says about being pushed: both are needed to subscribe.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HubLinks {
    /// The first hub named (`rel="hub"`).
    pub hub: Option<String>,
    /// The topic URL (`rel="self"`): what is subscribed to; the feed's URL when absent.
    pub self_url: Option<String>,
}

impl HubLinks {
    /// `self`, filled in from `other` where it says nothing.
    #[must_use]
    pub fn or(self, other: HubLinks) -> HubLinks {
        HubLinks {
            hub: self.hub.or(other.hub),
            self_url: self.self_url.or(other.self_url),
        }
    }
}

/// Bytes of a document searched for its hub links: they belong at its top, before the items.
const SCAN_LIMIT: usize = 256 * 1024;

/// The hub and self links of a feed document (RSS, Atom or JSON Feed), resolved against `base`.
pub fn discover(bytes: &[u8], base: &Url) -> HubLinks {
    let head = &bytes[..bytes.len().min(SCAN_LIMIT)];
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return from_json(bytes, base);
    }
    from_xml(head, base)
}

/// `Link:` header values (RFC 8288): `<https://hub.example/>; rel="hub", <…>; rel="self"`.
pub fn from_link_headers<'a>(values: impl IntoIterator<Item = &'a str>, base: &Url) -> HubLinks {
    let mut out = HubLinks::default();
    for value in values {
        for link in split_links(value) {
            let Some((target, params)) = link
                .trim()
                .strip_prefix('<')
                .and_then(|rest| rest.split_once('>'))
            else {
                continue;
            };
            for rel in params.split(';').filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("rel")
                    .then(|| v.trim().trim_matches('"').to_string())
            }) {
                for r in rel.split_ascii_whitespace() {
                    record(&mut out, r, target, base);
                }
            }
        }
    }
    out
}

/// Splits a header value at the commas between links (not those inside `<…>` or quotes).
fn split_links(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut in_uri, mut in_quote) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quote => in_uri = true,
            '>' if !in_quote => in_uri = false,
            '"' if !in_uri => in_quote = !in_quote,
            ',' if !in_uri && !in_quote => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

fn record(out: &mut HubLinks, rel: &str, href: &str, base: &Url) {
    let slot = if rel.eq_ignore_ascii_case("hub") {
        &mut out.hub
    } else if rel.eq_ignore_ascii_case("self") {
        &mut out.self_url
    } else {
        return;
    };
    if slot.is_none()
        && let Ok(url) = base.join(href.trim())
        && matches!(url.scheme(), "http" | "https")
    {
        *slot = Some(url.to_string());
    }
}

/// Links that are children of the feed itself: `<feed><link>` (Atom) or
/// `<rss><channel><atom:link>` / `<rdf:RDF><channel><atom:link>` (RSS); never an item's.
fn from_xml(bytes: &[u8], base: &Url) -> HubLinks {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut out = HubLinks::default();
    // Local names of the open elements.
    let mut open: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Start(e) => {
                if e.local_name().as_ref().eq_ignore_ascii_case("link") && at_feed_level(&open) {
                    link_element(&mut out, &e, base);
                }
                open.push(e.local_name().as_ref().to_ascii_lowercase());
                // The feed's own links come before its items.
                if matches!(open.last().map(String::as_str), Some("item" | "entry"))
                    && out.hub.is_some()
                {
                    break;
                }
            }
            Event::Empty(e)
                if e.local_name().as_ref().eq_ignore_ascii_case("link") && at_feed_level(&open) =>
            {
                link_element(&mut out, &e, base);
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

fn at_feed_level(open: &[String]) -> bool {
    match open {
        [root] => root == "feed",
        [_, channel] => channel == "channel",
        _ => false,
    }
}

fn link_element(out: &mut HubLinks, e: &BytesStart<'_>, base: &Url) {
    let (mut rel, mut href) = (None, None);
    for attr in e.attributes().flatten() {
        let Ok(value) = attr.normalized_value(XmlVersion::Implicit1_0) else {
            continue;
        };
        match attr.key.local_name().as_ref() {
            "rel" => rel = Some(value.trim().to_string()),
            "href" => href = Some(value.trim().to_string()),
            _ => {}
        }
    }
    if let (Some(rel), Some(href)) = (rel, href) {
        for r in rel.split_ascii_whitespace() {
            record(out, r, &href, base);
        }
    }
}

/// JSON Feed 1.1: `"hubs": [{"type": "WebSub", "url": …}]`, `"feed_url"`.
fn from_json(bytes: &[u8], base: &Url) -> HubLinks {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return HubLinks::default();
    };
    let mut out = HubLinks::default();
    if let Some(hubs) = doc.get("hubs").and_then(serde_json::Value::as_array) {
        let websub = hubs.iter().find(|h| {
            h.get("type")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|t| t.eq_ignore_ascii_case("websub"))
        });
        if let Some(url) = websub
            .and_then(|h| h.get("url"))
            .and_then(serde_json::Value::as_str)
        {
            record(&mut out, "hub", url, base);
        }
    }
    if let Some(url) = doc.get("feed_url").and_then(serde_json::Value::as_str) {
        record(&mut out, "self", url, base);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://news.example/feeds/world.xml").expect("valid")
    }

    #[test]
    fn rss_atom_link_at_channel_level_only() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
            <title>t</title><link>https://news.example/</link>
            <atom:link rel="self" href="https://news.example/feeds/world.xml"/>
            <atom:link rel="hub" href="https://hub.example/"/>
            <item><title>a</title><atom:link rel="hub" href="https://wrong.example/"/></item>
            </channel></rss>"#;
        let links = discover(rss, &base());
        assert_eq!(links.hub.as_deref(), Some("https://hub.example/"));
        assert_eq!(
            links.self_url.as_deref(),
            Some("https://news.example/feeds/world.xml")
        );
        let item_only = br#"<rss><channel><item><atom:link rel="hub" href="https://wrong.example/"/></item></channel></rss>"#;
        assert_eq!(discover(item_only, &base()), HubLinks::default());
    }

    #[test]
    fn atom_links_resolve_relative_hrefs() {
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="/hub"></link>
            <link rel="self" href="world.atom"/><entry><link rel="self" href="/e"/></entry></feed>"#;
        let links = discover(atom, &base());
        assert_eq!(links.hub.as_deref(), Some("https://news.example/hub"));
        assert_eq!(
            links.self_url.as_deref(),
            Some("https://news.example/feeds/world.atom")
        );
    }

    #[test]
    fn json_feed_hubs() {
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","feed_url":"https://news.example/f.json",
            "hubs":[{"type":"rssCloud","url":"https://cloud.example/"},{"type":"WebSub","url":"https://hub.example/"}],"items":[]}"#;
        let links = discover(json, &base());
        assert_eq!(links.hub.as_deref(), Some("https://hub.example/"));
        assert_eq!(
            links.self_url.as_deref(),
            Some("https://news.example/f.json")
        );
        assert_eq!(discover(b"{not json", &base()), HubLinks::default());
    }

    #[test]
    fn link_headers() {
        let links = from_link_headers(
            [
                r#"<https://news.example/a,b>; rel="alternate", <https://hub.example/>; rel="hub""#,
                "<https://news.example/self>; rel=self",
            ],
            &base(),
        );
        assert_eq!(links.hub.as_deref(), Some("https://hub.example/"));
        assert_eq!(links.self_url.as_deref(), Some("https://news.example/self"));
        // A non-http hub is ignored.
        let links = from_link_headers([r#"<javascript:alert(1)>; rel="hub""#], &base());
        assert_eq!(links.hub, None);
        let header_first =
            from_link_headers(["<https://h1.example/>; rel=hub"], &base()).or(HubLinks {
                hub: Some("https://h2.example/".into()),
                self_url: Some("https://s.example/".into()),
            });
        assert_eq!(header_first.hub.as_deref(), Some("https://h1.example/"));
        assert_eq!(header_first.self_url.as_deref(), Some("https://s.example/"));
    }
}
