//! `[store]` (issue 17): without it the state stays SQLite; with it, a PostgreSQL URL whose
//! password comes from the environment or a file, never from the URL, and never shows in
//! `Debug` output; each bad key is named at its line and column; an unreachable one is named.

use std::path::Path;

use newswatch::config::{Config, ConfigErrors, PostgresSettings};

use crate::support::bin::newswatch;
use secrecy::ExposeSecret;

const BASE: &str = r#"state_dir = "state"
rules = ["rules/*.toml"]
[delivery]
method = "file"
dir = "outbox"
from = "nw <nw@example.org>"
"#;

fn load(dir: &Path, store: &str) -> Result<Config, ConfigErrors> {
    std::fs::create_dir_all(dir.join("rules")).expect("rules dir");
    std::fs::write(
        dir.join("rules/a.toml"),
        "[[rule]]\nid = \"a\"\nquery = \"Healey\"\n",
    )
    .expect("rule file");
    let env = |name: &str| (name == "PGPW").then(|| "from-env".to_string());
    Config::from_str(&dir.join("nw.toml"), &format!("{BASE}{store}"), &env)
}

#[test]
fn without_store_the_state_is_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = load(dir.path(), "").expect("loads");
    assert!(config.store.is_none());
}

#[test]
fn store_settings_load_with_defaults_and_a_secret_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pgpw"), "from-file\n").expect("write");
    let config = load(
        dir.path(),
        "[store]\nurl = \"postgresql://nw@db.internal:5432/newswatch\"\npassword_env = \"PGPW\"\n",
    )
    .expect("loads");
    let store = config.store.expect("[store]");
    assert_eq!(store.url, "postgresql://nw@db.internal:5432/newswatch");
    assert_eq!(store.pool_size, PostgresSettings::DEFAULT_POOL_SIZE);
    assert_eq!(store.lease, PostgresSettings::DEFAULT_LEASE);
    assert!(
        store
            .node_name
            .ends_with(&format!("-{}", std::process::id())),
        "{}",
        store.node_name
    );
    let password = store.password.as_ref().expect("password");
    assert_eq!(password.expose_secret(), "from-env");
    assert!(!format!("{store:?}").contains("from-env"));

    let config = load(
        dir.path(),
        "[store]\nurl = \"postgres://nw@db/nw\"\npassword_file = \"pgpw\"\npool_size = 8\n\
         node_name = \"web-1\"\nlease = \"30s\"\n",
    )
    .expect("loads");
    let store = config.store.expect("[store]");
    let password = store.password.as_ref().expect("password");
    assert_eq!(password.expose_secret(), "from-file");
    assert_eq!(
        (
            store.pool_size,
            store.node_name.as_str(),
            store.lease.as_secs()
        ),
        (8, "web-1", 30)
    );
}

/// (what, `[store]` body, line, column, message): the first error of each.
const BROKEN: &[(&str, &str, usize, usize, &str)] = &[
    (
        "no url",
        "pool_size = 2\n",
        7,
        1,
        "`[store]` needs `url = \"postgresql://user@host:port/dbname\"` (remove the table to keep \
         the SQLite file in state_dir)",
    ),
    (
        "sqlite url",
        "url = \"sqlite:///var/lib/nw.db\"\n",
        8,
        7,
        "unsupported store url scheme `sqlite`: expected postgresql:// (without `[store]` the \
         state is the SQLite file in state_dir)",
    ),
    (
        "password in url",
        "url = \"postgresql://nw:hunter2@db/nw\"\n",
        8,
        7,
        "the store url carries a password: move it to `password_env` or `password_file` (the \
         url is shown in logs and `status`)",
    ),
    (
        "no database",
        "url = \"postgresql://nw@db\"\n",
        8,
        7,
        "store url \"postgresql://nw@db\" names no database: add /dbname",
    ),
    (
        "unset env",
        "url = \"postgresql://nw@db/nw\"\npassword_env = \"NOPE\"\n",
        9,
        16,
        "environment variable NOPE is not set (it should hold the PostgreSQL password)",
    ),
    (
        "pool of zero",
        "url = \"postgresql://nw@db/nw\"\npool_size = 0\n",
        9,
        13,
        "pool_size must be between 1 and 64",
    ),
    (
        "unknown key",
        "url = \"postgresql://nw@db/nw\"\nhost = \"db\"\n",
        9,
        1,
        "unknown field `host`, expected one of `url`, `password_env`, `password_file`, \
         `pool_size`, `node_name`, `lease`",
    ),
];

