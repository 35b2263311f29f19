//! Real components for the pipeline tests: a small HTTP/1.1 feed server on 127.0.0.1:0 with ETag,
//! Last-Modified and 304 answers, and an SMTP server process (`smtp_sink.py`, aiosmtpd).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A served document.
#[derive(Clone)]
struct Doc {
    body: Vec<u8>,
    etag: String,
    last_modified: String,
    content_type: &'static str,
}

/// What the server saw, for assertions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: usize,
    pub not_modified: usize,
    pub conditional: usize,
}

#[derive(Default)]
struct State {
    docs: HashMap<String, Doc>,
    counts: Counts,
    revision: u32,
}

/// Serves documents by path; `set` replaces one (new ETag and Last-Modified).
pub struct FeedServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FeedServer {
    pub async fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let response = respond(&state, &String::from_utf8_lossy(&buf));
                    let _ = sock.write_all(&response).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FeedServer { port, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, path: &str, body: Vec<u8>) {
        let mut st = self.state.lock().expect("server state");
        st.revision += 1;
        let etag = format!("\"{}\"", hex(&Sha256::digest(&body))[..16].to_owned());
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
            last_modified: format!("Mon, 0{} Mar 2025 10:00:00 GMT", st.revision % 9 + 1),
            content_type,
        };
        st.docs.insert(path.to_string(), doc);
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().expect("server state").counts
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn respond(state: &Mutex<State>, request: &str) -> Vec<u8> {
    let mut lines = request.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut st = state.lock().expect("server state");
    st.counts.requests += 1;
    let Some(doc) = st.docs.get(&path).cloned() else {
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec();
    };
    let inm = headers.get("if-none-match");
    let ims = headers.get("if-modified-since");
    if inm.is_some() || ims.is_some() {
        st.counts.conditional += 1;
    }
    // RFC 9110 §13.1.3: If-None-Match wins over If-Modified-Since when both are sent.
    let unchanged = match (inm, ims) {
        (Some(tag), _) => tag.split(',').any(|t| t.trim() == doc.etag),
        (None, Some(date)) => *date == doc.last_modified,
        (None, None) => false,
    };
    if unchanged {
        st.counts.not_modified += 1;
        return format!(
            "HTTP/1.1 304 Not Modified\r\nETag: {}\r\nConnection: close\r\n\r\n",
            doc.etag
        )
        .into_bytes();
    }
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nETag: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n",
        doc.content_type,
        doc.body.len(),
        doc.etag,
        doc.last_modified
    )
    .into_bytes();
    out.extend_from_slice(&doc.body);
    out
}

/// The interpreter that has Debian's python3-aiosmtpd (a pyenv shim on PATH may not).
pub fn python() -> String {
    std::env::var("NEWSWATCH_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// An `smtp_sink.py` process; killed when dropped.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _stdin: ChildStdin,
}

impl SmtpSink {
    /// Starts the sink storing messages in `dir`, with extra arguments (`--fault 451`…).
    pub fn start(dir: &Path, extra: &[&str]) -> SmtpSink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python(), script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sink's port line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "smtp_sink.py did not report a port (is python3-aiosmtpd installed?): {line:?}"
                )
            });
        SmtpSink {
            port,
            dir: dir.to_path_buf(),
            child,
            _stdin: stdin,
        }
    }

    /// Received messages, in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read(p).expect("read received message"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
