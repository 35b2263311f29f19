//! Digest rendering tests: snapshots of the built-in templates, grouping and clustering, snippets,
//! hostile feed text, the size cut, subjects, and the load plan.

use super::message::crlf;
use super::render::{MAX_SUBJECT_CHARS, thousands};
use super::snippet::{Segment, snippet};
use super::*;
use crate::digest::spec::RuleSelection;

fn now() -> DateTime<Utc> {
    at("2025-03-10T12:00:00Z")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
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
        channels: Vec::new(),
        subject_prefix: "[newswatch]".into(),
        title: Some("Morning brief".into()),
        schedule: None,
        timezone: chrono_tz::Europe::London,
        rules: RuleSelection::default(),
        max_items: 50,
        when_empty: WhenEmpty::Skip,
        templates: None,
        unsubscribe: crate::config::Unsubscribe::default(),
    }
}

/// An entry whose hits are every occurrence of `terms` in the title and summary.
fn entry(
    id: i64,
    rule: &str,
    title: &str,
    link: Option<&str>,
    summary: &str,
    terms: &[&str],
) -> Entry {
    let mut hits = Vec::new();
    for (field, text) in [("title", title), ("summary", summary)] {
        for t in terms {
            for (start, m) in text.match_indices(t) {
                hits.push(StoredHit {
                    field: field.into(),
                    start,
                    end: start + m.len(),
                    text: m.into(),
                });
            }
        }
    }
    Entry {
        rules_hash: None,
        rule_id: rule.to_lowercase().replace(' ', "-"),
        rule_title: rule.into(),
        order: (true, 0),
        alert: false,
        feed: "kyiv-ledger".into(),
        feed_title: Some("Kyiv Ledger".into()),
        article_id: id,
        title: title.into(),
        link: link.map(str::to_string),
        summary: summary.into(),
        content: "".into(),
        full_text: false,
        lang: None,
        time: now(),
        hits,
    }
}

struct Parts {
    subject: String,
    text: String,
    html: String,
    raw: String,
}

fn render_with_cfg(c: &DigestConfig, entries: &[Entry], notices: &[String]) -> Parts {
    let composed = compose(7, c, "newswatch <nw@example.org>", entries, notices, now())
        .expect("compose")
        .expect("some digest");
    let msg = mail_parser::MessageParser::default()
        .parse(&composed.raw)
        .expect("parsable MIME");
    assert_eq!(msg.subject(), Some(composed.subject.as_str()));
    Parts {
        subject: composed.subject,
        text: msg.body_text(0).expect("text part").replace("\r\n", "\n"),
        html: msg.body_html(0).expect("html part").into_owned(),
        raw: String::from_utf8_lossy(&composed.raw).into_owned(),
    }
}

fn render(entries: &[Entry]) -> Parts {
    render_with_cfg(&cfg(), entries, &[])
}

/// The entries of the snapshot digest: two rules, one story carried by two outlets.
fn sample() -> Vec<Entry> {
    let mut wire = entry(
        2,
        "Minerals deal",
        "Kyiv and Washington agree terms of minerals deal",
        Some("https://atlantic-wire.example/2?utm_source=rss"),
        "Officials in Kyiv said the minerals deal text was agreed late on Tuesday.",
        &["minerals deal"],
    );
    wire.feed = "atlantic-wire".into();
    wire.feed_title = Some("Atlantic Wire".into());
    wire.time = now() + chrono::Duration::minutes(30);
    let mut healey = entry(
        3,
        "Healey–Hegseth talks",
        "Healey meets Hegseth at the Pentagon",
        Some("https://kyiv-ledger.example/3"),
        "British Defence Secretary John Healey met Pete Hegseth on Friday for talks on Ukraine.",
        &["Healey", "Hegseth"],
    );
    healey.order = (true, 1);
    vec![
        entry(
            1,
            "Minerals deal",
            "Kyiv and Washington agree terms of minerals deal, officials say",
            Some("https://kyiv-ledger.example/1"),
            "Ukrainian officials said the minerals deal was agreed after weeks of talks.",
            &["minerals deal"],
        ),
        wire,
        healey,
    ]
}

