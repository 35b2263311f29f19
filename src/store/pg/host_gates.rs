//! The cluster's shared host spacing on PostgreSQL (issue 17): `host_gates` holds, per host,
//! the earliest instant (ms) the next request by any node may start. A node reserves a start
//! with one `INSERT … ON CONFLICT DO UPDATE`: the row lock serialises the nodes, so starts
//! reserved for one host are `host_spacing` apart across the cluster. Times come in as
//! arguments; the handle holds only the pool, so a fetch never waits for the store's lock.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{Pool, Postgres};
use crate::store::StoreError;

/// A handle on `host_gates` (a handle on the store's pool) that fetch tasks share.
pub struct HostGates {
    /// Always `Some` but in `drop` (see there).
    pool: Option<Pool>,
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
        let pool = self.pool.as_ref().ok_or(StoreError::PgClosed)?;
        let mut conn = pool
            .get()
            .map(super::Conn)
            .map_err(|reason| StoreError::PgConnect {
                url: String::from("(host gates)"),
                reason,
            })?;
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
}

impl Postgres {
    /// The shared host spacing's handle.
    pub(crate) fn host_gates(&self) -> Option<HostGates> {
        Some(HostGates {
            pool: self.pool.clone(),
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
}
