//! What makes feed content safe to put in an email: http(s)-only links without credentials, the
//! real host to show beside a link, and one-line text with no CR/LF, control, bidi or invisible
//! characters (subjects, headers, plain-text lines). Pure functions; HTML escaping is the
//! template engine's job, and feed data must never reach an address header at all.

use unicode_segmentation::UnicodeSegmentation;
use url::Url;

/// Longest subject we build, in grapheme clusters: long enough for a headline, short enough that
/// mail clients show the end of it.
pub const SUBJECT_MAX: usize = 180;

/// Links longer than this are refused rather than put in a digest: nobody reads them and they
/// are a favourite way to hide a look-alike host.
const LINK_MAX_BYTES: usize = 4096;

/// A link a reader may safely click: absolute http or https with a host, with any `user:pass@`
/// removed (it only serves to make `https://paypal.com@evil.example/` look like PayPal).
/// `javascript:`, `data:`, `vbscript:`, `file:`, relative and unparsable links give `None`.
pub fn safe_link(raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > LINK_MAX_BYTES {
        return None;
    }
    // The WHATWG parser drops tabs and newlines inside a URL (so `java\nscript:` is
    // `javascript:`) and lowercases the scheme; checking after parsing sees what a browser sees.
    let mut url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    // Both setters fail only for URLs that cannot have credentials; http(s) with a host can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(url)
}

/// The host to show next to a link: the real one, in its ASCII (punycode) form so a look-alike
/// such as `xn--pypal-4ve.com` stays visibly different from `paypal.com`. Never the userinfo.
/// A non-default port is shown, since `example.com:8443` is not `example.com`.
pub fn display_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// A subject line from feed text: one line, no control or bidi characters, capped.
pub fn clean_subject(s: &str) -> String {
    clean_line(s, SUBJECT_MAX)
}

/// One line of plain text from feed text: CR, LF and other line breaks become spaces; C0/C1
/// controls, ANSI escape sequences, bidi controls, zero-width and other invisible characters are
/// removed; runs of whitespace collapse to one space; the result is trimmed and capped at
/// `max_graphemes` (with `…` when cut).
pub fn clean_line(s: &str, max_graphemes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_graphemes * 4));
    let mut chars = s.chars().peekable();
    let mut pending_space = false;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' || c == '\u{9b}' {
            skip_escape(c, &mut chars);
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            // Controls are dropped, but a line break or tab still separates words.
            pending_space |= c.is_whitespace();
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    cap_graphemes(out, max_graphemes)
}

/// Skips the rest of an ANSI escape: CSI (`ESC [` or U+009B) up to its final byte, OSC
/// (`ESC ]`) up to BEL or `ESC \`, or the single character after a bare ESC.
fn skip_escape(first: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let csi = first == '\u{9b}' || chars.next_if_eq(&'[').is_some();
    if csi {
        for c in chars.by_ref() {
            if ('\u{40}'..='\u{7e}').contains(&c) {
                return;
            }
        }
    } else if chars.next_if_eq(&']').is_some() {
        while let Some(c) = chars.next() {
            if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                return;
            }
        }
    } else {
        chars.next();
    }
}

/// Characters that change how text displays without being visible: bidi embeddings, overrides
/// and isolates, marks, zero-width spaces and joiners, the BOM, soft hyphens and Unicode tag
/// characters (used to smuggle hidden ASCII).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{feff}' | '\u{ffa0}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}')
}

fn cap_graphemes(s: String, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    // No more graphemes than bytes: a line this short needs no count (issue 22: counting
    // graphemes was 2.8 % of a cold cycle, almost all of it on lines far below their cap).
    if s.len() <= max {
        return s;
    }
    // In ASCII every character is a grapheme of its own but for CR LF.
    if s.is_ascii() && !s.contains('\r') {
        return format!("{}…", s[..max - 1].trim_end());
    }
    cap_counted(s, max)
}

