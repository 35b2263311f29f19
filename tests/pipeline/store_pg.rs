//! The pipeline on PostgreSQL (issue 17), one node: the README's demo (`config/demo.toml`, its
//! five feed files, the shipped rules) run with `run --once` on a `[store]` naming the test
//! PostgreSQL gives what it gives on SQLite — the same new articles, matches and emails, the
//! emails accepted by a real SMTP server — and a daemon on PostgreSQL serves `status`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::bin::BIN;
use crate::support::demo::copy_demo;
use crate::support::mail::Mail;
use crate::support::postgres::{fresh_database_url, store_table};
use crate::support::smtp::SmtpSink;

/// The demo in `tmp`, delivering to the SMTP server on `port`, plus `extra` config.
fn demo_config(tmp: &Path, port: u16, extra: &str) {
    let config = copy_demo(tmp);
    let text = std::fs::read_to_string(&config).expect("read demo.toml");
    let file = "method = \"file\"                 # write each email as an .eml file instead of sending it\ndir = \"../outbox\"\n";
    assert!(text.contains(file), "the demo's [delivery] changed: {text}");
    let smtp = format!(
        "method = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         timeout = \"30s\"\n"
    );
    std::fs::write(&config, format!("{}{extra}", text.replace(file, &smtp)))
        .expect("write demo.toml");
}

fn run(tmp: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--config", "config/demo.toml"])
        .current_dir(tmp)
        .env("NEWSWATCH_LOG", "warn")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run the binary")
}

/// `run --once`'s summary (stdout), after checking it succeeded.
fn run_once(tmp: &Path) -> String {
    let out = run(tmp, &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Subjects of what the SMTP server accepted, sorted.
fn subjects(sink: &SmtpSink) -> Vec<String> {
    let mut s: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| Mail::parse(m).subject)
        .collect();
    s.sort();
    s
}

/// The demo twice, each delivering to an SMTP server of its own: on SQLite, and on a fresh
/// PostgreSQL database as node `node` (whose URL comes third).
fn demo_pair(
    node: &str,
) -> (
    (tempfile::TempDir, SmtpSink),
    (tempfile::TempDir, SmtpSink),
    String,
) {
    let url = fresh_database_url();
    let demo = |extra: &str| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mail = tmp.path().join("mail");
        std::fs::create_dir_all(&mail).expect("mkdir");
        let sink = SmtpSink::start(&mail, &[]);
        demo_config(tmp.path(), sink.port, extra);
        (tmp, sink)
    };
    let lite = demo("");
    let pg = demo(&store_table(&url, node, "2m"));
    (lite, pg, url)
}

#[test]
fn the_demo_on_postgresql_gives_what_it_gives_on_sqlite() {
    let ((lite, lite_sink), (pg, pg_sink), url) = demo_pair("demo-1");

    let on_sqlite = run_once(lite.path());
    let on_pg = run_once(pg.path());
    assert!(
        on_sqlite.contains("polled 5 feeds (0 failed, 0 unchanged): 64 new articles"),
        "{on_sqlite}"
    );
    assert!(
        on_sqlite.contains("emails: 2 composed, 2 sent, 0 deferred, 0 failed"),
        "{on_sqlite}"
    );
    // The same summary, word for word, but for where the emails went.
    let counts = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split("; delivery:").next().unwrap_or(l).to_string())
            .collect()
    };
    assert_eq!(counts(&on_pg), counts(&on_sqlite), "{on_pg}\n{on_sqlite}");
    assert_eq!(pg_sink.messages().len(), 2, "a digest and an alert");
    assert_eq!(subjects(&pg_sink), subjects(&lite_sink));
    assert!(
        !pg.path().join("state/newswatch.db").exists(),
        "on PostgreSQL no SQLite file is made"
    );
    // The state is in PostgreSQL: a second run finds nothing new and sends nothing again.
    let again = run_once(pg.path());
    assert!(again.contains("0 new articles, 0 matches"), "{again}");
    assert!(again.contains("emails: 0 composed, 0 sent"), "{again}");
    assert_eq!(pg_sink.messages().len(), 2);
    let sent = crate::support::postgres::query(
        &url,
        "SELECT COUNT(*)::TEXT FROM outbox WHERE status = 'sent'",
    );
    assert_eq!(sent, ["2"]);
}

