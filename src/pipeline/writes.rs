//! The poll writes in flight, for the cycle's poll stage and the stream's writer alike: one at a
//! time on SQLite (its one connection is the one writer), a few on PostgreSQL (issue 17), each
//! its own transaction on a handle of its own, so the server works on one batch while the next
//! is built and sent. A feed is in one write at most: two polls of a feed are never written
//! out of order. Owns no policy of what a failed write means; its callers decide.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::task::{Id, JoinError, JoinSet};

use crate::store::Store;

/// Poll writes in flight at most on PostgreSQL: enough for the server to work on one batch
/// while the next is sent (the machine's cores are shared with fetching and parsing); each
/// holds a pooled connection while it runs.
const PG_WRITES: usize = 3;

/// Connections of `[store] pool_size` left to the rest of the node (the match, compose and
/// delivery stages, the host gates) while writes are in flight.
const POOL_KEPT: u32 = 2;

/// The handles writes go through: `store` itself on SQLite (`pool` is `None`) or when the pool
/// is too small to spare a connection; else up to `PG_WRITES` handles of their own on its pool,
/// so the other stages never wait for the store's lock behind a write.
pub(super) fn writers(store: &Arc<Mutex<Store>>, pool: Option<u32>) -> Vec<Arc<Mutex<Store>>> {
    let spare = pool.map_or(0, |p| p.saturating_sub(POOL_KEPT));
    let n = usize::try_from(spare).unwrap_or(usize::MAX).min(PG_WRITES);
    let siblings: Vec<Arc<Mutex<Store>>> = {
        // A poisoned lock is safe to reuse (see `Pipeline::db`).
        let guard = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (0..n)
            .map_while(|_| guard.sibling())
            .map(|s| Arc::new(Mutex::new(s)))
            .collect()
    };
    if siblings.len() < 2 {
        return vec![Arc::clone(store)];
    }
    siblings
}

/// A write that finished: what its caller keeps of its polls (in the batch's order), and what
/// the task gave back.
pub(super) type Done<R, T> = (Vec<R>, Result<T, JoinError>);

/// A write to start: what the caller keeps of its polls, their feeds, and the blocking work.
pub(super) type Batch<R, W> = (Vec<R>, Vec<String>, W);

/// The writes in flight, at most one per writer handle; `R` is what the caller keeps of each
/// poll while it is written, `T` what a write gives back.
pub(super) struct Writes<R, T> {
    writers: Vec<Arc<Mutex<Store>>>,
    tasks: JoinSet<T>,
    /// Per task: what the caller keeps, the writer handle it holds, and its feeds.
    batches: HashMap<Id, (Vec<R>, usize, Vec<String>)>,
    /// Writer handles no write holds.
    free: Vec<usize>,
    /// The feeds of the polls being written.
    feeds: HashSet<String>,
}

impl<R, T: Send + 'static> Writes<R, T> {
    pub(super) fn new(writers: &[Arc<Mutex<Store>>]) -> Writes<R, T> {
        Writes {
            writers: writers.to_vec(),
            tasks: JoinSet::new(),
            batches: HashMap::new(),
            free: (0..writers.len()).rev().collect(),
            feeds: HashSet::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Starts writes while a writer is free and `batch` (given the writer's handle and the
    /// feeds being written, which it must leave queued) has one to start.
    pub(super) fn start<W>(
        &mut self,
        mut batch: impl FnMut(Arc<Mutex<Store>>, &HashSet<String>) -> Option<Batch<R, W>>,
    ) where
        W: FnOnce() -> T + Send + 'static,
    {
        while let Some(&slot) = self.free.last() {
            let Some((kept, feeds, work)) = batch(Arc::clone(&self.writers[slot]), &self.feeds)
            else {
                return;
            };
            self.free.pop();
            self.feeds.extend(feeds.iter().cloned());
            let task = self.tasks.spawn_blocking(work);
            self.batches.insert(task.id(), (kept, slot, feeds));
        }
    }

    /// The next write to finish; pending while none is in flight. Cancel-safe (a `select!`
    /// branch).
    pub(super) async fn next(&mut self) -> Done<R, T> {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (id, outcome) = match joined {
                Ok((id, outcome)) => (id, Ok(outcome)),
                Err(e) => (e.id(), Err(e)),
            };
            let Some((kept, slot, feeds)) = self.batches.remove(&id) else {
                continue;
            };
            self.free.push(slot);
            for f in &feeds {
                self.feeds.remove(f);
            }
            return (kept, outcome);
        }
    }
}
