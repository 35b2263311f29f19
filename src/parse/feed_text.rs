//! Feed bytes to UTF-8 text that feed-rs can read: BOMs and UTF-16 handled, legacy encodings
//! transcoded (declared or guessed), the XML declaration rewritten to match, and the repairs for
//! the XML mistakes real feeds make (bare `&`, invalid character references, control characters,
//! `<rss>` without a version). Pure: no IO.

use std::borrow::Cow;
use std::sync::LazyLock;

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use regex::Regex;

/// Decoded feed text and the encoding it was read as.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: String,
    pub encoding: &'static str,
}

/// The `charset` parameter of a `Content-Type` value.
pub fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Decodes feed bytes. Order: a BOM wins; then bytes that are valid UTF-8 are UTF-8 whatever is
/// declared (legacy text is almost never valid UTF-8 by accident, while "ISO-8859-1" labels on
/// UTF-8 feeds are common); then the declared charset (HTTP header, else XML declaration) unless
/// it claims a Unicode encoding the bytes contradict; else chardetng's guess.
pub fn decode(bytes: &[u8], http_charset: Option<&str>) -> Decoded {
    let (encoding, body) = if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        (enc, &bytes[bom_len..])
    } else if bytes.starts_with(b"<\0?\0") || bytes.starts_with(b"<\0") {
        (UTF_16LE, bytes)
    } else if bytes.starts_with(b"\0<\0?") || bytes.starts_with(b"\0<") {
        (UTF_16BE, bytes)
    } else if std::str::from_utf8(bytes).is_ok() {
        (UTF_8, bytes)
    } else {
        let declared = http_charset
            .or_else(|| xml_declared_encoding(bytes))
            .and_then(|label| Encoding::for_label(label.trim().as_bytes()))
            .filter(|e| !matches!(e.name(), "UTF-8" | "UTF-16LE" | "UTF-16BE" | "replacement"));
        let enc = declared.unwrap_or_else(|| {
            let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
            detector.feed(bytes, true);
            detector.guess(None, Utf8Detection::Allow)
        });
        (enc, bytes)
    };
    let (text, _had_errors) = encoding.decode_without_bom_handling(body);
    Decoded {
        text: declare_utf8(&text).into_owned(),
        encoding: encoding.name(),
    }
}

/// The `encoding` pseudo-attribute of an ASCII-compatible XML declaration.
fn xml_declared_encoding(bytes: &[u8]) -> Option<&str> {
    static ENC: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']"#)
            .expect("a constant regex compiles")
    });
    let head = &bytes[..bytes.len().min(256)];
    let head = std::str::from_utf8(head)
        .ok()
        .or_else(|| std::str::from_utf8(&head[..head.iter().position(|b| !b.is_ascii())?]).ok())?;
    ENC.captures(head)?.get(1).map(|m| m.as_str())
}

/// The text is UTF-8 now, so its declaration must say so, or the XML reader would transcode it
/// a second time. Leading whitespace before the declaration (a fatal error in XML) is dropped.
fn declare_utf8(text: &str) -> Cow<'_, str> {
    static DECL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^\s*<\?xml\b[^>]*?\?>"#).expect("a constant regex compiles")
    });
    match DECL.find(text) {
        Some(m) => Cow::Owned(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
            &text[m.end()..]
        )),
        None => Cow::Borrowed(text),
    }
}

/// feed-rs only accepts `<rss version="2.0">` (and 0.91/0.92); `<rss>` without a version, or with
/// an odd one, is read as RSS 2.0, which every RSS dialect in the wild is close enough to.
/// Only the root element is touched, never an `<rss>` quoted in CDATA further down.
pub fn fix_rss_version(text: &str) -> Cow<'_, str> {
    static RSS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^<rss\b([^>]*)>").expect("a constant regex compiles"));
    let root_at = text.len() - skip_prolog(text).len();
    static VERSION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\bversion\s*=\s*["']([^"']*)["']"#).expect("a constant regex compiles")
    });
    let Some(root) = RSS.captures(&text[root_at..]) else {
        return Cow::Borrowed(text);
    };
    let (Some(whole), Some(attrs)) = (root.get(0), root.get(1)) else {
        return Cow::Borrowed(text);
    };
    let new_attrs = match VERSION.captures(attrs.as_str()) {
        Some(v) if matches!(v.get(1).map(|m| m.as_str()), Some("2.0" | "0.91" | "0.92")) => {
            return Cow::Borrowed(text);
        }
        Some(_) => VERSION
            .replace(attrs.as_str(), "version=\"2.0\"")
            .into_owned(),
        None => format!(" version=\"2.0\"{}", attrs.as_str()),
    };
    Cow::Owned(format!(
        "{}<rss{new_attrs}>{}",
        &text[..root_at + whole.start()],
        &text[root_at + whole.end()..]
    ))
}

