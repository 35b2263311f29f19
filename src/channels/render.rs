//! Each service's request from a stored payload: the URL, headers and body a `webhook`, Slack,
//! Mattermost, Discord, Teams, Google Chat, ntfy, Telegram or Matrix endpoint expects, with the
//! articles that fit the service's size limit and the rest counted ("… and 12 more"). Pure: the
//! secrets come in through the config and go out only in the request, never in an error.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;
use url::Url;

use super::payload::{Event, Payload, PayloadArticle};
use crate::config::{ChannelConfig, ChannelKind};

/// Size limits, in characters unless named bytes, as each service documents them.
pub mod limits {
    /// Slack: a section block's text, a header block's text, blocks per message.
    pub const SLACK_SECTION: usize = 3000;
    pub const SLACK_HEADER: usize = 150;
    pub const SLACK_BLOCKS: usize = 50;
    /// Mattermost: a post's message (16,383 runes).
    pub const MATTERMOST_TEXT: usize = 16_383;
    /// Discord: a message's `content`.
    pub const DISCORD_CONTENT: usize = 2000;
    /// Teams (incoming webhook / workflow): the whole request, bytes.
    pub const TEAMS_BYTES: usize = 28_000;
    /// Google Chat: a text message.
    pub const GOOGLE_CHAT_TEXT: usize = 4096;
    /// ntfy: a message body, bytes (longer ones become attachments).
    pub const NTFY_MESSAGE_BYTES: usize = 4096;
    /// Telegram: `sendMessage` text after entity parsing.
    pub const TELEGRAM_TEXT: usize = 4096;
    /// Matrix: an event is at most 65,536 bytes; the plain and HTML bodies share it.
    pub const MATRIX_BODY_BYTES: usize = 28_000;
}

/// HTTP method of a channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

/// One request, ready to send. Its URL and headers may hold secrets: never log them.
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The header carrying the webhook's HMAC-SHA256 of the body: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Newswatch-Signature";
/// The header carrying the message's idempotency key (the same on every retry).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The request channel `cfg` sends for the stored `payload` (JSON) under idempotency `key`.
/// An error means the stored message can never be sent (not JSON, a URL the service cannot
/// take): permanent.
pub fn request(cfg: &ChannelConfig, payload: &str, key: &str) -> Result<Request, String> {
    let p: Payload = serde_json::from_str(payload)
        .map_err(|e| format!("the stored message is not a valid payload: {e}"))?;
    let url = cfg.url.expose().clone();
    let json_body = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        (IDEMPOTENCY_HEADER, key.to_string()),
    ];
    let (method, url, body) = match cfg.kind {
        ChannelKind::Webhook => {
            let body = payload.as_bytes().to_vec();
            if let Some(secret) = &cfg.secret {
                headers.push((
                    SIGNATURE_HEADER,
                    signature(secret.expose_secret().as_bytes(), &body),
                ));
            }
            headers.push(("X-Newswatch-Event", p.event.as_str().to_string()));
            (Method::Post, url, body)
        }
        ChannelKind::Slack => (Method::Post, url, json_body(slack(&p))),
        ChannelKind::Mattermost => (Method::Post, url, json_body(mattermost(&p))),
        ChannelKind::Discord => (Method::Post, url, json_body(discord(&p))),
        ChannelKind::Teams => (Method::Post, url, json_body(teams(&p))),
        ChannelKind::GoogleChat => (Method::Post, url, json_body(google_chat(&p))),
        ChannelKind::Ntfy => {
            let (root, body) = ntfy(cfg, &p)?;
            if let Some(token) = &cfg.token {
                headers.push(("Authorization", format!("Bearer {}", token.expose_secret())));
            }
            (Method::Post, root, json_body(body))
        }
        ChannelKind::Telegram => {
            let chat = cfg.chat_id.clone().unwrap_or_default();
            let token = cfg
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string())
                .unwrap_or_default();
            let url = join(&url, &[&format!("bot{token}"), "sendMessage"])?;
            (Method::Post, url, json_body(telegram(&p, &chat)))
        }
        ChannelKind::Matrix => {
            let room = cfg.room.clone().unwrap_or_default();
            let url = join(
                &url,
                &[
                    "_matrix",
                    "client",
                    "v3",
                    "rooms",
                    &room,
                    "send",
                    "m.room.message",
                    key,
                ],
            )?;
            if let Some(token) = &cfg.token {
                headers.push(("Authorization", format!("Bearer {}", token.expose_secret())));
            }
            (Method::Put, url, json_body(matrix(&p)))
        }
    };
    Ok(Request {
        method,
        url,
        headers,
        body,
    })
}