#[test]
fn broken_store_tables_are_named_where_they_go_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    for &(what, body, line, column, message) in BROKEN {
        let errs = match load(dir.path(), &format!("[store]\n{body}")) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e.0,
        };
        let first = &errs[0];
        assert_eq!(
            (first.line, first.column, first.message.as_str()),
            (line, column, message),
            "{what}: {errs:#?}"
        );
        assert!(!first.message.contains("hunter2"), "{what}");
    }
}

/// WebSub runs on PostgreSQL too (its subscriptions are the shared `websub` table): `[websub]`
/// with `[store]` loads, both settings as written.
#[test]
fn websub_with_a_postgresql_store_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = load(
        dir.path(),
        "[store]\nurl = \"postgresql://nw@db.internal/newswatch\"\npassword_env = \"PGPW\"\n\
         [websub]\nlisten = \"127.0.0.1:9189\"\ncallback_base = \"https://nw.example.org/websub\"\n",
    )
    .unwrap_or_else(|e| panic!("[websub] with [store] refused: {e}"));
    let websub = config.websub.expect("[websub]");
    assert_eq!(websub.listen.to_string(), "127.0.0.1:9189");
    assert_eq!(
        config.store.map(|s| s.url).as_deref(),
        Some("postgresql://nw@db.internal/newswatch")
    );
}

/// A `[store]` nobody answers at: `run` fails at start naming the store (never its
/// password), and does not fall back to a SQLite file behind the operator's back.
#[test]
fn run_names_the_postgresql_store_it_cannot_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    load(dir.path(), "").expect("writes the rule file");
    let path = dir.path().join("nw.toml");
    std::fs::write(
        &path,
        format!("{BASE}[store]\nurl = \"postgresql://nw@127.0.0.1:1/nw\"\n"),
    )
    .expect("config");
    let out = newswatch(&["run", "--once", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the PostgreSQL store postgresql://nw@127.0.0.1:1/nw"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state/newswatch.db").exists(),
        "no SQLite database was made"
    );
}

/// `store migrate-to` needs a `[store]` to copy into, and names the store it could not reach.
/// (The copy itself is tested against a real PostgreSQL in the store's unit tests:
/// `store::pg::copy::tests`.)
#[test]
fn migrate_to_needs_a_store_and_names_the_one_it_cannot_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    load(dir.path(), "").expect("writes the rule file");
    let path = dir.path().join("nw.toml");
    std::fs::write(&path, BASE).expect("config");
    let config = path.to_str().expect("utf-8");
    let out = newswatch(&["store", "migrate-to", "--config", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("has no [store] table"), "{stderr}");

    // No SQLite state to copy yet: said so, naming the file.
    std::fs::write(
        &path,
        format!("{BASE}[store]\nurl = \"postgresql://nw@127.0.0.1:1/nw\"\n"),
    )
    .expect("config");
    let out = newswatch(&["store", "migrate-to", "--config", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("state/newswatch.db"), "{stderr}");

    // A state to copy, and a PostgreSQL nobody listens on.
    std::fs::write(&path, BASE).expect("config");
    newswatch(&["run", "--once", "--config", config]);
    assert!(dir.path().join("state/newswatch.db").exists());
    std::fs::write(
        &path,
        format!("{BASE}[store]\nurl = \"postgresql://nw@127.0.0.1:1/nw\"\n"),
    )
    .expect("config");
    let out = newswatch(&["store", "migrate-to", "--config", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("postgresql://nw@127.0.0.1:1/nw"),
        "{stderr}"
    );
}