/// `run --once` on PostgreSQL takes a lease on each feed, as the daemons do: a feed another
/// node is polling (holds a running lease on) is left to it, and the run leaves no lease of
/// its own behind.
#[test]
fn run_once_on_postgresql_leaves_a_feed_another_node_is_polling() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).expect("mkdir");
    let sink = SmtpSink::start(&mail, &[]);
    let url = fresh_database_url();
    demo_config(tmp.path(), sink.port, &store_table(&url, "once-1", "2m"));
    let first = run_once(tmp.path());
    assert!(first.contains("polled 5 feeds"), "{first}");
    // A daemon, node daemon-9, is polling the Atlantic Wire now.
    let held = crate::support::postgres::query(
        &url,
        "UPDATE feeds SET lease_node = 'daemon-9', lease_until = 32503680000
         WHERE name = 'Atlantic Wire' RETURNING name",
    );
    assert_eq!(held, ["Atlantic Wire"]);
    let again = run_once(tmp.path());
    assert!(again.contains("polled 4 feeds"), "{again}");
    let leases = crate::support::postgres::query(
        &url,
        "SELECT name || ' ' || lease_node FROM feeds WHERE lease_node IS NOT NULL",
    );
    assert_eq!(leases, ["Atlantic Wire daemon-9"]);
}

/// `digest preview` and `digest send` on PostgreSQL do what they do on SQLite: with the
/// digest on a schedule, `run --once` sends only the alert; a preview renders the stored
/// matches and sends nothing; `digest send` composes and sends the pending digest once, and a
/// second `digest send` finds nothing pending.
#[test]
fn digest_preview_and_send_on_postgresql_act_as_on_sqlite() {
    let scheduled = |tmp: &Path| {
        let config = tmp.join("config/demo.toml");
        let text = std::fs::read_to_string(&config).expect("read demo.toml");
        let line = "max_items = 40";
        assert!(text.contains(line), "the demo's [[digest]] changed: {text}");
        // A slot twelve hours from now (London is UTC or UTC+1): a first run serves a slot up
        // to an hour old (`DEFAULT_FIRST_RUN_GRACE`), so a fixed "daily 07:00" sent the digest
        // too, and failed this test, whenever it ran between 07:00 and 08:00 London time.
        let hour = chrono::Timelike::hour(&newswatch::clock::now());
        let slot = format!(
            "schedule = \"daily {:02}:00\"\nmax_items = 40",
            (hour + 12) % 24
        );
        let text = text.replacen(line, &slot, 1);
        std::fs::write(&config, text).expect("write demo.toml");
    };
    let flow = |tmp: &Path, sink: &SmtpSink| -> Vec<String> {
        scheduled(tmp);
        let first = run_once(tmp);
        assert!(first.contains("emails: 1 composed, 1 sent"), "{first}");
        assert_eq!(sink.messages().len(), 1, "only the alert is due");
        let out = run(
            tmp,
            &[
                "digest",
                "preview",
                "briefing",
                "--since",
                "3650d",
                "--out",
                "preview.html",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("subject: [newswatch] Morning brief, "),
            "{stdout}"
        );
        let html = std::fs::read_to_string(tmp.join("preview.html")).expect("preview.html");
        assert!(
            html.contains("<table") && html.contains("matched: "),
            "{html}"
        );
        assert_eq!(sink.messages().len(), 1, "a preview sends nothing");
        let send = |expect: &str| {
            let out = run(tmp, &["digest", "send", "briefing"]);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(expect), "{stdout}");
        };
        send("emails: 1 composed, 1 sent");
        assert_eq!(sink.messages().len(), 2);
        send("emails: 0 composed, 0 sent");
        assert_eq!(sink.messages().len(), 2, "nothing is sent twice");
        let mut lines: Vec<String> = html
            .lines()
            .filter(|l| l.contains("matched: "))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.extend(subjects(sink));
        lines
    };
    let ((lite, lite_sink), (pg, pg_sink), url) = demo_pair("digest-1");
    let on_sqlite = flow(lite.path(), &lite_sink);
    let on_pg = flow(pg.path(), &pg_sink);
    assert!(on_sqlite.len() > 2, "{on_sqlite:?}");
    // The same "matched: …" lines in the preview, and the same subjects sent.
    assert_eq!(on_pg, on_sqlite);
    let sent = crate::support::postgres::query(
        &url,
        "SELECT digest_name || ' ' || status FROM outbox ORDER BY id",
    );
    assert_eq!(sent, ["breaking sent", "briefing sent"]);
}

