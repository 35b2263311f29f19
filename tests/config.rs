//! Config loading: every shipped config loads, and a table of broken configs each fail with the
//! exact message at the exact line and column.

use std::path::{Path, PathBuf};

use newswatch::config::{Config, ConfigErrors, DeliveryMethod, Security, parse_duration};

/// A directory holding one rule file, so the `rules` glob of the test configs resolves.
fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/a.toml"),
        "[[rule]]\nid = \"a\"\nquery = \"Healey\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    dir
}

const BASE: &str = r#"state_dir = "state"
rules = ["rules/*.toml"]
[[feed]]
name = "one"
url = "https://example.org/feed.xml"
[delivery]
method = "file"
dir = "outbox"
from = "nw <nw@example.org>"
[[digest]]
name = "d"
to = ["a@example.org"]
"#;

fn load(dir: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let env = |name: &str| (name == "PW").then(|| "from-env".to_string());
    Config::from_str(&dir.join("nw.toml"), text, &env)
}

#[test]
fn minimal_config_loads_with_defaults() {
    let dir = fixture_dir();
    let c = load(dir.path(), BASE).unwrap();
    assert_eq!(c.state_dir, dir.path().join("state"));
    assert_eq!(c.rule_files, vec![dir.path().join("rules/a.toml")]);
    assert_eq!(c.feeds.len(), 1);
    assert_eq!(c.feeds[0].interval.as_secs(), 15 * 60);
    assert_eq!(c.fetch.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.new_feed_window.as_secs(), 48 * 3600);
    assert!(c.user_agent.starts_with("newswatch/"));
    assert!(
        matches!(&c.delivery.method, DeliveryMethod::File { dir: d } if *d == dir.path().join("outbox"))
    );
}

#[test]
fn host_limits_default_polite_and_can_be_lifted() {
    let dir = fixture_dir();
    let c = load(dir.path(), BASE).unwrap();
    assert_eq!(
        (c.host_limits.per_host, c.host_limits.spacing.as_secs()),
        (1, 1)
    );
    let lifted = BASE.replacen(
        "[[feed]]",
        "[fetch]\nper_host = 8\nhost_spacing = \"0s\"\n[[feed]]",
        1,
    );
    let c = load(dir.path(), &lifted).unwrap();
    assert_eq!(
        (c.host_limits.per_host, c.host_limits.spacing.as_secs()),
        (8, 0)
    );
}

#[test]
fn smtp_password_from_env_and_file_never_in_debug_output() {
    let dir = fixture_dir();
    let smtp = |extra: &str| {
        BASE.replace(
            "method = \"file\"\ndir = \"outbox\"",
            &format!("method = \"smtp\"\nhost = \"mail.example.org\"\nusername = \"u\"\n{extra}"),
        )
    };
    for extra in ["password_env = \"PW\"", "password_file = \"pw\""] {
        let c = load(dir.path(), &smtp(extra)).unwrap();
        let DeliveryMethod::Smtp(s) = &c.delivery.method else {
            panic!("not smtp")
        };
        assert_eq!((s.port, s.security), (587, Security::Starttls));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("from-env") && !debug.contains("s3cret"),
            "secret leaked: {debug}"
        );
        assert!(s.password.is_some());
    }
}

