//! Text normalisation and tokenisation, shared by queries and article fields so both mean the same.
//! Default-ignorables removed, quotes and dashes unified, UAX #29 words, possessive `'s` dropped,
//! elisions split (`l'Ukraine`), then each word NFKD + full case fold + marks removed + stroke and
//! ligature letters folded (`ł` `ø` `æ`), and a word mixing Latin with Cyrillic look-alikes
//! (`Неgseth`) folded to Latin. Pure; never sees markup.

use std::borrow::Cow;

mod fold;
mod regex_text;

use fold::fold_into;

pub(crate) use regex_text::RegexText;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// One word of a text: its byte range in the original text and its normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub norm: String,
}

/// A token as the matcher keeps it: ranges only, the normalised bytes live in a shared buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokPos {
    /// Byte offset of the token in the normalised buffer.
    pub norm_start: u32,
    /// Byte range in the original text.
    pub start: u32,
    pub end: u32,
}

/// The words of `text`, normalised.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for_each_token(text, |start, end, norm| {
        out.push(Token {
            start,
            end,
            norm: norm.to_string(),
        });
    });
    out
}

/// `tokenize` without a `String` per word: `f` gets each word's byte range in `text` and its
/// normalised form, in order (compiling 100,000 rules tokenises every term, issue 22).
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(usize, usize, &str)) {
    let mut norm = Vec::new();
    let mut toks = Vec::new();
    tokenize_into(text, &mut norm, &mut toks);
    for t in &toks {
        if let Some(word) = norm_word(&norm, t) {
            f(t.start as usize, t.end as usize, word);
        }
    }
}

/// The normalised words of `text` joined by single spaces (the form literals are compiled to).
pub fn normalized_words(text: &str) -> Vec<String> {
    tokenize(text).into_iter().map(|t| t.norm).collect()
}

/// Appends each token of `text` to `norm` as `" word"` (a space before every token) and records
/// its position. Callers add the closing space. Offsets in `TokPos` are relative to `text`.
///
/// Most news text is ASCII once quotes and dashes are unified, but one `—` or `ó` in a field
/// used to send the whole field through UAX #29 and the Unicode fold (a quarter of the match
/// step at 10,000 rules, issue 22). The text is cut into runs at places where UAX #29 always
/// breaks (see `Runs`): ASCII runs take the byte fast path, the others the Unicode path, and
/// the tokens are those of the Unicode path over the whole text (a property test checks it).
pub(crate) fn tokenize_into(text: &str, norm: &mut Vec<u8>, toks: &mut Vec<TokPos>) {
    tokenize_with(text, norm, toks, &mut |_, _| {});
}

/// `tokenize_into`, calling `written(norm, toks)` after each word is written, when `toks` holds
/// every token of `norm` (an elided word is two): the matcher scans the text as it is written.
pub(crate) fn tokenize_with(
    text: &str,
    norm: &mut Vec<u8>,
    toks: &mut Vec<TokPos>,
    written: &mut impl FnMut(&[u8], &[TokPos]),
) {
    let cleaned = Cleaned::new(text);
    if cleaned.text.is_ascii() {
        ascii_words_into(&cleaned, 0, &cleaned.text, norm, toks, written);
        return;
    }
    for (at, run, ascii) in Runs::new(&cleaned.text) {
        if ascii {
            ascii_words_into(&cleaned, at, run, norm, toks, written);
        } else {
            unicode_words_into(&cleaned, at, run, norm, toks, written);
        }
    }
}

/// `tokenize_into` without the runs: the whole text through UAX #29 and the Unicode fold (the
/// reference the fast path is tested against).
#[cfg(test)]
fn tokenize_into_unicode(text: &str, norm: &mut Vec<u8>, toks: &mut Vec<TokPos>) {
    let cleaned = Cleaned::new(text);
    unicode_words_into(&cleaned, 0, &cleaned.text, norm, toks, &mut |_, _| {});
}

