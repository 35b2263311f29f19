//! The cluster's shared host gate on PostgreSQL (issue 17). Spacing: `host_gates` holds, per
//! host, the earliest instant (ms) the next request by any node may start; a node reserves a
//! start with one `INSERT … ON CONFLICT DO UPDATE`, the row lock serialising the nodes, so
//! starts reserved for one host are `host_spacing` apart across the cluster. In-flight limit:
//! `host_slots` holds a host's `per_host` slots, each taken by one node for one request until
//! released or expired (a killed node's), and `host_waiters` queues the requests waiting for a
//! slot, so slots go round in the order they were asked for. Times come in as arguments; the
//! handle holds only the pool, so a fetch never waits for the store's lock.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{Pool, Postgres};
use crate::store::StoreError;

/// How long a host gate call waits for a connection before it gives up.
const GATE_WAIT: Duration = Duration::from_secs(2);

/// How long a place in a host's queue is kept after its request last asked: it asks every
/// second at most (`fetch::host_gate`), so only a waiter that stopped asking (its node died, its
/// request was dropped) loses its place, holding up the ones behind it this long at most.
const WAITER_TTL: Duration = Duration::from_secs(10);

/// What `HostGates::take_slot` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotTake {
    Taken(HostSlot),
    /// Every slot is held, or others asked first: ask again with this ticket, which keeps the
    /// request's place in the host's queue.
    Waiting(i64),
}

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
    /// `now` (never taken, released, or expired), until `now + hold`, in the order the nodes
    /// asked: a request that finds no slot free beyond those the waiting requests are owed
    /// gets a place in the host's queue (`host_waiters`) and `Waiting` with its ticket, and
    /// asks again with it; a slot goes to the oldest live tickets first. Without the queue,
    /// the nodes that happened to ask the moment a slot came free took it, and a node could
    /// wait for ever while the others kept the host busy.
    pub fn take_slot(
        &self,
        host: &str,
        now: DateTime<Utc>,
        per_host: usize,
        hold: Duration,
        ticket: Option<i64>,
    ) -> Result<SlotTake, StoreError> {
        let now = now.timestamp_millis();
        let until = now.saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
        let alive = now.saturating_add(i64::try_from(WAITER_TTL.as_millis()).unwrap_or(i64::MAX));
        let per_host = i64::try_from(per_host).unwrap_or(i64::MAX);
        let mut conn = self.conn()?;
        let Some(ticket) = ticket else {
            // A slot free and nobody waiting for it: one statement, the usual case.
            let row = take_free_slot(&mut *conn, host, &self.node, until, per_host, now, None)?;
            if let Some(slot) = row {
                return Ok(SlotTake::Taken(HostSlot {
                    host: host.to_string(),
                    slot,
                    until,
                }));
            }
            return Ok(SlotTake::Waiting(join_queue(
                &mut *conn, host, &self.node, alive,
            )?));
        };
        let node = &self.node;
        conn.relaxed(|tx| {
            // Still in the queue (kept alive by asking); or, late past its time, back at its end.
            let ticket = match tx.query_opt(
                "UPDATE host_waiters SET alive_until = $2 WHERE ticket = $1 RETURNING ticket",
                &[&ticket, &alive],
            )? {
                Some(_) => ticket,
                None => join_queue(tx, host, node, alive)?,
            };
            // Waiters that stopped asking (a node that died, a request given up) leave.
            tx.execute(
                "DELETE FROM host_waiters WHERE host = $1 AND alive_until <= $2",
                &[&host, &now],
            )?;
            let row = take_free_slot(tx, host, node, until, per_host, now, Some(ticket))?;
            let Some(slot) = row else {
                return Ok(SlotTake::Waiting(ticket));
            };
            tx.execute("DELETE FROM host_waiters WHERE ticket = $1", &[&ticket])?;
            Ok(SlotTake::Taken(HostSlot {
                host: host.to_string(),
                slot,
                until,
            }))
        })
    }

    /// Leaves `host`'s queue: the request holding `ticket` stopped waiting.
    pub fn leave_queue(&self, ticket: i64) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM host_waiters WHERE ticket = $1", &[&ticket])?;
        Ok(())
    }

    /// Gives back a slot `take_slot` gave (a no-op if it expired and another took it).
    pub fn release_slot(&self, slot: &HostSlot) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM host_slots WHERE host = $1 AND slot = $2 AND node = $3 AND until = $4",
            &[&slot.host, &slot.slot, &self.node, &slot.until],
        )?;
        Ok(())
    }

    /// Gives back every slot this node holds, and its places in the queues (its stream
    /// stopping: requests aborted).
    pub fn release_all_slots(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute("DELETE FROM host_slots WHERE node = $1", &[&self.node])?;
        conn.execute("DELETE FROM host_waiters WHERE node = $1", &[&self.node])?;
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

/// A new place at the end of `host`'s queue for a request of `node`, kept until `alive` (ms)
/// unless it asks again: its ticket.
fn join_queue(
    client: &mut impl postgres::GenericClient,
    host: &str,
    node: &str,
    alive: i64,
) -> Result<i64, postgres::Error> {
    let row = client.query_one(
        "INSERT INTO host_waiters (host, node, alive_until) VALUES ($1, $2, $3) RETURNING ticket",
        &[&host, &node, &alive],
    )?;
    Ok(row.get(0))
}

/// Takes for `node`, until `until` (ms), the first of `host`'s `per_host` slots free at `now`,
/// when fewer live waiters are ahead than slots are free: the waiters with an older ticket than
/// `ticket`, or, for a request not yet queued, every waiter. The slot's number, or `None`.
fn take_free_slot(
    client: &mut impl postgres::GenericClient,
    host: &str,
    node: &str,
    until: i64,
    per_host: i64,
    now: i64,
    ticket: Option<i64>,
) -> Result<Option<i64>, postgres::Error> {
    let row = client.query_opt(
        "INSERT INTO host_slots AS h (host, slot, node, until)
         SELECT $1, s, $2, $3 FROM generate_series(0::BIGINT, $4::BIGINT - 1) AS s
         WHERE NOT EXISTS (SELECT 1 FROM host_slots o
                           WHERE o.host = $1 AND o.slot = s AND o.until > $5)
           AND (SELECT COUNT(*) FROM host_waiters w
                WHERE w.host = $1 AND w.alive_until > $5
                  AND ($6::BIGINT IS NULL OR w.ticket < $6))
               < $4::BIGINT - (SELECT COUNT(*) FROM host_slots o
                               WHERE o.host = $1 AND o.until > $5)
         ORDER BY s LIMIT 1
         ON CONFLICT (host, slot) DO UPDATE SET node = excluded.node, until = excluded.until
             WHERE h.until <= $5
         RETURNING h.slot",
        &[&host, &node, &until, &per_host, &now, &ticket],
    )?;
    Ok(row.map(|r| r.get(0)))
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
    use super::{HostGates, HostSlot, SlotTake, SlotTake::Waiting};
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
        let take = |g: &HostGates, host: &str, at, place| {
            g.take_slot(host, at, 2, hold, place).expect("take a slot")
        };
        let a0 = taken(take(&ga, host, now, None));
        let b1 = taken(take(&gb, host, now, None));
        assert_ne!(a0.slot, b1.slot);
        let a_place = waiting(take(&ga, host, now, None));
        let b_place = waiting(take(&gb, host, now, None));
        taken(take(&gb, "other.example.org", now, None));
        // b releasing a's slot does nothing; a releasing it frees it, for a, first in line.
        gb.release_slot(&a0).expect("b");
        assert_eq!(take(&gb, host, now, Some(b_place)), Waiting(b_place));
        ga.release_slot(&a0).expect("a");
        assert_eq!(take(&gb, host, now, Some(b_place)), Waiting(b_place));
        assert_eq!(taken(take(&ga, host, now, Some(a_place))).slot, a0.slot);
        assert_eq!(take(&gb, host, now, Some(b_place)), Waiting(b_place));
        // Both die holding their slots, b waiting: the slots expire after `hold`, and b's
        // place long before.
        let later = now + chrono::Duration::from_std(hold).expect("hold");
        assert_eq!(taken(take(&ga, host, later, None)).slot, 0);
        // a stops: every slot it holds goes back.
        ga.release_all_slots().expect("a");
        taken(take(&gb, host, later, None));
    }

    /// Requests waiting for a host's slot get it in the order they first asked, whichever asks
    /// first once it is free; a newcomer queues behind them; a place given up, or not asked
    /// for within `WAITER_TTL`, is lost.
    #[test]
    fn a_hosts_slot_goes_to_the_longest_waiting_request() {
        let first = fresh_database("node-queue-a");
        let a = Store::open_postgres(&first).expect("node a");
        let b = Store::open_postgres(&same_database(&first, "node-queue-b")).expect("node b");
        let c = Store::open_postgres(&same_database(&first, "node-queue-c")).expect("node c");
        let (ga, gb, gc) = (
            a.host_gates().expect("a"),
            b.host_gates().expect("b"),
            c.host_gates().expect("c"),
        );
        let now = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let ms = |n: i64| now + chrono::Duration::milliseconds(n);
        let hold = Duration::from_secs(30);
        let take = |g: &HostGates, at, place| {
            g.take_slot("news.example.org", at, 1, hold, place)
                .expect("take a slot")
        };
        let held = taken(take(&ga, now, None));
        let b_place = waiting(take(&gb, ms(10), None));
        let a_place = waiting(take(&ga, ms(20), None));
        ga.release_slot(&held).expect("a");
        // a asks first once the slot is free, but b has waited longer; c, new, queues.
        assert_eq!(take(&ga, ms(30), Some(a_place)), Waiting(a_place));
        let c_place = waiting(take(&gc, ms(30), None));
        let held = taken(take(&gb, ms(40), Some(b_place)));
        gb.release_slot(&held).expect("b");
        // a is next, so c waits; c gives up its place.
        assert_eq!(take(&gc, ms(50), Some(c_place)), Waiting(c_place));
        gc.leave_queue(c_place).expect("c");
        // a stops asking: a newcomer waits behind it until its place lapses.
        let b_place = waiting(take(&gb, ms(60), None));
        gb.leave_queue(b_place).expect("b");
        let ttl = i64::try_from(super::WAITER_TTL.as_millis()).expect("ttl");
        assert!(matches!(take(&gc, ms(30 + ttl - 1), None), Waiting(_)));
        gc.release_all_slots().expect("c leaves every queue");
        taken(take(&gc, ms(30 + ttl), None));
    }

    fn taken(t: SlotTake) -> HostSlot {
        match t {
            SlotTake::Taken(slot) => slot,
            Waiting(place) => panic!("waiting at {place}, expected a slot"),
        }
    }

    fn waiting(t: SlotTake) -> i64 {
        match t {
            Waiting(place) => place,
            SlotTake::Taken(slot) => panic!("took slot {slot:?}, expected to wait"),
        }
    }
}
