//! A channel receiver: HTTP/1.1 over a loopback `TcpListener` on a runtime thread of its own,
//! standing for webhook consumers, Slack, Mattermost, Discord, Teams, Google Chat, ntfy and
//! Telegram. Each path is told which service it plays; the receiver checks each request's shape
//! and size limit as that service documents it, verifies a webhook's HMAC-SHA256 signature,
//! counts idempotency keys (a key seen again is answered 200 and not processed twice), and plays
//! scripted faults: 500, 429 with Retry-After, 400, a hang, a reset. It never imports newswatch.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a path plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A webhook consumer holding this HMAC secret (`None`: no signature expected).
    Webhook(Option<String>),
    Slack,
    Mattermost,
    Discord,
    Teams,
    GoogleChat,
    /// ntfy's JSON publishing (POST to the server's root).
    Ntfy,
    /// Telegram's Bot API for this bot token (`/bot<token>/sendMessage`).
    Telegram(String),
}

/// A scripted answer for the next request on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// Read the request, never answer (the connection stays open until the client leaves).
    Hang,
    /// Read the request, then reset the connection.
    Reset,
    /// Process the request (its key counts as done), then never answer: the window in which a
    /// sender killed now cannot know the message arrived.
    ProcessThenHang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver did: `processed`, `duplicate`, a fault, or a refusal with its reason.
    pub verdict: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    services: HashMap<String, Service>,
    faults: HashMap<String, VecDeque<Fault>>,
    received: Vec<Received>,
    /// Idempotency key → times processed (never more than once) and times seen.
    keys: HashMap<String, (u32, u32)>,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Notified whenever a request is recorded.
    arrived: Arc<Condvar>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `sha256=<hex>` of `body` under `secret`: what a consumer computes to check a signature.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` is the signature of `body` under `secret` (compared in constant time).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-receiver")
            .enable_all()
            .build()
            .expect("runtime");
        let arrived = Arc::new(Condvar::new());
        let s = Arc::clone(&state);
        let cv = Arc::clone(&arrived);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(Arc::clone(&s), Arc::clone(&cv), stream));
            }
        });
        Receiver {
            addr,
            state,
            arrived,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` plays `service`.
    pub fn serve(&self, path: &str, service: Service) {
        lock(&self.state).services.insert(path.to_string(), service);
    }

    /// The next requests on `path` get these answers, in order; then 200s again.
    pub fn faults(&self, path: &str, faults: &[Fault]) {
        lock(&self.state)
            .faults
            .entry(path.to_string())
            .or_default()
            .extend(faults);
    }

    /// Waits until `path` has received `n` requests or `limit` has passed; whether it has.
    pub fn wait_received(&self, path: &str, n: usize, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut st = lock(&self.state);
        loop {
            if st.received.iter().filter(|r| r.path == path).count() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .arrived
                .wait_timeout(st, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        lock(&self.state)
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The requests processed (answered 2xx the first time their key came).
    pub fn processed(&self, path: &str) -> Vec<Received> {
        self.received(path)
            .into_iter()
            .filter(|r| r.verdict == "processed")
            .collect()
    }

    /// Requests refused for their shape, size or signature, with the reason: none is expected.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state)
            .received
            .iter()
            .filter(|r| r.verdict.starts_with("refused"))
            .map(|r| {
                format!(
                    "{} {}: {}",
                    r.path,
                    r.verdict,
                    String::from_utf8_lossy(&r.body)
                )
            })
            .collect()
    }

    /// Each idempotency key: (times processed, times seen).
    pub fn keys(&self) -> HashMap<String, (u32, u32)> {
        lock(&self.state).keys.clone()
    }
}

async fn handle(state: Arc<Mutex<State>>, arrived: Arc<Condvar>, mut stream: TcpStream) {
    loop {
        let Some((method, path, headers, body)) = read_request(&mut stream).await else {
            return;
        };
        let (service, fault) = {
            let mut st = lock(&state);
            let service = st.services.get(&path).cloned();
            let fault = st.faults.get_mut(&path).and_then(VecDeque::pop_front);
            (service, fault)
        };
        let mut rec = Received {
            method,
            path,
            headers,
            body,
            verdict: String::new(),
        };
        let answer: Option<Answer> = match (fault, &service) {
            (Some(Fault::Hang), _) => {
                rec.verdict = "hang".into();
                lock(&state).received.push(rec);
                arrived.notify_all();
                // Keep the connection open until the client gives up.
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            (Some(Fault::Reset), _) => {
                rec.verdict = "reset".into();
                lock(&state).received.push(rec);
                arrived.notify_all();
                // SO_LINGER 0: the close sends RST (tokio deprecates it for blocking on drop
                // with unsent data; nothing is unsent here).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            (Some(Fault::Status(code)), _) => {
                rec.verdict = format!("fault {code}");
                Some((
                    code,
                    Vec::new(),
                    format!("{{\"error\":\"injected {code}\"}}"),
                ))
            }
            (Some(Fault::TooMany(secs)), _) => {
                rec.verdict = "fault 429".into();
                Some((
                    429,
                    vec![("Retry-After", secs.to_string())],
                    "slow down".into(),
                ))
            }
            (Some(Fault::ProcessThenHang), _) => {
                let key = rec
                    .headers
                    .get("idempotency-key")
                    .cloned()
                    .unwrap_or_default();
                {
                    let mut st = lock(&state);
                    let e = st.keys.entry(key).or_default();
                    e.1 += 1;
                    rec.verdict = if e.0 == 0 {
                        e.0 = 1;
                        "processed, then hung".into()
                    } else {
                        "duplicate, then hung".into()
                    };
                    st.received.push(rec);
                }
                arrived.notify_all();
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            (None, None) => {
                rec.verdict = "refused: no service on this path".into();
                Some((404, Vec::new(), "no such hook".into()))
            }
            (None, Some(service)) => match check(service, &rec) {
                Err(why) => {
                    rec.verdict = format!("refused: {why}");
                    let code = if why.starts_with("signature") {
                        401
                    } else {
                        400
                    };
                    Some((code, Vec::new(), why))
                }
                Ok(()) => {
                    let key = rec.headers.get("idempotency-key").cloned();
                    let mut st = lock(&state);
                    rec.verdict = match key {
                        Some(k) => {
                            let e = st.keys.entry(k).or_default();
                            e.1 += 1;
                            if e.0 == 0 {
                                e.0 = 1;
                                "processed".into()
                            } else {
                                "duplicate".into()
                            }
                        }
                        None => "processed".into(),
                    };
                    let body = match service {
                        Service::Telegram(_) => r#"{"ok":true,"result":{"message_id":1}}"#,
                        Service::Slack | Service::Discord | Service::GoogleChat => "ok",
                        _ => "{}",
                    };
                    Some((200, Vec::new(), body.to_string()))
                }
            },
        };
        lock(&state).received.push(rec);
        arrived.notify_all();
        if let Some((code, headers, body)) = answer {
            let mut head = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }
}

type Request = (String, String, HashMap<String, String>, Vec<u8>);
/// Status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some((method, path, headers, body))
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn need(ok: bool, why: impl Into<String>) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why.into()) }
}

/// The service's documented shape and limits.
fn check(service: &Service, r: &Received) -> Result<(), String> {
    need(
        r.method == "POST",
        format!("method {} (POST expected)", r.method),
    )?;
    need(
        r.headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "content-type is not application/json",
    )?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("not JSON: {e}"))?;
    match service {
        Service::Webhook(secret) => {
            if let Some(secret) = secret {
                let sig = r
                    .headers
                    .get("x-newswatch-signature")
                    .cloned()
                    .unwrap_or_default();
                need(verify(secret, &r.body, &sig), "signature does not verify")?;
            }
            need(
                r.headers.contains_key("idempotency-key"),
                "no Idempotency-Key",
            )?;
            need(v["version"] == 1, "version is not 1")?;
            need(
                v["event"].is_string() && v["source"].is_string(),
                "no event or source",
            )?;
            need(v["total"].is_u64(), "no total")?;
            let articles = v["articles"].as_array().ok_or("no articles array")?;
            for a in articles {
                need(
                    a["title"].is_string() && a["feed"].is_string() && a["time"].is_string(),
                    "an article lacks title, feed or time",
                )?;
                need(
                    a["terms"].is_array() && a["snippet"].is_string(),
                    "an article lacks terms or snippet",
                )?;
            }
            Ok(())
        }
        Service::Slack => {
            need(chars(&v["text"]) <= 40_000, "text over 40,000 characters")?;
            let blocks = v["blocks"].as_array().ok_or("no blocks")?;
            need(!blocks.is_empty() && blocks.len() <= 50, "blocks: 1 to 50")?;
            for b in blocks {
                match b["type"].as_str() {
                    Some("header") => {
                        need(
                            b["text"]["type"] == "plain_text",
                            "header text not plain_text",
                        )?;
                        need(
                            chars(&b["text"]["text"]) <= 150,
                            "header over 150 characters",
                        )?;
                    }
                    Some("section") => {
                        need(
                            chars(&b["text"]["text"]) <= 3000,
                            "section over 3,000 characters",
                        )?;
                        need(chars(&b["text"]["text"]) > 0, "empty section")?;
                    }
                    other => return Err(format!("unknown block type {other:?}")),
                }
            }
            Ok(())
        }
        Service::Mattermost => {
            let n = chars(&v["text"]);
            need(
                n > 0 && n <= 16_383,
                format!("text of {n} characters (1 to 16,383)"),
            )
        }
        Service::Discord => {
            let n = chars(&v["content"]);
            need(
                n > 0 && n <= 2000,
                format!("content of {n} characters (1 to 2,000)"),
            )?;
            need(
                v["allowed_mentions"]["parse"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
                "mentions are not disabled",
            )
        }
        Service::Teams => {
            need(
                r.body.len() <= 28_000,
                format!("{} bytes (28 KB at most)", r.body.len()),
            )?;
            need(v["type"] == "message", "type is not message")?;
            let card = &v["attachments"][0];
            need(
                card["contentType"] == "application/vnd.microsoft.card.adaptive",
                "not an adaptive card",
            )?;
            need(
                card["content"]["type"] == "AdaptiveCard",
                "content is not an AdaptiveCard",
            )?;
            need(
                card["content"]["body"]
                    .as_array()
                    .is_some_and(|b| !b.is_empty()),
                "empty card",
            )
        }
        Service::GoogleChat => {
            let n = chars(&v["text"]);
            need(
                n > 0 && n <= 4096,
                format!("text of {n} characters (1 to 4,096)"),
            )
        }
        Service::Ntfy => {
            need(
                v["topic"].as_str().is_some_and(|t| !t.is_empty()),
                "no topic",
            )?;
            let bytes = v["message"].as_str().map_or(0, str::len);
            need(
                bytes > 0 && bytes <= 4096,
                format!("message of {bytes} bytes (1 to 4,096)"),
            )?;
            need(
                v["priority"].as_u64().is_some_and(|p| (1..=5).contains(&p)),
                "priority not 1-5",
            )?;
            need(v["title"].is_string(), "no title")
        }
        Service::Telegram(_) => {
            need(
                v["chat_id"].is_string() || v["chat_id"].is_i64(),
                "no chat_id",
            )?;
            need(v["parse_mode"] == "HTML", "parse_mode is not HTML")?;
            let n = chars(&v["text"]);
            need(
                n > 0 && n <= 4096,
                format!("text of {n} characters (1 to 4,096)"),
            )
        }
    }
}
