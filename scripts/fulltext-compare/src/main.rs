//! Compares main-content extractors on the page shapes in `tests/fixtures/fulltext/` (issue 20):
//! for each page, which of the sentences that are the story each keeps, which of the page's
//! furniture (navigation, sidebars, comments, paywall prompts, footers) it lets through, and
//! the time per page. Prints a Markdown table.

use std::time::Instant;

struct Page {
    file: &'static str,
    story: &'static [&'static str],
    furniture: &'static [&'static str],
}

const PAGES: &[Page] = &[
    Page {
        file: "article.html",
        story: &[
            "speed up deliveries of air-defence interceptors",
            "sidelines of the Ukraine Defence Contact Group",
            "fund a further tranche of interceptors",
            "ceasefire line and security guarantees",
        ],
        furniture: &["Most read", "Celebrity chef", "Ninja_Turtle", "Cookie settings", "Subscribe", "window.dataLayer"],
    },
    Page {
        file: "liveblog.html",
        story: &[
            "arrived at the Élysée",
            "Kremlin spokesman said Moscow",
            "Witkoff met Rustem Umerov",
        ],
        furniture: &["Five things to know", "© The Evening Ledger", "Key events"],
    },
    Page {
        file: "teaser.html",
        story: &["officials in Berlin were sceptical"],
        furniture: &["Try 4 weeks", "Sign in", "© The Financial Review"],
    },
];

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures/fulltext".into());
    let url = url::Url::parse("https://news.example/story").expect("a URL");
    println!("| page | extractor | story sentences kept | furniture let through | µs/page |");
    println!("|---|---|---|---|---|");
    for page in PAGES {
        let html = std::fs::read_to_string(format!("{dir}/{}", page.file)).expect("read a page");
        let extractors: [(&str, Box<dyn Fn() -> String>); 2] = [
            (
                "dom_smoothie 0.19",
                Box::new(|| {
                    dom_smoothie::Readability::new(html.as_str(), Some(url.as_str()), None)
                        .and_then(|mut r| r.parse())
                        .map(|a| a.text_content.to_string())
                        .unwrap_or_else(|e| format!("(error: {e})"))
                }),
            ),
            (
                "readability 0.3",
                Box::new(|| {
                    let mut bytes = html.as_bytes();
                    readability::extractor::extract(&mut bytes, &url)
                        .map(|p| p.text)
                        .unwrap_or_else(|e| format!("(error: {e})"))
                }),
            ),
        ];
        for (name, run) in &extractors {
            let text = run();
            let runs = 200;
            let start = Instant::now();
            for _ in 0..runs {
                std::hint::black_box(run());
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
            let kept = page.story.iter().filter(|s| text.contains(*s)).count();
            let junk: Vec<&str> = page.furniture.iter().filter(|s| text.contains(*s)).copied().collect();
            println!(
                "| {} | {name} | {kept}/{} | {} | {micros:.0} |",
                page.file,
                page.story.len(),
                if junk.is_empty() { "none".to_string() } else { junk.join(", ") }
            );
        }
    }
}
