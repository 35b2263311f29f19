//! The service edge: what makes newswatch a well-behaved system service. The daemon loop
//! (`daemon`: tasks, signals, reload), the `/metrics` + `/healthz` server (`health`, `metrics`),
//! sd_notify and the watchdog (`notify`), the instance lock (`lock`), log output (`logging`) and
//! glibc's arena limit (`malloc`).
//! Nothing here matches, renders or speaks SQL itself: it drives the pipeline.

pub mod daemon;
pub mod health;
pub mod lock;
pub mod logging;
pub mod malloc;
pub mod metrics;
pub mod notify;
pub mod websub;
