//! The main content of an article page as plain text (issue 20), with dom_smoothie (a port of
//! Mozilla's Readability; chosen in docs/sources.md): navigation, sidebars, comments, scripts and
//! footers go, the story stays. Pure and CPU-bound: callers run it off the async workers. The
//! page is already bounded by the fetcher's size cap.

use crate::parse::feed_text::{charset_of, decode};
use crate::parse::html::html_to_text;

/// The page's main text, or `None` when the extractor finds no article in it.
#[must_use]
pub fn main_text(page: &[u8], content_type: Option<&str>, url: &str) -> Option<String> {
    // BOM, then valid UTF-8, then the HTTP charset, then chardetng's guess (as for feeds).
    let html = decode(page, content_type.and_then(charset_of)).text;
    let mut reader = dom_smoothie::Readability::new(html.as_str(), Some(url), None).ok()?;
    let article = reader.parse().ok()?;
    // The extractor's HTML, not its `text_content`: our own markup-to-text keeps paragraph
    // breaks and decodes entities as the feeds' text is (one normalisation for matching).
    let text = html_to_text(&article.content);
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::main_text;

    fn page(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/fulltext/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn keeps_the_story_and_drops_the_furniture() {
        let text =
            main_text(&page("article.html"), None, "https://news.example/a").unwrap_or_default();
        for kept in [
            "speed up deliveries of air-defence interceptors",
            "ceasefire line",
        ] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
        for gone in [
            "Most read",
            "Celebrity chef",
            "Ninja_Turtle",
            "Cookie settings",
            "dataLayer",
        ] {
            assert!(!text.contains(gone), "{gone}: {text}");
        }
        let live =
            main_text(&page("liveblog.html"), None, "https://news.example/l").unwrap_or_default();
        assert!(
            live.contains("Witkoff met Rustem Umerov") && live.contains("Élysée"),
            "{live}"
        );
        assert_eq!(main_text(b"", None, "https://news.example/e"), None);
    }
}