#[test]
fn durations() {
    let ok = [
        ("90s", 90),
        ("15m", 900),
        ("48h", 172_800),
        ("7d", 604_800),
        ("1h30m", 5400),
        ("2w", 1_209_600),
    ];
    for (s, secs) in ok {
        assert_eq!(parse_duration(s).unwrap().as_secs(), secs, "{s}");
    }
    for bad in [
        "",
        "15",
        "m",
        "15 minutes",
        "-5m",
        "1.5h",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
}

/// (what is broken, the replacement applied to BASE, line, column, exact message)
#[rustfmt::skip]
const BROKEN: &[(&str, &str, &str, usize, usize, &str)] = &[
    ("unknown top-level key", "state_dir = \"state\"", "state_dir = \"state\"\nstate_dri = 1", 2, 1,
     "unknown field `state_dri`, expected one of `state_dir`, `rules`, `user_agent`, `new_feed_window`, `fetch`, `feed`, `delivery`, `digest`"),
    ("unknown feed key", "name = \"one\"", "name = \"one\"\nintervall = \"5m\"", 5, 1,
     "unknown field `intervall`, expected one of `name`, `url`, `interval`, `tags`"),
    ("bad duration", "name = \"one\"", "name = \"one\"\ninterval = \"15\"", 5, 12,
     "invalid duration \"15\": expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"),
    ("bad url", "https://example.org/feed.xml", "not a url", 5, 7,
     "invalid feed url \"not a url\": relative URL without a base; expected an http://, https:// or file:// URL"),
    ("bad scheme", "https://example.org/feed.xml", "ftp://example.org/f", 5, 7,
     "unsupported scheme `ftp` in feed url \"ftp://example.org/f\": expected http, https or file"),
    ("duplicate feed", "[delivery]", "[[feed]]\nname = \"one\"\nurl = \"https://example.org/2\"\n[delivery]", 7, 8,
     "duplicate feed name \"one\": every [[feed]] needs its own name"),
    ("missing state_dir", "state_dir = \"state\"\n", "", 1, 1,
     "missing field `state_dir`"),
    ("no rule file", "rules/*.toml", "nope/*.toml", 2, 10,
     "no rule file matches \"nope/*.toml\" (looked for DIR/nope/*.toml)"),
    ("unknown method", "method = \"file\"", "method = \"pigeon\"", 7, 10,
     "unknown delivery method \"pigeon\": expected \"smtp\", \"sendmail\" or \"file\""),
    ("file without dir", "dir = \"outbox\"\n", "", 6, 1,
     "delivery method `file` needs `dir`, the directory to write .eml files into"),
    ("smtp key on file", "dir = \"outbox\"", "dir = \"outbox\"\nhost = \"x\"", 6, 1,
     "`host` does not apply to delivery method `file`"),
    ("bad security", "dir = \"outbox\"", "dir = \"outbox\"\nsecurity = \"ssl\"", 9, 12,
     "unknown variant `ssl`, expected one of `starttls`, `tls`, `none`"),
    ("bad from", "nw <nw@example.org>", "not an address", 9, 8,
     "invalid email address \"not an address\": expected `name@example.org` or `Name <name@example.org>`"),
    ("bad recipient", "a@example.org", "a@", 12, 7,
     "invalid email address \"a@\": expected `name@example.org` or `Name <name@example.org>`"),
    ("empty recipients", "to = [\"a@example.org\"]", "to = []", 12, 6,
     "digest `to` is empty: expected at least one recipient address"),
    ("zero concurrency", "[[feed]]", "[fetch]\nconcurrency = 0\n[[feed]]", 4, 15,
     "`concurrency` must be at least 1"),
    ("zero per_host", "[[feed]]", "[fetch]\nper_host = 0\n[[feed]]", 4, 12,
     "`per_host` must be at least 1"),
    ("bad size", "[[feed]]", "[fetch]\nmax_body = \"10 parsecs\"\n[[feed]]", 4, 12,
     "invalid size \"10 parsecs\": expected a number of bytes or `512KB`, `10MB`, `1GB`"),
    ("toml syntax", "name = \"one\"", "name = one", 4, 8,
     "string values must be quoted, expected literal string"),
    ("unset password env", "dir = \"outbox\"", "host = \"h\"\nusername = \"u\"\npassword_env = \"NOPE\"", 10, 16,
     "environment variable NOPE is not set (it should hold the SMTP password)"),
];

#[test]
fn broken_configs_name_line_column_and_expectation() {
    let dir = fixture_dir();
    for &(what, from, to, line, column, message) in BROKEN {
        assert!(BASE.contains(from), "{what}: BASE lacks {from:?}");
        let mut text = BASE.replacen(from, to, 1);
        if what == "unset password env" {
            text = text.replace("method = \"file\"", "method = \"smtp\"");
        }
        let errs = match load(dir.path(), &text) {
            Ok(_) => panic!("{what}: config was accepted:\n{text}"),
            Err(e) => e.0,
        };
        let first = &errs[0];
        let shown = first
            .message
            .replace(&dir.path().display().to_string(), "DIR");
        assert_eq!(
            (first.line, first.column, shown.as_str()),
            (line, column, message),
            "{what}: all errors: {errs:#?}\n--- config ---\n{text}"
        );
        assert_eq!(first.file, dir.path().join("nw.toml"), "{what}");
    }
}

#[test]
fn all_semantic_errors_are_reported_together_with_caret() {
    let dir = fixture_dir();
    let text = BASE
        .replace("https://example.org/feed.xml", "gopher://x")
        .replace("a@example.org", "a@");
    let errs = load(dir.path(), &text).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
    let shown = errs.to_string();
    let file = dir.path().join("nw.toml");
    let want = format!(
        "error: {}:5:7: unsupported scheme `gopher` in feed url \"gopher://x\": expected http, https or file\n  |\n5 | url = \"gopher://x\"\n  |       ^",
        file.display()
    );
    assert!(
        shown.starts_with(&want),
        "got:\n{shown}\nwant prefix:\n{want}"
    );
}

#[test]
fn shipped_configs_load() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("smtp-password"), "x").unwrap();
    let creds_dir = creds.path().to_string_lossy().into_owned();
    let env = move |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| creds_dir.clone());
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let config = Config::from_str(&path, &text, &env)
                .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            assert!(
                !config.feeds.is_empty() && !config.rule_files.is_empty(),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected demo.toml and newswatch.toml");
}
