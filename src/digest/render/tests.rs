//! What a digest selects and where it shows it: each article once (under its first rule, "also
//! matches" naming the others), stories in the stated order (rule priority, outlets, recency),
//! the overflow counted per group with its next headlines linked.

use chrono::{DateTime, Utc};

use super::render;
use crate::config::DigestConfig;
use crate::digest::{Audience, Batch, Entry};
use crate::model::StoredHit;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Article `id` from `feed`, matched by rule `rule` (place `order`; alert rules first), `mins`
/// minutes old; the hit is the headline's first word.
fn entry(id: i64, rule: (&str, (bool, usize)), feed: &str, title: &str, mins: i64) -> Entry {
    let word = title.split(' ').next().unwrap_or_default();
    Entry {
        rules_hash: None,
        rule_id: rule.0.to_lowercase(),
        rule_title: rule.0.into(),
        order: rule.1,
        alert: !rule.1.0,
        feed: feed.into(),
        feed_title: None,
        article_id: id,
        title: title.into(),
        link: Some(format!("https://{feed}.example/{id}")),
        summary: "".into(),
        content: "".into(),
        full_text: false,
        lang: None,
        time: now() - chrono::Duration::minutes(mins),
        hits: vec![StoredHit {
            field: "title".into(),
            start: 0,
            end: word.len(),
            text: word.into(),
        }],
    }
}

fn cfg(max_items: usize) -> DigestConfig {
    DigestConfig {
        name: "desk".into(),
        to: vec!["a@example.org".into()],
        channels: Vec::new(),
        max_items,
        ..DigestConfig::default()
    }
}

const A: (&str, (bool, usize)) = ("Alpha", (true, 0));
const B: (&str, (bool, usize)) = ("Bravo", (true, 1));
const C: (&str, (bool, usize)) = ("Charlie", (true, 2));
const URGENT: (&str, (bool, usize)) = ("Urgent", (false, 9));

fn shown(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("* ")).collect()
}

#[test]
fn an_article_matching_three_rules_appears_once_with_also_matches() {
    let title = "Harbour talks resume in Odesa";
    let entries = vec![
        entry(1, C, "wire", title, 5),
        entry(1, A, "wire", title, 5),
        entry(1, B, "wire", title, 5),
        entry(2, B, "wire", "Bravo-only story about grain corridors", 6),
        entry(3, C, "wire", "Charlie-only story about port insurance", 7),
    ];
    let r = render(
        &Audience::digest(&cfg(40)),
        &Batch::complete(entries),
        &[],
        now(),
    )
    .expect("render");
    assert_eq!(r.text.matches(title).count(), 1, "{}", r.text);
    assert_eq!(
        r.html.matches("href=\"https://wire.example/1\"").count(),
        1,
        "{}",
        r.html
    );
    for part in [&r.text, &r.html] {
        assert_eq!(
            part.matches("also matches: Bravo, Charlie").count(),
            1,
            "{part}"
        );
    }
    assert!(
        r.subject
            .ends_with("3 articles: Alpha (1), Bravo (1), Charlie (1)"),
        "{}",
        r.subject
    );
    assert!(r.text.contains("3 new articles"), "{}", r.text);
    let alpha = r.text.find("== Alpha (1) ==").unwrap_or(usize::MAX);
    let bravo = r.text.find("== Bravo (1) ==").unwrap_or(0);
    let at = r.text.find(title).unwrap_or(usize::MAX);
    assert!(alpha < at && at < bravo, "under its first rule: {}", r.text);
    assert_eq!((r.shown, r.more), (3, 0));
}

#[test]
fn stories_rank_by_rule_priority_then_outlets_then_recency() {
    let three = "Grain corridor reopens after naval talks";
    let mut entries = vec![
        // Newest, one outlet.
        entry(1, A, "wire", "Newest single-outlet story on drones", 1),
        // Older, three outlets.
        entry(2, A, "wire", three, 50),
        entry(3, A, "daily", three, 52),
        entry(4, A, "herald", three, 55),
        // Oldest, one outlet, but an alert rule.
        entry(5, URGENT, "wire", "Urgent story on air defence", 300),
        // Second newest, one outlet.
        entry(6, A, "wire", "Second single-outlet story on mines", 2),
    ];
    let batch = Batch::complete(entries.clone());
    let r = render(&Audience::digest(&cfg(2)), &batch, &[], now()).expect("render");
    // The alert rule's section comes first; Alpha shows its three-outlet story; the two
    // single-outlet stories are counted and linked, newest first.
    assert_eq!(
        shown(&r.text),
        ["Urgent story on air defence", three],
        "{}",
        r.text
    );
    assert!(
        r.text.contains(
            "  and 2 more, among them:\n  - Newest single-outlet story on drones\n    \
             https://wire.example/1\n  - Second single-outlet story on mines\n"
        ),
        "{}",
        r.text
    );
    assert!(
        r.html.contains("href=\"https://wire.example/1\""),
        "{}",
        r.html
    );
    assert_eq!((r.shown, r.more), (2, 2));
    // Without the alert rule, three stories fit: outlets first, then recency.
    entries.retain(|e| e.article_id != 5);
    let batch = Batch::complete(entries);
    let r = render(&Audience::digest(&cfg(3)), &batch, &[], now()).expect("render");
    assert_eq!(
        shown(&r.text),
        [
            three,
            "Newest single-outlet story on drones",
            "Second single-outlet story on mines"
        ],
        "{}",
        r.text
    );
}

