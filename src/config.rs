//! The daemon's configuration: TOML into typed values, once, at load.
//! Every problem names file, line and column and says what was expected; all semantic problems are
//! reported together. Relative paths and `file://` URLs resolve against the config file's directory.
//! This module reads files and environment variables only while loading; it never logs secrets.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use chrono_tz::Tz;

use crate::digest::alerts::AlertPolicy;
use crate::digest::spec::{RuleSelection, WhenEmpty};
use crate::policy::schedule::{Schedule, parse_tz};

/// A fully loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    /// Rule files, expanded from the configured globs, sorted, deduplicated.
    pub rule_files: Vec<PathBuf>,
    pub user_agent: String,
    /// Articles of a newly added feed published before this window are stored as seen, not alerted.
    pub new_feed_window: Duration,
    pub fetch: FetchSettings,
    /// Scheduling, politeness, retention and feed-health settings (also from `[fetch]`).
    pub polling: PollSettings,
    pub feeds: Vec<FeedConfig>,
    pub delivery: Delivery,
    pub digests: Vec<DigestConfig>,
    /// `[[alert]]` sets: who gets `priority = "alert"` matches at once.
    pub alerts: Vec<AlertConfig>,
    pub http: HttpSettings,
}

/// `[http]`: where the daemon serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub enabled: bool,
    /// Loopback by default: metrics name feeds and rules.
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub connect_timeout: Duration,
    /// Deadline for a whole request, headers and body.
    pub timeout: Duration,
    /// Cap on the decompressed body.
    pub max_body_bytes: u64,
    /// Feeds fetched at once.
    pub concurrency: usize,
    /// Poll interval of feeds that do not set their own.
    pub default_interval: Duration,
}

/// How feeds are scheduled and how long their items are kept; the `[fetch]` keys beyond the HTTP
/// client's own. A separate struct so `FetchSettings` literals elsewhere keep compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSettings {
    /// No feed is polled more often than this, whatever its interval or hints say.
    pub min_interval: Duration,
    /// Cache hints, feed `ttl` and `Retry-After` never push a poll further out than this.
    pub max_interval: Duration,
    /// The exponential back-off of a failing feed stops growing here (it is never given up).
    pub backoff_cap: Duration,
    /// Requests in flight to one host at once.
    pub per_host: usize,
    /// Minimum time between the starts of two requests to one host.
    pub host_spacing: Duration,
    /// Article text (summary, content) is dropped this long after the item was last seen.
    pub retention: Duration,
    /// Item identities are kept this long after the item was last seen, so nothing pruned
    /// can alert again. At least `retention`.
    pub keep_identities: Duration,
    /// A feed failing for this long produces one operator notice.
    pub failing_after: Duration,
    /// A feed that brings nothing new for this many times its usual cadence (and at least
    /// `failing_after`) produces one "silent" notice.
    pub silent_factor: u32,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            min_interval: Duration::from_secs(5 * 60),
            max_interval: Duration::from_secs(24 * 3600),
            backoff_cap: Duration::from_secs(6 * 3600),
            per_host: 1,
            host_spacing: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 86_400),
            keep_identities: Duration::from_secs(180 * 86_400),
            failing_after: Duration::from_secs(24 * 3600),
            silent_factor: 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub name: String,
    pub url: Url,
    pub interval: Duration,
    pub tags: Vec<String>,
    /// Let this feed's redirects reach loopback, private and link-local addresses.
    pub allow_private_network: bool,
}

#[derive(Debug)]
pub struct Delivery {
    /// The `From:` mailbox of every email.
    pub from: String,
    pub method: DeliveryMethod,
}

#[derive(Debug)]
pub enum DeliveryMethod {
    Smtp(SmtpSettings),
    Sendmail {
        command: PathBuf,
    },
    /// Write each email as an `.eml` file into this directory.
    File {
        dir: PathBuf,
    },
}

#[derive(Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Where the password was read from (`password_file`), for the permission check at start-up.
    pub password_file: Option<PathBuf>,
    /// Deadline for one whole SMTP exchange (connect to QUIT).
    pub timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a private relay, or tests).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refuses to continue without TLS.
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// No encryption: loopback relays and tests only.
    None,
}

