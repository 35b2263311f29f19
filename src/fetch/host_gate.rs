//! Politeness per host: at most N requests in flight to one host, and a minimum spacing between
//! the starts of requests to it. Used by `fetch` only; the global concurrency cap is the
//! pipeline's. Reads tokio's clock (so paused-time tests drive it) and nothing else; the spacing
//! shared with other nodes (issue 17) is asked of a `SharedSpacing` the pipeline hands in.

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

/// A host spacing shared with other processes (the nodes of a cluster): reserves, for one
/// request to `host`, a start at least `spacing` after every start reserved before by anyone,
/// and says how long from now to wait for it. `None` when it cannot (the local gate still
/// spaces this node's own requests).
pub trait SharedSpacing: Send + Sync + std::fmt::Debug {
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        spacing: Duration,
    ) -> Pin<Box<dyn Future<Output = Option<Duration>> + Send + 'a>>;
}

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
}

/// Held for the duration of one request; dropping it frees the host's slot.
#[derive(Debug)]
pub struct HostPermit {
    _permit: OwnedSemaphorePermit,
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
        }
    }

    /// The same gate, its spacing also shared through `shared` (a cluster's nodes).
    #[must_use]
    pub fn sharing(mut self, shared: Option<Arc<dyn SharedSpacing>>) -> HostGate {
        self.shared = shared;
        self
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
            && let Some(wait) = shared.reserve(&host, self.limits.spacing).await
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
        *next = Instant::now().max(*next) + self.limits.spacing;
        HostPermit { _permit: permit }
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
