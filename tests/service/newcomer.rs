//! What a new operator meets first, on the built binary: read-only commands that work without the
//! delivery secrets, `check` reporting config and rule problems in one run, feed URLs with
//! credentials refused without echoing them, and output cut short by a closed pipe.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::support::bin::{command, newswatch};
use crate::support::demo::repo;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The shipped production config, its state in `dir` and its rules the shipped ones, with the
/// SMTP password file it names absent (as on an operator's machine or in CI). `edit` changes
/// the text further.
fn production_config(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("config/newswatch.toml")).expect("read config");
    let rules = repo().join("rules/*.toml");
    let text = text
        .replace(
            "state_dir = \"/var/lib/newswatch\"",
            &format!("state_dir = {:?}", dir.join("state")),
        )
        .replace(
            "rules = [\"rules/*.toml\"]",
            &format!("rules = [{:?}]", rules.to_str().expect("utf-8 path")),
        );
    assert!(text.contains("password_file = \"smtp-password\""), "{text}");
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, edit(text)).expect("write config");
    path
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn read_only_commands_need_no_smtp_password_but_delivery_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Beside the SMTP password: a channel and a feed whose secrets are missing too (a variable
    // that is not set, a file that does not exist).
    let config = production_config(dir.path(), |t| {
        t + r#"
[[channel]]
name = "duty-room"
kind = "matrix"
url_env = "NEWSWATCH_TEST_UNSET_URL"
room = "!room:example.org"
token_file = "no-such-matrix-token"

[[feed]]
name = "Members only"
url = "https://members.example.org/feed.xml"
username = "reader"
password_env = "NEWSWATCH_TEST_UNSET_PASSWORD"
"#
    });
    let c = arg(&config);
    let html = dir.path().join("brief.html");
    for args in [
        vec!["status", "-c", c],
        vec!["status", "-c", c, "--json"],
        vec![
            "digest",
            "preview",
            "briefing",
            "-c",
            c,
            "--out",
            arg(&html),
        ],
        vec!["rules", "backtest", "-c", c, "--since", "1d"],
        vec!["feeds", "export", "-c", c],
    ] {
        let out = newswatch(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("password"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // What may deliver still needs it, and says which file is missing.
    for args in [
        vec!["digest", "send", "briefing", "-c", c],
        vec!["check", "-c", c],
    ] {
        let out = newswatch(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot read password file"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn status_names_alert_and_digest_emails_and_the_next_slot() {
    // The demo, in a directory of its own: one alert email and one digest, both left queued by
    // a relay that is not there (nothing listens on port 9).
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("config");
    std::fs::create_dir_all(demo.join("demo/feeds")).expect("mkdir");
    for entry in std::fs::read_dir(repo().join("config/demo/feeds")).expect("demo feeds") {
        let path = entry.expect("entry").path();
        let to = demo
            .join("demo/feeds")
            .join(path.file_name().expect("name"));
        std::fs::copy(&path, to).expect("copy feed");
    }
    let text = std::fs::read_to_string(repo().join("config/demo.toml")).expect("demo.toml");
    let text = text
        .replace(
            "rules = [\"../rules/*.toml\"]",
            &format!("rules = [{:?}]", repo().join("rules/*.toml")),
        )
        .replace(
            "method = \"file\"",
            "method = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"",
        )
        .replace("dir = \"../outbox\"\n", "");
    let config = demo.join("demo.toml");
    std::fs::write(&config, text).expect("write demo.toml");
    let out = newswatch(&["run", "--once", "--config", arg(&config)]);
    assert_eq!(out.status.code(), Some(6), "undelivered: {}", stderr(&out));

    let out = newswatch(&["status", "--config", arg(&config)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("\nalert breaking #1: "), "{text}");
    assert!(text.contains("\ndigest briefing #2: "), "{text}");
    assert!(
        text.contains("outbox: 2 queued, 0 sent, 0 failed\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  queued #1 (breaking): attempt 2 next at "),
        "{text}"
    );
    assert!(
        text.contains("\n  queued #2 (briefing): attempt "),
        "{text}"
    );
    assert!(text.contains(", last error: "), "{text}");
    assert!(
        text.contains("\nrule minerals-deal: "),
        "per-rule counts: {text}"
    );
    assert!(text.contains("\nnext digest briefing: none"), "{text}");

    // The production config's digest has a schedule: its next slot is a time.
    let prod = production_config(dir.path(), |t| t);
    let out = newswatch(&["status", "-c", arg(&prod)]);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("next digest briefing: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(":00:00Z"), "{line}");
}

#[test]
fn check_reports_config_and_rule_problems_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A broken rule file next to the shipped ones, and two config problems besides the password.
    std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
    std::fs::write(
        dir.path().join("rules/broken.toml"),
        "[[rule]]\nid = \"broken\"\nquery = 'Healey AND ('\n",
    )
    .expect("write rule");
    let config = production_config(dir.path(), |t| {
        t.replacen(
            "rules = [",
            &format!("rules = [{:?}, ", dir.path().join("rules/*.toml")),
            1,
        )
        .replace("concurrency = 8", "concurrency = 0")
        .replace("max_per_hour = 6", "max_per_hour = 0")
    });
    let out = newswatch(&["check", "-c", arg(&config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot read password file"), "{err}");
    assert!(err.contains("`concurrency` must be at least 1"), "{err}");
    assert!(err.contains("max_per_hour"), "{err}");
    assert!(err.contains("3 problems in the config file"), "{err}");
    assert!(
        err.contains("broken.toml:3:"),
        "the rules are checked too: {err}"
    );
    assert!(err.contains("1 problem in the rule files"), "{err}");

    // A value serde cannot read stops the config there (one problem), but not the rule check.
    let config = production_config(dir.path(), |t| {
        t.replacen(
            "rules = [",
            &format!("rules = [{:?}, ", dir.path().join("rules/*.toml")),
            1,
        )
        .replacen("interval = \"15m\"", "interval = \"15\"", 1)
    });
    let out = newswatch(&["check", "-c", arg(&config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("invalid duration \"15\""), "{err}");
    assert!(
        err.contains("broken.toml:3:"),
        "the rules are checked too: {err}"
    );
}

#[test]
fn check_reports_every_toml_syntax_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("newswatch.toml");
    std::fs::write(
        &config,
        "state_dir = \"s\"\nrules = [\"r/*.toml\"]\nfoo = = 3\n[delivery\nmethod = \"file\"\nbar 5\n",
    )
    .expect("write config");
    let out = newswatch(&["check", "-c", arg(&config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for want in [
        "newswatch.toml:3:7: extra `=`",
        "newswatch.toml:4:10: unclosed table, expected ]",
        "newswatch.toml:6:5: key with no value, expected =",
        "problems in the config file",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
}

#[test]
fn an_unclosed_string_is_listed_with_the_other_syntax_errors() {
    // The string's error comes from decoding the value, not from the parser's list: with one
    // other error, only toml's first message used to be shown.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("newswatch.toml");
    std::fs::write(
        &config,
        "state_dir = \"s\nrules = [\"r/*.toml\"]\n[delivery]\nmethod = \"file\"\nbar 5\nfrom = 'x\n",
    )
    .expect("write config");
    let out = newswatch(&["check", "-c", arg(&config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for want in [
        "newswatch.toml:1:15: invalid basic string, expected \"",
        "newswatch.toml:5:5: key with no value, expected =",
        "newswatch.toml:6:10: invalid literal string, expected '",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
}

#[test]
fn a_missing_config_file_is_named_without_a_position() {
    let out = newswatch(&["check", "-c", "no/such/newswatch.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "error: no/such/newswatch.toml: cannot read config file: No such file or directory (os error 2)\n"
    );
}

#[test]
fn feed_url_credentials_are_refused_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = production_config(dir.path(), |t| {
        t.replace(
            "url = \"https://www.atlanticcouncil.org/feed/\"",
            "url = \"https://ann:s3cret@www.atlanticcouncil.org/feed/\"",
        )
    });
    for args in [
        vec!["check", "-c", arg(&config)],
        vec!["status", "-c", arg(&config)],
        vec!["feeds", "export", "-c", arg(&config)],
    ] {
        let out = newswatch(&args);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains("s3cret"),
            "{args:?} printed the password: {all}"
        );
        assert!(!all.contains("ann:"), "{args:?} printed the login: {all}");
    }
    let out = newswatch(&["status", "-c", arg(&config)]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(
            "feed url \"https://www.atlanticcouncil.org/feed/\" carries a user name or password"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn man_pages_cover_every_subcommand_and_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = newswatch(&["man", "--dir", arg(dir.path())]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "newswatch.1",
        "newswatch-run.1",
        "newswatch-check.1",
        "newswatch-status.1",
        "newswatch-rules-test.1",
        "newswatch-digest-preview.1",
        "newswatch-feeds-import.1",
        "newswatch.toml.5",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".TH") || text.contains("\n.TH "),
            "{page}: {text}"
        );
    }
    let config = std::fs::read_to_string(dir.path().join("newswatch.toml.5")).expect("read");
    assert!(config.contains(".B delivery.timeout\n"), "{config}");
    let run = std::fs::read_to_string(dir.path().join("newswatch-run.1")).expect("read");
    assert!(run.contains("The config file (TOML)"), "{run}");
}

#[test]
fn output_cut_short_by_a_closed_pipe_exits_quietly() {
    let feed = repo().join("config/demo/feeds/continental-defence.rss");
    let mut child = command(&[
        "rules",
        "test",
        "--rules",
        arg(&repo().join("rules/actors.toml")),
        arg(&repo().join("rules/ukraine-peace.toml")),
        "--json",
        "--feed",
        arg(&feed),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn newswatch");
    // `| head -c 0`: the reader goes away before the first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_first_run_on_old_feeds_says_why_nothing_matched() {
    // The demo's feeds are old: without its `new_feed_window = "3650d"`, the default 48 h holds
    // every item back on a first poll. "64 new articles, 0 matches" alone reads as rules that
    // catch nothing; the summary says why.
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = crate::support::demo::copy_demo(tmp.path());
    let text = std::fs::read_to_string(&config).expect("read demo.toml");
    let without = text.replace("new_feed_window = \"3650d\"\n", "");
    assert_ne!(text, without, "the demo sets new_feed_window");
    std::fs::write(&config, without).expect("write demo.toml");
    let out = command(&["run", "--once", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .env("NEWSWATCH_LOG", "warn")
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "64 new articles, 0 matches (64 of the new articles were older than new_feed_window \
             on a first poll: stored as seen, not matched)"
        ),
        "{stdout}"
    );
}