/// The rendered digest against its snapshots (insta, `src/digest/snapshots/`): a changed
/// template fails here; review with `cargo insta review` (CI never writes snapshots).
#[test]
fn rendered_digest_matches_the_snapshots() {
    let notices =
        vec!["Meridian Sports: 3 failed polls in a row; last error: HTTP status 503".to_string()];
    let p = render_with_cfg(&cfg(), &sample(), &notices);
    assert_eq!(
        p.subject,
        "[newswatch] Morning brief, Mon 10 Mar — 3 articles: Minerals deal (2), Healey–Hegseth talks (1)"
    );
    for l in p.text.lines() {
        assert!(
            l.chars().count() <= 78 || l.trim().starts_with("http"),
            "{l:?}"
        );
    }
    insta::assert_snapshot!("digest.txt", p.text);
    insta::assert_snapshot!("digest.html", p.html);
}

#[test]
fn nothing_matched_means_no_email_unless_asked() {
    assert!(
        compose(1, &cfg(), "nw@example.org", &[], &[], now())
            .unwrap()
            .is_none()
    );
    let mut c = cfg();
    c.when_empty = WhenEmpty::Send;
    let p = render_with_cfg(&c, &[], &[]);
    assert_eq!(
        p.subject,
        "[newswatch] Morning brief, Mon 10 Mar — nothing new"
    );
    assert!(
        p.text.contains("Nothing new matched your rules"),
        "{}",
        p.text
    );
}