/// `base` with `segments` appended as path segments (each percent-encoded).
fn join(base: &Url, segments: &[&str]) -> Result<Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| "the channel URL cannot take a path".to_string())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `max` characters, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if chars(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The head, then as many items as fit in `limit` (measured by `size`), then "… and N more"
/// for the rest of `total`. The head alone is cut to fit.
fn fit(
    head: &str,
    items: &[String],
    total: usize,
    limit: usize,
    size: fn(&str) -> usize,
    sep: &str,
) -> String {
    // Room kept for the "more" line, whatever N is.
    const MORE_ROOM: usize = 40;
    let mut out = cut(head, limit.saturating_sub(MORE_ROOM));
    let mut shown = 0;
    for item in items {
        let next = format!("{out}{sep}{item}");
        if size(&next) + MORE_ROOM > limit {
            break;
        }
        out = next;
        shown += 1;
    }
    if total > shown {
        out.push_str(&format!("{sep}… and {} more", total - shown));
    }
    out
}

fn bytes(s: &str) -> usize {
    s.len()
}

fn headline_count(p: &Payload) -> String {
    match p.event {
        Event::Test => "This is a test message from newswatch.".to_string(),
        _ => format!("{} article{}", p.total, if p.total == 1 { "" } else { "s" }),
    }
}

/// Slack mrkdwn (and Google Chat) escape only these three.
fn esc_angle(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn esc_html(s: &str) -> String {
    esc_angle(s).replace('"', "&quot;")
}

/// Markdown's active characters escaped (Mattermost, Discord, Teams, ntfy).
fn esc_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '~' | '`' | '>' | '#' | '|' | '<'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A link target that cannot end a Markdown link early.
fn md_url(u: &str) -> String {
    u.replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20")
        .replace('>', "%3E")
}

fn angle_link(a: &PayloadArticle) -> String {
    match &a.link {
        Some(l) => format!(
            "<{}|{}>",
            esc_angle(l).replace('|', "%7C"),
            esc_angle(&a.title)
        ),
        None => esc_angle(&a.title),
    }
}

fn md_link(a: &PayloadArticle, wrap: bool) -> String {
    match &a.link {
        // Discord previews every bare link; `<url>` keeps a list of ten readable.
        Some(l) if wrap => format!("[{}](<{}>)", esc_md(&a.title), md_url(l)),
        Some(l) => format!("[{}]({})", esc_md(&a.title), md_url(l)),
        None => esc_md(&a.title),
    }
}

fn slack(p: &Payload) -> Value {
    let items: Vec<String> = p
        .articles
        .iter()
        .map(|a| {
            format!(
                "• *{}* — {}, {}\n{}",
                angle_link(a),
                esc_angle(&a.feed),
                when(a.time),
                esc_angle(&cut(&a.snippet, 300))
            )
        })
        .collect();
    let section = fit(
        &headline_count(p),
        &items,
        p.total,
        limits::SLACK_SECTION,
        chars,
        "\n",
    );
    json!({
        "text": cut(&esc_angle(&p.title), limits::SLACK_SECTION),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&p.title, limits::SLACK_HEADER)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
        ],
    })
}

fn md_items(p: &Payload, wrap: bool, snippet: usize) -> Vec<String> {
    p.articles
        .iter()
        .map(|a| {
            let mut s = format!(
                "- **{}** — {}, {}",
                md_link(a, wrap),
                esc_md(&a.feed),
                when(a.time)
            );
            if snippet > 0 && !a.snippet.is_empty() {
                s.push_str(&format!("\n  {}", esc_md(&cut(&a.snippet, snippet))));
            }
            s
        })
        .collect()
}

fn mattermost(p: &Payload) -> Value {
    let head = format!("#### {}\n{}", esc_md(&p.title), headline_count(p));
    let text = fit(
        &head,
        &md_items(p, false, 300),
        p.total,
        limits::MATTERMOST_TEXT,
        chars,
        "\n",
    );
    json!({"text": text})
}

