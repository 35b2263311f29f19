//! Fetch and parse against a misbehaving loopback server: deadlines, size caps, redirects and the
//! network policy, Retry-After, not-a-feed bodies, broken encodings and item identity.
//! Deadlines are sub-second; nothing sleeps beyond them, and no assertion reads a clock.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use newswatch::config::FetchSettings;
use newswatch::fetch::{FetchError, FetchOutcome, FetchPolicy, FetchReport, Fetcher, HostLimits};
use newswatch::model::Validators;
use newswatch::parse::identity::alternate_keys;
use newswatch::parse::{ParsedFeed, Recovery, parse_feed_off_thread};
use newswatch::policy::poll::{self, Bounds, FailureKind, Hints, Outcome, PollInput};
use url::Url;

use crate::support::http::{Cut, DRIP_LENGTH, FEED_ETAG, SLOW_HEAD, TestServer};

const TIMEOUT: Duration = Duration::from_millis(600);
/// How long a test waits for something that would otherwise hang it: not a measurement.
const HANG_GUARD: Duration = Duration::from_secs(60);
const MAX_BODY: u64 = 1 << 20;
const UA: &str = "newswatch-test/1.0 (+https://example.invalid/bot)";

/// Stands in for the internet: served from 127.0.0.2, which the fetcher is told is public.
const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const INTERNAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn settings() -> FetchSettings {
    FetchSettings {
        connect_timeout: Duration::from_millis(500),
        timeout: TIMEOUT,
        max_body_bytes: MAX_BODY,
        concurrency: 4,
        default_interval: Duration::from_secs(15 * 60),
        proxy: None,
        full_text_concurrency: 1,
    }
}

struct Env {
    public: TestServer,
    internal: TestServer,
    fetcher: Fetcher,
}

fn env() -> Env {
    let internal = TestServer::start_on(INTERNAL_IP, 0);
    let public = TestServer::start_on(PUBLIC_IP, internal.addr.port());
    let fetcher = Fetcher::with_public_overrides(&settings(), UA, vec![PUBLIC_IP])
        .expect("the test settings make a fetcher")
        .with_host_limits(HostLimits {
            per_host: 8,
            spacing: Duration::ZERO,
        });
    Env {
        public,
        internal,
        fetcher,
    }
}

/// A compact, exact description of a fetch result.
fn describe(result: &Result<FetchReport, FetchError>) -> String {
    match result {
        Ok(r) => {
            let mut s = match &r.outcome {
                FetchOutcome::NotModified => "304".to_string(),
                FetchOutcome::Fetched { body, .. } => {
                    assert!(!body.is_empty());
                    "feed".to_string()
                }
            };
            if let Some(p) = &r.permanent_redirect {
                s.push_str(&format!(" moved:{}", p.path()));
            }
            s.push_str(&format!(" at:{}", r.final_url.path()));
            s
        }
        Err(e) => match e {
            FetchError::Status(s) => format!("status {}", s.as_u16()),
            FetchError::RetryLater {
                status,
                retry_after,
            } => format!("retry {} {retry_after:?}", status.as_u16()),
            FetchError::Timeout(d) => format!("timeout {d:?}"),
            FetchError::TooLarge(n) => format!("too large {n}"),
            FetchError::Corrupt(_) => "corrupt".into(),
            FetchError::Truncated { .. } => "truncated".into(),
            FetchError::Scheme(s) => format!("scheme {s}"),
            FetchError::TooManyRedirects => "too many redirects".into(),
            FetchError::RedirectLoop(u) => format!("loop {}", u.path()),
            FetchError::BadRedirect(_) => "bad redirect".into(),
            FetchError::Blocked(u) => format!("blocked {u}"),
            FetchError::NotAFeed { what, .. } => format!("not a feed: {what}"),
            FetchError::EmptyBody => "empty".into(),
            other => format!("other: {other}"),
        },
    }
}

async fn get(env: &Env, path: &str, policy: FetchPolicy) -> Result<FetchReport, FetchError> {
    env.fetcher
        .fetch_with(&env.public.url(path), &Validators::default(), &policy)
        .await
}