/// Hits for every occurrence of each term in the summary.
fn summary_hits(summary: &str, terms: &[&str]) -> Vec<StoredHit> {
    let mut hits = Vec::new();
    for t in terms {
        for (start, m) in summary.match_indices(t) {
            hits.push(StoredHit {
                field: "summary".into(),
                start,
                end: start + m.len(),
                text: m.into(),
            });
        }
    }
    hits
}

fn one(e: Entry) -> super::Rendered {
    render(
        &Audience::digest(&cfg(10)),
        &Batch::complete(vec![e]),
        &[],
        now(),
    )
    .expect("render")
}

#[test]
fn the_snippet_shows_the_rarest_terms_and_matched_lists_what_is_shown() {
    let summary = format!(
        "Ukraine said on Monday that Ukraine would wait. {} Later, Healey met Hegseth in \
         Washington to discuss Ukraine. {}",
        "Filler words about the weather in Ukraine. ".repeat(8),
        "More filler. ".repeat(30)
    );
    let mut e = entry(1, A, "wire", "Ministers meet", 1);
    e.summary = summary.as_str().into();
    e.hits = summary_hits(&summary, &["Ukraine", "Healey", "Hegseth"]);
    let r = one(e.clone());
    // The text part is wrapped: compare its lines joined.
    let text = r.text.replace("\n  ", " ");
    assert!(text.contains("*Healey* met *Hegseth*"), "{}", r.text);
    assert!(
        r.text.contains("matched: Ukraine, Healey, Hegseth\n"),
        "{}",
        r.text
    );
    // A term only in text the snippet does not show is named apart, never as if shown.
    e.hits = summary_hits(&summary, &["Healey", "Monday"]);
    let r = one(e);
    assert!(
        r.text
            .contains("matched: Monday · in the full text: Healey\n"),
        "{}",
        r.text
    );
}

#[test]
fn matched_lists_each_term_once_in_its_longest_form() {
    let summary = "Emmanuel Macron said the force and its forces would stay; Macron left.";
    let mut e = entry(1, A, "wire", "Allied forces", 1);
    e.summary = summary.into();
    e.hits = summary_hits(summary, &["Emmanuel Macron", "Macron", "forces", "force"]);
    e.hits.push(StoredHit {
        field: "title".into(),
        start: 7,
        end: 13,
        text: "forces".into(),
    });
    let r = one(e);
    assert!(
        r.text.contains("matched: forces, Emmanuel Macron\n"),
        "{}",
        r.text
    );
    assert!(r.html.contains("<mark class=\"nw-mark\" style=\"background-color:#fde68a;color:#111827;\">forces</mark></a>"), "{}", r.html);
}

#[test]
fn a_grouped_story_shows_the_shown_articles_own_terms() {
    let title = "Grain corridor reopens after naval talks";
    let mut first = entry(1, A, "wire", title, 10);
    first.summary = "The grain corridor reopened.".into();
    first.hits = summary_hits(&first.summary, &["corridor"]);
    let mut second = entry(2, A, "daily", title, 5);
    second.summary = "Naval escorts resumed in the Black Sea.".into();
    second.hits = summary_hits(&second.summary, &["Black Sea"]);
    let r = render(
        &Audience::digest(&cfg(10)),
        &Batch::complete(vec![first, second]),
        &[],
        now(),
    )
    .expect("render");
    assert!(r.text.contains("also: daily"), "{}", r.text);
    assert!(r.text.contains("matched: corridor\n"), "{}", r.text);
    assert!(!r.text.contains("Black Sea"), "{}", r.text);
}

