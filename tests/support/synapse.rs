//! A real Matrix homeserver for the tests: Synapse from PyPI in a venv under the target
//! directory (`scripts/synapse-venv` installs it once), started on a loopback port with a
//! generated config, a user registered through its shared-secret admin API
//! (`register_new_matrix_user`), logged in, with a room. Also `DroppingProxy`, which forwards a
//! request to Synapse and then drops the first answer (the sender cannot know it was taken).
//! Stopped (killed) on drop. Never imports newswatch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The venv: installed by `scripts/synapse-venv` (idempotent), which prints its path.
pub fn venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf();
    let out = Command::new(root.join("scripts/synapse-venv"))
        .arg(target.join("synapse-venv"))
        .output()
        .expect("run scripts/synapse-venv");
    assert!(
        out.status.success(),
        "scripts/synapse-venv failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("synapse-venv")
}

pub struct Synapse {
    pub port: u16,
    child: Child,
    pub dir: PathBuf,
    /// The registered user's access token (the room's creator).
    pub token: String,
    pub room: String,
    client: reqwest::Client,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Synapse {
    pub async fn start(dir: &Path) -> Synapse {
        let venv = venv();
        let python = venv.join("bin/python");
        let port = free_port();
        let config = dir.join("homeserver.yaml");
        let generated = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--server-name", "localhost"])
            .arg("--config-path")
            .arg(&config)
            .arg("--data-directory")
            .arg(dir)
            .args(["--generate-config", "--report-stats=no"])
            .current_dir(dir)
            .output()
            .expect("generate a Synapse config");
        assert!(generated.status.success(), "{generated:?}");
        // Loopback only, our port, no federation key servers, no rate limits in the way.
        let text = std::fs::read_to_string(&config).expect("read homeserver.yaml");
        let text = text
            .replace("    - ::1\n", "")
            .replace("port: 8008", &format!("port: {port}"))
            .replace(
                "trusted_key_servers:\n  - server_name: \"matrix.org\"",
                "trusted_key_servers: []",
            );
        let text = format!(
            "{text}\nsuppress_key_server_warning: true\n\
             rc_message: {{per_second: 1000, burst_count: 1000}}\n\
             rc_login: {{address: {{per_second: 1000, burst_count: 1000}}, account: {{per_second: 1000, burst_count: 1000}}}}\n\
             rc_registration: {{per_second: 1000, burst_count: 1000}}\n"
        );
        std::fs::write(&config, text).expect("write homeserver.yaml");
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(&config)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Synapse");
        let client = reqwest::Client::new();
        let mut s = Synapse {
            port,
            child,
            dir: dir.to_path_buf(),
            token: String::new(),
            room: String::new(),
            client,
        };
        s.wait_ready().await;
        let registered = Command::new(venv.join("bin/register_new_matrix_user"))
            .args(["-u", "desk", "-p", "desk-password", "-a", "-c"])
            .arg(&config)
            .arg(s.url(""))
            .output()
            .expect("run register_new_matrix_user");
        assert!(registered.status.success(), "{registered:?}");
        let login = s
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/login",
                None,
                json!({"type": "m.login.password",
                       "identifier": {"type": "m.id.user", "user": "desk"},
                       "password": "desk-password"}),
            )
            .await;
        s.token = login["access_token"].as_str().expect("a token").to_string();
        let room = s
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(&s.token.clone()),
                json!({"name": "newswatch alerts", "preset": "private_chat"}),
            )
            .await;
        s.room = room["room_id"].as_str().expect("a room id").to_string();
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Until `/versions` answers (Synapse takes seconds to start), at most two minutes.
    async fn wait_ready(&mut self) {
        for _ in 0..1200 {
            if let Ok(r) = self
                .client
                .get(self.url("/_matrix/client/versions"))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.join("homeserver.log")).unwrap_or_default();
                panic!("Synapse exited with {status}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Synapse did not answer within two minutes");
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("Synapse answers");
        let status = resp.status();
        let text = resp.text().await.expect("a body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The room's `m.room.message` events, oldest first, as the client-server API returns them.
    pub async fn messages(&self) -> Vec<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            self.room.replace('!', "%21").replace(':', "%3A")
        );
        let v = self
            .call(reqwest::Method::GET, &path, Some(&self.token), Value::Null)
            .await;
        let mut events: Vec<Value> = v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .collect();
        events.reverse();
        events
    }
}

/// A loopback proxy to `upstream` (one request per connection): the first `drop_first`
/// requests are forwarded and answered upstream, but their answers never reach the client (the
/// connection is closed instead). Records each request's method and path.
pub struct DroppingProxy {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DroppingProxy {
    pub async fn start(upstream: u16, drop_first: usize) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                let dropped = Arc::clone(&dropped);
                tokio::spawn(async move {
                    let _ = relay(client, upstream, &s, &dropped, drop_first).await;
                });
            }
        });
        DroppingProxy { port, seen, task }
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: u16,
    seen: &Mutex<Vec<String>>,
    dropped: &AtomicUsize,
    drop_first: usize,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let first = head.lines().next().unwrap_or_default().to_string();
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(first);
    // One request per upstream connection, closed after its answer.
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut request = lines.join("\r\n").into_bytes();
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(&buf[end..end + len]);
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(&request).await?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;
    if dropped.fetch_add(1, Ordering::SeqCst) < drop_first {
        // Upstream took it; the client never hears so.
        return Ok(());
    }
    client.write_all(&answer).await?;
    client.shutdown().await
}
