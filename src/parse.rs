//! Feed bytes into our own `Article`s: decode, feed-rs for the formats, repair and retry, a
//! lenient fallback, then plain text, canonical links and stable keys. Pure and CPU-bound: no IO,
//! no clock; async callers go through [`parse_feed_off_thread`] so one huge feed never stalls
//! the runtime's workers.

pub mod dates;
pub mod feed_text;
pub mod full_text;
pub mod html;
pub mod identity;
pub mod language;
pub mod lenient;
pub mod websub;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use url::Url;

use crate::model::Article;
use crate::parse::feed_text::charset_of;
use crate::parse::html::html_to_text;
/// Kept here for callers of the skeleton's `parse::canonical_link`; it lives in `identity` now.
pub use crate::parse::identity::canonical_link;
use crate::parse::identity::{KeyInput, stable_keys};

/// A parsed feed: its own title and language, refresh hints, and its items in document order.
#[derive(Debug, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    pub lang: Option<String>,
    pub articles: Vec<Article>,
    /// RSS `<ttl>`.
    pub ttl: Option<Duration>,
    /// `sy:updatePeriod` divided by `sy:updateFrequency`.
    pub update_period: Option<Duration>,
    /// The character encoding the bytes were read as (`UTF-8`, `windows-1252`, …).
    pub encoding: &'static str,
    /// How much help the feed needed; worth a log line when not `Clean`.
    pub recovery: Recovery,
    /// The WebSub hub and self links the document names (filled by [`parse_feed_off_thread`]).
    pub hub_links: websub::HubLinks,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// feed-rs read it as served (after transcoding).
    #[default]
    Clean,
    /// feed-rs read it after [`feed_text::repair`].
    Repaired,
    /// Only the lenient extractor could read it.
    Lenient,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a valid feed: {0}")]
    Invalid(String),
    /// The document stops inside its root element: the body was cut (a connection that closed
    /// early, a `Content-Length` shorter than the document). Never read leniently into items:
    /// the last one would be a fragment.
    #[error("truncated: the document ends inside its <{root}> element after {bytes} bytes")]
    Truncated { root: String, bytes: usize },
}

impl ParseError {
    /// Whether fetching again may help (a cut body), as opposed to bytes that will not parse.
    pub fn is_transient(&self) -> bool {
        matches!(self, ParseError::Truncated { .. })
    }
}

/// Parses RSS, Atom or JSON Feed bytes. `base` resolves relative links.
pub fn parse_feed(bytes: &[u8], base: &Url) -> Result<ParsedFeed, ParseError> {
    parse_feed_with(bytes, base, None)
}

/// Like [`parse_feed`], with the response's `Content-Type` (its `charset` is one input of the
/// encoding decision).
pub fn parse_feed_with(
    bytes: &[u8],
    base: &Url,
    content_type: Option<&str>,
) -> Result<ParsedFeed, ParseError> {
    let decoded = feed_text::decode(bytes, content_type.and_then(charset_of));
    if feed_text::is_json(&decoded.text) {
        let feed =
            with_feed_rs(&decoded.text, base).map_err(|e| ParseError::Invalid(e.to_string()))?;
        return Ok(ParsedFeed {
            encoding: decoded.encoding,
            ..feed
        });
    }
    if let Some(root) = unclosed_root(&decoded.text) {
        return Err(ParseError::Truncated {
            root: root.to_string(),
            bytes: bytes.len(),
        });
    }
    let text = feed_text::fix_rss_version(&decoded.text);
    let text = match feed_text::fix_atom_03(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(t) => Cow::Owned(t),
    };
    let hints = |mut feed: ParsedFeed, recovery| {
        feed.update_period = update_period(&text);
        feed.encoding = decoded.encoding;
        feed.recovery = recovery;
        feed
    };
    let first_error = match with_feed_rs(&text, base) {
        Ok(feed) => return Ok(hints(feed, Recovery::Clean)),
        Err(e) => e,
    };
    let repaired = feed_text::repair(&text);
    if repaired != text
        && let Ok(feed) = with_feed_rs(&repaired, base)
    {
        return Ok(hints(feed, Recovery::Repaired));
    }
    match lenient::extract(&repaired) {
        Some(feed) => Ok(hints(from_lenient(feed, base), Recovery::Lenient)),
        None => Err(ParseError::Invalid(first_error.to_string())),
    }
}

