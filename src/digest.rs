//! The digest email: matches grouped by rule, rendered from the embedded templates into a
//! multipart/alternative message (plain text + HTML) with stable headers.
//! Pure: no IO, no clock (`now` is an argument). Feed text is untrusted: it is escaped in HTML,
//! stripped of control characters everywhere, and only http/https links are emitted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use crate::config::DigestConfig;

const HTML_TEMPLATE: &str = include_str!("../templates/digest.html");
const TEXT_TEMPLATE: &str = include_str!("../templates/digest.txt");

/// Subjects longer than this list fewer rules and end in "…" (RFC 5322 asks for short lines).
const MAX_SUBJECT_CHARS: usize = 160;

/// One matched article under one rule, as the digest shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The matching rule's title (the group heading).
    pub rule_title: String,
    /// Configured feed name.
    pub feed: String,
    /// The feed's own title, when it declares one.
    pub feed_title: Option<String>,
    /// Identifies the article across groups, so the subject counts articles, not matches.
    pub article_id: i64,
    pub title: String,
    pub link: Option<String>,
    /// Published time, else the time we first saw it.
    pub time: DateTime<Utc>,
    /// The text of every hit, in order (duplicates allowed; the digest removes them).
    pub terms: Vec<String>,
}

/// A composed digest, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Composed {
    pub message_id: String,
    pub subject: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The whole RFC 5322 message as it goes on the wire.
    pub raw: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

#[derive(Debug, Serialize)]
struct Group {
    title: String,
    count: usize,
    items: Vec<Item>,
}

#[derive(Debug, Serialize)]
struct Item {
    headline: String,
    link: Option<String>,
    /// The link escaped for an attribute. minijinja's own escaping also turns `/` into `&#x2f;`,
    /// which is valid but makes the HTML unreadable; `&<>"'` are all an attribute needs.
    href: Option<minijinja::Value>,
    source: String,
    time: String,
    terms: String,
}

/// Line endings as CRLF in one pass (a `\n` already after `\r` is kept). lettre makes a body
/// CRLF by inserting each `\r` in place, which is quadratic: 26 s of CPU for the 14 MB digest of
/// the 10,000-rule benchmark. Given CRLF it has nothing to insert.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        let line = &rest[..i];
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push_str("\r\n");
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out
}

/// Composes digest `digest_id` for `cfg` from `entries`. `None` when there is nothing to send.
pub fn compose(
    digest_id: i64,
    cfg: &DigestConfig,
    from: &str,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> Result<Option<Composed>, DigestError> {
    if entries.is_empty() {
        return Ok(None);
    }
    let groups = group(entries);
    let articles = {
        let mut ids: Vec<i64> = entries.iter().map(|e| e.article_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let subject = subject(&cfg.subject_prefix, articles, &groups);
    let heading = format!(
        "{articles} new {} matched your rules",
        plural(articles, "article", "articles")
    );
    let ctx = minijinja::context! {
        subject => &subject,
        heading => heading,
        groups => &groups,
        digest_name => clean(&cfg.name),
        generated => now.format("%a %d %b %Y %H:%M UTC").to_string(),
    };
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    let render = |name: &'static str, source: &'static str| {
        let tmpl_err = |source| DigestError::Template { name, source };
        env.template_from_named_str(name, source)
            .map_err(tmpl_err)?
            .render(&ctx)
            .map_err(tmpl_err)
    };
    // The file name decides auto-escaping: `.html` escapes every interpolated value.
    let html = render("digest.html", HTML_TEMPLATE)?;
    let text = render("digest.txt", TEXT_TEMPLATE)?;

    let sender = parse_mailbox(from)?;
    let domain = sender.email.domain().to_string();
    let slug = slug(&cfg.name);
    // Derived from the digest id (and its creation time, so a rebuilt database never reuses one):
    // a retried send carries the same Message-ID and receivers can drop duplicates.
    let message_id = format!("<digest-{digest_id}.{slug}.{}@{domain}>", now.timestamp());
    let mut builder = Message::builder()
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(now))
        .from(sender)
        .subject(subject.clone())
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            format!("newswatch digest {slug} <{slug}.newswatch.{domain}>"),
        ));
    for to in &cfg.to {
        builder = builder.to(parse_mailbox(to)?);
    }
    let message = builder.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(crlf(&text)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(crlf(&html)),
            ),
    )?;
    Ok(Some(Composed {
        message_id,
        subject,
        sender: from.to_string(),
        recipients: cfg.to.clone(),
        raw: message.formatted(),
    }))
}

