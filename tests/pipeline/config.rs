//! Config loading: every shipped config loads, and a table of broken configs each fail with the
//! exact message at the exact line and column.

use std::path::{Path, PathBuf};

use newswatch::config::{
    Config, ConfigErrors, DeliveryMethod, PollSettings, Security, parse_duration,
};

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
    assert_eq!(c.polling, PollSettings::default());
    assert_eq!(c.polling.retention.as_secs(), 30 * 86_400);
    assert_eq!(c.polling.keep_identities.as_secs(), 180 * 86_400);
    assert_eq!(c.polling.failing_after.as_secs(), 24 * 3600);
    assert!(!c.feeds[0].allow_private_network);
    assert!(c.http.enabled);
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:9187");
    let c = load(
        dir.path(),
        &format!("{BASE}[http]\nenabled = false\nlisten = \"[::1]:0\"\n"),
    )
    .unwrap();
    assert!(!c.http.enabled);
    assert_eq!(c.http.listen.to_string(), "[::1]:0");
    assert!(
        matches!(&c.delivery.method, DeliveryMethod::File { dir: d } if *d == dir.path().join("outbox"))
    );
}

#[test]
fn host_limits_default_polite_and_can_be_lifted() {
    let dir = fixture_dir();
    let c = load(dir.path(), BASE).unwrap();
    assert_eq!(
        (c.polling.per_host, c.polling.host_spacing.as_secs()),
        (1, 1)
    );
    let lifted = BASE.replacen(
        "[[feed]]",
        "[fetch]\nper_host = 8\nhost_spacing = \"0s\"\n[[feed]]",
        1,
    );
    let c = load(dir.path(), &lifted).unwrap();
    assert_eq!(
        (c.polling.per_host, c.polling.host_spacing.as_secs()),
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
     "unknown field `state_dri`, expected one of `state_dir`, `rules`, `user_agent`, `new_feed_window`, `fetch`, `feed`, `delivery`, `digest`, `alert`, `http`, `channel`, `spike`, `store`, `console`, `websub`"),
    ("unknown feed key", "name = \"one\"", "name = \"one\"\nintervall = \"5m\"", 5, 1,
     "unknown field `intervall`, expected one of `name`, `url`, `interval`, `tags`, `allow_private_network`, `headers`, `cookie_env`, `cookie_file`, `username`, `password_env`, `password_file`, `token_env`, `token_file`, `proxy`, `proxy_password_env`, `proxy_password_file`, `full_text`, `full_text_min_words`, `websub`"),
    // issue 20: request settings
    ("reserved header", "name = \"one\"", "name = \"one\"\nheaders = { Authorization = \"x\" }", 5, 11,
     "header \"Authorization\" cannot be set in `headers`: use `username` + `password_env`/`password_file`, or `token_env`/`token_file`"),
    ("header with a line break", "name = \"one\"", "name = \"one\"\nheaders = { X-A = \"a\\r\\nB: c\" }", 5, 11,
     "the value of header \"X-A\" must be printable ASCII (no control characters, no line breaks)"),
    ("unset token env", "name = \"one\"", "name = \"one\"\ntoken_env = \"NOPE\"", 5, 13,
     "environment variable NOPE is not set or empty (it should hold the feed's bearer token)"),
    ("username without password", "name = \"one\"", "name = \"one\"\nusername = \"u\"", 5, 12,
     "`username` is set but no password: add `password_env` or `password_file`"),
    ("basic and bearer", "name = \"one\"", "name = \"one\"\nusername = \"u\"\npassword_env = \"PW\"\ntoken_env = \"PW\"", 5, 12,
     "set `username` + a password (basic auth) or a token (bearer auth), not both"),
    ("proxy with credentials", "name = \"one\"", "name = \"one\"\nproxy = \"http://u:p@127.0.0.1:3128\"", 5, 9,
     "proxy http://u@127.0.0.1:3128/ carries a password in the URL: a password never belongs in a URL; keep the user (`http://user@host:port`) and set `proxy_password_env` or `proxy_password_file`"),
    ("proxy scheme", "[delivery]", "[fetch]\nproxy = \"ftp://h:1\"\n[delivery]", 7, 9,
     "unsupported proxy scheme `ftp` in \"ftp://h:1\": expected http, https, socks5 or socks5h"),
    ("bad duration", "name = \"one\"", "name = \"one\"\ninterval = \"15\"", 5, 12,
     "invalid duration \"15\": expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"),
    ("bad url", "https://example.org/feed.xml", "not a url", 5, 7,
     "invalid feed url \"not a url\": relative URL without a base; expected an http://, https:// or file:// URL"),
    ("bad scheme", "https://example.org/feed.xml", "ftp://example.org/f", 5, 7,
     "unsupported scheme `ftp` in feed url \"ftp://example.org/f\": expected http, https or file"),
    ("credentials in a feed url", "https://example.org/feed.xml", "https://ann:s3cret@example.org/f", 5, 7,
     "feed url \"https://example.org/f\" carries a user name or password: credentials in a feed URL would be shown by `status`, the logs and OPML export, so newswatch refuses them; hint: use the feed's public URL, or a feed proxy on 127.0.0.1 that adds the login"),
    ("unparsable url with credentials", "https://example.org/feed.xml", "https://ann:s3cret@exa mple.org/f", 5, 7,
     "invalid feed url \"https://***@exa mple.org/f\": invalid international domain name; expected an http://, https:// or file:// URL"),
    ("bad helo name", "method = \"file\"\ndir = \"outbox\"", "method = \"smtp\"\nhost = \"127.0.0.1\"\nhelo_name = \"-bad_name\"", 9, 13,
     "invalid `helo_name` \"-bad_name\": expected a domain name, like \"mail.example.org\""),
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
     "digest `to` is empty: expected at least one recipient address or `channel:NAME`"),
    ("zero concurrency", "[[feed]]", "[fetch]\nconcurrency = 0\n[[feed]]", 4, 15,
     "`concurrency` must be at least 1"),
    ("zero per_host", "[[feed]]", "[fetch]\nper_host = 0\n[[feed]]", 4, 12,
     "`per_host` must be at least 1"),
    ("bad size", "[[feed]]", "[fetch]\nmax_body = \"10 parsecs\"\n[[feed]]", 4, 12,
     "invalid size \"10 parsecs\": expected a number of bytes or `512KB`, `10MB`, `1GB`"),
    ("min above max", "[[feed]]", "[fetch]\nmin_interval = \"2h\"\nmax_interval = \"1h\"\n[[feed]]", 5, 16,
     "`max_interval` is shorter than `min_interval`: expected min_interval <= max_interval"),
    ("zero min interval", "[[feed]]", "[fetch]\nmin_interval = \"0s\"\n[[feed]]", 4, 16,
     "`min_interval` must be longer than 0s"),
    ("backoff cap below floor", "[[feed]]", "[fetch]\nbackoff_cap = \"1m\"\n[[feed]]", 4, 15,
     "`backoff_cap` is shorter than `min_interval`"),
    ("zero per_host", "[[feed]]", "[fetch]\nper_host = 0\n[[feed]]", 4, 12,
     "`per_host` must be at least 1"),
    ("bad host spacing", "[[feed]]", "[fetch]\nhost_spacing = \"1 second\"\n[[feed]]", 4, 16,
     "invalid duration \"1 second\": expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"),
    ("identities shorter than text", "[[feed]]", "[fetch]\nretention = \"60d\"\nkeep_identities = \"30d\"\n[[feed]]", 5, 19,
     "`keep_identities` is shorter than `retention`: an item whose text was pruned could alert again; expected keep_identities >= retention"),
    ("zero retention", "[[feed]]", "[fetch]\nretention = \"0s\"\n[[feed]]", 4, 13,
     "`retention` must be longer than 0s"),
    ("zero failing_after", "[[feed]]", "[fetch]\nfailing_after = \"0s\"\n[[feed]]", 4, 17,
     "`failing_after` must be longer than 0s"),
    ("silent factor too small", "[[feed]]", "[fetch]\nsilent_factor = 1\n[[feed]]", 4, 17,
     "`silent_factor` must be at least 2"),
    // Numbers past what newswatch can honour (a semaphore's limit, a timer that overflows or
    // never ends, a deadline that fails every fetch) are refused with their range.
    ("huge per_host", "[[feed]]", "[fetch]\nper_host = 2305843009213693952\n[[feed]]", 4, 12,
     "`per_host` = 2305843009213693952 is out of range: expected 1 to 100"),
    ("huge host spacing", "[[feed]]", "[fetch]\nhost_spacing = \"99999999999d\"\n[[feed]]", 4, 16,
     "`host_spacing` = 99999999999d is out of range: expected 0s to 1h"),
    ("zero fetch timeout", "[[feed]]", "[fetch]\ntimeout = \"0s\"\n[[feed]]", 4, 11,
     "`timeout` = 0s is out of range: expected 1ms to 1h"),
    ("huge concurrency", "[[feed]]", "[fetch]\nconcurrency = 100000\n[[feed]]", 4, 15,
     "`concurrency` = 100000 is out of range: expected 1 to 1000"),
    ("zero feed interval", "name = \"one\"", "name = \"one\"\ninterval = \"0s\"", 5, 12,
     "`interval` = 0s is out of range: expected 1ms to 365d"),
    ("huge new feed window", "rules = [\"rules/*.toml\"]", "rules = [\"rules/*.toml\"]\nnew_feed_window = \"40000d\"", 3, 19,
     "`new_feed_window` = 40000d is out of range: expected 0s to 36500d"),
    ("huge silent factor", "[[feed]]", "[fetch]\nsilent_factor = 5000\n[[feed]]", 4, 17,
     "`silent_factor` = 5000 is out of range: expected 2 to 1000"),
    ("control character in a feed name", "name = \"one\"", "name = \"one\\u001b[2J\\r\\nFAKE LOG LINE\"", 4, 8,
     "feed `name` \"one\\u{1b}[2J\\r\\nFAKE LOG LINE\" contains a control character: expected printable text"),
    ("allow_private_network not a bool", "name = \"one\"", "name = \"one\"\nallow_private_network = \"yes\"", 5, 25,
     "invalid type: string \"yes\", expected a boolean"),
    ("toml syntax", "name = \"one\"", "name = one", 4, 8,
     "string values must be quoted, expected literal string"),
    ("unset password env", "dir = \"outbox\"", "host = \"h\"\nusername = \"u\"\npassword_env = \"NOPE\"", 10, 16,
     "environment variable NOPE is not set (it should hold the SMTP password)"),
    ("bad listen address", "[[digest]]", "[http]\nlisten = \"localhost\"\n[[digest]]", 11, 10,
     "invalid listen address \"localhost\": expected IP:PORT, like \"127.0.0.1:9187\" or \"[::1]:9187\""),
    ("listen without port", "[[digest]]", "[http]\nlisten = \"127.0.0.1\"\n[[digest]]", 11, 10,
     "invalid listen address \"127.0.0.1\": expected IP:PORT, like \"127.0.0.1:9187\" or \"[::1]:9187\""),
    ("unknown http key", "[[digest]]", "[http]\nport = 9187\n[[digest]]", 11, 1,
     "unknown field `port`, expected `enabled` or `listen`"),
    ("enabled not a bool", "[[digest]]", "[http]\nenabled = \"yes\"\n[[digest]]", 11, 11,
     "invalid type: string \"yes\", expected a boolean"),
    ("bad schedule", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nschedule = \"daily 25:00\"", 13, 12,
     "invalid schedule \"daily 25:00\": expected a time of day as HH:MM (24-hour, like `07:00`), found `25:00`"),
    ("bad timezone", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\ntimezone = \"Mars/Olympus\"", 13, 12,
     "unknown time zone \"Mars/Olympus\": expected an IANA name like `Europe/London` or `UTC`"),
    ("bad rule glob", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nrules = [\"[oops\"]", 13, 9,
     "invalid rule pattern \"[oops\": invalid range pattern (expected a rule id or a glob like `ukraine-*`)"),
    ("zero max_items", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nmax_items = 0", 13, 13,
     "`max_items` must be at least 1"),
    ("bad when_empty", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nwhen_empty = \"always\"", 13, 14,
     "unknown variant `always`, expected `skip` or `send`"),
    ("send when empty without schedule", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nwhen_empty = \"send\"", 13, 14,
     "`when_empty = \"send\"` needs a `schedule` (without one a digest is composed every cycle)"),
    ("duplicate digest", "[[digest]]", "[[digest]]\nname = \"d\"\nto = [\"b@example.org\"]\n[[digest]]", 14, 8,
     "duplicate digest name \"d\""),
    ("unknown digest key", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nschedul = \"daily 07:00\"", 13, 1,
     "unknown field `schedul`, expected one of `name`, `to`, `subject_prefix`, `title`, `schedule`, `timezone`, `rules`, `max_items`, `when_empty`, `template_dir`, `unsubscribe`, `unsubscribe_url`"),
    ("alert without recipients", "[[digest]]", "[[alert]]\nname = \"breaking\"\nto = []\n[[digest]]", 12, 6,
     "alert `to` is empty: expected at least one recipient address or `channel:NAME`"),
    ("bad alert window", "[[digest]]", "[[alert]]\nname = \"breaking\"\nto = [\"a@example.org\"]\nwindow = \"soon\"\n[[digest]]", 13, 10,
     "invalid duration \"soon\": expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"),
    ("zero alerts per hour", "[[digest]]", "[[alert]]\nname = \"breaking\"\nto = [\"a@example.org\"]\nmax_per_hour = 0\n[[digest]]", 13, 16,
     "`max_per_hour` must be at least 1"),
    ("bad alert timezone", "[[digest]]", "[[alert]]\nname = \"b\"\nto = [\"a@example.org\"]\ntimezone = \"Mars/Olympus\"\n[[digest]]", 13, 12,
     "unknown time zone \"Mars/Olympus\": expected an IANA name like `Europe/London` or `UTC`"),
    ("unsubscribe_url not https", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\nunsubscribe_url = \"http://example.org/u\"", 13, 19,
     "`unsubscribe_url` \"http://example.org/u\" is not an https URL: expected one like `https://example.org/unsubscribe`"),
    ("duplicate alert", "[[digest]]", "[[alert]]\nname = \"a\"\nto = [\"a@example.org\"]\n[[alert]]\nname = \"a\"\nto = [\"a@example.org\"]\n[[digest]]", 14, 8,
     "duplicate alert name \"a\""),
    ("missing template dir", "to = [\"a@example.org\"]", "to = [\"a@example.org\"]\ntemplate_dir = \"nope\"", 13, 16,
     "cannot read template DIR/nope/digest.html: No such file or directory (os error 2)"),
    ("ca_file without tls", "dir = \"outbox\"", "host = \"h\"\nsecurity = \"none\"\nca_file = \"pw\"", 10, 11,
     "`ca_file` needs `security = \"starttls\"` or `\"tls\"`"),
    ("missing ca_file", "dir = \"outbox\"", "host = \"h\"\nca_file = \"nope.pem\"", 9, 11,
     "cannot read CA file DIR/nope.pem: No such file or directory (os error 2)"),
];

