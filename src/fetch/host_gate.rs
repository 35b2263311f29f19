//! Politeness per host: at most N requests in flight to one host, and a minimum spacing between
//! the starts of requests to it. Used by `fetch` only; the global concurrency cap is the
//! pipeline's. Reads tokio's clock (so paused-time tests drive it) and nothing else; the limit
//! and spacing shared with other nodes (issue 17) are asked of a `SharedSpacing` the pipeline
//! hands in.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits applied to every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Requests in flight to one host at once (at least 1).
    pub per_host: usize,
    /// Minimum time between the starts of two requests to one host.
    pub spacing: Duration,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            per_host: 1,
            spacing: Duration::from_secs(1),
        }
    }
}

/// A host gate shared with other processes (the nodes of a cluster): its spacing and its
/// in-flight limit.
pub trait SharedSpacing: Send + Sync + std::fmt::Debug {
    /// Reserves, for one request to `host`, a start at least `spacing` after every start
    /// reserved before by anyone, and says how long from now to wait for it. `None` when it
    /// cannot (the local gate still spaces this node's own requests).
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        spacing: Duration,
    ) -> Pin<Box<dyn Future<Output = Option<Duration>> + Send + 'a>>;

    /// Takes one of `host`'s `per_host` request slots shared by everyone, for at most `hold`,
    /// in turn: `place` is the place in the host's queue a `Waiting` answer gave this request
    /// (`None` the first time).
    fn take_slot<'a>(
        &'a self,
        host: &'a str,
        per_host: usize,
        hold: Duration,
        place: Option<i64>,
    ) -> Pin<Box<dyn Future<Output = SlotAnswer> + Send + 'a>>;

    /// Gives up a place in a host's queue (the request stopped waiting).
    fn leave_queue(&self, place: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Gives back a slot `take_slot` gave.
    fn release_slot(&self, slot: SharedSlot) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Gives back every slot this process holds (its requests were aborted).
    fn release_all_slots(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A request slot taken from the shared gate; its meaning is the sharer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSlot {
    pub host: String,
    pub slot: i64,
    pub until: i64,
}

/// What the shared gate answered to `take_slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAnswer {
    Taken(SharedSlot),
    /// Every slot is held, or others asked first: ask again later, with this place in the
    /// host's queue.
    Waiting(i64),
    /// The shared gate cannot be asked now: this node's own limit is all there is.
    Unavailable,
}

/// How soon a request waiting for a shared slot asks again, doubling up to `SLOT_POLL_MAX`. The
/// first in the queue gets a freed slot when it next asks, so the slot stands idle until then:
/// the longest wait is short. A place not asked for in 10 s is lost (`store::pg::host_gates`).
const SLOT_POLL_MIN: Duration = Duration::from_millis(50);
const SLOT_POLL_MAX: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct Slot {
    permits: Arc<Semaphore>,
    /// The earliest instant the next request may start.
    next_start: tokio::sync::Mutex<Instant>,
}

/// Shared by every clone of a `Fetcher`. One entry per host ever fetched, so it is bounded by
/// the number of configured feeds (and their redirect targets).
#[derive(Debug)]
pub struct HostGate {
    limits: HostLimits,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    shared: Option<Arc<dyn SharedSpacing>>,
    /// How long a shared slot is held at most (a request, and the wait for its turn, last
    /// less); it expires then, should this node die holding it.
    hold: Duration,
}

/// Held for the duration of one request; dropping it frees the host's slot on this node, and
/// `release` the shared one too (dropped, the shared slot waits for its expiry or for the
/// stream's `release_all_slots`).
#[derive(Debug)]
pub struct HostPermit {
    _permit: OwnedSemaphorePermit,
    shared: Option<(Arc<dyn SharedSpacing>, SharedSlot)>,
}

/// A request's place in a host's shared queue while it waits for a slot; dropped with one
/// (the wait given up, or a place left by an answer that was not `Taken`), it is given up.
struct QueuePlace {
    shared: Arc<dyn SharedSpacing>,
    place: Option<i64>,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        let Some(place) = self.place.take() else {
            return;
        };
        // No runtime (a process ending): the place expires on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move { shared.leave_queue(place).await });
        }
    }
}

impl HostPermit {
    /// Ends the request's turn: this node's slot and the cluster's.
    pub async fn release(self) {
        if let Some((shared, slot)) = self.shared {
            shared.release_slot(slot).await;
        }
    }
}

impl HostGate {
    pub fn new(limits: HostLimits) -> HostGate {
        HostGate {
            limits: HostLimits {
                per_host: limits.per_host.max(1),
                ..limits
            },
            slots: Mutex::new(HashMap::new()),
            shared: None,
            hold: Duration::ZERO,
        }
    }

