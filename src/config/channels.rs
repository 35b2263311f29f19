//! `[[channel]]`: a chat, push or webhook destination, configured once and addressed by name
//! (`to = ["channel:NAME"]`) from `[[alert]]`, `[[digest]]` and `[[spike]]`. Reads secrets (an
//! HMAC key, a token, a URL that carries one) from the environment or a file while loading; they
//! only ever become `SecretString`s, and an error names the channel, never the secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::Secrets;
use super::build::{HOUR, NONZERO, Source, duration_within};
use super::delivery::resolve_credential;
use super::format::HumanDuration;

/// What a channel speaks: the payload shape and how it authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Mattermost,
    Discord,
    Teams,
    GoogleChat,
    Ntfy,
    Telegram,
    Matrix,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 9] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Mattermost,
        ChannelKind::Discord,
        ChannelKind::Teams,
        ChannelKind::GoogleChat,
        ChannelKind::Ntfy,
        ChannelKind::Telegram,
        ChannelKind::Matrix,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Mattermost => "mattermost",
            ChannelKind::Discord => "discord",
            ChannelKind::Teams => "teams",
            ChannelKind::GoogleChat => "google-chat",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Matrix => "matrix",
        }
    }

    fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One configured channel. `Debug` shows no secret (`SecretString` redacts itself; the URL is
/// kept only as a secret when it came from `url_env`/`url_file`).
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    /// Where to POST (webhook and chat services), the ntfy server with its topic, the Matrix
    /// homeserver's base URL, or the Telegram Bot API base (default `https://api.telegram.org`).
    pub url: SecretUrl,
    /// The webhook's HMAC key (`secret_env` / `secret_file`).
    pub secret: Option<SecretString>,
    /// A bearer or bot token (`token_env` / `token_file`): Matrix access token, Telegram bot
    /// token, ntfy access token.
    pub token: Option<SecretString>,
    /// Matrix: the room id (`!abc:example.org`).
    pub room: Option<String>,
    /// Telegram: the chat id.
    pub chat_id: Option<String>,
    /// ntfy: priority 1..=5 (default 4 for alerts and spikes, 3 for digests).
    pub priority: Option<u8>,
    /// ntfy: tags (emoji short codes or words).
    pub tags: Vec<String>,
    /// One attempt's deadline (connect, send, answer).
    pub timeout: Duration,
    /// Files holding a secret, for the world-readable warning.
    pub secret_files: Vec<PathBuf>,
}

impl ChannelConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
}

/// A URL that may carry a secret (a Slack or Discord webhook URL is its own credential): shown
/// only as scheme and host.
#[derive(Clone)]
pub struct SecretUrl(Url);

impl SecretUrl {
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// `https://hooks.slack.com/…`, for logs and `status`.
    pub fn redacted(&self) -> String {
        let port = self.0.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{port}/…",
            self.0.scheme(),
            self.0.host_str().unwrap_or("")
        )
    }
}

impl SecretUrl {
    /// A URL for unit tests elsewhere (the config builds them otherwise).
    #[cfg(test)]
    pub fn parse_for_tests(s: &str) -> SecretUrl {
        SecretUrl(Url::parse(s).unwrap_or_else(|_| {
            Url::parse("https://invalid.example/").unwrap_or_else(|_| unreachable!())
        }))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    name: Spanned<String>,
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    room: Option<Spanned<String>>,
    chat_id: Option<Spanned<String>>,
    priority: Option<Spanned<u8>>,
    #[serde(default)]
    tags: Vec<String>,
    timeout: Option<Spanned<HumanDuration>>,
}

/// Where one secret comes from, for error messages: `channel "ops": secret_env`.
struct SecretKeys<'r> {
    env: Option<&'r Spanned<String>>,
    file: Option<&'r Spanned<String>>,
    what: &'static str,
    key: &'static str,
}

/// The URL a `url_env`/`url_file` channel gets when a read-only command (which never sends)
/// cannot read it: `status` shows it instead of the real host.
const UNREAD_URL: &str = "https://url-not-read.invalid/";

pub(super) fn build_channels(
    src: &mut Source<'_>,
    base: &Path,
    raw: &[RawChannel],
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Vec<ChannelConfig> {
    let mut out: Vec<ChannelConfig> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let name = c.name.get_ref().trim().to_string();
        if name.is_empty() || name.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            src.error_at(
                c.name.span(),
                format!(
                    "channel `name` {:?} must be non-empty, without spaces or control characters",
                    c.name.get_ref()
                ),
            );
            continue;
        }
        if raw[..i].iter().any(|e| e.name.get_ref().trim() == name) {
            src.error_at(c.name.span(), format!("duplicate channel name {name:?}"));
            continue;
        }
        if let Some(ch) = build_one(src, base, c, &name, env, secrets) {
            out.push(ch);
        }
    }
    out
}

