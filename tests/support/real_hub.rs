//! A real WebSub hub for the tests: flask-websub 0.4.1 from PyPI in a venv under the target
//! directory (`scripts/websub-hub-venv` installs it once), served by `websub_hub.py` (beside
//! this file) on a loopback port, its subscriptions in a SQLite file the test can read. Stopped
//! (killed) on drop. Never imports newswatch.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The venv, installed by `scripts/websub-hub-venv` (idempotent), or `None` when this machine's
/// python3 cannot make one (no python3-venv; `scripts/test` installs it).
pub fn venv() -> Option<PathBuf> {
    let has_venv = Command::new("/usr/bin/python3")
        .args(["-c", "import ensurepip, venv"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_venv {
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("websub-hub-venv");
    let out = Command::new(root.join("scripts/websub-hub-venv"))
        .arg(&dir)
        .output()
        .expect("run scripts/websub-hub-venv");
    assert!(
        out.status.success(),
        "scripts/websub-hub-venv failed (PyPI unreachable?):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

/// One subscription as the hub stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub topic: String,
    pub callback: String,
    pub secret: Option<String>,
    /// Unix seconds.
    pub expires: i64,
}

pub struct RealHub {
    pub port: u16,
    child: Child,
    db: PathBuf,
    /// The hub's stderr (its request log and tracebacks), for failure messages.
    log: PathBuf,
    /// The hub's stdout lines after the ready line.
    lines: mpsc::Receiver<String>,
}

impl Drop for RealHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealHub {
    /// Starts the hub with files in `dir`, accepting leases down to `min_lease` seconds; `None`
    /// when no venv can be made here (see [`venv`]).
    pub fn start(dir: &Path, min_lease: u64) -> Option<RealHub> {
        let venv = venv()?;
        let port = super::smtp::free_port();
        let db = dir.join("hub.sqlite3");
        let log = dir.join("hub.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/websub_hub.py");
        let mut child = Command::new(venv.join("bin/python"))
            .arg(script)
            .arg(port.to_string())
            .arg(&db)
            .arg(min_lease.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create hub.log"))
            .spawn()
            .expect("start the flask-websub hub");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let hub = RealHub {
            port,
            child,
            db,
            log,
            lines: rx,
        };
        match hub.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("websub hub ready") => Some(hub),
            other => panic!("the hub did not start ({other:?}):\n{}", hub.log()),
        }
    }

    /// Waits up to `limit` for the hub to store a subscription (the subscriber having confirmed
    /// its intent): the lease it granted in seconds and the callback, or `None`.
    pub fn wait_stored(&self, limit: Duration) -> Option<(u64, String)> {
        let line = self.lines.recv_timeout(limit).ok()?;
        let (lease, callback) = line.strip_prefix("stored ")?.split_once(' ')?;
        Some((lease.parse().ok()?, callback.to_string()))
    }

    /// The hub's URL, as a feed names it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hub", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn open(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).expect("open the hub's database")
    }

    /// The subscriptions the hub holds (each one verified with its subscriber).
    pub fn subscriptions(&self) -> Vec<Stored> {
        let conn = self.open();
        let mut stmt = conn
            .prepare(
                "SELECT topic_url, callback_url, secret, expiration_time FROM hub ORDER BY rowid",
            )
            .expect("the hub's table");
        stmt.query_map([], |r| {
            Ok(Stored {
                topic: r.get(0)?,
                callback: r.get(1)?,
                secret: r.get(2)?,
                expires: r.get(3)?,
            })
        })
        .expect("query the hub")
        .collect::<Result<_, _>>()
        .expect("read the hub's rows")
    }

    /// Replaces every stored secret, so the hub signs its next pushes with a key the subscriber
    /// never gave it.
    pub fn tamper_secrets(&self, secret: &str) {
        self.open()
            .execute("UPDATE hub SET secret = ?1", [secret])
            .expect("tamper with the hub's secrets");
    }

    /// `hub.mode=publish`: the hub fetches `topic` and pushes it to every subscriber before it
    /// answers. The status and body of its answer.
    pub fn publish(&self, topic: &str) -> (u16, String) {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "publish")
            .append_pair("hub.topic", topic)
            .finish();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            s,
            "POST /hub HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            self.port,
            form.len()
        )
        .expect("send publish");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read the hub's answer");
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }
}