/// The words of `run`, an ASCII run of `cleaned.text` starting at byte `at`: the same boundaries
/// as UAX #29 for ASCII (letters and digits join (WB5, WB8–10), `_` joins them (WB13a/b), `joins`
/// below; property-tested against UAX #29), the possessive and the
/// elision decided on the way, and each word written lower-cased, in one pass over the bytes
/// (the iterator chain per word was most of the normaliser's time at 10,000 rules, issue 22).
fn ascii_words_into(
    cleaned: &Cleaned<'_>,
    at: usize,
    run: &str,
    norm: &mut Vec<u8>,
    toks: &mut Vec<TokPos>,
    written: &mut impl FnMut(&[u8], &[TokPos]),
) {
    let b = run.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !WORD_BYTE[usize::from(b[i])] {
            i += 1;
            continue;
        }
        let start = i;
        // The first `'` inside the word: only a join (WB6/7, WB11/12) puts one there.
        let mut quote = usize::MAX;
        i += 1;
        loop {
            while i < n && WORD_BYTE[usize::from(b[i])] {
                i += 1;
            }
            if i + 1 < n && joins(b[i - 1], b[i], b[i + 1]) {
                if b[i] == b'\'' && quote == usize::MAX {
                    quote = i;
                }
                i += 2;
                continue;
            }
            break;
        }
        let mut end = i;
        if !b[start].is_ascii_alphanumeric() && !b[start..end].iter().any(u8::is_ascii_alphanumeric)
        {
            continue;
        }
        // `strip_possessive`.
        if end - start > 2 && b[end - 2] == b'\'' && b[end - 1] | 0x20 == b's' {
            end -= 2;
        }
        norm.push(b' ');
        let from = norm.len();
        norm.extend(b[start..end].iter().map(u8::to_ascii_lowercase));
        // `split_elision`: the head before the first quote is an elided article.
        let elided = quote < end && {
            let head = norm.get(from..from + (quote - start));
            ELISIONS.iter().any(|e| Some(e.as_bytes()) == head)
        };
        if elided {
            let q = from + quote - start;
            norm[q] = b' ';
            push_tok(toks, cleaned, from, at + start, at + quote);
            push_tok(toks, cleaned, q + 1, at + quote + 1, at + end);
        } else {
            push_tok(toks, cleaned, from, at + start, at + end);
        }
        written(norm, toks);
    }
}

/// Whether `mid` joins `prev` and `next` into one ASCII word: `:` `.` `'` between two letters
/// (WB6/7), `,` `;` `.` `'` between two digits (WB11/12).
#[inline]
fn joins(prev: u8, mid: u8, next: u8) -> bool {
    (prev.is_ascii_alphabetic() && next.is_ascii_alphabetic() && matches!(mid, b':' | b'.' | b'\''))
        || (prev.is_ascii_digit()
            && next.is_ascii_digit()
            && matches!(mid, b',' | b';' | b'.' | b'\''))
}

/// The words of `run` (a run of `cleaned.text` starting at byte `at`) by UAX #29, each folded.
fn unicode_words_into(
    cleaned: &Cleaned<'_>,
    at: usize,
    run: &str,
    norm: &mut Vec<u8>,
    toks: &mut Vec<TokPos>,
    written: &mut impl FnMut(&[u8], &[TokPos]),
) {
    let mut folded = String::new();
    for (i, seg) in run.split_word_bound_indices() {
        if !seg.chars().any(char::is_alphanumeric) {
            continue;
        }
        for (j, part) in split_elision(strip_possessive(seg)) {
            folded.clear();
            fold_into(part, &mut folded);
            if folded.is_empty() {
                continue;
            }
            norm.push(b' ');
            let norm_start = norm.len();
            norm.extend_from_slice(folded.as_bytes());
            let from = at + i + j;
            push_tok(toks, cleaned, norm_start, from, from + part.len());
            written(norm, toks);
        }
    }
}

/// The normalised word of token `t` in `norm` (which holds valid UTF-8: whole folded words).
pub(crate) fn norm_word<'n>(norm: &'n [u8], t: &TokPos) -> Option<&'n str> {
    let from = t.norm_start as usize;
    let rest = norm.get(from..)?;
    let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    std::str::from_utf8(&rest[..len]).ok()
}

/// ASCII whitespace: U+0020 (WSegSpace), tab (Other), and LF, CR, VT, FF (LF, CR, Newline).
fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

/// A text cut into maximal runs of ASCII and of non-ASCII pieces, yielded as (offset, run, ASCII?).
/// A piece ends where an ASCII whitespace character is followed by an ASCII character that is not
/// whitespace. UAX #29 always breaks there: the left side is CR, LF, Newline, WSegSpace or Other
/// and the right side is none of Extend, Format, ZWJ (WB4) or WSegSpace (WB3d), so no rule from
/// WB3 to WB16 joins them, and no rule looks across such a break (regional indicators are counted
/// from the last non-indicator). Segmenting each run alone therefore gives the same words.
struct Runs<'a> {
    text: &'a str,
    /// Start of the run not yielded yet.
    at: usize,
}