    /// The same gate, its limit and spacing also shared through `shared` (a cluster's nodes),
    /// a shared slot held `hold` at most.
    #[must_use]
    pub fn sharing(mut self, shared: Option<Arc<dyn SharedSpacing>>, hold: Duration) -> HostGate {
        self.shared = shared;
        self.hold = hold;
        self
    }

    /// One of the host's slots shared with the other nodes, waiting in the host's queue for
    /// one to come free; `None` when the shared gate cannot be asked (this node's own limit
    /// still holds). Dropped while waiting (the request given up), it leaves the queue.
    async fn shared_slot(&self, shared: &Arc<dyn SharedSpacing>, host: &str) -> Option<SharedSlot> {
        let mut wait = SLOT_POLL_MIN;
        let mut place = QueuePlace {
            shared: Arc::clone(shared),
            place: None,
        };
        loop {
            let answer = shared
                .take_slot(host, self.limits.per_host, self.hold, place.place)
                .await;
            match answer {
                SlotAnswer::Taken(slot) => {
                    place.place = None;
                    return Some(slot);
                }
                SlotAnswer::Unavailable => return None,
                SlotAnswer::Waiting(p) => {
                    place.place = Some(p);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(SLOT_POLL_MAX);
                }
            }
        }
    }

    /// Waits until a request to `host` may start.
    pub async fn acquire(&self, host: &str) -> HostPermit {
        let host = host.to_ascii_lowercase();
        let slot = {
            // A poisoned map only means another task panicked while inserting; the map itself
            // is still a valid map of slots.
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .entry(host.clone())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        permits: Arc::new(Semaphore::new(self.limits.per_host)),
                        next_start: tokio::sync::Mutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        let permit = slot
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the slot owns its semaphore and never closes it");
        // The cluster's limit next (before the spacing: a start reserved and then kept waiting
        // for a slot would come closer than the spacing to the next node's).
        let shared_slot = match &self.shared {
            // The cluster's calls are boxed (here and below), allocated only beside PostgreSQL:
            // every due feed of a cycle waits in this function at once, so its own state is
            // what each waiting feed costs.
            Some(shared) => Box::pin(self.shared_slot(shared, &host))
                .await
                .map(|s| (Arc::clone(shared), s)),
            None => None,
        };
        let mut next = slot.next_start.lock().await;
        // Only a future start waits: a timer for a past instant still fires on the timer's next
        // tick (1 ms), which, with the lock held, capped a host at ~900 requests/s.
        if Instant::now() < *next {
            tokio::time::sleep_until(*next).await;
        }
        // Then the cluster's turn, still holding this node's own turn (its requests to the host
        // keep their order).
        if let Some(shared) = self
            .shared
            .as_ref()
            .filter(|_| !self.limits.spacing.is_zero())
            && let Some(wait) = Box::pin(shared.reserve(&host, self.limits.spacing)).await
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
        *next = Instant::now().max(*next) + self.limits.spacing;
        HostPermit {
            _permit: permit,
            shared: shared_slot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no spacing, a free gate is taken at once, without a trip through the timer (whose
    /// 1 ms tick, with the host's lock held, once capped a host at ~900 requests/s).
    #[tokio::test]
    async fn no_spacing_takes_a_free_gate_without_waiting() {
        use futures_util::FutureExt as _;
        let gate = HostGate::new(HostLimits {
            per_host: 1,
            spacing: Duration::ZERO,
        });
        for i in 0..1000 {
            // `unconstrained`: tokio's cooperative budget would make every 64th call yield.
            let permit = tokio::task::unconstrained(gate.acquire("a.example")).now_or_never();
            assert!(permit.is_some(), "request {i} had to wait");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_and_limits_requests_per_host() {
        let gate = Arc::new(HostGate::new(HostLimits {
            per_host: 1,
            spacing: Duration::from_secs(2),
        }));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for host in ["a.example", "A.example", "a.example", "b.example"] {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire(host).await;
                let started = Instant::now() - t0;
                // Hold the host for 3 s: longer than the spacing, so the limit decides.
                tokio::time::sleep(Duration::from_secs(3)).await;
                (host, started.as_secs())
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap_or(("panicked", 0)));
        }
        got.sort_by_key(|&(_, s)| s);
        assert_eq!(
            got,
            vec![
                ("a.example", 0),
                ("b.example", 0),
                ("A.example", 3),
                ("a.example", 6)
            ]
        );
    }
}
