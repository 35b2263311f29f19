//! A WebSub hub on 127.0.0.1 (W3C WebSub §5–8), for the subscriber's tests: it accepts
//! subscription requests (202), verifies intent by calling the callback with a random
//! `hub.challenge` and granting `lease` seconds, keeps the verified subscriptions with their
//! secrets, and distributes a body to them signed with `X-Hub-Signature: sha256=…` (or forged).
//! The packaged candidate (PyPI's flask-websub 0.4.1) needs a Celery app to run its hub (eager
//! mode might do without a broker; not tried), so this follows the spec's message flow itself.
//! It stands for the outside world: it never imports newswatch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use hmac::{Hmac, Mac};

/// One request a subscriber sent the hub, and how its verification went.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: String,
    pub topic: String,
    pub callback: String,
    pub secret: Option<String>,
    pub lease_asked: Option<u64>,
    /// The callback's answer to the verification: its status, and whether it echoed the challenge.
    pub verified: Option<(u16, bool)>,
}

#[derive(Default)]
struct HubState {
    requests: Vec<Request>,
    /// callback → (topic, secret) of verified subscriptions.
    subscribers: HashMap<String, (String, Option<String>)>,
}

struct Shared {
    state: Mutex<HubState>,
    changed: Condvar,
    lease: u64,
    client: reqwest::Client,
}

pub struct Hub {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn lock(m: &Mutex<HubState>) -> MutexGuard<'_, HubState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub that grants every subscription `lease` seconds.
    pub fn start(lease: u64) -> Hub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-hub")
            .enable_all()
            .build()
            .expect("a runtime for the hub");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the hub");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("an address");
        let shared = Arc::new(Shared {
            state: Mutex::new(HubState::default()),
            changed: Condvar::new(),
            lease,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
        });
        let app = Router::new()
            .route("/", post(subscribe))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("join the runtime");
            let _ = axum::serve(listener, app).await;
        });
        Hub {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.state).requests.clone()
    }

    /// Waits until `n` requests of `mode` were verified by their callback (200 and the
    /// challenge echoed), or `limit` passed; whether they were.
    pub fn wait_verified(&self, mode: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut st = lock(&self.shared.state);
        loop {
            let done = st
                .requests
                .iter()
                .filter(|r| r.mode == mode && r.verified == Some((200, true)))
                .count();
            if done >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Distributes `body` to every verified subscriber of `topic`, signed with its secret, or
    /// (`forge`) with a wrong one; the subscribers' statuses.
    pub fn publish(&self, topic: &str, body: &[u8], forge: bool) -> Vec<u16> {
        let targets: Vec<(String, Option<String>)> = lock(&self.shared.state)
            .subscribers
            .iter()
            .filter(|(_, (t, _))| t == topic)
            .map(|(cb, (_, secret))| (cb.clone(), secret.clone()))
            .collect();
        let client = self.shared.client.clone();
        let body = body.to_vec();
        let rt = self.runtime.as_ref().expect("running");
        rt.block_on(async move {
            let mut statuses = Vec::new();
            for (callback, secret) in targets {
                let key = match (&secret, forge) {
                    (_, true) => "not the secret".to_string(),
                    (Some(s), false) => s.clone(),
                    (None, false) => String::new(),
                };
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
                mac.update(&body);
                let hex: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let resp = client
                    .post(&callback)
                    .header("content-type", "application/atom+xml")
                    .header("x-hub-signature", format!("sha256={hex}"))
                    .body(body.clone())
                    .send()
                    .await;
                statuses.push(resp.map_or(0, |r| r.status().as_u16()));
            }
            statuses
        })
    }
}

/// `POST /` with `hub.mode`, `hub.topic`, `hub.callback` (and `hub.secret`, `hub.lease_seconds`):
/// 202 at once, then the verification of intent on the hub's runtime (WebSub §5.3).
async fn subscribe(State(hub): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (Some(mode), Some(topic), Some(callback)) = (
        form.get("hub.mode").cloned(),
        form.get("hub.topic").cloned(),
        form.get("hub.callback").cloned(),
    ) else {
        return StatusCode::BAD_REQUEST;
    };
    if mode != "subscribe" && mode != "unsubscribe" {
        return StatusCode::BAD_REQUEST;
    }
    let secret = form.get("hub.secret").cloned();
    let index = {
        let mut st = lock(&hub.state);
        st.requests.push(Request {
            mode: mode.clone(),
            topic: topic.clone(),
            callback: callback.clone(),
            secret: secret.clone(),
            lease_asked: form.get("hub.lease_seconds").and_then(|s| s.parse().ok()),
            verified: None,
        });
        st.requests.len() - 1
    };
    tokio::spawn(async move {
        let mut challenge = [0u8; 16];
        getrandom::getrandom(&mut challenge).expect("randomness");
        let challenge: String = challenge.iter().map(|b| format!("{b:02x}")).collect();
        let mut url = url::Url::parse(&callback).expect("a callback URL");
        url.query_pairs_mut()
            .append_pair("hub.mode", &mode)
            .append_pair("hub.topic", &topic)
            .append_pair("hub.challenge", &challenge)
            .append_pair("hub.lease_seconds", &hub.lease.to_string());
        let answer = match hub.client.get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, text == challenge)
            }
            Err(_) => (0, false),
        };
        let mut st = lock(&hub.state);
        if answer == (200, true) {
            if mode == "subscribe" {
                st.subscribers.insert(callback, (topic, secret));
            } else {
                st.subscribers.remove(&callback);
            }
        }
        st.requests[index].verified = Some(answer);
        hub.changed.notify_all();
    });
    StatusCode::ACCEPTED
}