#[test]
fn one_story_from_two_outlets_is_one_entry_with_also() {
    let p = render(&sample());
    for part in [&p.text, &p.html] {
        // The HTML headline marks its hit: `agree terms of <mark …>minerals deal</mark>`.
        assert_eq!(part.matches("agree terms of ").count(), 1, "{part}");
        assert!(
            part.contains("also: Atlantic Wire")
                || part.contains(
                    "also: <a class=\"nw-link\" href=\"https://atlantic-wire.example/2?utm_source=rss\""
                ),
            "the other outlet, linked in the HTML: {part}"
        );
        assert!(part.contains("matched: Healey, Hegseth"), "{part}");
        assert!(
            part.contains("Mon 10 Mar 2025 12:00 GMT"),
            "local time: {part}"
        );
        assert!(
            part.contains("kyiv-ledger.example"),
            "the host is shown: {part}"
        );
    }
    assert!(p.text.contains("*minerals deal*"), "{}", p.text);
    assert!(p.html.contains(">minerals deal</mark>"), "{}", p.html);
    for header in [
        "Auto-Submitted: auto-generated",
        "List-Id: newswatch digest main-desk <main-desk.newswatch.example.org>",
        "Message-ID: <digest-7.main-desk.1741608000@example.org>",
        "Date: Mon, 10 Mar 2025 12:00:00 +0000",
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

#[test]
fn html_is_made_for_email() {
    let p = render(&sample());
    for needle in [
        "<table role=\"presentation\"",
        "max-width:640px",
        "<meta name=\"color-scheme\" content=\"light dark\">",
        "prefers-color-scheme: dark",
        "background-color:#ffffff",
        "color:#111827",
    ] {
        assert!(p.html.contains(needle), "{needle:?} missing");
    }
    for banned in ["<script", "<img", "<link", "src=", "@import", "url("] {
        assert!(!p.html.contains(banned), "{banned:?} in the HTML");
    }
}

#[test]
fn snippets_centre_on_the_first_hit_and_mark_every_hit() {
    // (summary, terms, snippet as plain text with *hits*)
    let long = format!(
        "{} the minerals deal was signed. {}",
        "word ".repeat(40),
        "tail ".repeat(80)
    );
    #[rustfmt::skip]
    let cases: Vec<(&str, &[&str], String)> = vec![
        ("Healey met Hegseth.", &["Healey", "Hegseth"], "*Healey* met *Hegseth*.".into()),
        ("No hit here.", &["absent"], "No hit here.".into()),
        ("Line\r\nbreak <b>minerals deal</b>\u{202e}", &["minerals deal"], "Line break <b>*minerals deal*</b>".into()),
        ("the Weimar+ group", &["Weimar", "Weimar+"], "the *Weimar+* group".into()),
        ("a minerals deal", &["minerals deal", "deal"], "a *minerals deal*".into()),
        (&long, &["minerals deal"], format!("… {}the *minerals deal* was signed. {}…", "word ".repeat(15), "tail ".repeat(30))),
    ];
    for (summary, terms, want) in &cases {
        let e = entry(1, "R", "Headline", None, summary, terms);
        let got: String = snippet(&e)
            .iter()
            .map(|s| {
                if s.hit {
                    format!("*{}*", s.text)
                } else {
                    s.text.clone()
                }
            })
            .collect();
        assert_eq!(&got, want, "{summary:?}");
    }
    // A span that does not fit the text (a changed rule engine, a corrupt row) is ignored.
    let mut e = entry(1, "R", "Headline", None, "Ünïcode text", &[]);
    e.hits.push(StoredHit {
        field: "summary".into(),
        start: 1,
        end: 99,
        text: "x".into(),
    });
    assert_eq!(
        snippet(&e),
        vec![Segment {
            text: "Ünïcode text".into(),
            hit: false
        }]
    );
}

#[test]
fn hostile_feed_content_never_reaches_the_email() {
    let hostile = [
        (
            "<script>alert(1)</script>Minerals deal",
            "https://ok.example/1",
            "<img src=\"https://track.example/pixel.gif\" width=\"1\" height=\"1\">minerals deal",
        ),
        (
            "<a href=\"x\" onmouseover=\"steal()\">Minerals deal</a>",
            "javascript:alert(document.cookie)",
            "onerror=alert(1) minerals deal",
        ),
        (
            "Minerals deal\r\nBcc: victim@example.org",
            "data:text/html;base64,PHNjcmlwdD4=",
            "<iframe src=//evil.example></iframe> minerals deal",
        ),
        (
            "Minerals deal \u{202e}lmth.exe\u{202c} \u{200b}",
            "https://paypal.com@evil.example/login",
            "<style>body{display:none}</style> minerals deal",
        ),
        (
            "Minerals deal\u{1b}[31m red",
            "JaVaScRiPt:alert(1)",
            "vbscript:msgbox minerals deal",
        ),
    ];
    let entries: Vec<Entry> = hostile
        .iter()
        .enumerate()
        .map(|(i, (title, link, summary))| {
            let mut e = entry(
                i as i64 + 1,
                "Evil\r\nX-Injected: 1",
                title,
                Some(link),
                summary,
                &["minerals deal", "Minerals deal"],
            );
            e.feed_title = Some("Feed <img src=x onerror=alert(1)>\u{202e}".into());
            e
        })
        .collect();
    let p = render(&entries);
    // Every tag in the HTML is one of ours, with no event handler, script URL or remote source.
    let tags = regex::Regex::new(r"<[^>]*>").expect("valid regex");
    let allowed = [
        "!doctype", "html", "head", "meta", "title", "style", "body", "table", "tr", "td", "div",
        "span", "a", "mark", "br",
    ];
    for tag in tags.find_iter(&p.html).map(|m| m.as_str().to_lowercase()) {
        let name = tag
            .trim_start_matches(['<', '/'])
            .split([' ', '>'])
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(allowed.contains(&name.as_str()), "foreign tag {tag}");
        for banned in [
            " on",
            "javascript:",
            "vbscript:",
            "data:",
            "src=",
            "paypal.com@",
        ] {
            assert!(!tag.contains(banned), "{banned:?} in {tag}");
        }
    }
    assert_eq!(
        p.html.matches("<style>").count(),
        1,
        "only the dark-mode block"
    );
    for banned in [
        "\u{202e}",
        "\u{200b}",
        "\u{1b}",
        "paypal.com@",
        "javascript:",
        "data:text",
        "JaVaScRiPt",
    ] {
        assert!(
            !p.html.contains(banned),
            "{banned:?} in the HTML:\n{}",
            p.html
        );
    }
    // The link with userinfo keeps only its real host, and says so.
    assert!(
        p.html.contains("href=\"https://evil.example/login\""),
        "{}",
        p.html
    );
    assert!(p.text.contains("https://evil.example/login"));
    for banned in [
        "javascript:",
        "data:text",
        "paypal.com@",
        "\u{202e}",
        "\u{200b}",
        "\u{1b}",
    ] {
        assert!(
            !p.text.to_lowercase().contains(banned),
            "{banned:?} in the text:\n{}",
            p.text
        );
    }
    for c in ['\r', '\n', '\u{202e}', '\u{200b}', '\u{1b}'] {
        assert!(
            !p.subject.contains(c),
            "{c:?} in the subject {:?}",
            p.subject
        );
    }
    let head = &p.raw[..p.raw.find("\r\n\r\n").expect("a header block")];
    assert!(
        !head.contains("\nX-Injected") && !head.contains("\nBcc:"),
        "{head}"
    );
    assert!(
        !head.contains("victim@example.org") || head.contains("Subject:"),
        "{head}"
    );
    // The escaped text is still there for the reader.
    assert!(
        p.html
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        p.html
    );
}

#[test]
fn a_huge_digest_stays_under_gmail_clipping() {
    let summary = "Officials said the minerals deal would be signed within days. ".repeat(20);
    let entries: Vec<Entry> = (0..1000)
        .map(|i| {
            let mut e = entry(
                i,
                &format!("Rule {}", i % 7),
                &format!("alpha{i} beta{} gamma{} delta{}", i * 3, i * 5, i * 7),
                Some(&format!("https://k.example/{i}")),
                &summary,
                &["minerals deal"],
            );
            e.time = now() - chrono::Duration::minutes(i);
            e
        })
        .collect();
    let mut c = cfg();
    c.max_items = 10_000;
    let p = render_with_cfg(&c, &entries, &[]);
    assert!(p.html.len() <= MAX_HTML_BYTES, "{} bytes", p.html.len());
    assert!(
        p.html.len() > MAX_HTML_BYTES / 2,
        "not needlessly short: {}",
        p.html.len()
    );
    assert!(p.text.contains(" more"), "the rest is counted");
    // The size cut ends the email cleanly, saying what did not fit.
    assert!(
        p.html.contains("Continued: ") && p.text.contains("\nContinued: "),
        "{}",
        p.text
    );
    assert!(
        p.subject
            .starts_with("[newswatch] Morning brief, Mon 10 Mar — 1000 articles: Rule"),
        "{}",
        p.subject
    );
    // Every rule keeps some entries: the cap is shared round-robin.
    for r in 0..7 {
        assert!(p.text.contains(&format!("== Rule {r} (")), "rule {r}");
    }
    let mut small = cfg();
    small.max_items = 5;
    let p = render_with_cfg(&small, &entries, &[]);
    assert_eq!(p.text.matches("\n* ").count(), 5);
}

#[test]
fn load_plan_table() {
    // (group sizes in rule order, max_items, articles to load per group): a budget of
    // 10 per story shown within 1,000..=5,000, shared round-robin.
    #[rustfmt::skip]
    let cases: &[(&[usize], usize, &[usize])] = &[
        (&[], 50, &[]),
        (&[1], 50, &[1]),
        (&[1000], 50, &[1000]),
        (&[6000], 50, &[1000]),
        (&[6000], 400, &[4000]),
        (&[6000], 1000, &[5000]),
        (&[3000, 2], 50, &[998, 2]),
        (&[600, 600], 0, &[500, 500]),      // max_items 0 still shows one
        (&[700, 100, 700], 50, &[450, 100, 450]),
        (&[1000, 1000, 1000], 50, &[334, 333, 333]),
    ];
    for (sizes, max_items, want) in cases {
        let groups: Vec<GroupCount> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| GroupCount {
                key: format!("g{i}"),
                articles: *n,
            })
            .collect();
        assert_eq!(
            load_plan(&groups, *max_items),
            *want,
            "{sizes:?} max_items {max_items}"
        );
    }
}

#[test]
fn thousands_of_groups_close_with_one_capped_line() {
    let entries: Vec<Entry> = (0..12_000)
        .map(|i| {
            let rule = i % 5_000;
            let mut e = entry(
                i,
                &format!("Rule {rule:04}"),
                &format!("alpha{i} beta{} gamma{}", i * 3, i * 7),
                Some(&format!("https://k.example/{i}")),
                "Officials said the minerals deal would be signed within days.",
                &["minerals deal"],
            );
            e.time = now() - chrono::Duration::minutes(i);
            e
        })
        .collect();
    let p = render(&entries);
    assert!(p.html.len() <= MAX_HTML_BYTES, "{} bytes", p.html.len());
    assert!(p.text.len() <= MAX_HTML_BYTES, "{} bytes", p.text.len());
    // max_items (50) stories, the newest (articles 0..49, one per rule), in rule order
    // (Rule 0000..1999 have 3 articles).
    assert_eq!(p.text.matches("\n== Rule ").count(), 50, "{}", p.text);
    assert!(p.text.contains("\n== Rule 0000 (3) =="), "{}", p.text);
    assert!(
        p.text
            .contains("\n  and 2 more, among them:\n  - alpha5000 "),
        "{}",
        p.text
    );
    assert!(
        p.text.contains(
            "\n== Also matched ==\n- Rule 0050 (3)\n  - alpha50 beta150 gamma350\n    \
             https://k.example/50\n"
        ),
        "{}",
        p.text
    );
    // 5,000 groups: 50 shown, 10 named, the rest counted: 1,950 with 3, 3,000 with 2.
    assert!(
        p.text.contains("- and 4,940 more rules (11,820 matches)\n"),
        "{}",
        p.text
    );
    assert!(
        p.html.contains("Also matched</td>")
            && p.html.contains("and 4,940 more rules (11,820 matches)"),
        "{}",
        p.html
    );
    assert!(
        p.subject
            .starts_with("[newswatch] Morning brief, Mon 10 Mar — 12000 articles: Rule 0000 (3), "),
        "{}",
        p.subject
    );
}

#[test]
fn counts_come_from_the_totals_not_from_what_was_loaded() {
    let batch = Batch {
        entries: sample(),
        groups: vec![
            GroupTotal {
                title: "Minerals deal".into(),
                articles: 700,
                daily: [vec![14], vec![3; 13], vec![4]].concat(),
            },
            GroupTotal {
                title: "Healey–Hegseth talks".into(),
                articles: 40,
                daily: [vec![40], vec![0; 14]].concat(),
            },
            GroupTotal {
                title: "Weimar plus".into(),
                articles: 1,
                daily: Vec::new(),
            },
        ],
        articles: 735,
        since: None,
    };
    let composed = compose_batch(7, &cfg(), "nw@example.org", &batch, &[], now())
        .expect("compose")
        .expect("a digest");
    assert_eq!(
        composed.subject,
        "[newswatch] Morning brief, Mon 10 Mar — 735 articles: Minerals deal (700), \
         Healey–Hegseth talks (40), Weimar plus (1)"
    );
    let r = super::render(&Audience::digest(&cfg()), &batch, &[], now()).expect("render");
    assert!(
        r.text.starts_with("Morning brief\n735 new articles"),
        "{}",
        r.text
    );
    // The shown story stands for two articles (two outlets): 698 more.
    assert!(r.text.contains("== Minerals deal (700) =="), "{}", r.text);
    assert!(r.text.contains("\n  and 698 more\n"), "{}", r.text);
    assert!(r.text.contains("\n  and 39 more\n"), "{}", r.text);
    // Trend lines from the daily counts: the mean of the 14 days before (3.07 → 3).
    assert!(
        r.text
            .contains("== Minerals deal (700) ==\n14 in the last 24 h · usually 3 a day\n"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("== Healey–Hegseth talks (40) ==\n40 in the last 24 h\n"),
        "{}",
        r.text
    );
    // Loaded nothing of it, yet within max_items: named on the closing line.
    assert!(
        r.text.contains("== Also matched ==\n- Weimar plus (1)\n"),
        "{}",
        r.text
    );
    assert_eq!((r.shown, r.more), (2, 735 - 3));
}

#[test]
fn thousands_separators() {
    for (n, want) in [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (9_940, "9,940"),
        (1_234_567, "1,234,567"),
    ] {
        assert_eq!(thousands(n), want);
    }
}

#[test]
fn operators_templates_replace_the_built_in_ones_and_still_escape() {
    let mut c = cfg();
    c.templates = Some(Templates {
        html: "<h1>{{ title }}</h1>{% for g in groups %}{% for i in g.items %}<p>{{ i.headline }}</p>{% endfor %}{% endfor %}".into(),
        text: "{{ heading }}".into(),
    });
    let mut e = sample();
    e[0].title = "<script>x</script> minerals deal".into();
    let p = render_with_cfg(&c, &e, &[]);
    assert!(
        p.html.starts_with("<h1>Morning brief</h1><p>"),
        "{}",
        p.html
    );
    assert!(
        p.html.contains("&lt;script&gt;") && !p.html.contains("<script"),
        "{}",
        p.html
    );
    assert_eq!(p.text, "3 new articles matched your rules");
}

fn alert_set() -> AlertConfig {
    AlertConfig {
        name: "breaking".into(),
        to: vec!["duty@example.org".into()],
        channels: Vec::new(),
        title: Some("Duty desk".into()),
        timezone: chrono_tz::Europe::Kyiv,
        ..AlertConfig::default()
    }
}

#[test]
fn alert_subjects_name_the_headline_and_times_are_local() {
    let set = alert_set();
    let one = &sample()[2..];
    let c = compose_alert(4, &set, "nw@example.org", one, now()).expect("alert");
    assert_eq!(
        c.subject,
        "[alert] Healey–Hegseth talks: Healey meets Hegseth at the Pentagon"
    );
    assert!(c.message_id.starts_with("<alert-4.breaking."));
    assert_eq!(c.recipients, ["duty@example.org"]);
    let raw = String::from_utf8_lossy(&c.raw);
    assert!(raw.contains("Mon 10 Mar 2025 14:00 EET"), "{raw}");
    assert!(raw.contains("Duty desk"), "{raw}");
    // Several: the count and the top story's headline (two outlets beat one).
    let c = compose_alert(5, &set, "nw@example.org", &sample(), now()).expect("alert");
    assert_eq!(
        c.subject,
        "[alert] 3 articles: Kyiv and Washington agree terms of minerals deal, officials say \
         (+2 more)"
    );
}

/// The same matches in any order compose byte-identical alert bodies (Date and Message-ID
/// aside): which story leads, the subject, the order of everything.
#[test]
fn alert_composition_is_deterministic() {
    let body = |entries: &[Entry]| {
        let c = compose_alert(9, &alert_set(), "nw@example.org", entries, now()).expect("alert");
        let raw = String::from_utf8_lossy(&c.raw).into_owned();
        raw.lines()
            .filter(|l| !l.starts_with("Date:") && !l.starts_with("Message-ID:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut entries = sample();
    let want = body(&entries);
    for _ in 0..entries.len() {
        entries.rotate_left(1);
        assert_eq!(body(&entries), want);
        entries.reverse();
        assert_eq!(body(&entries), want);
    }
}

#[test]
fn long_subjects_are_cut_at_a_rule_boundary() {
    let entries: Vec<Entry> = (0..30)
        .map(|i| {
            entry(
                i,
                &format!("A rather long rule title number {i:02}"),
                &format!("t{i}"),
                None,
                "",
                &[],
            )
        })
        .collect();
    let p = render(&entries);
    assert!(
        p.subject.starts_with(
            "[newswatch] Morning brief, Mon 10 Mar — 30 articles: A rather long rule title number 00 (1)"
        ),
        "{}",
        p.subject
    );
    assert!(p.subject.ends_with(", …"), "{}", p.subject);
    assert!(p.subject.chars().count() <= MAX_SUBJECT_CHARS + 3);
}
