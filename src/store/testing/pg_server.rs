//! A real PostgreSQL for tests: Debian's server binaries (`initdb`, `pg_ctl`) on a Unix socket in
//! a temp dir, started once per test binary, a fresh database per test. Shared by the store's
//! unit tests (`testing/postgres.rs`) and the integration tests (`tests/support/postgres.rs`
//! includes this file), so it names nothing of the crate.
//! As root the server runs as the `postgres` user (`initdb` refuses root). The server stops and
//! its directory goes when the test binary exits: a shell holds the other end of a pipe the
//! binary never closes, and stops the server when it reads end-of-file. Test builds only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where Debian's PostgreSQL 15 keeps its server binaries (`scripts/test` installs it).
pub(crate) const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The cluster's superuser; the tests connect as it, without a password (trust on the socket).
const SUPERUSER: &str = "newswatch";

/// The running test server: its socket directory, and the stopper whose stdin keeps it alive.
struct Server {
    socket_dir: PathBuf,
    /// Never read: dropping it (never, it is static) or the process ending closes the pipe.
    _stopper: Mutex<Child>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn run_as_owner(program: &Path, args: &[&str]) -> Command {
    let mut cmd;
    if rustix::process::geteuid().is_root() {
        cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
    } else {
        cmd = Command::new(program);
    }
    cmd.args(args);
    cmd
}

fn start() -> Server {
    let bin = Path::new(PG_BIN);
    assert!(
        bin.join("initdb").exists(),
        "PostgreSQL 15 is not installed ({PG_BIN}); scripts/test installs it (apt-get install postgresql)"
    );
    // A short path: a Unix socket's path must stay under 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("nwpg")
        .tempdir_in("/tmp")
        .expect("temp dir")
        .keep();
    if rustix::process::geteuid().is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "chown {} to postgres failed",
            dir.display()
        );
    }
    let data = dir.join("data");
    let data_s = data.to_str().expect("utf-8 temp path");
    let dir_s = dir.to_str().expect("utf-8 temp path");
    let out = run_as_owner(
        &bin.join("initdb"),
        &[
            "-D",
            data_s,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    )
    .output()
    .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = format!(
        "-k {dir_s} -c listen_addresses= -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200"
    );
    let log = dir.join("server.log");
    let out = run_as_owner(
        &bin.join("pg_ctl"),
        &[
            "start",
            "-w",
            "-D",
            data_s,
            "-l",
            log.to_str().expect("utf-8 temp path"),
            "-o",
            &options,
        ],
    )
    .output()
    .expect("run pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Stops the server (fast: rolls back open transactions) and removes it all once this
    // process is gone and the pipe reads end-of-file.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if rustix::process::geteuid().is_root() {
        format!(
            "read _; runuser -u postgres -- {} stop -D {data_s} -m fast >/dev/null 2>&1; rm -rf {dir_s}",
            pg_ctl.display()
        )
    } else {
        format!(
            "read _; {} stop -D {data_s} -m fast >/dev/null 2>&1; rm -rf {dir_s}",
            pg_ctl.display()
        )
    };
    let mut stopper = Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server's stopper");
    // The pipe stays open: nothing is ever written to it.
    if let Some(stdin) = stopper.stdin.as_mut() {
        stdin.flush().expect("stopper pipe");
    }
    Server {
        socket_dir: dir,
        _stopper: Mutex::new(stopper),
    }
}

pub(crate) fn url(socket_dir: &Path, db: &str) -> String {
    format!(
        "postgresql://{SUPERUSER}@localhost/{db}?host={}",
        socket_dir.display()
    )
}

/// A fresh, empty database on the test server (started on first use): (socket dir, name).
pub(crate) fn fresh_database_name() -> (&'static Path, String) {
    let server = SERVER.get_or_init(start);
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    let db = format!("t{}_{n}", std::process::id());
    let mut admin =
        postgres::Client::connect(&url(&server.socket_dir, "postgres"), postgres::NoTls)
            .expect("connect to the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create database");
    (&server.socket_dir, db)
}

/// Cuts every connection of node `node` (`pg_terminate_backend`, as an operator or a failover
/// would); returns how many were cut.
pub(crate) fn terminate_node(node: &str) -> usize {
    let server = SERVER.get_or_init(start);
    let mut c = postgres::Client::connect(&url(&server.socket_dir, "postgres"), postgres::NoTls)
        .expect("connect to the test server");
    let row = c
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) cut",
            &[&format!("newswatch {node}")],
        )
        .expect("terminate");
    usize::try_from(row.get::<_, i64>(0)).expect("a count")
}
