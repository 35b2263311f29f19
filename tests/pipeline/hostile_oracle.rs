//! The oracle for everything that reaches an email from hostile input: `check_email` scans the
//! headers, the text part and the HTML part, which may hold only the tags, attributes and URL
//! schemes of our email policy (`ALLOWED_*`). It judges; it never builds an email itself.

// ---- the email policy -------------------------------------------------------------------------

/// Every tag templates/digest.html may produce. Feed data never adds one: it is escaped.
/// Extend this list when the template grows; never with script, style, iframe, object, embed,
/// form, input, img (tracking pixels), link, base or svg.
const ALLOWED_TAGS: &[&str] = &[
    "html", "head", "meta", "title", "body", "table", "thead", "tbody", "tr", "th", "td", "span",
    "div", "p", "a", "br", "hr", "h1", "h2", "h3", "ul", "ol", "li", "b", "strong", "em", "i",
    "small", "mark", "style",
];
/// Attributes the template uses; no event handler (`on…`), no `src`, no `srcset`.
const ALLOWED_ATTRS: &[&str] = &[
    "lang",
    "charset",
    "name",
    "content",
    "style",
    "role",
    "width",
    "cellpadding",
    "cellspacing",
    "border",
    "align",
    "href",
    "class",
    "title",
    "id",
];

/// A section anchor of the template's table of contents (`g1`, `g2`, …): the only `id`, and the
/// only `href` that is not an absolute http(s) URL (`#g1`).
fn section_anchor(v: &str) -> bool {
    v.strip_prefix('g')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
/// `href` schemes a reader may meet.
pub const ALLOWED_SCHEMES: &[&str] = &["http", "https"];

/// What a local file read through an external entity would leak (`/etc/passwd`).
const PASSWD_MARKERS: &[&str] = &["root:x:0:0", "root:*:0:0", ":/bin/sh", "/usr/sbin/nologin"];

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Scans `html`: every `<` must open an allowed tag (or the doctype) whose attributes are all
/// allowed, whose `href` is an absolute http(s) URL without credentials and whose `style` holds
/// no URL or script. Text content therefore contains no markup at all.
pub fn check_html(html: &str) -> Result<(), String> {
    let at = |i: usize| -> String { html[i..].chars().take(60).collect() };
    // The template's one `<style>` (dark mode) is ours; a second one would be injected.
    if html.matches("<style").count() > 1 {
        return Err("more than one <style> element".into());
    }
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let start = i + off;
        let rest = &html[start + 1..];
        if rest.starts_with("!DOCTYPE html>") {
            i = start + "<!DOCTYPE html>".len();
            continue;
        }
        let name_start = start + 1 + usize::from(rest.starts_with('/'));
        let name_len = html[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(html.len() - name_start);
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        if !ALLOWED_TAGS.contains(&name.as_str()) {
            return Err(format!("disallowed markup {:?}", at(start)));
        }
        // Attributes, up to the closing `>`.
        let mut j = name_start + name_len;
        let bytes = html.as_bytes();
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            match bytes.get(j) {
                None => return Err(format!("unterminated tag {:?}", at(start))),
                Some(b'>') => {
                    j += 1;
                    break;
                }
                Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                    j += 2;
                    break;
                }
                Some(_) => {}
            }
            let an_start = j;
            while j < bytes.len() && !b" \t\r\n=>/".contains(&bytes[j]) {
                j += 1;
            }
            let attr = html[an_start..j].to_ascii_lowercase();
            if attr.is_empty() || !ALLOWED_ATTRS.contains(&attr.as_str()) {
                return Err(format!("disallowed attribute {attr:?} in {:?}", at(start)));
            }
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut value = String::new();
            if bytes.get(j) == Some(&b'=') {
                j += 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                let (vs, ve) = match bytes.get(j) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let end = html[j + 1..]
                            .find(q as char)
                            .map(|e| j + 1 + e)
                            .ok_or_else(|| format!("unterminated value in {:?}", at(start)))?;
                        (j + 1, end)
                    }
                    _ => {
                        let end = html[j..]
                            .find(|c: char| c.is_ascii_whitespace() || c == '>')
                            .map_or(html.len(), |e| j + e);
                        (j, end)
                    }
                };
                value = decode_entities(&html[vs..ve]);
                j = if bytes.get(ve).is_some_and(|b| *b == b'"' || *b == b'\'') {
                    ve + 1
                } else {
                    ve
                };
            }
            if attr == "id" && !section_anchor(&value) {
                return Err(format!("an id that is no section anchor: {value:?}"));
            }
            if attr == "href" && value.strip_prefix('#').is_some_and(section_anchor) {
                continue;
            }
            if attr == "href" {
                let url = url::Url::parse(&value)
                    .map_err(|e| format!("unparsable href {value:?}: {e}"))?;
                if !ALLOWED_SCHEMES.contains(&url.scheme()) || url.host_str().is_none() {
                    return Err(format!("href with a disallowed scheme: {value:?}"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(format!(
                        "href with credentials (look-alike bait): {value:?}"
                    ));
                }
            }
            if attr == "style" {
                let v = value.to_ascii_lowercase();
                if ["url(", "expression", "javascript", "@import", "behavior"]
                    .iter()
                    .any(|bad| v.contains(bad))
                {
                    return Err(format!("active style {value:?}"));
                }
            }
        }
        i = j;
    }
    Ok(())
}