#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub name: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
    /// Shown in the subject and heading (`Morning brief`); none keeps the subject short.
    pub title: Option<String>,
    /// When to compose; `None` composes every cycle that has something to say.
    pub schedule: Option<Schedule>,
    /// The zone the schedule is read in and times are shown in.
    pub timezone: Tz,
    /// The rules it carries (default all).
    pub rules: RuleSelection,
    /// Stories shown; the rest are counted as "and N more".
    pub max_items: usize,
    pub when_empty: WhenEmpty,
    /// The operator's own `digest.html` / `digest.txt`, read and syntax-checked at load.
    pub templates: Option<Templates>,
}

/// Template sources that replace the built-in ones (same variables, see `templates/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub html: String,
    pub text: String,
}

/// One `[[alert]]` set: recipients of the matches of alert rules it selects, batched and capped.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub name: String,
    pub to: Vec<String>,
    /// Among rules with `priority = "alert"`; default all of them.
    pub rules: RuleSelection,
    pub policy: AlertPolicy,
    pub subject_prefix: String,
}

/// A configuration problem at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line, shown with a caret under `column`.
    pub source_line: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                self.line,
                self.source_line,
                "",
                "^",
                col = self.column
            )?;
        }
        Ok(())
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

// ---- raw file format -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Spanned<String>,
    rules: Spanned<Vec<Spanned<String>>>,
    user_agent: Option<String>,
    new_feed_window: Option<HumanDuration>,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default, rename = "feed")]
    feeds: Vec<RawFeed>,
    delivery: Spanned<RawDelivery>,
    #[serde(default, rename = "digest")]
    digests: Vec<RawDigest>,
    #[serde(default, rename = "alert")]
    alerts: Vec<RawAlert>,
    #[serde(default)]
    http: RawHttp,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    connect_timeout: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    max_body: Option<ByteSize>,
    concurrency: Option<Spanned<usize>>,
    interval: Option<HumanDuration>,
    min_interval: Option<Spanned<HumanDuration>>,
    max_interval: Option<Spanned<HumanDuration>>,
    backoff_cap: Option<Spanned<HumanDuration>>,
    per_host: Option<Spanned<usize>>,
    host_spacing: Option<HumanDuration>,
    retention: Option<Spanned<HumanDuration>>,
    keep_identities: Option<Spanned<HumanDuration>>,
    failing_after: Option<Spanned<HumanDuration>>,
    silent_factor: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    url: Spanned<String>,
    interval: Option<HumanDuration>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    allow_private_network: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    method: Spanned<String>,
    from: Spanned<String>,
    // smtp
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    timeout: Option<HumanDuration>,
    ca_file: Option<Spanned<String>>,
    // sendmail
    command: Option<String>,
    // file
    dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    name: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    subject_prefix: Option<String>,
    title: Option<String>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    rules: Option<Spanned<Vec<String>>>,
    max_items: Option<Spanned<usize>>,
    when_empty: Option<Spanned<WhenEmpty>>,
    template_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    name: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    subject_prefix: Option<String>,
    rules: Option<Spanned<Vec<String>>>,
    window: Option<HumanDuration>,
    max_per_hour: Option<Spanned<usize>>,
    max_items: Option<Spanned<usize>>,
}

/// A duration written like `90s`, `15m`, `48h`, `7d` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `90s`, `15m`, `48h`, `7d`, `2w`, `1h30m`. A bare number is refused: units are required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration {s:?}: expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(expected());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => {
                // Milliseconds are kept only as whole seconds would lose them; handle separately.
                total = total.checked_mul(1000).ok_or_else(expected)?;
                let ms_total = total.checked_add(n).ok_or_else(expected)?;
                rest = &rest[unit_len..];
                if !rest.is_empty() {
                    return Err(expected());
                }
                return Ok(Duration::from_millis(ms_total));
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(expected()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(expected)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// A size written like `10MB`, `512KB`, `1GB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number of bytes or `512KB`, `10MB`, `1GB`")
    })?;
    let mult = match t[split..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" | "KIB" => 1024,
        "MB" | "M" | "MIB" => 1024 * 1024,
        "GB" | "G" | "GIB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size {s:?}: expected a number of bytes or `512KB`, `10MB`, `1GB`"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

// ---- loading ---------------------------------------------------------------------------------

/// Where to find things while validating: the file's text for line/column, its directory for paths.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Source<'_> {
    fn error_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let err = locate(self.path, self.text, span.start, message.into());
        self.errors.push(err);
    }
}

