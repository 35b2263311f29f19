//! The full-text stage (issue 20): items of `full_text` feeds wait in the store's queue; this
//! stage fetches their pages through the same polite fetcher (per-host gate, deadline, size cap,
//! network policy from the first hop, robots.txt), `full_text_concurrency` at a time and apart
//! from the feeds' slots, so a slow page never holds a feed's poll. Each page ends in the store
//! with its text or its reason, and the item joins the matcher's list either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};
use url::Url;

use super::Pipeline;
use crate::config::{FeedConfig, RequestSettings};
use crate::fetch::robots::Robots;
use crate::fetch::{FetchError, FetchOutcome, FetchPolicy, Fetcher};
use crate::model::Validators;
use crate::parse::full_text::main_text;
use crate::policy::poll::RetryAfter;
use crate::store::{PageOutcome, QueuedPage};

/// Items taken from the queue per pass.
const PASS: usize = 256;

/// How often the stream's stage looks at an empty queue (the writer fills it; a look is one
/// indexed query).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// After a failed pass (the database), before the next.
const RETRY: Duration = Duration::from_secs(5);

/// Fetches of one page at most: a page that failed transiently this many times is given up and
/// its item matched on its feed text.
pub(super) const PAGE_ATTEMPTS: u32 = 4;

/// The wait before fetching a page again after its `attempts`-th transient failure: 1, 2, then
/// 4 minutes (so an item waits at most 7 minutes for its page), or the server's `Retry-After`
/// when longer, up to 10 minutes.
pub(super) fn page_retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = Duration::from_secs(60).saturating_mul(1 << attempts.saturating_sub(1).min(8));
    backoff
        .max(retry_after.unwrap_or_default())
        .min(Duration::from_secs(600))
}

/// A page fetch's result: done (text or a lasting failure), or worth another try later.
#[derive(Debug, Clone)]
enum Fetched {
    Done(PageOutcome),
    /// 5xx, 408, 429 or a network error; the server's `Retry-After` when it sent one.
    Transient(String, Option<crate::policy::poll::RetryAfter>),
}

/// robots.txt verdicts per origin, for the life of a pipeline (a reload reads them again). One
/// cell per origin: pages of that origin wait for its one robots.txt request, others do not.
#[derive(Debug, Default)]
pub(super) struct RobotsCache(
    std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Robots>>>>,
);