/// The name of the document's root element when the text ends before that element closes (no
/// `</name>` after it, and it is not `<name/>`); `None` for a complete document and for text with
/// no element at all (which the readers refuse on their own). Names are compared ignoring ASCII
/// case, as the lenient reader would read them.
fn unclosed_root(text: &str) -> Option<&str> {
    let mut rest = text;
    let start = loop {
        let i = rest.find('<')?;
        let after = &rest[i + 1..];
        if after.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            break text.len() - after.len();
        }
        // A declaration, processing instruction or comment: skip to its end (a comment may
        // hold `>`; a doctype's internal subset is skipped whole by its closing `]>`).
        let end = if after.starts_with("!--") {
            after.find("-->").map(|j| j + 3)
        } else if after.starts_with("!DOCTYPE") && after.contains('[') {
            after
                .find("]>")
                .map(|j| j + 2)
                .or_else(|| after.find('>').map(|j| j + 1))
        } else {
            after.find('>').map(|j| j + 1)
        };
        rest = &after[end?..];
    };
    let tag = &text[start..];
    let name_len = tag
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(tag.len());
    let name = &tag[..name_len];
    let open_end = tag.find('>')?;
    if tag[..open_end].ends_with('/') {
        return None;
    }
    // Only whether the close tag occurs matters; it is normally the document's last tag, so the
    // `<`s are tried from the end (issue 22: no lower-cased copy of the whole document).
    let rest = &tag[open_end..];
    let closed = rest.rmatch_indices('<').any(|(j, _)| {
        let after = j + 2 + name.len();
        rest[j + 1..].starts_with('/')
            && rest
                .get(j + 2..after)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && rest[after..].trim_start().starts_with('>')
    });
    (!closed).then_some(name)
}

/// [`parse_feed_with`] on tokio's blocking pool; the pipeline's async tasks call this. With
/// `hubs`, the document's WebSub hub links too (a second pass over its head: 4 % of a cold
/// cycle's CPU, so only when `[websub]` will use them).
pub async fn parse_feed_off_thread(
    bytes: Vec<u8>,
    base: Url,
    content_type: Option<String>,
    hubs: bool,
) -> Result<ParsedFeed, ParseError> {
    tokio::task::spawn_blocking(move || {
        let mut feed = parse_feed_with(&bytes, &base, content_type.as_deref())?;
        if hubs {
            feed.hub_links = websub::discover(&bytes, &base);
        }
        Ok(feed)
    })
    .await
    .map_err(|e| ParseError::Invalid(format!("parser task failed: {e}")))?
}

/// An item before identity is assigned; both readers produce these.
struct RawItem {
    guid: Option<String>,
    link: Option<String>,
    title: String,
    summary: String,
    content: String,
    authors: Vec<String>,
    categories: Vec<String>,
    lang: Option<String>,
    published: Option<DateTime<Utc>>,
}

fn with_feed_rs(text: &str, base: &Url) -> Result<ParsedFeed, feed_rs::parser::ParseFeedError> {
    // An empty id marks "no guid": feed-rs's own generator (a random UUID, or a hash of link and
    // title that changes when a headline is edited) must never become an identity.
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base.as_str()))
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(dates::parse_timestamp)
        .build();
    let feed = parser.parse(text.as_bytes())?;
    let lang = feed.language.clone();
    let items = feed
        .entries
        .into_iter()
        .map(|e| RawItem {
            guid: Some(e.id).filter(|id| !id.trim().is_empty()),
            link: e
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or_else(|| e.links.first())
                .and_then(|l| resolve_link(&l.href, base)),
            title: e
                .title
                .map(|t| html_to_text(&t.content))
                .unwrap_or_default(),
            summary: e
                .summary
                .map(|t| html_to_text(&t.content))
                .unwrap_or_default(),
            content: e
                .content
                .and_then(|c| c.body)
                .map(|b| html_to_text(&b))
                .unwrap_or_default(),
            authors: e
                .authors
                .into_iter()
                .filter_map(|a| a.name.map(|n| html_to_text(&n)))
                .filter(|n| !n.is_empty())
                .collect(),
            categories: e
                .categories
                .into_iter()
                .map(|c| html_to_text(&c.label.unwrap_or(c.term)))
                .filter(|c| !c.is_empty())
                .collect(),
            lang: e.language.or_else(|| lang.clone()),
            published: e.published.or(e.updated),
        })
        .collect::<Vec<_>>();
    Ok(ParsedFeed {
        title: feed
            .title
            .map(|t| html_to_text(&t.content))
            .filter(|t| !t.is_empty()),
        lang,
        articles: into_articles(items),
        ttl: feed.ttl.map(|m| Duration::from_secs(u64::from(m) * 60)),
        ..ParsedFeed::default()
    })
}

fn from_lenient(feed: lenient::LenientFeed, base: &Url) -> ParsedFeed {
    let items = feed
        .items
        .into_iter()
        .map(|i| RawItem {
            guid: i.guid,
            link: i.link.and_then(|l| resolve_link(&l, base)),
            title: html_to_text(&i.title),
            summary: html_to_text(&i.summary),
            content: html_to_text(&i.content),
            authors: Vec::new(),
            categories: Vec::new(),
            lang: None,
            published: i.published,
        })
        .collect();
    ParsedFeed {
        title: feed.title.map(|t| html_to_text(&t)),
        articles: into_articles(items),
        ..ParsedFeed::default()
    }
}

