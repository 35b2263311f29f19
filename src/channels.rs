//! Chat, push and webhook channels: the stored message (`payload`), each service's request
//! (`render`, pure), and one attempt classified like an email's: 2xx sent; 5xx, 408, 429 (with
//! its `Retry-After`) and network errors retried; any other 4xx failed for good. Sending goes
//! through `fetch::post`, the outbox row is the caller's. Never logs a URL, token or secret.

pub mod payload;
pub mod render;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ChannelConfig;
use crate::fetch::post::{PostResponse, Poster};
use crate::model::ChannelMessage;

/// The longest `Retry-After` honoured: a service asking for more is tried again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOutcome {
    Sent,
    /// Try again: after `after` when the service said when (429/503 `Retry-After`).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Never sent as it is: kept, reported.
    Failed(String),
}

/// The configured channels and one HTTP client for all of them.
#[derive(Debug)]
pub struct Channels {
    poster: Poster,
    configs: Vec<ChannelConfig>,
}

impl Channels {
    pub fn new(configs: &[ChannelConfig], user_agent: &str) -> Channels {
        Channels {
            poster: Poster::new(user_agent),
            configs: configs.to_vec(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ChannelConfig> {
        self.configs.iter().find(|c| c.name == name)
    }

    pub fn configs(&self) -> &[ChannelConfig] {
        &self.configs
    }

    /// The longest one delivery pass can spend on channels whose services answer within their
    /// deadlines or not at all: one attempt's `timeout` per channel (a channel that deferred a
    /// message is not tried again in that pass). The daemon's health counts a pass within this
    /// as progress.
    pub fn longest_pass(&self) -> std::time::Duration {
        self.configs.iter().map(|c| c.timeout).sum()
    }

    /// One attempt at `msg` through `cfg`.
    pub async fn send(
        &self,
        cfg: &ChannelConfig,
        msg: &ChannelMessage,
        now: DateTime<Utc>,
    ) -> ChannelOutcome {
        let req = match render::request(cfg, &msg.payload, &msg.key) {
            Ok(r) => r,
            Err(e) => return ChannelOutcome::Failed(e),
        };
        let put = req.method == render::Method::Put;
        match self
            .poster
            .send(put, &req.url, &req.headers, req.body, cfg.timeout)
            .await
        {
            Ok(resp) => classify(&resp, now),
            Err(e) => ChannelOutcome::Retry {
                error: e.to_string(),
                after: None,
            },
        }
    }
}

/// What an answer means (see the module header). The error names the status and the start of
/// the service's explanation.
pub fn classify(resp: &PostResponse, now: DateTime<Utc>) -> ChannelOutcome {
    let status = resp.status;
    if (200..300).contains(&status) {
        return ChannelOutcome::Sent;
    }
    let said = crate::digest::email_safety::clean_line(&resp.body, 200);
    let error = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {said}")
    };
    if status == 429 || status == 408 || status >= 500 {
        let after = resp
            .retry_after
            .as_deref()
            .and_then(|v| retry_after(v, now))
            .or_else(|| retry_after_in_body(&resp.body));
        ChannelOutcome::Retry { error, after }
    } else {
        // 3xx (redirects are not followed for a POST) and 4xx: the same request cannot succeed.
        ChannelOutcome::Failed(error)
    }
}

/// A `Retry-After` value (seconds or an HTTP date), capped at `MAX_RETRY_AFTER`.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Telegram (`parameters.retry_after`, seconds) and Matrix (`retry_after_ms`) say it in the body.
fn retry_after_in_body(body: &str) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    if let Some(ms) = v.get("retry_after_ms").and_then(serde_json::Value::as_u64) {
        return Some(Duration::from_millis(ms).min(MAX_RETRY_AFTER));
    }
    v.pointer("/parameters/retry_after")
        .and_then(serde_json::Value::as_u64)
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, retry: Option<&str>, body: &str) -> PostResponse {
        PostResponse {
            status,
            retry_after: retry.map(str::to_string),
            body: body.to_string(),
        }
    }

    #[test]
    fn answers_are_classified() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
        let date = httpdate::fmt_http_date((now + chrono::Duration::seconds(90)).into());
        let retry = |after: Option<u64>| (true, after.map(Duration::from_secs));
        // (status, Retry-After, body, (retried?, after))
        type Case<'a> = (u16, Option<&'a str>, &'a str, (bool, Option<Duration>));
        let cases: [Case<'_>; 12] = [
            (200, None, "", (false, None)),
            (204, None, "", (false, None)),
            (500, None, "", retry(None)),
            (503, Some("30"), "", retry(Some(30))),
            (429, Some("7"), "", retry(Some(7))),
            (429, Some(&date), "", retry(Some(90))),
            (429, Some("99999999"), "", retry(Some(6 * 3600))),
            (
                429,
                None,
                r#"{"ok":false,"parameters":{"retry_after":12}}"#,
                retry(Some(12)),
            ),
            (
                429,
                None,
                r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}"#,
                (true, Some(Duration::from_millis(1500))),
            ),
            (408, None, "", retry(None)),
            (400, None, "invalid_payload", (false, None)),
            (404, None, "no_team", (false, None)),
        ];
        for (status, ra, body, (retried, after)) in cases {
            let got = classify(&resp(status, ra, body), now);
            match got {
                ChannelOutcome::Sent => assert!(status < 300 && !retried, "{status}"),
                ChannelOutcome::Retry { after: a, error } => {
                    assert!(retried, "{status} retried");
                    assert_eq!(a, after, "{status} {ra:?}");
                    assert!(error.starts_with(&format!("HTTP {status}")), "{error}");
                }
                ChannelOutcome::Failed(e) => {
                    assert!(!retried && status >= 300, "{status} failed: {e}");
                    assert!(e.contains(body), "{e}");
                }
            }
        }
    }
}