fn locate(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    let source_line = text[line_start..].lines().next().unwrap_or("").to_string();
    ConfigError {
        file: path.to_path_buf(),
        line,
        column,
        message,
        source_line,
    }
}

impl Config {
    /// Reads and validates `path`. Environment variables named by `password_env` are read here.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read config file: {e}"),
                source_line: String::new(),
            }])
        })?;
        Self::from_str(path, &text, &|name| std::env::var(name).ok())
    }

    /// Validates `text` as if read from `path`; `env` looks up environment variables.
    pub fn from_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            ConfigErrors(vec![locate(
                path,
                text,
                offset,
                e.message().trim_end().to_string(),
            )])
        })?;
        let mut src = Source {
            path,
            text,
            errors: Vec::new(),
        };
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };

        let state_dir = resolve(&base, raw.state_dir.get_ref());

        let mut rule_files = Vec::new();
        if raw.rules.get_ref().is_empty() {
            src.error_at(
                raw.rules.span(),
                "`rules` is empty: expected at least one rule file or glob, like \"rules/*.toml\"",
            );
        }
        for pattern in raw.rules.get_ref() {
            let full = resolve(&base, pattern.get_ref());
            let full_str = full.to_string_lossy().into_owned();
            match glob::glob(&full_str) {
                Err(e) => src.error_at(
                    pattern.span(),
                    format!("invalid glob {:?}: {e}", pattern.get_ref()),
                ),
                Ok(paths) => {
                    let found: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    if found.is_empty() {
                        src.error_at(
                            pattern.span(),
                            format!(
                                "no rule file matches {:?} (looked for {full_str})",
                                pattern.get_ref()
                            ),
                        );
                    }
                    rule_files.extend(found);
                }
            }
        }
        rule_files.sort();
        rule_files.dedup();

        let fetch = FetchSettings {
            connect_timeout: raw
                .fetch
                .connect_timeout
                .map_or(Duration::from_secs(10), |d| d.0),
            timeout: raw.fetch.timeout.map_or(Duration::from_secs(30), |d| d.0),
            max_body_bytes: raw.fetch.max_body.map_or(10 * 1024 * 1024, |b| b.0),
            concurrency: raw.fetch.concurrency.as_ref().map_or(8, |c| *c.get_ref()),
            default_interval: raw
                .fetch
                .interval
                .map_or(Duration::from_secs(15 * 60), |d| d.0),
        };
        if let Some(c) = &raw.fetch.concurrency
            && *c.get_ref() == 0
        {
            src.error_at(c.span(), "`concurrency` must be at least 1");
        }
        let polling = build_polling(&mut src, &raw.fetch);

        let mut feeds: Vec<FeedConfig> = Vec::new();
        for feed in &raw.feeds {
            let name = feed.name.get_ref().trim().to_string();
            if name.is_empty() {
                src.error_at(feed.name.span(), "feed `name` is empty");
            } else if feeds.iter().any(|f| f.name == name) {
                src.error_at(
                    feed.name.span(),
                    format!("duplicate feed name {name:?}: every [[feed]] needs its own name"),
                );
            }
            let url = match parse_feed_url(&base, feed.url.get_ref()) {
                Ok(u) => u,
                Err(msg) => {
                    src.error_at(feed.url.span(), msg);
                    continue;
                }
            };
            feeds.push(FeedConfig {
                name,
                url,
                interval: feed.interval.map_or(fetch.default_interval, |d| d.0),
                tags: feed.tags.clone(),
                allow_private_network: feed.allow_private_network,
            });
        }

        let delivery = build_delivery(&mut src, &base, raw.delivery, env);

        let digests: Vec<DigestConfig> = raw
            .digests
            .iter()
            .enumerate()
            .map(|(i, d)| build_digest(&mut src, &base, d, &raw.digests[..i]))
            .collect();
        let alerts: Vec<AlertConfig> = raw
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| build_alert(&mut src, a, &raw.alerts[..i]))
            .collect();

        let mut http = HttpSettings {
            enabled: raw.http.enabled.unwrap_or(true),
            listen: crate::service::health::DEFAULT_ADDR,
        };
        if let Some(listen) = &raw.http.listen {
            match listen.get_ref().trim().parse() {
                Ok(addr) => http.listen = addr,
                Err(_) => src.error_at(
                    listen.span(),
                    format!(
                        "invalid listen address {:?}: expected IP:PORT, like \"127.0.0.1:9187\" or \"[::1]:9187\"",
                        listen.get_ref()
                    ),
                ),
            }
        }

        if !src.errors.is_empty() {
            return Err(ConfigErrors(src.errors));
        }
        let Some(delivery) = delivery else {
            // build_delivery returns None only after recording an error.
            return Err(ConfigErrors(src.errors));
        };
        Ok(Config {
            path: path.to_path_buf(),
            state_dir,
            rule_files,
            user_agent: raw.user_agent.unwrap_or_else(default_user_agent),
            new_feed_window: raw
                .new_feed_window
                .map_or(Duration::from_secs(48 * 3600), |d| d.0),
            fetch,
            polling,
            feeds,
            delivery,
            digests,
            http,
            alerts,
        })
    }
}

