//! The web console over real HTTP, on the built binary (`newswatch console`) and a state the demo
//! filled, plus a hostile feed: every page answers with its security headers, hostile article
//! text is inert, a non-loopback address needs authentication, sessions and CSRF work, and the
//! playground compiles queries with `check`'s diagnostics.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::bin::{command, newswatch};
use crate::support::demo::copy_demo;

/// The console's pages' CSP, as the binary must send it.
const CSP: &str = newswatch::console::CSP;

/// A hostile item the demo's rules match (Healey and Hegseth), with a script and an image as
/// text in its title (entities inside CDATA: the parser keeps them as text, markup stripped), a
/// `javascript:` link and a title of over 1 MB.
fn hostile_feed() -> String {
    let long = format!("Healey meets Hegseth {}", "filler ".repeat(150_000));
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile &lt;b&gt;Wire&lt;/b&gt;</title><link>https://hostile.example/</link>
<item><title><![CDATA[Healey &lt;script&gt;alert("title")&lt;/script&gt; meets Hegseth &lt;img src=x onerror=alert(1)&gt;]]></title>
<link>javascript:alert(document.cookie)</link><guid>hostile-1</guid>
<description>&lt;p&gt;John Healey and Pete Hegseth &lt;a href="javascript:alert(2)"&gt;click&lt;/a&gt; &lt;script&gt;alert(3)&lt;/script&gt;&lt;/p&gt;</description>
<pubDate>Thu, 20 Mar 2025 10:00:00 GMT</pubDate></item>
<item><title>{long}</title><link>https://hostile.example/long</link><guid>hostile-2</guid>
<description>John Healey spoke to Pete Hegseth.</description><pubDate>Thu, 20 Mar 2025 11:00:00 GMT</pubDate></item>
</channel></rss>
"#
    )
}

