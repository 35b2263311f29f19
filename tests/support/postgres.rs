//! The test PostgreSQL for the integration tests: the store's unit-test server
//! (`src/store/testing/pg_server.rs`, included, not copied), one per test binary, a fresh
//! database per test, and `[store]` tables naming it.

#[path = "../../src/store/testing/pg_server.rs"]
#[allow(dead_code)]
mod pg_server;

/// A PostgreSQL of one test's own, which it may stop and start again under running nodes.
pub(crate) use pg_server::PrivateServer;

/// Cuts every connection of node `node` (`pg_terminate_backend`); returns how many were cut.
pub fn terminate_node(node: &str) -> usize {
    pg_server::terminate_node(node)
}

/// A fresh, empty database on the test server (started on first use): its URL (a socket
/// directory as `?host=`, no password: the server trusts its socket).
pub fn fresh_database_url() -> String {
    let (socket_dir, db) = pg_server::fresh_database_name();
    pg_server::url(socket_dir, &db)
}

/// A `[store]` table for node `node` on the database at `url`, with `lease`.
pub fn store_table(url: &str, node: &str, lease: &str) -> String {
    format!("\n[store]\nurl = \"{url}\"\nnode_name = \"{node}\"\nlease = \"{lease}\"\n")
}

/// Runs `sql` on the database at `url` and returns the first column of each row as text.
pub fn query(url: &str, sql: &str) -> Vec<String> {
    try_query(url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `query`, or its error (a table a node has not made yet).
pub fn try_query(url: &str, sql: &str) -> Result<Vec<String>, postgres::Error> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(c.query(sql, &[])?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}