/// The `[fetch]` scheduling, politeness, retention and health keys, with their cross-checks.
fn build_polling(src: &mut Source<'_>, raw: &RawFetch) -> PollSettings {
    let d = PollSettings::default();
    let dur = |v: &Option<Spanned<HumanDuration>>, default: Duration| {
        v.as_ref().map_or(default, |s| s.get_ref().0)
    };
    let p = PollSettings {
        min_interval: dur(&raw.min_interval, d.min_interval),
        max_interval: dur(&raw.max_interval, d.max_interval),
        backoff_cap: dur(&raw.backoff_cap, d.backoff_cap),
        per_host: raw.per_host.as_ref().map_or(d.per_host, |s| *s.get_ref()),
        host_spacing: raw.host_spacing.map_or(d.host_spacing, |h| h.0),
        retention: dur(&raw.retention, d.retention),
        keep_identities: dur(&raw.keep_identities, d.keep_identities),
        failing_after: dur(&raw.failing_after, d.failing_after),
        silent_factor: raw
            .silent_factor
            .as_ref()
            .map_or(d.silent_factor, |s| *s.get_ref()),
    };
    if let Some(m) = &raw.min_interval
        && m.get_ref().0.is_zero()
    {
        src.error_at(m.span(), "`min_interval` must be longer than 0s");
    }
    if let Some(m) = &raw.max_interval
        && p.max_interval < p.min_interval
    {
        src.error_at(
            m.span(),
            "`max_interval` is shorter than `min_interval`: expected min_interval <= max_interval",
        );
    }
    if let Some(c) = &raw.backoff_cap
        && p.backoff_cap < p.min_interval
    {
        src.error_at(c.span(), "`backoff_cap` is shorter than `min_interval`");
    }
    if let Some(h) = &raw.per_host
        && *h.get_ref() == 0
    {
        src.error_at(h.span(), "`per_host` must be at least 1");
    }
    if let Some(r) = &raw.retention
        && r.get_ref().0.is_zero()
    {
        src.error_at(r.span(), "`retention` must be longer than 0s");
    }
    if p.keep_identities < p.retention {
        let span = raw
            .keep_identities
            .as_ref()
            .or(raw.retention.as_ref())
            .map_or(0..0, Spanned::span);
        src.error_at(
            span,
            "`keep_identities` is shorter than `retention`: an item whose text was pruned could \
             alert again; expected keep_identities >= retention",
        );
    }
    if let Some(f) = &raw.failing_after
        && f.get_ref().0.is_zero()
    {
        src.error_at(f.span(), "`failing_after` must be longer than 0s");
    }
    if let Some(s) = &raw.silent_factor
        && *s.get_ref() < 2
    {
        src.error_at(s.span(), "`silent_factor` must be at least 2");
    }
    p
}

