//! Issue 20, full text: a teaser-only feed whose item pages are fetched (robots.txt honoured,
//! each link once, hostile pages bounded) and matched as `content`, against the loopback
//! server; an item whose page cannot be had is still matched on its feed text.

use std::net::{IpAddr, Ipv4Addr};

use newswatch::config::Config;
use newswatch::fetch::Fetcher;
use newswatch::pipeline::{Feeds, Jitter, Pipeline};
use newswatch::rules::RuleSet;
use newswatch::store::Store;

use super::polling::{at, servers};

const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/fulltext/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn teaser_feed(items: &[(&str, String)]) -> Vec<u8> {
    let mut s = String::from(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Teasers</title><link>http://example.org/</link><description>d</description><language>en</language>"#,
    );
    for (guid, link) in items {
        s.push_str(&format!(
            "<item><guid>{guid}</guid><title>Defence ministers meet ({guid})</title><link>{link}</link><description>Read more.</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s.into_bytes()
}

#[tokio::test]
async fn teaser_items_are_matched_on_their_pages_fetched_once_and_bounded() {
    let (public, internal) = servers();
    internal.set("/feed.xml", fixture("article.html"));
    public.set(
        "/robots.txt",
        b"User-agent: *\nDisallow: /private/\n".to_vec(),
    );
    public.set("/a/article.html", fixture("article.html"));
    public.set("/private/article.html", fixture("article.html"));
    let mut big = fixture("article.html");
    big.extend(std::iter::repeat_n(b' ', 2 << 20));
    public.set("/a/big.html", big);
    let url = |p: &str| public.url(p).to_string();
    let private = format!("http://127.0.0.1:{}/feed.xml", internal.addr.port());
    public.set(
        "/teasers.rss",
        teaser_feed(&[
            ("article", url("/a/article.html")),
            ("robots", url("/private/article.html")),
            ("big", url("/a/big.html")),
            ("redirect", url("/to-decimal")),
            ("private", private),
            ("slow", url("/drip")),
        ]),
    );
    // A second feed listing the same article: its page is not fetched again.
    public.set(
        "/again.rss",
        teaser_feed(&[("again", url("/a/article.html"))]),
    );

    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("rules")).expect("a rules directory");
    // Words only the article page has; every teaser has "Defence".
    std::fs::write(
        dir.join("rules/r.toml"),
        "[[rule]]\nid = \"interceptors\"\ntitle = \"Interceptors\"\nquery = \"content:interceptors\"\n\n\
         [[rule]]\nid = \"defence\"\ntitle = \"Defence\"\nquery = \"Defence\"\n",
    )
    .expect("write the rules");
    let text = format!(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\ntimeout = \"2s\"\nmax_body = \"1MB\"\nhost_spacing = \"0s\"\nper_host = 4\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n\
         [[feed]]\nname = \"teasers\"\nurl = \"{}\"\nfull_text = true\n\
         [[feed]]\nname = \"again\"\nurl = \"{}\"\nfull_text = \"auto\"\n",
        url("/teasers.rss"),
        url("/again.rss"),
    );
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write the config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let fetcher =
        Fetcher::with_public_overrides(&config.fetch, "newswatch-test/1", vec![PUBLIC_IP])
            .expect("a fetcher");
    let p = Pipeline::open(&config, &rules)
        .await
        .expect("the pipeline opens")
        .with_fetcher(fetcher)
        .with_jitter(Jitter::Fixed(0.0));
    let s = p.cycle(at(0), Feeds::Due).await.expect("a cycle");
    // Seven items, each matched once: all on "Defence", two (one page, two feeds) on the page.
    assert_eq!((s.new_articles, s.feeds_failed), (7, 0), "{s}");
    assert_eq!(s.matches, 7 + 2, "{s}");

    let mut store = Store::open(&config.state_dir).expect("the store opens");
    let mut interceptors: Vec<String> = crate::uncarried_matches(&mut store)
        .into_iter()
        .filter(|m| m.rule_id == "interceptors")
        .map(|m| m.title)
        .collect();
    interceptors.sort();
    assert_eq!(
        interceptors,
        [
            "Defence ministers meet (again)",
            "Defence ministers meet (article)"
        ]
    );
    let hits = |p: &str| public.seen().iter().filter(|s| s.path == p).count();
    assert_eq!(hits("/a/article.html"), 1, "fetched once for both feeds");
    assert_eq!(hits("/robots.txt"), 1);
    assert_eq!(hits("/private/article.html"), 0, "robots.txt refused it");
    assert_eq!(hits("/a/big.html"), 1);
    assert!(
        internal.seen().is_empty(),
        "no page reached the internal server"
    );
    // A second cycle: the feeds are unchanged and nothing is fetched again.
    let s = p.cycle(at(3600), Feeds::Due).await.expect("a second cycle");
    assert_eq!((s.new_articles, s.matches), (0, 0), "{s}");
    assert_eq!(hits("/a/article.html"), 1);
}

/// The daemon's stream: the page of a teaser item is fetched by the full-text stage and its
/// alert (saying the match came from the page) sent while another item's page hangs for the whole deadline, and the feed itself is
/// polled again meanwhile (pages never hold a feed's poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_stream_a_hung_page_holds_neither_the_feed_nor_other_pages() {
    use std::time::Duration;

    use crate::support::http::TestServer;
    use crate::support::mail::{Mail, eml_files};
    use tokio_util::sync::CancellationToken;

    let server = TestServer::start_on(PUBLIC_IP, 0);
    server.set("/a/article.html", fixture("article.html"));
    server.set(
        "/teasers.rss",
        teaser_feed(&[
            ("hung", server.url("/hang").to_string()),
            ("article", server.url("/a/article.html").to_string()),
        ]),
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("rules")).expect("a rules directory");
    std::fs::write(
        dir.join("rules/r.toml"),
        "[[rule]]\nid = \"interceptors\"\ntitle = \"Interceptors\"\nquery = \"content:interceptors\"\npriority = \"alert\"\n",
    )
    .expect("write the rules");
    let text = format!(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\ntimeout = \"30s\"\nhost_spacing = \"0s\"\nper_host = 4\nmin_interval = \"1s\"\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n\
         [[alert]]\nname = \"breaking\"\nto = [\"duty@example.org\"]\nwindow = \"0s\"\n\
         [[feed]]\nname = \"teasers\"\nurl = \"{}\"\ninterval = \"1s\"\nfull_text = true\n",
        server.url("/teasers.rss"),
    );
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write the config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let fetcher =
        Fetcher::with_public_overrides(&config.fetch, "newswatch-test/1", vec![PUBLIC_IP])
            .expect("a fetcher");
    let p = Pipeline::open(&config, &rules)
        .await
        .expect("the pipeline opens")
        .with_fetcher(fetcher);
    let outbox = dir.join("outbox");
    let shutdown = CancellationToken::new();
    let watch = async {
        loop {
            let alert = eml_files(&outbox)
                .iter()
                .map(|f| Mail::parse(&std::fs::read(f).unwrap_or_default()).text)
                .find(|t| t.contains("Defence ministers meet (article)"));
            if let Some(text) = alert {
                // The email says where the match came from.
                let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat.contains("matched: interceptors · found in the article page"),
                    "{text}"
                );
                break;
            }
            assert!(
                server.cut("/hang").is_none(),
                "the hung page ended before the alert"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The feed is polled again while the hung page is still pending.
        while server
            .seen()
            .iter()
            .filter(|s| s.path == "/teasers.rss")
            .count()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cut = server.cut("/hang");
        shutdown.cancel();
        cut
    };
    let (ran, cut) = tokio::time::timeout(Duration::from_secs(25), async {
        tokio::join!(
            newswatch::service::daemon::run_until(&p, &shutdown, newswatch::clock::now),
            watch
        )
    })
    .await
    .expect("the alert and a second poll within the hung page's 30 s deadline");
    ran.expect("run_until");
    assert_eq!(cut, None, "the hung page was still pending");
}

/// A page that fails transiently (5xx) is fetched again after a back-off, up to four times:
/// `/flaky` answers the fourth, `/500` never does and its item is matched on its teaser then.
/// Until then neither item is matched, and nothing is fetched again afterwards.
#[tokio::test]
async fn a_page_that_fails_transiently_is_fetched_again_with_back_off_a_bounded_number_of_times() {
    let (public, _internal) = servers();
    let url = |p: &str| public.url(p).to_string();
    public.set(
        "/teasers.rss",
        teaser_feed(&[("flaky", url("/flaky")), ("broken", url("/500"))]),
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("rules")).expect("a rules directory");
    std::fs::write(
        dir.join("rules/r.toml"),
        "[[rule]]\nid = \"defence\"\ntitle = \"Defence\"\nquery = \"Defence\"\n",
    )
    .expect("write the rules");
    let text = format!(
        "state_dir = \"state\"\nrules = [\"rules/*.toml\"]\nnew_feed_window = \"520w\"\n\
         [fetch]\ntimeout = \"2s\"\nhost_spacing = \"0s\"\nper_host = 4\ninterval = \"1h\"\n\
         [delivery]\nmethod = \"file\"\ndir = \"outbox\"\nfrom = \"nw@example.org\"\n\
         [[feed]]\nname = \"teasers\"\nurl = \"{}\"\nfull_text = true\n",
        url("/teasers.rss"),
    );
    let path = dir.join("newswatch.toml");
    std::fs::write(&path, &text).expect("write the config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rules = RuleSet::load(&config.rule_files).expect("the rules load");
    let fetcher =
        Fetcher::with_public_overrides(&config.fetch, "newswatch-test/1", vec![PUBLIC_IP])
            .expect("a fetcher");
    let p = Pipeline::open(&config, &rules)
        .await
        .expect("the pipeline opens")
        .with_fetcher(fetcher)
        .with_jitter(Jitter::Fixed(0.0));
    let hits = |path: &str| public.seen().iter().filter(|s| s.path == path).count();
    // (time, fetches of each page so far, matches that cycle): the retries come 1, 2 and 4
    // minutes after each failure.
    for (secs, fetched, matches) in [
        (0, 1, 0),
        (30, 1, 0),
        (60, 2, 0),
        (120, 2, 0),
        (180, 3, 0),
        (420, 4, 2),
        (3600, 4, 0),
    ] {
        let s = p.cycle(at(secs), Feeds::Due).await.expect("a cycle");
        assert_eq!(
            (hits("/flaky"), hits("/500"), s.matches),
            (fetched, fetched, matches),
            "at {secs}s: {s}"
        );
    }
}
