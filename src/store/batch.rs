//! Multi-row inserts: many rows of one kind written by as few executions of as few cached
//! statements as `BATCHES` allow, instead of one statement per row. Issue 22: on the cold
//! cycle, binding, stepping and resetting a statement per row cost nearly as much as the rows'
//! own B-tree writes. (Not one JSON array through `json_each`: measured with callgrind on the
//! item keys, 13,600 instructions a key that way, 17,000 as one statement each, 9,600 in these.)

use rusqlite::Transaction;

use super::StoreError;

/// Rows per execution, largest first: 200 rows go in three executions of 64 and two of 4.
/// Each size is one statement in the connection's cache.
pub(super) const BATCHES: [usize; 4] = [64, 16, 4, 1];

/// `sql(n)` for every size of `BATCHES`, in its order.
pub(super) fn statements(sql: impl Fn(usize) -> String) -> Vec<String> {
    BATCHES.iter().map(|&n| sql(n)).collect()
}

/// `head VALUES (…), (…) tail` for `n` rows: row `i` binds `?1` (shared by every row, when
/// `shared`) and then its own `width` parameters.
pub(super) fn values_sql(head: &str, shared: bool, width: usize, n: usize, tail: &str) -> String {
    let first = if shared { 2 } else { 1 };
    let rows: Vec<String> = (0..n)
        .map(|row| {
            let own = (0..width).map(|c| format!("?{}", first + row * width + c));
            let cols: Vec<String> = shared
                .then(|| "?1".to_string())
                .into_iter()
                .chain(own)
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect();
    format!("{head} VALUES {}{tail}", rows.join(", "))
}

/// Executes the statements `sqls` (from `statements`: rows of `width` parameters after the
/// `shared` `?1`) over `rows`, the largest size first; `bind` binds one row's parameters from
/// the index it is given. Returns the rows written.
pub(super) fn execute<R>(
    tx: &Transaction<'_>,
    sqls: &[String],
    shared: Option<&str>,
    width: usize,
    rows: &[R],
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> Result<usize, StoreError> {
    let mut rest = rows;
    let mut changed = 0;
    for (&n, sql) in BATCHES.iter().zip(sqls) {
        if rest.len() < n {
            continue;
        }
        let mut stmt = tx.prepare_cached(sql)?;
        while rest.len() >= n {
            let (batch, tail) = rest.split_at(n);
            let mut at = 1;
            if let Some(value) = shared {
                stmt.raw_bind_parameter(1, value)?;
                at = 2;
            }
            for row in batch {
                bind(&mut stmt, at, row)?;
                at += width;
            }
            changed += stmt.raw_execute()?;
            rest = tail;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_row_by_row() {
        assert_eq!(
            values_sql(
                "INSERT INTO t (f, k, a)",
                true,
                2,
                2,
                " ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (f, k, a) VALUES (?1, ?2, ?3), (?1, ?4, ?5) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            values_sql("INSERT INTO t (a)", false, 1, 3, ""),
            "INSERT INTO t (a) VALUES (?1), (?2), (?3)"
        );
    }

    /// Every row is written once, whatever the count (sizes 64, 16, 4 and 1 combined).
    #[test]
    fn every_row_goes_in_once() {
        let sqls = statements(|n| values_sql("INSERT INTO t (f, a)", true, 1, n, ""));
        for count in [0_i64, 1, 3, 4, 21, 64, 85, 200] {
            let mut conn = rusqlite::Connection::open_in_memory().expect("db");
            conn.execute_batch("CREATE TABLE t (f TEXT NOT NULL, a INTEGER PRIMARY KEY)")
                .expect("table");
            let tx = conn.transaction().expect("tx");
            let rows: Vec<i64> = (0..count).collect();
            let written = execute(&tx, &sqls, Some("feed"), 1, &rows, |s, at, a| {
                s.raw_bind_parameter(at, a)
            })
            .expect("insert");
            assert_eq!(written, rows.len(), "{count} rows");
            let stored: Vec<(String, i64)> = tx
                .prepare("SELECT f, a FROM t ORDER BY a")
                .expect("select")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("read");
            let want: Vec<(String, i64)> = rows.iter().map(|a| ("feed".to_string(), *a)).collect();
            assert_eq!(stored, want, "{count} rows");
        }
    }
}
