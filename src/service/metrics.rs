//! The daemon's Prometheus metrics: one registry, cheap handles the stages' owners update.
//! Names are `newswatch_*`; label values are bounded (feed names and rule ids come from the
//! config and rule files, never from feed content). Rendering is OpenMetrics text.
//! This module does no IO; `health` serves what [`Metrics::encode`] renders.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the fetch latency buckets, in seconds: from a fast 304 to the 30 s default
/// request timeout and a little beyond.
pub const FETCH_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Upper bounds of the latency buckets, in seconds: from "within the second" (the streaming
/// target is 2 s from fetch to alert) to a day (an item published long before it was seen).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// `Content-Type` of [`Metrics::encode`]'s output.
/// The share of the rule set evaluated for one article (issue 22): the pre-filter's selectivity.
/// At 10,000 rules a typical article evaluates well under 1 %; a rule evaluated for every
/// article (`check --verbose` lists them) sets the floor.
pub const RULES_EVALUATED_BUCKETS: [f64; 9] =
    [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollMetric {
    /// New content fetched and parsed.
    Ok,
    /// 304 or an unchanged body.
    NotModified,
    /// Fetch or parse failed.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    Applied,
    /// The new config or rules were invalid; the old set kept running.
    Refused,
}

// Label values in Prometheus' snake_case rather than the derive's Rust variant names.
impl EncodeLabelValue for PollMetric {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            PollMetric::Ok => "ok",
            PollMetric::NotModified => "not_modified",
            PollMetric::Error => "error",
        })
    }
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PollLabels {
    result: PollMetric,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FeedLabels {
    feed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PushLabels {
    feed: String,
    result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

/// Where an alert latency is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LatencyFrom {
    /// The response of the poll that first brought the article.
    Fetch,
    /// The feed's publication date (when sane).
    Published,
}

impl EncodeLabelValue for LatencyFrom {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            LatencyFrom::Fetch => "fetch",
            LatencyFrom::Published => "published",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    from: LatencyFrom,
}

/// A channel message attempt's outcome (`sent`, `retry`, `failed`), or a queue state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChannelStateLabels {
    channel: String,
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

/// Every metric the daemon exports. Clones share the same values.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    polls: Family<PollLabels, Counter>,
    new_articles: Family<FeedLabels, Counter>,
    matches: Family<RuleLabels, Counter>,
    emails_sent: Counter,
    emails_failed: Counter,
    emails_queued: Gauge,
    fetch_duration: Histogram,
    alert_latency: Family<LatencyLabels, Histogram>,
    articles_capped: Counter,
    regex_budget_spent: Family<RuleLabels, Counter>,
    match_latency: Histogram,
    rules_evaluated_share: Histogram,
    feeds_in_error: Gauge,
    cluster_rules_differ: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    channel_attempts: Family<ChannelLabels, Counter>,
    channel_messages: Family<ChannelStateLabels, Gauge>,
    websub_pushes: Family<PushLabels, Counter>,
    websub_lease: Family<FeedLabels, Gauge>,
    /// The recent runs of each stage, for the console's overview.
    stages: crate::live::stage_times::StageTimes,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("newswatch");
        let polls = Family::<PollLabels, Counter>::default();
        let new_articles = Family::<FeedLabels, Counter>::default();
        let matches = Family::<RuleLabels, Counter>::default();
        let emails_sent = Counter::default();
        let emails_failed = Counter::default();
        let emails_queued = Gauge::default();
        let fetch_duration = Histogram::new(FETCH_BUCKETS);
        let alert_latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let match_latency = Histogram::new(LATENCY_BUCKETS);
        let rules_evaluated_share = Histogram::new(RULES_EVALUATED_BUCKETS);
        r.register(
            "rules_evaluated_share",
            "Per matched article: the share of the rule set the pre-filter let through and \
             evaluated (rules evaluated / rules loaded)",
            rules_evaluated_share.clone(),
        );
        let articles_capped = Counter::default();
        let regex_budget_spent = Family::<RuleLabels, Counter>::default();
        r.register(
            "regex_budget_spent",
            "Articles for which a rule was skipped because the article's regex time budget ran out",
            regex_budget_spent.clone(),
        );
        r.register(
            "articles_capped",
            "Articles with a field longer than the match cap (256 KiB), matched on its first part",
            articles_capped.clone(),
        );
        let feeds_in_error = Gauge::default();
        let cluster_rules_differ = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        r.register("polls", "Feed polls by result", polls.clone());
        r.register(
            "new_articles",
            "Articles seen for the first time, by feed",
            new_articles.clone(),
        );
        r.register("matches", "Articles matched, by rule id", matches.clone());
        r.register(
            "emails_sent",
            "Emails accepted by the mail transport",
            emails_sent.clone(),
        );
        r.register(
            "emails_failed",
            "Email delivery attempts that failed (the email stays in the outbox if retryable)",
            emails_failed.clone(),
        );
        r.register(
            "emails_queued",
            "Emails waiting in the outbox",
            emails_queued.clone(),
        );
        r.register(
            "fetch_duration_seconds",
            "Time to fetch one feed, headers and body",
            fetch_duration.clone(),
        );
        r.register(
            "alert_latency_seconds",
            "Per alerted article: from its first fetch (from=fetch) or its feed's publication date \
             (from=published, when sane) to the alert's acceptance by the mail transport",
            alert_latency.clone(),
        );
        r.register(
            "match_latency_seconds",
            "Per alerted article: from its first fetch to its match being recorded",
            match_latency.clone(),
        );
        r.register(
            "cluster_rules_differ",
            "1 while another live node of the cluster runs other rules (issue 17)",
            cluster_rules_differ.clone(),
        );
        r.register(
            "feeds_in_error",
            "Feeds whose last poll failed",
            feeds_in_error.clone(),
        );
        r.register(
            "reloads",
            "Config and rule reloads (SIGHUP) by result",
            reloads.clone(),
        );
        let channel_attempts = Family::<ChannelLabels, Counter>::default();
        let channel_messages = Family::<ChannelStateLabels, Gauge>::default();
        r.register(
            "channel_attempts",
            "Channel message attempts, by channel and outcome (sent, retry, failed)",
            channel_attempts.clone(),
        );
        r.register(
            "channel_messages",
            "Channel messages in the outbox, by channel and state (queued, failed)",
            channel_messages.clone(),
        );
        let websub_pushes = Family::<PushLabels, Counter>::default();
        let websub_lease = Family::<FeedLabels, Gauge>::default();
        r.register(
            "websub_pushes",
            "WebSub pushes received, by feed and result (stored, bad_signature, unparseable, gone)",
            websub_pushes.clone(),
        );
        r.register(
            "websub_subscribed_until",
            "When each feed's WebSub lease ends (Unix seconds; 0 when not subscribed)",
            websub_lease.clone(),
        );
        // Pre-create the poll and reload series so a dashboard sees zeros, not gaps.
        for result in [PollMetric::Ok, PollMetric::NotModified, PollMetric::Error] {
            polls.get_or_create(&PollLabels { result }).inc_by(0);
        }
        for result in [ReloadResult::Applied, ReloadResult::Refused] {
            reloads.get_or_create(&ReloadLabels { result }).inc_by(0);
        }
        Metrics {
            registry: Arc::new(r),
            polls,
            new_articles,
            matches,
            emails_sent,
            emails_failed,
            emails_queued,
            fetch_duration,
            alert_latency,
            articles_capped,
            regex_budget_spent,
            match_latency,
            rules_evaluated_share,
            feeds_in_error,
            cluster_rules_differ,
            reloads,
            channel_attempts,
            channel_messages,
            websub_pushes,
            websub_lease,
            stages: crate::live::stage_times::StageTimes::default(),
        }
    }

    /// One WebSub push to `feed` and what became of it.
    pub fn websub_push(&self, feed: &str, result: &str) {
        self.websub_pushes
            .get_or_create(&PushLabels {
                feed: feed.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// When `feed`'s lease ends (Unix seconds), 0 when it has none.
    pub fn websub_lease(&self, feed: &str, until: i64) {
        self.websub_lease
            .get_or_create(&FeedLabels {
                feed: feed.to_string(),
            })
            .set(until);
    }

    /// One attempt at a message for `channel` ended `outcome` (`sent`, `retry`, `failed`).
    pub fn channel_attempt(&self, channel: &str, outcome: &str) {
        self.channel_attempts
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `channel`'s queued and failed messages, as the store counted them.
    pub fn set_channel_messages(&self, channel: &str, queued: usize, failed: usize) {
        for (state, n) in [("queued", queued), ("failed", failed)] {
            self.channel_messages
                .get_or_create(&ChannelStateLabels {
                    channel: channel.to_string(),
                    state: state.to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn poll(&self, result: PollMetric) {
        self.polls.get_or_create(&PollLabels { result }).inc();
    }

    pub fn new_articles(&self, feed: &str, count: u64) {
        self.new_articles
            .get_or_create(&FeedLabels {
                feed: feed.to_string(),
            })
            .inc_by(count);
    }

    pub fn rule_matched(&self, rule: &str) {
        self.matches
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    pub fn email_sent(&self) {
        self.emails_sent.inc();
    }

    pub fn email_failed(&self) {
        self.emails_failed.inc();
    }

    /// The outbox length, as counted by the store after each delivery pass.
    pub fn set_emails_queued(&self, queued: u64) {
        self.emails_queued
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    pub fn observe_fetch(&self, took: Duration) {
        self.fetch_duration.observe(took.as_secs_f64());
        self.observe_stage(crate::live::stage_times::Stage::Fetch, took);
    }

    /// One run of `stage` that did work, just finished, took `took`.
    pub fn observe_stage(&self, stage: crate::live::stage_times::Stage, took: Duration) {
        self.stages.record(stage, crate::clock::now(), took);
    }

    /// The recent stage runs (shared: it follows what the stages record).
    pub fn stage_times(&self) -> crate::live::stage_times::StageTimes {
        self.stages.clone()
    }

    /// Rule `rule` was skipped for an article whose regex time budget ran out.
    pub fn regex_budget_spent(&self, rule: &str) {
        self.regex_budget_spent
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    /// How much of the rule set one article's match evaluated.
    pub fn observe_match_work(&self, work: &crate::rules::MatchWork) {
        self.rules_evaluated_share.observe(work.evaluated_share());
    }

    /// An article matched on the first part of an overlong field.
    pub fn article_capped(&self) {
        self.articles_capped.inc();
    }

    /// One alerted article's latencies, once its alert was accepted.
    pub fn observe_alert(&self, latency: &crate::model::AlertLatency) {
        let observe = |from, d: std::time::Duration| {
            self.alert_latency
                .get_or_create(&LatencyLabels { from })
                .observe(d.as_secs_f64());
        };
        observe(LatencyFrom::Fetch, latency.from_fetch);
        if let Some(d) = latency.from_published {
            observe(LatencyFrom::Published, d);
        }
        if let Some(d) = latency.to_match {
            self.match_latency.observe(d.as_secs_f64());
        }
    }

    /// 1 while another live node of the cluster runs other rules (its rules hash differs).
    pub fn set_cluster_rules_differ(&self, differ: bool) {
        self.cluster_rules_differ.set(i64::from(differ));
    }

    pub fn set_feeds_in_error(&self, feeds: u64) {
        self.feeds_in_error
            .set(i64::try_from(feeds).unwrap_or(i64::MAX));
    }

    pub fn reload(&self, result: ReloadResult) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The OpenMetrics text exposition (ends with `# EOF`); serve with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an Err would mean a broken Display impl upstream.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, series: &str) -> Option<String> {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')
                .map(str::to_string)
        })
    }

    #[test]
    fn every_metric_renders_with_its_value() {
        let m = Metrics::new();
        m.poll(PollMetric::Ok);
        m.poll(PollMetric::Ok);
        m.poll(PollMetric::Error);
        m.new_articles("Kyiv Ledger", 3);
        m.rule_matched("minerals-deal");
        m.email_sent();
        m.email_failed();
        m.set_emails_queued(4);
        m.observe_fetch(Duration::from_millis(70));
        m.observe_fetch(Duration::from_secs(90));
        m.set_feeds_in_error(2);
        m.reload(ReloadResult::Refused);
        m.channel_attempt("ops", "retry");
        m.channel_attempt("ops", "sent");
        m.set_channel_messages("ops", 2, 1);
        let work = |evaluated| crate::rules::MatchWork {
            rules: 10_000,
            candidates: 300,
            evaluated,
        };
        m.observe_match_work(&work(3));
        m.observe_match_work(&work(20));
        m.observe_match_work(&work(10_000));
        let text = m.clone().encode();

        #[rustfmt::skip]
        let want: &[(&str, &str)] = &[
            (r#"newswatch_polls_total{result="ok"}"#,                   "2"),
            (r#"newswatch_polls_total{result="not_modified"}"#,          "0"),
            (r#"newswatch_polls_total{result="error"}"#,                "1"),
            (r#"newswatch_new_articles_total{feed="Kyiv Ledger"}"#,     "3"),
            (r#"newswatch_matches_total{rule="minerals-deal"}"#,        "1"),
            ("newswatch_emails_sent_total",                              "1"),
            ("newswatch_emails_failed_total",                            "1"),
            ("newswatch_emails_queued",                                  "4"),
            ("newswatch_feeds_in_error",                                 "2"),
            (r#"newswatch_fetch_duration_seconds_bucket{le="0.05"}"#,   "0"),
            (r#"newswatch_fetch_duration_seconds_bucket{le="0.1"}"#,    "1"),
            (r#"newswatch_fetch_duration_seconds_bucket{le="60.0"}"#,   "1"),
            (r#"newswatch_fetch_duration_seconds_bucket{le="+Inf"}"#,   "2"),
            ("newswatch_fetch_duration_seconds_count",                   "2"),
            (r#"newswatch_rules_evaluated_share_bucket{le="0.0001"}"#,  "0"),
            (r#"newswatch_rules_evaluated_share_bucket{le="0.0005"}"#,  "1"),
            (r#"newswatch_rules_evaluated_share_bucket{le="0.005"}"#,   "2"),
            (r#"newswatch_rules_evaluated_share_bucket{le="0.5"}"#,     "2"),
            (r#"newswatch_rules_evaluated_share_bucket{le="1.0"}"#,     "3"),
            ("newswatch_rules_evaluated_share_count",                    "3"),
            ("newswatch_rules_evaluated_share_sum",                      "1.0023"),
            (r#"newswatch_reloads_total{result="refused"}"#,            "1"),
            (r#"newswatch_reloads_total{result="applied"}"#,            "0"),
            (r#"newswatch_channel_attempts_total{channel="ops",outcome="retry"}"#, "1"),
            (r#"newswatch_channel_attempts_total{channel="ops",outcome="sent"}"#,  "1"),
            (r#"newswatch_channel_messages{channel="ops",state="queued"}"#,        "2"),
            (r#"newswatch_channel_messages{channel="ops",state="failed"}"#,        "1"),
        ];
        for (series, value) in want {
            assert_eq!(
                line_value(&text, series).as_deref(),
                Some(*value),
                "{series} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
