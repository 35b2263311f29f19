//! PostgreSQL restarted under running nodes (issue 17, docs/cluster.md "Failures"): two `run`
//! daemons share a PostgreSQL of the test's own, 20 loopback feeds and one SMTP server. The
//! server is stopped (`pg_ctl stop -m fast`) while polls are in flight and new articles keep
//! arriving, and started again later. While it is down the nodes keep running and say why they
//! cannot work, and `run --once` fails naming the store; once it is back, every article that
//! arrived is matched once, in exactly one delivered digest, and the SMTP server sees each
//! email once.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::cluster_nodes::{
    Node, Setup, count, delivered, each_email_once, let_pass, mail_sink, node_config, serve_wave,
    wait_for_line, wait_until,
};
use crate::support::bin::command;
use crate::support::http::TestServer;
use crate::support::postgres::{PrivateServer, query};

const FEEDS: usize = 20;
const NODES: usize = 2;
/// `[fetch] interval`, in seconds.
const INTERVAL: u64 = 2;
/// How long PostgreSQL stays down once the nodes have noticed: longer than the nodes' claims
/// on what they were doing need to be renewed, and than a feed's interval.
const DOWN: Duration = Duration::from_secs(6);
/// A password the nodes' config names (the test server trusts its socket and never asks for
/// it): no error may show it.
const PASSWORD: &str = "restart-secret-8d1f";

#[test]
#[allow(clippy::too_many_lines)]
fn two_nodes_ride_out_a_postgresql_restart_while_articles_arrive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    serve_wave(&server, FEEDS, 1);
    let (_mail, sink) = mail_sink(tmp.path());
    let pg = PrivateServer::start("restart");
    let url = pg.url("restart");
    let (tx, log) = channel::<String>();
    let mut lines = Vec::new();
    let setup = Setup {
        url: &url,
        server: &server,
        smtp_port: sink.port,
        feeds: FEEDS,
        per_node: None,
        interval: INTERVAL,
        delivery_extra: "",
        // `per_host` is the cluster's (every feed is on one host): every feed may be in flight.
        fetch_extra: "concurrency = 16\nper_host = 32\nhost_spacing = \"0s\"",
    };
    let config = |n: usize| {
        let path = node_config(tmp.path(), n, &setup);
        let text = std::fs::read_to_string(&path).expect("read config");
        let text = text.replacen(
            "[store]\n",
            "[store]\npassword_env = \"NW_TEST_PG_PASSWORD\"\n",
            1,
        );
        std::fs::write(&path, text).expect("write config");
        path
    };
    let mut nodes: Vec<Node> = (1..=NODES)
        .map(|n| Node::start_with_env(&config(n), n, &tx, &[("NW_TEST_PG_PASSWORD", PASSWORD)]))
        .collect();
    let limit = Duration::from_secs(120);
    wait_until(&log, &mut lines, limit, "wave 1 delivered", || {
        delivered(&url, FEEDS)
    });

    // Wave 2 arrives; the feed server holds its answers, so the polls that fetch it are in
    // flight when PostgreSQL stops, and end (fetched) while it is down.
    server.hold();
    let held_from = Instant::now();
    serve_wave(&server, FEEDS, 2);
    wait_until(
        &log,
        &mut lines,
        limit,
        "every feed's poll in flight",
        || {
            server
                .seen()
                .iter()
                .filter(|s| s.at >= held_from)
                .map(|s| s.path.clone())
                .collect::<BTreeSet<_>>()
                .len()
                == FEEDS
        },
    );
    pg.stop();
    server.answer();
    // Wave 3 arrives while it is down.
    serve_wave(&server, FEEDS, 3);
    // `run --once` against the stopped server (beside the nodes' wait): a clear error naming
    // the store, never its password, and a non-zero exit.
    let once = command(&["run", "--once", "--config"])
        .arg(config(NODES + 1))
        .env("NW_TEST_PG_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run --once");
    wait_for_line(
        &log,
        &mut lines,
        limit,
        "a node failing to store the polls it fetched",
        |l| l.contains("cannot store polls"),
    );
    // Each node says why it cannot work, naming the store (never the password; before the
    // stop nothing failed, so any such line is the outage's).
    for n in 1..=NODES {
        let prefix = format!("node-{n}: ");
        wait_for_line(
            &log,
            &mut lines,
            limit,
            &format!("node-{n} naming the store"),
            |l| {
                l.starts_with(&prefix)
                    && (l.contains(" ERROR ") || l.contains(" WARN "))
                    && l.contains(&url)
            },
        );
    }
    let once = once.wait_with_output().expect("run --once ends");
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert_eq!(once.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot open the PostgreSQL store {url}")),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    eprintln!("run --once with PostgreSQL down: {}", stderr.trim());
    let_pass(&log, &mut lines, DOWN);
    for (n, node) in nodes.iter_mut().enumerate() {
        assert!(
            node.child.try_wait().expect("try_wait").is_none(),
            "node-{} exited while PostgreSQL was down\n{}",
            n + 1,
            lines.join("\n")
        );
    }
    assert!(!lines.iter().any(|l| l.contains(PASSWORD)));

    pg.start_again();
    wait_until(&log, &mut lines, limit, "waves 2 and 3 delivered", || {
        delivered(&url, 3 * FEEDS)
    });
    for node in &nodes {
        node.signal("TERM");
    }
    for node in &mut nodes {
        let status = node.child.wait().expect("wait");
        assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
    }
    lines.extend(log.try_iter());
    let report = lines.join("\n");

    // Every article matched exactly once (one rule: one match each), none left to match, each
    // match in exactly one desk digest.
    assert_eq!(count(&url, "SELECT COUNT(*) FROM articles"), 3 * FEEDS);
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM matches"),
        3 * FEEDS,
        "{report}"
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM unmatched"), 0);
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(*) FROM digest_items WHERE digest_name = 'desk'"
        ),
        3 * FEEDS
    );
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(DISTINCT match_id) FROM digest_items WHERE digest_name = 'desk'"
        ),
        3 * FEEDS
    );
    // Each minute slot: at most one email.
    let per_slot = query(
        &url,
        "SELECT COUNT(*)::TEXT FROM digests WHERE name = 'minute' GROUP BY slot",
    );
    assert!(per_slot.iter().all(|n| n == "1"), "{per_slot:?}");
    // The SMTP server stored each sent email exactly once, and nothing else.
    each_email_once(&url, &sink.messages(), &report);
}