#[test]
fn headers_and_footer_say_what_this_is_when_and_how_to_stop_it() {
    let mut c = cfg(10);
    c.title = Some("Morning brief".into());
    c.timezone = chrono_tz::Europe::London;
    c.rules =
        crate::digest::spec::RuleSelection::new(&["minerals-*", "weimar-plus"]).unwrap_or_default();
    let entries = vec![entry(1, A, "wire", "Harbour talks resume in Odesa", 5)];
    let raw = |c: &DigestConfig| {
        let m = crate::digest::compose(3, c, "nw@example.org", &entries, &[], now())
            .expect("compose")
            .expect("a digest");
        // Unfolded: soft line breaks and folded headers joined.
        let plain = String::from_utf8_lossy(&m.raw)
            .replace("=\r\n", "")
            .replace("\r\n ", " ");
        (m.subject, plain)
    };
    let (subject, plain) = raw(&c);
    assert_eq!(
        subject,
        "[newswatch] Morning brief, Mon 10 Mar — 1 article: Alpha (1)"
    );
    assert!(!plain.contains("List-Unsubscribe"), "{plain}");
    assert!(plain.contains("ask its operator"), "{plain}");
    c.unsubscribe.mailto = Some("desk-admin@example.org".into());
    let (_, plain) = raw(&c);
    assert!(
        plain.contains(
            "List-Unsubscribe: <mailto:desk-admin@example.org?subject=unsubscribe%20desk>\r\n"
        ),
        "{plain}"
    );
    assert!(!plain.contains("List-Unsubscribe-Post"), "{plain}");
    c.unsubscribe.https = Some("https://example.org/unsubscribe/desk".into());
    let (_, plain) = raw(&c);
    assert!(
        plain.contains(
            "List-Unsubscribe: <mailto:desk-admin@example.org?subject=unsubscribe%20desk>, \
             <https://example.org/unsubscribe/desk>\r\n"
        ) && plain.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{plain}"
    );
    // The footer names the digest and its rules and says how to change them.
    let batch = Batch::complete(entries.clone());
    let r = render(&Audience::digest(&c), &batch, &[], now()).expect("render");
    let text = r.text.replace("\n", " ");
    assert!(
        text.contains("the newswatch digest \"desk\" (minerals-*, weimar-plus)")
            && text.contains("edit its [[digest]] section")
            && text.contains("write to desk-admin@example.org"),
        "{}",
        r.text
    );
    // The heading carries the date, and the covered period when known.
    assert!(
        r.text.contains("\nMon 10 Mar 2025, 12:00 GMT\n"),
        "{}",
        r.text
    );
    let mut batch = batch;
    batch.since = Some(now() - chrono::Duration::hours(24));
    let r = render(&Audience::digest(&c), &batch, &[], now()).expect("render");
    assert!(
        r.text
            .contains("\nMon 10 Mar 2025 · covering Sun 9 Mar 12:00 to Mon 10 Mar 12:00 GMT\n"),
        "{}",
        r.text
    );
}

/// Issue 20: an entry's language (declared, else detected) marks its headline and snippet in
/// the HTML part; a tag that is not BCP 47-shaped is left out, never written into the markup.
#[test]
fn an_entrys_language_marks_its_html_and_a_hostile_tag_is_dropped() {
    let mut de = entry(1, ("r", (false, 0)), "feed", "Hegseth trifft Healey", 1);
    de.lang = Some("de_AT".into());
    let mut bad = entry(2, ("r", (false, 0)), "feed", "Other story", 2);
    bad.lang = Some("de\"><script>".into());
    let batch = Batch::complete(vec![de, bad]);
    let r = render(&Audience::digest(&cfg(10)), &batch, &[], now()).expect("render");
    assert_eq!(r.html.matches(" lang=\"de-AT\"").count(), 1, "{}", r.html);
    assert!(!r.html.contains("<script>"), "{}", r.html);
}

/// `entry` matched by rule set `version` (issue 17).
fn versioned(mut e: Entry, version: Option<&str>) -> Entry {
    e.rules_hash = version.map(String::from);
    e
}

#[test]
fn the_digest_names_the_rule_sets_that_matched() {
    let render_with = |versions: [Option<&str>; 2]| {
        let entries = vec![
            versioned(entry(1, A, "wire", "Harbour talks resume", 5), versions[0]),
            versioned(
                entry(2, B, "post", "Grain corridor reopens", 6),
                versions[1],
            ),
        ];
        render(
            &Audience::digest(&cfg(40)),
            &Batch::complete(entries),
            &[],
            now(),
        )
        .expect("render")
    };
    // One rule set: named once, in the footer of both parts.
    let one = render_with([Some("aaaa1111bbbb2222"), Some("aaaa1111bbbb2222")]);
    for part in [&one.text, &one.html] {
        assert!(
            part.contains("Matched with rule set aaaa1111bbbb2222."),
            "{part}"
        );
        assert!(!part.contains("rule set: "), "{part}");
    }
    // Two (nodes with other rules, or a reload between matches): both in the footer, and
    // each story names its own.
    let two = render_with([Some("aaaa1111bbbb2222"), Some("cccc3333dddd4444")]);
    for part in [&two.text, &two.html] {
        // The text part is wrapped at 78 columns.
        let flat = part.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(
                "Matched with rule sets aaaa1111bbbb2222, cccc3333dddd4444 (named on each story)."
            ),
            "{part}"
        );
        assert_eq!(
            part.matches("rule set: aaaa1111bbbb2222").count(),
            1,
            "{part}"
        );
        assert_eq!(
            part.matches("rule set: cccc3333dddd4444").count(),
            1,
            "{part}"
        );
    }
    let harbour = two.text.find("Harbour talks").unwrap_or(usize::MAX);
    let its_version = two.text.find("rule set: aaaa1111bbbb2222").unwrap_or(0);
    let grain = two.text.find("Grain corridor").unwrap_or(0);
    assert!(harbour < its_version && its_version < grain, "{}", two.text);
    // Unknown (matches stored before the version was recorded): nothing said.
    let unknown = render_with([None, None]);
    for part in [&unknown.text, &unknown.html] {
        assert!(!part.contains("rule set"), "{part}");
    }
}
