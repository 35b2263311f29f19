//! Hostile input (issue 8): the corpus in `tests/fixtures/hostile/` (large cases generated here),
//! each with its expected outcome, run through `parse::parse_feed` and `digest::compose`; and
//! proptest-driven fuzz targets for the rule parser, feed ingestion and digest rendering.
//! Everything that reaches an email passes `hostile_oracle::check_email`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use newswatch::config::DigestConfig;
use newswatch::digest::spec::{RuleSelection, WhenEmpty};
use newswatch::digest::{self, Entry};
use newswatch::model::StoredHit;
use newswatch::parse;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestError, TestRng, TestRunner};

use super::hostile_oracle::{ALLOWED_SCHEMES, check_email};

const TO: &str = "analyst@example.org";

fn digest_config() -> DigestConfig {
    DigestConfig {
        name: "desk".into(),
        to: vec![format!("Analyst <{TO}>")],
        channels: Vec::new(),
        subject_prefix: "[newswatch]".into(),
        title: Some("Hostile brief".into()),
        schedule: None,
        timezone: chrono_tz::UTC,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
        unsubscribe: Default::default(),
    }
}

/// Hits on every occurrence of `terms` in `title` (byte spans, like the matcher's).
fn title_hits(title: &str, terms: &[String]) -> Vec<StoredHit> {
    terms
        .iter()
        .filter(|t| !t.is_empty())
        .flat_map(|t| {
            title.match_indices(t.as_str()).map(|(start, m)| StoredHit {
                field: "title".into(),
                start,
                end: start + m.len(),
                text: m.to_string(),
            })
        })
        .collect()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

fn entries_of(feed_title: Option<&str>, articles: &[newswatch::model::Article]) -> Vec<Entry> {
    articles
        .iter()
        .take(200)
        .enumerate()
        .map(|(i, a)| {
            let terms: Vec<String> = a
                .title
                .split_whitespace()
                .take(2)
                .map(str::to_string)
                .collect();
            Entry {
                rules_hash: None,
                rule_id: "hegseth".into(),
                rule_title: "Hegseth".into(),
                order: (true, 0),
                alert: false,
                feed: "hostile".into(),
                feed_title: feed_title.map(str::to_string),
                article_id: i as i64 + 1,
                hits: title_hits(&a.title, &terms),
                title: a.title.clone(),
                link: a.link.clone(),
                summary: a.summary.as_str().into(),
                content: a.content.as_str().into(),
                full_text: false,
                lang: None,
                time: a.published.unwrap_or_else(now),
            }
        })
        .collect()
}

/// What ingesting one input produced: the bound on memory is a bound on these sizes.
#[derive(Debug, Clone, Copy)]
struct Ingested {
    items: usize,
    /// Bytes of text kept from the input: feed title and every article's title, link, summary
    /// and content (what an entity bomb or a runaway decoder would inflate).
    text_bytes: usize,
    /// The composed email (0 when there was nothing to send).
    email_bytes: usize,
}

/// Bytes → articles → email, with the oracle. Returns what was kept (or the parse error).
fn ingest_and_render(bytes: &[u8]) -> Result<Result<Ingested, String>, String> {
    let base = url::Url::parse("http://feeds.example.org/feed").expect("a valid base URL");
    let parsed = match parse::parse_feed(bytes, &base) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut text_bytes = parsed.title.as_ref().map_or(0, String::len);
    for a in &parsed.articles {
        text_bytes += a.title.len() + a.summary.len() + a.content.len();
        if let Some(link) = &a.link {
            text_bytes += link.len();
            let ok = url::Url::parse(link).is_ok_and(|u| ALLOWED_SCHEMES.contains(&u.scheme()));
            if !ok {
                return Err(format!("article link outside http(s): {link:?}"));
            }
        }
    }
    let entries = entries_of(parsed.title.as_deref(), &parsed.articles);
    let mut email_bytes = 0;
    if let Some(c) = digest::compose(
        1,
        &digest_config(),
        "newswatch <nw@example.org>",
        &entries,
        &[],
        now(),
    )
    .map_err(|e| format!("compose failed: {e}"))?
    {
        check_email(&c.raw, &[TO])?;
        email_bytes = c.raw.len();
    }
    Ok(Ok(Ingested {
        items: parsed.articles.len(),
        text_bytes,
        email_bytes,
    }))
}

// ---- the corpus ------------------------------------------------------------------------------

/// What parsing a corpus file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Parsed, with exactly this many items.
    Items(usize),
    /// Refused as "not a valid feed".
    Error,
}
use Expect::{Error, Items};

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