/// `[[alert]]` `title` and `timezone`; without one, the first digest's zone (issue 15).
#[test]
fn alert_sets_take_a_title_and_a_time_zone() {
    let dir = fixture_dir();
    let zoned = BASE.replacen(
        "[[digest]]",
        "[[alert]]\nname = \"a\"\nto = [\"a@example.org\"]\ntitle = \"Duty desk\"\n\
         timezone = \"Europe/Kyiv\"\n[[alert]]\nname = \"b\"\nto = [\"a@example.org\"]\n\
         [[digest]]\ntimezone = \"Europe/London\"",
        1,
    );
    let c = load(dir.path(), &zoned).unwrap_or_else(|e| panic!("{e:?}\n{zoned}"));
    assert_eq!(c.alerts[0].title.as_deref(), Some("Duty desk"));
    assert_eq!(c.alerts[0].timezone, chrono_tz::Europe::Kyiv);
    assert_eq!(c.alerts[1].title, None);
    assert_eq!(c.alerts[1].timezone, chrono_tz::Europe::London);
    assert_eq!(c.alerts[1].subject_prefix, "[alert]");
}

#[test]
fn broken_configs_name_line_column_and_expectation() {
    let dir = fixture_dir();
    for &(what, from, to, line, column, message) in BROKEN {
        assert!(BASE.contains(from), "{what}: BASE lacks {from:?}");
        let mut text = BASE.replacen(from, to, 1);
        if matches!(
            what,
            "unset password env" | "ca_file without tls" | "missing ca_file"
        ) {
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
fn fetch_politeness_retention_and_per_feed_policy_load() {
    let dir = fixture_dir();
    let text = BASE.replace(
        "[[feed]]\nname = \"one\"",
        "[fetch]\nmin_interval = \"2m\"\nmax_interval = \"12h\"\nbackoff_cap = \"3h\"\n\
         per_host = 2\nhost_spacing = \"500ms\"\nretention = \"7d\"\nkeep_identities = \"90d\"\n\
         failing_after = \"6h\"\nsilent_factor = 5\n[[feed]]\nname = \"one\"\n\
         allow_private_network = true",
    );
    let c = load(dir.path(), &text).expect("the config loads");
    let secs = |d: std::time::Duration| d.as_secs();
    let p = &c.polling;
    assert_eq!(
        (
            secs(p.min_interval),
            secs(p.max_interval),
            secs(p.backoff_cap)
        ),
        (120, 12 * 3600, 3 * 3600)
    );
    assert_eq!((p.per_host, p.host_spacing.as_millis()), (2, 500));
    assert_eq!(
        (
            secs(p.retention),
            secs(p.keep_identities),
            secs(p.failing_after)
        ),
        (7 * 86_400, 90 * 86_400, 6 * 3600)
    );
    assert_eq!(p.silent_factor, 5);
    assert!(c.feeds[0].allow_private_network);
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

/// A config that is not UTF-8 is refused at the first bad byte (not at `FILE:0:0`); a missing one
/// is named as `FILE: message`; one too large to be a config is refused before the TOML parser
/// sees it.
#[test]
fn unreadable_configs_are_refused_where_they_go_wrong() {
    let dir = fixture_dir();
    let path = dir.path().join("nw.toml");
    let mut bytes = BASE
        .replacen("name = \"one\"", "name = \"on\u{e9}\"", 1)
        .into_bytes();
    let at = bytes
        .iter()
        .position(|&b| b == 0xc3)
        .expect("the é is in the text");
    bytes[at] = 0xe9; // Latin-1 é: not UTF-8
    std::fs::write(&path, &bytes).expect("write config");
    let errs = Config::load(&path).expect_err("Latin-1 is refused").0;
    assert_eq!(
        (errs[0].line, errs[0].column, errs[0].message.as_str()),
        (4, 11, "invalid UTF-8 here: a config file is UTF-8 text")
    );
    // A missing file is a problem with the file as a whole: named without a made-up position.
    let missing = dir.path().join("missing.toml");
    let shown = Config::load(&missing)
        .expect_err("a missing file is refused")
        .to_string();
    let want = format!("error: {}: cannot read config file: ", missing.display());
    assert!(shown.starts_with(&want), "{shown}");
    assert!(!shown.contains(":0:0"), "{shown}");
    let mut big = BASE.to_string();
    big.push_str(&format!("# {}\n", "x".repeat(17 << 20)));
    std::fs::write(&path, big).expect("write config");
    let errs = Config::load(&path).expect_err("a huge file is refused").0;
    assert!(
        errs[0]
            .message
            .starts_with("config file is larger than 16 MiB"),
        "{errs:?}"
    );
}

/// Issue 16 item 13: a 2,000-deep chain of lists used to print 1,969 errors, 2.4 MB (each message
/// repeating the chain below it). What is printed is now bounded: the first errors, each message
/// cut at a length, and how many more there were.
#[test]
fn a_deep_list_chain_prints_a_bounded_report() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("chain.toml");
    let mut text = String::from("[lists]\n");
    for i in 0..2000 {
        text.push_str(&format!("l{i} = [\"@l{}\"]\n", i + 1));
    }
    text.push_str("l2000 = [\"x\"]\n[[rule]]\nid = \"r\"\ntitle = \"r\"\nquery = \"@l0\"\n");
    std::fs::write(&path, text).expect("write the rule file");
    let shown = newswatch::rules::RuleSet::load(std::slice::from_ref(&path))
        .expect_err("the chain is refused")
        .to_string();
    assert!(shown.starts_with("error: "), "{shown}");
    assert!(shown.len() < 64 << 10, "{} bytes", shown.len());
}
