//! The cluster's shared host gate on PostgreSQL (issue 17). Spacing: `host_gates` holds, per
//! host, the earliest instant (ms) the next request by any node may start; a node reserves a
//! start with one `INSERT … ON CONFLICT DO UPDATE`, the row lock serialising the nodes, so
//! starts reserved for one host are `host_spacing` apart across the cluster. In-flight limit:
//! `host_slots` holds a host's `per_host` slots, each taken by one node for one request until
//! released or expired (a killed node's). Times come in as arguments; the handle holds only the
//! pool, so a fetch never waits for the store's lock.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{Pool, Postgres};
use crate::store::StoreError;

/// How long a host gate call waits for a connection before it gives up.
const GATE_WAIT: Duration = Duration::from_secs(2);

/// A handle on `host_gates` (a handle on the store's pool) that fetch tasks share.
pub struct HostGates {
    /// Always `Some` but in `drop` (see there).
    pool: Option<Pool>,
    /// This node's name, which its slots carry.
    node: String,
}

/// One of a host's request slots, taken by this node (`HostGates::take_slot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSlot {
    pub host: String,
    pub slot: i64,
    /// When it expires if not released (ms): also what tells this taking from a later one.
    pub until: i64,
}

impl std::fmt::Debug for HostGates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGates").finish_non_exhaustive()
    }
}

impl Drop for HostGates {
    /// As `Postgres`'s: the last handle on the pool may be dropped on an async thread, where a
    /// connection's own runtime may not be dropped.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl HostGates {
    /// Reserves, for one request to `host` (lower-cased by the caller), the earliest start at
    /// or after `now` that is at least `spacing` after every start reserved before by any node,
    /// and returns it.
    pub fn reserve(
        &self,
        host: &str,
        now: DateTime<Utc>,
        spacing: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.conn()?;
        let spacing = i64::try_from(spacing.as_millis()).unwrap_or(i64::MAX);
        let row = conn.query_one(
            "INSERT INTO host_gates AS g (host, next_at) VALUES ($1, $2::BIGINT + $3::BIGINT)
             ON CONFLICT (host) DO UPDATE SET next_at = GREATEST(g.next_at, $2::BIGINT) + $3::BIGINT
             RETURNING g.next_at - $3::BIGINT",
            &[&host, &now.timestamp_millis(), &spacing],
        )?;
        let start: i64 = row.get(0);
        Ok(Utc.timestamp_millis_opt(start).single().unwrap_or(now))
    }

    /// Takes for this node one of `host`'s `per_host` request slots that no node holds at
    /// `now` (never taken, released, or expired), until `now + hold`; `None` when every one is
    /// held. Two nodes after the same free slot: the row lock orders them, and the second
    /// finds it held and gets `None` (it asks again).
    pub fn take_slot(
        &self,
        host: &str,
        now: DateTime<Utc>,
        per_host: usize,
        hold: Duration,
    ) -> Result<Option<HostSlot>, StoreError> {
        let now = now.timestamp_millis();
        let until = now.saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
        let per_host = i64::try_from(per_host).unwrap_or(i64::MAX);
        let row = self.conn()?.query_opt(
            "INSERT INTO host_slots AS h (host, slot, node, until)
             SELECT $1, s, $2, $3 FROM generate_series(0::BIGINT, $4::BIGINT - 1) AS s
             WHERE NOT EXISTS (SELECT 1 FROM host_slots o
                               WHERE o.host = $1 AND o.slot = s AND o.until > $5)
             ORDER BY s LIMIT 1
             ON CONFLICT (host, slot) DO UPDATE SET node = excluded.node, until = excluded.until
                 WHERE h.until <= $5
             RETURNING h.slot",
            &[&host, &self.node, &until, &per_host, &now],
        )?;
        Ok(row.map(|r| HostSlot {
            host: host.to_string(),
            slot: r.get(0),
            until,
        }))
    }