/// Generated at test time: too large (or too regular) to keep in the repository.
fn generated(name: &str) -> Vec<u8> {
    let head = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Gen</title><link>http://example.org/</link><description>d</description>";
    let tail = "</channel></rss>";
    match name {
        "gen:50mb-item" => {
            let mut s = String::from(head);
            s.push_str(
                "<item><title>Hegseth huge</title><link>http://example.org/a/1</link><description>",
            );
            let word = "Hegseth minerals deal backstop ";
            while s.len() < 50 * 1024 * 1024 {
                s.push_str(word);
            }
            s.push_str("</description></item>");
            s.push_str(tail);
            s.into_bytes()
        }
        "gen:10000-items" => {
            let mut s = String::from(head);
            for i in 0..10_000 {
                s.push_str(&format!(
                    "<item><title>Hegseth item {i}</title><link>http://example.org/a/{i}</link><guid>urn:g:{i}</guid></item>"
                ));
            }
            s.push_str(tail);
            s.into_bytes()
        }
        "gen:deep-xml-nesting" => {
            let depth = 100_000;
            let mut s = String::from(head);
            s.push_str("<item><title>Hegseth deep</title><link>http://example.org/a/1</link>");
            s.push_str(&"<x>".repeat(depth));
            s.push_str(&"</x>".repeat(depth));
            s.push_str("</item>");
            s.push_str(tail);
            s.into_bytes()
        }
        "gen:deep-html-nesting" => {
            let depth = 100_000;
            let mut s = String::from(head);
            s.push_str("<item><title>Hegseth deep html</title><link>http://example.org/a/1</link><description>");
            s.push_str(&"&lt;div&gt;".repeat(depth));
            s.push_str("text");
            s.push_str(&"&lt;/div&gt;".repeat(depth));
            s.push_str("</description></item>");
            s.push_str(tail);
            s.into_bytes()
        }
        other => panic!("no generator {other}"),
    }
}

/// Text kept from an input may outgrow it only by re-encoding (one cp1252 byte is up to three
/// UTF-8 bytes) plus a constant; an expanded entity bomb is orders of magnitude past this.
const MAX_TEXT_GROWTH: usize = 3;
const MAX_TEXT_SLACK: usize = 64 << 10;
/// A digest of at most `max_items` (50) stories with their summaries cut short: the 10,000-item
/// feed makes a 37 KB email, the 50 MB item a 5 KB one.
const MAX_EMAIL_BYTES: usize = 256 << 10;

