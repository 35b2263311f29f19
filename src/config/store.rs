//! `[store]`: where the state lives when it is not the SQLite file in `state_dir` (issue 17): a
//! PostgreSQL URL, its password (from the environment or a file, never from the URL, never
//! logged), the connection pool's size, this node's name and the feed lease. Without `[store]`
//! nothing changes. Reads the password file while loading.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use super::build::{HOUR, Source, duration_within};
use super::format::HumanDuration;

/// The `[store]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) pool_size: Option<Spanned<i64>>,
    pub(super) node_name: Option<Spanned<String>>,
    pub(super) lease: Option<Spanned<HumanDuration>>,
}

/// A PostgreSQL state shared by every node that names it.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgresql://user@host:port/dbname` (or `?host=/socket/dir`), without a password.
    pub url: String,
    pub password: Option<SecretString>,
    /// Connections this node keeps open at most.
    pub pool_size: u32,
    /// How this node signs its heartbeats and leases; unique per running daemon.
    pub node_name: String,
    /// How long a feed claimed by this node stays its own without a renewal: a node that dies
    /// lets its feeds go to the others after at most this long.
    pub lease: Duration,
}

impl PostgresSettings {
    pub const DEFAULT_POOL_SIZE: u32 = 4;
    pub const MAX_POOL_SIZE: i64 = 64;
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
}

/// This process's default node name: the host name and the process id, so two daemons on one
/// host (a test, a blue/green restart) never share one.
pub fn default_node_name() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!("{host}-{}", std::process::id())
}

/// Builds `[store]`; `None` (SQLite) without the table. Every problem goes to `src`.
pub(super) fn build(
    src: &mut Source<'_>,
    base: &Path,
    raw: Option<&Spanned<RawStore>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PostgresSettings> {
    let raw_spanned = raw?;
    let span = raw_spanned.span();
    let raw = raw_spanned.get_ref();
    let Some(url) = &raw.url else {
        src.error_at(
            span,
            "`[store]` needs `url = \"postgresql://user@host:port/dbname\"` (remove the table to \
             keep the SQLite file in state_dir)",
        );
        return None;
    };
    check_url(src, url);
    let password = match (&raw.password_env, &raw.password_file) {
        (Some(_), Some(f)) => {
            src.error_at(f.span(), "set `password_env` or `password_file`, not both");
            None
        }
        (Some(var), None) => match env(var.get_ref()) {
            Some(v) => Some(SecretString::from(v)),
            None => {
                src.error_at(
                    var.span(),
                    format!(
                        "environment variable {} is not set (it should hold the PostgreSQL password)",
                        var.get_ref()
                    ),
                );
                None
            }
        },
        (None, Some(file)) => {
            let path = super::build::resolve(base, file.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(v) => Some(SecretString::from(
                    v.trim_end_matches(['\r', '\n']).to_string(),
                )),
                Err(e) => {
                    src.error_at(
                        file.span(),
                        format!("cannot read password file {}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    };
    let pool_size = match &raw.pool_size {
        None => PostgresSettings::DEFAULT_POOL_SIZE,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v) if (1..=PostgresSettings::MAX_POOL_SIZE).contains(&i64::from(v)) => v,
            _ => {
                src.error_at(
                    n.span(),
                    format!(
                        "pool_size must be between 1 and {}",
                        PostgresSettings::MAX_POOL_SIZE
                    ),
                );
                PostgresSettings::DEFAULT_POOL_SIZE
            }
        },
    };
    let node_name = match &raw.node_name {
        None => default_node_name(),
        Some(n) if n.get_ref().trim().is_empty() || n.get_ref().len() > 200 => {
            src.error_at(n.span(), "node_name must be 1 to 200 characters");
            default_node_name()
        }
        Some(n) => n.get_ref().clone(),
    };
    let lease = duration_within(
        src,
        "lease",
        raw.lease.as_ref(),
        Duration::from_secs(5)..=HOUR,
    )
    .unwrap_or(PostgresSettings::DEFAULT_LEASE);
    Some(PostgresSettings {
        url: url.get_ref().clone(),
        password,
        pool_size,
        node_name,
        lease,
    })
}

/// A PostgreSQL URL with a host and a database, and no password in it (the URL is logged and
/// shown by `status`; the password has its own keys).
fn check_url(src: &mut Source<'_>, url: &Spanned<String>) {
    let text = url.get_ref();
    match url::Url::parse(text) {
        Err(e) => src.error_at(
            url.span(),
            format!("invalid store url {text:?}: {e}; expected postgresql://user@host:port/dbname"),
        ),
        Ok(u) if !matches!(u.scheme(), "postgres" | "postgresql") => src.error_at(
            url.span(),
            format!(
                "unsupported store url scheme `{}`: expected postgresql:// (without `[store]` the \
                 state is the SQLite file in state_dir)",
                u.scheme()
            ),
        ),
        Ok(u) if u.password().is_some() => src.error_at(
            url.span(),
            "the store url carries a password: move it to `password_env` or `password_file` \
             (the url is shown in logs and `status`)",
        ),
        Ok(u) if u.path().trim_start_matches('/').is_empty() => src.error_at(
            url.span(),
            format!("store url {text:?} names no database: add /dbname"),
        ),
        Ok(_) => {}
    }
}