#[tokio::test]
async fn hostile_responses_table() {
    let env = env();
    let ip = env.internal.addr.port();
    let blocked = |host: &str| {
        let u = Url::parse(&format!("http://{host}:{ip}/feed.xml")).map(|u| u.to_string());
        format!("blocked {}", u.unwrap_or_default())
    };
    let too_large = format!("too large {MAX_BODY}");
    let cases: Vec<(&str, String)> = vec![
        ("/feed.xml", "feed at:/feed.xml".into()),
        ("/gzip-feed", "feed at:/gzip-feed".into()),
        ("/deflate-feed", "feed at:/deflate-feed".into()),
        ("/br-feed", "feed at:/br-feed".into()),
        // Redirects: 301/308 are permanent, 302/307 are not; a temporary hop ends the run.
        ("/moved", "feed moved:/feed.xml at:/feed.xml".into()),
        ("/moved-308", "feed moved:/feed.xml at:/feed.xml".into()),
        ("/found", "feed at:/feed.xml".into()),
        ("/temporary-307", "feed at:/feed.xml".into()),
        ("/moved-then-found", "feed moved:/found at:/feed.xml".into()),
        ("/found-then-moved", "feed at:/feed.xml".into()),
        ("/hops/5", "feed at:/hops/0".into()),
        ("/hops/6", "too many redirects".into()),
        ("/loop-a", "loop /loop-a".into()),
        ("/no-location", "bad redirect".into()),
        ("/to-ftp", "scheme ftp".into()),
        ("/to-file", "scheme file".into()),
        // A public feed may not redirect onto internal addresses, however they are spelled.
        ("/to-decimal", blocked("127.0.0.1")),
        ("/to-octal", blocked("127.0.0.1")),
        ("/to-hex", blocked("127.0.0.1")),
        ("/to-short", blocked("127.0.0.1")),
        ("/to-ipv6", blocked("[::1]")),
        ("/to-mapped", blocked("[::ffff:127.0.0.1]")),
        ("/to-localhost", "blocked localhost".into()),
        (
            "/to-metadata",
            "blocked http://169.254.169.254/latest/meta-data/".into(),
        ),
        ("/to-private", "blocked http://10.0.0.1/feed.xml".into()),
        // Rate limiting.
        ("/429-seconds", "retry 429 Some(Delay(120s))".into()),
        (
            "/429-date",
            "retry 429 Some(At(2037-10-21T07:28:00Z))".into(),
        ),
        ("/429-garbage", "retry 429 None".into()),
        (
            "/429-huge",
            "retry 429 Some(Delay(18446744073709551615s))".into(),
        ),
        ("/503", "retry 503 Some(Delay(3600s))".into()),
        ("/500", "status 500".into()),
        ("/404", "status 404".into()),
        // Bodies that are not feeds, or too big, or broken.
        ("/html", "not a feed: an HTML page".into()),
        ("/captive", "not a feed: an HTML page".into()),
        ("/empty", "empty".into()),
        ("/gzip-bomb", too_large.clone()),
        ("/deflate-bomb", too_large.clone()),
        ("/huge-declared", too_large.clone()),
        ("/huge-undeclared", too_large),
        ("/truncated-plain", "truncated".into()),
        ("/truncated-gzip", "corrupt".into()),
        ("/corrupt-gzip", "corrupt".into()),
    ];
    // Every case must end in its own outcome, not in the deadline: `/huge-declared` sends five
    // bytes and then hangs, so "too large" there proves the declared length was refused up front.
    for (path, want) in cases {
        let got = describe(&get(&env, path, FetchPolicy::default()).await);
        assert_eq!(got, want, "{path}");
    }
    let leaked: Vec<String> = env.internal.seen().into_iter().map(|s| s.path).collect();
    assert!(leaked.is_empty(), "internal server was reached: {leaked:?}");
}

