//! The text part's line length: every line wrapped at word boundaries to at most `WIDTH`
//! columns, continuation lines indented like their first line (past a `* ` or `- ` bullet), and
//! a URL never broken: it goes on a line of its own when it does not fit. Pure.

/// Columns of the text part (RFC 5322 asks for lines of at most 78 characters).
pub(super) const WIDTH: usize = 78;

/// `text` with every line longer than `WIDTH` wrapped (see the module header).
pub(super) fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        wrap_line(line, &mut out);
        if lines.peek().is_some() {
            out.push('\n');
        }
    }
    out
}

/// Columns as characters: the text part is mostly Latin and Cyrillic, one column a character.
fn cols(s: &str) -> usize {
    s.chars().count()
}

fn wrap_line(line: &str, out: &mut String) {
    if cols(line) <= WIDTH {
        out.push_str(line);
        return;
    }
    let body = line.trim_start_matches(' ');
    let lead = line.len() - body.len();
    // Continuation lines align with the text after a bullet.
    let hang = lead
        + ["* ", "- "]
            .iter()
            .find(|b| body.starts_with(**b))
            .map_or(0, |b| b.len());
    let indent = " ".repeat(hang.min(WIDTH / 2));
    let mut cur = " ".repeat(lead);
    let mut cur_has_word = false;
    for word in body.split(' ').filter(|w| !w.is_empty()) {
        let url = word.starts_with("http://") || word.starts_with("https://");
        let fits = cols(&cur) + usize::from(cur_has_word) + cols(word) <= WIDTH;
        if cur_has_word && (!fits || url) {
            out.push_str(cur.trim_end());
            out.push('\n');
            cur = indent.clone();
            cur_has_word = false;
        }
        if cur_has_word {
            cur.push(' ');
        }
        cur.push_str(word);
        cur_has_word = true;
        if url {
            // Nothing joins a URL's line.
            out.push_str(&cur);
            out.push('\n');
            cur = indent.clone();
            cur_has_word = false;
        }
    }
    if cur_has_word {
        out.push_str(cur.trim_end());
    } else if out.ends_with('\n') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_table() {
        let long = "word ".repeat(30);
        let url = format!("https://example.org/{}", "x".repeat(90));
        #[rustfmt::skip]
        let cases: Vec<(String, String)> = vec![
            ("short line".into(), "short line".into()),
            ("-- ".into(), "-- ".into()),
            (format!("  {}", long.trim_end()),
             format!("  {}\n  {}", "word ".repeat(15).trim_end(), "word ".repeat(15).trim_end())),
            (format!("* {}", long.trim_end()),
             format!("* {}\n  {}", "word ".repeat(15).trim_end(), "word ".repeat(15).trim_end())),
            (format!("  see {url} for more {}", "text ".repeat(14).trim_end()),
             format!("  see\n  {url}\n  for more {}\n  text", "text ".repeat(13).trim_end())),
            (format!("    {url}"), format!("    {url}")),
            ("a\n\nb".into(), "a\n\nb".into()),
        ];
        for (input, want) in &cases {
            let got = wrap(input);
            assert_eq!(&got, want, "{input:?}");
            for l in got.lines() {
                assert!(cols(l) <= WIDTH || l.trim().starts_with("http"), "{l:?}");
            }
        }
    }
}
