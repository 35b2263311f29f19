//! Two small forwarding proxies on loopback, each on a runtime thread of its own: an HTTP proxy
//! (absolute-form `GET http://host:port/path`, forwarded in origin form; no CONNECT) and a SOCKS5
//! proxy (RFC 1928, no authentication, CONNECT to an IPv4 address or a name). Each records the
//! targets it was asked for, so a test can tell that a request went through it. The HTTP proxy
//! may require basic authentication (RFC 7235 `Proxy-Authorization`), answering 407 without it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
enum Kind {
    /// With the `Proxy-Authorization` value it requires, if any.
    Http(Option<String>),
    Socks5,
}

pub struct Proxy {
    pub addr: SocketAddr,
    scheme: &'static str,
    targets: Arc<Mutex<Vec<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Proxy {
    pub fn http() -> Proxy {
        Proxy::start(Kind::Http(None))
    }

    /// An HTTP proxy that answers 407 unless the request carries `user`'s basic credentials.
    pub fn http_with_auth(user: &str, password: &str) -> Proxy {
        let value = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        Proxy::start(Kind::Http(Some(value)))
    }

    pub fn socks5() -> Proxy {
        Proxy::start(Kind::Socks5)
    }

    /// `http://127.0.0.1:port` or `socks5://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// What clients asked to reach: `host:port/path` (HTTP) or `host:port` (SOCKS5).
    pub fn targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn start(kind: Kind) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("an address");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        let t = Arc::clone(&targets);
        let scheme = match kind {
            Kind::Http(_) => "http",
            Kind::Socks5 => "socks5",
        };
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("the listener joins");
            while let Ok((stream, _)) = listener.accept().await {
                let t = Arc::clone(&t);
                let kind = kind.clone();
                tokio::spawn(async move {
                    let _ = match kind {
                        Kind::Http(auth) => http(stream, t, auth).await,
                        Kind::Socks5 => socks5(stream, t).await,
                    };
                });
            }
        });
        Proxy {
            addr,
            targets,
            runtime: Some(runtime),
            scheme,
        }
    }
}

fn record(targets: &Mutex<Vec<String>>, what: String) {
    targets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(what);
}

/// One request per connection: the client's head is read whole, its absolute-form target turned
/// into origin form with `Connection: close`, and the origin's answer copied back to the end.
async fn http(
    mut client: TcpStream,
    targets: Arc<Mutex<Vec<String>>>,
    auth: Option<String>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut chunk).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(rest) = target.strip_prefix("http://") else {
        client
            .write_all(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    if let Some(required) = &auth {
        let given = text.split("\r\n").find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_string())
        });
        if given.as_deref() != Some(required.as_str()) {
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            return client.shutdown().await;
        }
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    record(&targets, format!("{authority}{path}"));
    let mut out = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for line in lines.take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "proxy-connection" && name != "keep-alive" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut origin = TcpStream::connect(authority).await?;
    origin.write_all(out.as_bytes()).await?;
    let mut answer = Vec::new();
    origin.read_to_end(&mut answer).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// RFC 1928: greeting (no authentication), CONNECT, then bytes both ways until either side ends.
async fn socks5(mut client: TcpStream, targets: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut greet = [0u8; 2];
    client.read_exact(&mut greet).await?;
    let mut methods = vec![0u8; usize::from(greet[1])];
    client.read_exact(&mut methods).await?;
    if greet[0] != 5 || !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    record(&targets, target.clone());
    let Ok(mut origin) = TcpStream::connect(&target).await else {
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut origin).await?;
    Ok(())
}

/// RFC 4648 base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