/// One deadline covers the whole response: a server that never answers, one that sends the
/// body a byte at a time (a per-read timeout would never fire) and one that sends the headers a
/// byte at a time all end in `Timeout`, and the server sees the client leave before it finished.
#[tokio::test]
async fn total_deadline_cuts_off_silent_dripping_and_slow_servers() {
    let env = env();
    let fetches = async {
        tokio::join!(
            get(&env, "/hang", FetchPolicy::default()),
            get(&env, "/drip", FetchPolicy::default()),
            get(&env, "/slow-headers", FetchPolicy::default()),
        )
    };
    // Only a guard against a hang: the servers here would take hours to finish.
    let (hang, drip, slow) = tokio::time::timeout(HANG_GUARD, fetches)
        .await
        .expect("the fetch deadline ends every response");
    let want = format!("timeout {TIMEOUT:?}");
    assert_eq!(
        [describe(&hang), describe(&drip), describe(&slow)],
        [want.clone(), want.clone(), want]
    );
    let cut = |path: &'static str| {
        let server = &env.public;
        async move {
            tokio::time::timeout(HANG_GUARD, server.cut_off(path))
                .await
                .expect("the client closed the connection it gave up on")
        }
    };
    // Each server was still sending when the client left.
    assert_eq!(cut("/hang").await, Cut { bytes_sent: 0 });
    let drip = cut("/drip").await.bytes_sent;
    assert!(drip < DRIP_LENGTH, "the drip finished: {drip} bytes");
    let slow = cut("/slow-headers").await.bytes_sent;
    assert!(
        slow < SLOW_HEAD.len(),
        "the slow head finished: {slow} bytes"
    );
}

/// Two requests to one host with `per_host = 1` and a spacing: the second starts no earlier
/// than the spacing after the first. A lower bound only, which load cannot break; how fast the
/// requests go is the benchmarks' business.
#[tokio::test]
async fn requests_to_one_host_are_spaced() {
    let env = env();
    let spacing = Duration::from_millis(300);
    let polite = Fetcher::with_public_overrides(&settings(), UA, vec![PUBLIC_IP])
        .expect("the test settings make a fetcher")
        .with_host_limits(HostLimits {
            per_host: 1,
            spacing,
        });
    let url = env.public.url("/feed.xml");
    let none = Validators::default();
    let started = tokio::time::Instant::now();
    let (a, b) = tokio::join!(polite.fetch(&url, &none), polite.fetch(&url, &none));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(env.public.counts().requests, 2);
    let elapsed = started.elapsed();
    assert!(elapsed >= spacing, "{elapsed:?}");
}

#[tokio::test]
async fn redirects_to_internal_addresses_when_allowed() {
    let env = env();
    let allow = FetchPolicy {
        allow_private_network: true,
        ..FetchPolicy::default()
    };
    let got = describe(&get(&env, "/to-decimal", allow).await);
    assert_eq!(got, "feed at:/feed.xml");
    assert_eq!(env.internal.seen().len(), 1);

    // A feed the operator configured on an internal host may redirect within the network.
    let plain = Fetcher::new(&settings(), UA).expect("the test settings make a fetcher");
    let internal_origin = TestServer::start_on(INTERNAL_IP, env.internal.addr.port());
    let got = plain
        .fetch_with(
            &internal_origin.url("/to-short"),
            &Validators::default(),
            &FetchPolicy::default(),
        )
        .await;
    assert_eq!(describe(&got), "feed at:/feed.xml");
}

#[tokio::test]
async fn conditional_get_validators_and_cache_hints() {
    let env = env();
    let url = env.public.url("/feed.xml");
    let first = env
        .fetcher
        .fetch_with(&url, &Validators::default(), &FetchPolicy::default())
        .await
        .expect("the feed fetches");
    assert_eq!(first.cache.max_age, Some(Duration::from_secs(1800)));
    let FetchOutcome::Fetched {
        validators,
        content_type,
        ..
    } = first.outcome
    else {
        panic!("expected a body");
    };
    assert_eq!(
        validators,
        Validators {
            etag: Some(FEED_ETAG.into()),
            last_modified: Some("Tue, 04 Mar 2025 10:00:00 GMT".into()),
        }
    );
    assert_eq!(
        content_type.as_deref(),
        Some("application/rss+xml; charset=utf-8")
    );
    let second = env.fetcher.fetch(&url, &validators).await;
    assert!(
        matches!(second, Ok(FetchOutcome::NotModified)),
        "{second:?}"
    );

    let seen = env.public.seen();
    let header = |i: usize, h: &str| seen[i].headers.get(h).cloned().unwrap_or_default();
    assert_eq!(header(0, "user-agent"), UA);
    assert!(header(0, "accept-encoding").contains("gzip"));
    assert!(header(0, "accept-encoding").contains("br"));
    assert_eq!(header(0, "if-none-match"), "");
    assert_eq!(header(1, "if-none-match"), FEED_ETAG);
    assert_eq!(
        header(1, "if-modified-since"),
        "Tue, 04 Mar 2025 10:00:00 GMT"
    );
}

