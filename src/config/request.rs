//! Per-feed request settings (issue 20): extra headers, a cookie, basic or bearer auth, and the
//! proxy (per feed, or `[fetch] proxy` for all). Secrets come from an environment variable or a
//! file, never from the config text or the URL, and only ever become a `SecretString`. Reads the
//! secret files while loading; builds no client (that is `fetch`'s).

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use toml::Spanned;
use url::Url;

use super::build::Source;
use super::delivery::resolve_credential;
use super::format::RawFeed;

/// How a feed's requests are made beyond the defaults. `Debug` shows no secret.
#[derive(Debug, Clone, Default)]
pub struct RequestSettings {
    /// Extra headers, names as written (validated as HTTP tokens), values printable.
    pub headers: Vec<(String, String)>,
    /// The `Cookie` header's value.
    pub cookie: Option<SecretString>,
    pub auth: Option<FeedAuth>,
    pub proxy: ProxyChoice,
    /// The password of the feed's own proxy, whose URL names the user (`http://user@host:port`).
    pub proxy_password: Option<SecretString>,
    /// Files a secret was read from, for the world-readable warning at start-up.
    pub secret_files: Vec<PathBuf>,
}

impl RequestSettings {
    /// Nothing set: a plain request through `[fetch]`'s proxy. Every such feed shares one
    /// allocation (`build::feeds`).
    pub fn is_plain(&self) -> bool {
        !self.has_credentials()
            && self.proxy == ProxyChoice::Inherit
            && self.proxy_password.is_none()
            && self.secret_files.is_empty()
    }

    /// Whether anything here differs from a plain request (headers, cookie, auth).
    pub fn has_credentials(&self) -> bool {
        self.cookie.is_some() || self.auth.is_some() || !self.headers.is_empty()
    }
}

#[derive(Debug, Clone)]
pub enum FeedAuth {
    /// RFC 7617 `Authorization: Basic`.
    Basic {
        username: String,
        password: SecretString,
    },
    /// RFC 6750 `Authorization: Bearer`.
    Bearer(SecretString),
}

/// Which proxy a feed's requests go through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// `[fetch] proxy` when set, else direct.
    #[default]
    Inherit,
    /// `proxy = "none"`: direct even when `[fetch] proxy` is set.
    Direct,
    /// `http://`, `https://`, `socks5://` (names resolved here) or `socks5h://` (by the proxy).
    Via(Url),
}

/// Header names a feed may not set through `headers`: the fetcher owns them, or they carry a
/// secret that has its own key (so it is read from the environment or a file, never the config).
const RESERVED: &[(&str, &str)] = &[
    (
        "authorization",
        "use `username` + `password_env`/`password_file`, or `token_env`/`token_file`",
    ),
    (
        "proxy-authorization",
        "name the user in `proxy` (`http://user@host:port`) and set `proxy_password_env` or `proxy_password_file`",
    ),
    ("cookie", "use `cookie_env` or `cookie_file`"),
    ("host", "the fetcher sets it from the URL"),
    ("content-length", "the fetcher sets it"),
    ("transfer-encoding", "the fetcher sets it"),
    ("connection", "the fetcher sets it"),
    ("if-none-match", "conditional GET is the fetcher's"),
    ("if-modified-since", "conditional GET is the fetcher's"),
];

/// A proxy URL: `http`, `https`, `socks5` or `socks5h`, with a host, without a password or path;
/// a user name only where `user` allows it (a feed's own proxy, whose password has its own keys).
pub(super) fn proxy_url(s: &str, user: bool) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| {
        format!("invalid proxy {s:?}: {e}; expected a URL like \"http://127.0.0.1:3128\" or \"socks5://127.0.0.1:1080\"")
    })?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err(format!(
            "unsupported proxy scheme `{}` in {s:?}: expected http, https, socks5 or socks5h",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("proxy {s:?} has no host"));
    }
    if url.password().is_some() {
        // Never repeat the password in the message.
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        return Err(format!(
            "proxy {shown} carries a password in the URL: a password never belongs in a URL; \
             keep the user (`http://user@host:port`) and set `proxy_password_env` or `proxy_password_file`"
        ));
    }
    if !user && !url.username().is_empty() {
        return Err(format!(
            "proxy {s:?} names a user: proxy authentication is set per feed (`proxy` with \
             `proxy_password_env` or `proxy_password_file` on the [[feed]])"
        ));
    }
    if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
        return Err(format!(
            "proxy {s:?} has a path: expected scheme://host:port only"
        ));
    }
    Ok(url)
}

