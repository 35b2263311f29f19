//! WebSub push end to end (issue 20): the built daemon against a local hub (`support::hub`)
//! and a feed on the loopback test server. The feed names the hub; the daemon subscribes, the
//! hub verifies intent through the callback listener, and pushes: a signed article becomes an
//! email in the same run without a poll, a forged one is dropped and counted, the lease is
//! renewed, an unknown callback or a wrong topic gets 404, a later poll of the pushed item adds
//! nothing, and a hub that is gone leaves the feed polled.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::bin::BIN;
use crate::support::http::TestServer;
use crate::support::hub::Hub;
use crate::support::mail;
use crate::support::smtp::free_port;
use crate::survive::{log_lines, run_once, text, wait_bounded, wait_for_line};

pub(crate) const LIMIT: Duration = Duration::from_secs(60);

const RULES: &str = r#"
[[rule]]
id = "hegseth"
title = "Hegseth"
query = "Hegseth"
"#;

/// An Atom feed naming `hub` and itself (`topic`), with `(id, title)` entries.
pub(crate) fn atom(hub: &str, topic: &str, entries: &[(&str, &str)]) -> Vec<u8> {
    let mut doc = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>World</title><id>{topic}</id><updated>2026-03-01T12:00:00Z</updated>
  <link rel="hub" href="{hub}"/>
  <link rel="self" href="{topic}"/>
"#
    );
    for (id, title) in entries {
        doc.push_str(&format!(
            "  <entry><id>urn:test:{id}</id><title>{title}</title><link href=\"https://news.example/{id}\"/>\
             <updated>2026-03-01T12:00:00Z</updated><summary>{title}.</summary></entry>\n"
        ));
    }
    doc.push_str("</feed>\n");
    doc.into_bytes()
}

