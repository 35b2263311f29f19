//! Survival of the state directory and its secrets (issue 8), on the built binary: a read-only,
//! full or locked state directory fails clearly and recovers; the daemon rides out a full disk;
//! the SMTP password never reaches a log and the state stays private.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::survive::{
    assert_db_sound, collect_until, command, log_lines, run_once, smtp, text, wait_bounded,
    wait_for_line, write_config,
};
use crate::support::bin::BIN;
use crate::support::http::{GROWING, TestServer, growing_title};
use crate::support::mail;
use crate::support::smtp::{SmtpSink, python};

// ---- storage faults --------------------------------------------------------------------------

/// A tmpfs mounted for one test (tests run as root in CI); unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` when this machine does not let us mount (not root, or no CAP_SYS_ADMIN), or
    /// when `NEWSWATCH_TEST_NO_MOUNT` is set to exercise the fallbacks.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir mount point");
        if std::env::var_os("NEWSWATCH_TEST_NO_MOUNT").is_some() {
            return None;
        }
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {mode} {}", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Makes `state` unwritable and back: a read-only remount of its tmpfs when we could mount one,
/// else `chattr -R +i` as root (root ignores permission bits), else `chmod -R a-w`.
fn set_read_only(state: &Path, tmpfs: Option<&Tmpfs>, read_only: bool) -> &'static str {
    if let Some(t) = tmpfs {
        t.remount(if read_only { "ro" } else { "rw" });
        return "read-only remount";
    }
    let (tool, arg, how) = if is_root() {
        ("chattr", if read_only { "+i" } else { "-i" }, "chattr +i")
    } else {
        ("chmod", if read_only { "a-w" } else { "u+w" }, "chmod a-w")
    };
    let status = Command::new(tool)
        .args(["-R", arg])
        .arg(state)
        .status()
        .expect("run chattr/chmod");
    assert!(status.success(), "{tool} -R {arg} {}", state.display());
    how
}

fn assert_delivered(sink: &SmtpSink, items: usize, when: &str) {
    let mails = mail::messages(&sink.dir);
    for i in 1..=items {
        assert!(
            mails.iter().any(|m| m.text.contains(&growing_title(i))),
            "{when}: item {i} was never delivered"
        );
    }
}

/// A read-only state directory: the run fails with an error naming the database and the cause,
/// nothing is corrupted, and once writable again the next run delivers the item the failed run
/// had fetched (the feed still lists it).
#[test]
fn a_read_only_state_directory_fails_clearly_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmpfs = Tmpfs::mount(&tmp.path().join("vol"), "16m");
    let state = tmp.path().join("vol/state");
    let feed = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        &smtp(sink.port, "5s"),
    );
    let out = run_once(&config, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));

    let how = set_read_only(&state, tmpfs.as_ref(), true);
    let out = run_once(&config, Duration::from_secs(30));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{how}: {all}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("hint: the state directory is not writable"),
        "{how}: the error names the cause: {all}"
    );
    assert!(
        err.contains(&state.display().to_string().to_lowercase()),
        "{how}: the error names the state directory: {all}"
    );
    assert!(!err.contains("panicked"), "{all}");
    eprintln!("{how}: {}", err.trim());

    set_read_only(&state, tmpfs.as_ref(), false);
    assert_db_sound(&state, how);
    feed.freeze();
    let out = run_once(&config, Duration::from_secs(30));
    assert!(out.status.success(), "{how}: {}", text(&out));
    assert_delivered(&sink, feed.grown(), how);
    assert_db_sound(&state, how);
    eprintln!("read-only state directory via {how}");
}

