//! One problem at a place in a text file, and its rendering: `file:line:col: message`, the source
//! line with a caret under the column, then a hint and a note. Shared by the config and the rule
//! files so both read alike. Plain data and formatting only: no IO, no knowledge of either format.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a file. `line` and `column` are 1-based; both are 0 when the problem has no
/// place in the file (it could not be read, say), and then no source line is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    /// In characters, not bytes.
    pub column: usize,
    /// What the problem belongs to (`rule talks`), shown before the message.
    pub subject: Option<String>,
    pub message: String,
    /// The offending source line, shown with a caret under `column`; for a long line only a
    /// window around the column, with `…` where it was cut.
    pub source_line: String,
    /// Characters of the line before `column` that `source_line` leaves out (the caret goes under
    /// character `column - source_skip` of `source_line`); 0 unless the line was cut.
    pub source_skip: usize,
    pub hint: Option<String>,
    /// Extra detail printed after the hint (a failing example's explain tree).
    pub note: Option<String>,
}

impl Diagnostic {
    /// A problem with the file as a whole (it could not be read): no line, no column.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            subject: None,
            message: message.into(),
            source_line: String::new(),
            source_skip: 0,
            hint: None,
            note: None,
        }
    }

    /// A problem at byte `offset` of `text` (clamped to the text, moved back to a char boundary).
    pub fn at(
        file: &Path,
        text: &str,
        lines: &LineIndex,
        offset: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column, source_line) = lines.locate(text, offset);
        let start = lines.line_start(line);
        let (source_line, source_skip) =
            window(source_line, offset.min(text.len()) - start, column);
        Diagnostic {
            line,
            column,
            source_line,
            source_skip,
            ..Diagnostic::whole_file(file, message)
        }
    }
}

impl Diagnostic {
    /// Renders as a warning: `file:line:col: warning: …`, then the source line, hint and note.
    pub fn as_warning(&self) -> Warning<'_> {
        Warning(self)
    }

    fn render(&self, f: &mut fmt::Formatter<'_>, severity: &str) -> fmt::Result {
        if self.line == 0 {
            // The file as a whole (missing, unreadable): no position to give.
            write!(f, "{}: {severity}", self.file.display())?;
        } else {
            write!(
                f,
                "{}:{}:{}: {severity}",
                self.file.display(),
                self.line,
                self.column
            )?;
        }
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        f.write_str(&clip(&self.message, MAX_MESSAGE_CHARS))?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            // A window of the line around the column: a megabyte-long line is shown in part. The
            // stored line may itself start `source_skip` characters into the real one.
            let column = self.column.saturating_sub(self.source_skip);
            let skip = column.saturating_sub(1 + MAX_SOURCE_CHARS / 2);
            let shown: String = self
                .source_line
                .chars()
                .skip(skip)
                .take(MAX_SOURCE_CHARS)
                .collect();
            // Tabs stay tabs so the caret lines up under the source line in any terminal.
            let pad: String = shown
                .chars()
                .take(column.saturating_sub(1 + skip))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{:gutter$} |\n{} | {shown}\n{:gutter$} | {pad}^",
                "", self.line, ""
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        if let Some(note) = &self.note {
            for line in note.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// Errors shown of one load; the rest are counted. A rule set that produces thousands (a
/// 2,000-deep list chain gave 1,969 errors, 2.4 MB) is fixed from the first few anyway.
pub const MAX_SHOWN: usize = 20;

/// A message longer than this (in characters) is cut, with how much was cut.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Characters of the source line shown around the caret.
pub const MAX_SOURCE_CHARS: usize = 160;

fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((cut, _)) => {
            let more = text[cut..].chars().count();
            format!("{}… ({more} more characters)", &text[..cut]).into()
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, "")
    }
}

/// A diagnostic shown as a warning (something likely wrong that does not stop the load).
pub struct Warning<'a>(&'a Diagnostic);

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render(f, "warning: ")
    }
}

/// Every problem found in one load, each shown as `error: …` (the first [`MAX_SHOWN`], then how
/// many more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().take(MAX_SHOWN).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        if let Some(more) = self.0.len().checked_sub(MAX_SHOWN).filter(|&n| n > 0) {
            write!(f, "\nerror: and {more} more errors not shown")?;
        }
        Ok(())
    }
}

