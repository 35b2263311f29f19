//! Folding one word (issue 3): NFKD, full case folding, marks dropped, stroke and ligature
//! letters folded, Latin words spelled with Cyrillic look-alikes folded to Latin; and the table
//! that folds a word of characters that fold on their own a character at a time (issue 22). Pure.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Appends the folded form of `word` (one word, not empty of letters) to `out`.
pub(super) fn fold_into(word: &str, out: &mut String) {
    if word.is_ascii() {
        for b in word.bytes() {
            out.push(char::from(b.to_ascii_lowercase()));
        }
        return;
    }
    let start = out.len();
    // A word of characters that fold on their own is the sequence of their folded forms: a
    // table lookup each instead of three iterator stages (a Cyrillic word cost about 3,000
    // instructions, issue 22).
    let table = fold_table();
    for c in word.chars() {
        match table.form(c) {
            Some(form) => out.push_str(form),
            None => {
                out.truncate(start);
                fold_word(word, out);
                break;
            }
        }
    }
    fold_mixed_script(out, start);
}

/// The fold of a word as the specification states it: NFKD first so compatibility forms and
/// accents come apart, fold case, decompose again (folding can produce `i̇`), then drop the
/// marks: `Macrón` ~ `macron`, `ß` ~ `ss`. Without `fold_mixed_script`.
fn fold_word(word: &str, out: &mut String) {
    for c in word.nfkd().default_case_fold().nfkd() {
        if is_combining_mark(c) || c.is_whitespace() {
            continue;
        }
        match fold_letter(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
}

/// The folded form of each character below `FOLD_TABLE_BELOW` that folds on its own.
struct FoldTable {
    /// Per character: where its form starts in `forms` (upper 24 bits) and its length (lower 8),
    /// or `u32::MAX` when it does not fold on its own.
    at: Vec<u32>,
    forms: String,
}

/// The alphabets of Europe and the Middle East, and general punctuation.
const FOLD_TABLE_BELOW: u32 = 0x3000;

impl FoldTable {
    fn form(&self, c: char) -> Option<&str> {
        let packed = *self.at.get(usize::try_from(u32::from(c)).ok()?)?;
        if packed == u32::MAX {
            return None;
        }
        let (from, len) = ((packed >> 8) as usize, (packed & 0xFF) as usize);
        self.forms.get(from..from + len)
    }
}

/// Built on first use from `fold_word` itself. A character folds on its own when it is a
/// starter and every non-starter its fold goes through is dropped in the end: then folding a
/// word of such characters is folding each (canonical reordering only moves non-starters, and
/// every one is dropped), which the property test `the_fold_table_folds_as_the_word_fold_does`
/// checks against `fold_word`.
fn fold_table() -> &'static FoldTable {
    static TABLE: std::sync::OnceLock<FoldTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let dropped = |c: char| is_combining_mark(c) || c.is_whitespace();
        let starter = |c: char| unicode_normalization::char::canonical_combining_class(c) == 0;
        let on_its_own = |c: char| {
            starter(c)
                && std::iter::once(c).nfkd().all(|d| {
                    let d_starter = starter(d);
                    std::iter::once(d)
                        .default_case_fold()
                        .nfkd()
                        .all(|f| (d_starter && starter(f)) || dropped(f))
                })
        };
        let mut table = FoldTable {
            at: Vec::new(),
            forms: String::new(),
        };
        let mut form = String::new();
        for u in 0..FOLD_TABLE_BELOW {
            let packed = match char::from_u32(u).filter(|&c| on_its_own(c)) {
                Some(c) => {
                    form.clear();
                    fold_word(c.encode_utf8(&mut [0; 4]), &mut form);
                    let from = u32::try_from(table.forms.len()).unwrap_or(u32::MAX);
                    let len = u32::try_from(form.len()).unwrap_or(u32::MAX);
                    table.forms.push_str(&form);
                    if len < 0xFF && from < 1 << 24 {
                        from << 8 | len
                    } else {
                        u32::MAX
                    }
                }
                None => u32::MAX,
            };
            table.at.push(packed);
        }
        table
    })
}

/// A word that mixes Latin and Cyrillic letters, every Cyrillic one of which has a Latin look-alike,
/// is a homoglyph spelling (`Неgseth` with Cyrillic `Н` and `е`): it is folded to Latin, so it
/// matches `Hegseth`. A word in one script, or one with a Cyrillic letter that looks like no Latin
/// letter, is left alone. `out[start..]` is one folded (lower-case, unmarked) word.
fn fold_mixed_script(out: &mut String, start: usize) {
    let word = &out[start..];
    let is_cyrillic = |c: char| ('\u{0400}'..='\u{052F}').contains(&c);
    if !word.chars().any(|c| c.is_ascii_lowercase())
        || !word.chars().any(is_cyrillic)
        || !word
            .chars()
            .filter(|&c| is_cyrillic(c))
            .all(|c| latin_look_alike(c).is_some())
    {
        return;
    }
    let folded: String = word
        .chars()
        .map(|c| latin_look_alike(c).unwrap_or(c))
        .collect();
    out.truncate(start);
    out.push_str(&folded);
}

/// Case-folded Cyrillic letters that look like a Latin letter in upper or lower case (`н` is the
/// fold of `Н`, which looks like `H`).
fn latin_look_alike(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' | 'һ' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' | 'ү' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        'і' => 'i',
        'ј' => 'j',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ӏ' => 'l',
        _ => return None,
    })
}

/// Letters with a stroke and ligatures that no decomposition takes apart (after case folding):
/// `Radosław` ~ `radoslaw`, `Støre` ~ `store`, `Æ` ~ `ae`.
fn fold_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'ł' => "l",
        'ø' => "o",
        'đ' | 'ð' => "d",
        'ħ' => "h",
        'ı' => "i",
        'æ' => "ae",
        'œ' => "oe",
        'ß' | 'ẞ' => "ss",
        'þ' => "th",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_fold(word: &str) -> String {
        let mut fast = String::new();
        fold_into(word, &mut fast);
        fast
    }

    fn word_fold(word: &str) -> String {
        let mut slow = String::new();
        fold_word(word, &mut slow);
        fold_mixed_script(&mut slow, 0);
        slow
    }

    proptest::proptest! {
        #[test]
        fn the_fold_table_folds_as_the_word_fold_does(
            word in "[aZéÅßİıﬁЖйёΣςάΐ\u{345}\u{301}\u{323}\u{f73}\u{2126}\u{212b}\u{1e9e}ǅ½²łøæ\u{2014}]{1,6}"
        ) {
            proptest::prop_assert_eq!(table_fold(&word), word_fold(&word));
        }

        #[test]
        fn the_fold_table_folds_any_word_below_it_as_the_word_fold_does(
            word in "[\u{80}-\u{2fff}]{1,5}"
        ) {
            proptest::prop_assert_eq!(table_fold(&word), word_fold(&word));
        }

    }
}
