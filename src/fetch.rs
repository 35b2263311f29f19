//! Fetching feed bytes over HTTP(S) or from `file://` URLs; the only module that speaks HTTP.
//! Conditional GET with stored validators, a User-Agent, a connect timeout, a total deadline per
//! request and a cap on the decompressed body. Returns bytes; never parses.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use url::Url;

use crate::config::FetchSettings;

/// HTTP cache validators remembered per feed (RFC 9110 §8.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

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

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP status {0}")]
    Status(StatusCode),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("body larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported URL scheme `{0}`")]
    Scheme(String),
}

/// A configured HTTP client; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_body: u64,
}

impl Fetcher {
    pub fn new(settings: &FetchSettings, user_agent: &str) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .build()?;
        Ok(Fetcher {
            client,
            timeout: settings.timeout,
            max_body: settings.max_body_bytes,
        })
    }

    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| FetchError::Scheme("file".into()))?;
                let body = tokio::fs::read(&path)
                    .await
                    .map_err(|source| FetchError::File {
                        path: path.display().to_string(),
                        source,
                    })?;
                if body.len() as u64 > self.max_body {
                    return Err(FetchError::TooLarge(self.max_body));
                }
                Ok(FetchOutcome::Fetched {
                    body,
                    validators: Validators::default(),
                    content_type: None,
                })
            }
            "http" | "https" => {
                tokio::time::timeout(self.timeout, self.fetch_http(url, validators))
                    .await
                    .map_err(|_| FetchError::Timeout(self.timeout))?
            }
            other => Err(FetchError::Scheme(other.to_string())),
        }
    }

    async fn fetch_http(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let mut req = self.client.get(url.clone());
        if let Some(etag) = &validators.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        let resp = req.send().await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified);
        }
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status()));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let new_validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Fetched {
            body,
            validators: new_validators,
            content_type,
        })
    }
}
