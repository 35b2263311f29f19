//! The misbehaving endpoints of the test server, one per hostile case (see `respond`), and the
//! bytes-on-the-wire helpers every endpoint uses. Endpoints that stream or stall record how the
//! client left them (`Shared::record_cut`), so a test asserts a cut-off instead of timing it.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Seen, Shared};

pub const FEED_ETAG: &str = "\"v1\"";

/// Items `/flood` lists at once: more than the flood threshold (`FLOOD_NEW_ITEMS`, 100).
pub const FLOOD_ITEMS: usize = 250;

/// Items `/firehose` lists on every poll, all of them new each time.
pub const FIREHOSE_ITEMS: usize = 1_000;

/// What the compression bombs inflate to: four times the tests' 1 MiB body cap, from a few KiB
/// on the wire.
pub const BOMB_BYTES: usize = 4 << 20;

/// What `/slow-headers` sends, one byte every 100 ms, before it stalls: never a whole head.
pub const SLOW_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Padding: ";

/// The body length `/drip` declares, one byte every 50 ms: over an hour and a half to finish.
pub const DRIP_LENGTH: usize = 100_000;

pub(super) async fn respond(
    server: &Shared,
    req: &Seen,
    n: u32,
    out: &mut TcpStream,
) -> std::io::Result<()> {
    let path = req.path.as_str();
    let internal = |p: &str, host: &str| format!("http://{host}:{}{p}", server.internal_port);
    match path {
        "/feed.xml" => {
            if req.headers.get("if-none-match").map(String::as_str) == Some(FEED_ETAG) {
                return send(out, "304 Not Modified", &[("ETag", FEED_ETAG)], b"").await;
            }
            let headers = [
                ("Content-Type", "application/rss+xml; charset=utf-8"),
                ("ETag", FEED_ETAG),
                ("Last-Modified", "Tue, 04 Mar 2025 10:00:00 GMT"),
                ("Cache-Control", "public, max-age=1800"),
            ];
            send(
                out,
                "200 OK",
                &headers,
                feed(&[("g1", "Healey meets Hegseth")]).as_bytes(),
            )
            .await
        }
        "/hang" => {
            wait_for_close(out).await;
            server.record_cut(path, 0);
            Ok(())
        }
        "/slow-headers" => {
            let mut sent = 0;
            for b in SLOW_HEAD.as_bytes() {
                if out.write_all(&[*b]).await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wait_for_close(out).await;
            server.record_cut(path, sent);
            Ok(())
        }
        "/drip" => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {DRIP_LENGTH}\r\n\r\n");
            let mut sent = 0;
            if out.write_all(head.as_bytes()).await.is_ok() {
                sent += head.len();
                // Writes to a connection the client closed fail within a byte or two (RST).
                while sent < head.len() + DRIP_LENGTH && out.write_all(b"<").await.is_ok() {
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            server.record_cut(path, sent);
            Ok(())
        }
        "/paired" => {
            server.wait_for_a_partner().await;
            send(out, "200 OK", &[], feed(&[("p1", "Paired")]).as_bytes()).await
        }
        "/gzip-bomb" => {
            let bomb = compress("gzip", &vec![0u8; BOMB_BYTES]);
            send(out, "200 OK", &[("Content-Encoding", "gzip")], &bomb).await
        }
        "/deflate-bomb" => {
            let bomb = compress("deflate", &vec![b' '; BOMB_BYTES]);
            send(out, "200 OK", &[("Content-Encoding", "deflate")], &bomb).await
        }
        "/gzip-feed" | "/deflate-feed" | "/br-feed" => {
            let enc = &path[1..path.len() - 5];
            let enc = if enc == "br" { "br" } else { enc };
            let body = compress(enc, feed(&[("g1", "Compressed")]).as_bytes());
            send(out, "200 OK", &[("Content-Encoding", enc)], &body).await
        }
        "/truncated-gzip" => {
            let mut body = compress("gzip", feed(&[("g1", "Cut")]).repeat(20).as_bytes());
            body.truncate(body.len() / 2);
            send(out, "200 OK", &[("Content-Encoding", "gzip")], &body).await
        }
        "/truncated-plain" => {
            // Half a feed, then the connection closes before the declared length.
            let body = feed(&[("t1", "Cut short")]).repeat(20);
            let half = &body.as_bytes()[..body.len() / 2];
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            out.write_all(head.as_bytes()).await?;
            out.write_all(half).await?;
            Ok(())
        }
        "/overlong-body" => {
            // A whole feed behind a Content-Length of half of it: the client reads half a feed.
            let body = feed(&[("o1", "Hegseth overlong"), ("o2", "Hegseth cut here")]);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() / 2
            );
            out.write_all(head.as_bytes()).await?;
            out.write_all(body.as_bytes()).await?;
            out.shutdown().await
        }
        "/cut-close" => {
            // No Content-Length, the connection is the delimiter, and it closes mid-item.
            let body = feed(&[("c1", "Hegseth cut by a close"), ("c2", "Never whole")]);
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            out.write_all(&body.as_bytes()[..body.len() * 2 / 3])
                .await?;
            out.shutdown().await
        }
        "/corrupt-gzip" => {
            let body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data at all";
            send(out, "200 OK", &[("Content-Encoding", "gzip")], body).await
        }
        "/huge-declared" => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n<rss>")
                .await?;
            std::future::pending().await
        }
        "/huge-undeclared" => {
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            let block = vec![b'x'; 64 * 1024];
            out.write_all(b"<rss>").await?;
            loop {
                out.write_all(&block).await?;
            }
        }
        "/loop-a" => redirect(out, "302 Found", "/loop-b").await,
        "/loop-b" => redirect(out, "302 Found", "/loop-a").await,
        p if p.starts_with("/hops/") => {
            let left: u32 = p[6..].parse().unwrap_or(0);
            if left == 0 {
                send(out, "200 OK", &[], feed(&[("g1", "After hops")]).as_bytes()).await
            } else {
                redirect(out, "302 Found", &format!("/hops/{}", left - 1)).await
            }
        }
        "/moved" => redirect(out, "301 Moved Permanently", "/feed.xml").await,
        "/moved-308" => redirect(out, "308 Permanent Redirect", "/feed.xml").await,
        "/found" => redirect(out, "302 Found", "/feed.xml").await,
        "/temporary-307" => redirect(out, "307 Temporary Redirect", "/feed.xml").await,
        "/moved-then-found" => redirect(out, "301 Moved Permanently", "/found").await,
        "/found-then-moved" => redirect(out, "302 Found", "/moved").await,
        "/no-location" => send(out, "302 Found", &[], b"").await,
        "/to-ftp" => redirect(out, "302 Found", "ftp://127.0.0.1/feed.xml").await,
        "/to-file" => redirect(out, "301 Moved Permanently", "file:///etc/passwd").await,
        "/to-decimal" => redirect(out, "302 Found", &internal("/feed.xml", "2130706433")).await,
        "/to-octal" => redirect(out, "302 Found", &internal("/feed.xml", "0177.0.0.1")).await,
        "/to-hex" => redirect(out, "302 Found", &internal("/feed.xml", "0x7f.0.0.1")).await,
        "/to-short" => redirect(out, "302 Found", &internal("/feed.xml", "127.1")).await,
        "/to-localhost" => redirect(out, "302 Found", &internal("/feed.xml", "localhost")).await,
        "/to-ipv6" => redirect(out, "302 Found", &internal("/feed.xml", "[::1]")).await,
        "/to-mapped" => {
            redirect(
                out,
                "302 Found",
                &internal("/feed.xml", "[::ffff:127.0.0.1]"),
            )
            .await
        }
        "/to-metadata" => {
            redirect(out, "302 Found", "http://169.254.169.254/latest/meta-data/").await
        }
        "/to-private" => redirect(out, "302 Found", "http://10.0.0.1/feed.xml").await,
        "/429-seconds" => send(out, "429 Too Many Requests", &[("Retry-After", "120")], b"").await,
        "/429-date" => {
            let h = [("Retry-After", "Wed, 21 Oct 2037 07:28:00 GMT")];
            send(out, "429 Too Many Requests", &h, b"").await
        }
        "/429-garbage" => {
            send(
                out,
                "429 Too Many Requests",
                &[("Retry-After", "soon-ish")],
                b"",
            )
            .await
        }
        "/429-huge" => {
            let h = [("Retry-After", "99999999999999999999")];
            send(out, "429 Too Many Requests", &h, b"").await
        }
        "/503" => {
            send(
                out,
                "503 Service Unavailable",
                &[("Retry-After", "3600")],
                b"",
            )
            .await
        }
        "/500" => send(out, "500 Internal Server Error", &[], b"oops").await,
        "/404" => send(out, "404 Not Found", &[], b"gone").await,
        "/flaky" if n <= 3 => send(out, "500 Internal Server Error", &[], b"oops").await,
        "/flaky" => send(out, "200 OK", &[], feed(&[("g1", "Back again")]).as_bytes()).await,
        "/html" => {
            let body =
                b"<!DOCTYPE html>\n<html><head><title>News</title></head><body>Home</body></html>";
            send(
                out,
                "200 OK",
                &[("Content-Type", "text/html; charset=utf-8")],
                body,
            )
            .await
        }
        "/captive" => {
            let body = b"\n<HTML><HEAD><TITLE>Hotel Wi-Fi</TITLE></HEAD><BODY><form>Log in</form></BODY></HTML>";
            send(
                out,
                "200 OK",
                &[("Content-Type", "application/rss+xml")],
                body,
            )
            .await
        }
        "/empty" => {
            send(
                out,
                "200 OK",
                &[("Content-Type", "application/rss+xml")],
                b"",
            )
            .await
        }
        "/latin1" => {
            let body = b"<rss version=\"2.0\"><channel><title>Le Monde \xe0 Kyiv</title>\
                <item><guid>l1</guid><title>Caf\xe9 diplomatique: tr\xeave et garanties</title>\
                <description>R\xe9sum\xe9 \xab accord \xbb</description></item></channel></rss>";
            send(
                out,
                "200 OK",
                &[("Content-Type", "application/rss+xml")],
                body,
            )
            .await
        }
        "/bare-amp" => {
            let body = "<rss version=\"2.0\"><channel><title>Q&A Weekly</title><item>\
                <guid>a1</guid><title>Minerals deal Q&A: what AT&T & co &nbsp;need to know</title>\
                <link>https://news.example/qa?id=1&utm_source=rss</link>\
                <description>Healey &#0; &#xFFFE;answers</description></item></channel></rss>";
            send(out, "200 OK", &[], body.as_bytes()).await
        }
        "/no-version" => {
            let body = "<rss><channel><title>Old</title><item><guid>o1</guid>\
                <title>Versionless</title></item></channel></rss>";
            send(out, "200 OK", &[], body.as_bytes()).await
        }
        "/utf16" => {
            let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss version=\"2.0\"><channel>\
                <title>Київ</title><item><guid>u1</guid><title>Зеленський і Гегсет</title></item>\
                </channel></rss>";
            let body: Vec<u8> = [0xFF, 0xFE]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect();
            send(out, "200 OK", &[("Content-Type", "application/xml")], &body).await
        }
        "/guidless" => {
            let body = "<rss version=\"2.0\"><channel><title>G</title>\
                <item><title>Linked one</title><link>https://news.example/a?utm_medium=rss#top</link></item>\
                <item><title>Linked two</title><link>https://NEWS.example:443/b</link></item>\
                <item><title>No link at all</title><description>Only words</description></item>\
                </channel></rss>";
            send(out, "200 OK", &[], body.as_bytes()).await
        }
        "/churn" => {
            let body = format!(
                "<rss version=\"2.0\"><channel><title>C</title><item><guid>churn-{n}</guid>\
                 <title>Stable headline</title><link>https://news.example/stable</link></item>\
                 </channel></rss>"
            );
            send(out, "200 OK", &[], body.as_bytes()).await
        }
        "/edit" => {
            let title = if n == 1 {
                "Healey to meet Hegseth"
            } else {
                "Healey meets Hegseth in Washington"
            };
            send(out, "200 OK", &[], feed(&[("story-7", title)]).as_bytes()).await
        }
        "/ttl" if req.headers.get("if-none-match").map(String::as_str) == Some("\"ttl\"") => {
            send(out, "304 Not Modified", &[("ETag", "\"ttl\"")], b"").await
        }
        "/ttl" => {
            // A feed asking for hourly polls with <ttl>, and no HTTP cache headers.
            let body = feed(&[("t1", "Hourly")]).replace("<channel>", "<channel><ttl>60</ttl>");
            send(out, "200 OK", &[("ETag", "\"ttl\"")], body.as_bytes()).await
        }
        "/dries-up" => {
            // A new item on each of the first four polls, nothing new on the next four, then
            // news again.
            let k = if (5..=8).contains(&n) { 4 } else { n };
            let (g, t) = (format!("d{k}"), format!("Dispatch {k}"));
            send(out, "200 OK", &[], feed(&[(&g, &t)]).as_bytes()).await
        }
        "/vanish" => {
            // The Hegseth story is missing from the second and third polls, then returns.
            let items: &[(&str, &str)] = if n == 2 || n == 3 {
                &[("v2", "Markets steady")]
            } else {
                &[
                    ("v1", "Hegseth story that vanishes"),
                    ("v2", "Markets steady"),
                ]
            };
            send(out, "200 OK", &[], feed(items).as_bytes()).await
        }
        "/flood" if req.headers.get("if-none-match").map(String::as_str) == Some("\"flood\"") => {
            send(out, "304 Not Modified", &[("ETag", "\"flood\"")], b"").await
        }
        "/flood" => {
            let ids: Vec<(String, String)> = (0..FLOOD_ITEMS)
                .map(|i| (format!("flood-{i}"), format!("Flood item {i}")))
                .collect();
            let items: Vec<(&str, &str)> =
                ids.iter().map(|(g, t)| (g.as_str(), t.as_str())).collect();
            let h = [("ETag", "\"flood\"")];
            send(out, "200 OK", &h, feed(&items).as_bytes()).await
        }
        "/churn-rev" | "/churn-scheme" => {
            // The same five stories on every poll under new guids and bumped links: `?rev=N`, or
            // http/https and `www.` alternating with a query bump no noise list knows.
            let items: Vec<(String, String, String)> = (0..5)
                .map(|i| {
                    let link = if path == "/churn-rev" {
                        format!("https://news.example/story-{i}?rev={n}")
                    } else if n % 2 == 1 {
                        format!("http://news.example/s{i}?edition={n}")
                    } else {
                        format!("https://www.news.example/s{i}?edition={n}")
                    };
                    let title = format!("Hegseth story number {i} from the desk");
                    (format!("{path}-{n}-{i}"), title, link)
                })
                .collect();
            send(out, "200 OK", &[], feed_linked(&items).as_bytes()).await
        }
        "/firehose" => {
            // A thousand new items on every poll; every hundredth names Hegseth.
            let ids: Vec<(String, String)> = (0..FIREHOSE_ITEMS)
                .map(|i| {
                    let who = if i % 100 == 0 { "Hegseth" } else { "Someone" };
                    (
                        format!("fire-{n}-{i}"),
                        format!("{who} in firehose item {n}.{i}"),
                    )
                })
                .collect();
            let items: Vec<(&str, &str)> =
                ids.iter().map(|(g, t)| (g.as_str(), t.as_str())).collect();
            send(out, "200 OK", &[], feed(&items).as_bytes()).await
        }
        _ => send(out, "404 Not Found", &[], b"").await,
    }
}

