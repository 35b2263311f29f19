//! WebSub push against a real hub implementation (issue 20): flask-websub 0.4.1 from PyPI,
//! run on loopback by `support::real_hub`. The daemon discovers the hub in the feed, subscribes,
//! answers the hub's verification of intent; the hub stores the subscription with the daemon's
//! secret; a `hub.mode=publish` makes the hub fetch the changed feed and push it, signed with
//! HMAC-SHA512, and the new article becomes an email without a poll by the daemon. With the
//! secret changed in the hub's own database, its next push is dropped as a bad signature. The
//! failure cases a real hub cannot be made to produce (forged bodies, renewals within seconds,
//! denials, a hub that is gone) run against our local hub in `websub.rs`.

use std::process::Command;

use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::real_hub::RealHub;
use crate::support::smtp::free_port;
use crate::survive::{text, wait_for_line};
use crate::websub::{LIMIT, atom, emails_with, http, start, stop, write_config};

const PATH: &str = "/world.atom";

/// Requests for the feed from the daemon, and from anything else (the hub fetching the topic;
/// flask-websub fetches with python-requests).
fn feed_requests(feed: &TestServer) -> (usize, usize) {
    let seen: Vec<_> = feed.seen().into_iter().filter(|s| s.path == PATH).collect();
    let by_daemon = seen
        .iter()
        .filter(|s| {
            s.headers
                .get("user-agent")
                .is_some_and(|ua| ua.starts_with("newswatch"))
        })
        .count();
    (by_daemon, seen.len() - by_daemon)
}

fn metrics(http_port: u16) -> String {
    let (code, body) = http("GET", &format!("127.0.0.1:{http_port}"), "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn flask_websub_verifies_and_pushes_a_signed_article_that_alerts_without_a_poll() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(hub) = RealHub::start(tmp.path(), 60) else {
        eprintln!(
            "SKIPPED: /usr/bin/python3 cannot make a venv (install python3-venv; scripts/test does)"
        );
        return;
    };
    let feed = TestServer::start();
    let topic = feed.url(PATH).to_string();
    // flask-websub publishes only a topic whose answer names the hub and itself in `Link`.
    let link = format!("<{}>; rel=\"hub\", <{topic}>; rel=\"self\"", hub.url());
    feed.set_linked(
        PATH,
        atom(&hub.url(), &topic, &[("a", "Ministers meet in Brussels")]),
        &link,
    );
    let (websub_port, http_port) = (free_port(), free_port());
    let config = write_config(tmp.path(), &topic, websub_port, http_port, "1h");
    let (child, rx) = start(&config, "info");
    let mut log = Vec::new();

    // Discovery on the first poll; the hub verifies intent before it answers the subscription.
    assert!(
        wait_for_line(&rx, "WebSub subscription verified", LIMIT, &mut log),
        "never verified\n{}\nhub:\n{}",
        log.join("\n"),
        hub.log()
    );
    // The hub stores the subscription once our answer to its challenge has reached it, with
    // the lease asked for ("5m": within its bounds), our callback and our secret.
    let stored = hub.wait_stored(LIMIT);
    let subs = hub.subscriptions();
    assert_eq!(subs.len(), 1, "{subs:?}\nhub:\n{}", hub.log());
    let sub = &subs[0];
    assert_eq!(stored, Some((300, sub.callback.clone())), "{}", hub.log());
    assert_eq!(sub.topic, topic);
    assert!(
        sub.callback
            .starts_with(&format!("http://127.0.0.1:{websub_port}/websub/")),
        "{}",
        sub.callback
    );
    assert!(
        sub.secret.as_ref().is_some_and(|s| s.len() >= 32),
        "the daemon gave the hub a secret: {sub:?}"
    );
    let (daemon_before, others_before) = feed_requests(&feed);
    assert!(daemon_before >= 1, "the daemon polled the feed once");
    assert_eq!(others_before, 0, "nobody else fetched it yet");

    // The feed changes; the publisher tells the hub; the hub fetches it and pushes it, signed.
    feed.set_linked(
        PATH,
        atom(
            &hub.url(),
            &topic,
            &[
                ("b", "Hegseth lands in Kyiv"),
                ("a", "Ministers meet in Brussels"),
            ],
        ),
        &link,
    );
    let (status, body) = hub.publish(&topic);
    assert_eq!(status, 202, "{body}\nhub:\n{}", hub.log());
    assert!(
        wait_for_line(&rx, "email sent", LIMIT, &mut log),
        "no email\n{}\nhub:\n{}",
        log.join("\n"),
        hub.log()
    );
    assert_eq!(emails_with(tmp.path(), "Hegseth lands in Kyiv"), 1);
    assert_eq!(
        feed_requests(&feed),
        (daemon_before, 1),
        "the hub fetched the feed once; the daemon did not poll it"
    );
    let m = metrics(http_port);
    let stored = r#"newswatch_websub_pushes_total{feed="World",result="stored"} 1"#;
    assert!(m.contains(stored), "{stored} in\n{m}");
    assert!(!m.contains(r#"result="bad_signature""#), "{m}");

    // The hub now signs with a secret the daemon never gave it: the push is acknowledged (the
    // hub must not learn which key is right) and dropped.
    hub.tamper_secrets("a-secret-the-daemon-never-gave-the-hub");
    feed.set_linked(
        PATH,
        atom(
            &hub.url(),
            &topic,
            &[
                ("c", "Hegseth forged bulletin"),
                ("b", "Hegseth lands in Kyiv"),
            ],
        ),
        &link,
    );
    let (status, body) = hub.publish(&topic);
    assert_eq!(status, 202, "{body}\nhub:\n{}", hub.log());
    // Eager tasks: the push was answered before the hub answered the publisher.
    let m = metrics(http_port);
    for series in [
        stored,
        r#"newswatch_websub_pushes_total{feed="World",result="bad_signature"} 1"#,
    ] {
        assert!(m.contains(series), "{series} in\n{m}\nhub:\n{}", hub.log());
    }
    assert_eq!(emails_with(tmp.path(), "forged bulletin"), 0);
    stop(child);

    let out = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ws = &json["feeds"][0]["websub"];
    assert_eq!(ws["hub"], hub.url(), "{ws}");
    assert_eq!(
        (ws["pushes"].as_u64(), ws["bad_signatures"].as_u64()),
        (Some(1), Some(1)),
        "{ws}"
    );
    assert_eq!(emails_with(tmp.path(), "forged bulletin"), 0);
}