#[test]
fn the_hostile_corpus_parses_as_expected_and_nothing_active_reaches_the_email() {
    // (file, expected outcome). Every Items case is also rendered and checked by the oracle.
    let table: &[(&str, Expect)] = &[
        ("billion-laughs.rss", Items(1)),
        ("xxe-file.rss", Items(1)),
        ("xxe-parameter.rss", Items(1)),
        ("crlf-header-injection.rss", Items(1)),
        ("ansi-escapes.rss", Items(1)),
        ("nul-and-bidi.rss", Items(3)),
        ("scripts.rss", Items(3)),
        ("event-handlers.atom", Items(2)),
        ("dangerous-links.rss", Items(12)),
        ("homoglyphs.rss", Items(3)),
        ("dates.rss", Items(6)),
        ("duplicate-guids.rss", Items(3)),
        ("declared-utf8-is-cp1252.rss", Items(1)),
        ("declared-latin1-is-utf8.rss", Items(1)),
        ("utf16le-bom.rss", Items(1)),
        ("utf16be-no-declaration.rss", Items(1)),
        ("hostile.json", Items(3)),
        ("not-a-feed.html", Error),
        ("truncated.rss", Error),
        ("binary-garbage.bin", Error),
        ("empty.rss", Error),
        ("gen:50mb-item", Items(1)),
        ("gen:10000-items", Items(10_000)),
        ("gen:deep-xml-nesting", Items(1)),
        ("gen:deep-html-nesting", Items(1)),
    ];
    let mut failures = Vec::new();
    for &(name, expect) in table {
        let bytes = if name.starts_with("gen:") {
            generated(name)
        } else {
            std::fs::read(hostile_dir().join(name)).expect("read corpus file")
        };
        let result = std::panic::catch_unwind(|| ingest_and_render(&bytes));
        let ingested = match result {
            Err(_) => {
                failures.push(format!("{name}: panicked"));
                continue;
            }
            Ok(Err(oracle)) => {
                failures.push(format!("{name}: {oracle}"));
                continue;
            }
            Ok(Ok(Ok(ingested))) => Some(ingested),
            Ok(Ok(Err(_))) => None,
        };
        let got = ingested.map_or(Error, |i| Items(i.items));
        if got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
        // Bounds on what was kept, not on the process: an entity bomb or a decoder that
        // inflates its input shows in the text kept; an email grows only with `max_items`.
        if let Some(i) = ingested {
            if i.text_bytes > MAX_TEXT_GROWTH * bytes.len() + MAX_TEXT_SLACK {
                failures.push(format!(
                    "{name}: kept {} bytes of text from {} bytes",
                    i.text_bytes,
                    bytes.len()
                ));
            }
            if i.email_bytes > MAX_EMAIL_BYTES {
                failures.push(format!("{name}: a {} byte email", i.email_bytes));
            }
        }
        eprintln!("{name:32} {got:?} {ingested:?} from {} bytes", bytes.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The corpus directory and the table agree: a new fixture must get a line.
#[test]
fn every_corpus_file_has_a_line_in_the_table() {
    let src = std::fs::read_to_string(file!()).expect("read this test file");
    for entry in std::fs::read_dir(hostile_dir()).expect("corpus dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            src.contains(&format!("(\"{name}\", ")),
            "{name} has no expected outcome in the table"
        );
    }
}

// ---- fuzz targets (proptest on stable; `scripts/fuzz` runs them longer) ------------------------

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on values of `strategy`: `NEWSWATCH_FUZZ_CASES` cases per round (64 by default),
/// rounds until `NEWSWATCH_FUZZ_SECS` have passed (one round by default), each round seeded from
/// `NEWSWATCH_FUZZ_SEED` + round so any failure is reproducible.
pub fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), String>)
where
    S::Value: std::fmt::Debug,
{
    let cases = u32::try_from(env_num("NEWSWATCH_FUZZ_CASES", 64)).unwrap_or(64);
    let secs = env_num("NEWSWATCH_FUZZ_SECS", 0);
    let seed = env_num("NEWSWATCH_FUZZ_SEED", 0x00f0_2026);
    let started = Instant::now();
    let mut round = 0u64;
    loop {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(seed + round).to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
        let config = PtConfig {
            cases,
            failure_persistence: None,
            ..PtConfig::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&strategy, |v| {
            test(v).map_err(proptest::test_runner::TestCaseError::fail)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, value)) => panic!(
                "fuzz {name}: seed {} failed: {reason}\nminimal input: {value:#?}",
                seed + round
            ),
            Err(TestError::Abort(reason)) => panic!("fuzz {name}: aborted: {reason}"),
        }
        round += 1;
        if started.elapsed().as_secs() >= secs {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {} cases in {} rounds, {:.1?}, no failure (seed {seed:#x})",
        u64::from(cases) * round,
        round,
        started.elapsed()
    );
}

/// Strings that mix arbitrary Unicode with the fragments attackers use.
fn hostile_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("\r\nBcc: victim@example.net\r\n".to_string()),
        Just("\u{202e}".to_string()),
        Just("\u{200b}\u{feff}\u{2066}".to_string()),
        Just("\u{1b}[31m\u{1b}]0;t\u{7}".to_string()),
        Just("\0".to_string()),
        Just("javascript:alert(1)".to_string()),
        Just("\"'><".to_string()),
        Just("&amp;&lt;&#0;&#x202e;".to_string()),
        Just("]]><![CDATA[".to_string()),
        Just(" onload=alert(1) ".to_string()),
        Just("Hegseth".to_string()),
        Just("{{ 7*7 }}{% raw %}".to_string()),
        "[a-zA-Z ]{0,12}",
        any::<String>(),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(fragment, 0..6).prop_map(|v| v.concat())
}

fn hostile_link() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("http"),
        Just("https"),
        Just("javascript"),
        Just("data"),
        Just("JaVaScRiPt"),
        Just("vbscript"),
        Just("file"),
        Just("ftp"),
    ];
    let userinfo = prop_oneof![Just(""), Just("paypal.com@"), Just("u:p@"), Just("\"@")];
    prop_oneof![
        hostile_text(),
        (scheme, userinfo, "[a-z0-9.\\-]{1,20}", hostile_text())
            .prop_map(|(s, u, h, p)| format!("{s}://{u}{h}/{p}")),
    ]
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Target: digest rendering. Arbitrary entries → `digest::compose` → the oracle.
#[test]
fn fuzz_digest_rendering() {
    let entry = (
        hostile_text(),
        prop::option::of(hostile_link()),
        prop::option::of(hostile_text()),
        hostile_text(),
        prop::collection::vec(hostile_text(), 0..3),
        -100_000_000_000i64..100_000_000_000i64,
    );
    fuzz("digest", prop::collection::vec(entry, 1..5), |entries| {
        let entries: Vec<Entry> = entries
            .into_iter()
            .enumerate()
            .map(
                |(i, (title, link, feed_title, rule_title, terms, secs))| Entry {
                    rules_hash: None,
                    rule_id: "fuzz".into(),
                    rule_title,
                    order: (true, 0),
                    alert: false,
                    feed: "fuzz".into(),
                    feed_title,
                    article_id: i as i64,
                    hits: title_hits(&title, &terms),
                    summary: terms.join(" ").into(),
                    content: "".into(),
                    full_text: false,
                    lang: None,
                    title,
                    link,
                    time: DateTime::from_timestamp(secs, 0).unwrap_or_else(now),
                },
            )
            .collect();
        let composed = digest::compose(
            7,
            &digest_config(),
            "newswatch <nw@example.org>",
            &entries,
            &[],
            now(),
        )
        .map_err(|e| format!("compose failed: {e}"))?
        .ok_or("nothing composed from entries")?;
        check_email(&composed.raw, &[TO])
    });
}

