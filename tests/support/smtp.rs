//! The one SMTP helper: an `smtp_sink.py` process (Debian's python3-aiosmtpd) on 127.0.0.1 that
//! stores what it accepts as `.eml` files and can be told to misbehave (`--fault 451`…).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The interpreter that has Debian's python3-aiosmtpd (a pyenv shim on PATH may not).
pub fn python() -> String {
    std::env::var("NEWSWATCH_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// A loopback port nothing listens on (a server that is down, or will come back there).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr()
        .expect("a bound socket has an address")
        .port()
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
            .expect("python3 starts tests/support/smtp_sink.py (scripts/test installs it)");
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

    /// Received messages, raw, in arrival order (the sink numbers its files).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        super::mail::raw_messages(&self.dir)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