/// A small valid RSS 2.0 feed with the given (guid, title) items.
pub fn feed(items: &[(&str, &str)]) -> String {
    let items: Vec<(String, String, String)> = items
        .iter()
        .map(|(g, t)| {
            let link = format!("https://news.example/{g}");
            ((*g).to_string(), (*t).to_string(), link)
        })
        .collect();
    feed_linked(&items)
}

/// [`feed`] with each item's link given: (guid, title, link).
fn feed_linked(items: &[(String, String, String)]) -> String {
    let items: String = items
        .iter()
        .map(|(g, t, l)| {
            format!(
                "<item><guid isPermaLink=\"false\">{g}</guid><title>{t}</title>\
                 <link>{l}</link><description>About {t}</description>\
                 <pubDate>Tue, 04 Mar 2025 10:00:00 +0000</pubDate></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel>\
         <title>Hostile Test Feed</title><link>https://news.example/</link>{items}</channel></rss>"
    )
}

pub(super) fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(&mut out, Compression::fast());
            e.write_all(data)
                .and_then(|()| e.finish().map(drop))
                .expect("compressing into memory cannot fail");
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(&mut out, Compression::fast());
            e.write_all(data)
                .and_then(|()| e.finish().map(drop))
                .expect("compressing into memory cannot fail");
        }
        "br" => {
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            e.write_all(data)
                .expect("compressing into memory cannot fail");
            drop(e);
        }
        other => unreachable!("no endpoint compresses with {other}"),
    }
    out
}

pub(super) async fn send(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes()).await?;
    out.write_all(body).await?;
    out.shutdown().await
}

async fn redirect(out: &mut TcpStream, status: &str, location: &str) -> std::io::Result<()> {
    send(out, status, &[("Location", location)], b"").await
}

/// Returns once the client has closed the connection (end of stream or reset).
async fn wait_for_close(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}
