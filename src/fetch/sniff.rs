//! Is this body a feed at all? Empty bodies and HTML pages (an error page, a captive portal, a
//! site's home page) would otherwise parse as "a feed with no items" and hide a broken source.
//! Pure: looks at the first kilobyte only.

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// XML or JSON; the parser decides the rest.
    Feed,
    /// Nothing but whitespace.
    Empty,
    NotAFeed(&'static str),
}

/// Judges the first bytes rather than `Content-Type`, which servers get wrong both ways (feeds
/// served as `text/html`, login pages served as `application/rss+xml`).
pub fn sniff(body: &[u8]) -> Verdict {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Empty;
    }
    let head = sniff_prefix(body);
    let mut rest = head.trim_start();
    // Skip the XML declaration, processing instructions, comments and a doctype before the root:
    // the root element decides (an RSS feed after an XHTML doctype is still a feed).
    let mut html_doctype = false;
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = after.split_once("?>").map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r).trim_start();
        } else if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case("<!doctype") {
            html_doctype |= rest[9..]
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("html");
            rest = skip_doctype(rest).trim_start();
        } else {
            break;
        }
    }
    let lower = rest
        .get(..rest.len().min(64))
        .unwrap_or(rest)
        .to_ascii_lowercase();
    let what = if ["<html", "<head", "<body"]
        .iter()
        .any(|p| lower.starts_with(p))
        || (rest.is_empty() && html_doctype)
    {
        "an HTML page"
    } else if rest.is_empty() || lower.starts_with('<') || lower.starts_with('{') {
        // A feed, or only a prolog within the sniffed prefix: the parser judges.
        return Verdict::Feed;
    } else {
        "neither XML nor JSON"
    };
    Verdict::NotAFeed(what)
}

/// `text` after the `<!DOCTYPE …>` it starts with, an internal subset (`[ … ]`) included; empty
/// when the doctype does not end within it.
fn skip_doctype(text: &str) -> &str {
    let mut in_subset = false;
    for (i, c) in text.char_indices() {
        match c {
            '[' => in_subset = true,
            ']' => in_subset = false,
            '>' if !in_subset => return &text[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The first kilobyte as text: BOMs stripped, UTF-16 decoded, other bytes taken as Latin-1 (only
/// ASCII markup matters here).
fn sniff_prefix(body: &[u8]) -> String {
    let prefix = &body[..body.len().min(1024)];
    let utf16 = |bytes: &[u8], le: bool| {
        let units = bytes.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    match prefix {
        [0xEF, 0xBB, 0xBF, rest @ ..] => rest.iter().map(|&b| char::from(b)).collect(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [b'<', 0, ..] => utf16(prefix, true),
        [0, b'<', ..] => utf16(prefix, false),
        _ => prefix.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_sniffing() {
        let ok = Verdict::Feed;
        let html = Verdict::NotAFeed("an HTML page");
        #[rustfmt::skip]
        let cases: &[(&[u8], Verdict)] = &[
            (b"<?xml version=\"1.0\"?><rss version=\"2.0\"></rss>", ok),
            (b"\xEF\xBB\xBF<feed xmlns=\"http://www.w3.org/2005/Atom\"/>", ok),
            (b"  {\"version\": \"https://jsonfeed.org/version/1.1\"}", ok),
            (b"<!-- generator --><?xml-stylesheet href=\"x\"?><rss/>", ok),
            (b"\xFF\xFE<\0r\0s\0s\0>\0", ok),
            (b"<!DOCTYPE html><html><body>Log in to Wi-Fi</body></html>", html),
            (b"<!DOCTYPE html>\n", html),
            (b"<?xml version=\"1.0\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n<rss version=\"2.0\"><channel/></rss>", ok),
            (b"<!DOCTYPE rss [<!ENTITY nbsp \"&#160;\">]><rss version=\"2.0\"/>", ok),
            (b"<?xml version=\"1.0\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">", html),
            (b"\n\n<HTML><HEAD><TITLE>503</TITLE></HEAD></HTML>", html),
            (b"\x89PNG\r\n\x1a\n", Verdict::NotAFeed("neither XML nor JSON")),
            (b"", Verdict::Empty),
            (b" \r\n\t ", Verdict::Empty),
        ];
        for &(body, want) in cases {
            let got = sniff(body);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