fn into_articles(items: Vec<RawItem>) -> Vec<Article> {
    let keys = stable_keys(
        &items
            .iter()
            .map(|i| KeyInput {
                guid: i.guid.as_deref(),
                link: i.link.as_deref(),
                title: &i.title,
                summary: &i.summary,
            })
            .collect::<Vec<_>>(),
    );
    items
        .into_iter()
        .zip(keys)
        .map(|(i, key)| Article {
            // Declared wins; detected only when the item and its feed say nothing (issue 20).
            lang_detected: match i.lang {
                Some(_) => None,
                None => language::detect(&i.title, &i.summary, &i.content).map(str::to_string),
            },
            key,
            link: i.link,
            title: i.title,
            summary: i.summary,
            content: i.content,
            authors: i.authors,
            categories: i.categories,
            lang: i.lang,
            published: i.published,
        })
        .collect()
}

fn resolve_link(href: &str, base: &Url) -> Option<String> {
    let href = href.trim();
    canonical_link(href).or_else(|| canonical_link(base.join(href).ok()?.as_str()))
}

/// `sy:updatePeriod` / `sy:updateFrequency` (RSS 1.0 syndication module), which feed-rs ignores.
fn update_period(text: &str) -> Option<Duration> {
    static PERIOD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)<(?:[a-z0-9_-]+:)?updatePeriod\s*>\s*([a-z]+)\s*<")
            .expect("a constant regex compiles")
    });
    static FREQUENCY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)<(?:[a-z0-9_-]+:)?updateFrequency\s*>\s*([0-9]+)\s*<")
            .expect("a constant regex compiles")
    });
    let period = PERIOD.captures(text)?.get(1)?.as_str().to_ascii_lowercase();
    let secs: u64 = match period.as_str() {
        "hourly" => 3600,
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        "monthly" => 30 * 86_400,
        "yearly" => 365 * 86_400,
        _ => return None,
    };
    let frequency = FREQUENCY
        .captures(text)
        .and_then(|c| c.get(1)?.as_str().parse::<u64>().ok())
        .filter(|&f| f > 0)
        .unwrap_or(1);
    Some(Duration::from_secs(secs / frequency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.com/feed.xml").expect("a valid URL")
    }

    fn rss(items: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\" \
             xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\"><channel>\
             <title>T</title>{items}</channel></rss>"
        )
    }

    #[test]
    fn titles_decode_double_escaped_entities() {
        let xml = rss(
            "<item><title>Tom &amp;amp; Jerry &amp;#8217;s &lt;b&gt;day&lt;/b&gt;</title>\
                       <link>https://example.com/a</link></item>",
        );
        let feed = parse_feed(xml.as_bytes(), &base()).unwrap_or_default();
        assert_eq!(feed.articles[0].title, "Tom & Jerry ’s day");
    }

    #[test]
    fn refresh_hints() {
        let xml = rss("<ttl>90</ttl><sy:updatePeriod>daily</sy:updatePeriod>\
                       <sy:updateFrequency>4</sy:updateFrequency>");
        let feed = parse_feed(xml.as_bytes(), &base()).unwrap_or_default();
        assert_eq!(feed.ttl, Some(Duration::from_secs(90 * 60)));
        assert_eq!(feed.update_period, Some(Duration::from_secs(6 * 3600)));
    }

    #[test]
    fn relative_links_resolve_against_the_feed() {
        let xml = rss("<item><title>x</title><link>/news/1?utm_source=rss</link></item>");
        let feed = parse_feed(xml.as_bytes(), &base()).unwrap_or_default();
        assert_eq!(
            feed.articles[0].link.as_deref(),
            Some("https://example.com/news/1")
        );
        assert_eq!(feed.articles[0].key, "link:https://example.com/news/1");
    }

    /// Atom 0.3 (still served by old blog engines) and RSS behind an XHTML doctype are feeds with
    /// items, not empty feeds or HTML pages.
    #[test]
    fn old_atom_and_doctype_prefixed_rss_yield_their_items() {
        let atom03 = r#"<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#">
  <title>Old blog</title>
  <tagline>Notes</tagline>
  <modified>2025-03-02T10:00:00Z</modified>
  <entry>
    <title>Healey meets Hegseth</title>
    <link rel="alternate" type="text/html" href="https://old.example/1"/>
    <id>tag:old.example,2025:1</id>
    <issued>2025-03-01T09:00:00Z</issued>
    <modified>2025-03-01T09:30:00Z</modified>
    <summary>The two defence chiefs spoke in Washington.</summary>
  </entry>
  <entry>
    <title>Second</title>
    <link rel="alternate" type="text/html" href="https://old.example/2"/>
    <id>tag:old.example,2025:2</id>
    <modified>2025-03-02T09:30:00Z</modified>
  </entry>
</feed>"#;
        let feed = parse_feed(atom03.as_bytes(), &base()).expect("Atom 0.3 parses");
        let got: Vec<(&str, Option<&str>)> = feed
            .articles
            .iter()
            .map(|a| (a.title.as_str(), a.link.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("Healey meets Hegseth", Some("https://old.example/1")),
                ("Second", Some("https://old.example/2"))
            ]
        );
        assert_eq!(
            feed.articles[0].summary,
            "The two defence chiefs spoke in Washington."
        );
        assert!(feed.articles[0].published.is_some(), "issued is the date");

        let xhtml_rss = r#"<?xml version="1.0"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<rss version="2.0"><channel><title>T</title><item><title>One</title><link>https://e.com/1</link></item></channel></rss>"#;
        assert_eq!(
            crate::fetch::sniff::sniff(xhtml_rss.as_bytes()),
            crate::fetch::sniff::Verdict::Feed
        );
        let feed = parse_feed(xhtml_rss.as_bytes(), &base()).expect("RSS after a doctype parses");
        assert_eq!(feed.articles.len(), 1);
    }

    proptest::proptest! {
        // Hostile input must cost an error at worst, never a panic in a worker.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = parse_feed(&bytes, &base());
        }

        #[test]
        fn mangled_feeds_never_panic(cut in 0usize..400, insert in "[<>&;#x0-9a-z\"' /\\]\\[!?-]{0,12}") {
            let xml = rss("<item><title>A &amp; B</title><link>https://e.com/1</link>\
                           <description><![CDATA[<p>x &</p>]]></description></item>");
            let cut = cut.min(xml.len());
            let mangled = format!("{}{insert}{}", &xml[..cut], &xml[cut..]);
            let _ = parse_feed(mangled.as_bytes(), &base());
        }
    }

    /// Issue 16 item 5: a document cut inside its root element is an error, never a feed whose
    /// last item is a fragment (the lenient reader used to make one of it).
    #[test]
    fn a_document_cut_inside_its_root_is_truncated() {
        let whole = rss("<item><guid>g1</guid><title>Hegseth cut off</title>\
                         <link>https://e.com/1</link></item>");
        assert_eq!(
            parse_feed(whole.as_bytes(), &base())
                .map(|f| f.articles.len())
                .ok(),
            Some(1)
        );
        // (text, the root it names; None = not truncated)
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            (&whole[..whole.len() - 20], Some("rss")),
            (&whole[..whole.len() - 3], Some("rss")),
            ("<?xml version=\"1.0\"?><!-- <rss> --><feed xmlns=\"x\"><entry><title>T", Some("feed")),
            ("<!DOCTYPE rss [<!ENTITY a \"<b>\">]><rss><channel><title>T</title>", Some("rss")),
            ("<rdf:RDF><item><title>T</title></item></RDF:rdf >", None),
            ("<rss/>", None),
            ("<rss><channel><title>T</title></channel></rss>\n<!-- trailing -->", None),
            ("no markup at all", None),
        ];
        for &(text, root) in cases {
            assert_eq!(unclosed_root(text), root, "{text}");
        }
        match parse_feed(&whole.as_bytes()[..whole.len() - 20], &base()) {
            Err(e @ ParseError::Truncated { .. }) => {
                assert!(e.is_transient());
                assert!(
                    e.to_string()
                        .starts_with("truncated: the document ends inside its <rss>")
                );
            }
            other => panic!("a cut feed parsed: {other:?}"),
        }
    }

    #[test]
    fn recovery_levels() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<Recovery, ()>)] = &[
            ("<rss version=\"2.0\"><channel><title>T</title></channel></rss>", Ok(Recovery::Clean)),
            ("<rss><channel><title>T</title></channel></rss>", Ok(Recovery::Clean)),
            ("<rss version=\"2.0\"><channel><title>Q&A</title></channel></rss>", Ok(Recovery::Repaired)),
            ("<rss version=\"2.0\"><channel><title>T</title><item><title>1 < 2</title></item></channel></rss>", Ok(Recovery::Lenient)),
            ("<html><body>nope</body></html>", Err(())),
            ("{\"not\": \"a feed\"}", Err(())),
            ("{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"J\", \"items\": [{\"id\": \"1\", \"content_html\": \"<rss>&\"}]}", Ok(Recovery::Clean)),
        ];
        for &(input, want) in cases {
            let got = parse_feed(input.as_bytes(), &base())
                .map(|f| f.recovery)
                .map_err(|_| ());
            assert_eq!(got, want, "{input}");
        }
    }
}