/// Target: feed ingestion. Bytes (arbitrary, or an RSS/Atom/JSON document carrying hostile
/// fields, raw or escaped, or a sample feed with bytes flipped) → `parse_feed` → render → oracle.
#[test]
fn fuzz_feed_ingestion() {
    let sample = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds/northgate-chronicle.rss"),
    )
    .expect("read a sample feed");
    let len = sample.len();
    let mutated = prop::collection::vec((0..len, any::<u8>()), 1..16).prop_map(move |edits| {
        let mut b = sample.clone();
        for (at, byte) in edits {
            b[at] = byte;
        }
        b
    });
    let documents = (0..3u8, hostile_text(), hostile_link(), hostile_text(), any::<bool>())
        .prop_map(|(kind, title, link, body, escape)| {
            let (t, l, d) = if escape {
                (xml_escape(&title), xml_escape(&link), xml_escape(&body))
            } else {
                (title.clone(), link.clone(), body.clone())
            };
            match kind {
                0 => format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{t}</title><item><title>{t}</title><link>{l}</link><description>{d}</description><guid>{l}</guid></item></channel></rss>"),
                1 => format!("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>{t}</title><entry><id>{l}</id><title type=\"html\">{t}</title><link href=\"{l}\"/><content type=\"html\">{d}</content></entry></feed>"),
                _ => serde_json::json!({
                    "version": "https://jsonfeed.org/version/1.1",
                    "title": title,
                    "items": [{"id": link, "url": link, "title": title, "content_html": body}]
                })
                .to_string(),
            }
            .into_bytes()
        });
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        mutated,
        documents,
    ];
    fuzz("feed", bytes, |b| ingest_and_render(&b).map(|_| ()));
}

