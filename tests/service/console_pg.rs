//! The web console on a PostgreSQL store (issues 17 and 18), over real HTTP on the built binary
//! and the test PostgreSQL: `newswatch console` over a state the demo filled there shows every
//! page with the state's own content (feeds, polls, matches and their counts, rules, the sent
//! digest), and its retry POST acts on the shared store; a daemon with `[store]` serves the
//! console on `[http]`, and its "Send digest now" reaches the SMTP server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use newswatch::config::PostgresSettings;
use newswatch::model::OutboxStatus;
use newswatch::store::Store;

use super::console::{Console, filled_state, url_enc};
use super::console_daemon::{Daemon, csrf, rss, write_config};
use crate::support::http::TestServer;
use crate::support::postgres::{fresh_database_url, query, store_table};
use crate::support::smtp::SmtpSink;

/// The demo and the hostile feed run once on a fresh database of the test PostgreSQL:
/// (temp dir, config path, the database's URL).
fn pg_state() -> (tempfile::TempDir, PathBuf, String) {
    let url = fresh_database_url();
    let (tmp, config) = filled_state(&store_table(&url, "demo-pg", "2m"));
    (tmp, config, url)
}

/// The store the test writes through, as a node would (what delivery calls).
fn open(url: &str) -> Store {
    Store::open_postgres(&PostgresSettings {
        url: url.to_string(),
        password: None,
        pool_size: 1,
        node_name: "test-writer".into(),
        lease: PostgresSettings::DEFAULT_LEASE,
    })
    .expect("open the PostgreSQL store")
}

fn no_sqlite_file(dir: &Path) {
    assert!(
        !dir.join("state").join(newswatch::store::DB_FILE).exists(),
        "the state is in PostgreSQL only"
    );
}

#[test]
fn the_standalone_console_shows_every_page_of_a_postgresql_state() {
    let (tmp, config, url) = pg_state();
    no_sqlite_file(tmp.path());
    let c = Console::start(&config);
    let get = |target: &str| {
        let r = c.get(target, &[]);
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        assert_eq!(
            r.header("content-security-policy"),
            Some(newswatch::console::CSP),
            "{target}"
        );
        r.body
    };

    // The overview: the digest's next slot, the rules' chart, the outbox.
    let overview = get("/");
    for needle in [
        "briefing",
        "healey-hegseth-talks",
        "runs alone and is read-only",
    ] {
        assert!(overview.contains(needle), "/ lacks {needle:?}: {overview}");
    }
    // Every configured feed, with its health; each feed's page lists its poll.
    let feeds = get("/feeds");
    for name in [
        "Northgate Chronicle",
        "Atlantic Wire",
        "Kyiv Ledger",
        "Continental Defence Review",
        "Meridian Sports &amp; Business",
        "Hostile &lt;Wire&gt;",
    ] {
        assert!(feeds.contains(name), "/feeds lacks {name:?}: {feeds}");
    }
    let kyiv = get(&format!("/feeds/{}", url_enc("Kyiv Ledger")));
    assert!(kyiv.contains("<table id=\"polls\">"), "{kyiv}");
    assert!(kyiv.contains("<td class=\"ok\">fetched</td>"), "{kyiv}");

    // The rules page counts what PostgreSQL holds, rule by rule.
    let rules = get("/rules");
    let counts = query(
        &url,
        "SELECT rule_id || ' ' || COUNT(*) FROM matches GROUP BY rule_id",
    );
    assert!(!counts.is_empty(), "the demo matched something");
    for line in &counts {
        let (rule, n) = line.split_once(' ').expect("rule and count");
        let row = rules
            .split(&format!("<a href=\"/rules/{rule}\">{rule}</a></td><td>"))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for {rule}: {rules}"));
        assert!(
            row.ends_with(&format!("<td class=\"opt\">{n}</td>")),
            "{rule} has {n} matches: {row}"
        );
    }
    let rule = get("/rules/healey-hegseth-talks");
    assert!(rule.contains("@healey"), "the rule's query: {rule}");

    // Matches, filtered by rule and by feed, highlighted.
    let matches = get("/matches?rule=healey-hegseth-talks");
    assert!(matches.contains("<mark>"), "{matches}");
    assert!(matches.contains("Healey"), "{matches}");
    let hostile = get(&format!("/matches?feed={}", url_enc("Hostile <Wire>")));
    assert!(
        hostile.contains("&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;"),
        "{hostile}"
    );
    assert!(!hostile.contains("javascript:"), "{hostile}");

    // The playground runs over the articles PostgreSQL holds.
    let play =
        get("/playground?partial=1&q=%40healey+NEAR%2F20+%40hegseth&against=healey-hegseth-talks");
    let hits: usize = play
        .split("<b id=\"hit-count\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a hit count: {play}"));
    assert!(hits >= 2, "{play}");

    // The digest the demo sent, framed.
    let digests = get("/digests");
    assert!(digests.contains("briefing"), "{digests}");
    let digest = get("/digests/1");
    assert!(digest.contains("<iframe class=\"digest\""), "{digest}");
    let frame = c.get("/digests/1/html", &[]);
    assert_eq!(frame.status, 200);
    assert!(frame.body.contains("<html"), "{}", frame.body);
    assert!(get("/channels").contains("<h1>Channels</h1>"));
    assert_eq!(c.get("/feeds/nope", &[]).status, 404);
}