/// Characters that must not survive into a subject or a plain-text line: C0/C1 controls other
/// than newline, bidi controls, zero-width and other invisible format characters.
fn invisible_or_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\r' && c != '\t')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2060}' | '\u{feff}' | '\u{061c}')
}

/// The oracle for one composed email: headers not injectable, subject and text clean, HTML
/// inside the policy, no local file content.
pub fn check_email(raw: &[u8], recipients: &[&str]) -> Result<(), String> {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or("the message does not parse")?;
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header/body separator")?;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    for injected in ["\r\nbcc:", "\r\ncc:", "\r\nx-injected:", "\r\nreply-to:"] {
        if head.contains(injected) {
            return Err(format!("header injected: {injected:?}"));
        }
    }
    let to: Vec<String> = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if to != recipients {
        return Err(format!("recipients changed: {to:?}"));
    }
    let subject = msg.subject().unwrap_or_default();
    if let Some(c) = subject.chars().find(|&c| invisible_or_control(c)) {
        return Err(format!("subject carries {c:?}: {subject:?}"));
    }
    let text = msg.body_text(0).ok_or("no text part")?;
    if let Some(c) = text.chars().find(|&c| invisible_or_control(c)) {
        return Err(format!("text part carries {c:?}"));
    }
    let html = msg.body_html(0).ok_or("no html part")?;
    check_html(&html)?;
    for m in PASSWD_MARKERS {
        if html.contains(m) || text.contains(m) || subject.contains(m) {
            return Err(format!("local file content in the email: {m:?}"));
        }
    }
    Ok(())
}

#[test]
fn the_oracle_rejects_what_it_must() {
    // (html, accepted?)
    let cases: &[(&str, bool)] = &[
        (
            "<!DOCTYPE html><html><body><a href=\"https://example.org/\" style=\"color:#fff\">x</a></body></html>",
            true,
        ),
        ("<td>a &lt;script&gt; b</td>", true),
        ("<script>alert(1)</script>", false),
        ("<img src=\"http://tracker.example/p.gif\">", false),
        ("<a href=\"javascript:alert(1)\">x</a>", false),
        ("<a href=\"data:text/html,x\">x</a>", false),
        ("<a href=\"https://paypal.com@evil.example/\">x</a>", false),
        ("<div onclick=\"x()\">x</div>", false),
        (
            "<div style=\"background:url(http://t.example/)\">x</div>",
            false,
        ),
        ("<td>1 < 2</td>", false),
        ("<a href='https://example.org/' onmouseover=x>x</a>", false),
    ];
    for &(html, ok) in cases {
        assert_eq!(
            check_html(html).is_ok(),
            ok,
            "{html}: {:?}",
            check_html(html)
        );
    }
}