pub(crate) fn write_config(
    dir: &Path,
    feed_url: &str,
    websub_port: u16,
    http_port: u16,
    interval: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir rules");
    std::fs::write(dir.join("rules/test.toml"), RULES).expect("write rules");
    let cfg = format!(
        r#"
state_dir = "state"
rules = ["rules/*.toml"]
new_feed_window = "520w"

[fetch]
min_interval = "100ms"
timeout = "5s"

[http]
listen = "127.0.0.1:{http_port}"

[delivery]
from = "newswatch <newswatch@example.org>"
method = "file"
dir = "outbox"

[[digest]]
name = "desk"
to = ["Analyst <analyst@example.org>"]

[websub]
listen = "127.0.0.1:{websub_port}"
callback_base = "http://127.0.0.1:{websub_port}/websub"
lease = "5m"
backup_interval = "1h"

[[feed]]
name = "World"
url = "{feed_url}"
interval = "{interval}"
allow_private_network = true
"#
    );
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

pub(crate) fn start(config: &Path, log: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("NEWSWATCH_LOG", log)
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start newswatch run");
    let rx = log_lines(&mut child);
    (child, rx)
}

pub(crate) fn stop(child: Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -TERM failed");
    let out = wait_bounded(child, LIMIT);
    assert!(out.status.success(), "{}", text(&out));
}

/// One request over a plain TCP connection: the status code and the body.
pub(crate) fn http(method: &str, addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

pub(crate) fn emails_with(dir: &Path, needle: &str) -> usize {
    mail::raw_messages(&dir.join("outbox"))
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains(needle))
        .count()
}

#[test]
fn a_pushed_article_alerts_without_a_poll_and_forgeries_are_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The hub grants 4 s leases, so a renewal (with a fifth of the lease left) comes quickly.
    let hub = Hub::start(4);
    let feed = TestServer::start();
    let topic = feed.url("/world.atom").to_string();
    feed.set(
        "/world.atom",
        atom(&hub.url(), &topic, &[("a", "Ministers meet in Brussels")]),
    );
    let (websub_port, http_port) = (free_port(), free_port());
    let config = write_config(tmp.path(), &topic, websub_port, http_port, "1h");
    let (child, rx) = start(&config, "info");
    let mut log = Vec::new();

    // Discovery on the first poll, then subscription and verification of intent.
    assert!(
        hub.wait_verified("subscribe", 1, LIMIT),
        "never subscribed: {:?}\n{}",
        hub.requests(),
        log.join("\n")
    );
    let first = hub.requests()[0].clone();
    assert_eq!(first.topic, topic);
    let prefix = format!("http://127.0.0.1:{websub_port}/websub/");
    let token = first
        .callback
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("callback {}", first.callback))
        .to_string();
    assert!(token.len() >= 32, "an unguessable callback: {token}");
    assert!(
        first.secret.as_ref().is_some_and(|s| s.len() >= 32),
        "a secret of its own"
    );
    assert_eq!(first.lease_asked, Some(300));
    let polls_before = feed
        .seen()
        .iter()
        .filter(|s| s.path == "/world.atom")
        .count();

    // A forged push, then a signed one: only the signed article reaches the reader.
    let forged = atom(&hub.url(), &topic, &[("c", "Hegseth forged bulletin")]);
    let forged_status = hub.publish(&topic, &forged, true);
    assert!(
        forged_status.iter().all(|s| (200..300).contains(s)),
        "a forgery is acknowledged: {forged_status:?}"
    );
    let pushed = atom(&hub.url(), &topic, &[("b", "Hegseth lands in Kyiv")]);
    let status = hub.publish(&topic, &pushed, false);
    assert_eq!(status.len(), 1, "one subscriber");
    assert!((200..300).contains(&status[0]), "{status:?}");
    assert!(
        wait_for_line(&rx, "email sent", LIMIT, &mut log),
        "no email\n{}",
        log.join("\n")
    );
    assert_eq!(
        emails_with(tmp.path(), "Hegseth lands in Kyiv"),
        1,
        "{}",
        log.join("\n")
    );
    assert_eq!(emails_with(tmp.path(), "forged bulletin"), 0);
    let polls_after = feed
        .seen()
        .iter()
        .filter(|s| s.path == "/world.atom")
        .count();
    assert_eq!(
        polls_after, polls_before,
        "the article came by push, not by a poll"
    );

    // The lease is renewed before it ends.
    assert!(
        hub.wait_verified("subscribe", 2, LIMIT),
        "no renewal: {:?}",
        hub.requests()
    );
    let renewal = hub.requests()[1].clone();
    assert_eq!(
        (renewal.callback.as_str(), renewal.topic.as_str()),
        (first.callback.as_str(), topic.as_str())
    );

    // Verification for another topic, or of an unknown callback, and pushes to one: 404.
    let addr = format!("127.0.0.1:{websub_port}");
    let other = format!(
        "/websub/{token}?hub.mode=subscribe&hub.topic=http%3A%2F%2Fevil.example%2F&hub.challenge=x"
    );
    assert_eq!(http("GET", &addr, &other).0, 404);
    let unknown = "/websub/0123456789abcdef?hub.mode=subscribe&hub.topic=x&hub.challenge=x";
    assert_eq!(http("GET", &addr, unknown).0, 404);
    assert_eq!(http("POST", &addr, "/websub/0123456789abcdef").0, 404);

    // status and /metrics show the push state.
    let out = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ws = &json["feeds"][0]["websub"];
    assert_eq!(ws["hub"], hub.url());
    assert_eq!(
        (ws["pushes"].as_u64(), ws["bad_signatures"].as_u64()),
        (Some(1), Some(1)),
        "{ws}"
    );
    assert!(ws["subscribed_until"].is_string(), "{ws}");
    let (code, metrics) = http("GET", &format!("127.0.0.1:{http_port}"), "/metrics");
    assert_eq!(code, 200);
    for series in [
        r#"newswatch_websub_pushes_total{feed="World",result="stored"} 1"#,
        r#"newswatch_websub_pushes_total{feed="World",result="bad_signature"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(
        !metrics.contains(first.secret.as_deref().unwrap_or("-")),
        "no secret in metrics"
    );
    stop(child);

    // A poll that lists the pushed item (and the first one) brings nothing new: one alert.
    feed.set(
        "/world.atom",
        atom(
            &hub.url(),
            &topic,
            &[
                ("a", "Ministers meet in Brussels"),
                ("b", "Hegseth lands in Kyiv"),
            ],
        ),
    );
    let out = run_once(&config, LIMIT);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("0 new articles, 0 matches"),
        "{}",
        text(&out)
    );
    assert_eq!(emails_with(tmp.path(), "Hegseth lands in Kyiv"), 1);
}

#[test]
fn a_hub_that_is_gone_leaves_the_feed_polled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Nothing listens at the hub's address.
    let hub = format!("http://127.0.0.1:{}/", free_port());
    let feed = TestServer::start();
    let topic = feed.url("/world.atom").to_string();
    feed.set(
        "/world.atom",
        atom(&hub, &topic, &[("a", "Ministers meet in Brussels")]),
    );
    let config = write_config(tmp.path(), &topic, free_port(), free_port(), "100ms");
    let (child, rx) = start(&config, "debug");
    let mut log = Vec::new();
    assert!(
        wait_for_line(&rx, "WebSub hub failed", LIMIT, &mut log),
        "{}",
        log.join("\n")
    );
    // Polling goes on at the feed's own interval: two more polls after the failure.
    assert!(
        wait_for_line(&rx, "not modified", LIMIT, &mut log),
        "{}",
        log.join("\n")
    );
    assert!(
        wait_for_line(&rx, "not modified", LIMIT, &mut log),
        "{}",
        log.join("\n")
    );
    stop(child);
    let out = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ws = &json["feeds"][0]["websub"];
    assert_eq!(ws["state"], "failed", "{ws}");
    assert!(
        ws["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{ws}"
    );
}

