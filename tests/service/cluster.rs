//! Three daemons, one PostgreSQL (issue 17): three `run` processes with the same 200 feeds
//! (every 3 s) and rules, each its own node, on one loopback feed server and one SMTP server.
//! Over several intervals every feed is polled once per interval (the server's own request
//! times); then one node is killed with SIGKILL at a chosen moment, while it holds feed leases
//! and an unsent email (the SMTP server holds its DATA); then another node has its connections
//! cut while its send is held past its claim's lease, and keeps the claim. Every article is matched once and goes out in
//! exactly one delivered digest email, each minute slot gives one email, no email is lost or
//! doubled at the SMTP server, the killed node's feeds are taken over within a lease.

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::cluster_nodes::{
    LEASE, Node, Setup, arm, claimant, count, each_email_once, held_message, let_pass, mail_sink,
    node_config, node_index, requests, serve_wave, status_of, try_count, wait_for_line, wait_until,
};
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::postgres::{fresh_database_url, query, terminate_node};

const FEEDS: usize = 200;
const NODES: usize = 3;
/// `[fetch] interval`, shorter than the lease: a feed taken over after a kill is never polled
/// twice within one interval.
const INTERVAL: Duration = Duration::from_secs(4);
/// Intervals the steady-state check looks at.
const WINDOWS: u32 = 4;
/// How much later than due a poll may come on a loaded machine (the scheduler's wake-up, the
/// claim, the fetch), beyond the rounding of stored times up to the second (docs/cluster.md).
const SLACK: Duration = Duration::from_secs(2);
/// The SMTP final reply the nodes wait for: longer than the lease, so a hung send outlasts the
/// sender's claim's lease (renewed while the sender lives).
const FINAL_REPLY: &str = "15s";
/// How long the SMTP server holds the cut node's email before its 250: longer than the lease,
/// shorter than `FINAL_REPLY`.
const STALL: Duration = Duration::from_secs(13);

