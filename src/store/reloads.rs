//! The `reloads` table: each config and rules reload of the daemon, applied or refused, for
//! `newswatch status`. Written by the daemon; read by `status`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, StoreError, from_ts, ts};

/// One reload of the daemon's config and rules, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadInfo {
    pub at: DateTime<Utc>,
    /// Applied, or refused (the previous set kept running).
    pub applied: bool,
    /// What was loaded, or why it was refused.
    pub detail: String,
}

impl Sqlite {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{on_both_backends, t};
    use super::ReloadInfo;

    on_both_backends! {
        /// `status` shows the latest reload, applied or refused; none before the first.
        fn the_last_reload_is_the_latest(s) {
            assert_eq!(s.last_reload().expect("none yet"), None);
            s.record_reload(t("2026-01-01T10:00:00Z"), true, "12 rules").expect("record");
            s.record_reload(t("2026-01-01T11:00:00Z"), false, "rules.toml:3: bad")
                .expect("record");
            assert_eq!(
                s.last_reload().expect("read"),
                Some(ReloadInfo {
                    at: t("2026-01-01T11:00:00Z"),
                    applied: false,
                    detail: "rules.toml:3: bad".into(),
                })
            );
        }
    }
}
