//! Issue 20, language detection through the whole pipeline: `lang:` matches items of a feed that
//! declares no language by the language detected from their text, and a declared language still
//! wins over what the text looks like.

use std::net::{IpAddr, Ipv4Addr};

use newswatch::config::Config;
use newswatch::fetch::Fetcher;
use newswatch::pipeline::{Feeds, Jitter, Pipeline};
use newswatch::rules::RuleSet;
use newswatch::store::Store;

use super::polling::at;
use crate::support::http::TestServer;

const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

const RULES: &str = r#"
[[rule]]
id = "hegseth-de"
title = "Hegseth, German press"
query = "Hegseth AND lang:de"

[[rule]]
id = "hegseth-uk"
title = "Hegseth, Ukrainian press"
query = "Гегсет AND lang:uk"
"#;

fn rss(language: Option<&str>, items: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut s = String::from(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>http://example.org/</link><description>d</description>"#,
    );
    if let Some(l) = language {
        s.push_str(&format!("<language>{l}</language>"));
    }
    for (guid, title, summary) in items {
        s.push_str(&format!(
            "<item><guid>{guid}</guid><title>{title}</title><description>{summary}</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s.into_bytes()
}

fn config(dir: &std::path::Path, feeds: &[(&str, String)]) -> Config {
    std::fs::create_dir_all(dir.join("rules")).expect("a rules directory");
    std::fs::write(dir.join("rules/lang.toml"), RULES).expect("write the rules");
    let mut text = String::from(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\ntimeout = \"2s\"\nhost_spacing = \"0s\"\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n",
    );
    for (name, url) in feeds {
        text.push_str(&format!("[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
    }
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write the config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn lang_matches_undeclared_feeds_by_detected_language_and_declared_wins() {
    let server = TestServer::start_on(PUBLIC_IP, 0);
    server.set(
        "/undeclared.rss",
        rss(
            None,
            &[
                (
                    "u1",
                    "Hegseth trifft Healey in Brüssel",
                    "Die Verteidigungsminister sprachen über Waffenlieferungen an die Ukraine.",
                ),
                (
                    "u2",
                    "Hegseth meets Healey in Brussels",
                    "The defence ministers discussed arms deliveries to Ukraine.",
                ),
                (
                    "u3",
                    "Гегсет зустрівся з Гілі у Брюсселі",
                    "Міністри оборони обговорили постачання зброї Україні.",
                ),
            ],
        ),
    );
    // Declared English; the German text does not make it German.
    server.set(
        "/declared.rss",
        rss(
            Some("en"),
            &[(
                "d1",
                "Hegseth trifft Healey in Brüssel",
                "Die Verteidigungsminister sprachen über Waffenlieferungen an die Ukraine.",
            )],
        ),
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = config(
        tmp.path(),
        &[
            ("undeclared", server.url("/undeclared.rss").to_string()),
            ("declared", server.url("/declared.rss").to_string()),
        ],
    );
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let fetcher = Fetcher::with_public_overrides(&config.fetch, "nw-test", vec![PUBLIC_IP])
        .expect("a fetcher");
    let p = Pipeline::open(&config, &rules)
        .await
        .expect("the pipeline opens")
        .with_fetcher(fetcher)
        .with_jitter(Jitter::Fixed(0.0));
    let s = p.cycle(at(0), Feeds::Due).await.expect("a cycle");
    assert_eq!((s.new_articles, s.matches), (4, 2), "{s}");
    let mut store = Store::open(&config.state_dir).expect("the store opens");
    let matches = crate::uncarried_matches(&mut store);
    // What a digest gets: the detected language, for the entry's HTML `lang`.
    let mut langs: Vec<Option<String>> = matches.iter().map(|m| m.lang.clone()).collect();
    langs.sort();
    assert_eq!(langs, [Some("de".to_string()), Some("uk".to_string())]);
    let mut got: Vec<(String, String)> = matches.into_iter().map(|m| (m.feed, m.title)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "undeclared".to_string(),
                "Hegseth trifft Healey in Brüssel".to_string()
            ),
            (
                "undeclared".to_string(),
                "Гегсет зустрівся з Гілі у Брюсселі".to_string()
            ),
        ]
    );
}