/// 500 three times then OK: the schedule backs off exponentially, then returns to the interval;
/// 503 with Retry-After is honoured.
#[tokio::test]
async fn failures_back_off_and_recover() {
    let env = env();
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default();
    let interval = Duration::from_secs(15 * 60);
    let mut errors = 0;
    let mut delays = Vec::new();
    for _ in 0..4 {
        let result = get(&env, "/flaky", FetchPolicy::default()).await;
        let outcome = match &result {
            Ok(_) => {
                errors = 0;
                Outcome::Fetched
            }
            Err(e) => {
                errors += 1;
                Outcome::Failed {
                    kind: e.failure_kind(),
                    retry_after: e.retry_after(),
                }
            }
        };
        let input = PollInput {
            interval,
            outcome,
            consecutive_errors: errors,
            hints: Hints::default(),
            now,
            jitter: 0.0,
        };
        delays.push((
            describe(&result),
            poll::delay(&input, &Bounds::default()).as_secs() / 60,
        ));
    }
    let want = [
        ("status 500", 15),
        ("status 500", 30),
        ("status 500", 60),
        ("feed at:/flaky", 15),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(s, m)| (s.to_string(), *m)).collect();
    assert_eq!(delays, want);

    let err = get(&env, "/503", FetchPolicy::default()).await.err();
    let input = PollInput {
        interval,
        outcome: Outcome::Failed {
            kind: err
                .as_ref()
                .map_or(FailureKind::Persistent, FetchError::failure_kind),
            retry_after: err.as_ref().and_then(FetchError::retry_after),
        },
        consecutive_errors: 1,
        hints: Hints::default(),
        now,
        jitter: 0.5,
    };
    let due = poll::next_due(&input, &Bounds::default());
    assert_eq!(due, now + chrono::Duration::hours(1));
}

/// Persistent failures (a person must fix something) back off faster than transient ones; both
/// are retried for ever.
#[tokio::test]
async fn failures_are_classified() {
    let env = env();
    let t = FailureKind::Transient;
    let p = FailureKind::Persistent;
    let cases = [
        ("/500", t),
        ("/503", t),
        ("/429-garbage", t),
        ("/truncated-gzip", t),
        ("/empty", t),
        ("/404", p),
        ("/html", p),
        ("/to-decimal", p),
        ("/loop-a", p),
        ("/to-ftp", p),
        ("/gzip-bomb", p),
    ];
    for (path, want) in cases {
        let got = get(&env, path, FetchPolicy::default()).await;
        assert_eq!(got.err().map(|e| e.failure_kind()), Some(want), "{path}");
    }
}