/// A line longer than this many bytes is shown as a window around the column.
const SHOWN_LINE_BYTES: usize = 160;

/// The part of `line` a diagnostic shows around byte `at` (whose column is `column`), and how
/// many characters before the column it leaves out. A short line is shown whole; a long one (a
/// rule file written on one line, a 20,000-word query) as about `SHOWN_LINE_BYTES` around the
/// column, so a diagnostic costs the same on any line and many of them stay linear in all.
fn window(line: &str, at: usize, column: usize) -> (String, usize) {
    if line.len() <= SHOWN_LINE_BYTES {
        return (line.to_string(), 0);
    }
    let half = SHOWN_LINE_BYTES / 2;
    let mut at = at.min(line.len());
    while !line.is_char_boundary(at) {
        at -= 1;
    }
    let mut from = at.saturating_sub(half);
    while !line.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (at + half).min(line.len());
    while !line.is_char_boundary(to) {
        to += 1;
    }
    let mut shown = String::with_capacity(to - from + 6);
    let mut skip = 0;
    if from > 0 {
        shown.push('…');
        // The ellipsis stands in for what was cut and takes one column itself.
        skip = (column - 1).saturating_sub(line[from..at].chars().count() + 1);
    }
    shown.push_str(&line[from..to]);
    if to < line.len() {
        shown.push('…');
    }
    (shown, skip)
}

/// Byte offset of every line start of a text, so locating an offset is a binary search, and
/// character counts at checkpoints, so a column costs a bounded count even on a long line.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// (byte offset, characters before it), about every `CHECKPOINT` bytes; empty for ASCII text,
    /// where characters are bytes.
    checkpoints: Vec<(usize, usize)>,
}

