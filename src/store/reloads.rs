//! The `reloads` table: each config and rules reload of the daemon, applied or refused, for
//! `newswatch status`. Written by the daemon; read by `status`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, from_ts, ts};

/// One reload of the daemon's config and rules, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadInfo {
    pub at: DateTime<Utc>,
    /// Applied, or refused (the previous set kept running).
    pub applied: bool,
    /// What was loaded, or why it was refused.
    pub detail: String,
}

impl Store {
    pub fn record_reload(
        &self,
        at: DateTime<Utc>,
        applied: bool,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO reloads (at, applied, detail) VALUES (?1, ?2, ?3)",
            params![ts(at), applied, detail],
        )?;
        Ok(())
    }

    pub fn last_reload(&self) -> Result<Option<ReloadInfo>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT at, applied, detail FROM reloads ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ReloadInfo {
                        at: from_ts(r.get(0)?),
                        applied: r.get(1)?,
                        detail: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}
