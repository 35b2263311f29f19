//! The daemon's configuration: TOML into typed values, once, at load. This file holds the typed
//! values and their defaults (each stated once, in a `Default` impl or a constant); `config/` holds
//! the file format (`format`), the building and checking of each section, and loading (`load`).
//! Every problem names file, line and column; all semantic problems are reported together.
//! Reads files and environment variables only while loading; never logs secrets.

mod build;
mod channels;
mod console;
mod delivery;
mod digests;
mod format;
mod full_text;
pub mod keys;
mod load;
mod request;
mod spikes;
mod store;
mod websub;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::digest::alerts::AlertPolicy;
use crate::digest::spec::{RuleSelection, WhenEmpty};
use crate::policy::schedule::Schedule;

pub use crate::units::parse_duration;
pub use build::{parse_remote_feed_url, redact_userinfo};
pub use channels::{ChannelConfig, ChannelKind, SecretUrl};
pub use console::{ConsoleSettings, DEFAULT_USERS_FILE};
pub use format::HumanDuration;
pub use full_text::FullText;
pub use request::{FeedAuth, ProxyChoice, RequestSettings};
pub use spikes::SpikeConfig;
pub use store::{PostgresSettings, default_node_name};
pub use websub::WebSubSettings;

/// A configuration problem at a place in the file.
pub type ConfigError = Diagnostic;
/// Every problem found in one configuration file.
pub type ConfigErrors = Diagnostics;

/// Articles of a newly added feed published before this window are stored as seen, not alerted.
pub const DEFAULT_NEW_FEED_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// Stories a digest shows by default: enough for a busy morning, small enough to stay far
/// below Gmail's 102 KB clipping.
pub const DEFAULT_DIGEST_ITEMS: usize = 50;

impl Config {
    /// The configured feed names and every tag they carry: what rules' `feeds` entries may name.
    pub fn feed_names_and_tags(&self) -> (Vec<String>, Vec<String>) {
        let names = self.feeds.iter().map(|f| f.name.clone()).collect();
        let mut tags: Vec<String> = self.feeds.iter().flat_map(|f| f.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        (names, tags)
    }
}

/// The User-Agent sent when the config names none: product and version, so servers can tell us apart.
pub fn default_user_agent() -> String {
    format!(
        "newswatch/{} (+https://github.com/newswatch/newswatch)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether loading reads the delivery secrets (the SMTP password). Commands that only read
/// (`status`, `digest preview`, `rules backtest`, `feeds export`) skip them, so they work where the
/// password file or variable is missing (an operator's shell, a CI check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read and check them: anything that may deliver.
    Read,
    /// Leave them unread (`SmtpSettings::password` is `None`); everything else is checked.
    Skip,
}

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
    /// `[[channel]]`s: chat, push and webhook destinations, addressed as `channel:NAME`.
    pub channels: Vec<ChannelConfig>,
    /// `[[spike]]`s: alerts when a rule's matches surge.
    pub spikes: Vec<SpikeConfig>,
    /// `[store]`: a PostgreSQL shared by several nodes; `None` = the SQLite file in `state_dir`.
    pub store: Option<PostgresSettings>,
    /// `[console]`: the web console (issue 18).
    pub console: ConsoleSettings,
    /// `[websub]`: push from feeds' hubs (issue 20); `None` = every feed is only polled.
    pub websub: Option<WebSubSettings>,
}

/// `[http]`: where the daemon serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub enabled: bool,
    /// Loopback by default: metrics name feeds and rules.
    pub listen: SocketAddr,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            // Loopback only: metrics name feeds and rules, which is nobody else's business.
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9187)),
        }
    }
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
    /// `[fetch] proxy`: every feed's requests go through it unless the feed says otherwise.
    pub proxy: Option<Url>,
    /// Article pages fetched at once for full text (issue 20), besides the feeds' slots.
    pub full_text_concurrency: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            concurrency: 8,
            default_interval: Duration::from_secs(15 * 60),
            proxy: None,
            full_text_concurrency: 2,
        }
    }
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
    /// Headers, cookie, auth and proxy (issue 20); shared, so a poll does not copy secrets.
    pub request: std::sync::Arc<RequestSettings>,
    /// Fetch each item's page for its full text (issue 20).
    pub full_text: FullText,
    /// Subscribe to the feed's WebSub hub when `[websub]` is configured (`websub = false`: never).
    pub websub: bool,
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
        /// `/usr/sbin/sendmail` unless configured ([`DeliveryMethod::DEFAULT_SENDMAIL`]).
        command: PathBuf,
    },
    /// Write each email as an `.eml` file into this directory.
    File {
        dir: PathBuf,
    },
}

