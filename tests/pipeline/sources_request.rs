//! Issue 20, per-feed request settings against real components on loopback: a server that
//! answers 401 without basic or bearer auth, a cookie and a header; an HTTP proxy and a SOCKS5
//! proxy the requests pass through (global, per feed, and `proxy = "none"`); the network policy
//! still refusing a redirect to an internal address through a proxy; and the secrets absent from
//! trace-level logs, `status --json` and the OPML export.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use newswatch::config::Config;
use newswatch::fetch::Fetcher;
use newswatch::pipeline::{Feeds, Jitter, Pipeline, Summary};
use newswatch::rules::RuleSet;

use super::polling::{at, servers};
use crate::support::http::TestServer;
use crate::support::proxy::Proxy;

const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PASSWORD: &str = "s3cret-basic-pw";
/// base64("reader:s3cret-basic-pw"), as RFC 7617 sends it.
const BASIC: &str = "Basic cmVhZGVyOnMzY3JldC1iYXNpYy1wdw==";
const TOKEN: &str = "s3cret-bearer-token";
const COOKIE: &str = "session=s3cret-cookie-value";
const PROXY_PASSWORD: &str = "s3cret-proxy-pw";

fn rss(title: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title><link>http://example.org/</link><description>d</description><language>en</language><item><guid>{title}-1</guid><title>Hegseth meets Healey ({title})</title><description>Talks.</description></item></channel></rss>"#
    )
    .into_bytes()
}

/// The environment the configs read their secrets from.
fn env(name: &str) -> Option<String> {
    match name {
        "NW_TEST_PASSWORD" => Some(PASSWORD.into()),
        "NW_TEST_TOKEN" => Some(TOKEN.into()),
        "NW_TEST_PROXY_PASSWORD" => Some(PROXY_PASSWORD.into()),
        "NW_TEST_WRONG_PROXY_PASSWORD" => Some("not-it".into()),
        _ => None,
    }
}

/// Writes a config (feeds as name, url, extra TOML lines) and a rule, and loads it.
fn write_config(dir: &Path, fetch_extra: &str, feeds: &[(&str, String, String)]) -> String {
    std::fs::create_dir_all(dir.join("rules")).expect("a rules directory");
    std::fs::write(
        dir.join("rules/r.toml"),
        "[[rule]]\nid = \"hegseth\"\ntitle = \"Hegseth\"\nquery = \"Hegseth\"\n",
    )
    .expect("write the rules");
    std::fs::write(dir.join("cookie.txt"), format!("{COOKIE}\n")).expect("write the cookie");
    let mut text = format!(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\ntimeout = \"5s\"\nhost_spacing = \"0s\"\nper_host = 4\n{fetch_extra}\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n"
    );
    for (name, url, extra) in feeds {
        text.push_str(&format!(
            "[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n"
        ));
    }
    std::fs::write(dir.join("newswatch.toml"), &text).expect("write the config");
    text
}

