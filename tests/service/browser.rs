//! The web console in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver, with `fantoccini`) against `newswatch console` over a state the demo filled (in
//! SQLite, and again in the test PostgreSQL), with a console user. Signs in, opens every page at desktop and phone widths (screenshots kept under
//! `target/tmp/console-screenshots/`), types in the playground and sees the hits change, opens
//! an explain tree, signs out; and no page logs a console error or a CSP violation.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::bin::{command, newswatch};
use crate::support::demo::copy_demo;

const DRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a step waits for: a bound on a wait, not a speed test.
const PATIENCE: Duration = Duration::from_secs(60);

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// chromedriver on a free loopback port; returns it and its URL once it is ready.
fn chromedriver() -> (Proc, String) {
    assert!(
        Path::new(DRIVER).exists(),
        "{DRIVER} is missing: scripts/test installs chromium and chromium-driver"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    // Ready once it says so on stdout ("ChromeDriver was started successfully on port N").
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("started successfully") {
        line.clear();
        let n = out.read_line(&mut line).expect("chromedriver's output");
        assert!(n > 0, "chromedriver ended before it was ready");
    }
    // Keep reading its output so a full pipe never blocks it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

async fn browser(driver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"] }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::rustls()
        .expect("a rustls connector")
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a chromium session through chromedriver")
}

/// chromedriver's browser log (console messages, CSP violations), emptied by reading.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

/// Every warning or error the browser logged since the last call.
async fn problems(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir console-screenshots");
    dir
}

async fn shoot(c: &Client, name: &str) {
    let dir = shots_dir();
    for (width, height, kind) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        c.set_window_size(width, height).await.expect("resize");
        let png = c.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{name}-{kind}.png")), png).expect("write a screenshot");
    }
    c.set_window_size(1280, 900).await.expect("resize back");
}

async fn hit_count(c: &Client) -> u64 {
    c.find(Locator::Css("#hit-count"))
        .await
        .expect("a hit count")
        .text()
        .await
        .expect("its text")
        .trim()
        .parse()
        .expect("a number")
}

/// The console's results after the playground's script replaced them (`data-seq` changes).
async fn results_after(c: &Client, previous: Option<&str>) -> String {
    let selector = match previous {
        Some(seq) => format!("#results[data-seq]:not([data-seq=\"{seq}\"])"),
        None => "#results[data-seq]".to_string(),
    };
    let el = c
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(&selector))
        .await
        .expect("the playground's results update");
    el.attr("data-seq").await.expect("attr").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    walk("", "").await;
}

/// The same walk over the demo's state on the test PostgreSQL (issue 17): the pages, the
/// playground and signing in and out behave the same; its screenshots are named `pg-…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_on_postgresql() {
    // The test server's client blocks on a runtime of its own: not on this one's workers.
    let url = tokio::task::spawn_blocking(crate::support::postgres::fresh_database_url)
        .await
        .expect("a fresh database");
    walk(
        &crate::support::postgres::store_table(&url, "browser-pg", "2m"),
        "pg-",
    )
    .await;
}

