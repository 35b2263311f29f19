//! What several nodes sharing one PostgreSQL need of the store (issue 17), and its SQLite side,
//! where the one node is the whole cluster: no other node to report, every feed already held.
//! The PostgreSQL side is `pg/cluster.rs`.

use chrono::{DateTime, Utc};

use rusqlite::{OptionalExtension, params};

use super::{PendingArticle, Sqlite, StoreError, ts};

/// One node of the cluster, as its heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `[store] node_name`: unique per running daemon.
    pub name: String,
    pub started: DateTime<Utc>,
    /// When the node last said it was alive (`heartbeat`).
    pub heartbeat: DateTime<Utc>,
    /// The newswatch version it runs.
    pub version: String,
    /// A hash of the rule set it matches with: differing hashes mean differing rules.
    pub rules_hash: String,
    /// Feeds it holds a lease on now (filled in by `nodes`; ignored by `heartbeat`).
    pub leases: u64,
}

/// A feed this node may poll until `until` (and must not poll after, unless renewed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub feed: String,
    pub until: DateTime<Utc>,
}

impl Sqlite {
    /// One node: there is nobody to tell.
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    pub(super) fn heartbeat(&mut self, _node: &NodeInfo) -> Result<(), StoreError> {
        Ok(())
    }

    /// One node, not a cluster: no node list.
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    pub(super) fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        Ok(Vec::new())
    }

    /// The feeds among `names` due at `now` (never polled, or `next_due` passed), at most
    /// `limit`, soonest due first. The one node holds them for ever: the instance lock keeps a
    /// second process out.
    pub(super) fn claim_feeds(
        &mut self,
        names: &[&str],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT next_due FROM feeds WHERE name = ?1 AND (next_due IS NULL OR next_due <= ?2)",
        )?;
        let mut due = Vec::new();
        for name in names {
            if let Some(next) = stmt
                .query_row(params![name, ts(now)], |r| r.get::<_, Option<i64>>(0))
                .optional()?
            {
                due.push((next.unwrap_or(i64::MIN), *name));
            }
        }
        due.sort_unstable();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, f)| Lease {
                feed: f.to_string(),
                until: DateTime::<Utc>::MAX_UTC,
            })
            .collect())
    }

    /// The oldest `limit` articles of the matcher's to-do list with an id above `after`: the
    /// one node holds them all.
    pub(super) fn claim_pending_articles(
        &mut self,
        after: i64,
        _now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingArticle>, StoreError> {
        self.pending_articles_after(after, limit)
    }

    /// The one node holds every queued message: `true` while `id` is still queued.
    pub(super) fn holds_message(
        &mut self,
        id: i64,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self.message(id) {
            Ok(m) => Ok(m.status == crate::model::OutboxStatus::Queued),
            Err(StoreError::NoSuchMessage(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The one node holds every queued channel message: `true` while `id` is still queued.
    pub(super) fn holds_channel_message(
        &mut self,
        id: i64,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self.channel_message(id) {
            Ok(m) => Ok(m.status == crate::model::OutboxStatus::Queued),
            Err(StoreError::NoSuchMessage(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `run --once` polls every feed, due or not: the one node holds them all.
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    pub(super) fn take_feeds(
        &mut self,
        names: &[&str],
        _now: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut names: Vec<&str> = names.to_vec();
        names.sort_unstable();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|f| Lease {
                feed: f.to_string(),
                until: DateTime::<Utc>::MAX_UTC,
            })
            .collect())
    }

    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    pub(super) fn release_feeds(&mut self, _names: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::testing::postgres::{fresh_database, same_database, terminate_node};
    use super::super::testing::{on_both_backends, t};
    use super::*;
    use crate::config::PostgresSettings;
    use crate::store::Store;

    fn names(leases: &[Lease]) -> Vec<&str> {
        leases.iter().map(|l| l.feed.as_str()).collect()
    }

    on_both_backends! {
        /// Only configured, due feeds are claimed, at most `limit`, never-polled ones first; a
        /// node asking again gets its own feeds again (a renewal).
        fn claims_due_feeds_up_to_the_limit(s) {
            s.ensure_feeds([("a", "https://a.example/"), ("b", "https://b.example/"),
                            ("c", "https://c.example/")])
                .expect("feeds");
            let now = t("2026-03-01T08:00:00Z");
            let first = s.claim_feeds(&["c", "b", "a", "unknown"], now, 2).expect("claim");
            assert_eq!(names(&first), ["a", "b"]);
            assert!(first.iter().all(|l| l.until > now));
            let again = s.claim_feeds(&["a", "b", "c"], now, 10).expect("claim again");
            assert_eq!(names(&again), ["a", "b", "c"]);
            s.release_feeds(&["a"]).expect("release");
        }
    }

    /// `run --once` takes every feed no other node is polling, due or not, and leaves the
    /// others' alone; what it took is then held against the daemons until released.
    #[test]
    fn a_once_run_takes_every_feed_but_those_another_node_holds() {
        let (_settings, mut a, mut b) = two_nodes();
        a.ensure_feeds([("f1", "https://1.example/"), ("f2", "https://2.example/")])
            .expect("feeds");
        let all = ["f1", "f2"];
        let now = t("2026-03-01T08:00:00Z");
        // Node a (a daemon) is polling f1.
        assert_eq!(names(&a.claim_feeds(&["f1"], now, 10).expect("a")), ["f1"]);
        assert_eq!(names(&b.take_feeds(&all, now).expect("b")), ["f2"]);
        // Held by b now: the daemon does not claim f2 although it is due.
        assert_eq!(names(&a.claim_feeds(&all, now, 10).expect("a")), ["f1"]);
        b.release_feeds(&all).expect("release");
        a.release_feeds(&all).expect("release");
        assert_eq!(names(&b.take_feeds(&all, now).expect("b")), ["f1", "f2"]);
    }

    /// Two stores on one database, as nodes `a` and `b`.
    fn two_nodes() -> (PostgresSettings, Store, Store) {
        let a = fresh_database("node-a");
        let b = same_database(&a, "node-b");
        let sa = Store::open_postgres(&a).expect("node a");
        let sb = Store::open_postgres(&b).expect("node b");
        (a, sa, sb)
    }

    /// A feed held by one node is not claimed by another until the holder releases it or its
    /// lease runs out; then the other takes it over.
    #[test]
    fn leases_keep_feeds_apart_until_released_or_expired() {
        let (settings, mut a, mut b) = two_nodes();
        a.ensure_feeds([
            ("f1", "https://1.example/"),
            ("f2", "https://2.example/"),
            ("f3", "https://3.example/"),
        ])
        .expect("feeds");
        let all = ["f1", "f2", "f3"];
        let now = t("2026-03-01T08:00:00Z");
        assert_eq!(
            names(&a.claim_feeds(&all, now, 2).expect("a")),
            ["f1", "f2"]
        );
        assert_eq!(names(&b.claim_feeds(&all, now, 10).expect("b")), ["f3"]);
        assert_eq!(
            names(&a.claim_feeds(&all, now, 10).expect("renew")),
            ["f1", "f2"]
        );
        // `b` releasing frees only its own feed.
        b.release_feeds(&all).expect("release");
        assert_eq!(
            names(&a.claim_feeds(&all, now, 10).expect("a")),
            ["f1", "f2", "f3"]
        );
        // Node `a` dies: one lease period later `b` holds everything, not a second earlier.
        let lease = chrono::Duration::from_std(settings.lease).expect("lease");
        let before = now + lease - chrono::Duration::seconds(1);
        assert!(b.claim_feeds(&all, before, 10).expect("b early").is_empty());
        let taken = b.claim_feeds(&all, now + lease, 10).expect("b takes over");
        assert_eq!(names(&taken), ["f1", "f2", "f3"]);
        assert!(
            a.claim_feeds(&all, now + lease, 10)
                .expect("a back")
                .is_empty()
        );
    }

    /// Three nodes claiming at the same moment get disjoint sets that cover every due feed
    /// (`FOR UPDATE SKIP LOCKED`: nobody waits, nobody doubles).
    #[test]
    fn simultaneous_claims_never_overlap() {
        let first = fresh_database("node-0");
        let mut setup = Store::open_postgres(&first).expect("open");
        let feeds: Vec<(String, String)> = (0..200)
            .map(|i| (format!("f{i:03}"), format!("https://h{i}.example/")))
            .collect();
        setup
            .ensure_feeds(feeds.iter().map(|(n, u)| (n.as_str(), u.as_str())))
            .expect("feeds");
        let now = t("2026-03-01T08:00:00Z");
        let claimed: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=3)
                .map(|n| {
                    let settings = same_database(&first, &format!("node-{n}"));
                    let feeds = &feeds;
                    scope.spawn(move || {
                        let mut s = Store::open_postgres(&settings).expect("node");
                        let names: Vec<&str> = feeds.iter().map(|(n, _)| n.as_str()).collect();
                        let mut mine = Vec::new();
                        for chunk in 0..10 {
                            let got = s.claim_feeds(&names, now, 10 + chunk).expect("claim");
                            mine.extend(got.into_iter().map(|l| l.feed));
                        }
                        mine.sort();
                        mine.dedup();
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node thread"))
                .collect()
        });
        let mut seen = HashSet::new();
        for node in &claimed {
            for f in node {
                assert!(seen.insert(f.clone()), "{f} claimed by two nodes");
            }
        }
        // The largest single claim alone takes 19.
        assert!(seen.len() >= 19, "{} feeds claimed", seen.len());
    }

    /// `status` lists every node with its last heartbeat, version, rules hash and leases.
    #[test]
    fn nodes_report_heartbeats_and_leases() {
        let (_, mut a, mut b) = two_nodes();
        a.ensure_feeds([("f1", "https://1.example/")])
            .expect("feeds");
        let now = t("2026-03-01T08:00:00Z");
        let beat = |s: &mut Store, at, hash: &str| {
            s.heartbeat(&NodeInfo {
                name: String::new(),
                started: t("2026-03-01T07:00:00Z"),
                heartbeat: at,
                version: "0.1.0".into(),
                rules_hash: hash.into(),
                leases: 0,
            })
            .expect("beat");
        };
        beat(&mut a, now, "r1");
        beat(&mut b, now, "r1");
        beat(&mut b, now + chrono::Duration::seconds(10), "r2");
        a.claim_feeds(&["f1"], now, 5).expect("claim");
        let nodes = a.nodes().expect("nodes");
        let shown: Vec<(&str, DateTime<Utc>, &str, u64)> = nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.heartbeat,
                    n.rules_hash.as_str(),
                    n.leases,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("node-a", now, "r1", 1),
                ("node-b", now + chrono::Duration::seconds(10), "r2", 0),
            ]
        );
    }

    /// A connection the server cut (`pg_terminate_backend`) is replaced by the pool: the node
    /// carries on, still holding its leases.
    #[test]
    fn a_cut_connection_is_replaced() {
        // A node name of its own: the cut must not reach the other tests' connections.
        let mut a = Store::open_postgres(&fresh_database("node-cut")).expect("open");
        a.ensure_feeds([("f1", "https://1.example/")])
            .expect("feeds");
        let now = t("2026-03-01T08:00:00Z");
        assert_eq!(
            names(&a.claim_feeds(&["f1"], now, 5).expect("claim")),
            ["f1"]
        );
        assert!(
            terminate_node("node-cut") >= 1,
            "the node had a connection to cut"
        );
        // The pool checks a connection before handing it out, so not even the next call fails.
        let renewed = a.claim_feeds(&["f1"], now, 5).expect("claim after the cut");
        assert_eq!(names(&renewed), ["f1"]);
    }

    /// Each article of the to-do list goes to one node at a time; a node that dies mid-chunk
    /// leaves its articles to the others one lease later; a late verdict stores nothing twice.
    #[test]
    fn the_matchers_to_do_list_is_shared_out_once() {
        let (settings, mut a, mut b) = two_nodes();
        let now = t("2025-03-10T12:00:00Z");
        a.ensure_feeds([("f", "https://example.org/feed")])
            .expect("feed");
        let items: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|k| super::super::testing::art(k, None))
            .collect();
        let v = crate::model::Validators::default();
        a.record_poll(
            "f",
            &super::super::testing::fetched(None, &v, &items, now, super::super::testing::DAY),
        )
        .expect("poll");
        let keys = |p: &[PendingArticle]| -> Vec<String> {
            p.iter().map(|p| p.article.key.clone()).collect()
        };
        let of_a = a.claim_pending_articles(0, now, 2).expect("a claims");
        assert_eq!(keys(&of_a), ["a", "b"]);
        assert_eq!(
            keys(&b.claim_pending_articles(0, now, 10).expect("b claims")),
            ["c"]
        );
        // `a` dies; a lease later `b` takes its chunk over and matches it.
        let lease = chrono::Duration::from_std(settings.lease).expect("lease");
        assert!(
            b.claim_pending_articles(0, now + lease - chrono::Duration::seconds(1), 10)
                .expect("early")
                .iter()
                .all(|p| p.article.key == "c")
        );
        let taken = b
            .claim_pending_articles(0, now + lease, 10)
            .expect("take over");
        assert_eq!(keys(&taken), ["a", "b", "c"]);
        let verdict: Vec<crate::store::ArticleMatches> = taken
            .iter()
            .map(|p| crate::store::ArticleMatches {
                article: p.id,
                matches: vec![("r".to_string(), vec![super::super::testing::hit("x")])],
            })
            .collect();
        let routes = std::collections::HashMap::new();
        assert_eq!(
            b.record_matches(&verdict, now + lease, &routes, "rules-v1")
                .expect("b"),
            3
        );
        // `a` was only slow: its late verdict on its old chunk stores nothing again.
        assert_eq!(
            a.record_matches(&verdict[..2], now + lease, &routes, "rules-v1")
                .expect("a"),
            0
        );
        assert!(a.pending_articles().expect("pending").is_empty());
    }
}
