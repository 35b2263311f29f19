//! Outgoing requests for channels (webhooks, chat services, ntfy, Telegram, Matrix): one request
//! under one deadline, no redirects followed, and what came back (status, `Retry-After`, the
//! start of the body). Classifying the answer is the caller's. Never puts a URL in an error: a
//! chat webhook's or Telegram's URL is a credential.

use std::time::Duration;

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostResponse {
    pub status: u16,
    /// The `Retry-After` header as sent (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// The body's first `BODY_KEPT` bytes, lossily decoded (for error messages and Telegram's
    /// `retry_after`).
    pub body: String,
}

/// Bytes of an answer's body kept.
const BODY_KEPT: usize = 2048;

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Network(String),
}

/// A client for channel requests; build once. Its HTTP client (and the TLS roots that come with
/// it, a quarter of a run's start-up when every feed answers 304: issue 22) is built on the
/// first request, so a run that sends nothing to a channel never builds it.
pub struct Poster {
    user_agent: String,
    client: std::sync::OnceLock<Result<reqwest::Client, PostError>>,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster").finish_non_exhaustive()
    }
}

impl Poster {
    pub fn new(user_agent: &str) -> Poster {
        Poster {
            user_agent: user_agent.to_string(),
            client: std::sync::OnceLock::new(),
        }
    }

    /// The client, built on first use; a failure to build it is every request's error.
    fn client(&self) -> Result<&reqwest::Client, PostError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(&self.user_agent)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| {
                        PostError::Network(format!(
                            "cannot build the HTTP client: {}",
                            e.without_url()
                        ))
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Sends one request; `put` chooses PUT over POST. The whole exchange (connect, send, the
    /// answer's head and the kept part of its body) is bounded by `timeout`.
    pub async fn send(
        &self,
        put: bool,
        url: &url::Url,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<PostResponse, PostError> {
        let client = self.client()?;
        let mut req = if put {
            client.put(url.clone())
        } else {
            client.post(url.clone())
        };
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let exchange = async {
            let mut resp = req.body(body).send().await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut kept = Vec::new();
            while kept.len() < BODY_KEPT {
                match resp.chunk().await {
                    Ok(Some(c)) => kept.extend_from_slice(&c),
                    // The status is the answer; a body cut short changes nothing.
                    Ok(None) | Err(_) => break,
                }
            }
            kept.truncate(BODY_KEPT);
            Ok::<_, reqwest::Error>(PostResponse {
                status,
                retry_after,
                body: String::from_utf8_lossy(&kept).into_owned(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(PostError::Timeout(timeout)),
            Ok(Err(e)) => Err(PostError::Network(describe(&e))),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// A transport error without its URL, with its cause (connection refused, reset…).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