/// Fills the demo's state (with `store` appended to its config: a `[store]` table, or
/// nothing for SQLite), then signs in, opens every page, uses the playground and signs out in
/// chromium; screenshots are named with `shots` first.
async fn walk(store: &str, shots: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = copy_demo(tmp.path());
    let mut toml = std::fs::read_to_string(&config).expect("read demo.toml");
    toml.push_str(store);
    std::fs::write(&config, toml).expect("write demo.toml");
    let out = newswatch(&["run", "--once", "--config", path(&config)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut passwd = command(&["console", "passwd", "analyst", "--config", path(&config)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("console passwd");
    std::io::Write::write_all(
        &mut passwd.stdin.take().expect("stdin"),
        b"peace plan 2025\n",
    )
    .expect("write the password");
    assert!(passwd.wait().expect("console passwd ends").success());

    let mut child = command(&[
        "console",
        "--config",
        path(&config),
        "--listen",
        "127.0.0.1:0",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("newswatch console");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the console's address");
    let _console = Proc(child);
    let base = line
        .trim()
        .strip_prefix("console: ")
        .expect("console: URL")
        .trim_end_matches('/')
        .to_string();

    let (_driver, driver_url) = chromedriver();
    let c = browser(&driver_url).await;

    // Signed out, every page sends to the sign-in form.
    c.goto(&format!("{base}/matches")).await.expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    shoot(&c, &format!("{shots}login")).await;
    c.find(Locator::Css("input[name=user]"))
        .await
        .expect("user")
        .send_keys("analyst")
        .await
        .expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password")
        .send_keys("peace plan 2025")
        .await
        .expect("type");
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("sign in");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("form.logout"))
        .await
        .expect("signed in");
    assert_eq!(c.current_url().await.expect("url").path(), "/");

    let pages = [
        ("overview", "/"),
        ("feeds", "/feeds"),
        ("feed", "/feeds/Kyiv%20Ledger"),
        ("matches", "/matches"),
        ("rules", "/rules"),
        ("rule", "/rules/healey-hegseth-talks"),
        ("digests", "/digests"),
        ("digest", "/digests/1"),
        ("channels", "/channels"),
    ];
    for (name, p) in pages {
        c.goto(&format!("{base}{p}")).await.expect("goto");
        let h1 = c
            .find(Locator::Css("main h1"))
            .await
            .expect("a heading")
            .text()
            .await
            .expect("text");
        assert!(!h1.is_empty(), "{p} has a heading");
        assert!(
            c.title().await.expect("title").ends_with("· newswatch"),
            "{p}"
        );
        shoot(&c, &format!("{shots}{name}")).await;
        let logged = problems(&c).await;
        assert!(logged.is_empty(), "{p} logged: {logged:#?}");
    }
    let marks = c.find_all(Locator::Css("main mark")).await.expect("marks");
    assert!(
        marks.is_empty(),
        "the digest page has no highlight outside its frame"
    );
    c.goto(&format!("{base}/matches")).await.expect("goto");
    assert!(
        !c.find_all(Locator::Css(".match mark"))
            .await
            .expect("marks")
            .is_empty(),
        "hits are highlighted"
    );

    // The playground: typing runs the query; a wider query finds more.
    c.goto(&format!("{base}/playground")).await.expect("goto");
    let q = c.find(Locator::Css("#q")).await.expect("the query box");
    q.send_keys("@healey NEAR/20 @hegseth").await.expect("type");
    let seq = results_after(&c, None).await;
    let narrow = hit_count(&c).await;
    assert!(narrow >= 2, "{narrow} hits");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .query()
            .is_some_and(|s| s.contains("q=")),
        "the URL keeps the query"
    );
    q.clear().await.expect("clear");
    q.send_keys("@healey OR @hegseth").await.expect("type");
    results_after(&c, Some(&seq)).await;
    let wide = hit_count(&c).await;
    assert!(
        wide > narrow,
        "{wide} hits for the wider query, {narrow} before"
    );
    shoot(&c, &format!("{shots}playground")).await;

    // Open the first explain tree.
    let details = c
        .find(Locator::Css("details.explain"))
        .await
        .expect("an explain tree");
    details
        .find(Locator::Css("summary"))
        .await
        .expect("summary")
        .click()
        .await
        .expect("open it");
    assert!(
        details.attr("open").await.expect("attr").is_some(),
        "the tree is open"
    );
    let first = details
        .find(Locator::Css(".tree li"))
        .await
        .expect("a node")
        .text()
        .await
        .expect("text");
    assert!(
        first.starts_with("true"),
        "the root of a hit is true: {first}"
    );
    shoot(&c, &format!("{shots}explain")).await;
    let logged = problems(&c).await;
    assert!(logged.is_empty(), "the playground logged: {logged:#?}");

    // Sign out: back to the sign-in form, and the pages are closed again.
    c.find(Locator::Css("form.logout button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("input[name=password]"))
        .await
        .expect("signed out");
    c.goto(&format!("{base}/")).await.expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    let logged = problems(&c).await;
    assert!(logged.is_empty(), "signing out logged: {logged:#?}");
    c.close().await.expect("close the browser");
}
