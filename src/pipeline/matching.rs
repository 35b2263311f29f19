//! The match stage: every stored, not yet matched, alertable article through the compiled rules.
//! A plain blocking function over the store and the rule set: chunks are read and verdicts
//! written on the calling thread while scoped threads (one per core) match the chunk between.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tracing::info;

use crate::config::Config;
use crate::model::{FeedMeta, StoredHit};
use crate::rules::{Priority, RuleSet};
use crate::service::metrics::Metrics;
use crate::store::{ArticleMatches, PendingArticle, Store};

/// Pending articles matched per thread per database round trip: bounds the memory a large backlog
/// (a cold cycle of 10,000 feeds is 500,000 articles) holds at once, at one transaction per chunk.
/// Three chunks are alive at once (being matched, the next read, the last one's verdicts): 256
/// peaked 1 MB lower than 512 on the cold cycle of 200 feeds (BENCHMARKS.md, issue 22).
const MATCH_CHUNK: usize = 256;

/// Regex evaluation one article may cost (issue 16 item 9). Each regex call is bounded by the
/// compile-time budget and the field cap (about 165 ms at the worst allowed); this bounds how many
/// run. A rule cut short is reported and has no verdict for that article.
const REGEX_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

/// Threads the match stage uses: every core the process may run on (cgroup quota and affinity
/// included), at most 8.
pub(super) fn match_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Runs CPU-bound `f` without stalling the runtime's other tasks: on a multi-thread runtime the
/// worker hands them to another worker first; a current-thread runtime (tests, `run --once`)
/// simply runs it.
pub(super) fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What matching needs from the configuration, derived once when the pipeline opens.
#[derive(Debug, Default)]
pub(super) struct Routing {
    /// Each feed's tags, for rules that select feeds by tag.
    tags: HashMap<String, Vec<String>>,
    /// Alert rules go to the alert sets that select them; with no set, to the digests.
    alert_sets: HashMap<String, Vec<String>>,
}

impl Routing {
    pub(super) fn new(config: &Config, rules: &RuleSet) -> Routing {
        let tags = config
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.tags.clone()))
            .collect();
        let alert_sets = rules
            .rules()
            .iter()
            .filter(|r| r.priority == Priority::Alert)
            .map(|r| {
                let sets = config
                    .alerts
                    .iter()
                    .filter(|a| a.rules.selects(&r.id))
                    .map(|a| a.name.clone())
                    .collect();
                (r.id.clone(), sets)
            })
            .collect();
        Routing { tags, alert_sets }
    }
}

/// The match stage, blocking: chunks of pending articles are read and their verdicts written on
/// this thread while `threads` scoped threads match the chunk in between. Stops after a chunk
/// once `limit` articles are done (the stream's stages take turns). Returns the matches recorded
/// and whether the to-do list is empty.
pub(super) fn match_backlog(
    store: &Mutex<Store>,
    rules: &RuleSet,
    routing: &Routing,
    metrics: &Metrics,
    now: DateTime<Utc>,
    threads: usize,
    limit: usize,
) -> anyhow::Result<(usize, bool)> {
    // A panic in another database call cannot leave SQLite half-written (transactions roll back
    // on drop), so a poisoned lock is safe to reuse.
    let store = || store.lock().unwrap_or_else(PoisonError::into_inner);
    let chunk = MATCH_CHUNK * threads;
    let (mut articles, mut stored) = (0, 0);
    let mut record = |results: &[ArticleMatches]| -> anyhow::Result<()> {
        if !results.is_empty() {
            stored +=
                store().record_matches(results, now, &routing.alert_sets, rules.fingerprint())?;
        }
        Ok(())
    };
    // Claimed: with several nodes on PostgreSQL each article goes to one of them (`store::pg`'s
    // matcher claims); on SQLite the one node holds them all.
    let mut next = store().claim_pending_articles(0, now, chunk)?;
    let mut verdicts: Vec<ArticleMatches> = Vec::new();
    while let Some(last) = next.last().map(|p| p.id) {
        if articles >= limit {
            break;
        }
        let current = std::mem::take(&mut next);
        articles += current.len();
        // While the chunk is matched: the previous chunk's verdicts are written and the next
        // chunk read (SQLite is one connection; only this thread touches it).
        let (done, read) = std::thread::scope(|s| {
            let workers: Vec<_> = current
                .chunks(current.len().div_ceil(threads))
                .map(|part| s.spawn(|| match_articles(rules, routing, metrics, part, now)))
                .collect();
            let io = record(&verdicts)
                .and_then(|()| Ok(store().claim_pending_articles(last, now, chunk)?));
            let done: Vec<ArticleMatches> = workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect();
            (done, io)
        });
        verdicts = done;
        next = read?;
    }
    record(&verdicts)?;
    if articles > 0 {
        info!(articles, matches = stored, threads, "matched");
    }
    Ok((stored, next.is_empty()))
}

/// Verdicts for `pending`, in order. Pure apart from the metrics.
fn match_articles(
    rules: &RuleSet,
    routing: &Routing,
    metrics: &Metrics,
    pending: &[PendingArticle],
    now: DateTime<Utc>,
) -> Vec<ArticleMatches> {
    let compiled = rules.rules();
    pending
        .iter()
        .map(|p| {
            if crate::rules::text_capped(&p.article) {
                // Matched on its first `MATCH_FIELD_CAP` bytes per field: counted and named.
                metrics.article_capped();
                tracing::warn!(feed = %p.feed, article = p.id, cap = crate::rules::MATCH_FIELD_CAP,
                               "article text longer than the match cap; matched on its first part");
            }
            let meta = FeedMeta {
                name: p.feed.clone(),
                title: p.feed_title.clone(),
                tags: routing.tags.get(&p.feed).cloned().unwrap_or_default(),
            };
            let verdicts = rules.match_article_within(&p.article, &meta, now, REGEX_BUDGET);
            metrics.observe_match_work(&verdicts.work);
            for r in verdicts.skipped {
                let rule = compiled.get(r).map_or("?", |r| r.id.as_str());
                metrics.regex_budget_spent(rule);
                tracing::warn!(rule, feed = %p.feed, article = p.id,
                               budget_ms = REGEX_BUDGET.as_millis() as u64,
                               "regex time budget spent on this article; the rule is skipped for it");
            }
            let matches = verdicts
                .matches
                .into_iter()
                .filter_map(|m| {
                    let rule = compiled.get(m.rule)?;
                    let hits = m
                        .hits
                        .into_iter()
                        .map(|h| StoredHit {
                            field: h.field.as_str().to_string(),
                            start: h.start,
                            end: h.end,
                            text: h.text,
                        })
                        .collect();
                    metrics.rule_matched(&rule.id);
                    Some((rule.id.clone(), hits))
                })
                .collect();
            ArticleMatches {
                article: p.id,
                matches,
            }
        })
        .collect()
}
