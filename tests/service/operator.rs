//! Running newswatch as a service: the systemd unit passes `systemd-analyze`, `/metrics` and
//! `/healthz` answer over real HTTP, and the operator CLI (OPML import/export, completions, man)
//! works on the real binary.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use newswatch::config::Config;
use newswatch::opml;
use newswatch::service::health::{self, Check, HealthCheck, HealthReport, Heartbeat};
use newswatch::service::metrics::{Metrics, PollMetric};
use tokio_util::sync::CancellationToken;

use crate::support::bin::{BIN, newswatch};
use crate::support::demo::repo;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/feeds.opml")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---- systemd unit ------------------------------------------------------------------------------

fn check_unit(unit: Option<&Path>) -> Output {
    let analyze_present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        analyze_present,
        "systemd-analyze is not installed: run scripts/test, which installs Debian's systemd package"
    );
    let mut cmd = Command::new(repo().join("scripts/check-unit"));
    cmd.arg(BIN);
    if let Some(unit) = unit {
        cmd.env("NEWSWATCH_UNIT", unit);
    }
    cmd.output().expect("run scripts/check-unit")
}

#[test]
fn unit_is_verified_clean_and_rated_at_most_2_0() {
    let out = check_unit(None);
    assert!(
        out.status.success(),
        "scripts/check-unit failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("verify clean"), "{text}");
    assert!(text.contains("exposure "), "{text}");
}

#[test]
fn a_weak_or_broken_unit_fails_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = "ExecStart=/usr/bin/newswatch run --config /etc/newswatch/newswatch.toml\n";
    #[rustfmt::skip]
    let cases: &[(&str, String, &str)] = &[
        ("no hardening", format!("[Service]\nType=notify\n{exec}"),                      "above 2.0"),
        ("unknown key",  format!("[Service]\nProtectSystm=strict\n{exec}"),              "verify is not clean"),
        ("other binary", "[Service]\nExecStart=/usr/bin/true\n".to_string(),             "must contain the line"),
    ];
    for (name, unit, want) in cases {
        let path = dir
            .path()
            .join(format!("{}.service", name.replace(' ', "-")));
        std::fs::write(&path, unit).expect("write unit");
        let out = check_unit(Some(&path));
        assert!(
            !out.status.success(),
            "{name}: check passed:\n{}",
            stdout(&out)
        );
        assert!(stderr(&out).contains(want), "{name}: {}", stderr(&out));
    }
}

// ---- /metrics and /healthz ---------------------------------------------------------------------

/// Parses the text exposition into series → value, checking every line is well formed.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line == "# EOF"
                    || line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("# UNIT "),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(name.starts_with("newswatch_"), "{line:?}");
        series.insert(name.to_string(), value);
    }
    series
}

struct Probe {
    database_up: Arc<AtomicBool>,
    poll: Heartbeat,
}

impl HealthCheck for Probe {
    async fn check(&self) -> HealthReport {
        let db = if self.database_up.load(Ordering::SeqCst) {
            Check::pass("database", "")
        } else {
            Check::fail("database", "SELECT 1 failed: disk I/O error")
        };
        HealthReport {
            checks: vec![db, self.poll.check(Duration::from_secs(600))],
        }
    }
}

struct Server {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), health::HttpError>>,
}

async fn start(metrics: Metrics, probe: Probe) -> Server {
    let listener = health::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(health::serve(
        listener,
        metrics,
        probe,
        None,
        shutdown.clone(),
    ));
    Server {
        base: format!("http://{addr}"),
        shutdown,
        task,
    }
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops promptly after cancel")
            .expect("server task did not panic");
        result.expect("server ended cleanly");
    }
}

