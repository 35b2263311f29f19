//! The WebSub subscriber's side of the stream (issue 20): hubs the polls discovered are recorded
//! per feed, each configured feed with a hub is subscribed (`hub.mode=subscribe` with a callback
//! unique to the feed and a secret of its own), a lease is renewed before it ends, a feed that left
//! the config (or opted out) is unsubscribed, and a hub that fails is asked again with back-off
//! while the feed is polled at its own interval. A feed being pushed is polled at
//! `backup_interval`. The callbacks themselves are served by `service::websub`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{FeedConfig, WebSubSettings};
use crate::fetch::netpolicy::is_public;
use crate::fetch::post::Poster;
use crate::parse::websub::HubLinks;
use crate::pipeline::Pipeline;
use crate::store::{SubState, Subscription};

/// How long a hub may take to verify a (un)subscription request before it is asked again.
const VERIFY_WAIT: Duration = Duration::from_secs(15 * 60);

/// A failed request is asked again after this, doubling with each failure up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(6 * 3600);

/// A lease is renewed when a fifth of it is left (at most a day before it ends).
const RENEW_SHARE: i32 = 5;
const RENEW_AT_MOST: Duration = Duration::from_secs(86_400);

/// The feeds a hub is pushing, shared between the stage that learns it and the poll stage that
/// slows their polling down.
pub(crate) type Pushing = Arc<RwLock<HashSet<String>>>;

/// What the callback server and the poll writer tell the stream: a push was stored (wake the
/// match stage), the subscriptions changed (look at them again). One per daemon, shared by the
/// pipelines a reload opens.
#[derive(Debug, Default)]
pub struct PushSignals {
    pub pushed: tokio::sync::Notify,
    /// The subscriptions changed (a hub discovered, verified or denied): look at them again.
    pub changed: tokio::sync::Notify,
    /// The feeds that may be pushed (configured, not opted out) under the config that runs now:
    /// set by every pipeline opened with these signals, so a reload reaches the callbacks.
    feeds: RwLock<HashSet<String>>,
}

impl PushSignals {
    /// From now on, the feeds of `config` that may be pushed.
    pub fn set_feeds(&self, config: &crate::config::Config) {
        let feeds = config
            .feeds
            .iter()
            .filter(|f| f.websub)
            .map(|f| f.name.clone())
            .collect();
        *self.feeds.write().unwrap_or_else(PoisonError::into_inner) = feeds;
    }

    /// Whether `feed` may be pushed under the config that runs now.
    pub fn may_push(&self, feed: &str) -> bool {
        self.feeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(feed)
    }
}

/// A random token of `bytes` bytes, hex-encoded: callback paths and secrets.
pub fn random_token(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// What to do about one subscription row at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Subscribe,
    Unsubscribe,
    /// Drop the row without asking the hub (never subscribed, or the hub never confirmed).
    Forget,
    /// Nothing until this time.
    Wait(Option<DateTime<Utc>>),
}

/// The next step for `sub`, given whether its feed is still configured for push. Pure.
pub(crate) fn next_action(sub: &Subscription, wanted: bool, now: DateTime<Utc>) -> Action {
    let verify_by = sub
        .requested_at
        .map(|r| r + chrono::Duration::from_std(VERIFY_WAIT).unwrap_or(chrono::Duration::MAX));
    if !wanted {
        return match sub.state {
            SubState::New | SubState::Failed => Action::Forget,
            SubState::Unsubscribing if verify_by.is_some_and(|v| v <= now) => Action::Forget,
            SubState::Unsubscribing => Action::Wait(verify_by),
            SubState::Subscribing | SubState::Active => Action::Unsubscribe,
        };
    }
    match sub.state {
        SubState::New | SubState::Unsubscribing => Action::Subscribe,
        SubState::Failed => match sub.next_attempt {
            Some(at) if at > now => Action::Wait(Some(at)),
            _ => Action::Subscribe,
        },
        SubState::Subscribing => match verify_by {
            Some(v) if v > now => Action::Wait(Some(v)),
            _ => Action::Subscribe,
        },
        SubState::Active => {
            let Some(until) = sub.lease_until else {
                return Action::Subscribe;
            };
            let granted = sub
                .requested_at
                .map_or(chrono::Duration::zero(), |r| until - r);
            let margin = (granted / RENEW_SHARE)
                .min(chrono::Duration::from_std(RENEW_AT_MOST).unwrap_or(chrono::Duration::MAX));
            // A hub granting (next to) no lease is not asked again more than once a second.
            let floor = sub.requested_at.map(|r| r + chrono::Duration::seconds(1));
            let renew_at = (until - margin).max(floor.unwrap_or(until - margin));
            if renew_at <= now {
                Action::Subscribe
            } else {
                Action::Wait(Some(renew_at))
            }
        }
    }
}

