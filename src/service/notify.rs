//! sd_notify(3): state messages to systemd over the `$NOTIFY_SOCKET` datagram socket.
//! Without `$NOTIFY_SOCKET` (not started by systemd, or not Type=notify) every call is a no-op.
//! This module only sends; deciding *when* to send (READY after migrations, WATCHDOG only while
//! the loops make progress) is the daemon's job.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract socket (@name)")]
    BadSocket(String),
    #[error("cannot create a socket for sd_notify: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot send {message:?} to NOTIFY_SOCKET: {source}")]
    Send {
        message: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Where to send notifications, or nowhere.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::from_vars(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// As [`Notifier::from_env`], with the variables and our PID passed in (for tests).
    pub fn from_vars(
        notify_socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let target = match notify_socket.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(Target {
                addr: socket_addr(s)?,
                socket: UnixDatagram::unbound().map_err(NotifyError::Socket)?,
            }),
        };
        Ok(Notifier {
            target,
            watchdog: watchdog_interval(watchdog_usec, watchdog_pid, own_pid),
        })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `WatchdogSec=` as systemd told us, if the watchdog is on and meant for this process.
    /// systemd's advice: send [`Notifier::watchdog`] at least every half of this.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`: startup finished, or a reload finished.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1", "READY=1")
    }

    /// `STATUS=…`: one line shown by `systemctl status`. Newlines are flattened to spaces.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        let line: String = status
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"), "STATUS")
    }

    /// `WATCHDOG=1`: the service is alive and making progress.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1", "WATCHDOG=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, which systemd ≥ 253 requires to accept it;
    /// follow with [`Notifier::ready`] when the reload is done (whether or not it succeeded).
    pub fn reloading(&self) -> Result<(), NotifyError> {
        let usec = monotonic_usec();
        self.send(
            &format!("RELOADING=1\nMONOTONIC_USEC={usec}"),
            "RELOADING=1",
        )
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1", "STOPPING=1")
    }

    /// `EXTEND_TIMEOUT_USEC=…`: ask for more time to start or stop than the unit's timeout.
    pub fn extend_timeout(&self, by: Duration) -> Result<(), NotifyError> {
        self.send(
            &format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()),
            "EXTEND_TIMEOUT_USEC",
        )
    }

    fn send(&self, text: &str, what: &'static str) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        target
            .socket
            .send_to_addr(text.as_bytes(), &target.addr)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                message: what,
                source,
            })
    }
}

/// `/run/systemd/notify` is a path; `@name` is a Linux abstract socket (a leading NUL on the wire).
fn socket_addr(s: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bad = || NotifyError::BadSocket(s.to_string_lossy().into_owned());
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(s).map_err(|_| bad()),
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `WATCHDOG_PID`, when set, names the process the watchdog is for; a child we spawned must not
/// believe it is being watched.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against.
fn monotonic_usec() -> u128 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // The monotonic clock is never negative; clamp rather than wrap if a platform disagrees.
    let secs = u128::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u128::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram within the timeout");
        String::from_utf8(buf[..n].to_vec()).expect("utf-8")
    }

    fn listener(path: &std::path::Path) -> UnixDatagram {
        let sock = UnixDatagram::bind(path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        sock
    }

    #[test]
    fn messages_arrive_on_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = listener(&path);
        let n = Notifier::from_vars(Some(path.as_os_str()), None, None, 1).expect("notifier");
        assert!(n.is_enabled());

        n.ready().expect("send");
        assert_eq!(recv(&sock), "READY=1");
        n.status("polled 5 feeds\n3 new").expect("send");
        assert_eq!(recv(&sock), "STATUS=polled 5 feeds 3 new");
        n.watchdog().expect("send");
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping().expect("send");
        assert_eq!(recv(&sock), "STOPPING=1");
        n.extend_timeout(Duration::from_secs(2)).expect("send");
        assert_eq!(recv(&sock), "EXTEND_TIMEOUT_USEC=2000000");

        let before = monotonic_usec();
        n.reloading().expect("send");
        let msg = recv(&sock);
        let usec: u128 = msg
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("unexpected {msg:?}"))
            .parse()
            .expect("a number");
        assert!(usec >= before && usec <= monotonic_usec(), "{usec}");
    }

    #[test]
    fn messages_arrive_on_an_abstract_socket() {
        let name = format!("newswatch-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let var = format!("@{name}");
        let n = Notifier::from_vars(Some(OsStr::new(&var)), None, None, 1).expect("notifier");
        n.ready().expect("send");
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn unset_socket_is_a_no_op() {
        for n in [
            Notifier::disabled(),
            Notifier::from_vars(None, None, None, 1).expect("notifier"),
            Notifier::from_vars(Some(OsStr::new("")), None, None, 1).expect("notifier"),
        ] {
            assert!(!n.is_enabled());
            n.ready().expect("no-op");
            n.reloading().expect("no-op");
            n.status("x").expect("no-op");
        }
    }

    #[test]
    fn a_vanished_socket_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone.sock");
        let n = Notifier::from_vars(Some(path.as_os_str()), None, None, 1).expect("notifier");
        assert!(matches!(n.ready(), Err(NotifyError::Send { .. })));
    }

    #[test]
    fn relative_socket_is_refused() {
        let r = Notifier::from_vars(Some(OsStr::new("run/notify")), None, None, 1);
        assert!(matches!(r, Err(NotifyError::BadSocket(_))));
    }

    #[test]
    fn watchdog_interval_table() {
        let s = |n| Some(Duration::from_secs(n));
        #[rustfmt::skip]
        let cases: &[(Option<&str>, Option<&str>, Option<Duration>)] = &[
            (None,              None,        None),
            (Some("30000000"),  None,        s(30)),
            (Some("30000000"),  Some("42"),  s(30)),
            (Some("30000000"),  Some("43"),  None),   // meant for another process
            (Some("30000000"),  Some("x"),   None),
            (Some("0"),         None,        None),
            (Some("soon"),      None,        None),
            (Some("1500"),      Some("42"),  Some(Duration::from_micros(1500))),
        ];
        for &(usec, pid, want) in cases {
            assert_eq!(watchdog_interval(usec, pid, 42), want, "{usec:?} {pid:?}");
            let n = Notifier::from_vars(None, usec, pid, 42).expect("notifier");
            assert_eq!(n.watchdog_interval(), want);
        }
    }
}
