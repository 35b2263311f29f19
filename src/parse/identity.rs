//! Item identity: the stable key of each item within its feed, and canonical links. Pure: no IO.
//! A key never comes from feed-rs's generated ids (a random UUID, or a hash of link and title that
//! changes when a headline is edited); `parse` disables that generator and hands us the raw guid.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use url::Url;

use crate::model::Article;

/// More *new* items than this in one poll of one feed is a flood (a feed replaying its archive,
/// or a firehose): every item is still stored and matched, none is held back or dropped (issue 16
/// item 6), but the feed carries a warning in `status` and the digest's Sources section. Alert
/// floods are bounded downstream (alert caps, the digest's `max_items`), not by skipping items.
pub const FLOOD_NEW_ITEMS: usize = 100;

/// What identity is computed from, for one item.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// The raw guid / Atom id / JSON Feed id, if the item has one.
    pub guid: Option<&'a str>,
    /// The canonical link (see [`canonical_link`]).
    pub link: Option<&'a str>,
    pub title: &'a str,
    pub summary: &'a str,
}

/// The stable key of every item, in order: `id:<guid>` when the guid is unique within the feed,
/// else `link:<canonical link>` when the link is unique within the feed, else
/// `hash:<digest of normalised title and summary>`.
///
/// Uniqueness matters because broken feeds reuse one guid (or the home page as link) for every
/// item; keying on it would merge distinct stories and miss all but the first.
pub fn stable_keys(items: &[KeyInput<'_>]) -> Vec<String> {
    let mut guids: HashMap<&str, usize> = HashMap::new();
    let mut links: HashMap<&str, usize> = HashMap::new();
    for item in items {
        if let Some(g) = item.guid.map(str::trim).filter(|g| !g.is_empty()) {
            *guids.entry(g).or_default() += 1;
        }
        if let Some(l) = item.link {
            *links.entry(l).or_default() += 1;
        }
    }
    items
        .iter()
        .map(|item| {
            if let Some(g) = item
                .guid
                .map(str::trim)
                .filter(|g| guids.get(g) == Some(&1))
            {
                return format!("id:{g}");
            }
            if let Some(l) = item.link.filter(|l| links.get(l) == Some(&1)) {
                return format!("link:{l}");
            }
            content_key(item.title, item.summary)
        })
        .collect()
}

/// Keys under which the store should also look an article up before calling it new, besides its
/// primary `key`: its canonical link. This is what keeps a feed whose guids churn on every poll
/// (while link and title stay) from re-alerting.
pub fn alternate_keys(article: &Article) -> Vec<String> {
    match &article.link {
        Some(l) if !article.key.starts_with("link:") => vec![format!("link:{l}")],
        _ => Vec::new(),
    }
}

/// How long a story stays findable by its loose keys (see [`loose_keys`]) after the feed last
/// listed it. Guid churn is seen poll to poll, so a short window suffices; it also bounds how long
/// a vanished story's headline can stand in for a new story's.
pub const LOOSE_KEY_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// A headline this short ("Morning briefing", "Letters") is not distinctive enough to identify a
/// story on its own: feeds reuse it for a new item every day.
pub const MIN_TITLE_WORDS: usize = 4;

/// The second identity layer, for feeds whose guids churn together with their links (issue 16
/// item 3): the item's loosely normalised link (`url:`, see [`loose_link`]) and its normalised
/// headline (`title:` + a digest, when at least [`MIN_TITLE_WORDS`] words). The store takes an item
/// known on either key as the same story, within [`LOOSE_KEY_WINDOW`], provided the stored story
/// is not itself listed in the same poll and the key is unique in the poll: two live items that
/// share a headline are two stories.
pub fn loose_keys(article: &Article) -> Vec<String> {
    let mut keys: Vec<String> = article
        .link
        .as_deref()
        .and_then(loose_link)
        .map(|l| format!("url:{l}"))
        .into_iter()
        .collect();
    let title = normalise(&article.title);
    if title.split(' ').count() >= MIN_TITLE_WORDS {
        keys.push(format!("title:{}", hex_digest(&[title.as_bytes()])));
    }
    keys
}

/// A link reduced to what identifies the page: no scheme (http and https are the same story),
/// host lower-cased and without `www.`, no default port, no fragment, no trailing slash, and the
/// query without tracking or noise parameters ([`is_noise_param`]), sorted.
pub fn loose_link(href: &str) -> Option<String> {
    let href = href.trim();
    if let Some(plain) = plain_loose_link(href) {
        return Some(plain);
    }
    parsed_loose_link(href)
}

/// The host and path of a link the URL parser would leave exactly as it is written, found by
/// slicing the string (issue 22: the parses of a stored item's link were 4 % of a cold cycle):
/// `http(s)://`, a lower-case ASCII host that is a name (not internationalised) or an IPv4
/// address as the parser writes one, no port, user, query or fragment, and a non-empty path of
/// characters the parser keeps, with no dot segment. The canonical links `parse` stores are
/// mostly of this shape. `None` for anything else, which goes through the parser.
fn plain_link(href: &str) -> Option<(&str, &str)> {
    let rest = href
        .strip_prefix("https://")
        .or_else(|| href.strip_prefix("http://"))?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let host_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    // A host whose last label starts with a letter is a name, never an IPv4 address (those end
    // in a decimal or `0x` number).
    let last = host.strip_suffix('.').unwrap_or(host).rsplit('.').next()?;
    let plain = (last.starts_with(|c: char| c.is_ascii_lowercase()) || dotted_quad(host))
        && host.bytes().all(host_byte)
        && !host.contains("xn--")
        && plain_path(path.as_bytes());
    plain.then_some((host, path))
}

/// A path of bytes the parser keeps as written, none of whose segments is a dot segment
/// (`.`, `..`, or either spelt with `%2e`): no `/.` and no `%2e` anywhere, to be sure.
fn plain_path(path: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in path.iter().enumerate() {
        let dot = b == b'.' && prev == b'/';
        let escaped_dot = b == b'%'
            && path
                .get(i + 1..i + 3)
                .is_some_and(|e| e.eq_ignore_ascii_case(b"2e"));
        if dot || escaped_dot || !plain_path_byte(b) {
            return false;
        }
        prev = b;
    }
    true
}

/// `loose_link` of a `plain_link`: its host without `www.`, its path without trailing slashes.
fn plain_loose_link(href: &str) -> Option<String> {
    let (host, path) = plain_link(href)?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        ""
    };
    Some(format!("{host}{path}"))
}