/// The wait before asking a failing hub again, after `attempts` requests.
pub fn retry_after(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    RETRY_MIN.saturating_mul(1 << doublings).min(RETRY_MAX)
}

impl Pipeline<'_> {
    /// The poll interval of `feed`: its own, or `backup_interval` while a hub pushes it.
    pub(super) fn poll_interval(&self, feed: &FeedConfig) -> Duration {
        match &self.config.websub {
            Some(w) if self.is_pushed(&feed.name) => feed.interval.max(w.backup_interval),
            _ => feed.interval,
        }
    }

    fn is_pushed(&self, feed: &str) -> bool {
        self.pushing
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(feed)
    }

    /// The hubs a batch of polls discovered, as `(feed, hub, topic)`: only with `[websub]`, and
    /// only for feeds that have not opted out.
    pub(super) fn discovered<'a>(
        &self,
        polls: impl Iterator<Item = (&'a str, &'a HubLinks, &'a str)>,
    ) -> Vec<(String, String, String)> {
        if self.config.websub.is_none() {
            return Vec::new();
        }
        let wanted: HashSet<&str> = self
            .config
            .feeds
            .iter()
            .filter(|f| f.websub)
            .map(|f| f.name.as_str())
            .collect();
        polls
            .filter(|(feed, _, _)| wanted.contains(feed))
            .filter_map(|(feed, links, fetched_from)| {
                let hub = links.hub.clone()?;
                let topic = links
                    .self_url
                    .clone()
                    .unwrap_or_else(|| fetched_from.to_string());
                Some((feed.to_string(), hub, topic))
            })
            .collect()
    }

    /// The stream's WebSub stage: looks at every subscription, acts on those due, and sleeps
    /// until the next is due (at most `max_idle`). Does nothing without `[websub]`.
    pub(super) async fn websub_stage(
        &self,
        stopping: &CancellationToken,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
        max_idle: Duration,
    ) {
        let Some(settings) = &self.config.websub else {
            return;
        };
        let poster = Poster::new(&self.config.user_agent);
        loop {
            let wake = match self.websub_pass(settings, &poster, clock).await {
                Ok(next) => next.map_or(max_idle, |at| {
                    (at - clock())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .min(max_idle)
                }),
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        "WebSub pass failed; trying again shortly"
                    );
                    RETRY_MIN.min(max_idle)
                }
            };
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(wake.max(Duration::from_millis(200))) => {}
                () = self.push.changed.notified() => {}
            }
        }
    }

    /// One look at every subscription; when the next one is due.
    async fn websub_pass(
        &self,
        settings: &WebSubSettings,
        poster: &Poster,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let subs = self.db(|s| s.websub_subscriptions()).await?;
        let now = clock();
        let feeds: HashMap<&str, &FeedConfig> = self
            .config
            .feeds
            .iter()
            .filter(|f| f.websub)
            .map(|f| (f.name.as_str(), f))
            .collect();
        {
            let mut pushing = self.pushing.write().unwrap_or_else(PoisonError::into_inner);
            pushing.clear();
            pushing.extend(
                subs.iter()
                    .filter(|s| s.pushing(now) && feeds.contains_key(s.feed.as_str()))
                    .map(|s| s.feed.clone()),
            );
        }
        for sub in &subs {
            let until = sub.lease_until.filter(|_| sub.pushing(now));
            self.metrics
                .websub_lease(&sub.feed, until.map_or(0, |u| u.timestamp()));
        }
        let mut next: Option<DateTime<Utc>> = None;
        for sub in subs {
            let feed = feeds.get(sub.feed.as_str()).copied();
            let action = next_action(&sub, feed.is_some(), now);
            let mode = match action {
                Action::Wait(at) => {
                    next = super::earliest(next, at);
                    continue;
                }
                Action::Forget => {
                    let name = sub.feed.clone();
                    self.db(move |s| s.websub_forget(&name)).await?;
                    continue;
                }
                Action::Subscribe => SubState::Subscribing,
                Action::Unsubscribe => SubState::Unsubscribing,
            };
            // An unsubscription goes to the hub that was subscribed to (which passed the check
            // then); the feed that allowed a private hub may be gone from the config.
            let allow_private =
                mode == SubState::Unsubscribing || feed.is_some_and(|f| f.allow_private_network);
            // Recorded before asking: the hub may verify before its answer reaches us. Only if
            // the row is still as read: on PostgreSQL another node may have asked just now.
            let (seen, asked) = (sub.clone(), clock());
            if !self
                .db(move |s| s.websub_requested(&seen, mode, asked))
                .await?
            {
                continue;
            }
            let sent = self
                .ask_hub(settings, poster, &sub, mode, allow_private)
                .await;
            let now = clock();
            match sent {
                Ok(()) => {
                    info!(feed = %sub.feed, hub = %sub.hub, mode = %mode, "WebSub request accepted; waiting for the hub's verification");
                    let verify_by = now
                        + chrono::Duration::from_std(VERIFY_WAIT).unwrap_or(chrono::Duration::MAX);
                    next = super::earliest(next, Some(verify_by));
                }
                Err(error) => {
                    let wait = retry_after(sub.attempts.saturating_add(1));
                    warn!(feed = %sub.feed, hub = %sub.hub, error = %error, retry_in_secs = wait.as_secs(),
                          "WebSub hub failed; the feed is polled meanwhile");
                    let at =
                        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                    let name = sub.feed.clone();
                    self.db(move |s| s.websub_failed(&name, &error, at)).await?;
                    next = super::earliest(next, Some(at));
                }
            }
        }
        Ok(next)
    }

    /// Sends one (un)subscription request; `Err` with the reason unless the hub accepted it.
    async fn ask_hub(
        &self,
        settings: &WebSubSettings,
        poster: &Poster,
        sub: &Subscription,
        mode: SubState,
        allow_private: bool,
    ) -> Result<(), String> {
        let hub = url::Url::parse(&sub.hub).map_err(|e| format!("invalid hub URL: {e}"))?;
        if !allow_private {
            check_public(&hub).await?;
        }
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair(
            "hub.mode",
            if mode == SubState::Unsubscribing {
                "unsubscribe"
            } else {
                "subscribe"
            },
        )
        .append_pair("hub.topic", &sub.topic)
        .append_pair("hub.callback", &settings.callback(&sub.token));
        if mode == SubState::Subscribing {
            form.append_pair("hub.lease_seconds", &settings.lease.as_secs().to_string())
                .append_pair("hub.secret", &sub.secret);
        }
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )];
        let answer = poster
            .send(
                false,
                &hub,
                &headers,
                form.finish().into_bytes(),
                self.config.fetch.timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            let body: String = answer.body.chars().take(200).collect();
            Err(format!(
                "hub answered HTTP {}: {}",
                answer.status,
                body.trim()
            ))
        }
    }
}

