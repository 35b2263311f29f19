//! Fetching feed bytes over HTTP(S) or from `file://` URLs; the only module that speaks HTTP.
//! Distrusts servers: total deadline, decompressed-size cap, redirects followed by hand and checked
//! against the network policy, a first-bytes check that the body is a feed at all. Conditional GET
//! with stored validators. Returns bytes and hints; never parses, never reads the clock.

pub mod host_gate;
pub mod netpolicy;
pub mod post;
mod request;
pub mod robots;
pub mod sniff;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, DATE, ETAG, EXPIRES, HeaderMap, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, LOCATION, RETRY_AFTER,
};
use tokio::io::AsyncReadExt as _;
use url::{Host, Url};

use crate::config::FetchSettings;
use crate::fetch::host_gate::HostGate;
pub use crate::fetch::host_gate::HostLimits;
pub use crate::fetch::host_gate::HostPermit;
pub use crate::fetch::host_gate::{SharedSlot, SharedSpacing, SlotAnswer};
pub use crate::fetch::netpolicy::FetchPolicy;
use crate::fetch::netpolicy::is_public;
use crate::fetch::sniff::{Verdict, sniff};
use crate::model::Validators;
use crate::policy::poll::{CacheHints, FailureKind, RetryAfter};

/// Redirect hops followed before giving up (the configured URL itself is not a hop).
pub const MAX_REDIRECTS: usize = 5;

/// Beyond a request's deadline and its host's spacing, how long a request slot shared with
/// other nodes is held at most before it expires (a node killed holding it).
const SHARED_SLOT_SLACK: Duration = Duration::from_secs(10);

const ACCEPT_PAGES: &str = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5";

const ACCEPT_FEEDS: &str = "application/rss+xml, application/atom+xml, application/feed+json, \
     application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5";

#[derive(Debug)]
pub enum FetchOutcome {
    /// 304: the feed is unchanged since the validators were issued; nothing to parse.
    NotModified,
    Fetched {
        body: Vec<u8>,
        validators: Validators,
        content_type: Option<String>,
    },
}

/// Everything one fetch learned, besides the outcome.
#[derive(Debug)]
pub struct FetchReport {
    pub outcome: FetchOutcome,
    /// Where the response finally came from, after redirects.
    pub final_url: Url,
    /// Where the leading run of 301/308 hops led, if the first hop was one. The pipeline moves
    /// the stored URL there once this repeats; a 302/307 anywhere stops the run.
    pub permanent_redirect: Option<Url>,
    pub cache: CacheHints,
    /// The final response's `Link:` header values (RFC 8288), for WebSub discovery.
    pub link_headers: Vec<String>,
    /// The final response's HTTP status (`None` for a `file://` feed).
    pub status: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// 429 or 503; `retry_after` is `None` when the header was absent or garbage.
    #[error("HTTP status {status}, asked to retry later")]
    RetryLater {
        status: StatusCode,
        retry_after: Option<RetryAfter>,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("body larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A compressed body that does not decode to its end.
    #[error("corrupt or truncated compressed body: {0}")]
    Corrupt(reqwest::Error),
    /// The connection ended before the body did: shorter than its `Content-Length`, or a chunked
    /// body cut before its last chunk. (A body longer than its `Content-Length` arrives cut at
    /// that length; `parse` refuses the unclosed document.)
    #[error("{}", truncated_message(*got, *declared))]
    Truncated { got: usize, declared: Option<u64> },
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported URL scheme `{0}`")]
    Scheme(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirect loop back to {0}")]
    RedirectLoop(Url),
    #[error("redirect without a usable Location: {0}")]
    BadRedirect(String),
    #[error(
        "refused to follow a redirect from a public host to {0}, an internal address \
         (allow it for this feed with allow_private_network)"
    )]
    Blocked(String),
    #[error("not a feed: {what} (Content-Type {content_type:?})")]
    NotAFeed {
        what: &'static str,
        content_type: Option<String>,
    },
    #[error("empty response body")]
    EmptyBody,
    /// A configured header the HTTP library refuses (config checks the same rules first).
    #[error("cannot send a configured header: {0}")]
    BadHeader(String),
    /// An HTTP client built on first use could not be built (its TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// The HTTP status the server answered with, when the failure is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status(s) | FetchError::RetryLater { status: s, .. } => Some(s.as_u16()),
            _ => None,
        }
    }

    /// The server's `Retry-After`, for the poll policy.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            FetchError::RetryLater { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying soon can help (timeouts, 5xx, 408, 429, broken transfers) or a person
    /// has to fix something first (most 4xx, refused redirects, HTML instead of a feed).
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            FetchError::Status(s) if s.is_client_error() && *s != StatusCode::REQUEST_TIMEOUT => {
                FailureKind::Persistent
            }
            FetchError::Status(_)
            | FetchError::RetryLater { .. }
            | FetchError::Timeout(_)
            | FetchError::Http(_)
            | FetchError::Corrupt(_)
            | FetchError::Truncated { .. }
            | FetchError::EmptyBody => FailureKind::Transient,
            FetchError::TooLarge(_)
            | FetchError::File { .. }
            | FetchError::Scheme(_)
            | FetchError::TooManyRedirects
            | FetchError::RedirectLoop(_)
            | FetchError::BadRedirect(_)
            | FetchError::Blocked(_)
            | FetchError::NotAFeed { .. }
            | FetchError::BadHeader(_)
            | FetchError::Client(_) => FailureKind::Persistent,
        }
    }
}

