//! The one HTTP test server: HTTP/1.1 written byte by byte over a loopback `TcpListener`, on a
//! runtime thread of its own (so sync tests, async tests and child processes can all use it).
//! It serves documents a test sets (ETag, Last-Modified, 304), a feed that grows on every poll,
//! and the misbehaving endpoints of `hostile`; it records what it saw and how each response
//! ended. It stands for the outside world: it never imports newswatch.

mod hostile;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use hostile::{DRIP_LENGTH, FEED_ETAG, FIREHOSE_ITEMS, FLOOD_ITEMS, SLOW_HEAD};

/// Where the growing feed is served: every 200 answer first appends one matching item.
pub const GROWING: &str = "/growing.rss";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// When its head had arrived.
    pub at: std::time::Instant,
}

/// What the server answered, for assertions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: usize,
    /// Requests that carried If-None-Match or If-Modified-Since.
    pub conditional: usize,
    pub not_modified: usize,
}

/// A response the client walked away from: how many bytes of it (head and body) the server had
/// written when it noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub bytes_sent: usize,
}

/// A served document.
#[derive(Clone)]
struct Doc {
    body: Vec<u8>,
    etag: String,
    last_modified: String,
    content_type: &'static str,
    /// Headers a request must carry (name lower-cased, exact value), else 401.
    required: Vec<(String, String)>,
    /// A `Link` header to answer with (WebSub discovery by header).
    link: Option<String>,
}

/// The `/paired` endpoint's bookkeeping: requests in flight now and at most.
#[derive(Default)]
struct Pairs {
    arrived: u64,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Default)]
struct Shared {
    /// Port of the "internal" server that redirect-to-loopback cases point at.
    internal_port: u16,
    seen: Mutex<Vec<Seen>>,
    counts: Mutex<Counts>,
    /// Requests per path, counting the current one.
    hits: Mutex<HashMap<String, u32>>,
    docs: Mutex<HashMap<String, Doc>>,
    revision: AtomicUsize,
    grown: AtomicUsize,
    frozen: AtomicBool,
    /// While set, every request is recorded and then left waiting for its answer.
    held: AtomicBool,
    cuts: Mutex<HashMap<String, Cut>>,
    pairs: Mutex<Pairs>,
    /// How long every request waits before its answer (ms; `slow`).
    delay_ms: std::sync::atomic::AtomicU64,
    /// Requests between their head's arrival and the start of their answer: (now, at most).
    flight: Mutex<(usize, usize)>,
    /// Wakes whoever waits for a cut or a pair.
    changed: Notify,
}