impl Config {
    /// Files holding a secret (the SMTP `password_file`) that every local user may read (mode
    /// `o+r`): the daemon starts anyway but warns. Group read is allowed on purpose, for
    /// `root:newswatch 0640` setups.
    pub fn world_readable_secrets(&self) -> Vec<PathBuf> {
        let DeliveryMethod::Smtp(smtp) = &self.delivery.method else {
            return Vec::new();
        };
        smtp.password_file
            .iter()
            .filter(|p| world_readable(p))
            .cloned()
            .collect()
    }
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> bool {
    false
}

/// The User-Agent sent when the config names none: product and version, so servers can tell us apart.
pub fn default_user_agent() -> String {
    format!(
        "newswatch/{} (+https://github.com/newswatch/newswatch)",
        env!("CARGO_PKG_VERSION")
    )
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn parse_feed_url(base: &Path, s: &str) -> Result<Url, String> {
    if let Some(rest) = s.strip_prefix("file://") {
        // `file://feeds/x.xml` and `file://./x.xml` are relative to the config file's directory.
        let path = resolve(base, rest);
        let abs = std::path::absolute(&path).map_err(|e| format!("cannot resolve {s:?}: {e}"))?;
        return Url::from_file_path(&abs)
            .map_err(|()| format!("cannot turn {} into a file:// URL", abs.display()));
    }
    let url = Url::parse(s).map_err(|e| {
        format!("invalid feed url {s:?}: {e}; expected an http://, https:// or file:// URL")
    })?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err(format!("feed url {s:?} has no host")),
        other => Err(format!(
            "unsupported scheme `{other}` in feed url {s:?}: expected http, https or file"
        )),
    }
}

fn check_mailbox(s: &str) -> Result<(), String> {
    // lettre's own error texts ("Invalid input") do not help; say what is expected instead.
    s.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|_| {
        format!("invalid email address {s:?}: expected `name@example.org` or `Name <name@example.org>`")
    })
}