impl Pipeline<'_> {
    /// Whether any configured feed wants full text (else the stage never runs).
    pub(super) fn full_text_configured(&self) -> bool {
        self.config
            .feeds
            .iter()
            .any(|f| f.full_text != crate::config::FullText::Off)
    }

    /// The stream's full-text stage: a pass whenever the queue has items, the match stage woken
    /// (`stored`) after each; stops at once when `stopping` (unfinished pages stay queued for
    /// the next start). Does nothing when no feed wants full text.
    pub(super) async fn full_text_stage(
        &self,
        stopping: &CancellationToken,
        stored: &Notify,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
        max_idle: Duration,
    ) {
        if !self.full_text_configured() {
            return;
        }
        loop {
            let pass = tokio::select! {
                () = stopping.cancelled() => return,
                r = self.full_text_pass(clock(), Some(stored)) => r,
            };
            let idle = match pass {
                Ok(0) => LOOK_AGAIN.min(max_idle),
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    error!(
                        error = format!("{e:#}"),
                        "full text failed; trying again shortly"
                    );
                    RETRY.min(max_idle)
                }
            };
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// Fetches the pages of queued items until the queue is empty (or `PASS` items were
    /// done); the number of items handed on to the matcher. `stored` (the stream's match stage)
    /// is woken as each page is stored, not at the end of the pass: a hung page holds back
    /// nobody else's alert.
    pub(super) async fn full_text_pass(
        &self,
        now: DateTime<Utc>,
        stored: Option<&Notify>,
    ) -> anyhow::Result<usize> {
        let queued = self.db(move |s| s.due_pages(now, PASS)).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let feeds: HashMap<&str, &FeedConfig> = self
            .config
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), f))
            .collect();
        // Items sharing a link (the same story in two feeds) share one fetch.
        let mut by_link: Vec<Vec<QueuedPage>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for page in queued {
            match index.get(&page.link) {
                Some(&i) => by_link[i].push(page),
                None => {
                    index.insert(page.link.clone(), by_link.len());
                    by_link.push(vec![page]);
                }
            }
        }
        let mut done = 0;
        let mut results = futures_util::stream::iter(by_link)
            .map(|pages| {
                let feed = feeds.get(pages[0].feed.as_str()).copied();
                async move {
                    let outcome = self.page_outcome(&pages[0], feed).await;
                    (pages, outcome)
                }
            })
            .buffer_unordered(self.config.fetch.full_text_concurrency.max(1));
        while let Some((pages, fetched)) = results.next().await {
            for page in pages {
                let outcome = match &fetched {
                    Fetched::Done(o) => o.clone(),
                    Fetched::Transient(why, retry_after) => {
                        let tried = page.attempts.saturating_add(1);
                        if tried < PAGE_ATTEMPTS {
                            let asked = retry_after.map(|r| match r {
                                RetryAfter::Delay(d) => d,
                                RetryAfter::At(t) => (t - now).to_std().unwrap_or_default(),
                            });
                            let wait = page_retry_delay(tried, asked);
                            info!(feed = %page.feed, link = %page.link, reason = %why, attempt = tried,
                                  retry_in_secs = wait.as_secs(), "page failed; fetching it again later");
                            let at = now
                                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                            let article = page.article;
                            self.db(move |s| s.defer_page(article, at)).await?;
                            continue;
                        }
                        PageOutcome::Failed(format!("{why} ({tried} attempts)"))
                    }
                };
                match &outcome {
                    PageOutcome::Text(t) => {
                        debug!(feed = %page.feed, link = %page.link, chars = t.len(), "full text");
                    }
                    PageOutcome::Failed(why) => {
                        info!(feed = %page.feed, link = %page.link, reason = %why, "no full text; matching the feed's text");
                    }
                }
                self.db(move |s| s.complete_page(&page, &outcome, now))
                    .await?;
                done += 1;
            }
            if let Some(n) = stored {
                n.notify_one();
            }
        }
        Ok(done)
    }

    /// The page's text, an earlier fetch's, or why there is none (for now, or for good).
    async fn page_outcome(&self, page: &QueuedPage, feed: Option<&FeedConfig>) -> Fetched {
        let link = page.link.clone();
        match self.db(move |s| s.fetched_page(&link)).await {
            Ok(Some(earlier)) => return Fetched::Done(earlier),
            Ok(None) => {}
            Err(e) => return Fetched::Transient(format!("{e:#}"), None),
        }
        let Ok(url) = Url::parse(&page.link) else {
            return Fetched::Done(PageOutcome::Failed("the link is not a URL".into()));
        };
        let policy = page_policy(feed, &url);
        let fetcher = &self.poller.fetcher;
        if !self.robots_allow(fetcher, &url, &policy).await {
            return Fetched::Done(PageOutcome::Failed(
                "refused by the site's robots.txt".into(),
            ));
        }
        let done = match fetcher
            .fetch_with(&url, &Validators::default(), &policy)
            .await
        {
            Ok(report) => match report.outcome {
                FetchOutcome::Fetched {
                    body, content_type, ..
                } => {
                    let at = report.final_url.to_string();
                    let text = tokio::task::spawn_blocking(move || {
                        main_text(&body, content_type.as_deref(), &at)
                    })
                    .await
                    .ok()
                    .flatten();
                    text.map_or_else(
                        || PageOutcome::Failed("no main content found in the page".into()),
                        PageOutcome::Text,
                    )
                }
                FetchOutcome::NotModified => {
                    PageOutcome::Failed("304 without a request for it".into())
                }
            },
            Err(e) if transient(&e) => return Fetched::Transient(e.to_string(), e.retry_after()),
            Err(e) => PageOutcome::Failed(e.to_string()),
        };
        Fetched::Done(done)
    }

    /// RFC 9309 for the page's origin, fetched once per pipeline: 4xx allows all, a failure to
    /// answer disallows all.
    async fn robots_allow(&self, fetcher: &Fetcher, url: &Url, policy: &FetchPolicy) -> bool {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut cache = self
                .robots
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(cache.entry(origin).or_default())
        };
        let robots = cell
            .get_or_init(|| async {
                match url.join("/robots.txt") {
                    Ok(at) => match fetcher
                        .fetch_with(&at, &Validators::default(), policy)
                        .await
                    {
                        Ok(report) => match report.outcome {
                            FetchOutcome::Fetched { body, .. } => {
                                Robots::parse(&String::from_utf8_lossy(&body), &self.product)
                            }
                            FetchOutcome::NotModified => Robots::allow_all(),
                        },
                        Err(FetchError::Status(s)) if s.is_client_error() => Robots::allow_all(),
                        Err(_) => Robots::disallow_all(),
                    },
                    Err(_) => Robots::disallow_all(),
                }
            })
            .await;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        robots.allows(&path)
    }
}

/// Whether a page's fetch failed in a way worth another try: a server error, 408, 429 or 503,
/// or the network. Not a timeout, a cut or corrupt body, or a page over the size cap: a page
/// that drips slower than the deadline would only hold its item back again.
fn transient(e: &FetchError) -> bool {
    match e {
        FetchError::Status(s) => s.is_server_error() || s.as_u16() == 408,
        FetchError::RetryLater { .. } | FetchError::Http(_) => true,
        _ => false,
    }
}

/// A page request: the feed's proxy always; its headers, cookie and auth only when the page is
/// on the feed's own host (a paywalled site's cookie); the network policy from the first hop,
/// since an item's link is the feed's word, not the operator's.
fn page_policy(feed: Option<&FeedConfig>, url: &Url) -> FetchPolicy {
    let request = feed.map(|f| {
        if f.url.host_str() == url.host_str() {
            Arc::clone(&f.request)
        } else {
            Arc::new(RequestSettings {
                proxy: f.request.proxy.clone(),
                ..RequestSettings::default()
            })
        }
    });
    FetchPolicy {
        allow_private_network: feed.is_some_and(|f| f.allow_private_network),
        request,
        page: true,
    }
}