/// An IPv4 address as the URL parser writes one: four decimal numbers up to 255, no leading zero.
fn dotted_quad(host: &str) -> bool {
    let mut parts = 0;
    for part in host.split('.') {
        parts += 1;
        let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let canonical =
            digits && (part.len() == 1 || !part.starts_with('0')) && part.parse::<u8>().is_ok();
        if !canonical {
            return false;
        }
    }
    parts == 4
}

/// A byte the URL parser keeps as written in an http(s) path: unreserved, sub-delimiters, `:`,
/// `@`, `/` and `%` (an escape it does not touch).
fn plain_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// `loose_link` through the URL parser.
fn parsed_loose_link(href: &str) -> Option<String> {
    let url = Url::parse(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())?
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let mut out = host.to_string();
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let path = url.path();
    out.push_str(if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        ""
    });
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking_param(k) && !is_noise_param(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    query.sort();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    Some(out)
}

/// Query parameters that change while the page stays the same story: revision counters and cache
/// busters (`rev`, `revision`, `cb`, `cachebust`, `cachebuster`, `nocache`, `_`) and referrer
/// tags (`ref`, `ref_src`, `ref_url`). Only the loose identity drops them; the stored link keeps
/// them. Anything else (`id`, `p`, `v`, `page`, `version`…) may name the page and is kept.
fn is_noise_param(k: &str) -> bool {
    matches!(
        k.to_ascii_lowercase().as_str(),
        "rev"
            | "revision"
            | "cb"
            | "cachebust"
            | "cachebuster"
            | "nocache"
            | "_"
            | "ref"
            | "ref_src"
            | "ref_url"
    )
}

/// NFKC, lower case, whitespace collapsed to single spaces.
fn normalise(s: &str) -> String {
    // NFKC and Unicode lower-casing leave ASCII as ASCII lower-cased: most headlines skip them.
    let folded: String = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.nfkc().flat_map(char::to_lowercase).collect()
    };
    let mut out = String::with_capacity(folded.len());
    for word in folded.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// 32 hex digits of SHA-256 over `parts`, each followed by a 0 byte.
