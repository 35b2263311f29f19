//! A real PostgreSQL for tests: Debian's server binaries (`initdb`, `pg_ctl`) on a Unix socket in
//! a temp dir, started once per test binary, a fresh database per test. Shared by the store's
//! unit tests (`testing/postgres.rs`) and the integration tests (`tests/support/postgres.rs`
//! includes this file), so it names nothing of the crate.
//! As root the server runs as the `postgres` user (`initdb` refuses root). The server stops and
//! its directory goes when the test binary exits: a shell holds the other end of a pipe the
//! binary never closes, and stops the server when it reads end-of-file. A test that stops and
//! starts PostgreSQL under running nodes gets a `PrivateServer` of its own instead. Test builds
//! only.

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
    let cluster = Cluster::init();
    cluster.start();
    let stopper = cluster.stopper();
    Server {
        socket_dir: cluster.dir,
        _stopper: Mutex::new(stopper),
    }
}

/// A database cluster of its own in a temp dir (initialised, not running yet): its socket
/// directory, data directory and log.
struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

impl Cluster {
    fn init() -> Cluster {
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
        let out = run_as_owner(
            &bin.join("initdb"),
            &[
                "-D",
                utf8(&data),
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
        let log = dir.join("server.log");
        Cluster { dir, data, log }
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start(&self) {
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            utf8(&self.dir)
        );
        let out = run_as_owner(
            &Path::new(PG_BIN).join("pg_ctl"),
            &[
                "start",
                "-w",
                "-D",
                utf8(&self.data),
                "-l",
                utf8(&self.log),
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
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m fast` (open transactions rolled back, every connection cut), waiting
    /// until the server is gone.
    fn stop(&self) {
        let out = run_as_owner(
            &Path::new(PG_BIN).join("pg_ctl"),
            &["stop", "-w", "-D", utf8(&self.data), "-m", "fast"],
        )
        .output()
        .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A shell that stops the server (fast: rolls back open transactions) and removes it all
    /// once this process is gone and the pipe reads end-of-file (or the child is killed and
    /// its pipe closed by its owner).
    fn stopper(&self) -> Child {
        let pg_ctl = Path::new(PG_BIN).join("pg_ctl");
        let (data, dir) = (utf8(&self.data), utf8(&self.dir));
        let runuser = if rustix::process::geteuid().is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let stop = format!(
            "read _; {runuser}{} stop -D {data} -m fast >/dev/null 2>&1; rm -rf {dir}",
            pg_ctl.display()
        );
        let mut stopper = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server's stopper");
        // The pipe stays open until the owner closes it (or this process ends).
        if let Some(stdin) = stopper.stdin.as_mut() {
            stdin.flush().expect("stopper pipe");
        }
        stopper
    }
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A PostgreSQL server of one test's own, which the test may stop and start again (a restart
/// the other tests on the shared server must not see). Stopped and removed when dropped.
pub(crate) struct PrivateServer {
    cluster: Cluster,
    stopper: Option<Child>,
}

impl PrivateServer {
    /// A new server, running, with one empty database `db`.
    pub(crate) fn start(db: &str) -> PrivateServer {
        let cluster = Cluster::init();
        cluster.start();
        let stopper = Some(cluster.stopper());
        let server = PrivateServer { cluster, stopper };
        let mut admin = postgres::Client::connect(&server.url("postgres"), postgres::NoTls)
            .expect("connect to the private server");
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create database");
        server
    }

    /// Database `db`'s URL on this server (its socket directory as `?host=`).
    pub(crate) fn url(&self, db: &str) -> String {
        url(&self.cluster.dir, db)
    }

    /// Stops the server as `pg_ctl stop -m fast` does: every connection is cut.
    pub(crate) fn stop(&self) {
        self.cluster.stop();
    }

    /// Starts the stopped server again, on the same socket and data.
    pub(crate) fn start_again(&self) {
        self.cluster.start();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // Closing the pipe makes the stopper stop the server and remove its directory.
        if let Some(mut stopper) = self.stopper.take() {
            drop(stopper.stdin.take());
            let _ = stopper.wait();
        }
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