/// A configured HTTP client; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// For the configured URL and for feeds allowed onto internal addresses, over plain HTTP:
    /// built without TLS roots (it is never given an https URL).
    plain: reqwest::Client,
    /// The same over HTTPS, built on the first https hop: loading the system's TLS roots is
    /// a sixth of a run's CPU when every feed answers 304 (issue 22), and a run that fetches
    /// only http URLs needs none.
    open: Arc<OnceLock<Result<reqwest::Client, String>>>,
    /// Resolves host names to public addresses only; used for redirect hops from a public origin.
    /// Built on the first such hop: each client loads the system's TLS roots, a sixth of a run's
    /// CPU when every feed answers 304 (issue 22), and most runs follow no redirect.
    public_only: Arc<OnceLock<Result<reqwest::Client, String>>>,
    /// Addresses treated as public anyway: a test hook, so a loopback server can stand in for the
    /// internet while another loopback address stays internal.
    public_overrides: Arc<[IpAddr]>,
    /// Shared by clones, so the per-host limits hold across every task fetching.
    gate: Arc<HostGate>,
    /// The cluster's shared host spacing, kept when the limits are replaced.
    shared: Option<Arc<dyn SharedSpacing>>,
    timeout: Duration,
    connect_timeout: Duration,
    max_body: u64,
    user_agent: Arc<str>,
    /// `[fetch] proxy`.
    proxy: Option<Url>,
    proxies: Arc<request::ProxyClients>,
}

