//! The `matrix` channel against a real Synapse (issue 19): an alert arrives in the room as an
//! `m.room.message` with a plain and an HTML body; and when Synapse takes the event but its
//! answer is lost (a proxy drops it), the retry, under the same transaction id (the outbox
//! message's key), does not post twice.

use newswatch::pipeline::{Feeds, Pipeline};

use super::channels::{feed, write_config};
use super::end_to_end::{at, load};
use crate::support::http::TestServer;
use crate::support::synapse::{DroppingProxy, Synapse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_arrives_in_the_room_once_even_when_the_answer_was_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hs_dir = tmp.path().join("synapse");
    std::fs::create_dir_all(&hs_dir).expect("mkdir");
    let hs = Synapse::start(&hs_dir).await;
    // The first PUT reaches Synapse; its answer never reaches newswatch.
    let proxy = DroppingProxy::start(hs.port, 1).await;
    let server = TestServer::start();
    server.set("/feed.rss", feed(2, 0));
    let conf_dir = tmp.path().join("conf");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::write(conf_dir.join("matrix-token"), &hs.token).expect("token file");
    let table = format!(
        "[[channel]]\nname = \"room\"\nkind = \"matrix\"\nurl = \"http://127.0.0.1:{}\"\n\
         room = \"{}\"\ntoken_file = \"matrix-token\"\ntimeout = \"30s\"\n",
        proxy.port, hs.room
    );
    let path = write_config(
        &conf_dir,
        server.url("/feed.rss").as_str(),
        &table,
        &["channel:room"],
        &["desk@example.org"],
    );
    let (config, rules) = load(&path);
    let p = Pipeline::open(&config, &rules).await.expect("open");
    let t0 = at("2026-01-01T01:00:00Z");
    let s = p.cycle(t0, Feeds::All).await.expect("cycle 1");
    assert_eq!((s.channel_sent, s.channel_deferred), (0, 1), "{s}");
    let s = p
        .cycle(t0 + chrono::Duration::minutes(2), Feeds::Due)
        .await
        .expect("cycle 2");
    assert_eq!((s.channel_sent, s.channel_deferred), (1, 0), "{s}");

    let seen = proxy
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], seen[1], "the retry used the same transaction id");
    assert!(
        seen[0].starts_with("PUT /_matrix/client/v3/rooms/"),
        "{seen:?}"
    );

    let events = hs.messages().await;
    assert_eq!(events.len(), 1, "posted once: {events:#?}");
    let content = &events[0]["content"];
    assert_eq!(content["msgtype"], "m.text");
    assert_eq!(content["format"], "org.matrix.custom.html");
    assert!(
        content["body"]
            .as_str()
            .is_some_and(|b| b.contains("Hegseth meets Healey, round 0")),
        "{content}"
    );
    assert!(
        content["formatted_body"]
            .as_str()
            .is_some_and(|b| b.contains("<a href=\"https://news.example/h/0")),
        "{content}"
    );
    // What docs/channels.md shows: the event as the homeserver returns it.
    println!("{:#}", events[0]);
}
