//! Each service's request for one sample alert, as snapshots (docs/channels.md shows them), and
//! the size cut: a long digest fits every limit and counts the rest.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::*;
use crate::channels::payload::{Event, PAYLOAD_VERSION, Payload, PayloadArticle};
use crate::config::{ChannelConfig, ChannelKind, SecretUrl};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn article(i: usize) -> PayloadArticle {
    PayloadArticle {
        rule: "hegseth".into(),
        rule_title: "Healey–Hegseth talks".into(),
        title: format!("Hegseth hosts Healey at Pentagon for talks on Ukraine <{i}> & NATO"),
        link: Some(format!("https://kyiv-ledger.example/news/{i}")),
        feed: "kyiv-ledger".into(),
        time: at("2026-03-02T09:15:00Z"),
        snippet: "The two defence secretaries discussed a US backstop for a European force.".into(),
        terms: vec!["Hegseth".into(), "Healey".into()],
    }
}

fn payload(n: usize, event: Event) -> Payload {
    Payload {
        version: PAYLOAD_VERSION,
        event,
        source: "duty".into(),
        title: "[alert] Hegseth hosts Healey at Pentagon (+1 more)".into(),
        created: at("2026-03-02T09:16:00Z"),
        total: n,
        articles: (0..n.min(50)).map(article).collect(),
        spike: None,
    }
}

fn channel(kind: ChannelKind, url: &str) -> ChannelConfig {
    ChannelConfig {
        name: kind.as_str().into(),
        kind,
        url: SecretUrl::parse_for_tests(url),
        secret: (kind == ChannelKind::Webhook).then(|| SecretString::from("s3cret")),
        token: matches!(kind, ChannelKind::Matrix | ChannelKind::Telegram)
            .then(|| SecretString::from("TOKEN")),
        room: Some("!room:example.org".into()),
        chat_id: Some("-1001".into()),
        priority: None,
        tags: vec!["rotating_light".into()],
        timeout: ChannelConfig::DEFAULT_TIMEOUT,
        secret_files: Vec::new(),
    }
}

fn url_of(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Ntfy => "https://ntfy.example/newswatch-alerts",
        ChannelKind::Telegram => "https://api.telegram.org",
        ChannelKind::Matrix => "https://matrix.example.org",
        _ => "https://hooks.example/T0/B0/XYZ",
    }
}

#[test]
fn every_service_request_for_one_alert() {
    let p = payload(2, Event::Alert).to_json();
    for kind in ChannelKind::ALL {
        let req =
            request(&channel(kind, url_of(kind)), &p, "newswatch-1772442960-7").expect("renders");
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON body");
        let headers: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        insta::assert_snapshot!(
            kind.as_str(),
            format!(
                "{:?} {}\n{}\n\n{:#}",
                req.method,
                req.url,
                headers.join("\n"),
                body
            )
        );
    }
}

#[test]
fn a_long_digest_fits_each_limit_and_counts_the_rest() {
    let p = payload(400, Event::Digest).to_json();
    // (kind, the text that must fit, its limit, counted in characters (else bytes))
    let text = |kind: ChannelKind| -> (String, usize, bool) {
        let req = request(&channel(kind, url_of(kind)), &p, "k").expect("renders");
        let v: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        match kind {
            ChannelKind::Slack => (
                s(&v["blocks"][1]["text"]["text"]),
                limits::SLACK_SECTION,
                true,
            ),
            ChannelKind::Mattermost => (s(&v["text"]), limits::MATTERMOST_TEXT, true),
            ChannelKind::Discord => (s(&v["content"]), limits::DISCORD_CONTENT, true),
            ChannelKind::Teams => (
                String::from_utf8_lossy(&req.body).into_owned(),
                limits::TEAMS_BYTES,
                false,
            ),
            ChannelKind::GoogleChat => (s(&v["text"]), limits::GOOGLE_CHAT_TEXT, true),
            ChannelKind::Ntfy => (s(&v["message"]), limits::NTFY_MESSAGE_BYTES, false),
            ChannelKind::Telegram => (s(&v["text"]), limits::TELEGRAM_TEXT, true),
            ChannelKind::Matrix => (s(&v["formatted_body"]), limits::MATRIX_BODY_BYTES, false),
            ChannelKind::Webhook => (String::new(), 0, false),
        }
    };
    for kind in ChannelKind::ALL {
        if kind == ChannelKind::Webhook {
            continue;
        }
        let (t, limit, in_chars) = text(kind);
        let size = if in_chars { t.chars().count() } else { t.len() };
        assert!(size <= limit, "{kind:?}: {size} > {limit}");
        if kind != ChannelKind::Teams {
            assert!(t.contains("more"), "{kind:?} counts the rest");
        }
        // At least a few articles made it in before the cut.
        assert!(t.matches("kyiv-ledger").count() >= 3, "{kind:?}: {t}");
    }
}

#[test]
fn the_signature_is_hmac_sha256_of_the_body() {
    // RFC 4231 test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn markup_in_headlines_stays_text() {
    let cases = [
        (
            "*bold* _it_ [x](y) <b>",
            r"\*bold\* \_it\_ \[x\]\(y\) \<b\>",
        ),
        ("a # b | c ` d", r"a \# b \| c \` d"),
    ];
    for (raw, want) in cases {
        assert_eq!(esc_md(raw), want, "{raw}");
    }
    assert_eq!(
        esc_html("<a href=\"x\">&"),
        "&lt;a href=&quot;x&quot;&gt;&amp;"
    );
    assert_eq!(
        md_url("https://e.example/a (1)"),
        "https://e.example/a%20%281%29"
    );
}