/// The demo plus the hostile feed, run once: (temp dir, config path).
pub(crate) fn filled_state(extra_config: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = copy_demo(tmp.path());
    std::fs::write(
        tmp.path().join("config/demo/feeds/hostile.rss"),
        hostile_feed(),
    )
    .expect("write the hostile feed");
    let mut text = std::fs::read_to_string(&config).expect("read demo.toml");
    text.push_str(&format!(
        "\n[[feed]]\nname = \"Hostile <Wire>\"\nurl = \"file://demo/feeds/hostile.rss\"\n{extra_config}"
    ));
    std::fs::write(&config, text).expect("write demo.toml");
    let out = newswatch(&["run", "--once", "--config", path(&config)]);
    assert!(
        out.status.success(),
        "run --once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, config)
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `newswatch console` on a free loopback port, stopped on drop.
pub(crate) struct Console {
    child: Child,
    addr: String,
}

impl Console {
    pub(crate) fn start(config: &Path) -> Console {
        let mut child = command(&[
            "console",
            "--config",
            path(config),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start newswatch console");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the console's address");
        let addr = line
            .trim()
            .strip_prefix("console: http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Console { child, addr }
    }

    pub(crate) fn get(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        request(&self.addr, "GET", target, headers, "")
    }

    pub(crate) fn post(&self, target: &str, headers: &[(&str, &str)], form: &str) -> Resp {
        let mut h = headers.to_vec();
        h.push(("Content-Type", "application/x-www-form-urlencoded"));
        request(&self.addr, "POST", target, &h, form)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), the body read to its end.
pub(crate) fn request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the console");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn assert_secure_headers(r: &Resp, what: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

/// Nothing an article carried can run: no script element or event handler of ours but the one
/// script tag, no `javascript:` URL anywhere in an attribute.
fn assert_inert(body: &str, what: &str) {
    assert_eq!(
        body.matches("<script").count(),
        1,
        "{what}: only the console's own script tag"
    );
    assert!(
        body.contains("<script src=\"/assets/playground.js\" defer></script>"),
        "{what}"
    );
    for bad in [
        "href=\"javascript:",
        "src=\"javascript:",
        "<img",
        "<iframe src=\"http",
    ] {
        assert!(!body.contains(bad), "{what} contains {bad:?}");
    }
}

#[test]
fn every_page_answers_with_its_headers_and_hostile_text_is_inert() {
    let (_tmp, config) = filled_state("");
    let c = Console::start(&config);
    let hostile = url_enc("Hostile <Wire>");
    let pages = [
        "/".to_string(),
        "/feeds".into(),
        format!("/feeds/{hostile}"),
        "/matches".into(),
        format!("/matches?feed={hostile}"),
        "/matches?rule=healey-hegseth-talks&lang=en&since=3650d".into(),
        "/rules".into(),
        "/rules/healey-hegseth-talks".into(),
        "/playground".into(),
        "/playground?q=%40healey+NEAR%2F20+%40hegseth&against=healey-hegseth-talks".into(),
        "/digests".into(),
        "/digests/1".into(),
    ];
    for p in &pages {
        let r = c.get(p, &[]);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        assert_secure_headers(&r, p);
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{p}");
        assert_inert(&r.body, p);
        // The 1 MB title is cut on every page that lists it.
        assert!(r.body.len() < 400_000, "{p} is {} bytes", r.body.len());
    }

    let feed = c.get(&format!("/matches?feed={hostile}"), &[]);
    assert!(
        feed.body
            .contains("&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;"),
        "the hostile title is shown as text: {}",
        feed.body
    );
    assert!(
        feed.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "an element in the title is text"
    );
    assert!(
        feed.body.contains("Hostile &lt;Wire&gt;"),
        "the feed name is escaped"
    );
    assert!(
        !feed.body.contains("javascript:"),
        "the javascript: link is neither a link nor shown"
    );
    assert!(feed.body.contains("<mark>"), "hits are highlighted");
    assert!(feed.body.contains("terms: "), "terms are listed");
    assert!(feed.body.contains("…"), "the long title is cut");

    let missing = c.get("/rules/no-such-rule", &[]);
    assert_eq!(missing.status, 404);
    let missing = c.get("/feeds/nope", &[]);
    assert_eq!(missing.status, 404);

    // The sent digest's HTML is served only under the sandbox policy, framed sandboxed.
    let page = c.get("/digests/1", &[]);
    assert!(
        page.body
            .contains("<iframe class=\"digest\" sandbox=\"\" referrerpolicy=\"no-referrer\""),
        "{}",
        page.body
    );
    let frame = c.get("/digests/1/html", &[]);
    assert_eq!(frame.status, 200);
    assert_eq!(
        frame.header("content-security-policy"),
        Some(newswatch::console::DIGEST_CSP)
    );
    assert!(frame.body.contains("<html"), "the email's HTML part");
    assert!(!frame.body.contains("<script"), "no script in a sent email");

    let css = c.get("/assets/console.css", &[]);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains("prefers-color-scheme: dark"));
    let js = c.get("/assets/playground.js", &[]);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

#[test]
fn playground_runs_a_query_and_shows_checks_diagnostics() {
    let (_tmp, config) = filled_state("");
    let c = Console::start(&config);
    let run = |q: &str, against: &str| {
        let r = c.get(
            &format!(
                "/playground?partial=1&q={}&against={}",
                url_enc(q),
                url_enc(against)
            ),
            &[],
        );
        assert_eq!(r.status, 200, "{q}");
        r.body
    };
    let hits = |body: &str| -> usize {
        let start = body.find("<b id=\"hit-count\">").expect("a hit count") + 18;
        body[start..]
            .split('<')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    let both = run("@healey NEAR/20 @hegseth", "healey-hegseth-talks");
    let one = run("@healey", "healey-hegseth-talks");
    assert!(hits(&both) >= 2, "{both}");
    assert!(hits(&one) > hits(&both), "a wider query finds more");
    assert!(
        one.contains("class=\"new\">NEW</span>"),
        "NEW against the saved rule: {one}"
    );
    assert!(
        both.contains("<details class=\"explain\">"),
        "an explain tree per hit"
    );
    assert!(both.contains("[[rule]]"), "copy as TOML");
    let narrower = run("Hegseth AND Pentagon", "healey-hegseth-talks");
    assert!(
        narrower.contains("GONE</span>"),
        "GONE against the saved rule: {narrower}"
    );

    let broad = run("NOT Healey", "");
    assert!(
        broad.contains("query is broad: it matches articles in which none of its terms occur"),
        "{broad}"
    );
    let invalid = run("(Healey", "");
    assert!(invalid.contains("unbalanced parentheses"), "{invalid}");
    let deep = format!("{}Healey{}", "(".repeat(5_000), ")".repeat(5_000));
    let deep = run(&deep, "");
    assert!(
        deep.contains("4000"),
        "an over-long query is refused: {deep}"
    );
    let nested = format!("{}Healey{}", "(".repeat(1_000), ")".repeat(1_000));
    let nested = run(&nested, "");
    assert!(nested.contains("class=\"diag\""), "{nested}");
    let escaped = run("\"<script>\"", "");
    assert!(!escaped.contains("<script>"), "{escaped}");
}

#[test]
fn not_on_loopback_the_console_needs_authentication() {
    let (_tmp, config) = filled_state("");
    let out = newswatch(&[
        "console",
        "--config",
        path(&config),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.status.code(), Some(3), "refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("which is not loopback, without authentication"),
        "{err}"
    );
    assert!(err.contains("newswatch console passwd"), "says how: {err}");

    // The daemon serving the console on a non-loopback [http] address refuses too.
    let mut text = std::fs::read_to_string(&config).expect("read");
    text = text.replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    std::fs::write(&config, text).expect("write");
    let out = newswatch(&["run", "--config", path(&config)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not loopback, without authentication"),
        "{err}"
    );
}

#[test]
fn trusted_header_names_the_user_and_is_required() {
    let (_tmp, config) = filled_state("\n[console]\ntrusted_header = \"X-Forwarded-User\"\n");
    let c = Console::start(&config);
    let anon = c.get("/", &[]);
    assert_eq!(anon.status, 401);
    assert!(anon.body.contains("x-forwarded-user"), "{}", anon.body);
    let ok = c.get("/", &[("X-Forwarded-User", "dana<b>")]);
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("dana&lt;b&gt;"), "the user, escaped");
}

fn set_password(config: &Path, user: &str, password: &str) {
    let mut child = command(&["console", "passwd", user, "--config", path(config)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start console passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("console passwd ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sessions_csrf_and_login_limits() {
    let (tmp, config) = filled_state("");
    set_password(&config, "alice", "correct horse battery");
    let users = std::fs::read_to_string(tmp.path().join("state/console-users")).expect("users");
    assert!(users.contains("alice:$argon2id$"), "{users}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("state/console-users"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let c = Console::start(&config);

    let anon = c.get("/matches", &[]);
    assert_eq!(anon.status, 303);
    assert_eq!(anon.header("location"), Some("/login"));
    assert_eq!(c.post("/outbox/1/retry", &[], "csrf=x").status, 403);
    let login = c.get("/login", &[]);
    assert_eq!(login.status, 200);
    assert_secure_headers(&login, "/login");

    let wrong = c.post("/login", &[], "user=alice&password=nope");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let good = c.post("/login", &[], "user=alice&password=correct+horse+battery");
    assert_eq!(good.status, 303, "{}", good.body);
    let cookie = good
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = cookie.split(';').next().expect("name=value").to_string();
    let with = [("Cookie", session.as_str())];

    let page = c.get("/", &with);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("alice"), "signed in as alice");
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the sign-out form")
        .to_string();

    // A POST without the token, or with another, is refused; with it, it is acted on.
    assert_eq!(c.post("/outbox/1/retry", &with, "").status, 403);
    assert_eq!(c.post("/outbox/1/retry", &with, "csrf=0123").status, 403);
    let sent = c.post("/outbox/1/retry", &with, &format!("csrf={token}"));
    assert_eq!(
        sent.status, 409,
        "a sent email is not retried: {}",
        sent.body
    );
    assert_eq!(c.post("/logout", &with, "csrf=bad").status, 403);
    let out = c.post("/logout", &with, &format!("csrf={token}"));
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    assert_eq!(c.get("/", &with).status, 303, "the session is over");

    // Five failures for a name, and the sixth try is refused before its password is checked.
    for _ in 0..5 {
        assert_eq!(c.post("/login", &[], "user=bob&password=guess").status, 401);
    }
    let limited = c.post("/login", &[], "user=bob&password=guess");
    assert_eq!(limited.status, 429);
    assert!(limited.body.contains("too many failed sign-ins"));
    let alice = c.post("/login", &[], "user=alice&password=correct+horse+battery");
    assert_eq!(alice.status, 303, "another name is not locked out");
}

pub(crate) fn url_enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs `user` in: (the session cookie as a request header value, the session's CSRF token).
fn sign_in(c: &Console, user: &str, password: &str) -> (String, String) {
    let good = c.post(
        "/login",
        &[],
        &format!("user={}&password={}", url_enc(user), url_enc(password)),
    );
    assert_eq!(good.status, 303, "{}", good.body);
    let cookie = good.header("set-cookie").expect("a session cookie");
    let session = cookie.split(';').next().expect("name=value").to_string();
    let page = c.get("/", &[("Cookie", session.as_str())]);
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the sign-out form")
        .to_string();
    (session, token)
}

/// `/channels` (issue 19): each channel's kind, host (never its URL's path or a topic), counts
/// by state, next attempt and last error; the failed messages, escaped, each with a retry POST
/// that needs the session's CSRF token and puts the message back in the queue once.
#[test]
fn channels_page_shows_each_channels_state_and_retries_a_failed_message() {
    use newswatch::model::OutboxStatus;
    use newswatch::store::{DB_FILE, Store};

    let (tmp, config) = filled_state(
        "\n[[channel]]\nname = \"desk-slack\"\nkind = \"slack\"\n\
         url = \"https://hooks.example.org/services/T000/SECRETPATH\"\n\
         \n[[channel]]\nname = \"phones\"\nkind = \"ntfy\"\nurl = \"https://ntfy.example.org/SECRETTOPIC\"\n",
    );
    // The messages' states, written through the store's own paths (what delivery calls).
    let mut s = Store::open_file(&tmp.path().join("state").join(DB_FILE)).expect("open the state");
    let now = newswatch::clock::now();
    let later = now + chrono::Duration::minutes(30);
    let title = r#"{"version":1,"title":"Surge: <b>Minerals</b> deal"}"#;
    let retrying = s
        .queue_channel_message("breaking", "desk-slack", title, now)
        .expect("queue");
    s.mark_channel_retry(retrying, "HTTP 503", later)
        .expect("retry");
    let failed = s
        .queue_channel_message("surges", "desk-slack", title, now)
        .expect("queue");
    s.mark_channel_failed(failed, "HTTP 404: no_service")
        .expect("fail");
    let sent = s
        .queue_channel_message("desk", "desk-slack", title, now)
        .expect("queue");
    s.mark_channel_sent(sent, now).expect("sent");
    s.queue_channel_message("desk", "phones", title, now)
        .expect("queue");
    let gone = s
        .queue_channel_message("desk", "old-hook", "{}", now)
        .expect("queue");
    s.mark_channel_failed(gone, "HTTP 410").expect("fail");

    set_password(&config, "alice", "correct horse battery");
    let c = Console::start(&config);
    let anon = c.get("/channels", &[]);
    assert_eq!(anon.status, 303, "signed-in users only");
    let (session, token) = sign_in(&c, "alice", "correct horse battery");
    let with = [("Cookie", session.as_str())];

    let r = c.get("/channels", &with);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_secure_headers(&r, "/channels");
    assert_inert(&r.body, "/channels");
    assert!(
        r.body
            .contains("<a href=\"/channels\" aria-current=\"page\">Channels</a>")
    );
    assert!(
        r.body.contains(
            "<tr><td>desk-slack</td><td>slack</td><td class=\"opt\">https://hooks.example.org/…</td>\
             <td>0</td><td class=\"warn\">1</td><td class=\"bad\">1</td><td>1</td>"
        ),
        "pending, retrying, failed, sent: {}",
        r.body
    );
    assert!(
        r.body.contains(
            "<tr><td>phones</td><td>ntfy</td><td class=\"opt\">https://ntfy.example.org/…</td><td>1</td>"
        ),
        "one pending: {}",
        r.body
    );
    assert!(
        r.body
            .contains("<td>old-hook</td><td>(not configured)</td>")
    );
    assert!(
        r.body.contains("in 29m") || r.body.contains("in 30m"),
        "next attempt"
    );
    for secret in ["SECRETPATH", "SECRETTOPIC", "/services/"] {
        assert!(!r.body.contains(secret), "{secret} shown");
    }
    assert!(r.body.contains("HTTP 404: no_service"));
    assert!(
        r.body.contains("Surge: &lt;b&gt;Minerals&lt;/b&gt; deal"),
        "escaped title"
    );
    let action = format!("action=\"/channels/{failed}/retry\"");
    assert!(r.body.contains(&action), "a retry form: {}", r.body);
    assert!(
        !r.body
            .contains(&format!("action=\"/channels/{sent}/retry\""))
    );

    let target = format!("/channels/{failed}/retry");
    assert_eq!(c.post(&target, &with, "").status, 403, "no token");
    assert_eq!(
        c.post(&target, &with, "csrf=0123").status,
        403,
        "another token"
    );
    assert_eq!(
        s.channel_message(failed).expect("row").status,
        OutboxStatus::Failed
    );
    let again = c.post(&target, &with, &format!("csrf={token}"));
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.header("location"), Some("/channels"));
    let m = s.channel_message(failed).expect("row");
    assert_eq!(m.status, OutboxStatus::Queued, "queued again");
    assert!(m.next_attempt <= newswatch::clock::now(), "due at once");
    assert_eq!(
        c.post(&target, &with, &format!("csrf={token}")).status,
        409,
        "a queued message is not retried"
    );
    assert_eq!(
        c.post("/channels/999999/retry", &with, &format!("csrf={token}"))
            .status,
        404
    );
    let after = c.get("/channels", &with);
    assert!(!after.body.contains(&action), "no longer listed as failed");
    assert!(after.body.contains("retry requested from the console"));
}