#[test]
#[allow(clippy::too_many_lines)]
fn three_nodes_poll_each_feed_once_per_interval_and_survive_a_kill_and_a_cut_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    serve_wave(&server, FEEDS, 1);
    let (mail, sink) = mail_sink(tmp.path());
    let url = fresh_database_url();
    let (tx, log) = channel::<String>();
    let mut lines = Vec::new();
    let setup = Setup {
        url: &url,
        server: &server,
        smtp_port: sink.port,
        feeds: FEEDS,
        per_node: None,
        interval: INTERVAL.as_secs(),
        delivery_extra: &format!("final_reply_timeout = \"{FINAL_REPLY}\""),
        // `per_host` is the cluster's (every feed is on one host): 16 per node, never the bound.
        fetch_extra: "concurrency = 16\nper_host = 48\nhost_spacing = \"0s\"",
    };
    let mut nodes: Vec<Option<Node>> = (1..=NODES)
        .map(|n| Some(Node::start(&node_config(tmp.path(), n, &setup), n, &tx)))
        .collect();
    let limit = Duration::from_secs(120);

    let url_ref = url.as_str();
    let delivered_all = |articles: usize| {
        move || {
            let url = url_ref;
            try_count(url, "SELECT COUNT(*) FROM articles") == Some(articles)
                && try_count(url, "SELECT COUNT(*) FROM unmatched") == Some(0)
                && try_count(
                    url,
                    "SELECT COUNT(*) FROM digest_items di JOIN outbox o ON o.digest = di.digest
                     WHERE di.digest_name = 'desk' AND o.status = 'sent'",
                ) == Some(articles)
        }
    };

    // Wave 1: every story matched and carried by a delivered desk digest.
    wait_until(
        &log,
        &mut lines,
        limit,
        "wave 1 delivered",
        delivered_all(FEEDS),
    );
    wait_until(&log, &mut lines, limit, "three nodes beating", || {
        count(&url, "SELECT COUNT(*) FROM nodes") == NODES
    });
    let hashes = query(&url, "SELECT DISTINCT rules_hash FROM nodes");
    assert_eq!(hashes.len(), 1, "the same rules on every node: {hashes:?}");
    // Every match notes that rule set, and the digests name it (text and HTML).
    assert_eq!(
        query(
            &url,
            "SELECT DISTINCT COALESCE(rules_hash, '') FROM matches"
        ),
        hashes
    );
    let named = format!("Matched with rule set {}.", hashes[0]);
    let with_matches: Vec<Mail> = sink
        .messages()
        .iter()
        .map(|m| Mail::parse(m))
        .filter(|m| m.text.contains("matched your rules") && !m.text.contains("Nothing new"))
        .collect();
    assert!(!with_matches.is_empty());
    for m in &with_matches {
        let text = m.text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains(&named) && m.html.contains(&named),
            "{}",
            m.text
        );
    }

    // Steady state: over WINDOWS intervals, every feed polled once per interval, by the
    // server's clock: no two polls of a feed closer than the interval (checked over the whole
    // run at the end), and no stretch without a poll longer than the interval plus the
    // rounding of stored due times up to the whole second plus SLACK (docs/cluster.md).
    let from = Instant::now();
    let end = from + INTERVAL * WINDOWS;
    let_pass(&log, &mut lines, end - from);
    let longest = INTERVAL + Duration::from_secs(1) + SLACK;
    let mut late = Vec::new();
    for (path, at) in requests(&server) {
        // The last poll before the window, those in it, and the window's end.
        let before = at.iter().rev().find(|t| **t < from).copied();
        let inside = at.iter().copied().filter(|t| *t >= from && *t < end);
        let marks: Vec<Instant> = before.into_iter().chain(inside).chain([end]).collect();
        let gaps: Vec<Duration> = marks.windows(2).map(|w| w[1] - w[0]).collect();
        if before.is_none_or(|b| from - b > longest) || gaps.iter().any(|g| *g > longest) {
            late.push((path, gaps));
        }
    }
    assert!(
        late.is_empty(),
        "feeds left more than {longest:?} without a poll: {late:?}"
    );
    let polled_in_window = requests(&server)
        .values()
        .filter(|at| at.iter().any(|t| *t >= from && *t < end))
        .count();
    assert_eq!(polled_in_window, FEEDS);

    // The kill: the SMTP server holds the next email's DATA; its sender is the victim, killed
    // while it holds that unsent email and feed leases. The feed server then holds every
    // answer, so the victim's next polls stay in flight, their leases held. On a loaded machine
    // the email's claim may run out before the victim's next polls start: then the moment is
    // missed, another node sends the email, and the test tries again with the next one.
    let mut waves = 1;
    let mut attempts = 0;
    let (victim, held_mail, leased) = loop {
        attempts += 1;
        assert!(
            attempts <= 3,
            "no moment when a node held an unsent email and feed leases\n{}",
            lines.join("\n")
        );
        arm(&mail, "hang");
        waves += 1;
        serve_wave(&server, FEEDS, waves);
        let mut held = None;
        wait_until(&log, &mut lines, limit, "an email held at DATA", || {
            held = held_message(&mail, "HUNG");
            held.is_some()
        });
        let held = held.expect("a held email");
        let Some(victim) = claimant(&url, &held) else {
            continue;
        };
        server.hold();
        let mut leased: Vec<String> = Vec::new();
        let still_held = || claimant(&url, &held).as_deref() == Some(victim.as_str());
        wait_until(
            &log,
            &mut lines,
            limit,
            "the victim holding feed leases, or its email's claim running out",
            || {
                leased = query(
                    &url,
                    &format!("SELECT name FROM feeds WHERE lease_node = '{victim}'"),
                );
                !leased.is_empty() || !still_held()
            },
        );
        if !leased.is_empty() && still_held() {
            break (victim, held, leased);
        }
        server.answer();
    };
    let v = node_index(&victim);
    nodes[v].as_ref().expect("the victim runs").signal("KILL");
    let killed_at = Instant::now();
    nodes[v] = None;
    server.answer();
    assert_eq!(
        claimant(&url, &held_mail).as_deref(),
        Some(victim.as_str()),
        "the victim still held the email when killed"
    );

    // Its feeds taken over within a lease (plus the quarter-lease recheck, the rounding of the
    // stored lease up to the second and SLACK), its email sent once by another node, its wave whole.
    let paths: Vec<String> = leased
        .iter()
        .map(|name| format!("/f{}.rss", &name["feed-".len()..]))
        .collect();
    wait_until(
        &log,
        &mut lines,
        limit,
        "the victim's feeds polled again",
        || {
            let by = requests(&server);
            paths.iter().all(|p| {
                by.get(p)
                    .is_some_and(|at| at.iter().any(|t| *t > killed_at))
            })
        },
    );
    let by = requests(&server);
    let takeover = paths
        .iter()
        .filter_map(|p| by[p].iter().find(|t| **t > killed_at))
        .map(|t| *t - killed_at)
        .max()
        .expect("the victim held feeds");
    eprintln!(
        "{} feeds held by {victim} at the kill, all polled again after {takeover:?}",
        paths.len()
    );
    assert!(
        takeover <= LEASE + LEASE / 4 + Duration::from_secs(1) + SLACK,
        "feeds taken over after {takeover:?}"
    );
    wait_until(
        &log,
        &mut lines,
        limit,
        "the kill's wave delivered",
        delivered_all(waves * FEEDS),
    );
    wait_until(&log, &mut lines, limit, "the held email sent", || {
        status_of(&url, &held_mail).as_deref() == Some("sent")
    });

    // The cut: the next email's sender is held at DATA longer than its claim's lease (the
    // SMTP server stores the email and answers 250 only after STALL) and loses its
    // connections meanwhile. It renews its claim over a new connection throughout the send,
    // so no other node sends the email; it sends it once, itself.
    arm(&mail, &format!("slow-final {}", STALL.as_secs()));
    waves += 1;
    serve_wave(&server, FEEDS, waves);
    let mut stalled = None;
    wait_until(&log, &mut lines, limit, "an email stalled at DATA", || {
        stalled = held_message(&mail, "STALLED");
        stalled.is_some()
    });
    let stalled = stalled.expect("a stalled email");
    let sender = claimant(&url, &stalled).expect("the stalled email is claimed by its sender");
    assert_ne!(sender, victim);
    let beat_before = query(
        &url,
        &format!("SELECT heartbeat::TEXT FROM nodes WHERE name = '{sender}'"),
    );
    assert!(
        terminate_node(&sender) > 0,
        "{sender} had connections to cut"
    );
    wait_until(
        &log,
        &mut lines,
        limit,
        "the last wave delivered",
        delivered_all(waves * FEEDS),
    );
    let by_sender = format!("{sender}: ");
    wait_for_line(
        &log,
        &mut lines,
        limit,
        "the stalled email sent by the cut node",
        |l| l.starts_with(&by_sender) && l.contains("email sent") && l.contains(&stalled),
    );
    // The node logs "email sent" at the server's 250 and marks the row just after.
    wait_until(
        &log,
        &mut lines,
        limit,
        "the stalled email marked sent",
        || status_of(&url, &stalled).as_deref() == Some("sent"),
    );
    wait_until(
        &log,
        &mut lines,
        limit,
        "the cut node beating again",
        || {
            query(
                &url,
                &format!("SELECT heartbeat::TEXT FROM nodes WHERE name = '{sender}'"),
            ) != beat_before
        },
    );
    assert_eq!(status_of(&url, &stalled).as_deref(), Some("sent"));
    wait_until(&log, &mut lines, limit, "a minute slot", || {
        count(
            &url,
            "SELECT COUNT(*) FROM outbox WHERE digest_name = 'minute' AND status = 'sent'",
        ) >= 1
    });
    for node in nodes.iter().flatten() {
        node.signal("TERM");
    }
    for node in nodes.iter_mut().flatten() {
        let status = node.child.wait().expect("wait");
        assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
    }
    lines.extend(log.try_iter());
    let report = lines.join("\n");

    // No feed polled twice within one interval, over the whole run (kill and cut included).
    for (path, at) in requests(&server) {
        for pair in at.windows(2) {
            assert!(
                pair[1] - pair[0] >= INTERVAL - Duration::from_millis(50),
                "{path} polled twice within {:?}\n{report}",
                pair[1] - pair[0]
            );
        }
    }
    // Every article matched exactly once (one rule: one match each), none left to match.
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM matches"),
        waves * FEEDS,
        "{report}"
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM unmatched"), 0);
    // Every match in exactly one desk digest (the key is (digest, match)).
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(DISTINCT match_id) FROM digest_items WHERE digest_name = 'desk'"
        ),
        waves * FEEDS
    );
    // Each minute slot: exactly one email.
    let per_slot = query(
        &url,
        "SELECT COUNT(*)::TEXT FROM digests WHERE name = 'minute' GROUP BY slot",
    );
    assert!(!per_slot.is_empty());
    assert!(per_slot.iter().all(|n| n == "1"), "{per_slot:?}");
    // The SMTP server stored each sent email exactly once (the held and the stalled one
    // included, under their Message-IDs), and nothing else.
    let received = each_email_once(&url, &sink.messages(), &report);
    assert!(received.contains(&held_mail) && received.contains(&stalled));
}
