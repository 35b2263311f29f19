//! HTML to plain text for matching and display: tags dropped, entities decoded, the contents of
//! `script`, `style`, `head`, `template` and comments removed, block elements separating words.
//! Pure; never produces markup.

/// Elements whose contents are not text.
const HIDDEN: &[&str] = &[
    "script", "style", "head", "template", "noscript", "iframe", "object", "svg",
];

/// Elements that separate words (block-level and line breaks).
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "td",
    "th",
    "tr",
    "table",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "hr",
    "dd",
    "dt",
    "dl",
    "figure",
    "figcaption",
    "nav",
    "aside",
    "main",
    "address",
    "caption",
    "tbody",
    "thead",
];

/// Plain text of an HTML fragment, whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut hidden: Option<String> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if hidden.is_none() {
                out.push_str(rest);
            }
            break;
        };
        if hidden.is_none() {
            out.push_str(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = tag_end(rest) else {
            // A lone `<` is text.
            if hidden.is_none() {
                out.push('<');
            }
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() && !tag.starts_with('!') && !tag.starts_with('?') {
            if hidden.is_none() {
                out.push('<');
                out.push_str(tag);
                out.push('>');
            }
            continue;
        }
        match &hidden {
            Some(h) if closing && *h == name => hidden = None,
            Some(_) => {}
            None if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') => {
                hidden = Some(name);
            }
            None if BLOCK.contains(&name.as_str()) => out.push(' '),
            None => {}
        }
    }
    let decoded = htmlize::unescape(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Index of the `>` closing the tag that starts at `s[0] == '<'`, skipping quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.len() < 2
        || !(bytes[1].is_ascii_alphabetic() || matches!(bytes[1], b'/' | b'!' | b'?'))
    {
        return None;
    }
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn strips_markup_and_hidden_elements() {
        let cases = [
            ("<p>Healey met <b>Heg</b>seth</p>", "Healey met Hegseth"),
            ("<div class=\"center-wrap\">x</div>", "x"),
            ("a<script>var Healey=1;</script>b", "ab"),
            ("<style>.x{}</style><p>one</p><p>two</p>", "one two"),
            ("Tom &amp; Jerry &#8217;s &eacute;", "Tom & Jerry ’s é"),
            ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
            ("x<!-- Healey -->y", "xy"),
            ("line<br/>break", "line break"),
            ("<a href=\"x\" title='a>b'>link</a>", "link"),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "{html}");
        }
    }
}