impl<'a> Runs<'a> {
    fn new(text: &'a str) -> Runs<'a> {
        Runs { text, at: 0 }
    }
}

impl<'a> Iterator for Runs<'a> {
    type Item = (usize, &'a str, bool);

    fn next(&mut self) -> Option<(usize, &'a str, bool)> {
        let b = self.text.as_bytes();
        if self.at >= b.len() {
            return None;
        }
        let start = self.at;
        // The kind of the run is the kind of its first piece; it ends before the first piece of
        // the other kind.
        let (mut piece, mut piece_ascii, mut run_ascii) = (start, true, None);
        let mut i = start;
        while i <= b.len() {
            let boundary = i == b.len()
                || (i > start && ascii_space(b[i - 1]) && b[i] < 0x80 && !ascii_space(b[i]));
            if boundary && i > piece {
                match run_ascii {
                    None => run_ascii = Some(piece_ascii),
                    Some(kind) if kind != piece_ascii => {
                        self.at = piece;
                        return Some((start, &self.text[start..piece], kind));
                    }
                    Some(_) => {}
                }
                piece = i;
                piece_ascii = true;
            }
            if i < b.len() && b[i] >= 0x80 {
                piece_ascii = false;
            }
            i += 1;
        }
        self.at = b.len();
        Some((start, &self.text[start..], run_ascii.unwrap_or(true)))
    }
}

// Called for every token: a call of its own was 2.5 % of the match step at 10,000 rules.
#[inline(always)]
fn push_tok(
    toks: &mut Vec<TokPos>,
    cleaned: &Cleaned<'_>,
    norm_start: usize,
    from: usize,
    to: usize,
) {
    let (start, end) = cleaned.original_range(from, to);
    toks.push(TokPos {
        norm_start: u32::try_from(norm_start).unwrap_or(u32::MAX),
        start: u32::try_from(start).unwrap_or(u32::MAX),
        end: u32::try_from(end).unwrap_or(u32::MAX),
    });
}

/// French, Italian and Catalan elided articles, pronouns and prepositions (before the apostrophe).
const ELISIONS: &[&str] = &[
    "l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "dell",
    "dall", "nell", "sull", "all", "coll", "un", "quest", "quell",
];

/// `l'Ukraine` is `l` + `Ukraine` (quotes are unified before this runs); `O'Neill` stays whole.
/// Yields each part with its byte offset in `seg`.
fn split_elision(seg: &str) -> impl Iterator<Item = (usize, &str)> {
    // A byte scan: the quote is ASCII, and words are short (a `str::find` per word was 3 % of a
    // cold cycle's instructions, issue 22).
    let at = seg.bytes().position(|b| b == b'\'').filter(|&a| {
        let head = &seg[..a];
        seg[a + 1..].starts_with(char::is_alphanumeric)
            && ELISIONS.iter().any(|e| head.eq_ignore_ascii_case(e))
    });
    let (first, second) = match at {
        Some(a) => (&seg[..a], Some((a + 1, &seg[a + 1..]))),
        None => (seg, None),
    };
    std::iter::once((0, first)).chain(second)
}

/// ASCII letters, digits and `_`: the bytes that always continue an ASCII word.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_';
        i += 1;
    }
    t
};

/// `Hegseth's` and `Hegseth’s` are the word `Hegseth` (quotes are unified before this runs).
fn strip_possessive(seg: &str) -> &str {
    if seg.len() > 2 && (seg.ends_with("'s") || seg.ends_with("'S")) {
        &seg[..seg.len() - 2]
    } else {
        seg
    }
}

/// The exact (case- and accent-sensitive) form of a word for `case:`: NFKC, cleaned.
pub(crate) fn exact_form(word: &str) -> String {
    let cleaned = Cleaned::new(word);
    strip_possessive(&cleaned.text).nfkc().collect()
}

/// Whether `word`'s exact form is `want`, without building it for an ASCII word (NFKC and the
/// cleaning leave ASCII alone): `case:` checks every occurrence of its literal.
pub(crate) fn exact_form_is(word: &str, want: &str) -> bool {
    if word.is_ascii() {
        return strip_possessive(word) == want;
    }
    exact_form(word) == want
}

/// A text with default-ignorables removed and quotes and dashes unified, mapped back to the original.
pub(crate) struct Cleaned<'a> {
    pub text: Cow<'a, str>,
    /// Each character the cleaning changed or dropped, in order. Between two of them `text` and
    /// the original agree byte for byte, so this is the whole map back (a range per byte of
    /// `text` was eight bytes per byte, built for every field with one curly quote, issue 22).
    /// Empty when `text` is the original.
    edits: Vec<Edit>,
}

