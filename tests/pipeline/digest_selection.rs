//! What a digest shows, through the whole pipeline (HTTP, SQLite, the file transport): 40
//! distinct stories, each run by 5 outlets, go into a digest of `max_items = 40` (every story
//! shown, once, with its other outlets) and one of `max_items = 5` (the 5 first by the stated
//! order, the rest counted exactly with the next headlines linked); a preview of the same
//! pending matches renders what was sent (issue 15).

use newswatch::config::Config;
use newswatch::pipeline::Pipeline;
use newswatch::rules::RuleSet;

use crate::polling::{at, config, cycle, pipeline, servers, t0};
use crate::support::mail::messages;

const STORIES: usize = 40;
const OUTLETS: usize = 5;

const RULES: &str = r#"
[[rule]]
id = "envoys"
title = "Envoy talks"
query = "Hegseth"
"#;

/// Outlet `o`'s feed: every story, the headline worded the same (so the outlets cluster), the
/// story `s` published `s` half-hours before t0 (story 0 newest).
fn feed(o: usize) -> Vec<u8> {
    let mut x = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Outlet {o}</title>\
         <link>http://outlet{o}.example/</link><description>o</description>"
    );
    for s in 0..STORIES {
        let when =
            t0() - chrono::Duration::minutes(30 * s as i64) + chrono::Duration::minutes(o as i64);
        x.push_str(&format!(
            "<item><guid>o{o}-s{s}</guid><link>http://outlet{o}.example/story/{s}</link>\
             <title>Hegseth meets envoy{s} over harbour{s} plan{s}</title>\
             <description>Envoy{s} discussed the harbour{s} plan with Hegseth.</description>\
             <pubDate>{}</pubDate></item>",
            when.to_rfc2822()
        ));
    }
    x.push_str("</channel></rss>");
    x.into_bytes()
}

fn setup(dir: &std::path::Path, server: &crate::support::http::TestServer) -> Config {
    let feeds: Vec<(String, url::Url)> = (0..OUTLETS)
        .map(|o| {
            server.set(&format!("/o{o}.xml"), feed(o));
            (format!("outlet{o}"), server.url(&format!("/o{o}.xml")))
        })
        .collect();
    let feeds: Vec<(&str, String, &str)> = feeds
        .iter()
        .map(|(n, u)| (n.as_str(), u.to_string(), "1h"))
        .collect();
    let c = config(dir, "", &feeds);
    std::fs::write(dir.join("rules/test.toml"), RULES).expect("write the rules");
    let path = dir.join("newswatch.toml");
    let mut text = std::fs::read_to_string(&path).expect("read the config");
    text.push_str(
        "[[digest]]\nname = \"all\"\nto = [\"a@example.org\"]\nmax_items = 40\n\
         [[digest]]\nname = \"five\"\nto = [\"b@example.org\"]\nmax_items = 5\n",
    );
    std::fs::write(&path, text).expect("write the config");
    drop(c);
    Config::load(&path).expect("the config loads")
}

#[tokio::test]
async fn every_story_up_to_max_items_is_shown_once_and_the_rest_counted() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let config = setup(tmp.path(), &public);
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let p: Pipeline<'_> = pipeline(&config, &rules).await;
    // Previews of what is pending, before the send consumes it.
    let preview_all = p.preview_digest("all", None, at(0)).await.expect("preview");
    assert!(
        preview_all.text.contains("Nothing new"),
        "nothing polled yet"
    );
    let s = cycle(&p, at(0)).await;
    assert_eq!(s.matches, STORIES * OUTLETS, "{s:?}");
    // The cycle composed and sent both; render previews over the same window afterwards.
    let since = Some(std::time::Duration::from_secs(3600));
    let preview_all = p
        .preview_digest("all", since, at(0))
        .await
        .expect("preview");
    let preview_five = p
        .preview_digest("five", since, at(0))
        .await
        .expect("preview");
    let mut mails = messages(&tmp.path().join("outbox"));
    for m in &mut mails {
        m.text = m.text.replace("\r\n", "\n");
        m.html = m.html.replace("\r\n", "\n");
    }
    assert_eq!(mails.len(), 2, "two digests");
    let all = mails
        .iter()
        .find(|m| m.headers.contains("a@example.org"))
        .expect("the 40-item digest");
    let five = mails
        .iter()
        .find(|m| m.headers.contains("b@example.org"))
        .expect("the 5-item digest");

    // max_items = 40: all 40 stories, each once, each with its 4 other outlets.
    for s in 0..STORIES {
        let headline = format!("Hegseth meets envoy{s} over harbour{s} plan{s}");
        assert_eq!(
            all.text.matches(&headline).count(),
            1,
            "story {s}:\n{}",
            all.text
        );
    }
    assert_eq!(all.text.matches("\n* ").count(), STORIES, "{}", all.text);
    assert_eq!(
        all.text.matches("  also: ").count(),
        STORIES,
        "{}",
        all.text
    );
    assert!(
        !all.text.contains(" more"),
        "nothing left over: {}",
        all.text
    );
    assert!(all.subject.contains("200 articles"), "{}", all.subject);
    // The trend line, from the stored matches: all 200 recorded now.
    assert!(
        all.text
            .contains("== Envoy talks (200) ==\n200 in the last 24 h\n"),
        "{}",
        all.text
    );

    // max_items = 5: the 5 newest (all have 5 outlets), in order; 175 articles counted, the
    // next three stories linked.
    let shown: Vec<usize> = (0..STORIES)
        .filter(|s| {
            five.text
                .contains(&format!("\n* Hegseth meets envoy{s} over"))
        })
        .collect();
    assert_eq!(shown, [0, 1, 2, 3, 4], "{}", five.text);
    let pos = |s: usize| {
        five.text
            .find(&format!("envoy{s} over"))
            .unwrap_or(usize::MAX)
    };
    assert!((0..4).all(|s| pos(s) < pos(s + 1)), "{}", five.text);
    assert!(
        five.text
            .contains("and 175 more, among them:\n  - Hegseth meets envoy5 over"),
        "{}",
        five.text
    );
    for s in 5..8 {
        assert!(
            five.text.contains(&format!("/story/{s}\n")),
            "{}",
            five.text
        );
    }
    assert!(five.html.contains("and 175 more"), "{}", five.html);

    // The preview over the window the send covered renders what was sent.
    // The period line differs (the preview names its window): compare everything else.
    let text = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("Mon 2 Mar 2026"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let html = |h: &str| -> String {
        let cut = h.find(
            "<br><span class=\"nw-meta\" style=\"font-size:14px;color:#6b7280;\">Mon 2 Mar 2026",
        );
        let end = cut.and_then(|c| h[c..].find("</span>").map(|e| c + e));
        match (cut, end) {
            (Some(c), Some(e)) => format!("{}{}", &h[..c], &h[e..]),
            _ => h.to_string(),
        }
    };
    assert_eq!(text(&preview_all.text), text(&all.text));
    assert_eq!(text(&preview_five.text), text(&five.text));
    assert_eq!(html(&preview_five.html), html(&five.html));
    assert_eq!(preview_five.subject, five.subject);
}