    /// Gives back a slot `take_slot` gave (a no-op if it expired and another took it).
    pub fn release_slot(&self, slot: &HostSlot) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM host_slots WHERE host = $1 AND slot = $2 AND node = $3 AND until = $4",
            &[&slot.host, &slot.slot, &self.node, &slot.until],
        )?;
        Ok(())
    }

    /// Gives back every slot this node holds (its stream stopping: requests aborted).
    pub fn release_all_slots(&self) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM host_slots WHERE node = $1", &[&self.node])?;
        Ok(())
    }

    /// A connection of the store's pool, waited for `GATE_WAIT` at most: a fetch must not
    /// stand still for the store's whole connect timeout while PostgreSQL is away (its caller
    /// falls back to this node's own gate, or lets a slot expire).
    fn conn(&self) -> Result<super::Conn, StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::PgClosed)?;
        pool.get_timeout(GATE_WAIT)
            .map(super::Conn)
            .map_err(|reason| StoreError::PgConnect {
                url: String::from("(host gates)"),
                reason,
            })
    }
}

impl Postgres {
    /// The shared host spacing's handle.
    pub(crate) fn host_gates(&self) -> Option<HostGates> {
        Some(HostGates {
            pool: self.pool.clone(),
            node: self.node.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::postgres::{fresh_database, same_database};
    use crate::store::Store;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    /// Two nodes asking for one host at the same instant get starts a spacing apart, in the
    /// order they asked; another host is not held up; a host left alone is free at once.
    #[test]
    fn nodes_share_each_hosts_spacing() {
        let first = fresh_database("node-gate-a");
        let a = Store::open_postgres(&first).expect("node a");
        let b = Store::open_postgres(&same_database(&first, "node-gate-b")).expect("node b");
        let (ga, gb) = (a.host_gates().expect("a"), b.host_gates().expect("b"));
        let now = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let ms = |n: i64| now + chrono::Duration::milliseconds(n);
        let spacing = Duration::from_millis(500);
        let host = "news.example.org";
        assert_eq!(ga.reserve(host, now, spacing).expect("a"), now);
        assert_eq!(gb.reserve(host, now, spacing).expect("b"), ms(500));
        assert_eq!(ga.reserve(host, ms(100), spacing).expect("a"), ms(1000));
        assert_eq!(
            gb.reserve("other.example.org", now, spacing).expect("b"),
            now
        );
        // Long after the last reserved start: free at once.
        assert_eq!(gb.reserve(host, ms(5000), spacing).expect("b"), ms(5000));
    }

    /// A host's `per_host` slots are shared by the nodes: two nodes never hold more than
    /// `per_host` at once; a released slot is free for any node; a slot whose node died
    /// expires; another host has slots of its own.
    #[test]
    fn nodes_share_each_hosts_request_slots() {
        let first = fresh_database("node-slot-a");
        let a = Store::open_postgres(&first).expect("node a");
        let b = Store::open_postgres(&same_database(&first, "node-slot-b")).expect("node b");
        let (ga, gb) = (a.host_gates().expect("a"), b.host_gates().expect("b"));
        let now = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let hold = Duration::from_secs(30);
        let host = "news.example.org";
        let a0 = ga.take_slot(host, now, 2, hold).expect("a").expect("free");
        let b1 = gb.take_slot(host, now, 2, hold).expect("b").expect("free");
        assert_ne!(a0.slot, b1.slot);
        assert_eq!(ga.take_slot(host, now, 2, hold).expect("a"), None);
        assert_eq!(gb.take_slot(host, now, 2, hold).expect("b"), None);
        assert!(
            gb.take_slot("other.example.org", now, 2, hold)
                .expect("b")
                .is_some()
        );
        // b releasing a's slot does nothing; a releasing it frees it for b.
        gb.release_slot(&a0).expect("b");
        assert_eq!(gb.take_slot(host, now, 2, hold).expect("b"), None);
        ga.release_slot(&a0).expect("a");
        let b0 = gb.take_slot(host, now, 2, hold).expect("b").expect("freed");
        assert_eq!(b0.slot, a0.slot);
        // b dies holding both: they expire after `hold`.
        let later = now + chrono::Duration::from_std(hold).expect("hold");
        assert_eq!(
            ga.take_slot(host, later, 2, hold)
                .expect("a")
                .map(|s| s.slot),
            Some(0)
        );
        // a stops: every slot it holds goes back.
        ga.release_all_slots().expect("a");
        assert!(gb.take_slot(host, later, 2, hold).expect("b").is_some());
    }
}