/// A character the cleaning changed (`len` bytes at `at` in the cleaned text) or dropped
/// (`len` 0), which was `from..to` in the original.
#[derive(Debug, Clone, Copy)]
struct Edit {
    at: usize,
    len: usize,
    from: usize,
    to: usize,
}

impl<'a> Cleaned<'a> {
    pub fn new(text: &'a str) -> Cleaned<'a> {
        let mut cleaned = Cleaned {
            text: Cow::Borrowed(text),
            edits: Vec::new(),
        };
        if text.is_ascii() {
            return cleaned;
        }
        let mut out = String::new();
        let mut copied = 0;
        for (i, &b) in text.as_bytes().iter().enumerate() {
            // A lead byte starts a character; only a few leads can start one to clean.
            if !MAY_CLEAN[usize::from(b)] {
                continue;
            }
            let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
                continue;
            };
            let r = clean_char(c);
            if r == Some(c) {
                continue;
            }
            if out.capacity() == 0 {
                out.reserve(text.len());
            }
            out.push_str(&text[copied..i]);
            let at = out.len();
            if let Some(r) = r {
                out.push(r);
            }
            copied = i + c.len_utf8();
            cleaned.edits.push(Edit {
                at,
                len: out.len() - at,
                from: i,
                to: copied,
            });
        }
        if !cleaned.edits.is_empty() {
            out.push_str(&text[copied..]);
            cleaned.text = Cow::Owned(out);
        }
        cleaned
    }

    /// The original byte range of `text[start..end]` (a non-empty range on char boundaries).
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        if self.edits.is_empty() {
            return (start, end);
        }
        (self.original(start, false), self.original(end - 1, true))
    }

    /// Where the character holding byte `p` of `text` starts in the original, or ends (`end`).
    fn original(&self, p: usize, end: bool) -> usize {
        let k = self.edits.partition_point(|e| e.at <= p);
        let Some(e) = k.checked_sub(1).and_then(|k| self.edits.get(k)) else {
            return p + usize::from(end);
        };
        if p < e.at + e.len {
            return if end { e.to } else { e.from };
        }
        // Unchanged since the edit: the same bytes, shifted. A character ends one byte after
        // its last byte.
        e.to + (p - (e.at + e.len)) + usize::from(end)
    }
}

/// The lead bytes of the UTF-8 form of every character `clean_char` changes or drops (U+00AD,
/// U+02BC, U+034F, U+058A, U+05BE, U+061C, U+1xxx, U+2xxx, U+3xxx, U+Fxxx and the ignorables
/// above U+FFFF): a text without one needs no cleaning, without decoding it (a Cyrillic or
/// Greek text never has one). A test checks every character.
static MAY_CLEAN: [bool; 256] = {
    let mut t = [false; 256];
    let leads = [
        0xC2u8, 0xCA, 0xCD, 0xD6, 0xD8, 0xE1, 0xE2, 0xE3, 0xEF, 0xF0, 0xF3,
    ];
    let mut i = 0;
    while i < leads.len() {
        t[leads[i] as usize] = true;
        i += 1;
    }
    t
};

#[cfg(test)]
fn needs_cleaning(c: char) -> bool {
    !c.is_ascii() && clean_char(c) != Some(c)
}