/// The `[[feed]]`'s request keys into `RequestSettings`, every problem recorded in `src`.
pub(super) fn build(
    src: &mut Source<'_>,
    base: &Path,
    raw: &RawFeed,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: super::Secrets,
) -> RequestSettings {
    let mut out = RequestSettings::default();
    if let Some(h) = &raw.headers {
        for (name, value) in h.get_ref() {
            let lower = name.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                src.error_at(
                    h.span(),
                    format!("header name {name:?} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"),
                );
            } else if let Some((_, hint)) = RESERVED.iter().find(|(n, _)| *n == lower) {
                src.error_at(
                    h.span(),
                    format!("header {name:?} cannot be set in `headers`: {hint}"),
                );
            } else if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
                src.error_at(
                    h.span(),
                    format!("the value of header {name:?} must be printable ASCII (no control characters, no line breaks)"),
                );
            } else {
                out.headers.push((name.clone(), value.trim().to_string()));
            }
        }
    }
    let mut secret = |src: &mut Source<'_>,
                      what: &str,
                      env_key: (&str, Option<&Spanned<String>>),
                      file_key: (&str, Option<&Spanned<String>>)|
     -> Option<SecretString> {
        match (env_key.1, file_key.1) {
            (Some(_), Some(f)) => {
                src.error_at(
                    f.span(),
                    format!("set `{}` or `{}`, not both", env_key.0, file_key.0),
                );
                None
            }
            // A command that never fetches leaves the feed's secrets unread.
            (Some(_), None) | (None, Some(_)) if secrets == super::Secrets::Skip => None,
            (Some(var), None) => match env(var.get_ref()) {
                Some(v) if !v.is_empty() => Some(SecretString::from(v)),
                _ => {
                    src.error_at(
                        var.span(),
                        format!(
                            "environment variable {} is not set or empty (it should hold the feed's {what})",
                            var.get_ref()
                        ),
                    );
                    None
                }
            },
            (None, Some(file)) => {
                let path = resolve_credential(base, file.get_ref(), env);
                match std::fs::read_to_string(&path) {
                    Ok(v) => {
                        out.secret_files.push(path);
                        Some(SecretString::from(
                            v.trim_end_matches(['\r', '\n']).to_string(),
                        ))
                    }
                    Err(e) => {
                        src.error_at(
                            file.span(),
                            format!("cannot read {what} file {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    };
    out.cookie = secret(
        src,
        "cookie",
        ("cookie_env", raw.cookie_env.as_ref()),
        ("cookie_file", raw.cookie_file.as_ref()),
    );
    let password = secret(
        src,
        "password",
        ("password_env", raw.password_env.as_ref()),
        ("password_file", raw.password_file.as_ref()),
    );
    let token = secret(
        src,
        "bearer token",
        ("token_env", raw.token_env.as_ref()),
        ("token_file", raw.token_file.as_ref()),
    );
    let has_password = raw.password_env.is_some() || raw.password_file.is_some();
    let has_token = raw.token_env.is_some() || raw.token_file.is_some();
    match (&raw.username, has_password, has_token) {
        (Some(u), _, true) => src.error_at(
            u.span(),
            "set `username` + a password (basic auth) or a token (bearer auth), not both",
        ),
        (Some(u), false, false) => src.error_at(
            u.span(),
            "`username` is set but no password: add `password_env` or `password_file`",
        ),
        (None, true, _) => {
            let span = raw
                .password_env
                .as_ref()
                .or(raw.password_file.as_ref())
                .map_or(0..0, Spanned::span);
            src.error_at(span, "a password is set but no `username`");
        }
        (Some(u), true, false) => {
            if u.get_ref().contains(':') {
                src.error_at(
                    u.span(),
                    "`username` cannot contain `:` in basic auth (RFC 7617)",
                );
            } else if let Some(password) = password {
                out.auth = Some(FeedAuth::Basic {
                    username: u.get_ref().clone(),
                    password,
                });
            }
        }
        (None, false, true) => out.auth = token.map(FeedAuth::Bearer),
        (None, false, false) => {}
    }
    if let Some(p) = &raw.proxy {
        if p.get_ref().trim() == "none" {
            out.proxy = ProxyChoice::Direct;
        } else {
            match proxy_url(p.get_ref(), true) {
                Ok(u) => out.proxy = ProxyChoice::Via(u),
                Err(msg) => {
                    src.error_at(p.span(), msg);
                    // The source line under the message must not give a password away either.
                    if let (Some(d), Some(info)) =
                        (src.errors.last_mut(), super::build::userinfo(p.get_ref()))
                    {
                        d.source_line = d
                            .source_line
                            .replace(info, &"*".repeat(info.chars().count()));
                    }
                }
            }
        }
    }
    let proxy_password = secret(
        src,
        "proxy password",
        ("proxy_password_env", raw.proxy_password_env.as_ref()),
        ("proxy_password_file", raw.proxy_password_file.as_ref()),
    );
    let proxy_user = match &out.proxy {
        ProxyChoice::Via(u) if !u.username().is_empty() => Some(u.username().to_string()),
        _ => None,
    };
    let password_key = raw
        .proxy_password_env
        .as_ref()
        .or(raw.proxy_password_file.as_ref());
    match (proxy_user, password_key) {
        (Some(_), Some(_)) => out.proxy_password = proxy_password,
        (Some(user), None) => {
            let span = raw.proxy.as_ref().map_or(0..0, Spanned::span);
            src.error_at(
                span,
                format!("the proxy names the user {user:?} but no password: add `proxy_password_env` or `proxy_password_file`"),
            );
        }
        (None, Some(key)) => src.error_at(
            key.span(),
            "a proxy password is set but the feed's `proxy` names no user: write it as `http://user@host:port`",
        ),
        (None, None) => {}
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
