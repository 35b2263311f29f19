//! What a node does for the cluster when several share one PostgreSQL (issue 17): it claims
//! the due feeds it polls (a feed held by another node goes back on this node's clock), and
//! beats into `nodes` with its version and rules hash, comparing that hash with the other
//! live nodes'. On SQLite the one node holds every feed and the beat is a no-op.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::fetch::{SharedSlot, SharedSpacing, SlotAnswer};
use crate::pipeline::Pipeline;
use crate::store::{FeedRecord, HostGates, HostSlot, NodeInfo, SlotTake, Store};

/// The host spacing this node shares with the others (`host_gates` on PostgreSQL); `None` on
/// SQLite, where the fetcher's own gate is the whole story.
pub(super) fn shared_spacing(store: &Store) -> Option<Arc<dyn SharedSpacing>> {
    store.host_gates().map(|gates| {
        Arc::new(ClusterSpacing {
            gates: Arc::new(gates),
        }) as Arc<dyn SharedSpacing>
    })
}

/// `SharedSpacing` through the store's `host_gates`, on a blocking thread of its own (never the
/// store's lock: a fetch must not wait for a batch being written).
#[derive(Debug)]
struct ClusterSpacing {
    gates: Arc<HostGates>,
}

impl SharedSpacing for ClusterSpacing {
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        spacing: Duration,
    ) -> Pin<Box<dyn Future<Output = Option<Duration>> + Send + 'a>> {
        Box::pin(async move {
            let gates = Arc::clone(&self.gates);
            let name = host.to_string();
            let now = crate::clock::now();
            let reserved =
                tokio::task::spawn_blocking(move || gates.reserve(&name, now, spacing)).await;
            match reserved {
                Ok(Ok(start)) => Some((start - crate::clock::now()).to_std().unwrap_or_default()),
                Ok(Err(e)) => {
                    let e = anyhow::Error::from(e);
                    warn!(host = %host, error = format!("{e:#}"), "cannot take the host's shared turn; spacing this node's requests only");
                    None
                }
                Err(e) => {
                    warn!(host = %host, error = %e, "the host gate's task failed; spacing this node's requests only");
                    None
                }
            }
        })
    }

    fn take_slot<'a>(
        &'a self,
        host: &'a str,
        per_host: usize,
        hold: Duration,
        place: Option<i64>,
    ) -> Pin<Box<dyn Future<Output = SlotAnswer> + Send + 'a>> {
        Box::pin(async move {
            let gates = Arc::clone(&self.gates);
            let name = host.to_string();
            let now = crate::clock::now();
            let taken = tokio::task::spawn_blocking(move || {
                gates.take_slot(&name, now, per_host, hold, place)
            })
            .await;
            match taken {
                Ok(Ok(SlotTake::Taken(s))) => SlotAnswer::Taken(SharedSlot {
                    host: s.host,
                    slot: s.slot,
                    until: s.until,
                }),
                Ok(Ok(SlotTake::Waiting(place))) => SlotAnswer::Waiting(place),
                Ok(Err(e)) => {
                    let e = anyhow::Error::from(e);
                    warn!(host = %host, error = format!("{e:#}"), "cannot take a request slot of the host shared with the other nodes; limiting this node's requests only");
                    SlotAnswer::Unavailable
                }
                Err(e) => {
                    warn!(host = %host, error = %e, "the host gate's task failed; limiting this node's requests only");
                    SlotAnswer::Unavailable
                }
            }
        })
    }

    fn leave_queue(&self, place: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let gates = Arc::clone(&self.gates);
            let left = tokio::task::spawn_blocking(move || gates.leave_queue(place)).await;
            if let Ok(Err(e)) = left {
                let e = anyhow::Error::from(e);
                warn!(
                    error = format!("{e:#}"),
                    "cannot leave a host's queue for a request slot; the place expires on its own"
                );
            }
        })
    }

    fn release_slot(&self, slot: SharedSlot) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let gates = Arc::clone(&self.gates);
            let host = slot.host.clone();
            let slot = HostSlot {
                host: slot.host,
                slot: slot.slot,
                until: slot.until,
            };
            let released = tokio::task::spawn_blocking(move || gates.release_slot(&slot)).await;
            if let Ok(Err(e)) = released {
                let e = anyhow::Error::from(e);
                warn!(host = %host, error = format!("{e:#}"), "cannot give back a request slot of the host; it expires on its own");
            }
        })
    }

    fn release_all_slots(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let gates = Arc::clone(&self.gates);
            let released = tokio::task::spawn_blocking(move || gates.release_all_slots()).await;
            if let Ok(Err(e)) = released {
                let e = anyhow::Error::from(e);
                warn!(
                    error = format!("{e:#}"),
                    "cannot give back this node's request slots; they expire on their own"
                );
            }
        })
    }
}

/// How often a node beats (at most; a shorter lease beats faster, see `beat_every`).
const BEAT: Duration = Duration::from_secs(10);

/// A node whose last beat is older than this many beat periods counts as gone when hashes are
/// compared (it is still listed by `status`).
const BEATS_ALIVE: u32 = 6;

