//! The config file's format: the TOML tables as serde reads them (`Raw*`, spans kept for
//! locating problems) and the unit-bearing values (`HumanDuration`, `ByteSize`).
//! Only shape and units are checked here; meaning is checked while building (`build` and friends).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Security;
use crate::digest::spec::WhenEmpty;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Spanned<String>,
    pub(super) rules: Spanned<Vec<Spanned<String>>>,
    pub(super) user_agent: Option<String>,
    pub(super) new_feed_window: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub(super) fetch: RawFetch,
    #[serde(default, rename = "feed")]
    pub(super) feeds: Vec<RawFeed>,
    pub(super) delivery: Spanned<RawDelivery>,
    #[serde(default, rename = "digest")]
    pub(super) digests: Vec<RawDigest>,
    #[serde(default, rename = "alert")]
    pub(super) alerts: Vec<RawAlert>,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default, rename = "channel")]
    pub(super) channels: Vec<super::channels::RawChannel>,
    #[serde(default, rename = "spike")]
    pub(super) spikes: Vec<super::spikes::RawSpike>,
    pub(super) store: Option<Spanned<super::store::RawStore>>,
    #[serde(default)]
    pub(super) console: super::console::RawConsole,
    pub(super) websub: Option<Spanned<super::websub::RawWebSub>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) enabled: Option<bool>,
    pub(super) listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFetch {
    pub(super) connect_timeout: Option<Spanned<HumanDuration>>,
    pub(super) timeout: Option<Spanned<HumanDuration>>,
    pub(super) max_body: Option<Spanned<ByteSize>>,
    pub(super) concurrency: Option<Spanned<usize>>,
    pub(super) interval: Option<Spanned<HumanDuration>>,
    pub(super) min_interval: Option<Spanned<HumanDuration>>,
    pub(super) max_interval: Option<Spanned<HumanDuration>>,
    pub(super) backoff_cap: Option<Spanned<HumanDuration>>,
    pub(super) per_host: Option<Spanned<usize>>,
    pub(super) host_spacing: Option<Spanned<HumanDuration>>,
    pub(super) retention: Option<Spanned<HumanDuration>>,
    pub(super) keep_identities: Option<Spanned<HumanDuration>>,
    pub(super) failing_after: Option<Spanned<HumanDuration>>,
    pub(super) silent_factor: Option<Spanned<u32>>,
    /// issue 20: the proxy every feed goes through unless it sets its own.
    pub(super) proxy: Option<Spanned<String>>,
    pub(super) full_text_concurrency: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    pub(super) name: Spanned<String>,
    pub(super) url: Spanned<String>,
    pub(super) interval: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) allow_private_network: bool,
    // issue 20: request settings (`config::request`)
    pub(super) headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub(super) cookie_env: Option<Spanned<String>>,
    pub(super) cookie_file: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) token_env: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
    pub(super) proxy: Option<Spanned<String>>,
    pub(super) proxy_password_env: Option<Spanned<String>>,
    pub(super) proxy_password_file: Option<Spanned<String>>,
    pub(super) full_text: Option<Spanned<toml::Value>>,
    pub(super) full_text_min_words: Option<Spanned<usize>>,
    /// issue 20: `websub = false` keeps a feed polled even when its hub could push it.
    pub(super) websub: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) method: Spanned<String>,
    pub(super) from: Spanned<String>,
    // smtp
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) security: Option<Security>,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<HumanDuration>>,
    pub(super) final_reply_timeout: Option<Spanned<HumanDuration>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) helo_name: Option<Spanned<String>>,
    // sendmail
    pub(super) command: Option<String>,
    // file
    pub(super) dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDigest {
    pub(super) name: Spanned<String>,
    pub(super) to: Spanned<Vec<Spanned<String>>>,
    pub(super) subject_prefix: Option<String>,
    pub(super) title: Option<String>,
    pub(super) schedule: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) rules: Option<Spanned<Vec<String>>>,
    pub(super) max_items: Option<Spanned<usize>>,
    pub(super) when_empty: Option<Spanned<WhenEmpty>>,
    pub(super) template_dir: Option<Spanned<String>>,
    pub(super) unsubscribe: Option<Spanned<String>>,
    pub(super) unsubscribe_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    pub(super) name: Spanned<String>,
    pub(super) to: Spanned<Vec<Spanned<String>>>,
    pub(super) subject_prefix: Option<String>,
    pub(super) title: Option<String>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) rules: Option<Spanned<Vec<String>>>,
    pub(super) unsubscribe: Option<Spanned<String>>,
    pub(super) unsubscribe_url: Option<Spanned<String>>,
    pub(super) window: Option<HumanDuration>,
    pub(super) max_per_hour: Option<Spanned<usize>>,
    pub(super) max_items: Option<Spanned<usize>>,
}

/// A duration written like `90s`, `15m`, `48h`, `7d` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::units::parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A size written like `10MB`, `512KB`, `1GB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteSize(pub(super) u64);

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
            Raw::S(s) => crate::units::parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}
