//! `[console]`: the web console (issue 18). Where the standalone `newswatch console` listens (the
//! daemon serves it on `[http]`'s address), how users authenticate when it is not on loopback (a
//! users file of argon2 hashes, or a reverse proxy's trusted header), and the session cookie's
//! `Secure` flag, and the labels files the playground scores queries against. Builds the typed settings; checks nothing at runtime.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::build::{Source, resolve};

/// The users file's name in the state directory when `users_file` is not set.
pub const DEFAULT_USERS_FILE: &str = "console-users";

/// `[console]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    trusted_header: Option<Spanned<String>>,
    users_file: Option<String>,
    secure_cookie: Option<bool>,
    labels: Option<Vec<String>>,
}

/// The console's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Whether the daemon serves the console beside `/metrics` and `/healthz`.
    pub enabled: bool,
    /// Where `newswatch console` (standalone) listens; loopback by default.
    pub listen: SocketAddr,
    /// A header a reverse proxy sets to the authenticated user (`X-Forwarded-User`): with it the
    /// console trusts the proxy instead of asking for a password.
    pub trusted_header: Option<String>,
    /// `user:argon2-hash` lines, written by `newswatch console passwd`.
    pub users_file: PathBuf,
    /// Mark the session cookie `Secure` (the console is reached over TLS, through a proxy).
    pub secure_cookie: bool,
    /// Labels files (`rules eval`'s JSON Lines): the playground scores a query against the
    /// labels of the saved rule it is compared with.
    pub labels: Vec<PathBuf>,
}

impl ConsoleSettings {
    /// The defaults for a state directory.
    pub fn defaults(state_dir: &Path) -> ConsoleSettings {
        ConsoleSettings {
            enabled: true,
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9188)),
            trusted_header: None,
            users_file: state_dir.join(DEFAULT_USERS_FILE),
            secure_cookie: false,
            labels: Vec::new(),
        }
    }
}

/// `[console]`: relative paths are resolved against the config file's directory.
pub(super) fn build(
    src: &mut Source<'_>,
    base: &Path,
    state_dir: &Path,
    raw: &RawConsole,
) -> ConsoleSettings {
    let mut c = ConsoleSettings::defaults(state_dir);
    if let Some(enabled) = raw.enabled {
        c.enabled = enabled;
    }
    if let Some(listen) = &raw.listen {
        match listen.get_ref().trim().parse() {
            Ok(addr) => c.listen = addr,
            Err(_) => src.error_at(
                listen.span(),
                format!(
                    "invalid console listen address {:?}: expected IP:PORT, like \"127.0.0.1:9188\"",
                    listen.get_ref()
                ),
            ),
        }
    }
    if let Some(h) = &raw.trusted_header {
        let name = h.get_ref().trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            c.trusted_header = Some(name.to_string());
        } else {
            src.error_at(
                h.span(),
                format!(
                    "invalid trusted_header {:?}: expected an HTTP header name like \"X-Forwarded-User\"",
                    h.get_ref()
                ),
            );
        }
    }
    if let Some(f) = &raw.users_file {
        c.users_file = resolve(base, f);
    }
    if let Some(s) = raw.secure_cookie {
        c.secure_cookie = s;
    }
    if let Some(files) = &raw.labels {
        c.labels = files.iter().map(|f| resolve(base, f)).collect();
    }
    c
}