impl Pipeline<'_> {
    /// Of the feeds `due` (config indexes) that the stream's clock found due at `now`, those
    /// this node now holds a lease on, to poll, with their `records` refreshed from the store.
    /// The others go back on `clock`: at the next
    /// due time the store holds (another node polled them meanwhile), else after `recheck`
    /// (another node holds them now; if it died, its lease runs out and this node claims them
    /// at the first recheck after that). A store error puts them all back for a recheck.
    pub(super) async fn claim_due(
        &self,
        due: &[usize],
        now: DateTime<Utc>,
        records: &mut HashMap<String, FeedRecord>,
        clock: &mut BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    ) -> Vec<usize> {
        if due.is_empty() {
            return Vec::new();
        }
        let feeds = &self.config.feeds;
        let asked: Vec<String> = due.iter().map(|&i| feeds[i].name.clone()).collect();
        let answer = self
            .db(move |s| {
                let refs: Vec<&str> = asked.iter().map(String::as_str).collect();
                let claimed: HashSet<String> = s
                    .claim_feeds(&refs, now, refs.len())?
                    .into_iter()
                    .map(|l| l.feed)
                    .collect();
                // Every asked feed's record as stored now: another node may have polled it
                // since this node last did (validators, errors and schedule are the store's).
                let mut fresh = Vec::new();
                for name in &asked {
                    fresh.push((name.clone(), s.feed_record(name)?));
                }
                Ok((claimed, fresh))
            })
            .await;
        let recheck = now + chrono::Duration::from_std(self.recheck()).unwrap_or_default();
        match answer {
            Ok((claimed, fresh)) => {
                let index: HashMap<&str, usize> =
                    due.iter().map(|&i| (feeds[i].name.as_str(), i)).collect();
                for (name, record) in fresh {
                    let Some(&i) = index.get(name.as_str()) else {
                        continue;
                    };
                    let held = !claimed.contains(&name);
                    let at = record
                        .as_ref()
                        .and_then(|r| r.next_due)
                        .filter(|d| *d > now)
                        .unwrap_or(recheck);
                    if let Some(r) = record {
                        records.insert(name, r);
                    }
                    if held {
                        clock.push(Reverse((at, i)));
                    }
                }
                due.iter()
                    .copied()
                    .filter(|&i| claimed.contains(&feeds[i].name))
                    .collect()
            }
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    feeds = due.len(),
                    "cannot claim due feeds; trying again shortly"
                );
                for &i in due {
                    clock.push(Reverse((recheck, i)));
                }
                Vec::new()
            }
        }
    }

    /// How long a feed another node holds waits before this node asks again: a quarter of the
    /// lease (between 1 s and 30 s), so a dead node's feeds are taken over at most a quarter
    /// lease after its lease ran out.
    pub(super) fn recheck(&self) -> Duration {
        self.config
            .store
            .as_ref()
            .map_or(Duration::from_secs(5), |pg| {
                (pg.lease / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
            })
    }

    /// How often this node beats: `BEAT`, or a third of a shorter lease.
    fn beat_every(&self) -> Duration {
        self.config.store.as_ref().map_or(BEAT, |pg| {
            (pg.lease / 3).clamp(Duration::from_secs(1), BEAT)
        })
    }

    /// Records that this node is alive at `now` (version, rules hash) and compares its rules
    /// hash with the other live nodes': the `cluster_rules_differ` gauge and a warning say when
    /// they differ. On SQLite nothing is written and nothing differs.
    pub(crate) async fn beat(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        if self.config.store.is_none() {
            // SQLite: one node, nobody to compare with (and no need to hash the rules).
            self.metrics.set_cluster_rules_differ(false);
            return Ok(());
        }
        let me = NodeInfo {
            name: self
                .config
                .store
                .as_ref()
                .map_or_else(String::new, |pg| pg.node_name.clone()),
            started: self.started,
            heartbeat: now,
            version: env!("CARGO_PKG_VERSION").to_string(),
            rules_hash: self.rules.fingerprint().to_string(),
            leases: 0,
        };
        let alive =
            now - chrono::Duration::from_std(self.beat_every() * BEATS_ALIVE).unwrap_or_default();
        let mine = me.rules_hash.clone();
        let name = me.name.clone();
        let others = self
            .db(move |s| {
                s.heartbeat(&me)?;
                s.nodes()
            })
            .await?;
        let differing: Vec<String> = others
            .into_iter()
            .filter(|n| n.name != name && n.heartbeat >= alive && n.rules_hash != mine)
            .map(|n| format!("{} ({})", n.name, n.rules_hash))
            .collect();
        self.metrics.set_cluster_rules_differ(!differing.is_empty());
        if !differing.is_empty() {
            warn!(rules_hash = %mine, others = %differing.join(", "), "this node's rules differ from other nodes'");
        }
        Ok(())
    }

    /// Beats every `beat_every` until `stopping` (a failed beat is logged; the next one tries
    /// again).
    pub(super) async fn beat_stage(
        &self,
        stopping: &CancellationToken,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) {
        loop {
            if let Err(e) = self.beat(clock()).await {
                warn!(
                    error = format!("{e:#}"),
                    "cannot record this node's heartbeat"
                );
            }
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(self.beat_every()) => {}
            }
        }
    }
}
