//! Who may look at the console. Three modes, chosen once at start: open (loopback only, nothing
//! configured), a reverse proxy's trusted header, or users with argon2 password hashes
//! (`newswatch console passwd`) and sessions: an HttpOnly, SameSite=Strict cookie (Secure when
//! configured), a CSRF token per session on every POST, and failed logins limited per user and
//! overall. Bound to any address but loopback without a mode, the console refuses to start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::time::Instant;

use super::St;
use super::html::{self, Nav, Viewer, esc};
use crate::config::ConsoleSettings;

/// The session cookie's name.
pub const COOKIE: &str = "nw_session";
/// A session ends this long after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first beyond this.
const MAX_SESSIONS: usize = 1_000;
/// Failed logins allowed per user name, and over all names, within `FAILURE_WINDOW`.
const FAILURES_PER_USER: u32 = 5;
const FAILURES_OVERALL: u32 = 50;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Longest user name and password accepted (argon2 of a 1 MB password is a denial of service).
const MAX_FIELD: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the console would listen on {addr}, which is not loopback, without authentication: add \
         users with `newswatch console passwd NAME --config F` (they go to {users}), or set \
         `[console] trusted_header` behind a reverse proxy that authenticates, or listen on \
         127.0.0.1"
    )]
    Unprotected { addr: SocketAddr, users: PathBuf },
    #[error("{path}:{line}: {message}")]
    UsersFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid user name {0:?}: use letters, digits, '.', '-', '_' and '@' (at most 64)")]
    BadName(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot read random bytes from the system: {0}")]
    Random(String),
}

/// The users file: `name:argon2-PHC-hash` lines; `#` comments and blank lines ignored.
#[derive(Debug, Clone, Default)]
pub struct Users {
    entries: Vec<(String, String)>,
}