#[test]
fn a_feed_that_leaves_the_config_is_unsubscribed_on_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(3600);
    let feed = TestServer::start();
    let topic = feed.url("/world.atom").to_string();
    feed.set(
        "/world.atom",
        atom(&hub.url(), &topic, &[("a", "Ministers meet in Brussels")]),
    );
    let other = feed.url("/other.atom").to_string();
    feed.set(
        "/other.atom",
        atom(&hub.url(), &other, &[("o", "Weather in Oslo")]),
    );
    let config = write_config(tmp.path(), &topic, free_port(), free_port(), "1h");
    let text_with_other = std::fs::read_to_string(&config).expect("config")
        + &format!(
            "\n[[feed]]\nname = \"Other\"\nurl = \"{other}\"\ninterval = \"1h\"\nwebsub = false\n"
        );
    std::fs::write(&config, &text_with_other).expect("config");
    let (child, rx) = start(&config, "info");
    let mut log = Vec::new();
    assert!(
        hub.wait_verified("subscribe", 1, LIMIT),
        "{:?}",
        hub.requests()
    );
    // `websub = false`: the other feed names the same hub but is never subscribed.
    assert!(
        hub.requests().iter().all(|r| r.topic == topic),
        "{:?}",
        hub.requests()
    );
    let callback = hub.requests()[0].callback.clone();

    // World leaves the config; SIGHUP.
    let start_of_world = text_with_other
        .find("[[feed]]\nname = \"World\"")
        .expect("World's table");
    let end_of_world = text_with_other
        .find("\n[[feed]]\nname = \"Other\"")
        .expect("Other's table");
    let without = format!(
        "{}{}",
        &text_with_other[..start_of_world],
        &text_with_other[end_of_world..]
    );
    std::fs::write(&config, without).expect("config");
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    assert!(
        wait_for_line(&rx, "reload applied", LIMIT, &mut log),
        "{}",
        log.join("\n")
    );
    assert!(
        hub.wait_verified("unsubscribe", 1, LIMIT),
        "not unsubscribed: {:?}\n{}",
        hub.requests(),
        log.join("\n")
    );
    let unsub = hub
        .requests()
        .into_iter()
        .find(|r| r.mode == "unsubscribe")
        .expect("unsubscribe");
    assert_eq!((unsub.callback, unsub.topic), (callback, topic.clone()));
    // The hub has nobody left to push to.
    assert!(hub.publish(&topic, b"<feed/>", false).is_empty());
    stop(child);
}

#[test]
fn a_feed_added_by_a_reload_is_pushed_without_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(3600);
    let feed = TestServer::start();
    let topic = feed.url("/world.atom").to_string();
    feed.set(
        "/world.atom",
        atom(&hub.url(), &topic, &[("a", "Ministers meet in Brussels")]),
    );
    let added = feed.url("/added.atom").to_string();
    feed.set(
        "/added.atom",
        atom(&hub.url(), &added, &[("x", "Weather in Oslo")]),
    );
    let http_port = free_port();
    let config = write_config(tmp.path(), &topic, free_port(), http_port, "1h");
    let (child, rx) = start(&config, "info");
    let mut log = Vec::new();
    assert!(
        hub.wait_verified("subscribe", 1, LIMIT),
        "{:?}",
        hub.requests()
    );

    // A second feed on the same hub joins the config; SIGHUP.
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[feed]]\nname = \"Added\"\nurl = \"{added}\"\ninterval = \"1h\"\nallow_private_network = true\n"
    ));
    std::fs::write(&config, text).expect("config");
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    assert!(
        wait_for_line(&rx, "reload applied", LIMIT, &mut log),
        "{}",
        log.join("\n")
    );
    // Its callback answers the hub's verification, and takes its pushes, in the same run.
    assert!(
        hub.wait_verified("subscribe", 2, LIMIT),
        "the added feed is not verified: {:?}\n{}",
        hub.requests(),
        log.join("\n")
    );
    assert!(
        hub.requests().iter().any(|r| r.topic == added),
        "{:?}",
        hub.requests()
    );
    let pushed = atom(&hub.url(), &added, &[("y", "Hegseth in the added feed")]);
    let status = hub.publish(&added, &pushed, false);
    assert_eq!(status.len(), 1, "one subscriber to the added topic");
    assert!((200..300).contains(&status[0]), "{status:?}");
    assert!(
        wait_for_line(&rx, "email sent", LIMIT, &mut log),
        "no email\n{}",
        log.join("\n")
    );
    assert_eq!(emails_with(tmp.path(), "Hegseth in the added feed"), 1);
    let (code, metrics) = http("GET", &format!("127.0.0.1:{http_port}"), "/metrics");
    assert_eq!(code, 200);
    let series = r#"newswatch_websub_pushes_total{feed="Added",result="stored"} 1"#;
    assert!(metrics.contains(series), "{series} in\n{metrics}");
    stop(child);
}
