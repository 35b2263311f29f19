//! Hostile input (issue 8): the corpus in `tests/fixtures/hostile/` (large cases generated here),
//! each with its expected outcome, run through `parse::parse_feed` and `digest::compose`; and
//! proptest-driven fuzz targets for the rule parser, feed ingestion and digest rendering.
//! The oracle for everything that reaches an email is `check_email`: it scans the HTML part and
//! allows only the tags, attributes and URL schemes of our email policy (`ALLOWED_*` below).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use newswatch::config::DigestConfig;
use newswatch::digest::{self, Entry};
use newswatch::digest_spec::{RuleSelection, WhenEmpty};
use newswatch::parse;
use newswatch::store::StoredHit;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestError, TestRng, TestRunner};

// ---- the email policy -------------------------------------------------------------------------

/// Every tag templates/digest.html may produce. Feed data never adds one: it is escaped.
/// Extend this list when the template grows; never with script, style, iframe, object, embed,
/// form, input, img (tracking pixels), link, base or svg.
const ALLOWED_TAGS: &[&str] = &[
    "html", "head", "meta", "title", "body", "table", "thead", "tbody", "tr", "th", "td", "span",
    "div", "p", "a", "br", "hr", "h1", "h2", "h3", "ul", "ol", "li", "b", "strong", "em", "i",
    "small", "mark", "style",
];
/// Attributes the template uses; no event handler (`on…`), no `src`, no `srcset`.
const ALLOWED_ATTRS: &[&str] = &[
    "lang",
    "charset",
    "name",
    "content",
    "style",
    "role",
    "width",
    "cellpadding",
    "cellspacing",
    "border",
    "align",
    "href",
    "class",
    "title",
];
/// `href` schemes a reader may meet.
const ALLOWED_SCHEMES: &[&str] = &["http", "https"];

/// What a local file read through an external entity would leak (`/etc/passwd`).
const PASSWD_MARKERS: &[&str] = &["root:x:0:0", "root:*:0:0", ":/bin/sh", "/usr/sbin/nologin"];

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Scans `html`: every `<` must open an allowed tag (or the doctype) whose attributes are all
/// allowed, whose `href` is an absolute http(s) URL without credentials and whose `style` holds
/// no URL or script. Text content therefore contains no markup at all.
fn check_html(html: &str) -> Result<(), String> {
    let at = |i: usize| -> String { html[i..].chars().take(60).collect() };
    // The template's one `<style>` (dark mode) is ours; a second one would be injected.
    if html.matches("<style").count() > 1 {
        return Err("more than one <style> element".into());
    }
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let start = i + off;
        let rest = &html[start + 1..];
        if rest.starts_with("!DOCTYPE html>") {
            i = start + "<!DOCTYPE html>".len();
            continue;
        }
        let name_start = start + 1 + usize::from(rest.starts_with('/'));
        let name_len = html[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(html.len() - name_start);
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        if !ALLOWED_TAGS.contains(&name.as_str()) {
            return Err(format!("disallowed markup {:?}", at(start)));
        }
        // Attributes, up to the closing `>`.
        let mut j = name_start + name_len;
        let bytes = html.as_bytes();
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            match bytes.get(j) {
                None => return Err(format!("unterminated tag {:?}", at(start))),
                Some(b'>') => {
                    j += 1;
                    break;
                }
                Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                    j += 2;
                    break;
                }
                Some(_) => {}
            }
            let an_start = j;
            while j < bytes.len() && !b" \t\r\n=>/".contains(&bytes[j]) {
                j += 1;
            }
            let attr = html[an_start..j].to_ascii_lowercase();
            if attr.is_empty() || !ALLOWED_ATTRS.contains(&attr.as_str()) {
                return Err(format!("disallowed attribute {attr:?} in {:?}", at(start)));
            }
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut value = String::new();
            if bytes.get(j) == Some(&b'=') {
                j += 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                let (vs, ve) = match bytes.get(j) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let end = html[j + 1..]
                            .find(q as char)
                            .map(|e| j + 1 + e)
                            .ok_or_else(|| format!("unterminated value in {:?}", at(start)))?;
                        (j + 1, end)
                    }
                    _ => {
                        let end = html[j..]
                            .find(|c: char| c.is_ascii_whitespace() || c == '>')
                            .map_or(html.len(), |e| j + e);
                        (j, end)
                    }
                };
                value = decode_entities(&html[vs..ve]);
                j = if bytes.get(ve).is_some_and(|b| *b == b'"' || *b == b'\'') {
                    ve + 1
                } else {
                    ve
                };
            }
            if attr == "href" {
                let url = url::Url::parse(&value)
                    .map_err(|e| format!("unparsable href {value:?}: {e}"))?;
                if !ALLOWED_SCHEMES.contains(&url.scheme()) || url.host_str().is_none() {
                    return Err(format!("href with a disallowed scheme: {value:?}"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(format!(
                        "href with credentials (look-alike bait): {value:?}"
                    ));
                }
            }
            if attr == "style" {
                let v = value.to_ascii_lowercase();
                if ["url(", "expression", "javascript", "@import", "behavior"]
                    .iter()
                    .any(|bad| v.contains(bad))
                {
                    return Err(format!("active style {value:?}"));
                }
            }
        }
        i = j;
    }
    Ok(())
}

/// Characters that must not survive into a subject or a plain-text line: C0/C1 controls other
/// than newline, bidi controls, zero-width and other invisible format characters.
fn invisible_or_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\r' && c != '\t')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2060}' | '\u{feff}' | '\u{061c}')
}

