//! Feed bytes into our own `Article`s: feed-rs for the formats, then plain text, stable keys and
//! canonical links. Pure: no IO, no clock.

use sha2::{Digest, Sha256};
use url::Url;

use crate::article::Article;
use crate::html::html_to_text;

/// A parsed feed: its own title and language, and its items in document order.
#[derive(Debug, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    pub lang: Option<String>,
    pub articles: Vec<Article>,
}

#[derive(Debug, thiserror::Error)]
#[error("not a valid feed: {0}")]
pub struct ParseError(String);

/// Parses RSS, Atom or JSON Feed bytes. `base` resolves relative links.
pub fn parse_feed(bytes: &[u8], base: &Url) -> Result<ParsedFeed, ParseError> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base.as_str()))
        .build();
    let feed = parser.parse(bytes).map_err(|e| ParseError(e.to_string()))?;
    let lang = feed.language.clone();
    let title = feed
        .title
        .as_ref()
        .map(|t| text_of(&t.content, &t.content_type));
    let articles = feed
        .entries
        .into_iter()
        .map(|e| {
            let title = e
                .title
                .as_ref()
                .map(|t| text_of(&t.content, &t.content_type))
                .unwrap_or_default();
            let summary = e
                .summary
                .as_ref()
                .map(|t| text_of(&t.content, &t.content_type))
                .unwrap_or_default();
            let content = e
                .content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .map(html_to_text)
                .unwrap_or_default();
            let link = e
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or_else(|| e.links.first())
                .and_then(|l| canonical_link(&l.href));
            let key = stable_key(&e.id, link.as_deref(), &title, &summary);
            Article {
                key,
                link,
                title,
                summary,
                content,
                authors: e
                    .authors
                    .iter()
                    .filter_map(|a| a.name.clone())
                    .filter(|n| !n.is_empty())
                    .collect(),
                categories: e
                    .categories
                    .iter()
                    .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
                    .collect(),
                lang: e.language.clone().or_else(|| lang.clone()),
                published: e.published.or(e.updated),
            }
        })
        .collect();
    Ok(ParsedFeed {
        title,
        lang,
        articles,
    })
}

fn text_of(s: &str, content_type: &impl std::fmt::Display) -> String {
    if content_type.to_string().starts_with("text/plain") {
        collapse(&htmlize::unescape(s))
    } else {
        html_to_text(s)
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// feed-rs invents a random id (an md5 of random bytes) for items without guid and link; such ids
/// are 32 hex digits. We key those items by link or content instead, so re-polls recognise them.
fn stable_key(feed_rs_id: &str, link: Option<&str>, title: &str, summary: &str) -> String {
    let generated = feed_rs_id.len() == 32 && feed_rs_id.bytes().all(|b| b.is_ascii_hexdigit());
    if !feed_rs_id.is_empty() && !generated {
        return format!("id:{feed_rs_id}");
    }
    if let Some(link) = link {
        return format!("link:{link}");
    }
    let mut h = Sha256::new();
    h.update(title.to_lowercase().as_bytes());
    h.update([0]);
    h.update(summary.to_lowercase().as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("hash:{hex}")
}

/// http/https links only, with tracking parameters and the fragment removed.
pub fn canonical_link(href: &str) -> Option<String> {
    let mut url = Url::parse(href.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking_param(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Some(url.to_string())
}

fn is_tracking_param(k: &str) -> bool {
    k.starts_with("utm_")
        || matches!(
            k,
            "fbclid" | "gclid" | "dclid" | "msclkid" | "mc_cid" | "mc_eid" | "igshid"
        )
}
