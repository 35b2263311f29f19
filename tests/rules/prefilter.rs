//! The pre-filter's view (issue 22): `check --verbose` lists every rule evaluated for every
//! article, with the part of its query that needs no term, and only those.

use crate::support::bin::newswatch;

const RULES: &str = r#"
[lists]
anywhere = ['url:example.org', 'Kyiv']

[[rule]]
id = "term"
query = 'Healey AND NOT Leeds'

[[rule]]
id = "near-or-regex-and-term"
query = '(Healey NEAR/3 Hegseth OR /Heg\w+/) AND Pentagon'

[[rule]]
id = "lone-not"
query = 'NOT football'
allow_broad = true

[[rule]]
id = "regex-branch"
query = 'Healey OR /minerals?\s+deal/i'

[[rule]]
id = "host-and-lang"
query = 'url:bbc.co.uk AND lang:en'

[[rule]]
id = "list-with-a-host"
query = '@anywhere'
"#;

#[test]
fn check_verbose_lists_the_rules_the_pre_filter_cannot_skip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("watch.toml");
    std::fs::write(&file, RULES).expect("write rules");
    let path = file.to_str().expect("UTF-8 path");
    let out = newswatch(&["check", "--rules", path, "--verbose"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("except 4 rules evaluated for every article"),
        "{stdout}"
    );
    let listed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ")).collect();
    let want = [
        (
            13,
            "lone-not",
            "`NOT football` is true when its term is absent",
        ),
        (
            18,
            "regex-branch",
            "an OR branch needs no literal: the regex `/minerals?\\s+deal/i` is searched without a literal",
        ),
        (
            22,
            "host-and-lang",
            "no AND operand needs a literal: `url:bbc.co.uk` tests the link, not the text; `lang:en` tests the language, not the text",
        ),
        (
            26,
            "list-with-a-host",
            "list @anywhere: an OR branch needs no literal: `url:example.org` tests the link, not the text",
        ),
    ];
    assert_eq!(listed.len(), want.len(), "{stdout}");
    for (line, (n, id, why)) in listed.iter().zip(want) {
        assert_eq!(*line, format!("  {path}:{n}: rule {id}: {why}"), "{stdout}");
    }
    // Without --verbose, the summary line only.
    let out = newswatch(&["check", "--rules", path]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
