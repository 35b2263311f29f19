//! What regexes see (issue 16): a field in NFKC with default-ignorables removed, each byte
//! mapped back to the original, and the shortcut for text that is NFKC already. Pure.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

use super::is_default_ignorable;

/// The characters `is_plain` knows: the alphabets of Europe and the Middle East, general
/// punctuation (dashes, quotes), currency and letter-like symbols (a 1.5 KiB table).
const PLAIN_BELOW: usize = 0x3000;

/// Whether `c` is below `PLAIN_BELOW`, a starter, not default-ignorable, and NFKC's quick
/// check says yes for it: a string of such characters is its own NFKC form (the quick check
/// answers yes for it), and so is one such character alone.
fn is_plain(c: char) -> bool {
    static PLAIN: std::sync::OnceLock<[u64; PLAIN_BELOW / 64]> = std::sync::OnceLock::new();
    let Ok(i) = usize::try_from(u32::from(c)) else {
        return false;
    };
    if i >= PLAIN_BELOW {
        return false;
    }
    let bits = PLAIN.get_or_init(|| {
        let mut bits = [0u64; PLAIN_BELOW / 64];
        for c in (0..PLAIN_BELOW).filter_map(|c| char::from_u32(u32::try_from(c).ok()?)) {
            let plain = unicode_normalization::char::canonical_combining_class(c) == 0
                && !is_default_ignorable(c)
                && unicode_normalization::is_nfkc_quick(std::iter::once(c))
                    == unicode_normalization::IsNormalized::Yes;
            if plain {
                let k = c as usize;
                bits[k / 64] |= 1 << (k % 64);
            }
        }
        bits
    });
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// NFKC text with default-ignorables removed (what regexes see), mapped back to the original.
pub(crate) struct RegexText<'a> {
    pub text: Cow<'a, str>,
    /// How `text` maps back, in order: pieces copied from the original and runs normalised as a
    /// whole. Empty when `text` is the original. (A range per byte was eight bytes per byte for
    /// every field with one no-break space, issue 22.)
    pieces: Vec<Piece>,
}

/// `len` bytes at `at` in the text that came from `from..to` in the original: copied (each
/// character back to itself) or normalised from that run (every byte back to all of it).
#[derive(Debug, Clone, Copy)]
struct Piece {
    at: usize,
    len: usize,
    from: usize,
    to: usize,
    copied: bool,
}

impl<'a> RegexText<'a> {
    pub fn new(original: &'a str) -> RegexText<'a> {
        // Most text is made of characters NFKC leaves alone: checked by a
        // bit each before the quick check's two table lookups per character (the two regex-only
        // rules of the matcher bench build this for every non-ASCII field, issue 22).
        let already = original.is_ascii()
            || original.chars().all(is_plain)
            || (unicode_normalization::is_nfkc_quick(original.chars())
                == unicode_normalization::IsNormalized::Yes
                && !original.chars().any(is_default_ignorable));
        let mut out = RegexText {
            text: Cow::Borrowed(original),
            pieces: Vec::new(),
        };
        if already {
            return out;
        }
        let mut text = String::with_capacity(original.len());
        // NFKC composes across characters, so normalise runs that start at a starter and map
        // every output byte of a run to the whole run's original range.
        let mut run_start = None;
        let mut flush = |from: usize, to: usize, text: &mut String| {
            let run = &original[from..to];
            let at = text.len();
            // One plain character is its own NFKC form: copied, and a piece with the copied
            // characters just before it.
            let copied = match run.chars().next() {
                Some(c) if c.len_utf8() == run.len() && is_plain(c) => {
                    text.push(c);
                    true
                }
                _ => {
                    text.extend(run.chars().filter(|c| !is_default_ignorable(*c)).nfkc());
                    false
                }
            };
            let len = text.len() - at;
            if len == 0 {
                return;
            }
            if let Some(last) = out.pieces.last_mut()
                && copied
                && last.copied
                && last.to == from
            {
                last.len += len;
                last.to = to;
                return;
            }
            out.pieces.push(Piece {
                at,
                len,
                from,
                to,
                copied,
            });
        };
        for (i, c) in original.char_indices() {
            let starter =
                is_plain(c) || unicode_normalization::char::canonical_combining_class(c) == 0;
            if starter {
                if let Some(s) = run_start {
                    flush(s, i, &mut text);
                }
                run_start = Some(i);
            } else if run_start.is_none() {
                run_start = Some(i);
            }
        }
        if let Some(s) = run_start {
            flush(s, original.len(), &mut text);
        }
        out.text = Cow::Owned(text);
        out
    }

    /// The original byte range of `text[start..end]` (on character boundaries; an empty range
    /// gives an empty range where the character at `start` came from).
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        if self.pieces.is_empty() {
            return (start, end);
        }
        if start >= end {
            let at = match self.piece(start) {
                Some(p) if start < p.at + p.len => self.original(start, false),
                _ => self.pieces.last().map_or(0, |p| p.to),
            };
            return (at, at);
        }
        (self.original(start, false), self.original(end - 1, true))
    }

