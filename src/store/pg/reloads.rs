//! The `reloads` table on PostgreSQL: each node's config and rules reloads, for `status`.

use chrono::{DateTime, Utc};

use super::{Postgres, from_ts, ts};
use crate::store::{ReloadInfo, StoreError};

impl Postgres {
    pub(crate) fn record_reload(
        &self,
        at: DateTime<Utc>,
        applied: bool,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO reloads (at, applied, detail) VALUES ($1, $2, $3)",
            &[&ts(at), &applied, &detail],
        )?;
        Ok(())
    }

    pub(crate) fn last_reload(&self) -> Result<Option<ReloadInfo>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT at, applied, detail FROM reloads ORDER BY id DESC LIMIT 1",
            &[],
        )?;
        Ok(row.map(|r| ReloadInfo {
            at: from_ts(r.get(0)),
            applied: r.get(1),
            detail: r.get(2),
        }))
    }
}