fn build_delivery(
    src: &mut Source<'_>,
    base: &Path,
    raw: Spanned<RawDelivery>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Delivery> {
    let span = raw.span();
    let raw = raw.into_inner();
    if let Err(msg) = check_mailbox(raw.from.get_ref()) {
        src.error_at(raw.from.span(), msg);
    }
    let method_name = raw.method.get_ref().as_str();
    // Keys that belong to another method are mistakes worth naming.
    let misplaced = |src: &mut Source<'_>, allowed: &[&str]| {
        let present: [(&str, bool); 10] = [
            ("host", raw.host.is_some()),
            ("port", raw.port.is_some()),
            ("security", raw.security.is_some()),
            ("username", raw.username.is_some()),
            ("password_env", raw.password_env.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("ca_file", raw.ca_file.is_some()),
            ("command", raw.command.is_some()),
            ("dir", raw.dir.is_some()),
        ];
        for (key, is_set) in present {
            if is_set && !allowed.contains(&key) {
                src.error_at(
                    span.clone(),
                    format!("`{key}` does not apply to delivery method `{method_name}`"),
                );
            }
        }
    };
    let method = match method_name {
        "smtp" => {
            misplaced(
                src,
                &[
                    "host",
                    "port",
                    "security",
                    "username",
                    "password_env",
                    "password_file",
                    "timeout",
                    "ca_file",
                ],
            );
            let Some(host) = raw.host.clone() else {
                src.error_at(span, "delivery method `smtp` needs `host`");
                return None;
            };
            let security = raw.security.unwrap_or(Security::Starttls);
            let port = raw.port.unwrap_or(match security {
                Security::Starttls => 587,
                Security::Tls => 465,
                Security::None => 25,
            });
            let mut password_file = None;
            let password = match (&raw.password_env, &raw.password_file) {
                (Some(_), Some(f)) => {
                    src.error_at(f.span(), "set `password_env` or `password_file`, not both");
                    None
                }
                (Some(var), None) => match env(var.get_ref()) {
                    Some(v) => Some(SecretString::from(v)),
                    None => {
                        src.error_at(var.span(), format!("environment variable {} is not set (it should hold the SMTP password)", var.get_ref()));
                        None
                    }
                },
                (None, Some(file)) => {
                    let path = resolve_credential(base, file.get_ref(), env);
                    password_file = Some(path.clone());
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
            if raw.username.is_some() && raw.password_env.is_none() && raw.password_file.is_none() {
                src.error_at(
                    span,
                    "`username` is set but no password: add `password_env` or `password_file`",
                );
            }
            let ca_file = raw.ca_file.as_ref().and_then(|f| {
                let path = resolve(base, f.get_ref());
                if security == Security::None {
                    src.error_at(
                        f.span(),
                        "`ca_file` needs `security = \"starttls\"` or `\"tls\"`",
                    );
                    return None;
                }
                match std::fs::read(&path) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        src.error_at(
                            f.span(),
                            format!("cannot read CA file {}: {e}", path.display()),
                        );
                        None
                    }
                }
            });
            DeliveryMethod::Smtp(SmtpSettings {
                host,
                port,
                security,
                username: raw.username.clone(),
                password,
                password_file,
                timeout: raw.timeout.map_or(Duration::from_secs(60), |d| d.0),
                ca_file,
            })
        }
        "sendmail" => {
            misplaced(src, &["command"]);
            DeliveryMethod::Sendmail {
                command: PathBuf::from(
                    raw.command
                        .clone()
                        .unwrap_or_else(|| "/usr/sbin/sendmail".to_string()),
                ),
            }
        }
        "file" => {
            misplaced(src, &["dir"]);
            let Some(dir) = raw.dir.as_deref() else {
                src.error_at(
                    span,
                    "delivery method `file` needs `dir`, the directory to write .eml files into",
                );
                return None;
            };
            DeliveryMethod::File {
                dir: resolve(base, dir),
            }
        }
        other => {
            src.error_at(
                raw.method.span(),
                format!(
                    "unknown delivery method {other:?}: expected \"smtp\", \"sendmail\" or \"file\""
                ),
            );
            return None;
        }
    };
    Some(Delivery {
        from: raw.from.into_inner(),
        method,
    })
}

/// Names must be unique among sections of one kind: `name` keys the schedule state and
/// Message-IDs in the database.
fn check_name(src: &mut Source<'_>, kind: &str, name: &Spanned<String>, earlier: &[&str]) {
    if name.get_ref().trim().is_empty() {
        src.error_at(name.span(), format!("{kind} `name` is empty"));
    } else if earlier.contains(&name.get_ref().as_str()) {
        src.error_at(
            name.span(),
            format!("duplicate {kind} name {:?}", name.get_ref()),
        );
    }
}

fn check_recipients(src: &mut Source<'_>, kind: &str, to: &Spanned<Vec<Spanned<String>>>) {
    if to.get_ref().is_empty() {
        src.error_at(
            to.span(),
            format!("{kind} `to` is empty: expected at least one recipient address"),
        );
    }
    for addr in to.get_ref() {
        if let Err(msg) = check_mailbox(addr.get_ref()) {
            src.error_at(addr.span(), msg);
        }
    }
}

fn rule_selection(src: &mut Source<'_>, rules: Option<&Spanned<Vec<String>>>) -> RuleSelection {
    let Some(rules) = rules else {
        return RuleSelection::default();
    };
    RuleSelection::new(rules.get_ref()).unwrap_or_else(|errs| {
        for e in errs {
            src.error_at(rules.span(), e);
        }
        RuleSelection::default()
    })
}

fn at_least_one(
    src: &mut Source<'_>,
    key: &str,
    v: Option<&Spanned<usize>>,
    default: usize,
) -> usize {
    match v {
        Some(n) if *n.get_ref() == 0 => {
            src.error_at(n.span(), format!("`{key}` must be at least 1"));
            default
        }
        Some(n) => *n.get_ref(),
        None => default,
    }
}

/// Stories a digest shows by default: enough for a busy morning, small enough to stay far
/// below Gmail's 102 KB clipping.
pub const DEFAULT_DIGEST_ITEMS: usize = 50;

/// Reads `digest.html` and `digest.txt` from `dir` and checks that they parse.
fn load_templates(src: &mut Source<'_>, base: &Path, dir: &Spanned<String>) -> Option<Templates> {
    let dir_path = resolve(base, dir.get_ref());
    let mut read = |name: &str| {
        let path = dir_path.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| {
                src.error_at(
                    dir.span(),
                    format!("cannot read template {}: {e}", path.display()),
                );
            })
            .ok()?;
        if let Err(e) = minijinja::Environment::new().template_from_str(&text) {
            src.error_at(dir.span(), format!("template {}: {e}", path.display()));
            return None;
        }
        Some(text)
    };
    let html = read("digest.html");
    let text = read("digest.txt");
    Some(Templates {
        html: html?,
        text: text?,
    })
}