/// `cap_graphemes` by counting every grapheme (`max` > 0).
fn cap_counted(s: String, max: usize) -> String {
    let mut g = s.grapheme_indices(true);
    match g.nth(max) {
        None => s,
        Some(_) => {
            // Cut one grapheme earlier to make room for the ellipsis.
            let end = s
                .grapheme_indices(true)
                .nth(max - 1)
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", s[..end].trim_end())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_link_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("https://example.com/a?b=1#c", Some("https://example.com/a?b=1#c")),
            ("  http://example.com  ", Some("http://example.com/")),
            ("HTTPS://EXAMPLE.com/Path", Some("https://example.com/Path")),
            ("https://paypal.com@evil.example/login", Some("https://evil.example/login")),
            ("https://user:secret@evil.example/", Some("https://evil.example/")),
            ("javascript:alert(1)", None),
            ("JaVaScRiPt:alert(document.cookie)", None),
            ("  javascript:alert(1)", None),
            ("java\nscript:alert(1)", None),
            ("java\tscript:alert(1)", None),
            ("\u{0}javascript:alert(1)", None),
            ("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", None),
            ("DATA:text/html,<script>alert(1)</script>", None),
            ("vbscript:msgbox(1)", None),
            ("file:///etc/passwd", None),
            ("ftp://example.com/x", None),
            ("mailto:someone@example.com", None),
            ("/relative/path", None),
            ("//evil.example/protocol-relative", None),
            ("example.com/no-scheme", None),
            ("https://", None),
            ("http://[::1]:8080/x", Some("http://[::1]:8080/x")),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = safe_link(raw).map(String::from);
            assert_eq!(got.as_deref(), *want, "safe_link({raw:?})");
        }
        assert!(safe_link(&format!("https://e.com/{}", "a".repeat(5000))).is_none());
    }

    #[test]
    fn display_host_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("https://paypal.com@evil.example/", "evil.example"),
            ("https://user:pw@Example.COM/x", "example.com"),
            ("https://www.example.com/", "www.example.com"),
            // Cyrillic 'а' in "pаypal": shown as punycode, visibly not paypal.com.
            ("https://p\u{430}ypal.com/", "xn--pypal-4ve.com"),
            ("https://bücher.example/", "xn--bcher-kva.example"),
            ("https://example.com:8443/", "example.com:8443"),
            ("https://example.com:443/", "example.com"),
            ("http://[::1]:8080/", "[::1]:8080"),
            ("http://127.0.0.1/", "127.0.0.1"),
        ];
        for (raw, want) in cases {
            let url = Url::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(display_host(&url), *want, "display_host({raw:?})");
            if let Some(safe) = safe_link(raw) {
                assert_eq!(
                    display_host(&safe),
                    *want,
                    "display_host(safe_link({raw:?}))"
                );
            }
        }
    }

    #[test]
    fn clean_line_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("Plain headline", "Plain headline"),
            ("  padded   and\tspaced  ", "padded and spaced"),
            ("Injected\r\nBcc: victim@example.com", "Injected Bcc: victim@example.com"),
            ("Bare\rCR and bare\nLF", "Bare CR and bare LF"),
            ("Line\u{2028}separator\u{2029}para\u{85}nel", "Line separator para nel"),
            ("NUL\u{0}byte", "NULbyte"),
            ("bell\u{7}and\u{8}backspace\u{7f}del", "bellandbackspacedel"),
            ("C1\u{80}\u{9f}controls", "C1controls"),
            ("\u{1b}[31mred\u{1b}[0m text", "red text"),
            ("\u{1b}[2J\u{1b}[1;1Hcleared", "cleared"),
            ("title\u{1b}]0;pwned\u{7} after", "title after"),
            ("osc\u{1b}]8;;http://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\ end", "osclink end"),
            ("\u{9b}1mcsi8bit", "csi8bit"),
            ("lone escape\u{1b}", "lone escape"),
            ("invoice\u{202e}fdp.exe", "invoicefdp.exe"),
            ("\u{202a}\u{202b}\u{202c}\u{202d}bidi", "bidi"),
            ("\u{2066}iso\u{2067}late\u{2068}s\u{2069}", "isolates"),
            ("marks\u{200e}\u{200f}\u{61c}", "marks"),
            ("zero\u{200b}width\u{200c}non\u{200d}joiner\u{2060}word\u{feff}", "zerowidthnonjoinerword"),
            ("soft\u{ad}hyphen", "softhyphen"),
            ("tag\u{e0041}\u{e0042}smuggle", "tagsmuggle"),
            ("Zelenskyy & Healey — “talks” ✓", "Zelenskyy & Healey — “talks” ✓"),
            ("Київ і Вашингтон", "Київ і Вашингтон"),
            ("\u{202e}\r\n", ""),
        ];
        for (input, want) in cases {
            assert_eq!(clean_line(input, 500), *want, "clean_line({input:?})");
        }
    }

    /// The shortcuts (a line no longer than its cap, ASCII) cut where counting graphemes does.
    #[test]
    fn capping_without_counting_cuts_where_counting_does() {
        let lines = [
            "",
            "a",
            "one two three four",
            "ends in spaces    x",
            "tab\tand\r\nCRLF pairs\r\n",
            "e\u{301}e\u{301}e\u{301}e\u{301}",
            "Київ і Вашингтон",
            "🇺🇦🇬🇧🇺🇸 flags",
        ];
        for line in lines {
            for max in 1..=line.len() + 2 {
                assert_eq!(
                    cap_graphemes(line.to_string(), max),
                    cap_counted(line.to_string(), max),
                    "{line:?}, {max}"
                );
            }
        }
    }

    #[test]
    fn clean_line_caps_by_grapheme() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, &str)] = &[
            ("short", 10, "short"),
            ("exactly ten", 11, "exactly ten"),
            ("one two three four", 9, "one two…"),
            ("e\u{301}e\u{301}e\u{301}e\u{301}", 3, "e\u{301}e\u{301}…"),
            ("🇺🇦🇬🇧🇺🇸", 2, "🇺🇦…"),
            ("anything", 0, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(
                clean_line(input, *max),
                *want,
                "clean_line({input:?}, {max})"
            );
        }
        let long = "word ".repeat(100);
        let s = clean_subject(&long);
        assert_eq!(s.graphemes(true).count(), SUBJECT_MAX);
        assert!(s.ends_with('…'));
    }

    /// Whatever comes in, a cleaned subject is one header-safe line.
    #[test]
    fn clean_subject_output_never_contains_hostile_characters() {
        let hostile =
            "a\r\nb\u{0}c\u{1b}[1md\u{202e}e\u{2066}f\u{200b}g\u{85}h\u{2028}i\u{9b}j\tk\u{feff}";
        let s = clean_subject(&hostile.repeat(30));
        assert!(!s.is_empty());
        for c in s.chars() {
            assert!(
                !c.is_control() && !is_invisible(c) && (c == ' ' || !c.is_whitespace()),
                "{c:?} survived in {s:?}"
            );
        }
        assert!(!s.contains("  "), "{s:?}");
    }
}
