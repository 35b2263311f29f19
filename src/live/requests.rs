//! Work asked of a running daemon's pipeline from outside it (the web console's "Send digest
//! now"): a small queue the match-and-compose stage drains between its turns, composing through
//! the same path as a scheduled digest, so the email goes into the outbox and the delivery stage
//! sends it. The queue holds only requests; what is composed is durable in the outbox.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};

/// Requests queued at once; one more is refused (an operator pressing a button many times
/// must not queue unbounded work).
pub const MAX_QUEUED: usize = 16;

/// A digest to compose now, and where its outcome goes: the emails composed (0: nothing was
/// pending) or the error's words.
pub struct SendNow {
    pub digest: String,
    pub reply: oneshot::Sender<Result<usize, String>>,
}

/// The queue between the console and the pipeline; shared by both (an `Arc`), and across
/// reloads: a request made while the pipeline reopens is served by the new one.
#[derive(Default)]
pub struct Requests {
    queue: Mutex<VecDeque<SendNow>>,
    wake: Notify,
}

impl Requests {
    /// Queues `digest` to be composed; the receiver gets the outcome. `None` when the queue is
    /// full.
    pub fn send_now(&self, digest: &str) -> Option<oneshot::Receiver<Result<usize, String>>> {
        let (reply, rx) = oneshot::channel();
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= MAX_QUEUED {
            return None;
        }
        q.push_back(SendNow {
            digest: digest.to_string(),
            reply,
        });
        drop(q);
        self.wake.notify_one();
        Some(rx)
    }

    /// Every request queued now, oldest first.
    pub(crate) fn take(&self) -> Vec<SendNow> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    /// Resolves when a request has been queued since the last call.
    pub(crate) async fn queued(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_in_order_and_bounded() {
        let r = Requests::default();
        let mut rx = Vec::new();
        for i in 0..MAX_QUEUED {
            rx.push(r.send_now(&format!("d{i}")).expect("room in the queue"));
        }
        assert!(r.send_now("one too many").is_none());
        let taken = r.take();
        assert_eq!(taken.len(), MAX_QUEUED);
        assert_eq!(taken[0].digest, "d0");
        assert!(r.take().is_empty());
        assert!(r.send_now("again").is_some(), "room once taken");
    }
}
