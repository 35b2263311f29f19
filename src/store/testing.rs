//! Helpers for the store's unit tests, writing the way production writes (`ensure_feeds`,
//! `record_poll`, a `ComposeTx`): a store in a temp dir, polls, matches, composed digests; and
//! `on_both_backends!`, which runs a behaviour test on SQLite and on a real PostgreSQL
//! (`testing/postgres`). Test builds only; never a second write path.

pub(crate) mod pg_server;
pub(crate) mod postgres;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ArticleMatches, Inserted, PollRecord, PollResult, Store};
use crate::model::{Article, NewMessage, PendingMatch, StoredHit, Validators};
use crate::policy::feed_health::Thresholds;

pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamps are valid")
        .with_timezone(&Utc)
}

/// A fresh store in `state/` of a temp dir.
pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state")).expect("open store");
    (dir, store)
}

/// A fresh store on its own database of the test PostgreSQL, as node `node`.
pub(super) fn open_postgres(node: &str) -> Store {
    Store::open_postgres(&postgres::fresh_database(node)).expect("open PostgreSQL store")
}

/// `on_both_backends! { fn name(s) { ... } ... }` writes each test twice, as `name::sqlite` and
/// `name::postgres`, with `s: &mut Store` a fresh store of that backend: one behaviour, one
/// body, both backends.
macro_rules! on_both_backends {
    ($($(#[$attr:meta])* fn $name:ident($s:ident) $body:block)*) => {
        $(
            $(#[$attr])*
            mod $name {
                #[allow(clippy::wildcard_imports)]
                use super::*;

                #[test]
                fn sqlite() {
                    let (_dir, mut store) = $crate::store::testing::open();
                    let $s: &mut $crate::store::Store = &mut store;
                    $body
                }

                #[test]
                fn postgres() {
                    let mut store = $crate::store::testing::open_postgres("node-a");
                    let $s: &mut $crate::store::Store = &mut store;
                    $body
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// Configures feed `name` at `url`, as start-up and reloads do.
pub(super) fn feed(s: &mut Store, name: &str, url: &str) {
    s.ensure_feeds([(name, url)]).expect("ensure feed");
}

/// A successful poll at `now` with no caps: due again at `now`, no hints, no redirect.
pub(super) fn fetched<'a>(
    title: Option<&'a str>,
    validators: &'a Validators,
    articles: &'a [Article],
    now: DateTime<Utc>,
    new_feed_window: Duration,
) -> PollRecord<'a> {
    PollRecord {
        result: PollResult::Fetched {
            title,
            validators,
            articles,
            hint_ttl: None,
            permanent_redirect: None,
        },
        now,
        next_due: now,
        new_feed_window,
        flood_at: usize::MAX,
        thresholds: Thresholds::default(),
        stats: crate::store::PollStats::default(),
    }
}

/// Records a successful poll of `articles` for `feed` (no validators) and what it inserted.
pub(super) fn poll(
    s: &mut Store,
    feed: &str,
    articles: &[Article],
    now: DateTime<Utc>,
    window: Duration,
) -> Inserted {
    let v = Validators::default();
    s.record_poll(feed, &fetched(None, &v, articles, now, window))
        .expect("record poll")
        .inserted
}

pub(super) fn hit(text: &str) -> StoredHit {
    StoredHit {
        field: "title".into(),
        start: 0,
        end: text.len(),
        text: text.into(),
    }
}

pub(super) fn msg(id: &str) -> NewMessage {
    NewMessage {
        digest_name: "main".into(),
        message_id: id.into(),
        sender: "nw@example.org".into(),
        recipients: vec!["a@example.org".into()],
        raw: b"Subject: x\r\n\r\nbody".to_vec(),
    }
}

/// Every stored rule into one group, "all".
pub(super) fn all_rules(s: &mut Store) -> Vec<(String, String)> {
    let tx = s.begin_compose().expect("begin");
    tx.matched_rules()
        .expect("rules")
        .into_iter()
        .map(|r| (r, "all".to_string()))
        .collect()
}

/// The matches digest `name` would carry now (every rule, every row), read through a
/// composition that is rolled back.
pub(super) fn pending_for(s: &mut Store, name: &str) -> Vec<PendingMatch> {
    let rules = all_rules(s);
    let mut tx = s.begin_compose().expect("begin");
    let batch = tx.gather_pending(name, &rules).expect("gather");
    let plan: Vec<usize> = batch.groups.iter().map(|g| g.articles).collect();
    let mut rows = tx.load_rows(&plan).expect("rows");
    rows.sort_by_key(|m| m.id);
    rows
}

/// Feed `f` with two freshly fetched articles, `a` and `b`, not yet matched, into `s`; returns
/// when they were fetched.
pub(super) fn two_articles(s: &mut Store) -> DateTime<Utc> {
    let now = t("2025-03-10T12:00:00Z");
    feed(s, "f", "https://example.org/feed");
    let items = [art("a", None), art("b", None)];
    poll(s, "f", &items, now, DAY);
    now
}

/// `store_with_two_articles` with `a` matched by rule "minerals" and `b` by nothing.
pub(super) fn store_with_matches() -> (tempfile::TempDir, Store, DateTime<Utc>) {
    let (dir, mut s) = open();
    let now = with_matches(&mut s);
    (dir, s, now)
}

/// `two_articles` with `a` matched by rule "minerals" and `b` by nothing.
pub(super) fn with_matches(s: &mut Store) -> DateTime<Utc> {
    let now = two_articles(s);
    let pending = s.pending_articles().expect("pending");
    let results = vec![
        ArticleMatches {
            article: pending[0].id,
            matches: vec![("minerals".to_string(), vec![hit("minerals deal")])],
        },
        ArticleMatches {
            article: pending[1].id,
            matches: vec![],
        },
    ];
    assert_eq!(
        s.record_matches(&results, now, &HashMap::new(), "rules-v1")
            .expect("matches"),
        1
    );
    assert!(s.pending_articles().expect("pending").is_empty());
    now
}

/// Composes digest `name` over every pending match into `message` (unscheduled), as the
/// pipeline does; returns the outbox id.
pub(super) fn compose(s: &mut Store, name: &str, now: DateTime<Utc>, message: &NewMessage) -> i64 {
    let rules = all_rules(s);
    let mut tx = s.begin_compose().expect("begin");
    tx.gather_pending(name, &rules).expect("gather");
    let id = tx.next_digest_id().expect("id");
    tx.commit_digest(name, id, now, None, Some(message))
        .expect("commit")
        .expect("composed")
        .outbox
}

pub(super) fn art(key: &str, published: Option<&str>) -> Article {
    Article {
        key: key.to_string(),
        link: Some(format!("https://example.org/{key}")),
        title: format!("Title {key}"),
        summary: "summary".into(),
        published: published.map(t),
        authors: vec!["A. Writer".into()],
        ..Article::default()
    }
}