/// Groups entries by rule title: largest group first, then by title; inside a group newest first.
fn group(entries: &[Entry]) -> Vec<Group> {
    let mut by_rule: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_rule.entry(clean(&e.rule_title)).or_default().push(e);
    }
    let mut groups: Vec<Group> = by_rule
        .into_iter()
        .map(|(title, mut es)| {
            es.sort_by(|a, b| b.time.cmp(&a.time).then(a.article_id.cmp(&b.article_id)));
            es.dedup_by_key(|e| e.article_id);
            Group {
                title,
                count: es.len(),
                items: es.into_iter().map(item).collect(),
            }
        })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.title.cmp(&b.title)));
    groups
}

fn item(e: &Entry) -> Item {
    let source = match e.feed_title.as_deref().map(clean) {
        Some(t) if !t.is_empty() && t != e.feed => t,
        _ => clean(&e.feed),
    };
    let mut terms: Vec<String> = Vec::new();
    for t in &e.terms {
        let t = clean(t);
        if !t.is_empty() && !terms.iter().any(|x| x.to_lowercase() == t.to_lowercase()) {
            terms.push(t);
        }
    }
    let headline = clean(&e.title);
    let link = e.link.as_deref().and_then(safe_link);
    Item {
        headline: if headline.is_empty() {
            "(untitled)".into()
        } else {
            headline
        },
        href: link
            .as_deref()
            .map(|l| minijinja::Value::from_safe_string(escape_attr(l))),
        link,
        source,
        time: e.time.format("%a %d %b %Y %H:%M UTC").to_string(),
        terms: terms.join(", "),
    }
}