/// A daemon on PostgreSQL: it composes and sends the demo's alert and digest, and `status`
/// (another process, reading the same PostgreSQL) reports them while it runs.
#[test]
fn a_daemon_on_postgresql_sends_and_status_reports_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).expect("mkdir");
    let sink = SmtpSink::start(&mail, &[]);
    let url = fresh_database_url();
    demo_config(tmp.path(), sink.port, &store_table(&url, "daemon-1", "2m"));
    let mut child = Command::new(BIN)
        .args(["run", "--config", "config/demo.toml"])
        .current_dir(tmp.path())
        .env("NEWSWATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    // A generous bound for a slow machine, not a speed claim: the emails normally come in a
    // few seconds. Waiting for the next log line is the pause between looks. Done once `status`
    // (another process, while the daemon runs) reports the alert and the digest sent.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut status = None;
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if sink.messages().len() >= 2 {
            let report = status_json(tmp.path());
            if sent_names(&report) == ["breaking", "briefing"].into() {
                status = Some(report);
                break;
            }
        }
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().expect("wait");
    log.extend(lines.iter());
    let log = log.join("\n");
    assert!(exit.success(), "{exit:?}\n{log}");
    let report = status
        .unwrap_or_else(|| panic!("status never reported the alert and the digest sent\n{log}"));
    assert_eq!(report["feeds"].as_array().map(Vec::len), Some(5));
    assert!(
        report["feeds"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|f| f["polled"] == true),
        "{report:#}"
    );
    // The demo's alert (window 0 s) goes out with each batch of matches written, so in one
    // email or a few; the digest 5 s after its first match, once, or again should a match come
    // later. Whatever the split: once the daemon stopped, every email the server saw is one
    // the outbox recorded as sent, and nothing is left unsent.
    let after = status_json(tmp.path());
    let sent = sink.messages().len();
    assert_eq!(
        after["outbox"]["sent"].as_u64(),
        Some(sent as u64),
        "{after:#}\n{log}"
    );
    assert_eq!(after["outbox"]["queued"], 0, "{after:#}");
    assert_eq!(after["outbox"]["failed"], 0, "{after:#}");
}

/// The names of the alerts and digests `status` reports sent.
fn sent_names(report: &serde_json::Value) -> std::collections::BTreeSet<&str> {
    report["digests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["sent"].as_u64() >= Some(1))
        .filter_map(|d| d["name"].as_str())
        .collect()
}

/// `status --json`, parsed, after checking it succeeded.
fn status_json(tmp: &Path) -> serde_json::Value {
    let status = run(tmp, &["status", "--json"]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    serde_json::from_str(&stdout).expect("status --json")
}

/// Two nodes on one PostgreSQL with different rules: each beats with its rules hash, and the
/// one that sees the other's differing hash says so in `/metrics`; once they agree, it clears.
#[tokio::test]
async fn a_node_with_other_rules_is_flagged_in_metrics() {
    use newswatch::config::Config;
    use newswatch::pipeline::{Feeds, Pipeline};
    use newswatch::rules::RuleSet;

    // The driver blocks: its calls go off the test's runtime thread.
    let url = tokio::task::spawn_blocking(fresh_database_url)
        .await
        .expect("a database");
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = |name: &str, query: &str| -> (Config, RuleSet) {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
        std::fs::write(
            dir.join("rules/r.toml"),
            format!("[[rule]]\nid = \"r\"\nquery = \"{query}\"\n"),
        )
        .expect("rules");
        let path = dir.join("nw.toml");
        std::fs::write(
            &path,
            format!(
                "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\n[delivery]\nmethod = \"file\"\n\
                 dir = \"outbox\"\nfrom = \"nw <nw@example.org>\"\n{}",
                store_table(&url, name, "1m")
            ),
        )
        .expect("config");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let rules = RuleSet::load(&config.rule_files).unwrap_or_else(|e| panic!("{e:?}"));
        (config, rules)
    };
    let differ = |p: &Pipeline<'_>| -> String {
        p.metrics()
            .encode()
            .lines()
            .find(|l| l.starts_with("newswatch_cluster_rules_differ "))
            .unwrap_or_default()
            .to_string()
    };
    let now = newswatch::clock::now();
    let (ca, ra) = node("node-a", "Healey");
    let (cb, rb) = node("node-b", "Hegseth");
    let a = Pipeline::open(&ca, &ra).await.expect("open a");
    let b = Pipeline::open(&cb, &rb).await.expect("open b");
    a.cycle(now, Feeds::All).await.expect("a cycles");
    assert_eq!(
        differ(&a),
        "newswatch_cluster_rules_differ 0",
        "alone so far"
    );
    b.cycle(now, Feeds::All).await.expect("b cycles");
    assert_eq!(differ(&b), "newswatch_cluster_rules_differ 1");
    a.cycle(now, Feeds::All).await.expect("a cycles");
    assert_eq!(differ(&a), "newswatch_cluster_rules_differ 1");
    let db = url.clone();
    let hashes = tokio::task::spawn_blocking(move || {
        crate::support::postgres::query(
            &db,
            "SELECT name || ' ' || rules_hash FROM nodes ORDER BY name",
        )
    })
    .await
    .expect("query");
    assert_eq!(hashes.len(), 2);
    assert_ne!(hashes[0][7..], hashes[1][7..], "{hashes:?}");
    // Node b comes back with node a's rules: nobody differs.
    drop(b);
    let (cb, rb) = node("node-b", "Healey");
    let b = Pipeline::open(&cb, &rb).await.expect("open b again");
    b.cycle(now, Feeds::All).await.expect("b cycles");
    assert_eq!(differ(&b), "newswatch_cluster_rules_differ 0");
    a.cycle(now, Feeds::All).await.expect("a cycles");
    assert_eq!(differ(&a), "newswatch_cluster_rules_differ 0");
}