fn hex_digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0]);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in h.finalize().iter().take(16) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// `hash:` + 32 hex digits of SHA-256 over NFKC-normalised, lower-cased, whitespace-collapsed
/// title and summary.
pub fn content_key(title: &str, summary: &str) -> String {
    let mut h = Sha256::new();
    h.update(normalise(title).as_bytes());
    h.update([0]);
    h.update(normalise(summary).as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("hash:{hex}")
}

/// http/https links only: host lower-cased (the URL parser does it), default ports, fragments and
/// tracking parameters dropped, the remaining query kept in order.
pub fn canonical_link(href: &str) -> Option<String> {
    let href = href.trim();
    // A plain link is its own canonical form: no fragment or query to drop, nothing the
    // parser would rewrite.
    if plain_link(href).is_some() {
        return Some(href.to_string());
    }
    canonical_url(href).map(String::from)
}

/// `canonical_link` as a parsed URL (what the digest's clustering reads it as, without
/// serialising and parsing it again).
pub fn canonical_url(href: &str) -> Option<Url> {
    let mut url = Url::parse(href.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    url.set_fragment(None);
    if url.query().is_some() {
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
    }
    Some(url)
}

fn is_tracking_param(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.starts_with("utm_")
        || k.starts_with("at_")
        || matches!(
            k.as_str(),
            "fbclid"
                | "gclid"
                | "gclsrc"
                | "dclid"
                | "gbraid"
                | "wbraid"
                | "msclkid"
                | "yclid"
                | "twclid"
                | "igshid"
                | "mc_cid"
                | "mc_eid"
                | "_hsenc"
                | "_hsmi"
                | "mkt_tok"
                | "ocid"
                | "cmpid"
                | "smid"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_links() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("https://Example.COM/a", Some("https://example.com/a")),
            ("http://example.com:80/a", Some("http://example.com/a")),
            ("https://example.com:443/a", Some("https://example.com/a")),
            ("https://example.com:8443/a", Some("https://example.com:8443/a")),
            ("https://example.com/a#top", Some("https://example.com/a")),
            ("https://example.com/a?utm_source=rss&utm_medium=x", Some("https://example.com/a")),
            ("https://example.com/a?id=7&fbclid=abc&gclid=d", Some("https://example.com/a?id=7")),
            ("https://example.com/a?UTM_Campaign=z&p=2", Some("https://example.com/a?p=2")),
            ("https://bbc.co.uk/n?at_medium=RSS&at_campaign=K", Some("https://bbc.co.uk/n")),
            ("  https://example.com/a  ", Some("https://example.com/a")),
            ("https://example.com", Some("https://example.com/")),
            ("mailto:someone@example.com", None),
            ("javascript:alert(1)", None),
            ("ftp://example.com/a", None),
            ("not a url", None),
        ];
        for &(input, want) in cases {
            assert_eq!(canonical_link(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn loose_links_drop_scheme_www_and_noise() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("https://news.example/a?rev=3", Some("news.example/a")),
            ("http://www.News.Example/a/?rev=4&utm_source=rss", Some("news.example/a")),
            ("https://news.example:8443/a", Some("news.example:8443/a")),
            ("https://news.example/a?p=2&id=7&_=1699&cb=9", Some("news.example/a?id=7&p=2")),
            ("https://news.example/A?Ref=rss&v=2", Some("news.example/A?v=2")),
            ("https://news.example/", Some("news.example")),
            ("https://news.example/a#comments", Some("news.example/a")),
            ("https://www.example/?flag", Some("example?flag")),
            ("ftp://news.example/a", None),
            ("not a url", None),
        ];
        for &(input, want) in cases {
            assert_eq!(loose_link(input).as_deref(), want, "{input}");
        }
    }

    /// Where the string path answers, it answers what the URL parser's path does; and it does
    /// answer for ordinary article links.
    #[test]
    fn plain_loose_links_agree_with_the_parsed_ones() {
        let hosts = [
            "news.example",
            "www.news.example",
            "News.Example",
            "news.example.",
            "a..b",
            "www.",
            "1.2.3.4",
            "127.0.0.1",
            "0.0.0.0",
            "01.2.3.4",
            "1.2.3.256",
            "1.2.3",
            "1.2.3.4.",
            "+1.2.3.4",
            "x.0x7f",
            "x.1",
            "0x7f.c",
            "xn--bcher-kva.example",
            "b\u{fc}cher.example",
            "news.example:443",
            "news.example:80",
            "news.example:8080",
            "user@news.example",
            "[::1]",
            "-a-.b-",
            "a-label-of-seventy-characters-is-longer-than-dns-allows-for-one-label-x.example",
            "",
        ];
        let paths = [
            "",
            "/",
            "//",
            "/a",
            "/a/",
            "/a//",
            "/2025/03/10/healey-kyiv.html",
            "/a/./b",
            "/a/../b",
            "/.well-known",
            "/a/%2e%2E/b",
            "/a/%2E",
            "/caf%C3%A9",
            "/a%zz",
            "/a%2",
            "/%2E%2e/x",
            "/a/.",
            "/a b",
            "/a\\b",
            "/a^b|c",
            "/a{b}",
            "/~user/!$&'()*+,;=:@",
            "/a?x=1",
            "/a#frag",
            "/caf\u{e9}",
        ];
        let mut plain = 0;
        for scheme in ["https://", "http://", "HTTP://", "ftp://", ""] {
            for host in hosts {
                for path in paths {
                    let href = format!("{scheme}{host}{path}");
                    if let Some(fast) = plain_loose_link(&href) {
                        plain += 1;
                        assert_eq!(Some(fast), parsed_loose_link(&href), "{href}");
                        let parsed = canonical_url(&href).map(String::from);
                        assert_eq!(canonical_link(&href), parsed, "{href}");
                        assert_eq!(parsed.as_deref(), Some(href.as_str()), "{href}");
                    }
                }
            }
        }
        assert!(plain > 100, "the string path answered {plain} links");
        // A host longer than DNS allows (the URL parser does not check lengths).
        let long = format!("https://{}example/a", "abcdefghi.".repeat(30));
        assert_eq!(plain_loose_link(&long), parsed_loose_link(&long));
        assert_eq!(
            canonical_link(&long),
            canonical_url(&long).map(String::from)
        );
        assert!(plain_loose_link("https://www.bbc.co.uk/news/world-europe-68000000").is_some());
        assert!(plain_loose_link("http://127.0.0.1/article/169/49").is_some());
    }

    #[test]
    fn loose_keys_are_the_link_and_a_distinctive_headline() {
        let a = |title: &str, link: Option<&str>| Article {
            key: "id:g".into(),
            title: title.into(),
            link: link.map(str::to_string),
            ..Article::default()
        };
        let long = a(
            "Healey meets Hegseth in Washington",
            Some("http://e.com/1?rev=2"),
        );
        let keys = loose_keys(&long);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], "url:e.com/1");
        assert!(keys[1].starts_with("title:"), "{keys:?}");
        let same = loose_keys(&a("HEALEY  meets Hegseth in ＷＡＳＨＩＮＧＴＯＮ", None));
        assert_eq!(same, vec![keys[1].clone()]);
        assert!(loose_keys(&a("Morning briefing", None)).is_empty());
    }

    #[test]
    fn keys_prefer_unique_guid_then_unique_link_then_content() {
        let item = |guid, link, title| KeyInput {
            guid,
            link,
            title,
            summary: "s",
        };
        let items = [
            item(Some("g1"), Some("https://e.com/1"), "one"),
            item(Some("dup"), Some("https://e.com/2"), "two"),
            item(Some("dup"), Some("https://e.com/3"), "three"),
            item(None, Some("https://e.com/home"), "four"),
            item(None, Some("https://e.com/home"), "five"),
            item(Some("  "), None, "six"),
        ];
        let keys = stable_keys(&items);
        assert_eq!(keys[0], "id:g1");
        assert_eq!(keys[1], "link:https://e.com/2");
        assert_eq!(keys[2], "link:https://e.com/3");
        assert_eq!(keys[3], content_key("four", "s"));
        assert_eq!(keys[4], content_key("five", "s"));
        assert_eq!(keys[5], content_key("six", "s"));
        assert_ne!(keys[3], keys[4]);
    }

    #[test]
    fn content_key_ignores_case_width_and_spacing() {
        assert_eq!(
            content_key("Healey  meets\tHEGSETH", "ＰＡＲＩＳ talks"),
            content_key("healey meets hegseth", "paris talks")
        );
        assert_ne!(content_key("a", "bc"), content_key("ab", "c"));
    }

    #[test]
    fn alternate_key_is_the_link_unless_already_primary() {
        let mut a = Article {
            key: "id:g".into(),
            link: Some("https://e.com/1".into()),
            ..Article::default()
        };
        assert_eq!(alternate_keys(&a), vec!["link:https://e.com/1".to_string()]);
        a.key = "link:https://e.com/1".into();
        assert!(alternate_keys(&a).is_empty());
    }
}
