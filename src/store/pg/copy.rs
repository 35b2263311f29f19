//! Copying a SQLite state into an empty PostgreSQL one (`newswatch store migrate-to`, issue 17):
//! every table of `schema::COPIED_TABLES`, every row with its id, in one PostgreSQL transaction,
//! so a single node becomes a cluster without re-alerting anything: item identities, the
//! matcher's to-do list, pending matches, served slots and the outbox come along as they are.
//! Columns are matched by name; each value is converted by the PostgreSQL column's type.

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use super::Postgres;
use super::schema::COPIED_TABLES;
use crate::store::{Sqlite, StoreError};

/// What was copied: rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
}

impl Postgres {
    /// Copies `src` into this database, which must hold no feed yet (a copy into a used state
    /// would merge two histories). All or nothing.
    pub(crate) fn copy_from(&mut self, src: &Sqlite) -> Result<CopyReport, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let existing: i64 = tx.query_one("SELECT COUNT(*) FROM feeds", &[])?.get(0);
        if existing > 0 {
            return Err(StoreError::CopyTargetNotEmpty {
                url: self.url.clone(),
                feeds: existing,
            });
        }
        refuse_what_would_be_lost(src)?;
        let mut report = CopyReport::default();
        for &table in COPIED_TABLES {
            let target: Vec<(String, String)> = tx
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1
                     ORDER BY ordinal_position",
                    &[&table],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let source: Vec<String> = src
                .conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            // Columns both sides have (the cluster's own start empty; a column SQLite dropped
            // long ago is not asked for).
            // A column PostgreSQL does not have yet must hold nothing, or it would be lost.
            for column in source
                .iter()
                .filter(|c| !target.iter().any(|(t, _)| t == *c))
            {
                let rows: i64 = src.conn.query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE \"{column}\" IS NOT NULL"),
                    [],
                    |r| r.get(0),
                )?;
                if rows > 0 {
                    return Err(StoreError::CopyUnported {
                        at: format!("{table}.{column}"),
                        rows: rows as u64,
                    });
                }
            }
            let columns: Vec<&(String, String)> =
                target.iter().filter(|(c, _)| source.contains(c)).collect();
            let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            let list = names.join(", ");
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = tx.prepare(&format!(
                "INSERT INTO {table} ({list}) VALUES ({})",
                placeholders.join(", ")
            ))?;
            let mut stmt = src.conn.prepare(&format!("SELECT {list} FROM {table}"))?;
            let mut rows = stmt.query([])?;
            let mut copied = 0u64;
            while let Some(row) = rows.next()? {
                let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
                for (i, (column, kind)) in columns.iter().enumerate() {
                    values.push(convert(table, column, kind, row.get_ref(i)?)?);
                }
                let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
                tx.execute(&insert, &refs)?;
                copied += 1;
            }
            if names.contains(&"id") {
                // The next id after the copied ones (identity columns do not see explicit ids).
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                       COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                    ),
                    &[],
                )?;
            }
            report.tables.push((table.to_string(), copied));
        }
        tx.commit()?;
        Ok(report)
    }
}

/// The PostgreSQL schema is ported table by table (issue 17): a SQLite table outside
/// `COPIED_TABLES` that holds rows would be dropped by the copy (so would a column PostgreSQL
/// lacks: checked table by table in `copy_from`). Refuses instead, naming it, so `migrate-to`
/// never loses state silently.
/// SQLite tables the copy leaves behind on purpose: views of the past that new work rebuilds,
/// never state the pipeline needs (`rule_days`: per-rule per-day match counts, kept by
/// triggers on both sides; PostgreSQL's rebuild it from the copied `matches`).
const NOT_COPIED: &[&str] = &["rule_days"];

fn refuse_what_would_be_lost(src: &Sqlite) -> Result<(), StoreError> {
    let tables: Vec<String> = src
        .conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for table in tables
        .iter()
        .filter(|t| !COPIED_TABLES.contains(&t.as_str()) && !NOT_COPIED.contains(&t.as_str()))
    {
        let rows: i64 =
            src.conn
                .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })?;
        if rows > 0 {
            return Err(StoreError::CopyUnported {
                at: table.clone(),
                rows: rows as u64,
            });
        }
    }
    Ok(())
}

