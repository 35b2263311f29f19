//! `[websub]` (issue 20): push delivery of feeds that advertise a WebSub hub (W3C WebSub). Where
//! the daemon's callback listener binds (its own address, never the console's), the public URL
//! hubs call (`callback_base`, usually a reverse proxy in front of `listen`), the lease to ask
//! for, and how often a pushed feed is still polled as a backup. Absent: no push, nothing changes.
//! Parsing only; subscribing and serving are the pipeline's and the service's.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::build::{Source, duration_within};
use super::format::HumanDuration;

/// The lease asked of a hub when `lease` is not set: ten days, as common hubs grant.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 86_400);

/// How often a feed that is pushed is still polled, when `backup_interval` is not set.
pub const DEFAULT_BACKUP_INTERVAL: Duration = Duration::from_secs(3600);

/// `[websub]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebSub {
    listen: Option<Spanned<String>>,
    callback_base: Option<Spanned<String>>,
    lease: Option<Spanned<HumanDuration>>,
    backup_interval: Option<Spanned<HumanDuration>>,
}

/// The WebSub subscriber's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSubSettings {
    /// Where the callback listener binds (hubs reach it through `callback_base`).
    pub listen: SocketAddr,
    /// The public URL prefix of the callbacks: each subscription's callback is
    /// `callback_base/TOKEN`, with a random token per feed.
    pub callback_base: Url,
    /// The lease asked for (`hub.lease_seconds`); the hub may grant another.
    pub lease: Duration,
    /// A pushed feed's poll interval (at least its own `interval`).
    pub backup_interval: Duration,
}

/// `[websub]`: both `listen` and `callback_base` are required, so push is never on by accident.
pub(super) fn build(
    src: &mut Source<'_>,
    raw: Option<&Spanned<RawWebSub>>,
) -> Option<WebSubSettings> {
    let raw_table = raw?;
    let raw = raw_table.get_ref();
    let listen = match &raw.listen {
        Some(l) => match l.get_ref().trim().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                src.error_at(
                    l.span(),
                    format!(
                        "invalid websub listen address {:?}: expected IP:PORT, like \"127.0.0.1:9189\"",
                        l.get_ref()
                    ),
                );
                None
            }
        },
        None => {
            src.error_at(
                raw_table.span(),
                "[websub] needs `listen` (the callback listener's IP:PORT, like \"127.0.0.1:9189\")",
            );
            None
        }
    };
    let callback_base = match &raw.callback_base {
        Some(c) => match callback_base(c.get_ref()) {
            Ok(u) => Some(u),
            Err(msg) => {
                src.error_at(c.span(), msg);
                None
            }
        },
        None => {
            src.error_at(
                raw_table.span(),
                "[websub] needs `callback_base` (the public URL hubs call, like \"https://news.example/websub\")",
            );
            None
        }
    };
    let lease = duration_within(
        src,
        "lease",
        raw.lease.as_ref(),
        Duration::from_secs(300)..=Duration::from_secs(365 * 86_400),
    )
    .unwrap_or(DEFAULT_LEASE);
    let backup_interval = duration_within(
        src,
        "backup_interval",
        raw.backup_interval.as_ref(),
        Duration::from_secs(60)..=Duration::from_secs(7 * 86_400),
    )
    .unwrap_or(DEFAULT_BACKUP_INTERVAL);
    Some(WebSubSettings {
        listen: listen?,
        callback_base: callback_base?,
        lease,
        backup_interval,
    })
}

/// An http(s) URL without credentials, query or fragment; a trailing `/` is dropped.
fn callback_base(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| {
        format!(
            "invalid callback_base {s:?}: {e}; expected a URL like \"https://news.example/websub\""
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "invalid callback_base {s:?}: expected an http or https URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "callback_base carries a user name or password: hubs would see it; remove it".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "callback_base {s:?} has a query or fragment: expected a plain URL prefix (each callback appends /TOKEN)"
        ));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_string();
    Url::parse(&trimmed).map_err(|e| format!("invalid callback_base {s:?}: {e}"))
}

impl WebSubSettings {
    /// The callback URL of the subscription whose token is `token`.
    pub fn callback(&self, token: &str) -> String {
        format!(
            "{}/{token}",
            self.callback_base.as_str().trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::callback_base;

    #[test]
    fn callback_base_is_a_plain_prefix() {
        let u = callback_base("https://news.example/websub/").expect("valid");
        assert_eq!(u.as_str(), "https://news.example/websub");
        assert!(callback_base("https://u:p@news.example/").is_err());
        assert!(callback_base("https://news.example/w?x=1").is_err());
        assert!(callback_base("ftp://news.example/").is_err());
        assert!(callback_base("not a url").is_err());
    }
}