/// `[newswatch] 12 articles: Minerals deal (5), Healey–Hegseth talks (3)`.
fn subject(prefix: &str, articles: usize, groups: &[Group]) -> String {
    let prefix = clean(prefix);
    let mut s = format!(
        "{prefix}{}{articles} {}",
        if prefix.is_empty() { "" } else { " " },
        plural(articles, "article", "articles")
    );
    for (i, g) in groups.iter().enumerate() {
        let part = format!(
            "{}{} ({})",
            if i == 0 { ": " } else { ", " },
            g.title,
            g.count
        );
        if s.chars().count() + part.chars().count() > MAX_SUBJECT_CHARS {
            s.push_str(if i == 0 { ": …" } else { ", …" });
            break;
        }
        s.push_str(&part);
    }
    s
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Feed-derived text for a header or a line: control characters (CR/LF included) become spaces,
/// runs of whitespace collapse, so no feed can inject a header or break the layout.
pub fn clean(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Only absolute http/https links leave the digest; `javascript:`, `data:` and the rest are dropped.
pub fn safe_link(link: &str) -> Option<String> {
    let url = url::Url::parse(link.trim()).ok()?;
    matches!(url.scheme(), "http" | "https")
        .then(|| url.host_str().is_some())
        .filter(|&has_host| has_host)
        .map(|_| url.to_string())
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "digest".into() } else { s }
}

fn parse_mailbox(s: &str) -> Result<Mailbox, DigestError> {
    s.parse()
        .map_err(|e: lettre::address::AddressError| DigestError::Address {
            address: s.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn crlf_line_endings() {
        // (input, output)
        let cases = [
            ("", ""),
            ("a", "a"),
            ("a\nb", "a\r\nb"),
            ("a\r\nb\n", "a\r\nb\r\n"),
            ("\n\n", "\r\n\r\n"),
            ("x\r", "x\r"),
            ("é\nü\r\n", "é\r\nü\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(crlf(input), want, "{input:?}");
        }
    }

    fn cfg() -> DigestConfig {
        DigestConfig {
            name: "Main desk".into(),
            to: vec!["Analyst <analyst@example.org>".into()],
            subject_prefix: "[newswatch]".into(),
        }
    }

    fn entry(id: i64, rule: &str, title: &str, link: Option<&str>, terms: &[&str]) -> Entry {
        Entry {
            rule_title: rule.into(),
            feed: "kyiv-ledger".into(),
            feed_title: Some("Kyiv Ledger".into()),
            article_id: id,
            title: title.into(),
            link: link.map(str::to_string),
            time: now(),
            terms: terms.iter().map(|t| (*t).to_string()).collect(),
        }
    }

    struct Parts {
        subject: String,
        text: String,
        html: String,
        raw: String,
    }

    fn render(entries: &[Entry]) -> Parts {
        let c = compose(7, &cfg(), "newswatch <nw@example.org>", entries, now())
            .expect("compose")
            .expect("some digest");
        let msg = mail_parser::MessageParser::default()
            .parse(&c.raw)
            .expect("parsable MIME");
        assert_eq!(msg.subject(), Some(c.subject.as_str()));
        Parts {
            subject: c.subject,
            text: msg.body_text(0).expect("text part").into_owned(),
            html: msg.body_html(0).expect("html part").into_owned(),
            raw: String::from_utf8_lossy(&c.raw).into_owned(),
        }
    }

    #[test]
    fn nothing_matched_means_no_email() {
        assert!(
            compose(1, &cfg(), "nw@example.org", &[], now())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn both_parts_list_every_item_grouped_by_rule() {
        let entries = [
            entry(
                1,
                "Minerals deal",
                "Kyiv settles minerals text",
                Some("https://k.example/1"),
                &["minerals deal"],
            ),
            entry(
                2,
                "Minerals deal",
                "Fund for reconstruction",
                Some("https://k.example/2"),
                &["Minerals Deal", "minerals deal"],
            ),
            entry(
                3,
                "Healey–Hegseth talks",
                "Healey meets Hegseth",
                Some("https://k.example/3"),
                &["Healey", "Hegseth"],
            ),
            entry(
                1,
                "Healey–Hegseth talks",
                "Kyiv settles minerals text",
                Some("https://k.example/1"),
                &["Hegseth"],
            ),
        ];
        let p = render(&entries);
        assert_eq!(
            p.subject,
            "[newswatch] 3 articles: Healey–Hegseth talks (2), Minerals deal (2)"
        );
        for part in [&p.text, &p.html] {
            for needle in [
                "Kyiv settles minerals text",
                "Fund for reconstruction",
                "Healey meets Hegseth",
                "Kyiv Ledger",
                "https://k.example/3",
                "matched: Healey, Hegseth",
                "matched: Minerals Deal",
            ] {
                assert!(part.contains(needle), "{needle:?} missing from:\n{part}");
            }
            let healey = part.find("Healey–Hegseth talks").expect("group heading");
            let minerals = part.find("Minerals deal").expect("group heading");
            assert!(healey < minerals, "ties sort by title");
        }
        assert!(p.html.contains("max-width:640px"));
        assert!(!p.html.contains("<script") && !p.html.contains("<img"));
        for header in [
            "Auto-Submitted: auto-generated",
            "List-Id: newswatch digest main-desk <main-desk.newswatch.example.org>",
            "Message-ID: <digest-7.main-desk.1741608000@example.org>",
            "multipart/alternative",
            "To: Analyst <analyst@example.org>",
        ] {
            assert!(
                p.raw.contains(header),
                "{header:?} missing from:\n{}",
                p.raw
            );
        }
    }

    /// The plain-text layout, pinned in full: a change here is a visible change to every reader.
    #[test]
    fn text_part_layout() {
        let mut late = entry(2, "Minerals deal", "Fund agreed", None, &["minerals deal"]);
        late.time = now() + chrono::Duration::hours(1);
        late.feed_title = None;
        let entries = [
            entry(
                1,
                "Minerals deal",
                "Kyiv settles text",
                Some("https://k.example/1"),
                &["Minerals deal"],
            ),
            late,
        ];
        let p = render(&entries);
        let expected = "\
2 new articles matched your rules

== Minerals deal (2) ==

* Fund agreed
  kyiv-ledger · Mon 10 Mar 2025 13:00 UTC
  matched: minerals deal

* Kyiv settles text
  Kyiv Ledger · Mon 10 Mar 2025 12:00 UTC
  https://k.example/1
  matched: Minerals deal

-- 
Sent by newswatch, digest \"Main desk\", Mon 10 Mar 2025 12:00 UTC.
This message was generated automatically; replies are not read.
";
        assert_eq!(p.text.replace("\r\n", "\n"), expected);
    }

    #[test]
    fn feed_text_is_escaped_in_html() {
        let evil = "<script>alert(1)</script> & <b>bold</b>";
        let mut e = entry(
            1,
            "Rule <i>x</i>",
            evil,
            Some("https://k.example/?a=1&b=\"2\""),
            &["<b>"],
        );
        e.feed_title = Some("Feed <img src=x onerror=alert(1)>".into());
        let p = render(&[e]);
        assert!(!p.html.contains("<script>"), "{}", p.html);
        assert!(!p.html.contains("<img"), "{}", p.html);
        assert!(
            !p.html.contains("<b>") && !p.html.contains("<i>"),
            "{}",
            p.html
        );
        assert!(p.html.contains("&lt;script&gt;"), "{}", p.html);
        assert!(
            !p.html.contains("b=\"2\""),
            "the href must not break out of its quotes"
        );
        // The plain part shows the text as written.
        assert!(p.text.contains(evil), "{}", p.text);
    }

    #[test]
    fn link_policy() {
        // (link, emitted)
        let cases = [
            ("https://k.example/a", Some("https://k.example/a")),
            ("http://k.example/a", Some("http://k.example/a")),
            ("  https://k.example/b  ", Some("https://k.example/b")),
            ("javascript:alert(1)", None),
            ("JaVaScRiPt:alert(1)", None),
            ("data:text/html,<script>alert(1)</script>", None),
            ("file:///etc/passwd", None),
            ("mailto:a@example.org", None),
            ("/relative/path", None),
            ("", None),
        ];
        for (link, want) in cases {
            assert_eq!(safe_link(link).as_deref(), want, "{link:?}");
        }
        let p = render(&[entry(
            1,
            "R",
            "Bad link item",
            Some("javascript:alert(1)"),
            &["x"],
        )]);
        assert!(p.text.contains("Bad link item") && p.html.contains("Bad link item"));
        assert!(!p.html.contains("javascript") && !p.text.contains("javascript"));
        assert!(!p.html.contains("href"), "no anchor without a safe link");
    }

    #[test]
    fn subject_and_lines_lose_control_characters() {
        // (input, cleaned)
        let cases = [
            (
                "Minerals\r\nBcc: victim@example.org",
                "Minerals Bcc: victim@example.org",
            ),
            ("tab\tand\u{7}bell", "tab and bell"),
            ("  spaced   out  ", "spaced out"),
            ("line\u{2028}sep\u{85}nel", "line sep nel"),
            ("Healey–Hegseth", "Healey–Hegseth"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
        let p = render(&[entry(
            1,
            "Evil\r\nBcc: x@example.org",
            "T\r\nX-Injected: 1",
            None,
            &["t"],
        )]);
        assert_eq!(
            p.subject,
            "[newswatch] 1 article: Evil Bcc: x@example.org (1)"
        );
        assert!(
            !p.raw.contains("\nBcc:") && !p.raw.contains("\nX-Injected"),
            "{}",
            p.raw
        );
    }

    #[test]
    fn long_subjects_are_cut_at_a_rule_boundary() {
        let entries: Vec<Entry> = (0..30)
            .map(|i| {
                entry(
                    i,
                    &format!("A rather long rule title number {i:02}"),
                    "t",
                    None,
                    &["t"],
                )
            })
            .collect();
        let p = render(&entries);
        assert!(
            p.subject
                .starts_with("[newswatch] 30 articles: A rather long rule title number 00 (1)")
        );
        assert!(p.subject.ends_with(", …"), "{}", p.subject);
        assert!(p.subject.chars().count() <= MAX_SUBJECT_CHARS + 3);
    }
}