/// One SQLite value as the PostgreSQL column `kind` takes it.
fn convert(
    table: &str,
    column: &str,
    kind: &str,
    value: ValueRef<'_>,
) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let mismatch = || StoreError::CopyValue {
        at: format!("{table}.{column}"),
        expected: kind.to_string(),
    };
    Ok(match (kind, value) {
        ("bigint", ValueRef::Null) => Box::new(None::<i64>),
        ("bigint", ValueRef::Integer(n)) => Box::new(n),
        ("boolean", ValueRef::Null) => Box::new(None::<bool>),
        ("boolean", ValueRef::Integer(n)) => Box::new(n != 0),
        ("text", ValueRef::Null) => Box::new(None::<String>),
        ("text", ValueRef::Text(t)) => {
            Box::new(String::from_utf8(t.to_vec()).map_err(|_| mismatch())?)
        }
        ("bytea", ValueRef::Null) => Box::new(None::<Vec<u8>>),
        ("bytea", ValueRef::Blob(b) | ValueRef::Text(b)) => Box::new(b.to_vec()),
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::super::testing::postgres::fresh_database;
    use super::super::super::testing::{DAY, art, compose, hit, msg, poll, store_with_matches};
    use crate::store::{ArticleMatches, Backend, Store, StoreError};

    /// A SQLite state with a sent-to-outbox digest, a pending match and an unmatched article
    /// becomes a PostgreSQL state in which nothing re-alerts and nothing is lost.
    #[test]
    fn a_copied_state_alerts_nothing_again_and_loses_nothing() {
        let (_dir, mut s, now) = store_with_matches();
        compose(&mut s, "main", now, &msg("<digest-1@example.org>"));
        poll(
            &mut s,
            "f",
            &[
                art("a", None),
                art("b", None),
                art("c", None),
                art("d", None),
            ],
            now,
            DAY,
        );
        let pending = s.pending_articles().expect("pending");
        let c = pending.iter().find(|p| p.article.key == "c").expect("c").id;
        let verdict = [ArticleMatches {
            article: c,
            matches: vec![("minerals".into(), vec![hit("deal")])],
        }];
        s.record_matches(&verdict, now, &HashMap::new(), "rules-v1")
            .expect("c matched");

        let settings = fresh_database("node-copy");
        let mut pg = Store::open_postgres(&settings).expect("open");
        let report = s.copy_into(&mut pg).expect("copy");
        let rows: HashMap<&str, u64> = report
            .tables
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        assert_eq!(
            (
                rows["articles"],
                rows["matches"],
                rows["outbox"],
                rows["unmatched"]
            ),
            (4, 2, 1, 1)
        );

        assert_eq!(
            pg.feed_records().expect("pg"),
            s.feed_records().expect("sqlite")
        );
        // The console's per-poll history came along, the same rows in the same order.
        assert!(rows["polls"] > 0, "{rows:?}");
        assert_eq!(
            pg.poll_history("f", 50).expect("pg"),
            s.poll_history("f", 50).expect("sqlite")
        );
        let keys = |st: &Store| -> Vec<String> {
            st.pending_articles()
                .expect("pending")
                .into_iter()
                .map(|p| p.article.key)
                .collect()
        };
        assert_eq!(keys(&pg), ["d"]);
        // The same listing again: nothing is new, nothing matched again.
        let later = now + chrono::Duration::hours(1);
        assert_eq!(
            poll(
                &mut pg,
                "f",
                &[
                    art("a", None),
                    art("b", None),
                    art("c", None),
                    art("d", None)
                ],
                later,
                DAY
            )
            .new,
            0
        );
        assert_eq!(
            pg.record_matches(&verdict, later, &HashMap::new(), "rules-v1")
                .expect("again"),
            0
        );
        // The outbox row came along with its Message-ID, still owed.
        let mut db = postgres::Client::connect(&settings.url, postgres::NoTls).expect("connect");
        let row = db
            .query_one("SELECT message_id, status FROM outbox", &[])
            .expect("outbox row");
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1)),
            ("<digest-1@example.org>".into(), "queued".into())
        );
        // New rows get ids after the copied ones.
        poll(&mut pg, "f", &[art("e", None)], later, DAY);
        let ids: Vec<i64> = pg
            .pending_articles()
            .expect("pending")
            .iter()
            .map(|p| p.id)
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]) && ids.len() == 2,
            "{ids:?}"
        );
        // A second copy would merge two histories: refused, nothing changed.
        let again = s.copy_into(&mut pg).expect_err("not empty");
        assert!(
            matches!(again, StoreError::CopyTargetNotEmpty { feeds: 1, .. }),
            "{again}"
        );
        assert!(matches!(
            pg.copy_into(&mut s),
            Err(StoreError::CopyDirection)
        ));
    }

    /// A SQLite state holding what PostgreSQL has no table for is refused whole, naming the
    /// table, rather than copied without it; the tables it has (a queued channel message, issue
    /// 19; a WebSub subscription, issue 20) come along.
    #[test]
    fn a_state_with_rows_postgres_cannot_hold_is_refused_whole() {
        let (_dir, mut s, now) = store_with_matches();
        s.queue_channel_message("alert breaking", "ops-room", "{}", now)
            .expect("queued");
        s.record_hub(
            "f",
            "https://hub.example/",
            "https://e.example/f",
            "tok",
            "sec",
        )
        .expect("a WebSub subscription");
        s.websub_verified("f", std::time::Duration::from_secs(3600), now)
            .expect("verified");
        let settings = fresh_database("node-copy-channels");
        let mut pg = Store::open_postgres(&settings).expect("open");
        let report = s.copy_into(&mut pg).expect("copied");
        assert!(
            report.tables.contains(&("channel_outbox".to_string(), 1)),
            "{report:?}"
        );
        // The subscription comes along whole: the hub's callbacks find it on any node.
        assert!(
            report.tables.contains(&("websub".to_string(), 1)),
            "{report:?}"
        );
        assert_eq!(
            pg.websub_by_token("tok").expect("pg"),
            s.websub_by_token("tok").expect("sqlite")
        );

        let Backend::Sqlite(sqlite) = &s.backend else {
            unreachable!("a SQLite store")
        };
        sqlite
            .conn
            .execute_batch(
                "CREATE TABLE later_feature (x INTEGER); INSERT INTO later_feature VALUES (1);",
            )
            .expect("a table PostgreSQL lacks");
        let settings = fresh_database("node-copy-refused");
        let mut pg = Store::open_postgres(&settings).expect("open");
        let err = s.copy_into(&mut pg).expect_err("refused");
        assert!(
            matches!(&err, StoreError::CopyUnported { at, rows: 1 } if at == "later_feature"),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was copied"), "{err}");
        assert!(pg.feed_records().expect("pg").is_empty());
    }
}
