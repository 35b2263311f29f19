//! SIGKILL during a channel send (issue 19): the built binary is killed while a webhook
//! receiver holds its request unanswered, once before and once after the receiver processed it;
//! the next run sends the same message under the same idempotency key, so the receiver
//! processes it exactly once, and the outbox records it sent.

use std::process::Stdio;
use std::time::Duration;

use newswatch::model::OutboxStatus;
use newswatch::store::Store;

use crate::support::http::{GROWING, TestServer};
use crate::support::receiver::{Fault, Receiver, Service};
use crate::survive::{command, run_once, text, write_config};

#[test]
fn a_kill_during_a_channel_send_delivers_once_after_restart() {
    // (fault, what the receiver counts for the key at the end: (processed, seen))
    for (fault, counted) in [(Fault::ProcessThenHang, (1, 2)), (Fault::Hang, (1, 1))] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let feed = TestServer::start();
        feed.freeze_at(1);
        let rx = Receiver::start();
        rx.serve("/hook", Service::Webhook(Some("k".into())));
        rx.faults("/hook", &[fault]);
        let config = write_config(
            tmp.path(),
            &state,
            feed.url(GROWING).as_str(),
            "method = \"file\"\ndir = \"outbox\"",
        );
        std::fs::write(tmp.path().join("hook-secret"), "k").expect("secret");
        let cfg = std::fs::read_to_string(&config).expect("read config");
        let cfg = cfg.replace(
            r#"to = ["Analyst <analyst@example.org>"]"#,
            r#"to = ["channel:hook"]"#,
        ) + &format!(
            "\n[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"hook-secret\"\ntimeout = \"10m\"\n",
            rx.url("/hook")
        );
        std::fs::write(&config, cfg).expect("write config");

        let mut child = command(&config, true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start newswatch run --once");
        // The send reaches the receiver, which then holds it (bounded wait).
        let reached = rx.wait_received("/hook", 1, Duration::from_secs(60));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        assert!(reached, "{fault:?}: the send never reached the receiver");
        assert_eq!(
            rx.received("/hook").len(),
            1,
            "{fault:?}: the send was under way"
        );
        let queued = Store::open(&state)
            .and_then(|s| s.channel_message(1))
            .expect("message 1");
        assert_eq!(
            queued.status,
            OutboxStatus::Queued,
            "{fault:?}: durable, unsent"
        );

        let out = run_once(&config, Duration::from_secs(60));
        assert!(out.status.success(), "{fault:?}: {}", text(&out));
        let seen = rx.received("/hook");
        assert_eq!(seen.len(), 2, "{fault:?}: sent again once");
        assert_eq!(
            seen[0].headers["idempotency-key"], seen[1].headers["idempotency-key"],
            "{fault:?}: under the same key"
        );
        let keys = rx.keys();
        assert_eq!(
            keys.values().copied().collect::<Vec<_>>(),
            [counted],
            "{fault:?}: processed once"
        );
        let sent = Store::open(&state)
            .and_then(|s| s.channel_message(1))
            .expect("message 1");
        assert_eq!(sent.status, OutboxStatus::Sent, "{fault:?}");
    }
}

/// `run --once` exits 6 when a channel message was not delivered, and its summary names it.
#[test]
fn run_once_exits_6_naming_an_undelivered_channel_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let feed = TestServer::start();
    feed.freeze_at(1);
    let rx = Receiver::start();
    rx.serve("/hook", Service::Webhook(None));
    rx.faults("/hook", &[Fault::Status(400)]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        "method = \"file\"\ndir = \"outbox\"",
    );
    let cfg = std::fs::read_to_string(&config).expect("read config");
    let cfg = cfg.replace(
        r#"to = ["Analyst <analyst@example.org>"]"#,
        r#"to = ["Analyst <analyst@example.org>", "channel:hook"]"#,
    ) + &format!(
        "\n[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url("/hook")
    );
    std::fs::write(&config, cfg).expect("write config");
    let out = run_once(&config, Duration::from_secs(60));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(6), "{all}");
    assert!(
        all.contains("channels: 0 sent, 0 deferred, 1 failed"),
        "{all}"
    );
    assert!(
        all.contains("channel:hook newswatch-")
            && all.contains("of desk not delivered: failed: HTTP 400"),
        "{all}"
    );
    assert!(
        all.contains("emails: 1 composed, 1 sent"),
        "the email still went: {all}"
    );
}

/// The daemon (not `run --once`) delivers channel messages, and wakes for a retry when the
/// service's `Retry-After` is due.
#[test]
fn the_daemon_retries_a_channel_message_when_retry_after_is_due() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let feed = TestServer::start();
    feed.freeze_at(1);
    let rx = Receiver::start();
    rx.serve("/hook", Service::Webhook(None));
    rx.faults("/hook", &[Fault::TooMany(1)]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        "method = \"file\"\ndir = \"outbox\"",
    );
    let cfg = std::fs::read_to_string(&config).expect("read config");
    let cfg = cfg.replace(
        r#"to = ["Analyst <analyst@example.org>"]"#,
        r#"to = ["channel:hook"]"#,
    ) + &format!(
        "\n[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url("/hook")
    );
    std::fs::write(&config, cfg).expect("write config");
    let mut daemon = command(&config, false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start newswatch run");
    let delivered = rx.wait_received("/hook", 2, Duration::from_secs(60));
    daemon.kill().expect("stop the daemon");
    daemon.wait().expect("reap");
    let verdicts: Vec<String> = rx
        .received("/hook")
        .into_iter()
        .map(|r| r.verdict)
        .collect();
    assert!(delivered, "{verdicts:?}");
    assert_eq!(verdicts[..2], ["fault 429", "processed"]);
}
