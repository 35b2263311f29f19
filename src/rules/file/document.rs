//! Rule files as TOML documents, read into `Parsed` (issue 22, memory): the toml crate's parse
//! of a document holds about 30 bytes of heap per byte of file at its peak (its tokens, events
//! and tables), 21 MB for 10,000 generated rules. So a file with more than `RULE_CHUNK` rules is
//! parsed a piece at a time, each piece `RULE_CHUNK` `[[rule]]` tables, and each piece's
//! document is dropped once its rules are built.
//!
//! A piece is parsed as the file's text with everything before the piece blanked out (spaces,
//! byte for byte), so every span stays an offset into the file and every diagnostic points where
//! it did. Pieces start only at a line that is exactly `[[rule]]`; a file with a multi-line
//! string (which could hold such a line) or with `rule` before its first `[[rule]]` is parsed
//! whole, as before.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::super::par;
use super::{Parsed, Source, duplicate_id, lists, rule, unknown_key};

/// `[[rule]]` tables per piece of a large rule file, and per batch handed to `par` (enough for
/// it to spread them over its threads).
const RULE_CHUNK: usize = 4 * par::MIN_PARALLEL;

/// Byte ranges of `text` parsed one after another: the whole text, or pieces of `per` `[[rule]]`
/// tables each (the first also holding what comes before the first table).
pub(super) fn pieces(text: &str, per: usize) -> Vec<Range<usize>> {
    let whole: Vec<Range<usize>> = std::iter::once(0..text.len()).collect();
    if text.contains("\"\"\"") || text.contains("'''") {
        return whole;
    }
    let mut headers = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "[[rule]]" {
            headers.push(at);
        }
        at += line.len();
    }
    let Some(&first) = headers.first() else {
        return whole;
    };
    let before_rules = text[..first]
        .lines()
        .any(|l| l.trim_start().starts_with("rule"));
    if headers.len() <= per || before_rules {
        return whole;
    }
    let mut starts: Vec<usize> = headers.iter().copied().step_by(per).skip(1).collect();
    starts.insert(0, 0);
    let mut ends: Vec<usize> = starts[1..].to_vec();
    ends.push(text.len());
    starts.into_iter().zip(ends).map(|(s, e)| s..e).collect()
}

pub(crate) fn parse_sources(sources: &[Source]) -> Parsed {
    let mut p = Parsed::default();
    let mut ids: HashMap<String, (&Source, usize)> = HashMap::new();
    for (fi, src) in sources.iter().enumerate() {
        let mut valid = true;
        for piece in pieces(&src.text, RULE_CHUNK) {
            // Spaces up to the piece, then the piece: offsets are the file's.
            let text;
            let input = if piece.start == 0 && piece.end == src.text.len() {
                src.text.as_str()
            } else {
                text = " ".repeat(piece.start) + &src.text[piece];
                text.as_str()
            };
            // After a syntax error the later pieces are only checked for theirs, so one run
            // still reports every syntax error of the file.
            valid &= read_document(&mut p, &mut ids, src, fi, input, valid);
        }
    }
    p
}

/// Reads one document (a rule file, or a piece of one) into `p`, or with `!rules` only reports
/// its syntax errors; false when it has any (reported, and then nothing of it is read).
fn read_document<'s>(
    p: &mut Parsed,
    ids: &mut HashMap<String, (&'s Source, usize)>,
    src: &'s Source,
    fi: usize,
    input: &str,
    rules: bool,
) -> bool {
    let (doc, errors) = DeTable::parse_recoverable(input);
    for e in &errors {
        let at = e.span().map_or(0, |s| s.start);
        p.diags.push(src.diagnostic(
            at,
            None,
            e.message().trim_end().to_string(),
            Some("this is not valid TOML"),
        ));
    }
    if !errors.is_empty() || !rules {
        return errors.is_empty();
    }
    // The document is taken apart as it is read: each batch of `[[rule]]` tables is dropped
    // once its rules are built.
    for (key, value) in doc.into_inner() {
        match key.get_ref().as_ref() {
            "lists" => lists(p, src, fi, &value),
            "rule" => match value.into_inner() {
                DeValue::Array(items) => {
                    let mut items = items.into_iter();
                    loop {
                        let batch: Vec<_> = items.by_ref().take(RULE_CHUNK).collect();
                        if batch.is_empty() {
                            break;
                        }
                        let read = par::map(&batch, |item| rule(src, fi, item));
                        drop(batch);
                        for r in read {
                            p.diags.extend(r.diags);
                            if let Some((id, at)) = r.id_at {
                                duplicate_id(p, src, ids, id, at);
                            }
                            p.rules.extend(r.rule);
                        }
                    }
                }
                _ => p.diags.push(src.diagnostic(
                    key.span().start,
                    None,
                    "`rule` must be an array of tables",
                    Some("write each rule under its own [[rule]] header"),
                )),
            },
            other => p.diags.push(unknown_key(
                src,
                key.span(),
                other,
                &["lists", "rule"],
                None,
            )),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(n: usize) -> String {
        let mut t = String::from("[lists]\na = ['x']\n\n");
        for i in 0..n {
            t += &format!("[[rule]]\nid = \"r{i}\"\nquery = 'w{i}'\n\n");
        }
        t
    }

    #[test]
    fn a_small_file_is_one_piece() {
        let t = rules(5);
        assert_eq!(
            pieces(&t, 5).as_slice(),
            std::slice::from_ref(&(0..t.len()))
        );
    }

    #[test]
    fn a_large_file_is_cut_at_every_nth_rule_header() {
        let t = rules(7);
        let got = pieces(&t, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].start, 0);
        assert_eq!(got[2].end, t.len());
        for w in got.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        // The first piece holds the lists and three rules; the others start at a header.
        assert_eq!(t[got[0].clone()].matches("[[rule]]").count(), 3);
        assert!(t[got[1].clone()].starts_with("[[rule]]\nid = \"r3\""));
        assert!(t[got[2].clone()].starts_with("[[rule]]\nid = \"r6\""));
    }

    #[test]
    fn a_file_a_header_could_hide_in_is_parsed_whole() {
        let multi = rules(7) + "[[rule]]\nid = \"m\"\nquery = '''\n[[rule]]\nx'''\n";
        assert_eq!(
            pieces(&multi, 3).as_slice(),
            std::slice::from_ref(&(0..multi.len()))
        );
        let inline = format!("rule = [{{ id = \"a\", query = 'x' }}]\n{}", rules(7));
        assert_eq!(
            pieces(&inline, 3).as_slice(),
            std::slice::from_ref(&(0..inline.len()))
        );
    }
}