fn build_one(
    src: &mut Source<'_>,
    base: &Path,
    c: &RawChannel,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Option<ChannelConfig> {
    let Some(kind) = ChannelKind::parse(c.kind.get_ref()) else {
        let all: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
        src.error_at(
            c.kind.span(),
            format!(
                "channel {name:?}: unknown kind {:?}: expected one of {}",
                c.kind.get_ref(),
                all.join(", ")
            ),
        );
        return None;
    };
    let mut files = Vec::new();
    let url_text = match (&c.url, &c.url_env, &c.url_file) {
        (Some(u), None, None) => Some(u.get_ref().clone()),
        (None, None, None) if kind == ChannelKind::Telegram => {
            Some("https://api.telegram.org".to_string())
        }
        (None, None, None) => {
            src.error_at(
                c.name.span(),
                format!("channel {name:?} needs `url` (or `url_env` / `url_file`)"),
            );
            None
        }
        (None, e, f) => {
            let keys = SecretKeys {
                env: e.as_ref(),
                file: f.as_ref(),
                what: "URL",
                key: "url",
            };
            secret(src, base, name, &keys, env, secrets, &mut files)
                .map(|s| secrecy::ExposeSecret::expose_secret(&s).trim().to_string())
                // A command that never sends needs no URL: a stand-in that names itself.
                .or_else(|| (secrets == Secrets::Skip).then(|| UNREAD_URL.to_string()))
        }
        (Some(u), _, _) => {
            src.error_at(
                u.span(),
                format!("channel {name:?}: set one of `url`, `url_env`, `url_file`"),
            );
            None
        }
    };
    let url = url_text.and_then(|t| match Url::parse(&t) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        _ => {
            // The text itself is not shown: it may be a secret from url_env/url_file.
            src.error_at(
                c.url.as_ref().map_or(c.name.span(), Spanned::span),
                format!("channel {name:?}: the url is not an http(s) URL with a host"),
            );
            None
        }
    });
    let secret_keys = SecretKeys {
        env: c.secret_env.as_ref(),
        file: c.secret_file.as_ref(),
        what: "HMAC secret",
        key: "secret",
    };
    let hmac = secret(src, base, name, &secret_keys, env, secrets, &mut files);
    let token_keys = SecretKeys {
        env: c.token_env.as_ref(),
        file: c.token_file.as_ref(),
        what: "token",
        key: "token",
    };
    let token = secret(src, base, name, &token_keys, env, secrets, &mut files);
    let needs = |src: &mut Source<'_>, ok: bool, what: &str| {
        if !ok {
            src.error_at(
                c.name.span(),
                format!("channel {name:?} of kind {}: needs {what}", kind.as_str()),
            );
        }
    };
    let refuses = |src: &mut Source<'_>, present: bool, key: &str| {
        if present {
            src.error_at(
                c.name.span(),
                format!(
                    "channel {name:?}: `{key}` does not apply to kind {}",
                    kind.as_str()
                ),
            );
        }
    };
    let has_token = c.token_env.is_some() || c.token_file.is_some();
    let has_secret = c.secret_env.is_some() || c.secret_file.is_some();
    match kind {
        ChannelKind::Matrix => {
            needs(
                src,
                c.room.is_some(),
                "`room` (a room id like !abc:example.org)",
            );
            needs(
                src,
                has_token,
                "`token_env` or `token_file` (the access token)",
            );
        }
        ChannelKind::Telegram => {
            needs(src, c.chat_id.is_some(), "`chat_id`");
            needs(
                src,
                has_token,
                "`token_env` or `token_file` (the bot token)",
            );
        }
        _ => {}
    }
    refuses(
        src,
        has_secret && kind != ChannelKind::Webhook,
        "secret_env/secret_file",
    );
    refuses(
        src,
        has_token
            && !matches!(
                kind,
                ChannelKind::Matrix | ChannelKind::Telegram | ChannelKind::Ntfy
            ),
        "token_env/token_file",
    );
    refuses(src, c.room.is_some() && kind != ChannelKind::Matrix, "room");
    refuses(
        src,
        c.chat_id.is_some() && kind != ChannelKind::Telegram,
        "chat_id",
    );
    refuses(
        src,
        (c.priority.is_some() || !c.tags.is_empty()) && kind != ChannelKind::Ntfy,
        "priority/tags",
    );
    if let Some(p) = &c.priority
        && !(1..=5).contains(p.get_ref())
    {
        src.error_at(
            p.span(),
            format!("channel {name:?}: `priority` is 1 (min) to 5 (max)"),
        );
    }
    let timeout = duration_within(src, "timeout", c.timeout.as_ref(), NONZERO..=HOUR)
        .unwrap_or(ChannelConfig::DEFAULT_TIMEOUT);
    Some(ChannelConfig {
        name: name.to_string(),
        kind,
        url: SecretUrl(url?),
        secret: hmac,
        token,
        room: c.room.as_ref().map(|r| r.get_ref().trim().to_string()),
        chat_id: c.chat_id.as_ref().map(|r| r.get_ref().trim().to_string()),
        priority: c.priority.as_ref().map(|p| *p.get_ref()),
        tags: c.tags.clone(),
        timeout,
        secret_files: files,
    })
}