fn build_digest(
    src: &mut Source<'_>,
    base: &Path,
    d: &RawDigest,
    earlier: &[RawDigest],
) -> DigestConfig {
    let names: Vec<&str> = earlier.iter().map(|e| e.name.get_ref().as_str()).collect();
    check_name(src, "digest", &d.name, &names);
    check_recipients(src, "digest", &d.to);
    let schedule = d.schedule.as_ref().and_then(|s| {
        s.get_ref()
            .parse::<Schedule>()
            .map_err(|e| src.error_at(s.span(), e.to_string()))
            .ok()
    });
    let timezone = d.timezone.as_ref().map_or(Tz::UTC, |tz| {
        parse_tz(tz.get_ref()).unwrap_or_else(|msg| {
            src.error_at(tz.span(), msg);
            Tz::UTC
        })
    });
    let when_empty = d
        .when_empty
        .as_ref()
        .map_or(WhenEmpty::Skip, |w| *w.get_ref());
    if let Some(w) = &d.when_empty
        && when_empty == WhenEmpty::Send
        && d.schedule.is_none()
    {
        src.error_at(
            w.span(),
            "`when_empty = \"send\"` needs a `schedule` (without one a digest is composed every cycle)",
        );
    }
    DigestConfig {
        name: d.name.get_ref().trim().to_string(),
        to: d.to.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
        subject_prefix: d
            .subject_prefix
            .clone()
            .unwrap_or_else(|| "[newswatch]".to_string()),
        title: d.title.clone().filter(|t| !t.trim().is_empty()),
        schedule,
        timezone,
        rules: rule_selection(src, d.rules.as_ref()),
        max_items: at_least_one(src, "max_items", d.max_items.as_ref(), DEFAULT_DIGEST_ITEMS),
        when_empty,
        templates: d
            .template_dir
            .as_ref()
            .and_then(|dir| load_templates(src, base, dir)),
    }
}

fn build_alert(src: &mut Source<'_>, a: &RawAlert, earlier: &[RawAlert]) -> AlertConfig {
    let names: Vec<&str> = earlier.iter().map(|e| e.name.get_ref().as_str()).collect();
    check_name(src, "alert", &a.name, &names);
    check_recipients(src, "alert", &a.to);
    let defaults = AlertPolicy::default();
    AlertConfig {
        name: a.name.get_ref().trim().to_string(),
        to: a.to.get_ref().iter().map(|x| x.get_ref().clone()).collect(),
        rules: rule_selection(src, a.rules.as_ref()),
        policy: AlertPolicy {
            window: a.window.map_or(defaults.window, |w| w.0),
            max_per_hour: at_least_one(
                src,
                "max_per_hour",
                a.max_per_hour.as_ref(),
                defaults.max_per_hour,
            ),
            max_items: at_least_one(src, "max_items", a.max_items.as_ref(), defaults.max_items),
        },
        subject_prefix: a
            .subject_prefix
            .clone()
            .unwrap_or_else(|| "[newswatch alert]".to_string()),
    }
}

/// `password_file` may name a systemd credential: a relative path is looked up in
/// `$CREDENTIALS_DIRECTORY` when that is set, else next to the config file.
fn resolve_credential(base: &Path, file: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match env("CREDENTIALS_DIRECTORY") {
        Some(dir) => Path::new(&dir).join(p),
        None => base.join(p),
    }
}