async fn fetch_and_parse(env: &Env, path: &str) -> ParsedFeed {
    let report = get(env, path, FetchPolicy::default())
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let FetchOutcome::Fetched {
        body, content_type, ..
    } = report.outcome
    else {
        panic!("{path}: expected a body");
    };
    parse_feed_off_thread(body, report.final_url, content_type, true)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn broken_but_recoverable_feeds() {
    let env = env();
    // (path, encoding, recovery, feed title, first item title, first item summary)
    let cases = [
        (
            "/latin1",
            "windows-1252",
            Recovery::Clean,
            "Le Monde à Kyiv",
            "Café diplomatique: trêve et garanties",
            "Résumé « accord »",
        ),
        (
            "/bare-amp",
            "UTF-8",
            Recovery::Repaired,
            "Q&A Weekly",
            "Minerals deal Q&A: what AT&T & co need to know",
            "Healey answers",
        ),
        (
            "/no-version",
            "UTF-8",
            Recovery::Clean,
            "Old",
            "Versionless",
            "",
        ),
        (
            "/utf16",
            "UTF-16LE",
            Recovery::Clean,
            "Київ",
            "Зеленський і Гегсет",
            "",
        ),
    ];
    for (path, encoding, recovery, title, item, summary) in cases {
        let feed = fetch_and_parse(&env, path).await;
        let first = &feed.articles[0];
        assert_eq!(
            (
                feed.encoding,
                feed.recovery,
                feed.title.as_deref(),
                first.title.as_str(),
                first.summary.as_str()
            ),
            (encoding, recovery, Some(title), item, summary),
            "{path}"
        );
    }
    let amp = fetch_and_parse(&env, "/bare-amp").await;
    assert_eq!(
        amp.articles[0].link.as_deref(),
        Some("https://news.example/qa?id=1")
    );
}

#[tokio::test]
async fn item_identity_is_stable_across_polls() {
    let env = env();
    let keys = |f: &ParsedFeed| f.articles.iter().map(|a| a.key.clone()).collect::<Vec<_>>();

    // Guid-less items: the same keys on every poll, never feed-rs's random ids.
    let polls = [
        fetch_and_parse(&env, "/guidless").await,
        fetch_and_parse(&env, "/guidless").await,
        fetch_and_parse(&env, "/guidless").await,
    ];
    let first = keys(&polls[0]);
    assert_eq!(first[0], "link:https://news.example/a");
    assert_eq!(first[1], "link:https://news.example/b");
    assert_eq!(
        first[2],
        newswatch::parse::identity::content_key("No link at all", "Only words")
    );
    assert_eq!(keys(&polls[1]), first);
    assert_eq!(keys(&polls[2]), first);

    // Guid churn: the primary key changes, the link-based alternate key does not.
    let a = fetch_and_parse(&env, "/churn").await;
    let b = fetch_and_parse(&env, "/churn").await;
    assert_eq!(
        (keys(&a), keys(&b)),
        (
            vec!["id:churn-1".to_string()],
            vec!["id:churn-2".to_string()]
        )
    );
    let alt = vec!["link:https://news.example/stable".to_string()];
    assert_eq!(alternate_keys(&a.articles[0]), alt);
    assert_eq!(alternate_keys(&b.articles[0]), alt);

    // A headline edit keeps the key; the new title comes through for the store to update.
    let before = fetch_and_parse(&env, "/edit").await;
    let after = fetch_and_parse(&env, "/edit").await;
    assert_eq!(keys(&before), vec!["id:story-7".to_string()]);
    assert_eq!(keys(&after), keys(&before));
    assert_eq!(
        (
            before.articles[0].title.as_str(),
            after.articles[0].title.as_str()
        ),
        (
            "Healey to meet Hegseth",
            "Healey meets Hegseth in Washington"
        )
    );
}

/// The bundled demo feeds go through the same path (`file://`) and parse cleanly, with every
/// title the manifest lists.
#[tokio::test]
async fn demo_feeds_parse_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/feeds");
    let manifest: toml::Table = std::fs::read_to_string(dir.join("MANIFEST.toml"))
        .map_err(|e| e.to_string())
        .and_then(|s| s.parse().map_err(|e: toml::de::Error| e.to_string()))
        .expect("MANIFEST.toml reads and parses");
    let articles = manifest
        .get("article")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(articles.len(), 64);
    let fetcher = Fetcher::new(&settings(), UA).expect("the test settings make a fetcher");
    let str_of = |v: &toml::Value, k: &str| {
        v.get(k)
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let files: std::collections::BTreeSet<String> =
        articles.iter().map(|a| str_of(a, "feed")).collect();
    for file in files {
        let url = Url::from_file_path(dir.join(&file)).unwrap_or_else(|()| panic!("{file}"));
        let Ok(FetchOutcome::Fetched { body, .. }) =
            fetcher.fetch(&url, &Validators::default()).await
        else {
            panic!("{file}: fetch failed");
        };
        let feed = parse_feed_off_thread(body, url, None, false)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(feed.recovery, Recovery::Clean, "{file}");
        let mut got: Vec<String> = feed.articles.iter().map(|a| a.title.clone()).collect();
        let mut want: Vec<String> = articles
            .iter()
            .filter(|a| str_of(a, "feed") == file)
            .map(|a| str_of(a, "title"))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{file}");
        let mut keys: Vec<&str> = feed.articles.iter().map(|a| a.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), feed.articles.len(), "{file}: duplicate keys");
    }
}