/// What a character becomes before segmentation: `None` for default-ignorables.
fn clean_char(c: char) -> Option<char> {
    if is_default_ignorable(c) {
        return None;
    }
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '\u{FF07}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{FF02}' => '"',
        '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{058A}'
        | '\u{05BE}'
        | '\u{1806}'
        | '\u{2E17}'
        | '\u{2E1A}'
        | '\u{2E3A}'
        | '\u{2E3B}'
        | '\u{2E40}'
        | '\u{301C}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}' => '-',
        _ => c,
    })
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15).
pub(crate) fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_ranges() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "Healey's visit",
                &[("healey", "Healey"), ("visit", "visit")],
            ),
            ("Heg\u{200B}seth", &[("hegseth", "Heg\u{200B}seth")]),
            ("Macrón", &[("macron", "Macrón")]),
            ("Straße", &[("strasse", "Straße")]),
            ("cease-fire", &[("cease", "cease"), ("fire", "fire")]),
            ("O’Neill’s", &[("o'neill", "O’Neill")]),
            ("Зеленський", &[("зеленськии", "Зеленський")]),
            ("Ｈｅａｌｅｙ", &[("healey", "Ｈｅａｌｅｙ")]),
            ("bbc.co.uk", &[("bbc.co.uk", "bbc.co.uk")]),
            ("l'Ukraine", &[("l", "l"), ("ukraine", "Ukraine")]),
            ("d’Ukraine", &[("d", "d"), ("ukraine", "Ukraine")]),
            ("dell'Ucraina", &[("dell", "dell"), ("ucraina", "Ucraina")]),
            ("Qu’il", &[("qu", "Qu"), ("il", "il")]),
            ("O'Brien", &[("o'brien", "O'Brien")]),
            (
                "Radosław Støre",
                &[("radoslaw", "Radosław"), ("store", "Støre")],
            ),
            (
                "Æther Œuvre þorn",
                &[("aether", "Æther"), ("oeuvre", "Œuvre"), ("thorn", "þorn")],
            ),
            (
                "Đoković ħ ı",
                &[("dokovic", "Đoković"), ("h", "ħ"), ("i", "ı")],
            ),
            // Issue 16 item 13: a Latin word spelled with Cyrillic look-alikes is folded to Latin
            // (Cyrillic Н and е in `Неgseth`, о and с in `Zelensky`, one і in `Kyіv`)…
            ("\u{41d}\u{435}gseth", &[("hegseth", "\u{41d}\u{435}gseth")]),
            ("Zel\u{435}nsky", &[("zelensky", "Zel\u{435}nsky")]),
            ("Ky\u{456}v", &[("kyiv", "Ky\u{456}v")]),
            // …a word all in Cyrillic is not, even when every letter has a look-alike…
            (
                "\u{41d}\u{415}\u{422}",
                &[("\u{43d}\u{435}\u{442}", "\u{41d}\u{415}\u{422}")],
            ),
            // …nor one mixing in a Cyrillic letter that looks like no Latin one (`ж`).
            ("Heg\u{436}eth", &[("heg\u{436}eth", "Heg\u{436}eth")]),
        ];
        for (text, want) in cases {
            let got: Vec<(String, &str)> = tokenize(text)
                .into_iter()
                .map(|t| (t.norm, &text[t.start..t.end]))
                .collect();
            let want: Vec<(String, &str)> =
                want.iter().map(|(n, o)| ((*n).to_string(), *o)).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    /// The tokens `tokenize_into` (or the reference) gives `text`: each normalised word with its
    /// original byte range.
    fn tokens_by(
        text: &str,
        f: fn(&str, &mut Vec<u8>, &mut Vec<TokPos>),
    ) -> (String, Vec<(u32, u32, u32)>) {
        let (mut norm, mut toks) = (Vec::new(), Vec::new());
        f(text, &mut norm, &mut toks);
        let norm = String::from_utf8(norm).expect("normalised text is UTF-8");
        let toks = toks
            .iter()
            .map(|t| (t.norm_start, t.start, t.end))
            .collect();
        (norm, toks)
    }

    /// Issue 22: ASCII runs of a mixed text take the byte path, the rest the Unicode path; the
    /// result is what the Unicode path gives the whole text, for every script and oddity the
    /// normaliser handles.
    #[test]
    fn ascii_runs_normalise_as_the_unicode_path() {
        let corpus = [
            "Healey met Hegseth in Kyiv — the 28-point plan, l'Ukraine et d’Ukraine.",
            "Macrón, Straße, STRASSE and Øresund; Radosław Sikorski said “no” to O’Neill’s plan.",
            "Зеленський і Путін: переговори в Женеві. Kyiv Independent, 12,000 troops.",
            "Συνάντηση στην Αθήνα ΟΔΥΣΣΕΑΣ with the EU's envoy (ΣΊΣΥΦΟΣ).",
            "和平计划 talks in 北京 and 東京 with ＨＥＡＬＥＹ and ｆｕｌｌ－ｗｉｄｔｈ ０１２３.",
            "ﬁnal ﬂight of Æther Œuvre þorn Đoković ħ ı İstanbul DİYARBAKIR ǅemal.",
            "Heg\u{00AD}seth Heg\u{200B}seth Zel\u{200D}ensky \u{FEFF}Kyiv \u{200E}Odesa",
            "\u{41d}\u{435}gseth and Zel\u{435}nsky in Ky\u{456}v, not \u{41d}\u{415}\u{422}.",
            "e\u{301}te\u{301} \u{301}accent after a space, \u{945}sign, cafe\u{301} 3.14 1,000.5 a.b.c",
            "flags 🇺🇦🇪🇺 🇺🇦 x 👩\u{200D}💻 emoji — and tabs\tand\r\nnewlines\u{0B}vt\u{0C}ff",
            "mixed:word, Hegseth's, qu’il, dell'Ucraina, jusqu'à Genève _under_score_",
            "",
            "   ",
            "é",
            "a é b",
            "ASCII only, no fast-path split needed at all.",
        ];
        for text in corpus {
            assert_eq!(
                tokens_by(text, tokenize_into),
                tokens_by(text, tokenize_into_unicode),
                "{text:?}"
            );
        }
        // The whole corpus as one text, as fields concatenate.
        let all = corpus.join("\n");
        assert_eq!(
            tokens_by(&all, tokenize_into),
            tokens_by(&all, tokenize_into_unicode)
        );
    }

    #[test]
    fn runs_cover_the_text_and_alternate() {
        // A piece starts only at an ASCII character after whitespace: `é` does not start one
        // (a mark after a space belongs to the space), so `cd é …` is one non-ASCII piece.
        let text = "ab cd é fg\u{301}h ij kl Ж mn";
        let runs: Vec<(usize, &str, bool)> = Runs::new(text).collect();
        assert_eq!(
            runs,
            vec![
                (0, "ab ", true),
                (3, "cd é fg\u{301}h ", false),
                (15, "ij ", true),
                (18, "kl Ж ", false),
                (24, "mn", true),
            ]
        );
        let joined: String = runs.iter().map(|r| r.1).collect();
        assert_eq!(joined, text);
    }

    proptest::proptest! {
        #[test]
        fn ascii_words_agree_with_the_unicode_path(
            text in "([a-cA-C0-2_:.,;' \"!?\n-]{0,4}(l|D|qu|dell|O|x)?'?[sS]?){0,8}"
        ) {
            // Boundaries (UAX #29 for ASCII), possessives, elisions and case, against
            // `unicode-segmentation` and the Unicode fold.
            proptest::prop_assert_eq!(
                tokens_by(&text, tokenize_into),
                tokens_by(&text, tokenize_into_unicode)
            );
        }
        #[test]
        fn ascii_runs_agree_with_the_unicode_path(
            text in "[aZ1 \t\n.,'’:_-]{0,6}([éßİıﬁЖіеН΅ΑＡ\u{301}\u{AD}\u{200B}\u{200D}🇺👩—]{0,2}[aZ1 \t\n.,'’:_-]{0,6}){0,5}"
        ) {
            proptest::prop_assert_eq!(
                tokens_by(&text, tokenize_into),
                tokens_by(&text, tokenize_into_unicode)
            );
        }
    }

    /// The cleaning as it was, a range per byte: the text and each token's original range.
    fn cleaned_reference(text: &str) -> (String, Vec<(usize, usize)>) {
        let mut out = String::new();
        let mut map = Vec::new();
        for (i, c) in text.char_indices() {
            let Some(r) = clean_char(c) else { continue };
            out.push(r);
            map.extend(std::iter::repeat_n((i, i + c.len_utf8()), r.len_utf8()));
        }
        (out, map)
    }

    proptest::proptest! {
        #[test]
        fn cleaning_maps_every_character_back_as_a_range_per_byte_did(
            text in "[ab é\u{2014}\u{2019}\u{201C}\u{AD}\u{200B}\u{200D}\u{FEFF}\u{2212}\u{FF07}Ж\u{E0001}\u{1D173}]{0,16}"
        ) {
            let (want_text, map) = cleaned_reference(&text);
            let cleaned = Cleaned::new(&text);
            proptest::prop_assert_eq!(&*cleaned.text, want_text.as_str());
            let starts: Vec<usize> = want_text.char_indices().map(|(i, _)| i).collect();
            for (k, &from) in starts.iter().enumerate() {
                for &to in starts.iter().skip(k + 1).chain([&want_text.len()]) {
                    let want = (map[from].0, map[to - 1].1);
                    proptest::prop_assert_eq!(cleaned.original_range(from, to), want, "{}..{}", from, to);
                }
            }
        }
    }

    #[test]
    fn every_character_that_needs_cleaning_has_a_marked_lead_byte() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            if needs_cleaning(c) {
                let lead = c.encode_utf8(&mut buf).as_bytes()[0];
                assert!(MAY_CLEAN[usize::from(lead)], "{c:?} (lead {lead:#x})");
            }
        }
    }
}