/// Both plain clients' settings: no redirects followed by the library, and never a proxy from
/// the environment (`HTTPS_PROXY`): a proxy hides the address we connect to, so only a
/// configured one is used, by `request`'s own clients.
fn client_builder(
    user_agent: &str,
    connect_timeout: Duration,
    timeout: Duration,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

impl Fetcher {
    pub fn new(settings: &FetchSettings, user_agent: &str) -> Result<Fetcher, FetchError> {
        Self::with_public_overrides(settings, user_agent, Vec::new())
    }

    /// Like [`Fetcher::new`], but `public` addresses count as public for the network policy.
    pub fn with_public_overrides(
        settings: &FetchSettings,
        user_agent: &str,
        public: Vec<IpAddr>,
    ) -> Result<Fetcher, FetchError> {
        let public_overrides: Arc<[IpAddr]> = public.into();
        Ok(Fetcher {
            plain: client_builder(user_agent, settings.connect_timeout, settings.timeout)
                .tls_certs_only([])
                .build()?,
            open: Arc::default(),
            public_only: Arc::default(),
            public_overrides,
            gate: Arc::new(HostGate::new(HostLimits::default())),
            shared: None,
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            max_body: settings.max_body_bytes,
            user_agent: user_agent.into(),
            proxy: settings.proxy.clone(),
            proxies: Arc::default(),
        })
    }

    /// The client of an unrestricted hop to `url`: the plain one for http, else the TLS one,
    /// built on first use.
    fn open_for(&self, url: &Url) -> Result<&reqwest::Client, FetchError> {
        if url.scheme() == "http" {
            return Ok(&self.plain);
        }
        self.open
            .get_or_init(|| {
                client_builder(&self.user_agent, self.connect_timeout, self.timeout)
                    .build()
                    .map_err(|e| e.without_url().to_string())
            })
            .as_ref()
            .map_err(|e| FetchError::Client(e.clone()))
    }

    /// The client of redirect hops from a public origin (resolving names to public addresses
    /// only), built on first use.
    fn public_only(&self) -> Result<&reqwest::Client, FetchError> {
        self.public_only
            .get_or_init(|| {
                client_builder(&self.user_agent, self.connect_timeout, self.timeout)
                    .dns_resolver(PublicOnlyResolver {
                        overrides: self.public_overrides.clone(),
                    })
                    .build()
                    .map_err(|e| e.without_url().to_string())
            })
            .as_ref()
            .map_err(|e| FetchError::Client(e.clone()))
    }

    /// Replaces the per-host politeness limits (default: one request at a time, 1 s apart).
    #[must_use]
    pub fn with_host_limits(mut self, limits: HostLimits) -> Fetcher {
        // A shared slot outlives neither the request's deadline nor the wait for its host's
        // spacing (at most one turn per slot ahead of it), with room for a slow machine.
        let per_host = u32::try_from(limits.per_host).unwrap_or(u32::MAX);
        let hold = self.timeout + limits.spacing.saturating_mul(per_host) + SHARED_SLOT_SLACK;
        self.gate = Arc::new(HostGate::new(limits).sharing(self.shared.clone(), hold));
        self
    }

    /// Shares the host spacing with other nodes through `shared` (issue 17); applies to the
    /// limits set next by [`Fetcher::with_host_limits`].
    #[must_use]
    pub fn with_shared_spacing(mut self, shared: Option<Arc<dyn SharedSpacing>>) -> Fetcher {
        self.shared = shared;
        self
    }

    /// The shared host spacing this fetcher uses, if any.
    pub fn shared_spacing(&self) -> Option<Arc<dyn SharedSpacing>> {
        self.shared.clone()
    }

    /// Fetches under the default (strict) network policy.
    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        Ok(self
            .fetch_with(url, validators, &FetchPolicy::default())
            .await?
            .outcome)
    }

    /// Fetches with a per-feed policy and reports redirects and cache hints too.
    pub async fn fetch_with(
        &self,
        url: &Url,
        validators: &Validators,
        policy: &FetchPolicy,
    ) -> Result<FetchReport, FetchError> {
        let turn = self.host_turn(url).await;
        let fetched = self.fetch_in_turn(url, validators, policy).await;
        if let Some(turn) = turn {
            turn.release().await;
        }
        fetched
    }

    /// Waits until `url`'s host may be asked again (its per-host limit and spacing); the request
    /// is made with [`Fetcher::fetch_in_turn`] while the returned permit is held. `None` for
    /// URLs with no host (`file:`). Separate so a caller can take its own global slot only once
    /// the host's turn has come: a feed waiting for its host then holds no slot.
    pub async fn host_turn(&self, url: &Url) -> Option<HostPermit> {
        match url.scheme() {
            "http" | "https" => Some(self.gate.acquire(url.host_str()?).await),
            _ => None,
        }
    }

    /// The request itself, without waiting for the host (see [`Fetcher::host_turn`]); the
    /// deadline covers the whole exchange, redirects included.
    pub async fn fetch_in_turn(
        &self,
        url: &Url,
        validators: &Validators,
        policy: &FetchPolicy,
    ) -> Result<FetchReport, FetchError> {
        match url.scheme() {
            "file" => self.fetch_file(url).await,
            "http" | "https" => {
                tokio::time::timeout(self.timeout, self.fetch_http(url, validators, policy))
                    .await
                    .map_err(|_| FetchError::Timeout(self.timeout))?
            }
            other => Err(FetchError::Scheme(other.to_string())),
        }
    }

    async fn fetch_file(&self, url: &Url) -> Result<FetchReport, FetchError> {
        let path = url
            .to_file_path()
            .map_err(|()| FetchError::Scheme("file".into()))?;
        let file_err = |source| FetchError::File {
            path: path.display().to_string(),
            source,
        };
        // Only a regular file has a size to trust: `/dev/zero` never ends, a FIFO blocks, a
        // directory has no bytes. Refused before opening, checked again on the open handle (the
        // path may have been swapped), and read through `take` in any case, so no file costs more
        // than the body cap in memory (issue 16 item 12).
        let regular = |meta: &std::fs::Metadata| {
            if meta.is_file() {
                Ok(meta.len())
            } else {
                Err(std::io::Error::other(
                    "not a regular file (a device, FIFO or directory cannot be a feed)",
                ))
            }
        };
        let len =
            regular(&tokio::fs::metadata(&path).await.map_err(file_err)?).map_err(file_err)?;
        if len > self.max_body {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let file = tokio::fs::File::open(&path).await.map_err(file_err)?;
        regular(&file.metadata().await.map_err(file_err)?).map_err(file_err)?;
        let mut body = Vec::new();
        file.take(self.max_body + 1)
            .read_to_end(&mut body)
            .await
            .map_err(file_err)?;
        if body.len() as u64 > self.max_body {
            return Err(FetchError::TooLarge(self.max_body));
        }
        check_feed_body(&body, None)?;
        Ok(FetchReport {
            outcome: FetchOutcome::Fetched {
                body,
                validators: Validators::default(),
                content_type: None,
            },
            final_url: url.clone(),
            permanent_redirect: None,
            cache: CacheHints::default(),
            link_headers: Vec::new(),
            status: None,
        })
    }

    async fn fetch_http(
        &self,
        url: &Url,
        validators: &Validators,
        policy: &FetchPolicy,
    ) -> Result<FetchReport, FetchError> {
        let mut current = url.clone();
        let mut visited = vec![url.clone()];
        let mut permanent: Option<Url> = None;
        let mut only_permanent_so_far = true;
        // Decided by where the configured URL actually connected: only a public origin is
        // restricted, since an operator who configures an internal feed means it.
        // An article page's link is a feed's word, not the operator's: restricted from the
        // first hop (issue 20).
        let mut restricted = policy.page && !policy.allow_private_network;
        let proxied = match self.proxy_for(policy) {
            Some((proxy, password)) => Some(self.proxied(proxy, password)?),
            None => None,
        };
        if restricted
            && (!self.host_allowed(url)
                || (proxied.is_some() && !self.proxied_target_allowed(url).await))
        {
            return Err(FetchError::Blocked(url.to_string()));
        }
        for hop in 0..=MAX_REDIRECTS {
            let client = match &proxied {
                Some(c) => c,
                None if restricted => self.public_only()?,
                None => self.open_for(&current)?,
            };
            let accept = if policy.page {
                ACCEPT_PAGES
            } else {
                ACCEPT_FEEDS
            };
            let mut req = client.get(current.clone()).header(ACCEPT, accept);
            req = request::with_credentials(req, policy.request.as_deref(), url, &current)?;
            if let Some(etag) = &validators.etag {
                req = req.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                req = req.header(IF_MODIFIED_SINCE, lm);
            }
            let resp = req.send().await.map_err(|e| self.send_error(e))?;
            if hop == 0 {
                // Through a proxy the peer is the proxy; the target is judged by its address here.
                let origin = if proxied.is_some() {
                    Self::proxied_origin(url).await
                } else {
                    resp.remote_addr().map(|a| a.ip()).or(match url.host() {
                        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                        _ => None,
                    })
                };
                restricted |=
                    !policy.allow_private_network && origin.is_none_or(|ip| self.is_public(ip));
            }
            let status = resp.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                let report = self.finish(resp, policy.page).await?;
                return Ok(FetchReport {
                    final_url: current,
                    permanent_redirect: permanent,
                    ..report
                });
            }
            if hop == MAX_REDIRECTS {
                break;
            }
            let next = redirect_target(&current, resp.headers())?;
            if visited.contains(&next) {
                return Err(FetchError::RedirectLoop(next));
            }
            if restricted && !self.host_allowed(&next) {
                return Err(FetchError::Blocked(next.to_string()));
            }
            if restricted && proxied.is_some() && !self.proxied_target_allowed(&next).await {
                return Err(FetchError::Blocked(next.to_string()));
            }
            let is_permanent = matches!(
                status,
                StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
            );
            only_permanent_so_far &= is_permanent;
            if only_permanent_so_far {
                permanent = Some(next.clone());
            }
            tracing::debug!(from = %current, to = %next, status = status.as_u16(), "redirect");
            visited.push(next.clone());
            current = next;
        }
        Err(FetchError::TooManyRedirects)
    }

    /// The final response: status, validators, hints, and the capped body.
    async fn finish(&self, resp: reqwest::Response, page: bool) -> Result<FetchReport, FetchError> {
        let status = resp.status();
        let headers = resp.headers();
        let cache = cache_hints(headers);
        let link_headers: Vec<String> = headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let final_url = resp.url().clone();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchReport {
                outcome: FetchOutcome::NotModified,
                final_url,
                permanent_redirect: None,
                cache,
                link_headers,
                status: Some(status.as_u16()),
            });
        }
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let retry_after = header(headers, RETRY_AFTER).and_then(|v| RetryAfter::parse(&v));
            return Err(FetchError::RetryLater {
                status,
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        let new_validators = Validators {
            etag: header(headers, ETAG),
            last_modified: header(headers, LAST_MODIFIED),
        };
        let content_type = header(headers, CONTENT_TYPE);
        if resp.content_length().is_some_and(|n| n > self.max_body) {
            return Err(FetchError::TooLarge(self.max_body));
        }
        // reqwest drops `Content-Length` when it decompresses: a declared length means a plain
        // body, and a transfer that ends before it is cut short, not corrupt.
        let declared = resp.content_length();
        // Counted after decompression, so a gzip bomb stops at the cap, not at its packed size.
        // A declared length (within the cap) is the body's size: one allocation of it, instead
        // of doubling up to twice its size and copying on the way.
        let mut body = Vec::with_capacity(
            declared.map_or(0, |n| usize::try_from(n.min(self.max_body)).unwrap_or(0)),
        );
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() || !(e.is_decode() || e.is_body()) {
                    self.send_error(e)
                } else if declared.is_some() || !e.is_decode() {
                    FetchError::Truncated {
                        got: body.len(),
                        declared,
                    }
                } else {
                    FetchError::Corrupt(e)
                }
            })?;
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        if !page {
            check_feed_body(&body, content_type.as_deref())?;
        }
        Ok(FetchReport {
            outcome: FetchOutcome::Fetched {
                body,
                validators: new_validators,
                content_type,
            },
            final_url,
            permanent_redirect: None,
            cache,
            link_headers,
            status: Some(status.as_u16()),
        })
    }

    fn send_error(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(blocked) = err.downcast_ref::<BlockedName>() {
                return FetchError::Blocked(blocked.0.clone());
            }
            source = err.source();
        }
        FetchError::Http(e)
    }

    fn is_public(&self, ip: IpAddr) -> bool {
        self.public_overrides.contains(&ip) || is_public(ip)
    }

    /// IP literals are judged here (the URL parser has already read decimal, octal, hex and short
    /// IPv4 forms such as `2130706433`, `0177.0.0.1` and `127.1` as 127.0.0.1); names, including
    /// `localhost`, are judged by [`PublicOnlyResolver`] when they resolve.
    fn host_allowed(&self, url: &Url) -> bool {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.is_public(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => true,
            None => false,
        }
    }
}

