//! What a running daemon shares with the console it serves, and nothing else: the queue of
//! digests asked for now (`requests`, drained by the pipeline's compose stage) and the stages'
//! recent timings (`stage_times`, written beside `/metrics`). Plain shared state, no IO: the
//! console reads and asks through these without importing the pipeline or the service.

pub mod requests;
pub mod stage_times;

pub use requests::{Requests, SendNow};
pub use stage_times::{Stage, StageTimes};