/// A secret from `<key>_env` (an environment variable) or `<key>_file` (a file next to the
/// config, or a systemd credential), trailing newline dropped. Errors name the channel, the key
/// and the variable or file, never the value.
fn secret(
    src: &mut Source<'_>,
    base: &Path,
    channel: &str,
    keys: &SecretKeys<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
    files: &mut Vec<PathBuf>,
) -> Option<SecretString> {
    let key = keys.key;
    match (keys.env, keys.file) {
        (Some(_), Some(f)) => {
            src.error_at(
                f.span(),
                format!("channel {channel:?}: set `{key}_env` or `{key}_file`, not both"),
            );
            None
        }
        // A command that never sends takes a secret that is there (`status` shows the URL's
        // host) and is not stopped by one that is missing.
        (Some(var), None) if secrets == Secrets::Skip => env(var.get_ref())
            .filter(|v| !v.trim().is_empty())
            .map(|v| SecretString::from(v.trim().to_string())),
        (None, Some(file)) if secrets == Secrets::Skip => {
            let path = resolve_credential(base, file.get_ref(), env);
            std::fs::read_to_string(path)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| SecretString::from(v.trim().to_string()))
        }
        (Some(var), None) => match env(var.get_ref()).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(SecretString::from(v.trim().to_string())),
            None => {
                src.error_at(
                    var.span(),
                    format!(
                        "channel {channel:?}: environment variable {} is not set or empty (it should hold the {})",
                        var.get_ref(),
                        keys.what
                    ),
                );
                None
            }
        },
        (None, Some(file)) => {
            let path = resolve_credential(base, file.get_ref(), env);
            files.push(path.clone());
            match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => Some(SecretString::from(v.trim().to_string())),
                Ok(_) => {
                    src.error_at(
                        file.span(),
                        format!(
                            "channel {channel:?}: {} file {} is empty",
                            keys.what,
                            path.display()
                        ),
                    );
                    None
                }
                Err(e) => {
                    src.error_at(
                        file.span(),
                        format!(
                            "channel {channel:?}: cannot read {} file {}: {e}",
                            keys.what,
                            path.display()
                        ),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    }
}

/// Splits a `to` list into email addresses and `channel:NAME` entries; each channel name must be
/// configured. Returns the channel names (in order, once each).
pub(super) fn split_recipients(
    src: &mut Source<'_>,
    section: &str,
    to: &Spanned<Vec<Spanned<String>>>,
    channels: &[String],
) -> (Vec<Spanned<String>>, Vec<String>) {
    let mut emails = Vec::new();
    let mut named = Vec::new();
    for entry in to.get_ref() {
        match entry.get_ref().trim().strip_prefix("channel:") {
            Some(name) => {
                let name = name.trim();
                if !channels.iter().any(|c| c == name) {
                    let hint = if channels.is_empty() {
                        "no [[channel]] is configured".to_string()
                    } else {
                        format!("configured channels: {}", channels.join(", "))
                    };
                    src.error_at(
                        entry.span(),
                        format!("{section} `to` names unknown channel {name:?} ({hint})"),
                    );
                } else if !named.iter().any(|n| n == name) {
                    named.push(name.to_string());
                }
            }
            None => emails.push(entry.clone()),
        }
    }
    (emails, named)
}