/// Disk full: a small tmpfs filled to the last byte (or, where mounting is not allowed, a
/// file-size limit of one block on the daemon with SIGXFSZ ignored, which fails writes the same
/// way). The run fails clearly, the database stays sound, and with space back nothing is lost.
#[test]
fn a_full_disk_fails_clearly_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmpfs = Tmpfs::mount(&tmp.path().join("vol"), "4m");
    let state = tmp.path().join("vol/state");
    let feed = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        &smtp(sink.port, "5s"),
    );
    let out = run_once(&config, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));

    let filler = tmp.path().join("vol/filler");
    let (out, how) = if tmpfs.is_some() {
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let block = vec![0u8; 64 * 1024];
        // Until ENOSPC, then byte by byte so not even a page is left.
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        (
            run_once(&config, Duration::from_secs(30)),
            "a full 4 MB tmpfs",
        )
    } else {
        let child = Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 1; exec \"$0\" run --once --config \"$1\"")
            .arg(BIN)
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sh");
        (
            wait_bounded(child, Duration::from_secs(30)),
            "ulimit -f 1 (mount not permitted)",
        )
    };
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{how}: {all}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("hint: the filesystem of the state directory may be full"),
        "{how}: the error names the cause: {all}"
    );
    assert!(!err.contains("panicked"), "{all}");
    eprintln!("{how}: {}", err.trim());

    let _ = std::fs::remove_file(&filler);
    assert_db_sound(&state, how);
    feed.freeze();
    let out = run_once(&config, Duration::from_secs(30));
    assert!(out.status.success(), "{how}: {}", text(&out));
    assert_delivered(&sink, feed.grown(), how);
    assert_db_sound(&state, how);
    eprintln!("disk full via {how}: {}", err.lines().last().unwrap_or(""));
}

/// Another process holds the database's write lock (`BEGIN EXCLUSIVE` in python3's sqlite3).
/// Longer than the busy timeout: a clear "locked" error. Released: the next run delivers what
/// the failed one fetched. Released within the busy timeout: the run simply waits and succeeds.
#[test]
fn a_database_locked_by_another_process_fails_clearly_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let feed = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        &smtp(sink.port, "5s"),
    );
    let out = run_once(&config, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));

    let hold = |db: &Path| {
        let mut child = Command::new(python())
            .arg("-c")
            .arg(
                "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)\n\
                 c.execute('BEGIN EXCLUSIVE')\n\
                 print('LOCKED', flush=True)\n\
                 sys.stdin.read()\n\
                 c.execute('ROLLBACK')\n",
            )
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read LOCKED");
        assert_eq!(line.trim(), "LOCKED");
        child
    };
    let db = state.join(newswatch::store::DB_FILE);

    let mut locker = hold(&db);
    let out = run_once(&config, Duration::from_secs(30));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked") && err.contains("hint: another process holds the database"),
        "the error says the database is locked: {all}"
    );
    assert!(!err.contains("panicked"), "{all}");
    drop(locker.stdin.take());
    locker.wait().expect("python3 exits");
    assert_db_sound(&state, "after the lock");
    eprintln!("locked: {}", err.trim());

    // Held for a moment only: the busy timeout rides it out.
    let mut locker = hold(&db);
    let run = command(&config, true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run --once");
    let (tx, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(Duration::from_millis(400));
    drop(tx);
    drop(locker.stdin.take());
    locker.wait().expect("python3 exits");
    let out = wait_bounded(run, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    feed.freeze();
    assert_delivered(&sink, feed.grown(), "after the lock");
    assert_db_sound(&state, "after the short lock");
}

// ---- secrets and permissions -----------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SMTP AUTH with a known password, debug and trace logging, text and JSON: the password (and
/// its AUTH PLAIN / LOGIN base64 forms) appears in no log line, no output and no state file.
/// The state directory is created 0700; a world-readable password file draws a warning.
#[test]
fn the_smtp_password_never_reaches_logs_and_state_is_private() {
    const USER: &str = "newswatch";
    const PASSWORD: &str = "Pa55-xyzzy-Secret-7731";
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("deep/nested/state");
    let feed = TestServer::start();
    let sink = SmtpSink::start(
        &tmp.path().join("received"),
        &["--auth", &format!("{USER}:{PASSWORD}")],
    );
    let secret = tmp.path().join("smtp-password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).expect("write password file");
    let delivery = format!(
        "{}\nusername = \"{USER}\"\npassword_file = \"{}\"",
        smtp(sink.port, "5s"),
        secret.display()
    );
    let config = write_config(tmp.path(), &state, feed.url(GROWING).as_str(), &delivery);
    let forbidden = [
        PASSWORD.to_string(),
        b64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
        b64(PASSWORD.as_bytes()),
    ];
    use std::os::unix::fs::PermissionsExt;
    // (log filter, --log-format, password file mode, warning expected)
    let cases = [
        ("debug", "text", 0o600, false),
        ("trace", "text", 0o640, false),
        ("debug", "json", 0o644, true),
    ];
    for (filter, format, mode, warned) in cases {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode))
            .expect("chmod password file");
        let child = command(&config, true)
            .arg("--log-format")
            .arg(format)
            .env("NEWSWATCH_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start newswatch");
        let out = wait_bounded(child, Duration::from_secs(30));
        let all = text(&out);
        assert!(out.status.success(), "{filter}/{format}: {all}");
        assert!(
            all.contains("emails: 1 composed, 1 sent"),
            "AUTH worked ({filter}/{format}): {all}"
        );
        for f in &forbidden {
            assert!(
                !all.contains(f.as_str()),
                "{filter}/{format}: {f:?} leaked:\n{all}"
            );
        }
        assert_eq!(
            all.contains("readable by every local user"),
            warned,
            "mode {mode:o}: {all}"
        );
    }
    for entry in std::fs::read_dir(&state).expect("state dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read state file");
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the password is stored in {}",
            path.display()
        );
    }
    let mode = std::fs::metadata(&state)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "state directory mode {mode:o}");
    assert_eq!(sink.messages().len(), 3);
}

