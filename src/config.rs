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
    /// Politeness per host (`[fetch] per_host`, `host_spacing`); default one request at a time,
    /// 1 s apart. A benchmark or an operator's own feed server may lift it.
    pub host_limits: crate::host_gate::HostLimits,
    pub feeds: Vec<FeedConfig>,
    pub delivery: Delivery,
    pub digests: Vec<DigestConfig>,
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

#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub name: String,
    pub url: Url,
    pub interval: Duration,
    pub tags: Vec<String>,
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
    /// Deadline for one whole SMTP exchange (connect to QUIT).
    pub timeout: Duration,
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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    connect_timeout: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    max_body: Option<ByteSize>,
    concurrency: Option<Spanned<usize>>,
    interval: Option<HumanDuration>,
    per_host: Option<Spanned<usize>>,
    host_spacing: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    url: Spanned<String>,
    interval: Option<HumanDuration>,
    #[serde(default)]
    tags: Vec<String>,
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

        let defaults = crate::host_gate::HostLimits::default();
        let host_limits = crate::host_gate::HostLimits {
            per_host: raw
                .fetch
                .per_host
                .as_ref()
                .map_or(defaults.per_host, |c| *c.get_ref()),
            spacing: raw.fetch.host_spacing.map_or(defaults.spacing, |d| d.0),
        };
        if let Some(c) = &raw.fetch.per_host
            && *c.get_ref() == 0
        {
            src.error_at(c.span(), "`per_host` must be at least 1");
        }

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
            });
        }

        let delivery = build_delivery(&mut src, &base, raw.delivery, env);

        let mut digests = Vec::new();
        for d in &raw.digests {
            if raw
                .digests
                .iter()
                .filter(|o| o.name.get_ref() == d.name.get_ref())
                .count()
                > 1
                && !digests
                    .iter()
                    .any(|x: &DigestConfig| x.name == *d.name.get_ref())
            {
                src.error_at(
                    d.name.span(),
                    format!("duplicate digest name {:?}", d.name.get_ref()),
                );
            }
            if d.to.get_ref().is_empty() {
                src.error_at(
                    d.to.span(),
                    "digest `to` is empty: expected at least one recipient address",
                );
            }
            for addr in d.to.get_ref() {
                if let Err(msg) = check_mailbox(addr.get_ref()) {
                    src.error_at(addr.span(), msg);
                }
            }
            digests.push(DigestConfig {
                name: d.name.get_ref().clone(),
                to: d.to.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
                subject_prefix: d
                    .subject_prefix
                    .clone()
                    .unwrap_or_else(|| "[newswatch]".to_string()),
            });
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
            host_limits,
            feeds,
            delivery,
            digests,
        })
    }
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
        let present: [(&str, bool); 9] = [
            ("host", raw.host.is_some()),
            ("port", raw.port.is_some()),
            ("security", raw.security.is_some()),
            ("username", raw.username.is_some()),
            ("password_env", raw.password_env.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("timeout", raw.timeout.is_some()),
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
            DeliveryMethod::Smtp(SmtpSettings {
                host,
                port,
                security,
                username: raw.username.clone(),
                password,
                timeout: raw.timeout.map_or(Duration::from_secs(60), |d| d.0),
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
