//! The playground's precision, recall and F1 against `[console] labels`, over real HTTP on the
//! built binary: the query is scored against the labels of the saved rule it is compared with,
//! beside that rule's own figures; a broken labels file is reported with its place.

use super::console::{Console, filled_state, url_enc};

/// Two positives of `healey-hegseth-talks`, a Healey story without Hegseth, and weather.
const LABELS: &str = r#"{"id": "p1", "title": "Healey meets Hegseth in Brussels", "labels": ["healey-hegseth-talks"]}
{"id": "p2", "title": "John Healey and Pete Hegseth talk about Ukraine", "labels": ["healey-hegseth-talks"]}
{"id": "n1", "title": "Healey visits a school in Leeds", "labels": []}
{"id": "n2", "title": "Rain expected over Lisbon", "labels": []}
"#;

fn playground(c: &Console, q: &str, against: &str) -> String {
    let r = c.get(
        &format!(
            "/playground?partial=1&q={}&against={}",
            url_enc(q),
            url_enc(against)
        ),
        &[],
    );
    assert_eq!(r.status, 200, "{q}");
    r.body
}

/// The row of `label` in the P/R/F1 table, as its cells' text.
fn row(body: &str, label: &str) -> Vec<String> {
    let start = body
        .find(&format!("<tr><th>{label}</th>"))
        .unwrap_or_else(|| panic!("no {label:?} row in {body}"));
    let rest = &body[start..];
    let end = rest.find("</tr>").expect("row end");
    rest[..end]
        .split("<td>")
        .skip(1)
        .map(|c| c.trim_end_matches("</td>").to_string())
        .collect()
}

#[test]
fn the_playground_scores_a_query_against_the_saved_rules_labels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let labels = tmp.path().join("labels.jsonl");
    std::fs::write(&labels, LABELS).expect("write labels");
    let (_state, config) = filled_state(&format!(
        "\n[console]\nlabels = [\"{}\"]\n",
        labels.display()
    ));
    let c = Console::start(&config);

    // Any Healey story: both positives found, and one negative taken.
    let wide = playground(&c, "@healey", "healey-hegseth-talks");
    assert_eq!(
        row(&wide, "this query"),
        ["0.667", "1.000", "0.800", "2", "1", "0"],
        "{wide}"
    );
    // The saved rule itself is right on all four.
    assert_eq!(
        row(&wide, "saved rule healey-hegseth-talks"),
        ["1.000", "1.000", "1.000", "2", "0", "0"]
    );
    assert!(wide.contains("4 labelled items"), "{wide}");
    // Too narrow: one positive missed.
    let narrow = playground(&c, "\"John Healey\"", "healey-hegseth-talks");
    assert_eq!(
        row(&narrow, "this query"),
        ["1.000", "0.500", "0.667", "1", "0", "1"],
        "{narrow}"
    );
    // Without a saved rule there is no truth to score against: the page says what to do.
    let alone = playground(&c, "@healey", "");
    assert!(alone.contains("Choose a saved rule"), "{alone}");
    assert!(!alone.contains("id=\"prf\""), "{alone}");
}

#[test]
fn a_broken_labels_file_is_reported_with_its_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let labels = tmp.path().join("labels.jsonl");
    std::fs::write(
        &labels,
        format!(
            "{LABELS}{{\"id\": \"x\", \"title\": \"Healey\", \"labels\": [\"no-such-rule\"]}}\n"
        ),
    )
    .expect("write labels");
    let (_state, config) = filled_state(&format!(
        "\n[console]\nlabels = [\"{}\"]\n",
        labels.display()
    ));
    let c = Console::start(&config);
    let body = playground(&c, "@healey", "healey-hegseth-talks");
    assert!(body.contains("have problems"), "{body}");
    assert!(body.contains("labels.jsonl:5"), "the file and line: {body}");
    assert!(body.contains("no-such-rule"), "{body}");
    assert!(
        !body.contains("id=\"prf\""),
        "no figures from broken labels"
    );
    // The hits are still there.
    assert!(body.contains("id=\"hit-count\""), "{body}");
}
