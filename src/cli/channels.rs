//! `newswatch channels test NAME --config F` (one test message through one channel, sent at
//! once, its outcome printed: exit 0 when the service accepted it, 1 otherwise), and the
//! channels part of `status` (each configured channel, its kind, its redacted URL, and its
//! messages by state). Never prints a URL's path, a token or a secret.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Exit, load_config, runtime};
use crate::channels::payload::{Event, PAYLOAD_VERSION, Payload, PayloadArticle};
use crate::channels::{ChannelOutcome, Channels};
use crate::config::Config;
use crate::model::{ChannelCounts, ChannelMessage, OutboxStatus};

/// `channels test`.
pub(super) fn test(name: &str, path: &Path) -> Exit {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(cfg) = config.channels.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "error: no [[channel]] named {name:?} in {} (configured: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return Exit::Usage;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let now = crate::clock::now();
    let channels = Channels::new(&config.channels, &config.user_agent);
    let msg = ChannelMessage {
        id: 0,
        channel: cfg.name.clone(),
        source: "channels test".into(),
        payload: test_payload(now).to_json(),
        key: format!("newswatch-test-{}", now.timestamp_millis()),
        status: OutboxStatus::Queued,
        attempts: 0,
        next_attempt: now,
        last_error: None,
        created: now,
    };
    let target = format!(
        "{} {} ({})",
        cfg.kind.as_str(),
        cfg.name,
        cfg.url.redacted()
    );
    match rt.block_on(channels.send(cfg, &msg, now)) {
        ChannelOutcome::Sent => {
            println!("sent a test message through {target}");
            Exit::Ok
        }
        ChannelOutcome::Retry { error, .. } => {
            eprintln!(
                "error: {target} did not take the test message (a daemon would retry): {error}"
            );
            Exit::Failure
        }
        ChannelOutcome::Failed(error) => {
            eprintln!("error: {target} refused the test message: {error}");
            Exit::Failure
        }
    }
}

/// The test message: one sample article, so every part of a rendering shows.
fn test_payload(now: DateTime<Utc>) -> Payload {
    Payload {
        version: PAYLOAD_VERSION,
        event: Event::Test,
        source: "channels test".into(),
        title: "newswatch test message".into(),
        created: now,
        total: 1,
        articles: vec![PayloadArticle {
            rule: "test".into(),
            rule_title: "Test".into(),
            title: "If you can read this, the channel works".into(),
            link: Some("https://example.org/newswatch-test".into()),
            feed: "newswatch".into(),
            time: now,
            snippet: "Sent by `newswatch channels test`.".into(),
            terms: vec!["test".into()],
        }],
        spike: None,
    }
}

/// One channel in `status`: configured (kind and redacted URL) or only in the database.
#[derive(Debug, Clone)]
pub struct ChannelLine {
    pub name: String,
    /// `None`: the configuration no longer has it (its messages stay).
    pub kind: Option<&'static str>,
    pub url: Option<String>,
    pub counts: ChannelCounts,
}

/// Every configured channel with its counts, then channels only the database still knows.
pub fn channel_lines(config: &Config, counts: &[ChannelCounts]) -> Vec<ChannelLine> {
    let mut out: Vec<ChannelLine> = config
        .channels
        .iter()
        .map(|c| ChannelLine {
            name: c.name.clone(),
            kind: Some(c.kind.as_str()),
            url: Some(c.url.redacted()),
            counts: counts
                .iter()
                .find(|n| n.channel == c.name)
                .cloned()
                .unwrap_or_else(|| ChannelCounts {
                    channel: c.name.clone(),
                    ..ChannelCounts::default()
                }),
        })
        .collect();
    for n in counts {
        if !out.iter().any(|l| l.name == n.channel) {
            out.push(ChannelLine {
                name: n.channel.clone(),
                kind: None,
                url: None,
                counts: n.clone(),
            });
        }
    }
    out
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

pub fn render_text(lines: &[ChannelLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let c = &l.counts.counts;
        let what = match (l.kind, &l.url) {
            (Some(kind), Some(url)) => format!("{kind} {url}"),
            _ => "not configured any more".to_string(),
        };
        let _ = writeln!(
            out,
            "channel {} ({what}): {} queued, {} sent, {} failed; last sent {}",
            l.name,
            c.queued,
            c.sent,
            c.failed,
            when(l.counts.last_sent)
        );
        if let Some(e) = &l.counts.last_error {
            let _ = writeln!(out, "  last error:   {e}");
        }
    }
    out
}

pub fn render_json(lines: &[ChannelLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                let c = &l.counts.counts;
                json!({
                    "name": l.name,
                    "kind": l.kind,
                    "url": l.url,
                    "queued": c.queued,
                    "sent": c.sent,
                    "failed": c.failed,
                    "last_sent": l.counts.last_sent.map(|t| t.to_rfc3339()),
                    "last_error": l.counts.last_error,
                })
            })
            .collect(),
    )
}