#[tokio::test]
async fn metrics_are_scraped_and_parsed_over_http() {
    let metrics = Metrics::new();
    let probe = Probe {
        database_up: Arc::new(AtomicBool::new(true)),
        poll: Heartbeat::new("poll loop"),
    };
    let server = start(metrics.clone(), probe).await;

    metrics.poll(PollMetric::Ok);
    metrics.poll(PollMetric::NotModified);
    metrics.poll(PollMetric::Error);
    metrics.poll(PollMetric::Ok);
    metrics.new_articles("Kyiv Ledger", 5);
    metrics.rule_matched("healey-hegseth-backstop");
    metrics.rule_matched("healey-hegseth-backstop");
    metrics.email_sent();
    metrics.email_failed();
    metrics.set_emails_queued(3);
    metrics.set_feeds_in_error(1);
    metrics.observe_fetch(Duration::from_millis(300));
    metrics.observe_fetch(Duration::from_secs(4));

    let resp = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("# TYPE newswatch_fetch_duration_seconds histogram"),
        "{body}"
    );
    let got = parse_exposition(&body);

    #[rustfmt::skip]
    let want: &[(&str, f64)] = &[
        (r#"newswatch_polls_total{result="ok"}"#,                                  2.0),
        (r#"newswatch_polls_total{result="not_modified"}"#,                        1.0),
        (r#"newswatch_polls_total{result="error"}"#,                               1.0),
        (r#"newswatch_new_articles_total{feed="Kyiv Ledger"}"#,                    5.0),
        (r#"newswatch_matches_total{rule="healey-hegseth-backstop"}"#,             2.0),
        ("newswatch_emails_sent_total",                                             1.0),
        ("newswatch_emails_failed_total",                                           1.0),
        ("newswatch_emails_queued",                                                 3.0),
        ("newswatch_feeds_in_error",                                                1.0),
        (r#"newswatch_fetch_duration_seconds_bucket{le="0.25"}"#,                  0.0),
        (r#"newswatch_fetch_duration_seconds_bucket{le="0.5"}"#,                   1.0),
        (r#"newswatch_fetch_duration_seconds_bucket{le="5.0"}"#,                   2.0),
        (r#"newswatch_fetch_duration_seconds_bucket{le="+Inf"}"#,                  2.0),
        ("newswatch_fetch_duration_seconds_count",                                  2.0),
        ("newswatch_fetch_duration_seconds_sum",                                    4.3),
        (r#"newswatch_reloads_total{result="applied"}"#,                           0.0),
    ];
    for (series, value) in want {
        let v = got
            .get(*series)
            .unwrap_or_else(|| panic!("{series} missing from\n{body}"));
        assert!((v - value).abs() < 1e-9, "{series} = {v}, want {value}");
    }
    // Every configured bucket is exported, in order.
    let buckets: Vec<&String> = got
        .keys()
        .filter(|k| k.starts_with("newswatch_fetch_duration_seconds_bucket"))
        .collect();
    assert_eq!(
        buckets.len(),
        newswatch::service::metrics::FETCH_BUCKETS.len() + 1
    );

    server.stop().await;
}

#[tokio::test]
async fn healthz_is_200_only_when_database_and_loops_are_fine() {
    let database_up = Arc::new(AtomicBool::new(true));
    let poll = Heartbeat::new("poll loop");
    let probe = Probe {
        database_up: database_up.clone(),
        poll: poll.clone(),
    };
    let server = start(Metrics::new(), probe).await;
    let get = || async {
        let resp = reqwest::get(format!("{}/healthz", server.base))
            .await
            .expect("GET /healthz");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    };

    let (status, body) = get().await;
    assert_eq!(status, 503, "before the first cycle: {body}");
    assert!(body.contains("poll loop: FAIL (no progress yet)"), "{body}");

    poll.beat();
    let (status, body) = get().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("database: ok\npoll loop: ok"), "{body}");

    database_up.store(false, Ordering::SeqCst);
    let (status, body) = get().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("database: FAIL (SELECT 1 failed: disk I/O error)"),
        "{body}"
    );

    let missing = reqwest::get(format!("{}/nope", server.base))
        .await
        .expect("GET /nope");
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_address() {
    let first = health::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = first.local_addr().expect("addr");
    let err = health::bind(addr).await.expect_err("port is taken");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

// ---- OPML ------------------------------------------------------------------------------------

/// A complete config around `feeds`, valid for the real loader (rules exist, file delivery).
fn write_config(dir: &Path, feeds: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::write(dir.join("rules/placeholder.toml"), "# rules\n").expect("write rule");
    let path = dir.join("newswatch.toml");
    let text = format!(
        "# The desk's config: this comment must survive an append.\n\
         state_dir = \"state\"\nrules = [\"rules/*.toml\"]\n\n\
         [delivery]\nmethod = \"file\"\nfrom = \"newswatch@example.org\"\ndir = \"outbox\"\n\n\
         [[digest]]\nname = \"briefing\"\nto = [\"desk@example.org\"]\n\n{feeds}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// (title, url, tags): what survives the trip through a config (htmlUrl has no place there).
fn essentials(feeds: &[opml::OpmlFeed]) -> Vec<(String, String, Vec<String>)> {
    feeds
        .iter()
        .map(|f| (f.title.clone(), f.xml_url.clone(), f.tags.clone()))
        .collect()
}

#[test]
fn opml_round_trip_through_a_config() {
    let original = opml::read(&fixture()).expect("fixture parses");
    assert_eq!(
        original.duplicates,
        ["https://feeds.bbci.co.uk/news/world/rss.xml"]
    );
    #[rustfmt::skip]
    let want: &[(&str, &str, &[&str])] = &[
        ("BBC News - World",                        "https://feeds.bbci.co.uk/news/world/rss.xml",  &["UK press"]),
        ("World news | The Guardian",               "https://www.theguardian.com/world/ukraine/rss", &["UK press"]),
        ("The Kyiv Independent",                    "https://kyivindependent.com/feed/",            &["Ukraine"]),
        ("President of Ukraine – Official website", "https://www.president.gov.ua/en/rss/news",     &["Ukraine", "Official sources"]),
        ("War on the Rocks",                        "https://warontherocks.com/feed/",              &["Defence & Security"]),
        ("Defense News & Analysis",                 "https://www.defensenews.com/arc/outboundfeeds/rss/?outputType=xml&size=50", &["Defence & Security"]),
        ("Politico Europe",                         "https://www.politico.eu/feed/",                &[]),
    ];
    let want: Vec<(String, String, Vec<String>)> = want
        .iter()
        .map(|(t, u, g)| {
            (
                t.to_string(),
                u.to_string(),
                g.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(essentials(&original.feeds), want);
    assert_eq!(
        original.feeds[0].html_url.as_deref(),
        Some("https://www.bbc.co.uk/news/world")
    );

    // OPML → [[feed]] blocks → a config the real loader accepts.
    let import = newswatch(&["feeds", "import", fixture().to_str().expect("utf-8 path")]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(
        stderr(&import).contains("skipped: https://feeds.bbci.co.uk/news/world/rss.xml"),
        "{}",
        stderr(&import)
    );
    let blocks = stdout(&import);
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = write_config(dir.path(), &blocks);
    let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}\n{blocks}"));
    assert_eq!(config.feeds.len(), want.len());
    assert_eq!(config.feeds[3].tags, ["Ukraine", "Official sources"]);

    // config → OPML 2.0 → the same feeds, folders and all.
    let export = newswatch(&[
        "feeds",
        "export",
        "--config",
        config_path.to_str().expect("utf-8"),
    ]);
    assert!(export.status.success(), "{}", stderr(&export));
    let exported = stdout(&export);
    assert!(exported.contains("<opml version=\"2.0\">"), "{exported}");
    assert!(
        exported.contains("title=\"Defence &amp; Security\""),
        "{exported}"
    );
    let back = opml::parse(Path::new("exported.opml"), &exported).expect("export parses");
    assert!(back.duplicates.is_empty());
    assert_eq!(essentials(&back.feeds), want);

    // And the blocks printed from the export equal the first ones: a fixed point.
    let opml_path = dir.path().join("exported.opml");
    std::fs::write(&opml_path, &exported).expect("write");
    let again = newswatch(&["feeds", "import", opml_path.to_str().expect("utf-8")]);
    assert_eq!(stdout(&again), blocks);
}

#[test]
fn import_append_adds_only_missing_feeds_and_keeps_the_config_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let existing = "[[feed]]\nname = \"War on the Rocks\"\nurl = \"https://example.org/other.xml\"\n\n\
                    [[feed]]\nname = \"BBC\"\nurl = \"https://feeds.bbci.co.uk/news/world/rss.xml\"\n";
    let config_path = write_config(dir.path(), existing);
    let config_arg = config_path.to_str().expect("utf-8");
    let fixture = fixture();
    let fixture_arg = fixture.to_str().expect("utf-8");

    let out = newswatch(&["feeds", "import", fixture_arg, "--append", config_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "appending prints nothing on stdout"
    );
    let err = stderr(&out);
    assert!(
        err.contains("skipped: https://feeds.bbci.co.uk/news/world/rss.xml is already in"),
        "{err}"
    );
    assert!(err.contains("added 6 feeds"), "{err}");

    let text = std::fs::read_to_string(&config_path).expect("read");
    assert!(text.starts_with("# The desk's config: this comment must survive an append."));
    assert!(text.contains("# Imported from "), "{text}");
    let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names: HashSet<&str> = config.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(config.feeds.len(), 8);
    assert!(names.contains("War on the Rocks (2)"), "{names:?}");

    // Running it again changes nothing.
    let out = newswatch(&["feeds", "import", fixture_arg, "--append", config_arg]);
    assert!(stderr(&out).contains("added 0 feeds"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&config_path).expect("read"), text);
}

#[test]
fn import_refuses_a_config_it_cannot_append_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inline.toml");
    let before = "feed = [{ name = \"A\", url = \"https://a.example/f\" }]\n";
    std::fs::write(&path, before).expect("write");
    let out = newswatch(&[
        "feeds",
        "import",
        fixture().to_str().expect("utf-8"),
        "--append",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
}

// ---- completions and man page ------------------------------------------------------------------

#[test]
fn completions_and_man_page_cover_the_subcommands() {
    #[rustfmt::skip]
    let cases: &[(&[&str], &str)] = &[
        (&["completions", "bash"],       "_newswatch()"),
        (&["completions", "zsh"],        "#compdef newswatch"),
        (&["completions", "fish"],       "complete -c newswatch"),
        (&["completions", "elvish"],     "newswatch"),
        (&["completions", "powershell"], "newswatch"),
        (&["man"],                       ".TH newswatch 1"),
    ];
    for (args, want) in cases {
        let out = newswatch(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(want), "{args:?}: {text}");
        assert!(text.contains("feeds"), "{args:?} does not mention `feeds`");
    }
    let bad = newswatch(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

// ---- packaging -----------------------------------------------------------------------------------

#[test]
fn deb_metadata_installs_binary_unit_config_and_rules() {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml parses");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .expect("assets is an array")
        .iter()
        .map(|a| {
            let a = a
                .as_array()
                .expect("an asset is [source, destination, mode]");
            let s = |i: usize| a[i].as_str().expect("a string").to_string();
            (s(0), s(1))
        })
        .collect();
    #[rustfmt::skip]
    let want: &[(&str, &str)] = &[
        ("target/release/newswatch", "usr/bin/"),
        ("config/newswatch.service", "lib/systemd/system/newswatch.service"),
        ("config/newswatch.toml",    "etc/newswatch/newswatch.toml"),
        ("rules/*.toml",             "etc/newswatch/rules/"),
        ("rules/*.toml",             "usr/share/newswatch/rules/"),
        // Generated by scripts/package, which builds and checks the .deb (in .ci/run).
        ("target/release/package/man1/*.1.gz", "usr/share/man/man1/"),
        ("target/release/package/man5/*.5.gz", "usr/share/man/man5/"),
        ("target/release/package/completions/newswatch", "usr/share/bash-completion/completions/newswatch"),
    ];
    for (src, dest) in want {
        assert!(
            assets.iter().any(|(s, d)| s == src && d == dest),
            "no asset {src} -> {dest} in {assets:?}"
        );
    }
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(toml::Value::as_str)
        .collect();
    assert_eq!(conf, ["/etc/newswatch/newswatch.toml"]);
    for own in ["config/newswatch.service", "docs/operations.md"] {
        assert!(repo().join(own).is_file(), "{own} is missing");
    }
}
