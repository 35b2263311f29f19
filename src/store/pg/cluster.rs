//! The cluster's tables on PostgreSQL: `nodes` (heartbeats, for `status` and for telling a live
//! node from a dead one) and the feed leases on `feeds` (`lease_node`, `lease_until`). A feed is
//! claimed with `FOR UPDATE SKIP LOCKED` only when it is due and nobody else's lease on it runs:
//! two nodes claiming at once get disjoint sets, and a dead node's feeds come free when its
//! leases expire (at most `[store] lease` later). Every time comes in as an argument. Their
//! commits do not wait for the WAL flush (`Conn::relaxed`): a lease or a beat a server crash
//! loses is taken or beaten again.

use chrono::{DateTime, Utc};

use super::{Postgres, from_ts, ts, unsigned};
use crate::store::{Lease, NodeInfo, StoreError};

impl Postgres {
    /// Records that this node is alive at `node.heartbeat` (its row is made on the first beat).
    /// The name is this node's own, whatever `node.name` says.
    pub(crate) fn heartbeat(&mut self, node: &NodeInfo) -> Result<(), StoreError> {
        self.conn()?.relaxed(|tx| {
            tx.execute(
                "INSERT INTO nodes (name, started, heartbeat, version, rules_hash)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET heartbeat = excluded.heartbeat,
                 version = excluded.version, rules_hash = excluded.rules_hash",
                &[
                    &self.node,
                    &ts(node.started),
                    &ts(node.heartbeat),
                    &node.version,
                    &node.rules_hash,
                ],
            )
        })?;
        Ok(())
    }

    /// Every node that ever beat, by name, with the leases each holds (expired ones included:
    /// a dead node's feeds show against it until another node takes them).
    pub(crate) fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT n.name, n.started, n.heartbeat, n.version, n.rules_hash,
                    (SELECT COUNT(*) FROM feeds f WHERE f.lease_node = n.name)
             FROM nodes n ORDER BY n.name COLLATE \"C\"",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| NodeInfo {
                name: r.get(0),
                started: from_ts(r.get(1)),
                heartbeat: from_ts(r.get(2)),
                version: r.get(3),
                rules_hash: r.get(4),
                leases: unsigned(r.get(5)),
            })
            .collect())
    }

    /// Claims for this node, among `names`, at most `limit` feeds due at `now` (never polled, or
    /// `next_due` passed) that no other node holds a running lease on, soonest due first; each
    /// until `now + lease`. A feed this node already holds is claimed again (the lease renewed).
    pub(crate) fn claim_feeds(
        &mut self,
        names: &[&str],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        self.lease_feeds(names, now, true, limit)
    }

    /// Claims for this node, whether due or not (`run --once` polls every feed), those of
    /// `names` that no other node holds a running lease on, each until `now + lease`: a feed a
    /// daemon is polling now is left to it.
    pub(crate) fn take_feeds(
        &mut self,
        names: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StoreError> {
        self.lease_feeds(names, now, false, usize::MAX)
    }

    /// The one lease both claims take: at most `limit` of `names` (only those due at `now` when
    /// `due_only`) that no other node holds a running lease on, soonest due first, each until
    /// `now + lease`.
    fn lease_feeds(
        &self,
        names: &[&str],
        now: DateTime<Utc>,
        due_only: bool,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.conn()?.relaxed(|tx| {
            tx.query(
                "UPDATE feeds SET lease_node = $1, lease_until = $2
             WHERE name IN (
                 SELECT name FROM feeds
                 WHERE name = ANY($3)
                   AND (NOT $6 OR next_due IS NULL OR next_due <= $4)
                   AND (lease_node IS NULL OR lease_node = $1 OR lease_until <= $4)
                 ORDER BY next_due NULLS FIRST, name COLLATE \"C\"
                 LIMIT $5
                 FOR UPDATE SKIP LOCKED)
             RETURNING name",
                &[&self.node, &ts(until), &names, &ts(now), &limit, &due_only],
            )
        })?;
        let mut leases: Vec<Lease> = rows
            .iter()
            .map(|r| Lease {
                feed: r.get(0),
                until,
            })
            .collect();
        leases.sort_by(|a, b| a.feed.cmp(&b.feed));
        Ok(leases)
    }

    /// Gives up this node's leases on `names` (a poll stored, or shutting down): the feeds are
    /// free for any node when next due. Another node's lease is never touched.
    pub(crate) fn release_feeds(&mut self, names: &[&str]) -> Result<(), StoreError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        self.conn()?.relaxed(|tx| {
            tx.execute(
                "UPDATE feeds SET lease_node = NULL, lease_until = NULL
                 WHERE name = ANY($1) AND lease_node = $2",
                &[&names, &self.node],
            )
        })?;
        Ok(())
    }
}
