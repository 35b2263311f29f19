//! Pruning on PostgreSQL: SQLite's `prune` (articles.rs), statement for statement, so text and
//! identities go on the same terms on both backends. Decides the identities to forget once, in
//! a temporary table of the transaction, and deletes their rows in every table that names them
//! (PostgreSQL has no foreign keys to cascade from `articles` to `item_keys` and `unmatched`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Postgres;
use crate::store::polls::minus;
use crate::store::{Pruned, StoreError};

/// Settled: matched (or never alertable), in a digest, and not waiting in an alert batch.
const SETTLED: &str = "NOT EXISTS (SELECT 1 FROM unmatched u WHERE u.article = a.id)
    AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.article = a.id AND m.digest IS NULL
                    AND NOT EXISTS (SELECT 1 FROM digest_items di WHERE di.match_id = m.id))
    AND NOT EXISTS (SELECT 1 FROM alert_items ai JOIN matches m ON m.id = ai.match_id
                    WHERE m.article = a.id AND ai.status = 'pending')";

impl Postgres {
    /// As SQLite's `prune`: text not seen for `retention` and identities not seen for
    /// `keep_identities` go, unless the matcher, a digest or an alert batch still needs them.
    pub(crate) fn prune(
        &mut self,
        now: DateTime<Utc>,
        retention: Duration,
        keep_identities: Duration,
    ) -> Result<Pruned, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // What a server crash loses of a prune is pruned again the next time.
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let texts = tx.execute(
            &format!(
                "UPDATE articles AS a SET summary = '', content = '', text_pruned = 1
                 WHERE a.text_pruned = 0 AND a.last_seen < $1 AND {SETTLED}"
            ),
            &[&minus(now, retention)],
        )?;
        let cutoff = minus(now, keep_identities);
        tx.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS prune_gone (article BIGINT PRIMARY KEY)
                 ON COMMIT DELETE ROWS;
             DELETE FROM prune_gone;",
        )?;
        tx.execute(
            &format!(
                "INSERT INTO prune_gone (article)
                 SELECT a.id FROM articles a WHERE a.last_seen < $1 AND {SETTLED}"
            ),
            &[&cutoff],
        )?;
        for table in ["digest_items", "alert_items"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE match_id IN
                       (SELECT m.id FROM matches m WHERE m.article IN
                          (SELECT article FROM prune_gone))"
                ),
                &[],
            )?;
        }
        // `item_keys` and `unmatched` have no foreign key to cascade from (`schema.rs` dropped
        // them: the poll's inserts paid a check per row), so an article's rows go here, by hand.
        for table in ["matches", "item_keys", "unmatched"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE article IN (SELECT article FROM prune_gone)"),
                &[],
            )?;
        }
        let identities = tx.execute(
            "DELETE FROM articles WHERE id IN (SELECT article FROM prune_gone)",
            &[],
        )?;
        tx.execute("DELETE FROM feed_notices WHERE at < $1", &[&cutoff])?;
        tx.commit()?;
        Ok(Pruned {
            texts: usize::try_from(texts).unwrap_or(usize::MAX),
            identities: usize::try_from(identities).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::postgres::fresh_database;
    use super::super::super::testing::{DAY, art, compose, msg, poll, store_with_matches};
    use crate::store::Store;

    /// The same pruning on a PostgreSQL copy as on the SQLite original: what a digest carried
    /// goes, what the matcher still owes stays, and the counts agree.
    #[test]
    fn pruning_takes_the_same_rows_on_both_backends() {
        let (_dir, mut s, now) = store_with_matches();
        compose(&mut s, "main", now, &msg("<digest-p@example.org>"));
        let later = now + DAY * 30;
        poll(&mut s, "f", &[art("owed", None)], later, DAY);
        let mut pg = Store::open_postgres(&fresh_database("node-prune")).expect("open");
        s.copy_into(&mut pg).expect("copy");
        let when = later + DAY;
        for (retention, keep) in [(DAY * 7, DAY * 400), (DAY * 7, DAY * 2)] {
            let on_sqlite = s.prune(when, retention, keep).expect("sqlite");
            let on_pg = pg.prune(when, retention, keep).expect("postgresql");
            assert_eq!(on_pg, on_sqlite, "retention {retention:?}, keep {keep:?}");
            assert_eq!(
                pg.row_counts().expect("pg"),
                s.row_counts().expect("sqlite")
            );
        }
        let owed: Vec<String> = pg
            .pending_articles()
            .expect("pending")
            .into_iter()
            .map(|p| p.article.key)
            .collect();
        assert_eq!(owed, ["owed"]);
        assert!(
            pg.row_counts().expect("counts").articles < 3,
            "old identities went"
        );
    }
}
