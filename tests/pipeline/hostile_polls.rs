//! Hostile feeds over several polls (issue 16): a firehose of new items, guids that churn with
//! their links, bodies cut short. Each case runs whole cycles against the loopback server with
//! injected time and checks what the store kept, what `status` and the digest say.

use std::time::Duration;

use newswatch::store::Store;

use crate::polling::{M, at, config, cycle, pipeline, record, rules, servers};
use crate::support::http::FIREHOSE_ITEMS;

/// Issue 16 item 6: a feed listing 1,000 new items on every poll has every one stored and matched
/// (the old per-poll cap kept 100 and never saw the other 900), and carries a flood warning in
/// `status` and the digest's Sources section.
#[tokio::test]
async fn a_firehose_has_every_listed_item_stored_and_matched() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let digest = "[[digest]]\nname = \"desk\"\nto = [\"a@example.org\"]";
    let feeds = [("fire", public.url("/firehose").to_string(), "30m")];
    let config = config(tmp.path(), digest, &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    for poll in 0..2 {
        let s = cycle(&p, at(poll * 30 * M)).await;
        assert_eq!(s.new_articles, FIREHOSE_ITEMS, "poll {poll}: {s}");
        assert_eq!(s.matches, FIREHOSE_ITEMS / 100, "poll {poll}: {s}");
    }
    let r = record(&config, "fire");
    assert_eq!(r.items_seen, 2 * FIREHOSE_ITEMS as u64);
    let warning = r.warning.unwrap_or_default();
    assert!(
        warning.contains("1000 new items in one poll"),
        "{warning:?}"
    );
    let stored: u64 = Store::open_read_only(&config.state_dir)
        .and_then(|s| s.row_counts())
        .map(|c| c.articles)
        .expect("the store reads");
    assert_eq!(stored, 2 * FIREHOSE_ITEMS as u64);
    let preview = p
        .preview_digest("desk", Some(Duration::from_secs(7200)), at(60 * M))
        .await
        .expect("the digest preview renders");
    assert!(
        preview
            .text
            .contains("fire: warning — flood: 1000 new items"),
        "{}",
        preview.text
    );
}

/// Issue 16 item 3: five stories republished on every poll under new guids, with `?rev=N` links
/// (the link without noise identifies them) or with http/https, `www.` and an unknown query
/// parameter changing (the headline identifies them): five alerts in five polls, not 25, and the
/// feed is reported as churning.
#[tokio::test]
async fn churning_guids_and_links_do_not_alert_again() {
    let (public, _internal) = servers();
    for path in ["/churn-rev", "/churn-scheme"] {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let feeds = [("churn", public.url(path).to_string(), "5m")];
        let config = config(tmp.path(), "", &feeds);
        let rules = rules(&config);
        let p = pipeline(&config, &rules).await;
        let (mut new, mut matches) = (Vec::new(), Vec::new());
        for poll in 0..5 {
            let s = cycle(&p, at(poll * 5 * M)).await;
            new.push(s.new_articles);
            matches.push(s.matches);
        }
        assert_eq!(new, [5, 0, 0, 0, 0], "{path}");
        assert_eq!(matches, [5, 0, 0, 0, 0], "{path}");
        let warning = record(&config, "churn").warning.unwrap_or_default();
        assert!(
            warning.contains("guid churn: 5 of 5 listed items"),
            "{path}: {warning:?}"
        );
    }
}

/// Issue 16 item 5: a body shorter than its Content-Length, one longer than it (the client reads a
/// declared half), and one cut by a closing connection are errors saying "truncated", never items;
/// the feed is retried soon (a transient failure), and nothing is stored.
#[tokio::test]
async fn truncated_bodies_are_errors_never_items() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let paths = ["/truncated-plain", "/overlong-body", "/cut-close"];
    let feeds: Vec<(&str, String, &str)> = paths
        .iter()
        .map(|p| (*p, public.url(p).to_string(), "30m"))
        .collect();
    let config = config(tmp.path(), "", &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    let s = cycle(&p, at(0)).await;
    assert_eq!(
        (s.feeds_failed, s.new_articles, s.matches),
        (3, 0, 0),
        "{s}"
    );
    // (feed, what its error says)
    let cases = [
        ("/truncated-plain", "truncated: got "),
        (
            "/overlong-body",
            "truncated: the document ends inside its <rss> element",
        ),
        (
            "/cut-close",
            "truncated: the document ends inside its <rss> element",
        ),
    ];
    for (feed, want) in cases {
        let r = record(&config, feed);
        let error = r.last_error.unwrap_or_default();
        assert!(error.contains(want), "{feed}: {error}");
        assert_eq!(r.items_seen, 0, "{feed}");
        // Transient: retried at the interval, not after the persistent failure's 4x back-off.
        let due = r.next_due.map(|d| (d - at(0)).num_minutes());
        assert_eq!(due, Some(30), "{feed}");
    }
    let plain = record(&config, "/truncated-plain")
        .last_error
        .unwrap_or_default();
    assert!(
        plain.contains(" of ") && plain.ends_with("bytes before the connection ended"),
        "{plain}"
    );
}

/// Issue 16 item 13: the disk fills between the server's acceptance and the `sent` mark. The
/// cycle fails, and no later cycle sends that email again while the mark is owed; once the disk
/// has room the mark is committed first and the email stays delivered once.
#[tokio::test]
async fn an_email_accepted_while_the_disk_is_full_is_not_sent_twice() {
    let (public, _internal) = servers();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let digest = "[[digest]]\nname = \"desk\"\nto = [\"a@example.org\"]";
    let feeds = [("f", public.url("/feed.xml").to_string(), "5m")];
    let config = config(tmp.path(), digest, &feeds);
    let rules = rules(&config);
    let p = pipeline(&config, &rules).await;
    let db = rusqlite::Connection::open(config.state_dir.join(newswatch::store::DB_FILE))
        .expect("the state database opens");
    db.execute_batch(
        "CREATE TRIGGER full BEFORE UPDATE ON outbox WHEN NEW.status = 'sent'
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .expect("the trigger is created");
    let emails = || {
        std::fs::read_dir(tmp.path().join("outbox"))
            .map(Iterator::count)
            .unwrap_or(0)
    };
    for minute in [0, 5, 10] {
        let err = p
            .cycle(at(minute * M), newswatch::pipeline::Feeds::Due)
            .await
            .expect_err("the failed mark fails the cycle");
        assert!(format!("{err:#}").contains("disk is full"), "{err:#}");
        assert_eq!(emails(), 1, "minute {minute}");
    }
    db.execute_batch("DROP TRIGGER full")
        .expect("the trigger is dropped");
    cycle(&p, at(15 * M)).await;
    assert_eq!(emails(), 1);
    let sent: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE status = 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("the outbox reads");
    assert_eq!(sent, 1);
}