#[test]
fn the_console_retries_a_failed_email_and_channel_message_on_postgresql() {
    let (_tmp, config, url) = pg_state();
    let mut s = open(&url);
    let id: i64 = query(&url, "SELECT MIN(id)::text FROM outbox")[0]
        .parse()
        .expect("an id");
    // The demo's email was sent; it is made failed by hand, since on PostgreSQL `mark_failed`
    // never touches a sent message (a node whose send outlasted its claim must not undo
    // another node's send).
    query(
        &url,
        &format!(
            "UPDATE outbox SET status = 'failed', last_error = '550 <mailbox> unavailable'
             WHERE id = {id} RETURNING id::text"
        ),
    );
    let c = Console::start(&config);
    let page = c.get(&format!("/digests/{id}"), &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("550 &lt;mailbox&gt; unavailable"),
        "{}",
        page.body
    );
    let token = csrf(&page.body);
    let target = format!("/outbox/{id}/retry");
    assert_eq!(c.post(&target, &[], "csrf=wrong").status, 403);
    assert_eq!(s.message(id).expect("row").status, OutboxStatus::Failed);
    let r = c.post(&target, &[], &format!("csrf={token}"));
    assert_eq!(r.status, 303, "{}", r.body);
    let m = s.message(id).expect("row");
    assert_eq!(m.status, OutboxStatus::Queued, "queued again in PostgreSQL");
    assert_eq!(
        m.last_error.as_deref(),
        Some("retry requested from the console")
    );
    let again = c.post(&target, &[], &format!("csrf={token}"));
    assert_eq!(again.status, 409, "only a failed email: {}", again.body);
    assert_eq!(
        c.post("/outbox/999999/retry", &[], &format!("csrf={token}"))
            .status,
        404
    );

    // A failed channel message: listed on /channels, queued again by its retry POST.
    let now = newswatch::clock::now();
    let failed = s
        .queue_channel_message("breaking", "ops-room", "{}", now)
        .expect("queue");
    s.mark_channel_failed(failed, "HTTP 404: no_service")
        .expect("fail");
    let channels = c.get("/channels", &[]);
    assert!(
        channels.body.contains("HTTP 404: no_service"),
        "{}",
        channels.body
    );
    let target = format!("/channels/{failed}/retry");
    assert!(channels.body.contains(&format!("action=\"{target}\"")));
    let r = c.post(&target, &[], &format!("csrf={token}"));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        s.channel_message(failed).expect("row").status,
        OutboxStatus::Queued
    );
    assert_eq!(c.post(&target, &[], &format!("csrf={token}")).status, 409);
}

/// A console that would read a schema it does not know refuses to start, naming the store;
/// it never migrates the shared database itself.
#[test]
fn the_console_does_not_migrate_a_postgresql_store() {
    let url = fresh_database_url();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = super::console_daemon::write_config(tmp.path(), "http://127.0.0.1:9/x", 25);
    let mut text = std::fs::read_to_string(&config).expect("read");
    text.push_str(&store_table(&url, "console-only", "2m"));
    std::fs::write(&config, text).expect("write");
    let out = crate::support::bin::newswatch(&[
        "console",
        "--config",
        super::console::path(&config),
        "--listen",
        "127.0.0.1:0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("schema version 0 is older"), "{err}");
    assert!(
        crate::support::postgres::try_query(&url, "SELECT version::text FROM newswatch_schema")
            .is_err(),
        "nothing was created"
    );
}

/// The daemon on PostgreSQL serves the console on `[http]`: the feed page lists its polls,
/// the matches page the new match, and "Send digest now" composes through the daemon.
#[test]
fn a_daemon_on_postgresql_serves_the_console_and_sends_a_digest_now() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let feeds = TestServer::start();
    feeds.set(
        "/wire.rss",
        rss(&[("p1", "Hegseth lands in Warsaw"), ("p2", "Snow in Oslo")]),
    );
    let mail_dir = tmp.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mkdir");
    let sink = SmtpSink::start(&mail_dir, &[]);
    let config = write_config(tmp.path(), feeds.url("/wire.rss").as_str(), sink.port);
    let url = fresh_database_url();
    let mut text = std::fs::read_to_string(&config).expect("read");
    text.push_str(&store_table(&url, "daemon-console", "2m"));
    std::fs::write(&config, text).expect("write");
    let mut d = Daemon::start(&config, &[]);

    let matches = d.wait_page("/matches?rule=hegseth", "lands in Warsaw");
    assert!(!matches.contains("Snow in Oslo"), "{matches}");
    let wire = d.wait_page("/feeds/wire", "<table id=\"polls\">");
    assert!(
        wire.contains("<td class=\"ok\">fetched</td><td>200</td>"),
        "{wire}"
    );
    let overview = d.get("/");
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(
        overview.body.contains("<table id=\"stages\">"),
        "{}",
        overview.body
    );
    let token = csrf(&overview.body);
    let sent = d.post("/send-now/desk", &format!("csrf={token}"));
    assert_eq!(sent.status, 200, "{}\n{}", sent.body, d.report());
    assert!(sent.body.contains("Composed 1 email"), "{}", sent.body);
    let end = Instant::now() + Duration::from_secs(60);
    while sink.messages().is_empty() {
        assert!(Instant::now() < end, "no email\n{}", d.report());
        d.pause();
    }
    let text = String::from_utf8_lossy(&sink.messages()[0]).into_owned();
    assert!(text.contains("lands in Warsaw"), "{text}");
    d.wait_page("/digests", ">sent<");
    assert_eq!(
        query(&url, "SELECT status FROM outbox"),
        ["sent"],
        "the email is the shared store's"
    );
    no_sqlite_file(tmp.path());
}
