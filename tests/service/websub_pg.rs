//! WebSub on PostgreSQL (issue 20 on issue 17's backend): two daemons share one PostgreSQL and
//! a local hub (`support::hub`). The subscription is one row in the shared `websub` table; the
//! hub's callback URL names node A's listener, and a push that reaches node B instead (a load
//! balancer in front of both) is verified with the same secret and stored there: each pushed
//! article alerts exactly once, whichever node received it, `status` shows the pushes, and the
//! hub was asked once.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;

use hmac::{Hmac, Mac};

use super::websub::{LIMIT, atom, start, stop, write_config};
use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::hub::Hub;
use crate::support::mail;
use crate::support::postgres::{fresh_database_url, query, store_table};
use crate::support::smtp::free_port;
use crate::survive::text;

/// Emails containing `needle` in either node's outbox directory.
fn emails_with(dirs: &[&Path], needle: &str) -> usize {
    dirs.iter()
        .flat_map(|d| mail::raw_messages(&d.join("outbox")))
        .filter(|m| String::from_utf8_lossy(m).contains(needle))
        .count()
}

/// A push as a hub sends it: `body` POSTed to `addr` + `path`, signed with `secret`
/// (`X-Hub-Signature: sha256=…`); the status code.
fn push(addr: &str, path: &str, body: &[u8], secret: &str) -> u16 {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/atom+xml\r\n\
         X-Hub-Signature: sha256={hex}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send");
    s.write_all(body).expect("send the body");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    raw.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn on_postgresql_a_push_to_either_node_alerts_once() {
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let hub = Hub::start(300);
    let feed = TestServer::start();
    let topic = feed.url("/world.atom").to_string();
    feed.set(
        "/world.atom",
        atom(&hub.url(), &topic, &[("a", "Ministers meet in Brussels")]),
    );
    let url = fresh_database_url();
    let (wa, wb) = (free_port(), free_port());
    let config_a = write_config(a.path(), &topic, wa, free_port(), "1h");
    let config_b = write_config(b.path(), &topic, wb, free_port(), "1h");
    // Both nodes hand hubs node A's callback URL; B listens on its own port.
    for (config, node) in [(&config_a, "node-a"), (&config_b, "node-b")] {
        let mut toml = std::fs::read_to_string(config).expect("read");
        toml = toml.replace(
            &format!("callback_base = \"http://127.0.0.1:{wb}/websub\""),
            &format!("callback_base = \"http://127.0.0.1:{wa}/websub\""),
        );
        toml.push_str(&store_table(&url, node, "1m"));
        std::fs::write(config, toml).expect("write");
    }
    let (node_a, rx_a) = start(&config_a, "info");
    let (node_b, rx_b) = start(&config_b, "info");
    let mut log = Vec::new();

    assert!(
        hub.wait_verified("subscribe", 1, LIMIT),
        "never subscribed: {:?}",
        hub.requests()
    );
    let first = hub.requests()[0].clone();
    let prefix = format!("http://127.0.0.1:{wa}/websub/");
    let token = first
        .callback
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("callback {}", first.callback))
        .to_string();
    let secret = first.secret.clone().expect("a secret");
    assert_eq!(
        query(&url, "SELECT state FROM websub"),
        ["active"],
        "one shared subscription, verified"
    );

    // Through the hub, to node A.
    let to_a = atom(&hub.url(), &topic, &[("b", "Hegseth lands in Kyiv")]);
    let status = hub.publish(&topic, &to_a, false);
    assert!(status.iter().all(|s| (200..300).contains(s)), "{status:?}");
    // Straight to node B, as a balancer in front of both would send it.
    let to_b = atom(&hub.url(), &topic, &[("c", "Hegseth meets Healey in Rome")]);
    let code = push(
        &format!("127.0.0.1:{wb}"),
        &format!("/websub/{token}"),
        &to_b,
        &secret,
    );
    assert!((200..300).contains(&code), "node B took the push: {code}");
    // A forgery to node B is acknowledged and dropped.
    let forged = atom(&hub.url(), &topic, &[("d", "Hegseth forged bulletin")]);
    let code = push(
        &format!("127.0.0.1:{wb}"),
        &format!("/websub/{token}"),
        &forged,
        "not the secret",
    );
    assert!((200..300).contains(&code), "{code}");

    let dirs = [a.path(), b.path()];
    for needle in ["Hegseth lands in Kyiv", "Hegseth meets Healey in Rome"] {
        let end = std::time::Instant::now() + LIMIT;
        while emails_with(&dirs, needle) == 0 {
            assert!(
                std::time::Instant::now() < end,
                "no email with {needle:?}\n{}",
                log.join("\n")
            );
            // The pause between looks: the next log line of either node, at most a moment.
            for rx in [&rx_a, &rx_b] {
                if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    log.push(line);
                }
            }
        }
    }
    assert_eq!(
        query(
            &url,
            "SELECT pushes::text || ' ' || bad_signatures::text FROM websub"
        ),
        ["2 1"],
        "both nodes' pushes counted in the shared row"
    );
    let out = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&config_b)
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["feeds"][0]["websub"]["pushes"].as_u64(),
        Some(2),
        "{json}"
    );
    // One subscription request for the feed, from whichever node got to the row first
    // (the hub's 300 s lease needs no renewal during the test).
    let asked = hub
        .requests()
        .iter()
        .filter(|r| r.mode == "subscribe")
        .count();
    assert_eq!(asked, 1, "{:?}", hub.requests());
    stop(node_a);
    stop(node_b);
    for needle in ["Hegseth lands in Kyiv", "Hegseth meets Healey in Rome"] {
        assert_eq!(emails_with(&dirs, needle), 1, "{needle} alerted once");
    }
    assert_eq!(emails_with(&dirs, "forged bulletin"), 0);
}
