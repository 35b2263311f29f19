//! The poll writer on PostgreSQL (issue 17): more than one batch is written at a time, so a
//! write that waits on the server (here: for another session's uncommitted row with the same
//! key) does not stop the other feeds' polls from being stored; once it can go on, its poll is
//! stored, nothing lost.

use std::sync::mpsc;
use std::time::Duration;

use newswatch::config::Config;
use newswatch::pipeline::Pipeline;
use newswatch::rules::RuleSet;
use tokio_util::sync::CancellationToken;

use crate::support::http::TestServer;
use crate::support::postgres::{fresh_database_url, query, store_table};

/// An RSS document of `items` items named after `feed`.
fn rss(feed: &str, items: usize) -> Vec<u8> {
    let items: String = (1..=items)
        .map(|i| {
            format!(
                "<item><title>{feed} story {i}</title><link>https://news.example/{feed}/{i}</link>\
                 <guid>{feed}-{i}</guid><description>About {feed}, part {i}.</description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{feed}</title>\
         <link>https://news.example/</link><description>d</description>{items}</channel></rss>"
    )
    .into_bytes()
}

/// Runs `sql` off the async workers (the driver blocks) and returns its first column as i64.
async fn count(url: &str, sql: &'static str) -> i64 {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || query(&url, sql))
        .await
        .expect("query task")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// Another session inserts `held`'s first item and leaves it uncommitted before the daemon
/// starts, so the first write that carries `held`'s poll waits for that transaction. Meanwhile the other feeds, due every
/// second, go on being stored (with one write at a time, as on SQLite, every later poll would
/// wait behind that write); once the lock is released, `held`'s poll and its articles are
/// stored too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_on_the_server_does_not_stop_the_others() {
    let url = tokio::task::spawn_blocking(fresh_database_url)
        .await
        .expect("a database");
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start();
    let feeds = ["held", "f1", "f2", "f3", "f4"];
    let mut text = String::from(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\nconcurrency = 4\nmin_interval = \"1s\"\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw <nw@example.org>\"\n",
    );
    text.push_str(&store_table(&url, "writer", "1m"));
    for f in feeds {
        let path = format!("/{f}.rss");
        server.set(&path, rss(f, 3));
        text.push_str(&format!(
            "\n[[feed]]\nname = \"{f}\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            server.url(&path)
        ));
    }
    std::fs::create_dir_all(tmp.path().join("rules")).expect("mkdir rules");
    std::fs::write(
        tmp.path().join("rules/r.toml"),
        "[[rule]]\nid = \"r\"\nquery = \"story\"\n",
    )
    .expect("rules");
    let path = tmp.path().join("newswatch.toml");
    std::fs::write(&path, &text).expect("config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rules = RuleSet::load(&config.rule_files).expect("rules load");
    // Opening creates the schema and the feeds' rows.
    let p = Pipeline::open(&config, &rules).await.expect("open");

    // The other session, on a thread of its own until told to let go.
    let (locked_tx, locked_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let lock_url = url.clone();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&lock_url, postgres::NoTls).expect("connect");
        let mut tx = c.transaction().expect("begin");
        // `held`'s first item, inserted and not committed: the poll's insert of the same
        // (feed, key) waits for this transaction to end.
        tx.execute(
            "INSERT INTO articles (feed, key, title, summary, content, authors, categories,
                                   first_seen, alertable)
             VALUES ('held', 'id:held-1', 't', '', '', '[]', '[]', 0, 0)",
            &[],
        )
        .expect("insert the first item");
        locked_tx.send(()).expect("tell the test");
        release_rx.recv().expect("told to let go");
        tx.rollback().expect("roll back");
    });
    tokio::task::spawn_blocking(move || locked_rx.recv())
        .await
        .expect("task")
        .expect("locked");

    let shutdown = CancellationToken::new();
    let scenario = async {
        // A write waits for the other session.
        while count(
            &url,
            "SELECT COUNT(*)::text FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND application_name = 'newswatch writer'",
        )
        .await
            == 0
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = count(&url, "SELECT COUNT(*)::text FROM polls").await;
        // Other polls are stored while it waits: more than one batch's worth.
        while count(&url, "SELECT COUNT(*)::text FROM polls").await < before + 8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let held_meanwhile =
            count(&url, "SELECT COUNT(*)::text FROM polls WHERE feed = 'held'").await;
        release_tx.send(()).expect("let the write go on");
        while count(
            &url,
            "SELECT COUNT(*)::text FROM articles WHERE feed = 'held'",
        )
        .await
            < 3
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        held_meanwhile
    };
    let (ran, held_meanwhile) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, newswatch::clock::now),
            scenario
        )
    })
    .await
    .expect("the other feeds were stored while one write waited, and then that one too");
    ran.expect("run_until");
    holder.join().expect("the other session's thread");
    assert_eq!(
        held_meanwhile, 0,
        "held's poll waited for the other session"
    );
    for f in feeds {
        let articles = tokio::task::spawn_blocking({
            let url = url.clone();
            let sql = format!("SELECT COUNT(*)::text FROM articles WHERE feed = '{f}'");
            move || query(&url, &sql)
        })
        .await
        .expect("query");
        assert_eq!(articles, ["3"], "feed {f}: every item stored once");
    }
}
