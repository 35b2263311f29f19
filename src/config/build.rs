//! Building the general sections from the file format: rule globs, `[fetch]` (HTTP client and
//! polling), `[[feed]]`, `[http]`, and the collector every builder reports problems to.
//! Each builder starts from the section's `Default` and overrides what the file says.
//! Reads the file system only to expand the rule globs.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::format::{ByteSize, HumanDuration, RawFeed, RawFetch, RawHttp};
use super::{FeedConfig, FetchSettings, HttpSettings, PollSettings};
use crate::diagnostic::{Diagnostic, LineIndex};

/// The file being built: its text for line/column, and every problem found so far.
pub(super) struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    lines: LineIndex,
    pub(super) errors: Vec<Diagnostic>,
}

impl<'a> Source<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Source<'a> {
        Source {
            path,
            text,
            lines: LineIndex::new(text),
            errors: Vec::new(),
        }
    }

    pub(super) fn diagnostic(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.path, self.text, &self.lines, offset, message)
    }

    pub(super) fn error_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let err = self.diagnostic(span.start, message);
        self.errors.push(err);
    }
}

/// `p` against the config file's directory unless absolute.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The rule files the `rules` globs name, sorted and deduplicated; a glob matching nothing is an
/// error (a typo would otherwise run the daemon without those rules).
pub(super) fn rule_files(
    src: &mut Source<'_>,
    base: &Path,
    rules: &Spanned<Vec<Spanned<String>>>,
) -> Vec<PathBuf> {
    let mut rule_files = Vec::new();
    if rules.get_ref().is_empty() {
        src.error_at(
            rules.span(),
            "`rules` is empty: expected at least one rule file or glob, like \"rules/*.toml\"",
        );
    }
    for pattern in rules.get_ref() {
        let full = resolve(base, pattern.get_ref());
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
    rule_files
}

/// The `[fetch]` keys of the HTTP client.
pub(super) fn fetch(src: &mut Source<'_>, raw: &RawFetch) -> FetchSettings {
    let mut fetch = FetchSettings::default();
    if let Some(d) = duration_within(
        src,
        "connect_timeout",
        raw.connect_timeout.as_ref(),
        NONZERO..=HOUR,
    ) {
        fetch.connect_timeout = d;
    }
    if let Some(d) = duration_within(src, "timeout", raw.timeout.as_ref(), NONZERO..=HOUR) {
        fetch.timeout = d;
    }
    fetch.full_text_concurrency = at_least_one(
        src,
        "full_text_concurrency",
        raw.full_text_concurrency.as_ref(),
        fetch.full_text_concurrency,
    );
    if let Some(p) = &raw.proxy {
        match super::request::proxy_url(p.get_ref(), false) {
            Ok(u) => fetch.proxy = Some(u),
            Err(msg) => src.error_at(p.span(), msg),
        }
    }
    if let Some(b) = &raw.max_body {
        let ByteSize(n) = *b.get_ref();
        if within(src, "max_body", b.span(), n, 1024..=1 << 30, |n| {
            format!("{n} bytes")
        }) {
            fetch.max_body_bytes = n;
        }
    }
    if let Some(d) = duration_within(
        src,
        "interval",
        raw.interval.as_ref(),
        NONZERO..=MAX_INTERVAL,
    ) {
        fetch.default_interval = d;
    }
    fetch.concurrency = at_least_one(
        src,
        "concurrency",
        raw.concurrency.as_ref(),
        fetch.concurrency,
    );
    if let Some(c) = raw.concurrency.as_ref().filter(|c| *c.get_ref() > 0) {
        within(
            src,
            "concurrency",
            c.span(),
            *c.get_ref(),
            1..=MAX_CONCURRENCY,
            |n| n.to_string(),
        );
    }
    fetch
}

/// The shortest wait or deadline: anything above zero (tests poll every 100ms); `0s` would fail every
/// fetch or spin.
pub(super) const NONZERO: Duration = Duration::from_millis(1);
pub(super) const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// The longest a feed may wait between polls (and the back-off's ceiling): a year.
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(365 * 86_400);
/// Text and identities are kept at most a century: past that a date computation could overflow.
pub(super) const MAX_KEEP: Duration = Duration::from_secs(36_500 * 86_400);
/// Simultaneous fetches, overall and per host: beyond this a semaphore or the open-file limit
/// gives out long before any feed is served faster.
const MAX_CONCURRENCY: usize = 1000;
const MAX_PER_HOST: usize = 100;

/// Whether a configured number lies in `range`, the bounds newswatch can honour (a number past
/// them would overflow a timer or a semaphore, never end a wait, or fail every fetch); when not,
/// an error at `span` names the key, the value and the range.
pub(super) fn within<T: PartialOrd + Copy>(
    src: &mut Source<'_>,
    key: &str,
    span: Range<usize>,
    value: T,
    range: RangeInclusive<T>,
    show: impl Fn(T) -> String,
) -> bool {
    if range.contains(&value) {
        return true;
    }
    src.error_at(
        span,
        format!(
            "`{key}` = {} is out of range: expected {} to {}",
            show(value),
            show(*range.start()),
            show(*range.end())
        ),
    );
    false
}

/// `within` for a duration key; the duration when present and in range.
pub(super) fn duration_within(
    src: &mut Source<'_>,
    key: &str,
    value: Option<&Spanned<HumanDuration>>,
    range: RangeInclusive<Duration>,
) -> Option<Duration> {
    let v = value?;
    let d = v.get_ref().0;
    within(src, key, v.span(), d, range, crate::units::show_duration).then_some(d)
}

/// The `[fetch]` scheduling, politeness, retention and health keys, with their cross-checks.
pub(super) fn polling(src: &mut Source<'_>, raw: &RawFetch) -> PollSettings {
    let d = PollSettings::default();
    let dur = |v: &Option<Spanned<HumanDuration>>, default: Duration| {
        v.as_ref().map_or(default, |s| s.get_ref().0)
    };
    let p = PollSettings {
        min_interval: dur(&raw.min_interval, d.min_interval),
        max_interval: dur(&raw.max_interval, d.max_interval),
        backoff_cap: dur(&raw.backoff_cap, d.backoff_cap),
        per_host: raw.per_host.as_ref().map_or(d.per_host, |s| *s.get_ref()),
        host_spacing: raw
            .host_spacing
            .as_ref()
            .map_or(d.host_spacing, |h| h.get_ref().0),
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
    // Upper bounds; a value already refused above for being too small is not reported twice.
    let set = |v: &Option<Spanned<HumanDuration>>| {
        v.as_ref().filter(|s| !s.get_ref().0.is_zero()).cloned()
    };
    for (key, value, range) in [
        (
            "min_interval",
            set(&raw.min_interval),
            NONZERO..=MAX_INTERVAL,
        ),
        (
            "max_interval",
            set(&raw.max_interval),
            NONZERO..=MAX_INTERVAL,
        ),
        ("backoff_cap", set(&raw.backoff_cap), NONZERO..=MAX_INTERVAL),
        (
            "host_spacing",
            raw.host_spacing.clone(),
            Duration::ZERO..=HOUR,
        ),
        ("retention", set(&raw.retention), NONZERO..=MAX_KEEP),
        (
            "keep_identities",
            set(&raw.keep_identities),
            NONZERO..=MAX_KEEP,
        ),
        (
            "failing_after",
            set(&raw.failing_after),
            NONZERO..=365 * DAY,
        ),
    ] {
        duration_within(src, key, value.as_ref(), range);
    }
    if let Some(h) = raw.per_host.as_ref().filter(|h| *h.get_ref() > 0) {
        within(
            src,
            "per_host",
            h.span(),
            *h.get_ref(),
            1..=MAX_PER_HOST,
            |n| n.to_string(),
        );
    }
    if let Some(f) = raw.silent_factor.as_ref().filter(|f| *f.get_ref() >= 2) {
        within(
            src,
            "silent_factor",
            f.span(),
            *f.get_ref(),
            2..=1000,
            |n| n.to_string(),
        );
    }
    p
}

/// The `[[feed]]` tables; names must be unique (they key the feed's state in the database).
pub(super) fn feeds(
    src: &mut Source<'_>,
    base: &Path,
    raw: &[RawFeed],
    default_interval: Duration,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: super::Secrets,
) -> Vec<FeedConfig> {
    let mut feeds: Vec<FeedConfig> = Vec::with_capacity(raw.len());
    // The names so far: a scan of `feeds` for each was quadratic (50 million comparisons for
    // 10,000 feeds).
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    // Most feeds set nothing of their own for their requests: they share this one.
    let plain = std::sync::Arc::new(super::request::RequestSettings::default());
    for feed in raw {
        let name = feed.name.get_ref().trim().to_string();
        if name.is_empty() {
            src.error_at(feed.name.span(), "feed `name` is empty");
        } else if name.chars().any(char::is_control) {
            // A name is written to logs, the journal and terminals: ESC, CR or LF in it could
            // forge log lines or drive the terminal.
            src.error_at(
                feed.name.span(),
                format!(
                    "feed `name` {name:?} contains a control character: expected printable text"
                ),
            );
        } else if !names.insert(feed.name.get_ref().trim()) {
            src.error_at(
                feed.name.span(),
                format!("duplicate feed name {name:?}: every [[feed]] needs its own name"),
            );
        }
        let url = match parse_feed_url(base, feed.url.get_ref()) {
            Ok(u) => u,
            Err(msg) => {
                src.error_at(feed.url.span(), msg);
                // The source line shown under the message must not give the password away
                // either: mask it, keeping the caret's column.
                if let (Some(d), Some(info)) = (src.errors.last_mut(), userinfo(feed.url.get_ref()))
                {
                    d.source_line = d
                        .source_line
                        .replace(info, &"*".repeat(info.chars().count()));
                }
                continue;
            }
        };
        let request = super::request::build(src, base, feed, env, secrets);
        feeds.push(FeedConfig {
            name,
            url,
            interval: duration_within(
                src,
                "interval",
                feed.interval.as_ref(),
                NONZERO..=MAX_INTERVAL,
            )
            .unwrap_or(default_interval),
            tags: feed.tags.clone(),
            allow_private_network: feed.allow_private_network,
            request: if request.is_plain() {
                std::sync::Arc::clone(&plain)
            } else {
                std::sync::Arc::new(request)
            },
            full_text: super::full_text::build(
                src,
                feed.full_text.as_ref(),
                feed.full_text_min_words.as_ref(),
            ),
            websub: feed.websub.unwrap_or(true),
        });
    }
    feeds
}

fn parse_feed_url(base: &Path, s: &str) -> Result<Url, String> {
    if let Some(rest) = s.strip_prefix("file://") {
        // `file://feeds/x.xml` and `file://./x.xml` are relative to the config file's directory.
        let path = resolve(base, rest);
        let abs = std::path::absolute(&path).map_err(|e| format!("cannot resolve {s:?}: {e}"))?;
        return Url::from_file_path(&abs)
            .map_err(|()| format!("cannot turn {} into a file:// URL", abs.display()));
    }
    parse_remote_feed_url(s).map_err(|e| e.replace(REMOTE_SCHEMES, "expected http, https or file"))
}

const REMOTE_SCHEMES: &str = "expected http or https";

/// An http(s) feed URL as the config and OPML import accept it: a host, and no user name or
/// password (`https://user:pass@host/`), which `status`, the logs and OPML export would show
/// to anyone who reads them. The message never repeats the password.
pub fn parse_remote_feed_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| {
        format!(
            "invalid feed url {:?}: {e}; expected an http://, https:// or file:// URL",
            redact_userinfo(s)
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(format!(
            "feed url {:?} carries a user name or password: credentials in a feed URL would be \
             shown by `status`, the logs and OPML export, so newswatch refuses them; \
             hint: use the feed's public URL, or a feed proxy on 127.0.0.1 that adds the login",
            shown.as_str()
        ));
    }
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err(format!("feed url {s:?} has no host")),
        other => Err(format!(
            "unsupported scheme `{other}` in feed url {s:?}: {REMOTE_SCHEMES}"
        )),
    }
}

/// `s` with its user name and password (between `://` and the authority's last `@`) replaced by
/// `***`, for messages about a URL that may not parse.
pub fn redact_userinfo(s: &str) -> String {
    match userinfo(s) {
        Some(info) => s.replacen(&format!("{info}@"), "***@", 1),
        None => s.to_string(),
    }
}

/// The `user:password` part of a URL's text, if it has one.
pub(super) fn userinfo(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..at])
}

/// `[http]`: where `/metrics` and `/healthz` are served.
pub(super) fn http(src: &mut Source<'_>, raw: &RawHttp) -> HttpSettings {
    let mut http = HttpSettings::default();
    if let Some(enabled) = raw.enabled {
        http.enabled = enabled;
    }
    if let Some(listen) = &raw.listen {
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
    http
}

/// A count that must be at least 1; `default` when absent or refused.
pub(super) fn at_least_one(
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
