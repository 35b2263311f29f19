//! The test PostgreSQL (`pg_server`, shared with the integration tests) as the store's unit
//! tests use it: settings for a fresh database, or for another node on the same one.

use crate::config::PostgresSettings;

pub(crate) use super::pg_server::terminate_node;

/// A fresh, empty database on the test server (started on first use), and its settings.
pub(crate) fn fresh_database(node_name: &str) -> PostgresSettings {
    let (socket_dir, db) = super::pg_server::fresh_database_name();
    PostgresSettings {
        url: super::pg_server::url(socket_dir, &db),
        password: None,
        pool_size: 2,
        node_name: node_name.to_string(),
        lease: PostgresSettings::DEFAULT_LEASE,
    }
}

/// Settings for another node on the same database as `other`.
pub(crate) fn same_database(other: &PostgresSettings, node_name: &str) -> PostgresSettings {
    PostgresSettings {
        node_name: node_name.to_string(),
        ..other.clone()
    }
}