/// The daemon keeps running through a full disk: the writer fails and says so, fetching pauses
/// (the poll it could not store waits in memory; the feed is not fetched again meanwhile) while
/// the feed goes on growing, and once space is back the same process stores that poll, fetches
/// again and delivers every item.
#[test]
fn the_daemon_rides_out_a_full_disk_without_losing_items() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(_tmpfs) = Tmpfs::mount(&tmp.path().join("vol"), "4m") else {
        // The --once variant above covers disk full through `ulimit -f` where mounting is not
        // allowed; a running daemon cannot be given a file-size limit from outside.
        eprintln!("mount not permitted: the daemon's full-disk ride-through is not exercised");
        assert!(
            !is_root() || std::env::var_os("CI").is_none(),
            "CI runs as root and can mount"
        );
        return;
    };
    let state = tmp.path().join("vol/state");
    let feed = TestServer::start();
    let sink = SmtpSink::start(&tmp.path().join("received"), &[]);
    let config = write_config(
        tmp.path(),
        &state,
        feed.url(GROWING).as_str(),
        &smtp(sink.port, "5s"),
    );
    let mut child = command(&config, false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let rx = log_lines(&mut child);
    let mut log = Vec::new();
    let fail = |child: &mut Child, log: &[String], what: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}:\n{}", log.join("\n"));
    };
    if !wait_for_line(&rx, "email sent", Duration::from_secs(20), &mut log) {
        fail(&mut child, &log, "no first email");
    }
    let filler = tmp.path().join("vol/filler");
    {
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    if !wait_for_line(&rx, "cannot store polls", Duration::from_secs(20), &mut log) {
        fail(&mut child, &log, "no failed write while the disk is full");
    }
    let paused_at = feed.counts().requests;
    // The write is tried again (after 1 s, then 2 s) while the feed grows; no request meanwhile.
    for _ in 0..2 {
        if !wait_for_line(&rx, "cannot store polls", Duration::from_secs(20), &mut log) {
            fail(&mut child, &log, "the failed write was not tried again");
        }
    }
    assert_eq!(
        feed.counts().requests,
        paused_at,
        "fetching pauses while what was fetched cannot be stored"
    );
    std::fs::remove_file(&filler).expect("free the space");
    let items = feed.grown();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let mails = mail::messages(&sink.dir);
        if (1..=items).all(|i| mails.iter().any(|m| m.text.contains(&growing_title(i)))) {
            break;
        }
        if Instant::now() > until {
            fail(
                &mut child,
                &log,
                &format!("items 1..={items} not all delivered after the disk had space again"),
            );
        }
        collect_until(&rx, Instant::now() + Duration::from_millis(200), &mut log);
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the daemon is still running"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_db_sound(&state, "after the full disk");
    let errors: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("cannot store polls"))
        .collect();
    eprintln!(
        "daemon on a full disk: {}",
        errors.first().map_or("", |s| s.as_str())
    );
}