/// The oracle for one composed email: headers not injectable, subject and text clean, HTML
/// inside the policy, no local file content.
fn check_email(raw: &[u8], recipients: &[&str]) -> Result<(), String> {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or("the message does not parse")?;
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header/body separator")?;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    for injected in ["\r\nbcc:", "\r\ncc:", "\r\nx-injected:", "\r\nreply-to:"] {
        if head.contains(injected) {
            return Err(format!("header injected: {injected:?}"));
        }
    }
    let to: Vec<String> = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if to != recipients {
        return Err(format!("recipients changed: {to:?}"));
    }
    let subject = msg.subject().unwrap_or_default();
    if let Some(c) = subject.chars().find(|&c| invisible_or_control(c)) {
        return Err(format!("subject carries {c:?}: {subject:?}"));
    }
    let text = msg.body_text(0).ok_or("no text part")?;
    if let Some(c) = text.chars().find(|&c| invisible_or_control(c)) {
        return Err(format!("text part carries {c:?}"));
    }
    let html = msg.body_html(0).ok_or("no html part")?;
    check_html(&html)?;
    for m in PASSWD_MARKERS {
        if html.contains(m) || text.contains(m) || subject.contains(m) {
            return Err(format!("local file content in the email: {m:?}"));
        }
    }
    Ok(())
}

const TO: &str = "analyst@example.org";

fn digest_config() -> DigestConfig {
    DigestConfig {
        name: "desk".into(),
        to: vec![format!("Analyst <{TO}>")],
        subject_prefix: "[newswatch]".into(),
        title: Some("Hostile brief".into()),
        schedule: None,
        timezone: chrono_tz::UTC,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
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
                rule_id: "hegseth".into(),
                rule_title: "Hegseth".into(),
                feed: "hostile".into(),
                feed_title: feed_title.map(str::to_string),
                article_id: i as i64 + 1,
                hits: title_hits(&a.title, &terms),
                title: a.title.clone(),
                link: a.link.clone(),
                summary: a.summary.clone(),
                content: a.content.clone(),
                time: a.published.unwrap_or_else(now),
            }
        })
        .collect()
}

/// Bytes → articles → email, with the oracle. Returns the item count (or the parse error).
fn ingest_and_render(bytes: &[u8]) -> Result<Result<usize, String>, String> {
    let base = url::Url::parse("http://feeds.example.org/feed").expect("url");
    let parsed = match parse::parse_feed(bytes, &base) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.to_string())),
    };
    for a in &parsed.articles {
        if let Some(link) = &a.link {
            let ok = url::Url::parse(link).is_ok_and(|u| ALLOWED_SCHEMES.contains(&u.scheme()));
            if !ok {
                return Err(format!("article link outside http(s): {link:?}"));
            }
        }
    }
    let entries = entries_of(parsed.title.as_deref(), &parsed.articles);
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
    }
    Ok(Ok(parsed.articles.len()))
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

/// Peak resident memory since the last reset, in KiB (Linux; 0 elsewhere). Coarse: the test
/// binary's other threads count too, so bounds are generous.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

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
        ("truncated.rss", Items(1)),
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
        reset_peak_rss();
        let before = peak_rss_kib();
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| ingest_and_render(&bytes));
        let took = started.elapsed();
        let grew_mib = peak_rss_kib().saturating_sub(before) / 1024;
        let got = match result {
            Err(_) => {
                failures.push(format!("{name}: panicked"));
                continue;
            }
            Ok(Err(oracle)) => {
                failures.push(format!("{name}: {oracle}"));
                continue;
            }
            Ok(Ok(Ok(n))) => Items(n),
            Ok(Ok(Err(_))) => Error,
        };
        if got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
        // Bounds: generous for a debug build, tight enough to catch an entity bomb or a
        // quadratic walk (50 MB input: a few hundred MB peak at most).
        let input_mib = (bytes.len() / (1024 * 1024)) as u64;
        if took > Duration::from_secs(60) {
            failures.push(format!("{name}: took {took:?}"));
        }
        if grew_mib > 256 + 12 * input_mib {
            failures.push(format!("{name}: peak memory grew {grew_mib} MiB"));
        }
        eprintln!("{name:32} {got:?} in {took:.2?}, peak +{grew_mib} MiB");
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

#[test]
fn the_oracle_rejects_what_it_must() {
    // (html, accepted?)
    let cases: &[(&str, bool)] = &[
        (
            "<!DOCTYPE html><html><body><a href=\"https://example.org/\" style=\"color:#fff\">x</a></body></html>",
            true,
        ),
        ("<td>a &lt;script&gt; b</td>", true),
        ("<script>alert(1)</script>", false),
        ("<img src=\"http://tracker.example/p.gif\">", false),
        ("<a href=\"javascript:alert(1)\">x</a>", false),
        ("<a href=\"data:text/html,x\">x</a>", false),
        ("<a href=\"https://paypal.com@evil.example/\">x</a>", false),
        ("<div onclick=\"x()\">x</div>", false),
        (
            "<div style=\"background:url(http://t.example/)\">x</div>",
            false,
        ),
        ("<td>1 < 2</td>", false),
        ("<a href='https://example.org/' onmouseover=x>x</a>", false),
    ];
    for &(html, ok) in cases {
        assert_eq!(
            check_html(html).is_ok(),
            ok,
            "{html}: {:?}",
            check_html(html)
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
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), String>)
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
                    rule_id: "fuzz".into(),
                    rule_title,
                    feed: "fuzz".into(),
                    feed_title,
                    article_id: i as i64,
                    hits: title_hits(&title, &terms),
                    summary: terms.join(" "),
                    content: String::new(),
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
