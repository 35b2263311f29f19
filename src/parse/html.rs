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
    // Most titles, names and categories are plain text already: no tag, no entity, nothing to
    // copy twice.
    if !html.bytes().any(|b| b == b'<' || b == b'&') {
        return collapse_whitespace(html);
    }
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
        let bare = tag.trim_start_matches('/');
        let name = &bare[..bare.bytes().take_while(u8::is_ascii_alphanumeric).count()];
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if name.is_empty() && !tag.starts_with('!') && !tag.starts_with('?') {
            if hidden.is_none() {
                out.push('<');
                out.push_str(tag);
                out.push('>');
            }
            continue;
        }
        match &hidden {
            Some(h) if closing && h.eq_ignore_ascii_case(name) => hidden = None,
            Some(_) => {}
            None if !closing && is(HIDDEN) && !tag.ends_with('/') => {
                hidden = Some(name.to_string());
            }
            None if is(BLOCK) => out.push(' '),
            None => {}
        }
    }
    collapse_whitespace(&htmlize::unescape(&out))
}

/// What a byte is to [`collapse_whitespace`]: inside a word, ASCII whitespace, or the first byte
/// of a character that may be Unicode whitespace (U+0085 and U+00A0 start with 0xC2, U+1680
/// with 0xE1, U+2000–U+205F with 0xE2, U+3000 with 0xE3; every other byte of a character that
/// is not ASCII is inside a word).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Space,
    MaybeSpace,
}

static CLASS: [Class; 256] = {
    let mut t = [Class::Word; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => Class::Space,
            0xc2 | 0xe1 | 0xe2 | 0xe3 => Class::MaybeSpace,
            _ => Class::Word,
        };
        i += 1;
    }
    t
};

/// `s` with each run of whitespace (`char::is_whitespace`) made one space and the ends trimmed:
/// `s.split_whitespace().collect::<Vec<_>>().join(" ")` in one pass, without the vector (this
/// runs on every title, summary and body of every item: issue 22). Text between the runs that
/// need rewriting (more than one space, a tab or newline, Unicode whitespace) is copied whole;
/// a byte is stepped over by one table lookup, and only one that may start Unicode whitespace
/// is decoded.
fn collapse_whitespace(s: &str) -> String {
    let bytes = s.as_bytes();
    // Whether the character at `i` (always a character boundary) is whitespace, and its width.
    let space_at = |i: usize| match CLASS[usize::from(bytes[i])] {
        Class::Word => (false, 1),
        Class::Space => (true, 1),
        Class::MaybeSpace => s[i..]
            .chars()
            .next()
            .map_or((false, 1), |c| (c.is_whitespace(), c.len_utf8())),
    };
    // The end of the whitespace run starting at `i`.
    let run_end = |mut i: usize| {
        while i < bytes.len() {
            let (space, width) = space_at(i);
            if !space {
                break;
            }
            i += width;
        }
        i
    };
    let mut out = String::with_capacity(s.len());
    let mut i = run_end(0);
    // `s[kept..i]` is text to copy as it is.
    let mut kept = i;
    while i < bytes.len() {
        match CLASS[usize::from(bytes[i])] {
            Class::Word => i += 1,
            // One space between two words stays.
            Class::Space
                if bytes[i] == b' '
                    && bytes
                        .get(i + 1)
                        .is_some_and(|&b| CLASS[usize::from(b)] == Class::Word) =>
            {
                i += 2;
            }
            _ => {
                let (space, width) = space_at(i);
                if !space {
                    i += width;
                    continue;
                }
                out.push_str(&s[kept..i]);
                i = run_end(i);
                if i < bytes.len() {
                    out.push(' ');
                }
                kept = i;
            }
        }
    }
    out.push_str(&s[kept..]);
    out
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
    use super::{collapse_whitespace, html_to_text};

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
            (" Healey\n meets\u{a0} Hegseth\t", "Healey meets Hegseth"),
            ("Zelenskyy\u{2003}in Kyiv\u{3000}", "Zelenskyy in Kyiv"),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "{html}");
        }
    }

    proptest::proptest! {
        #[test]
        fn whitespace_collapses_as_split_and_join(s in "[ \t\n\r\u{b}\u{c}\u{85}\u{a0}\u{2003}\u{3000}a-zé€😀<>&;]{0,64}") {
            let want = s.split_whitespace().collect::<Vec<_>>().join(" ");
            proptest::prop_assert_eq!(collapse_whitespace(&s), want);
        }
    }

    #[test]
    fn tag_names_match_in_any_case() {
        let cases = [
            ("a<SCRIPT>x</Script>b", "ab"),
            ("one<P>two</p>three", "one two three"),
            ("x<sTyLe>.y{}</STYLE >z", "xz"),
        ];
        for (html, want) in cases {
            assert_eq!(html_to_text(html), want, "{html}");
        }
    }
}