const CHECKPOINT: usize = 4096;

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut checkpoints = Vec::new();
        if !text.is_ascii() {
            let (mut at, mut chars) = (0, 0);
            while at < text.len() {
                checkpoints.push((at, chars));
                let mut next = (at + CHECKPOINT).min(text.len());
                while !text.is_char_boundary(next) {
                    next += 1;
                }
                chars += text[at..next].chars().count();
                at = next;
            }
        }
        LineIndex {
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            checkpoints,
        }
    }

    /// Characters of `text` before byte `at` (a char boundary).
    fn chars_before(&self, text: &str, at: usize) -> usize {
        if self.checkpoints.is_empty() {
            return at;
        }
        let i = self.checkpoints.partition_point(|&(b, _)| b <= at) - 1;
        let (byte, chars) = self.checkpoints[i];
        chars + text[byte..at].chars().count()
    }

    /// Byte offset of the start of `line` (1-based; clamped to the last line).
    pub fn line_start(&self, line: usize) -> usize {
        let i = line.clamp(1, self.starts.len()) - 1;
        self.starts[i]
    }

    /// Line (1-based), column (1-based, in characters) and the line's text for byte `offset` of
    /// `text`, the text this index was built from.
    pub fn locate<'t>(&self, text: &'t str, offset: usize) -> (usize, usize, &'t str) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self.chars_before(text, offset) - self.chars_before(text, start) + 1;
        let end = self.starts.get(line).map_or(text.len(), |&next| next - 1);
        let source = &text[start..end];
        (line, column, source.strip_suffix('\r').unwrap_or(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_table() {
        let text = "ab\n\tcé d\n\nlast";
        let index = LineIndex::new(text);
        #[rustfmt::skip]
        let cases: &[(usize, (usize, usize, &str))] = &[
            (0,   (1, 1, "ab")),
            (2,   (1, 3, "ab")),
            (3,   (2, 1, "\tcé d")),
            (6,   (2, 3, "\tcé d")),  // inside `é`: moved back to its start
            (10,  (3, 1, "")),
            (11,  (4, 1, "last")),
            (99,  (4, 5, "last")),
        ];
        for &(offset, want) in cases {
            assert_eq!(index.locate(text, offset), want, "offset {offset}");
        }
        assert_eq!(
            [0, 1, 2, 4, 9].map(|l| index.line_start(l)),
            [0, 0, 3, 11, 11]
        );
    }

    /// Issue 16 item 13: thousands of errors, a huge message, a huge source line: the rendering
    /// stays small and says what it left out.
    #[test]
    fn floods_of_errors_render_bounded() {
        let long_line = format!("q = \"{}\"", "x".repeat(1_000_000));
        let index = LineIndex::new(&long_line);
        let mut d = Diagnostic::at(
            Path::new("r.toml"),
            &long_line,
            &index,
            500_000,
            "m".repeat(100_000),
        );
        d.hint = Some("h".into());
        let one = d.to_string();
        assert!(one.len() < 2_000, "{} bytes", one.len());
        assert!(one.contains("… (99500 more characters)"), "{one}");
        // The caret is still under the column, inside the window shown.
        let lines: Vec<&str> = one.lines().collect();
        let (src, caret) = (lines[2], lines[3]);
        assert_eq!(
            src.find(" | ").map(|i| i + 3),
            caret.find(" | ").map(|i| i + 3)
        );
        assert_eq!(caret.len() - caret.find('^').unwrap_or(0), 1);
        assert!(src.chars().count() < MAX_SOURCE_CHARS + 10, "{src}");
        let many = Diagnostics(vec![
            Diagnostic::whole_file(Path::new("r.toml"), "bad");
            1_969
        ]);
        let text = many.to_string();
        assert_eq!(text.lines().count(), MAX_SHOWN + 1);
        assert!(
            text.ends_with("\nerror: and 1949 more errors not shown"),
            "{text}"
        );
        assert!(text.starts_with("error: r.toml: bad\n"), "{text}");
    }

    #[test]
    fn renders_place_caret_hint_and_note() {
        let text = "a = 1\n\tkey = \"x\"\n";
        let mut d = Diagnostic::at(
            Path::new("f.toml"),
            text,
            &LineIndex::new(text),
            13,
            "bad value",
        );
        d.subject = Some("rule r".into());
        d.hint = Some("try again".into());
        d.note = Some("one\ntwo".into());
        assert_eq!(
            Diagnostics(vec![
                d,
                Diagnostic::whole_file(Path::new("g"), "unreadable")
            ])
            .to_string(),
            "error: f.toml:2:8: rule r: bad value\n  |\n2 | \tkey = \"x\"\n  | \t      ^\n  \
             = hint: try again\n    one\n    two\nerror: g: unreadable"
        );
        let mut w = Diagnostic::at(Path::new("f.toml"), text, &LineIndex::new(text), 2, "odd");
        w.subject = Some("rule r".into());
        assert_eq!(
            w.as_warning().to_string(),
            "f.toml:1:3: warning: rule r: odd\n  |\n1 | a = 1\n  |   ^"
        );
    }

    /// A long line (a rule file on one line, a 20,000-word query) is shown as a window around the
    /// column, the caret under the same character, so each diagnostic costs the same on any line.
    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_column() {
        let line = format!("{}X{}", "é".repeat(5_000), "b".repeat(5_000));
        let text = format!("first\n{line}\nlast");
        let index = LineIndex::new(&text);
        let at = text.find('X').expect("X");
        let d = Diagnostic::at(Path::new("f"), &text, &index, at, "here");
        assert_eq!((d.line, d.column), (2, 5_001));
        assert!(d.source_line.starts_with('…') && d.source_line.ends_with('…'));
        assert!(d.source_line.len() < 200, "{}", d.source_line.len());
        let shown = d.to_string();
        let rows: Vec<&str> = shown.lines().collect();
        let caret = rows[3].chars().position(|c| c == '^').expect("caret");
        let under = rows[2]
            .chars()
            .nth(caret)
            .expect("a character above the caret");
        assert_eq!(under, 'X', "{shown}");
        // At the start and at the end of the long line.
        for (at, want) in [(6, 'é'), (text.len() - 6, 'b')] {
            let shown = Diagnostic::at(Path::new("f"), &text, &index, at, "m").to_string();
            let rows: Vec<&str> = shown.lines().collect();
            let caret = rows[3].chars().position(|c| c == '^').expect("caret");
            assert_eq!(rows[2].chars().nth(caret), Some(want), "{shown}");
        }
    }
}