/// A hub named by a feed must not lead to loopback, private or link-local addresses (the feed's
/// word is not the operator's), unless the feed allows private networks.
async fn check_public(hub: &url::Url) -> Result<(), String> {
    let host = hub.host_str().ok_or("hub URL has no host")?;
    let port = hub.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot resolve the hub's host: {e}"))?
            .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(
            "the hub's address is not public (set allow_private_network on the feed to allow it)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn sub(state: SubState) -> Subscription {
        Subscription {
            feed: "f".into(),
            hub: "https://hub.example/".into(),
            topic: "https://e.example/feed".into(),
            token: "tok".into(),
            secret: "sec".into(),
            state,
            requested_at: Some(t("2026-03-01T00:00:00Z")),
            lease_until: None,
            next_attempt: None,
            attempts: 1,
            last_error: None,
            last_push: None,
            pushes: 0,
            bad_signatures: 0,
        }
    }

    #[test]
    fn renews_when_a_fifth_of_the_lease_is_left() {
        let mut s = sub(SubState::Active);
        s.lease_until = Some(t("2026-03-11T00:00:00Z"));
        // Ten days granted: renewed one day (at most) before the end.
        assert_eq!(
            next_action(&s, true, t("2026-03-05T00:00:00Z")),
            Action::Wait(Some(t("2026-03-10T00:00:00Z")))
        );
        assert_eq!(
            next_action(&s, true, t("2026-03-10T00:00:00Z")),
            Action::Subscribe
        );
        // A short lease: renewed with a fifth of it left.
        s.lease_until = Some(t("2026-03-01T00:00:10Z"));
        assert_eq!(
            next_action(&s, true, t("2026-03-01T00:00:07Z")),
            Action::Wait(Some(t("2026-03-01T00:00:08Z")))
        );
        assert_eq!(
            next_action(&s, true, t("2026-03-01T00:00:08Z")),
            Action::Subscribe
        );
        // A lease of nothing: asked again a second after it was granted, not in a loop.
        s.lease_until = s.requested_at;
        assert_eq!(
            next_action(&s, true, t("2026-03-01T00:00:00Z")),
            Action::Wait(Some(t("2026-03-01T00:00:01Z")))
        );
    }

    #[test]
    fn a_feed_that_left_is_unsubscribed_or_forgotten() {
        let now = t("2026-03-01T00:01:00Z");
        assert_eq!(
            next_action(&sub(SubState::Active), false, now),
            Action::Unsubscribe
        );
        assert_eq!(
            next_action(&sub(SubState::Subscribing), false, now),
            Action::Unsubscribe
        );
        assert_eq!(next_action(&sub(SubState::New), false, now), Action::Forget);
        assert_eq!(
            next_action(&sub(SubState::Failed), false, now),
            Action::Forget
        );
        let later = t("2026-03-01T01:00:00Z");
        assert_eq!(
            next_action(&sub(SubState::Unsubscribing), false, later),
            Action::Forget
        );
    }

    #[test]
    fn a_failed_hub_is_asked_again_with_back_off() {
        let mut s = sub(SubState::Failed);
        s.next_attempt = Some(t("2026-03-01T00:05:00Z"));
        assert_eq!(
            next_action(&s, true, t("2026-03-01T00:01:00Z")),
            Action::Wait(s.next_attempt)
        );
        assert_eq!(
            next_action(&s, true, t("2026-03-01T00:05:00Z")),
            Action::Subscribe
        );
        assert_eq!(retry_after(1), RETRY_MIN);
        assert_eq!(retry_after(3), RETRY_MIN * 4);
        assert_eq!(retry_after(40), RETRY_MAX);
        // A request the hub never verified is sent again.
        let pending = sub(SubState::Subscribing);
        assert_eq!(
            next_action(&pending, true, t("2026-03-01T00:10:00Z")),
            Action::Wait(Some(t("2026-03-01T00:15:00Z")))
        );
        assert_eq!(
            next_action(&pending, true, t("2026-03-01T00:15:00Z")),
            Action::Subscribe
        );
    }

    #[tokio::test]
    async fn a_hub_on_an_internal_address_is_refused() {
        for hub in [
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://169.254.169.254/",
        ] {
            let url = url::Url::parse(hub).expect("valid");
            assert!(check_public(&url).await.is_err(), "{hub}");
        }
        let public = url::Url::parse("https://93.184.215.14/").expect("valid");
        assert_eq!(check_public(&public).await, Ok(()));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (
            random_token(32).expect("random"),
            random_token(32).expect("random"),
        );
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