impl Users {
    /// Reads `path`; a missing file is no users. Every bad line is an error naming it.
    pub fn load(path: &Path) -> Result<Users, AuthError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| AuthError::UsersFile {
                path: path.to_path_buf(),
                line: i + 1,
                message: message.to_string(),
            };
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:HASH"))?;
            if !valid_name(name) {
                return Err(bad("invalid user name"));
            }
            let parsed =
                PasswordHash::new(hash).map_err(|e| bad(&format!("not a password hash ({e})")))?;
            if !parsed.algorithm.as_str().starts_with("argon2")
                || parsed.salt.is_none()
                || parsed.hash.is_none()
            {
                return Err(bad(
                    "not a password hash (expected an argon2 PHC string from `newswatch console passwd`)",
                ));
            }
            entries.push((name.to_string(), hash.to_string()));
        }
        Ok(Users { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `name`'s hash (added when new) and writes the file (mode 0600, replaced atomically).
    pub fn set(&mut self, path: &Path, name: &str, hash: String) -> Result<(), AuthError> {
        if !valid_name(name) {
            return Err(AuthError::BadName(name.to_string()));
        }
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = hash,
            None => self.entries.push((name.to_string(), hash)),
        }
        let mut text = String::from(
            "# newswatch console users: NAME:ARGON2-HASH (newswatch console passwd)\n",
        );
        for (n, h) in &self.entries {
            text.push_str(&format!("{n}:{h}\n"));
        }
        let write_err = |source| AuthError::Write {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(write_err)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    fn hash_of(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.as_str())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn token() -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[derive(Debug)]
enum Mode {
    /// Loopback, nothing configured: whoever can reach 127.0.0.1 may look.
    Open,
    /// A reverse proxy authenticates and names the user in this header.
    Trusted(HeaderName),
    Users(Users),
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    csrf: String,
    since: Instant,
}

#[derive(Debug, Default)]
struct Failures {
    per_user: HashMap<String, (u32, Instant)>,
    overall: Option<(u32, Instant)>,
}

/// The console's authentication, chosen at start.
#[derive(Debug)]
pub struct Auth {
    mode: Mode,
    secure: bool,
    /// The CSRF token of forms when there are no sessions (open or trusted mode): one per process.
    form_token: String,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
}

impl Auth {
    /// The mode for serving on `addr`: a trusted header if configured, else the users file's users
    /// if it has any, else open — only on loopback.
    pub fn for_address(settings: &ConsoleSettings, addr: SocketAddr) -> Result<Auth, AuthError> {
        let mode = if let Some(h) = &settings.trusted_header {
            // The config checked the name's characters.
            match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(name) => Mode::Trusted(name),
                Err(e) => return Err(AuthError::Hash(e.to_string())),
            }
        } else {
            let users = Users::load(&settings.users_file)?;
            if users.is_empty() {
                if !addr.ip().is_loopback() {
                    return Err(AuthError::Unprotected {
                        addr,
                        users: settings.users_file.clone(),
                    });
                }
                Mode::Open
            } else {
                Mode::Users(users)
            }
        };
        Ok(Auth {
            mode,
            secure: settings.secure_cookie,
            form_token: token()?,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
        })
    }

    /// Who the request is from, or `None` when it must sign in first.
    fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        match &self.mode {
            Mode::Open => Some(Viewer {
                user: None,
                csrf: Some(self.form_token.clone()),
            }),
            Mode::Trusted(name) => {
                let user = headers.get(name)?.to_str().ok()?.trim();
                (!user.is_empty()).then(|| Viewer {
                    user: Some(user.to_string()),
                    csrf: Some(self.form_token.clone()),
                })
            }
            Mode::Users(_) => {
                let id = session_cookie(headers)?;
                let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
                let s = sessions.get(id)?;
                if s.since.elapsed() > SESSION_LIFETIME {
                    sessions.remove(id);
                    return None;
                }
                Some(Viewer {
                    user: Some(s.user.clone()),
                    csrf: Some(s.csrf.clone()),
                })
            }
        }
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// Whether another attempt for `user` is allowed now (limits not yet reached).
    fn may_try(&self, user: &str) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = |at: &Instant| at.elapsed() < FAILURE_WINDOW;
        f.per_user.retain(|_, (_, at)| fresh(at));
        if f.overall.is_some_and(|(_, at)| !fresh(&at)) {
            f.overall = None;
        }
        let user_ok = f
            .per_user
            .get(user)
            .is_none_or(|(n, _)| *n < FAILURES_PER_USER);
        let all_ok = f.overall.is_none_or(|(n, _)| n < FAILURES_OVERALL);
        user_ok && all_ok
    }

    fn failed(&self, user: &str) {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        f.per_user.entry(user.to_string()).or_insert((0, now)).0 += 1;
        f.overall.get_or_insert((0, now)).0 += 1;
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Lets the request through with its [`Viewer`] as an extension, or sends it to sign in.
pub(super) async fn require(State(c): St, mut req: Request, next: Next) -> Response {
    match c.auth.viewer(req.headers()) {
        Some(viewer) => {
            req.extensions_mut().insert(viewer);
            next.run(req).await
        }
        None => match &c.auth.mode {
            Mode::Trusted(name) => (
                StatusCode::UNAUTHORIZED,
                format!("sign in through the reverse proxy: it must set the {name} header\n"),
            )
                .into_response(),
            _ if req.method() == Method::GET => Redirect::to("/login").into_response(),
            _ => (StatusCode::FORBIDDEN, "sign in first\n").into_response(),
        },
    }
}

/// Whether a POSTed token is the viewer's (constant time in the token's length).
pub(super) fn csrf_ok(viewer: &Viewer, sent: &str) -> bool {
    let Some(want) = &viewer.csrf else {
        return false;
    };
    want.len() == sent.len()
        && want
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(super) async fn login_form(State(c): St) -> Response {
    match c.auth.mode {
        Mode::Users(_) => Html(login_page("")).into_response(),
        _ => Redirect::to("/").into_response(),
    }
}

fn login_page(message: &str) -> String {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"bad\" role=\"alert\">{}</p>", esc(message))
    };
    html::page(
        "Sign in",
        Nav::None,
        &Viewer::default(),
        &format!(
            "<h1>Sign in</h1>{note}<form class=\"query\" method=\"post\" action=\"/login\">\
             <label>User <input name=\"user\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    user: String,
    password: String,
}

pub(super) async fn login(State(c): St, Form(f): Form<LoginForm>) -> Response {
    let Mode::Users(users) = &c.auth.mode else {
        return Redirect::to("/").into_response();
    };
    if f.user.len() > MAX_FIELD || f.password.len() > MAX_FIELD {
        return (StatusCode::BAD_REQUEST, Html(login_page("too long"))).into_response();
    }
    if !c.auth.may_try(&f.user) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Html(login_page(
                "too many failed sign-ins: wait 15 minutes and try again",
            )),
        )
            .into_response();
    }
    let hash = users.hash_of(&f.user).map(str::to_string);
    let password = f.password;
    // Argon2 is slow on purpose: off the async workers. An unknown user is checked against a
    // fixed hash too, so timing does not tell which names exist.
    let ok = tokio::task::spawn_blocking(move || {
        let fallback = DUMMY_HASH;
        let h = hash.as_deref().unwrap_or(fallback);
        let verified = PasswordHash::new(h).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        verified && hash.is_some()
    })
    .await
    .unwrap_or(false);
    if !ok {
        c.auth.failed(&f.user);
        tracing::warn!(user = %f.user, "console sign-in failed");
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page("wrong user name or password")),
        )
            .into_response();
    }
    let (Ok(id), Ok(csrf)) = (token(), token()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness\n").into_response();
    };
    {
        let mut sessions = c
            .auth
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.since.elapsed() <= SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.since)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                user: f.user.clone(),
                csrf,
                since: Instant::now(),
            },
        );
    }
    tracing::info!(user = %f.user, "console sign-in");
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                c.auth.cookie(&id, SESSION_LIFETIME.as_secs()),
            ),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