fn load(dir: &Path, text: &str) -> Config {
    Config::from_str(&dir.join("newswatch.toml"), text, &env)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn one_cycle(config: &Config) -> Summary {
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let fetcher = Fetcher::with_public_overrides(&config.fetch, "nw-test", vec![PUBLIC_IP])
        .expect("a fetcher");
    let p = Pipeline::open(config, &rules)
        .await
        .expect("the pipeline opens")
        .with_fetcher(fetcher)
        .with_jitter(Jitter::Fixed(0.0));
    p.cycle(at(0), Feeds::Due).await.expect("a cycle")
}

fn protect(server: &TestServer) {
    server.set_protected(
        "/basic.rss",
        rss("basic"),
        &[
            ("Authorization", BASIC),
            ("Cookie", COOKIE),
            ("X-Client", "newswatch-test"),
        ],
    );
    let bearer = format!("Bearer {TOKEN}");
    server.set_protected("/bearer.rss", rss("bearer"), &[("Authorization", &bearer)]);
}

const BASIC_FEED: &str = "username = \"reader\"\npassword_env = \"NW_TEST_PASSWORD\"\n\
     cookie_file = \"cookie.txt\"\nheaders = { \"X-Client\" = \"newswatch-test\" }";
const BEARER_FEED: &str = "token_env = \"NW_TEST_TOKEN\"";

#[tokio::test]
async fn basic_and_bearer_auth_a_cookie_and_a_header_open_a_protected_feed() {
    let server = TestServer::start_on(PUBLIC_IP, 0);
    protect(&server);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let text = write_config(
        tmp.path(),
        "",
        &[
            (
                "basic",
                server.url("/basic.rss").to_string(),
                BASIC_FEED.into(),
            ),
            (
                "bearer",
                server.url("/bearer.rss").to_string(),
                BEARER_FEED.into(),
            ),
            // The same protected feed without credentials: refused by the server.
            (
                "anonymous",
                server.url("/basic.rss").to_string(),
                String::new(),
            ),
        ],
    );
    let s = one_cycle(&load(tmp.path(), &text)).await;
    assert_eq!((s.new_articles, s.feeds_failed), (2, 1), "{s}");
    assert_eq!(s.failures.len(), 1, "{s}");
    assert_eq!(s.failures[0].0, "anonymous");
    assert!(s.failures[0].1.contains("401"), "{:?}", s.failures);
}

#[tokio::test]
async fn requests_pass_through_an_http_and_a_socks5_proxy_or_go_direct() {
    let server = TestServer::start_on(PUBLIC_IP, 0);
    protect(&server);
    server.set("/plain.rss", rss("plain"));
    let (http, socks) = (Proxy::http(), Proxy::socks5());
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let text = write_config(
        tmp.path(),
        &format!("proxy = \"{}\"", http.url()),
        &[
            // Through the global HTTP proxy, with its credentials.
            (
                "global",
                server.url("/basic.rss").to_string(),
                BASIC_FEED.into(),
            ),
            // Its own SOCKS5 proxy.
            (
                "socks",
                server.url("/bearer.rss").to_string(),
                format!("{BEARER_FEED}\nproxy = \"{}\"", socks.url()),
            ),
            (
                "direct",
                server.url("/plain.rss").to_string(),
                "proxy = \"none\"".into(),
            ),
        ],
    );
    let s = one_cycle(&load(tmp.path(), &text)).await;
    assert_eq!((s.new_articles, s.feeds_failed), (3, 0), "{s}");
    let port = server.addr.port();
    assert_eq!(http.targets(), [format!("127.0.0.2:{port}/basic.rss")]);
    assert_eq!(socks.targets(), [format!("127.0.0.2:{port}")]);
    assert_eq!(server.counts().requests, 3);
}

#[tokio::test]
async fn a_proxy_that_requires_authentication_gets_the_feeds_proxy_password() {
    let server = TestServer::start_on(PUBLIC_IP, 0);
    server.set("/plain.rss", rss("plain"));
    server.set("/other.rss", rss("other"));
    let proxy = Proxy::http_with_auth("relay user", PROXY_PASSWORD);
    let user_url = format!("http://relay%20user@{}", proxy.addr);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let text = write_config(
        tmp.path(),
        "",
        &[
            (
                "authenticated",
                server.url("/plain.rss").to_string(),
                format!("proxy = \"{user_url}\"\nproxy_password_env = \"NW_TEST_PROXY_PASSWORD\""),
            ),
            (
                "wrong password",
                server.url("/other.rss").to_string(),
                format!(
                    "proxy = \"{user_url}\"\nproxy_password_env = \"NW_TEST_WRONG_PROXY_PASSWORD\""
                ),
            ),
            // The same proxy without a user: refused by it.
            (
                "anonymous",
                server.url("/other.rss").to_string(),
                format!("proxy = \"{}\"", proxy.url()),
            ),
        ],
    );
    let config = load(tmp.path(), &text);
    assert!(
        !format!("{:?}", config.feeds).contains(PROXY_PASSWORD),
        "Debug shows no password"
    );
    let s = one_cycle(&config).await;
    assert_eq!((s.new_articles, s.feeds_failed), (1, 2), "{s}");
    let mut failed: Vec<&str> = s.failures.iter().map(|(f, _)| f.as_str()).collect();
    failed.sort_unstable();
    assert_eq!(failed, ["anonymous", "wrong password"], "{s}");
    assert!(
        s.failures.iter().all(|(_, e)| e.contains("407")),
        "{:?}",
        s.failures
    );
    // Only the authenticated request was forwarded.
    let port = server.addr.port();
    assert_eq!(proxy.targets(), [format!("127.0.0.2:{port}/plain.rss")]);
    assert_eq!(server.counts().requests, 1);
}

#[test]
fn proxy_credentials_are_checked_at_load() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cases = [
        // A password in the URL: refused, and not repeated.
        (
            "proxy = \"http://u:hunter2@127.0.0.1:3128\"",
            "a password never belongs in a URL",
        ),
        (
            "proxy = \"http://u@127.0.0.1:3128\"",
            "no password: add `proxy_password_env`",
        ),
        (
            "proxy = \"http://127.0.0.1:3128\"\nproxy_password_env = \"NW_TEST_PROXY_PASSWORD\"",
            "names no user",
        ),
    ];
    for (extra, expected) in cases {
        let text = write_config(
            dir.path(),
            "",
            &[("f", "http://127.0.0.2/feed.rss".into(), extra.into())],
        );
        let err = Config::from_str(&dir.path().join("newswatch.toml"), &text, &env)
            .expect_err(extra)
            .to_string();
        assert!(err.contains(expected), "{extra}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // [fetch] proxy takes no user: authentication is per feed.
    let text = write_config(dir.path(), "proxy = \"http://u@127.0.0.1:3128\"", &[]);
    let err = Config::from_str(&dir.path().join("newswatch.toml"), &text, &env)
        .expect_err("a user in [fetch] proxy")
        .to_string();
    assert!(err.contains("set per feed"), "{err}");
}

#[tokio::test]
async fn through_a_proxy_a_redirect_to_an_internal_address_is_still_refused() {
    let (public, internal) = servers();
    let http = Proxy::http();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let text = write_config(
        tmp.path(),
        &format!("proxy = \"{}\"", http.url()),
        &[
            // An IP literal (2130706433 is 127.0.0.1) and a name that resolves to loopback.
            (
                "literal",
                public.url("/to-decimal").to_string(),
                String::new(),
            ),
            (
                "name",
                public.url("/to-localhost").to_string(),
                String::new(),
            ),
        ],
    );
    let s = one_cycle(&load(tmp.path(), &text)).await;
    assert_eq!(s.feeds_failed, 2, "{s}");
    for (feed, error) in &s.failures {
        assert!(error.contains("internal address"), "{feed}: {error}");
    }
    assert_eq!(
        http.targets().len(),
        2,
        "both first requests went through the proxy"
    );
    assert!(internal.seen().is_empty(), "{:?}", internal.seen());
}

/// The binary itself at trace level, then `status --json` and `feeds export`: no secret in any
/// of their output.
#[test]
fn secrets_never_reach_logs_status_or_opml() {
    let server = TestServer::start();
    protect(&server);
    server.set("/plain.rss", rss("plain"));
    let proxy = Proxy::http_with_auth("relay", PROXY_PASSWORD);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    write_config(
        tmp.path(),
        "",
        &[
            (
                "basic",
                server.url("/basic.rss").to_string(),
                BASIC_FEED.into(),
            ),
            (
                "bearer",
                server.url("/bearer.rss").to_string(),
                BEARER_FEED.into(),
            ),
            (
                "proxied",
                server.url("/plain.rss").to_string(),
                format!(
                    "proxy = \"http://relay@{}\"\nproxy_password_env = \"NW_TEST_PROXY_PASSWORD\"",
                    proxy.addr
                ),
            ),
        ],
    );
    let config = tmp.path().join("newswatch.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let run = |args: &[&str]| {
        let out = crate::support::bin::command(args)
            .env("NEWSWATCH_LOG", "trace")
            .env("NW_TEST_PASSWORD", PASSWORD)
            .env("NW_TEST_TOKEN", TOKEN)
            .env("NW_TEST_PROXY_PASSWORD", PROXY_PASSWORD)
            .output()
            .expect("the binary runs");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), all)
    };
    let (ok, once) = run(&["run", "--once", "--config", config]);
    assert!(ok && once.contains("3 new articles"), "{once}");
    assert_eq!(
        proxy.targets().len(),
        1,
        "the proxied feed went through its proxy"
    );
    assert!(once.contains("TRACE"), "trace logging was on: {once}");
    let (ok, status) = run(&["status", "--config", config, "--json"]);
    assert!(ok && status.contains("bearer"), "{status}");
    let (ok, opml) = run(&["feeds", "export", "--config", config]);
    assert!(ok && opml.contains("basic.rss"), "{opml}");
    let base64_password = BASIC.trim_start_matches("Basic ");
    // base64("relay:s3cret-proxy-pw"), the Proxy-Authorization credentials.
    let base64_proxy = "cmVsYXk6czNjcmV0LXByb3h5LXB3";
    for (what, text) in [
        ("run --once", &once),
        ("status --json", &status),
        ("feeds export", &opml),
    ] {
        for secret in [
            PASSWORD,
            TOKEN,
            "s3cret-cookie-value",
            base64_password,
            PROXY_PASSWORD,
            base64_proxy,
        ] {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
}

/// A redirect to another origin carries none of the feed's credentials (the feed opts into
/// internal redirects so the hop is made at all).
#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let (public, internal) = servers();
    internal.set("/feed.xml", rss("moved"));
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let text = write_config(
        tmp.path(),
        "",
        &[(
            "moved",
            public.url("/to-decimal").to_string(),
            format!("{BASIC_FEED}\nallow_private_network = true"),
        )],
    );
    let s = one_cycle(&load(tmp.path(), &text)).await;
    assert_eq!((s.new_articles, s.feeds_failed), (1, 0), "{s}");
    let first = &public.seen()[0];
    assert_eq!(
        first.headers.get("authorization").map(String::as_str),
        Some(BASIC)
    );
    let hop = &internal.seen()[0];
    for h in ["authorization", "cookie", "x-client"] {
        assert!(
            !hop.headers.contains_key(h),
            "{h} went to the other origin: {:?}",
            hop.headers
        );
    }
}