/// Atom 0.3 (`xmlns="http://purl.org/atom/ns#"`, still served by old blog engines) read as Atom
/// 1.0, which feed-rs knows: the namespace swapped and the renamed elements given their 1.0 names
/// (`modified` → `updated`, `issued` → `published`, `tagline` → `subtitle`, `copyright` →
/// `rights`). Without this feed-rs finds no entries, and the feed would look healthy and empty.
pub fn fix_atom_03(text: &str) -> Cow<'_, str> {
    const ATOM_03: &str = "http://purl.org/atom/ns#";
    static RENAMED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"<(/?)(modified|issued|tagline|copyright)\b")
            .expect("a constant regex compiles")
    });
    let root = skip_prolog(text);
    let root_tag = root.split_once('>').map_or(root, |(tag, _)| tag);
    if !root_tag.starts_with("<feed") || !root_tag.contains(ATOM_03) {
        return Cow::Borrowed(text);
    }
    let swapped = text.replacen(ATOM_03, "http://www.w3.org/2005/Atom", 1);
    let renamed = RENAMED.replace_all(&swapped, |c: &regex::Captures<'_>| {
        let new = match &c[2] {
            "modified" => "updated",
            "issued" => "published",
            "tagline" => "subtitle",
            _ => "rights",
        };
        format!("<{}{new}", &c[1])
    });
    Cow::Owned(renamed.into_owned())
}

/// `text` after the XML declaration, processing instructions, comments and doctype.
pub fn skip_prolog(text: &str) -> &str {
    let mut rest = text.trim_start();
    loop {
        let (open, close) = if rest.starts_with("<?") {
            ("<?", "?>")
        } else if rest.starts_with("<!--") {
            ("<!--", "-->")
        } else if rest.starts_with("<!") {
            ("<!", ">")
        } else {
            return rest;
        };
        rest = rest[open.len()..]
            .split_once(close)
            .map_or("", |(_, r)| r)
            .trim_start();
    }
}

/// JSON Feed rather than XML: the XML repairs must not touch it.
pub fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Repairs what makes strict XML readers give up: bare `&` becomes `&amp;`, HTML named entities
/// become their characters, character references to non-characters are dropped, and control
/// characters XML forbids are removed. CDATA sections and comments are left alone.
pub fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<']) {
        push_clean(&mut out, &rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            let verbatim = [("<![CDATA[", "]]>"), ("<!--", "-->")]
                .iter()
                .find(|(open, _)| rest.starts_with(open))
                .map(|(_, close)| rest.find(close).map_or(rest.len(), |j| j + close.len()));
            let n = verbatim.unwrap_or(1);
            push_clean(&mut out, &rest[..n]);
            rest = &rest[n..];
            continue;
        }
        let (replacement, consumed) = reference(rest);
        out.push_str(&replacement);
        rest = &rest[consumed..];
    }
    push_clean(&mut out, rest);
    out
}

/// What to write for the `&…` at the start of `s`, and how many bytes it consumed.
fn reference(s: &str) -> (Cow<'static, str>, usize) {
    let body_len = s[1..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
        .unwrap_or(s.len() - 1);
    let body = &s[1..=body_len];
    if s[1 + body_len..].starts_with(';') && !body.is_empty() {
        let consumed = body_len + 2;
        if let Some(num) = body.strip_prefix('#') {
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse::<u32>().ok(),
            };
            return match code.and_then(char::from_u32).filter(|&c| is_xml_char(c)) {
                Some(_) => (Cow::Owned(s[..consumed].to_string()), consumed),
                None => (Cow::Borrowed(""), consumed),
            };
        }
        if matches!(body, "amp" | "lt" | "gt" | "quot" | "apos") {
            return (Cow::Owned(s[..consumed].to_string()), consumed);
        }
        let named = &s[..consumed];
        let decoded = htmlize::unescape(named);
        if decoded != named {
            // Re-escape so a decoded `<` cannot become markup.
            let escaped = decoded.replace('&', "&amp;").replace('<', "&lt;");
            return (Cow::Owned(escaped), consumed);
        }
    }
    (Cow::Borrowed("&amp;"), 1)
}

fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().filter(|&c| is_xml_char(c)));
}

/// XML 1.0 `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("Q&A", "Q&amp;A"),
            ("AT&T &amp; co", "AT&amp;T &amp; co"),
            ("a & b", "a &amp; b"),
            ("trailing &", "trailing &amp;"),
            ("&nbsp;&eacute;&mdash;", "\u{a0}é—"),
            ("&bogus; &lt;", "&amp;bogus; &lt;"),
            ("&#233;&#xE9;", "&#233;&#xE9;"),
            ("x&#0;y&#xD800;z&#99999999999;", "xyz"),
            ("<![CDATA[a & b]]> & c", "<![CDATA[a & b]]> &amp; c"),
            ("<!-- a & b --> &", "<!-- a & b --> &amp;"),
            ("bell\u{7}tab\tesc\u{1b}", "belltab\tesc"),
            ("&amp", "&amp;amp"),
        ];
        for &(input, want) in cases {
            assert_eq!(repair(input), want, "{input:?}");
        }
    }

    #[test]
    fn rss_version() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("<rss><channel/></rss>", "<rss version=\"2.0\"><channel/></rss>"),
            ("<rss xmlns:dc=\"d\">", "<rss version=\"2.0\" xmlns:dc=\"d\">"),
            ("<rss version=\"2.01\">", "<rss version=\"2.0\">"),
            ("<rss version='0.91'>", "<rss version='0.91'>"),
            ("<rss version=\"2.0\">", "<rss version=\"2.0\">"),
            ("<feed><rssfoo/></feed>", "<feed><rssfoo/></feed>"),
            ("<?xml version=\"1.0\"?>\n<!-- c --><!DOCTYPE rss><rss>", "<?xml version=\"1.0\"?>\n<!-- c --><!DOCTYPE rss><rss version=\"2.0\">"),
            ("<feed><content><![CDATA[<rss>]]></content></feed>", "<feed><content><![CDATA[<rss>]]></content></feed>"),
            ("{\"content_html\": \"<rss>\"}", "{\"content_html\": \"<rss>\"}"),
        ];
        for &(input, want) in cases {
            assert_eq!(fix_rss_version(input), want, "{input:?}");
        }
    }

    #[test]
    fn decoding() {
        let latin1_decl = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>Caf\xe9</a>";
        let utf8_mislabelled = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>Café</a>";
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("<a>Café</a>".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let utf16be_no_bom: Vec<u8> = "<a>Café</a>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let cp1251 = b"<a>\xcf\xf0\xe8\xe2\xe5\xf2 \xec\xe8\xf0, \xfd\xf2\xee \xed\xee\xe2\xee\xf1\xf2\xe8 \xee \xef\xe5\xf0\xe5\xec\xe8\xf0\xe8\xe8</a>";
        #[rustfmt::skip]
        let cases: &[(&[u8], Option<&str>, &str, &str)] = &[
            (latin1_decl, None, "windows-1252", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>Café</a>"),
            (utf8_mislabelled.as_bytes(), Some("iso-8859-1"), "UTF-8", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>Café</a>"),
            (b"<a>Caf\xe9 cr\xe8me br\xfbl\xe9e</a>", None, "windows-1252", "<a>Café crème brûlée</a>"),
            (b"<a>Caf\xe9</a>", Some("utf-8"), "windows-1252", "<a>Café</a>"),
            (&utf16le, None, "UTF-16LE", "<a>Café</a>"),
            (&utf16be_no_bom, None, "UTF-16BE", "<a>Café</a>"),
            (b"\xEF\xBB\xBF<a>x</a>", None, "UTF-8", "<a>x</a>"),
            (cp1251, Some("windows-1251"), "windows-1251", "<a>Привет мир, это новости о перемирии</a>"),
            (cp1251, None, "windows-1251", "<a>Привет мир, это новости о перемирии</a>"),
        ];
        for &(bytes, charset, enc, text) in cases {
            let d = decode(bytes, charset);
            assert_eq!(
                (d.encoding, d.text.as_str()),
                (enc, text),
                "{charset:?} {bytes:?}"
            );
        }
    }

    #[test]
    fn content_type_charset() {
        assert_eq!(
            charset_of("text/xml; charset=\"ISO-8859-1\""),
            Some("ISO-8859-1")
        );
        assert_eq!(charset_of("application/rss+xml"), None);
    }
}