pub(super) async fn logout(
    State(c): St,
    headers: HeaderMap,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&viewer, &f.csrf) {
        return (StatusCode::FORBIDDEN, "invalid or missing CSRF token\n").into_response();
    }
    if let Some(id) = session_cookie(&headers) {
        c.auth
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, c.auth.cookie("", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

/// A valid argon2id hash of a random password nobody knows: what an unknown user is checked
/// against, so a sign-in for a missing name costs what one for a real name does.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Jv1qMW+6PT2xvF1Dt1c0CiWQwaYd6PMhw2sp+/p3ZGA";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_the_dummy_hash_parses() {
        let h = hash_password("correct horse").expect("hash");
        let parsed = PasswordHash::new(&h).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        let mut users = Users::default();
        let hash = hash_password("a password").expect("hash");
        users
            .set(&path, "alice", hash)
            .expect("write the users file");
        assert_eq!(Users::load(&path).expect("reads back").entries.len(), 1);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, format!("{text}bob nohash\ncarol:$argon2id$broken\n"))
            .expect("write");
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.ends_with("users:3: expected NAME:HASH"), "{err}");
        std::fs::write(&path, format!("{text}carol:$argon2id$broken\n")).expect("write");
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("users:3: not a password hash"), "{err}");
    }

    #[test]
    fn failed_logins_are_limited_per_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ConsoleSettings::defaults(dir.path());
        let auth =
            Auth::for_address(&settings, "127.0.0.1:1".parse().expect("addr")).expect("open");
        for _ in 0..FAILURES_PER_USER {
            assert!(auth.may_try("alice"));
            auth.failed("alice");
        }
        assert!(!auth.may_try("alice"));
        assert!(auth.may_try("bob"), "another user is not locked out");
    }

    #[test]
    fn not_loopback_without_users_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ConsoleSettings::defaults(dir.path());
        let err = Auth::for_address(&settings, "0.0.0.0:9188".parse().expect("addr")).unwrap_err();
        assert!(matches!(err, AuthError::Unprotected { .. }), "{err}");
        let mut trusted = settings.clone();
        trusted.trusted_header = Some("X-Forwarded-User".into());
        assert!(Auth::for_address(&trusted, "0.0.0.0:9188".parse().expect("addr")).is_ok());
    }
}