    /// The piece holding byte `i` of the text (the last one for `i` past the end).
    fn piece(&self, i: usize) -> Option<&Piece> {
        let k = self.pieces.partition_point(|p| p.at <= i);
        self.pieces.get(k.checked_sub(1)?)
    }

    /// Where the character holding byte `i` of the text comes from: its start, or its end.
    fn original(&self, i: usize, end: bool) -> usize {
        match self.piece(i) {
            Some(p) if p.copied => p.from + (i - p.at) + usize::from(end),
            Some(p) if end => p.to,
            Some(p) => p.from,
            None => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use unicode_normalization::UnicodeNormalization;

    use super::*;

    /// `RegexText::new` before its fast paths: the text itself when the quick check says it is
    /// NFKC, else every run through NFKC (each output byte mapped to its run).
    fn regex_text_reference(original: &str) -> (String, Vec<(usize, usize)>) {
        let normal = unicode_normalization::is_nfkc_quick(original.chars())
            == unicode_normalization::IsNormalized::Yes
            && !original.chars().any(is_default_ignorable);
        if normal {
            return (
                original.to_string(),
                (0..original.len()).map(|i| (i, i + 1)).collect(),
            );
        }
        let mut text = String::new();
        let mut ranges = Vec::new();
        let mut starts: Vec<usize> = original
            .char_indices()
            .filter(|(_, c)| unicode_normalization::char::canonical_combining_class(*c) == 0)
            .map(|(i, _)| i)
            .collect();
        if starts.first() != Some(&0) {
            starts.insert(0, 0);
        }
        starts.push(original.len());
        for w in starts.windows(2).filter(|w| w[0] < w[1]) {
            let before = text.len();
            let run = &original[w[0]..w[1]];
            text.extend(run.chars().filter(|c| !is_default_ignorable(*c)).nfkc());
            ranges.extend(std::iter::repeat_n((w[0], w[1]), text.len() - before));
        }
        (text, ranges)
    }

    /// Each character of the text and every empty range at a character boundary, mapped back.
    fn regex_text_by_char(original: &str) -> (String, Vec<(usize, usize)>) {
        let t = RegexText::new(original);
        let mut ranges = Vec::new();
        let bounds: Vec<usize> = t.text.char_indices().map(|(i, _)| i).collect();
        for (k, &i) in bounds.iter().enumerate() {
            let next = bounds.get(k + 1).copied().unwrap_or(t.text.len());
            ranges.push(t.original_range(i, next));
            ranges.push(t.original_range(i, i));
        }
        ranges.push(t.original_range(t.text.len(), t.text.len()));
        (t.text.into_owned(), ranges)
    }

    /// The reference's map read the same way.
    fn reference_by_char(original: &str) -> (String, Vec<(usize, usize)>) {
        let (text, map) = regex_text_reference(original);
        let mut ranges = Vec::new();
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for (k, &i) in bounds.iter().enumerate() {
            let next = bounds.get(k + 1).copied().unwrap_or(text.len());
            ranges.push((map[i].0, map[next - 1].1));
            ranges.push((map[i].0, map[i].0));
        }
        let last = map.last().map_or(0, |r| r.1);
        // The old code's empty range past the end, or of the original when it was kept.
        let end = if map.iter().enumerate().all(|(i, r)| *r == (i, i + 1)) {
            text.len()
        } else {
            last
        };
        ranges.push((end, end));
        (text, ranges)
    }

    #[test]
    fn regex_text_agrees_with_nfkc_run_by_run() {
        for text in [
            "Healey in Kyiv",
            "Зеленський і Путін, 12\u{a0}000 troops — ﬁnal",
            "e\u{301}te\u{301} Ａ１ Heg\u{200B}seth ½ ǅ Ω K Å 한국어 \u{1100}\u{1161}",
            "\u{301}starts with a mark",
        ] {
            assert_eq!(
                regex_text_by_char(text),
                reference_by_char(text),
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn regex_text_fast_paths_agree_with_the_reference(
            text in "[aZ1 éÅΩЖй\u{a0}\u{b2}\u{301}\u{308}\u{483}\u{5b0}\u{200B}\u{ad}ﬁＡ½ǅ\u{1100}\u{1161}가\u{2014}\u{2019}\u{2026}\u{2126}\u{212B}\u{2160}]{0,12}"
        ) {
            proptest::prop_assert_eq!(regex_text_by_char(&text), reference_by_char(&text));
        }
    }

    #[test]
    fn regex_text_maps_back() {
        let t = RegexText::new("ﬁ Heg\u{200B}seth");
        assert_eq!(t.text, "fi Hegseth");
        let at = t.text.find("Hegseth").unwrap_or(0);
        assert_eq!(t.original_range(at, at + 7), (4, 14));
    }
}