fn discord(p: &Payload) -> Value {
    let head = format!("**{}**\n{}", esc_md(&p.title), headline_count(p));
    let content = fit(
        &head,
        &md_items(p, true, 0),
        p.total,
        limits::DISCORD_CONTENT,
        chars,
        "\n",
    );
    // A headline's "@everyone" must never ping a server.
    json!({"content": content, "allowed_mentions": {"parse": []}})
}

fn teams(p: &Payload) -> Value {
    let items = md_items(p, false, 300);
    // The card's JSON adds escapes and structure: the text gets a generous share of the limit.
    let text = fit(
        &headline_count(p),
        &items,
        p.total,
        limits::TEAMS_BYTES - 4000,
        bytes,
        "\n\n",
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": esc_md(&p.title), "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": text, "wrap": true},
                ],
            },
        }],
    })
}

fn google_chat(p: &Payload) -> Value {
    let items: Vec<String> = p
        .articles
        .iter()
        .map(|a| {
            format!(
                "• *{}* — {}, {}",
                angle_link(a),
                esc_angle(&a.feed),
                when(a.time)
            )
        })
        .collect();
    let head = format!("*{}*\n{}", esc_angle(&p.title), headline_count(p));
    json!({"text": fit(&head, &items, p.total, limits::GOOGLE_CHAT_TEXT, chars, "\n")})
}

/// ntfy's JSON publishing: POST to the server's root with the topic in the body (the URL's last
/// path segment), so titles need no header encoding.
fn ntfy(cfg: &ChannelConfig, p: &Payload) -> Result<(Url, Value), String> {
    let url = cfg.url.expose();
    let topic = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|t| !t.is_empty())
        .ok_or("the ntfy url names no topic: expected https://ntfy.example/TOPIC")?
        .to_string();
    let mut root = url.clone();
    if let Ok(mut segs) = root.path_segments_mut() {
        segs.pop();
    }
    let items: Vec<String> = p
        .articles
        .iter()
        .map(|a| format!("• {} ({})", a.title, a.feed))
        .collect();
    let message = fit(
        &headline_count(p),
        &items,
        p.total,
        limits::NTFY_MESSAGE_BYTES,
        bytes,
        "\n",
    );
    let priority = cfg.priority.unwrap_or(match p.event {
        Event::Alert | Event::Spike => 4,
        Event::Digest | Event::Test => 3,
    });
    let mut body = json!({
        "topic": topic,
        "title": cut(&p.title, 250),
        "message": message,
        "priority": priority,
        "tags": cfg.tags,
    });
    if let Some(link) = p.articles.first().and_then(|a| a.link.clone()) {
        body["click"] = Value::String(link);
    }
    Ok((root, body))
}

fn html_items(p: &Payload) -> Vec<String> {
    p.articles
        .iter()
        .map(|a| {
            let title = match &a.link {
                Some(l) => format!("<a href=\"{}\">{}</a>", esc_html(l), esc_html(&a.title)),
                None => esc_html(&a.title),
            };
            format!("• <b>{title}</b> — {}, {}", esc_html(&a.feed), when(a.time))
        })
        .collect()
}

fn telegram(p: &Payload, chat: &str) -> Value {
    let head = format!("<b>{}</b>\n{}", esc_html(&p.title), headline_count(p));
    let text = fit(
        &head,
        &html_items(p),
        p.total,
        limits::TELEGRAM_TEXT,
        chars,
        "\n",
    );
    json!({
        "chat_id": chat,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    })
}

fn matrix(p: &Payload) -> Value {
    let plain_items: Vec<String> = p
        .articles
        .iter()
        .map(|a| {
            let link = a.link.as_deref().unwrap_or("");
            format!("• {} — {}, {} {link}", a.title, a.feed, when(a.time))
        })
        .collect();
    let head = format!("{}\n{}", p.title, headline_count(p));
    let body = fit(
        &head,
        &plain_items,
        p.total,
        limits::MATRIX_BODY_BYTES,
        bytes,
        "\n",
    );
    let html_head = format!("<b>{}</b><br>{}", esc_html(&p.title), headline_count(p));
    let html = fit(
        &html_head,
        &html_items(p),
        p.total,
        limits::MATRIX_BODY_BYTES,
        bytes,
        "<br>",
    );
    let msgtype = match p.event {
        Event::Digest => "m.notice",
        _ => "m.text",
    };
    json!({
        "msgtype": msgtype,
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    })
}

#[cfg(test)]
mod tests;
