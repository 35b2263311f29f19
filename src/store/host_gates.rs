//! The cluster's shared host spacing (issue 17), and its SQLite side: one node has nobody to
//! share a host with, so there is no shared gate and the fetcher's own gate is the whole story.
//! The PostgreSQL side is `pg/host_gates.rs`.

use super::Sqlite;

pub use super::pg::{HostGates, HostSlot, SlotTake};

impl Sqlite {
    /// One node: no shared gate.
    #[allow(clippy::unused_self)]
    pub(super) fn host_gates(&self) -> Option<HostGates> {
        None
    }
}
