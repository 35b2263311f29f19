//! A send that outlasts the claim's lease (issue 17): two `run` daemons on one PostgreSQL, a
//! few loopback feeds, one SMTP server. First the SMTP server holds an email's DATA for more
//! than twice the lease before its 250: the sender renews its claim throughout, so the other
//! node, running beside it, never claims and sends it — the email arrives once. Then a sender
//! hung at DATA is stalled (SIGSTOP) past its claim: the other node takes the email over and
//! sends it once; the stalled node, resumed, says it lost the claim, and its late failure mark
//! changes nothing.

use std::sync::mpsc::channel;
use std::time::Duration;

use crate::cluster_nodes::{
    LEASE, Node, Setup, arm, bare, claimant, delivered, each_email_once, held_message, mail_sink,
    node_config, node_index, serve_wave, status_of, wait_for_line, wait_until,
};
use crate::support::http::TestServer;
use crate::support::mail::Mail;
use crate::support::postgres::fresh_database_url;

const FEEDS: usize = 5;
const NODES: usize = 2;
/// `[store] lease` here: the shortest allowed, so the test's waits stay short.
const SHORT_LEASE: Duration = Duration::from_secs(5);
/// How long the SMTP server holds the first email before its 250: over twice the lease.
const STALL: Duration = Duration::from_secs(12);
/// The SMTP final reply the nodes wait for: longer than `STALL`, and than the second sender's
/// stop (a lease, a quarter lease for the other node to look, its send), so the stopped node
/// is still sending when it resumes.
const FINAL_REPLY: &str = "20s";

#[test]
#[allow(clippy::too_many_lines)]
fn a_send_longer_than_the_lease_keeps_its_claim_and_a_stalled_sender_loses_it() {
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
        interval: 2,
        delivery_extra: &format!("final_reply_timeout = \"{FINAL_REPLY}\""),
        fetch_extra: "host_spacing = \"0s\"",
    };
    let nodes: Vec<Node> = (1..=NODES)
        .map(|n| {
            let path = node_config(tmp.path(), n, &setup);
            let text = std::fs::read_to_string(&path).expect("read config");
            let text = text.replacen(
                &format!("lease = \"{}s\"", LEASE.as_secs()),
                &format!("lease = \"{}s\"", SHORT_LEASE.as_secs()),
                1,
            );
            std::fs::write(&path, text).expect("write config");
            Node::start(&path, n, &tx)
        })
        .collect();
    let limit = Duration::from_secs(120);
    wait_until(&log, &mut lines, limit, "wave 1 delivered", || {
        delivered(&url, FEEDS)
    });

    // The long send: stored by the SMTP server at once, answered after STALL.
    arm(&mail, &format!("slow-final {}", STALL.as_secs()));
    serve_wave(&server, FEEDS, 2);
    let mut stalled = None;
    wait_until(&log, &mut lines, limit, "an email stalled at DATA", || {
        stalled = held_message(&mail, "STALLED");
        stalled.is_some()
    });
    let stalled = stalled.expect("a stalled email");
    let sender = claimant(&url, &stalled).expect("the stalled email is claimed");
    let by_sender = format!("{sender}: ");
    wait_for_line(&log, &mut lines, limit, "the stalled email sent", |l| {
        l.starts_with(&by_sender) && l.contains("email sent") && l.contains(&stalled)
    });
    assert_eq!(status_of(&url, &stalled).as_deref(), Some("sent"));
    assert!(
        !lines.iter().any(|l| l.contains("lost its claim")),
        "{}",
        lines.join("\n")
    );
    wait_until(&log, &mut lines, limit, "wave 2 delivered", || {
        delivered(&url, 2 * FEEDS)
    });
    let copies = |id: &str| {
        sink.messages()
            .iter()
            .filter(|m| bare(&Mail::parse(m).message_id) == id)
            .count()
    };
    assert_eq!(
        copies(&stalled),
        1,
        "the long send's email arrived more than once\n{}",
        lines.join("\n")
    );

    // The stalled sender: hung at DATA (nothing stored, no answer), then stopped past its
    // claim. The other node takes the email over and sends it.
    arm(&mail, "hang");
    serve_wave(&server, FEEDS, 3);
    let mut hung = None;
    wait_until(&log, &mut lines, limit, "an email hung at DATA", || {
        hung = held_message(&mail, "HUNG");
        hung.is_some()
    });
    let hung = hung.expect("a hung email");
    let stopped = claimant(&url, &hung).expect("the hung email is claimed");
    let s = node_index(&stopped);
    nodes[s].signal("STOP");
    wait_until(
        &log,
        &mut lines,
        limit,
        "the hung email sent by the other node",
        || status_of(&url, &hung).as_deref() == Some("sent"),
    );
    nodes[s].signal("CONT");
    let by_stopped = format!("{stopped}: ");
    wait_for_line(
        &log,
        &mut lines,
        limit,
        "the stopped node saying it lost the claim",
        |l| l.starts_with(&by_stopped) && l.contains("lost its claim") && l.contains(&hung),
    );
    wait_for_line(
        &log,
        &mut lines,
        limit,
        "the stopped node's send ending",
        |l| l.starts_with(&by_stopped) && l.contains("delivery deferred") && l.contains(&hung),
    );
    assert_eq!(status_of(&url, &hung).as_deref(), Some("sent"));
    wait_until(&log, &mut lines, limit, "wave 3 delivered", || {
        delivered(&url, 3 * FEEDS)
    });
    for node in &nodes {
        node.signal("TERM");
    }
    drop(nodes);
    lines.extend(log.try_iter());
    let report = lines.join("\n");
    let received = each_email_once(&url, &sink.messages(), &report);
    assert!(received.contains(&stalled) && received.contains(&hung));
}