/// Locks a test server's state. A panic while holding it was already a failure; the data is
/// still usable for the report.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not `drop(runtime)`: that blocks, and panics inside an async test.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl TestServer {
    /// A server on 127.0.0.1.
    pub fn start() -> TestServer {
        TestServer::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }

    /// A server on `ip:0` whose redirect-to-internal endpoints point at `internal_port`.
    pub fn start_on(ip: IpAddr, internal_port: u16) -> TestServer {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind a loopback address");
        listener
            .set_nonblocking(true)
            .expect("a listening socket can be made non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let shared = Arc::new(Shared {
            internal_port,
            ..Shared::default()
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-http")
            .enable_all()
            .build()
            .expect("a runtime for the test server");
        let s = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .expect("the listener joins the server's runtime");
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Arc::clone(&s).handle(stream));
            }
        });
        TestServer {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{path}", self.addr))
            .expect("an address and a path make a URL")
    }

    /// Serves `body` at `path` from now on, with a new ETag and Last-Modified.
    pub fn set(&self, path: &str, body: Vec<u8>) {
        self.set_protected(path, body, &[]);
    }

    /// Like [`TestServer::set`], but a request without every `required` header (name, exact
    /// value) is answered 401 Unauthorized.
    pub fn set_protected(&self, path: &str, body: Vec<u8>, required: &[(&str, &str)]) {
        let revision = self.shared.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..16]);
        let content_type = if path.ends_with(".json") {
            "application/feed+json"
        } else if path.ends_with(".atom") {
            "application/atom+xml"
        } else {
            "application/rss+xml"
        };
        let doc = Doc {
            body,
            etag,
            last_modified: format!("Mon, 0{} Mar 2025 10:00:00 GMT", revision % 9 + 1),
            content_type,
            required: required
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string()))
                .collect(),
            link: None,
        };
        lock(&self.shared.docs).insert(path.to_string(), doc);
    }

    /// Like [`TestServer::set`], answered with the header `Link: {link}`.
    pub fn set_linked(&self, path: &str, body: Vec<u8>, link: &str) {
        self.set(path, body);
        if let Some(doc) = lock(&self.shared.docs).get_mut(path) {
            doc.link = Some(link.to_string());
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    pub fn counts(&self) -> Counts {
        *lock(&self.shared.counts)
    }

    /// Items the growing feed lists now.
    pub fn grown(&self) -> usize {
        self.shared.grown.load(Ordering::SeqCst)
    }

    /// Stops the growing feed: later answers list the same items.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Stops the growing feed at its first `items` items.
    pub fn freeze_at(&self, items: usize) {
        self.shared.frozen.store(true, Ordering::SeqCst);
        self.shared.grown.store(items, Ordering::SeqCst);
    }

    /// From now on, every request is recorded and then waits, unanswered, until `answer`.
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Answers the held requests and every later one.
    pub fn answer(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
    }

    /// From now on, every request waits `delay` before its answer (held requests too, after
    /// `answer`).
    pub fn slow(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The most requests, to any path, that were in flight at once: counted from a request's
    /// head arriving to its answer starting, so two counted together did overlap for the
    /// client (neither had its answer yet).
    pub fn max_in_flight(&self) -> usize {
        lock(&self.shared.flight).1
    }

    /// The most `/paired` requests that were in flight at once.
    pub fn max_paired_in_flight(&self) -> usize {
        lock(&self.shared.pairs).max_in_flight
    }

    /// Whether the client has walked away from a response to `path` yet (see `cut_off`).
    pub fn cut(&self, path: &str) -> Option<Cut> {
        lock(&self.shared.cuts).get(path).copied()
    }

    /// Waits until the client has walked away from a response to `path` (the server noticed
    /// the closed connection) and says how much of it had been sent.
    pub async fn cut_off(&self, path: &str) -> Cut {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(cut) = lock(&self.shared.cuts).get(path) {
                return *cut;
            }
            changed.await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Shared {
    async fn handle(self: Arc<Self>, mut stream: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let req = Seen {
            path,
            headers,
            at: std::time::Instant::now(),
        };
        lock(&self.seen).push(req.clone());
        {
            let mut f = lock(&self.flight);
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        while self.held.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // Out of flight before the answer starts: the client cannot have it yet.
        lock(&self.flight).0 -= 1;
        {
            let mut c = lock(&self.counts);
            c.requests += 1;
            if req.headers.contains_key("if-none-match")
                || req.headers.contains_key("if-modified-since")
            {
                c.conditional += 1;
            }
        }
        let n = {
            let mut hits = lock(&self.hits);
            let n = hits.entry(req.path.clone()).or_default();
            *n += 1;
            *n
        };
        let doc = lock(&self.docs).get(&req.path).cloned();
        // A client that gives up mid-response is the expected end of some cases here.
        let _ = match doc {
            Some(doc) => self.document(&req, &doc, &mut stream).await,
            None if req.path == GROWING => self.growing(&mut stream).await,
            None => hostile::respond(&self, &req, n, &mut stream).await,
        };
    }

    /// A document set by the test, with conditional GET (RFC 9110 §13.1.3: If-None-Match wins
    /// over If-Modified-Since when both are sent).
    async fn document(&self, req: &Seen, doc: &Doc, out: &mut TcpStream) -> std::io::Result<()> {
        if doc
            .required
            .iter()
            .any(|(k, v)| req.headers.get(k) != Some(v))
        {
            let challenge = [("WWW-Authenticate", "Basic realm=\"test\"")];
            return hostile::send(out, "401 Unauthorized", &challenge, b"").await;
        }
        let unchanged = match (
            req.headers.get("if-none-match"),
            req.headers.get("if-modified-since"),
        ) {
            (Some(tag), _) => tag.split(',').any(|t| t.trim() == doc.etag),
            (None, Some(date)) => *date == doc.last_modified,
            (None, None) => false,
        };
        if unchanged {
            lock(&self.counts).not_modified += 1;
            return hostile::send(out, "304 Not Modified", &[("ETag", doc.etag.as_str())], b"")
                .await;
        }
        let mut headers = vec![
            ("Content-Type", doc.content_type),
            ("ETag", doc.etag.as_str()),
            ("Last-Modified", doc.last_modified.as_str()),
        ];
        if let Some(link) = &doc.link {
            headers.push(("Link", link.as_str()));
        }
        hostile::send(out, "200 OK", &headers, &doc.body).await
    }

    /// The growing feed: items 1..=n, newest first, each about Hegseth.
    async fn growing(&self, out: &mut TcpStream) -> std::io::Result<()> {
        let n = if self.frozen.load(Ordering::SeqCst) {
            self.grown.load(Ordering::SeqCst)
        } else {
            self.grown.fetch_add(1, Ordering::SeqCst) + 1
        };
        let body = growing_rss(n);
        let headers = [("Content-Type", "application/rss+xml")];
        hostile::send(out, "200 OK", &headers, body.as_bytes()).await
    }

    /// `/paired`: holds a request until the next one (its partner: tickets 0 and 1, 2 and 3, …)
    /// has arrived, so two are in flight together whenever the client allows two. Leaves the
    /// count before answering, so the client cannot start another request before that.
    async fn wait_for_a_partner(&self) {
        let ticket = {
            let mut p = lock(&self.pairs);
            let t = p.arrived;
            p.arrived += 1;
            p.in_flight += 1;
            p.max_in_flight = p.max_in_flight.max(p.in_flight);
            t
        };
        self.changed.notify_waiters();
        let partner = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if lock(&self.pairs).arrived > (ticket | 1) {
                    return;
                }
                changed.await;
            }
        };
        // A client that never sends the partner (a cap of one) is answered all the same.
        let _ = tokio::time::timeout(Duration::from_secs(10), partner).await;
        lock(&self.pairs).in_flight -= 1;
    }

    fn record_cut(&self, path: &str, bytes_sent: usize) {
        lock(&self.cuts).insert(path.to_string(), Cut { bytes_sent });
        self.changed.notify_waiters();
    }
}

/// The title of the growing feed's item `i`.
pub fn growing_title(i: usize) -> String {
    format!("Hegseth briefing #{i:05}")
}

fn growing_rss(n: usize) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Growing</title><link>http://example.org/</link><description>grows</description>",
    );
    for i in (1..=n).rev() {
        s.push_str(&format!(
            "<item><title>{}</title><link>http://example.org/a/{i}</link><guid>urn:grow:{i}</guid><pubDate>Mon, 10 Mar 2025 10:00:00 GMT</pubDate><description>Item {i} about Hegseth.</description></item>",
            growing_title(i)
        ));
    }
    s.push_str("</channel></rss>");
    s
}