impl DeliveryMethod {
    pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";
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
    /// Deadline for the exchange up to the message itself: connect, greeting, TLS, AUTH, MAIL,
    /// RCPT, DATA.
    pub timeout: Duration,
    /// How long the server may take to answer the message's final dot (RFC 5321 §4.5.3.2.6
    /// allows 10 minutes): its 250 is the moment a message counts as sent.
    pub final_reply_timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a private relay, or tests).
    pub ca_file: Option<PathBuf>,
    /// The name given in EHLO (a fully qualified domain name); `None`: the machine's host name.
    pub helo_name: Option<String>,
}

impl SmtpSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(600);
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

impl Security {
    /// STARTTLS unless configured: the one that works with most relays and never sends in clear.
    pub const DEFAULT: Security = Security::Starttls;

    /// The port when the config names none: the registered one for this security.
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub name: String,
    /// Email recipients (may be empty when `channels` is not).
    pub to: Vec<String>,
    /// `channel:NAME` entries of `to`: the `[[channel]]`s that get a summary too.
    pub channels: Vec<String>,
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
    /// Where readers ask to stop or change it (`List-Unsubscribe`, the footer).
    pub unsubscribe: Unsubscribe,
}

/// The `List-Unsubscribe` routes of a digest or alert set (RFC 2369, RFC 8058): a `mailto:`
/// address (`unsubscribe`), and an https endpoint (`unsubscribe_url`) that also makes it
/// one-click (`List-Unsubscribe-Post`). Neither: no header, and the footer says to ask the
/// operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsubscribe {
    pub mailto: Option<String>,
    pub https: Option<String>,
}

/// Everything but `name` and `to` has its default: every rule, no schedule (every cycle that has
/// something to say), UTC, [`DEFAULT_DIGEST_ITEMS`] stories, nothing sent when empty.
impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            name: String::new(),
            to: Vec::new(),
            channels: Vec::new(),
            subject_prefix: "[newswatch]".to_string(),
            title: None,
            schedule: None,
            timezone: Tz::UTC,
            rules: RuleSelection::default(),
            max_items: DEFAULT_DIGEST_ITEMS,
            when_empty: WhenEmpty::Skip,
            templates: None,
            unsubscribe: Unsubscribe::default(),
        }
    }
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
    /// Email recipients (may be empty when `channels` is not).
    pub to: Vec<String>,
    /// `channel:NAME` entries of `to`.
    pub channels: Vec<String>,
    /// Shown in the heading (`Duty desk`); none shows "newswatch alert".
    pub title: Option<String>,
    /// The zone times are shown in; default the first `[[digest]]`'s, else UTC.
    pub timezone: Tz,
    /// Among rules with `priority = "alert"`; default all of them.
    pub rules: RuleSelection,
    pub policy: AlertPolicy,
    pub subject_prefix: String,
    pub unsubscribe: Unsubscribe,
}

/// Everything but `name` and `to` has its default: every alert rule, [`AlertPolicy::default`].
impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            name: String::new(),
            to: Vec::new(),
            channels: Vec::new(),
            title: None,
            timezone: Tz::UTC,
            rules: RuleSelection::default(),
            policy: AlertPolicy::default(),
            subject_prefix: "[alert]".to_string(),
            unsubscribe: Unsubscribe::default(),
        }
    }
}