/// Target: the rule parser. Rule files built from TOML fragments and query-language tokens
/// (and arbitrary text) → `RuleSet::load` must answer Ok or Diagnostics, and a loaded set must
/// match an article without panicking.
#[test]
fn fuzz_rule_parser() {
    let token = prop_oneof![
        Just("Hegseth"),
        Just("\"minerals deal\""),
        Just("AND"),
        Just("OR"),
        Just("NOT"),
        Just("("),
        Just(")"),
        Just("\""),
        Just("NEAR/3"),
        Just("title:"),
        Just("*"),
        Just("@list"),
        Just("~"),
        Just("\\"),
        Just("Зеленський"),
    ];
    let query = prop_oneof![
        prop::collection::vec(token, 0..12).prop_map(|t| t.join(" ")),
        hostile_text(),
    ];
    let rule = (
        "[a-z\\-]{0,8}",
        query,
        prop::option::of(prop_oneof![Just("digest"), Just("alert"), Just("bogus")]),
    )
        .prop_map(|(id, q, prio)| {
            let q = q.replace('\'', "");
            let mut s = format!("[[rule]]\nid = \"{id}\"\nquery = '''{q}'''\n");
            if let Some(p) = prio {
                s.push_str(&format!("priority = \"{p}\"\n"));
            }
            s
        });
    let file = prop_oneof![
        prop::collection::vec(rule, 0..4).prop_map(|r| r.concat()),
        hostile_text(),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fuzz.toml");
    let article = newswatch::model::Article {
        key: "k".into(),
        title: "Hegseth and Healey discuss the minerals deal".into(),
        summary: "Зеленський".into(),
        ..Default::default()
    };
    fuzz("rules", file, |text| {
        std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        if let Ok(set) = newswatch::rules::RuleSet::load(std::slice::from_ref(&path)) {
            let meta = newswatch::model::FeedMeta::default();
            let _ = set.match_article(&article, &meta, now());
        }
        Ok(())
    });
}

/// Issue 16 item 13: a headline spelling a name with Cyrillic look-alikes (`Неgseth`: Cyrillic
/// `Н` and `е`) matches a rule for the Latin name, as the matcher folds a word that mixes Latin
/// with Cyrillic look-alikes to Latin; an all-Cyrillic word stays Cyrillic.
#[test]
fn homoglyph_headlines_match_the_latin_name() {
    let bytes = std::fs::read(hostile_dir().join("homoglyphs.rss")).expect("read corpus file");
    let base = url::Url::parse("http://example.org/feed").expect("a valid URL");
    let feed = newswatch::parse::parse_feed(&bytes, &base).expect("the corpus file parses");
    let rules = "[[rule]]\nid = \"hegseth\"\nquery = \"title:Hegseth\"\n\
                 [[rule]]\nid = \"net\"\nquery = \"title:HET\"\n";
    let set = newswatch::rules::RuleSet::from_sources(&[("r.toml".into(), rules.into())])
        .expect("the rules load");
    let meta = newswatch::model::FeedMeta::default();
    let matched: Vec<Vec<String>> = feed
        .articles
        .iter()
        .map(|a| {
            set.match_article(a, &meta, now())
                .into_iter()
                .map(|m| set.rules()[m.rule].id.clone())
                .collect()
        })
        .collect();
    assert_eq!(
        feed.articles[0].title,
        "\u{41d}\u{435}gseth Cyrillic homoglyph headline"
    );
    assert_eq!(matched[0], ["hegseth"], "{matched:?}");
    let cyrillic = newswatch::model::Article {
        key: "c".into(),
        title: "\u{41d}\u{415}\u{422} news".into(),
        ..Default::default()
    };
    assert!(set.match_article(&cyrillic, &meta, now()).is_empty());
}