fn truncated_message(got: usize, declared: Option<u64>) -> String {
    match declared {
        Some(m) => format!("truncated: got {got} of {m} bytes before the connection ended"),
        None => format!("truncated: got {got} bytes, then the connection ended mid-body"),
    }
}

fn redirect_target(current: &Url, headers: &HeaderMap) -> Result<Url, FetchError> {
    let location = header(headers, LOCATION)
        .ok_or_else(|| FetchError::BadRedirect("no Location header".into()))?;
    let next = current
        .join(location.trim())
        .map_err(|e| FetchError::BadRedirect(format!("{location:?}: {e}")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(FetchError::Scheme(next.scheme().to_string()));
    }
    Ok(next)
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn http_date(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<DateTime<Utc>> {
    let v = header(headers, name)?;
    httpdate::parse_http_date(&v)
        .ok()
        .map(DateTime::<Utc>::from)
}

/// `Cache-Control: max-age`, `Expires` and `Date` (RFC 9111 §5.2.2.1, §5.3; RFC 9110 §6.6.1).
pub fn cache_hints(headers: &HeaderMap) -> CacheHints {
    let max_age = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .map(Duration::from_secs);
    CacheHints {
        max_age,
        expires: http_date(headers, EXPIRES),
        date: http_date(headers, DATE),
    }
}

/// Maps the sniffing verdict to an error: an empty body or an HTML page is not "0 items".
fn check_feed_body(body: &[u8], content_type: Option<&str>) -> Result<(), FetchError> {
    match sniff(body) {
        Verdict::Feed => Ok(()),
        Verdict::Empty => Err(FetchError::EmptyBody),
        Verdict::NotAFeed(what) => Err(FetchError::NotAFeed {
            what,
            content_type: content_type.map(str::to_string),
        }),
    }
}

/// A resolver that returns only public addresses, so a redirect to a host *name* that points at
/// an internal address (`localhost`, a rebinding DNS name) is refused at connect time.
struct PublicOnlyResolver {
    overrides: Arc<[IpAddr]>,
}

/// The error the resolver returns; `send_error` finds it in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to internal addresses")]
struct BlockedName(String);

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let overrides = self.overrides.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| overrides.contains(&a.ip()) || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(BlockedName(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hint_headers() {
        let mut h = HeaderMap::new();
        let v = reqwest::header::HeaderValue::from_static;
        h.insert(CACHE_CONTROL, v("public, MAX-AGE=\"600\""));
        h.insert(EXPIRES, v("Wed, 21 Oct 2015 07:28:00 GMT"));
        h.insert(DATE, v("garbage"));
        let hints = cache_hints(&h);
        assert_eq!(hints.max_age, Some(Duration::from_secs(600)));
        assert!(hints.expires.is_some());
        assert_eq!(hints.date, None);
    }
}
