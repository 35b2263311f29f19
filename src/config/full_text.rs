//! A feed's `full_text` setting (issue 20): fetch each item's article page and match on its main
//! content. `true` for every item, `"auto"` for items whose own text is shorter than
//! `full_text_min_words` (a teaser). Parsing only; the fetching is the pipeline's.

use toml::Spanned;

use super::build::Source;

/// Words below which `"auto"` fetches the page: a headline plus a one-line standfirst.
pub const DEFAULT_MIN_WORDS: usize = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FullText {
    #[default]
    Off,
    Always,
    /// When the item's summary and content together have fewer than `min_words` words.
    Auto {
        min_words: usize,
    },
}

impl FullText {
    /// Whether an item with this text gets its page fetched.
    pub fn wants(self, summary: &str, content: &str) -> bool {
        match self {
            FullText::Off => false,
            FullText::Always => true,
            FullText::Auto { min_words } => {
                summary.split_whitespace().count() + content.split_whitespace().count() < min_words
            }
        }
    }
}

pub(super) fn build(
    src: &mut Source<'_>,
    raw: Option<&Spanned<toml::Value>>,
    min_words: Option<&Spanned<usize>>,
) -> FullText {
    let mode = match raw.map(|v| (v.span(), v.get_ref())) {
        None | Some((_, toml::Value::Boolean(false))) => FullText::Off,
        Some((_, toml::Value::Boolean(true))) => FullText::Always,
        Some((_, toml::Value::String(s))) if s == "auto" => FullText::Auto {
            min_words: DEFAULT_MIN_WORDS,
        },
        Some((span, other)) => {
            src.error_at(
                span,
                format!("`full_text` is {other}: expected true, false or \"auto\""),
            );
            FullText::Off
        }
    };
    match (mode, min_words) {
        (FullText::Auto { .. }, Some(n)) if *n.get_ref() > 0 => FullText::Auto {
            min_words: *n.get_ref(),
        },
        (_, Some(n)) => {
            src.error_at(
                n.span(),
                "`full_text_min_words` needs `full_text = \"auto\"` and a count of at least 1",
            );
            mode
        }
        (_, None) => mode,
    }
}

#[cfg(test)]
mod tests {
    use super::FullText;

    #[test]
    fn auto_wants_only_teasers() {
        let auto = FullText::Auto { min_words: 5 };
        assert!(auto.wants("one two three", ""));
        assert!(!auto.wants("one two three", "four five"));
        assert!(FullText::Always.wants(&"word ".repeat(500), ""));
        assert!(!FullText::Off.wants("", ""));
    }
}
