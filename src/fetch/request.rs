//! A feed's own request settings on the wire (issue 20): its headers, cookie and auth, sent only
//! to the origin the fetch started at (never to a redirect's other host), and its proxy. Through a
//! proxy the fetcher cannot see the address it reaches, so the network policy is applied by
//! resolving each redirect target here first; the proxy's own address is the operator's choice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use reqwest::RequestBuilder;
use reqwest::header::{COOKIE, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

use super::{FetchError, FetchPolicy, Fetcher};
use crate::config::{FeedAuth, ProxyChoice, RequestSettings};

/// The proxy for reqwest: the user moved out of the URL into basic auth with `password`.
fn proxy_with_auth(
    proxy: &Url,
    password: Option<&SecretString>,
) -> Result<reqwest::Proxy, FetchError> {
    let user = proxy.username();
    if user.is_empty() {
        return Ok(reqwest::Proxy::all(proxy.as_str())?);
    }
    let secret = password.map_or("", |p| p.expose_secret());
    if proxy.scheme().starts_with("socks") {
        // SOCKS5's username/password method (RFC 1929) takes them from the URL, which lives
        // only inside the client.
        let mut with = proxy.clone();
        let _ = with.set_password(Some(secret));
        return Ok(reqwest::Proxy::all(with.as_str())?);
    }
    let mut bare = proxy.clone();
    let _ = bare.set_username("");
    let user = percent_decode(user);
    Ok(reqwest::Proxy::all(bare.as_str())?.basic_auth(&user, secret))
}

/// A URL's user name as written (`%40` back to `@`).
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
}

/// Clients per proxy URL, built on first use and shared by clones of the fetcher.
#[derive(Debug, Default)]
/// Keyed by the proxy URL (user included) and a digest of the password, so feeds that share a
/// proxy but not its credentials never share a client.
pub(super) struct ProxyClients(Mutex<HashMap<ClientKey, reqwest::Client>>);

/// A proxy URL and the SHA-256 of its password.
type ClientKey = (Url, Option<[u8; 32]>);

impl Fetcher {
    /// The proxy `policy`'s feed goes through (its own, else `[fetch] proxy`, else none), with
    /// the password of a feed's own proxy that names a user.
    pub(super) fn proxy_for<'a>(
        &'a self,
        policy: &'a FetchPolicy,
    ) -> Option<(&'a Url, Option<&'a SecretString>)> {
        match policy.request.as_deref() {
            Some(RequestSettings {
                proxy: ProxyChoice::Direct,
                ..
            }) => None,
            Some(RequestSettings {
                proxy: ProxyChoice::Via(url),
                proxy_password,
                ..
            }) => Some((url, proxy_password.as_ref())),
            Some(RequestSettings {
                proxy: ProxyChoice::Inherit,
                ..
            })
            | None => self.proxy.as_ref().map(|u| (u, None)),
        }
    }

    /// The client that sends every request through `proxy` (built once per proxy and password).
    /// A proxy URL that names a user authenticates with `password` (RFC 7617 basic, sent as
    /// `Proxy-Authorization`, a header the HTTP library marks sensitive).
    pub(super) fn proxied(
        &self,
        proxy: &Url,
        password: Option<&SecretString>,
    ) -> Result<reqwest::Client, FetchError> {
        let mut clients = self
            .proxies
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (
            proxy.clone(),
            password.map(|p| {
                use sha2::Digest as _;
                sha2::Sha256::digest(p.expose_secret().as_bytes()).into()
            }),
        );
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .user_agent(self.user_agent.as_ref())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .proxy(proxy_with_auth(proxy, password)?)
            .build()?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Whether a redirect through a proxy may go to `next`: an IP literal is judged as is, a
    /// name by every address it resolves to here (the proxy may resolve it again, differently:
    /// a name that cannot be checked here is refused).
    pub(super) async fn proxied_target_allowed(&self, next: &Url) -> bool {
        let port = next.port_or_known_default().unwrap_or(80);
        match next.host() {
            Some(Host::Ipv4(ip)) => self.is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.is_public(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => match tokio::net::lookup_host((name, port)).await {
                Ok(addrs) => {
                    let addrs: Vec<_> = addrs.collect();
                    !addrs.is_empty() && addrs.iter().all(|a| self.is_public(a.ip()))
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Where the configured URL leads when it goes through a proxy (the response's peer is the
    /// proxy): its IP literal, or the first address its name resolves to here.
    pub(super) async fn proxied_origin(url: &Url) -> Option<IpAddr> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host()? {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(name) => tokio::net::lookup_host((name, port))
                .await
                .ok()?
                .next()
                .map(|a| a.ip()),
        }
    }
}

/// The feed's headers, cookie and auth on `req` when `current` has the origin the fetch started
/// at (`start`); a redirect to another host, scheme or port gets none of them.
pub(super) fn with_credentials(
    mut req: RequestBuilder,
    settings: Option<&RequestSettings>,
    start: &Url,
    current: &Url,
) -> Result<RequestBuilder, FetchError> {
    let Some(s) = settings else { return Ok(req) };
    if start.origin() != current.origin() {
        return Ok(req);
    }
    for (name, value) in &s.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| FetchError::BadHeader(format!("{name}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| FetchError::BadHeader(format!("{name}: {e}")))?;
        req = req.header(name, value);
    }
    if let Some(cookie) = &s.cookie {
        let mut value = HeaderValue::from_str(cookie.expose_secret())
            .map_err(|_| FetchError::BadHeader("the cookie is not printable ASCII".into()))?;
        // Kept out of every `Debug` of the request and out of HTTP/2 header compression tables.
        value.set_sensitive(true);
        req = req.header(COOKIE, value);
    }
    req = match &s.auth {
        Some(FeedAuth::Basic { username, password }) => {
            req.basic_auth(username, Some(password.expose_secret()))
        }
        Some(FeedAuth::Bearer(token)) => req.bearer_auth(token.expose_secret()),
        None => req,
    };
    Ok(req)
}
