//! `/playground`: a query evaluated over the stored articles with the compiled matcher, as the
//! analyst types. The query is compiled as a rule of its own beside the configured rule files'
//! `[lists]` (so `@healey` works), with the same diagnostics as `check` (a broad or invalid
//! query is refused with its place and hint). Hits come newest first with highlights and an
//! explain tree; NEW / GONE against a saved rule; "copy as TOML". One evaluation is bounded: at
//! most `MAX_HITS` hits and `TIME_BUDGET` of matching, and says when it stopped early. Only
//! the articles the corpus's word index leaves as candidates are evaluated (`corpus`), so the
//! answer is a full scan's in a fraction of its time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::html::{Nav, Viewer, attr, cut, enc, esc, marked, page};
use super::pages::TITLE_MAX;
use super::{Console, ConsoleError, St, respond};
use crate::model::{FeedMeta, StoredHit};
use crate::rules::ExplainNode;
use crate::rules::{RuleMatch, RuleSet};
use crate::store::{ArticleView, Store};

mod corpus;
#[cfg(test)]
mod tests;
pub use corpus::Corpus;
use corpus::{Snapshot, feed_of};

/// Stored articles the playground searches (the newest).
pub const CORPUS_ARTICLES: usize = 100_000;
/// Matching time one evaluation may take; past it the rest is not searched (and the page says so).
pub const TIME_BUDGET: Duration = Duration::from_millis(250);
/// Hits listed, and NEW / GONE articles listed.
pub const MAX_HITS: usize = 100;
/// Bytes of each field the playground matches (the match stage takes `MATCH_FIELD_CAP`, 256 KB):
/// one pathological article (a 1 MB title of 70,000 names) must not hold an evaluation for
/// seconds, and the corpus's memory stays bounded.
pub const FIELD_CAP: usize = 16 << 10;
/// The longest query accepted.
const MAX_QUERY: usize = 4_000;
/// The id the query gets as a rule.
const RULE_ID: &str = "playground";

/// The `[lists]` of the configured rule files, as one TOML source: what a query may refer to.
pub fn lists_source(files: &[PathBuf]) -> String {
    let mut all = toml::Table::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        if let Some(toml::Value::Table(lists)) = table.get("lists") {
            for (k, v) in lists {
                all.insert(k.clone(), v.clone());
            }
        }
    }
    let mut doc = toml::Table::new();
    doc.insert("lists".into(), toml::Value::Table(all));
    toml::to_string(&doc).unwrap_or_default()
}

/// The query as a rule file of one rule.
pub fn rule_toml(query: &str, title: &str) -> String {
    let mut rule = toml::Table::new();
    rule.insert("id".into(), toml::Value::String(RULE_ID.into()));
    rule.insert("title".into(), toml::Value::String(title.into()));
    rule.insert("query".into(), toml::Value::String(query.into()));
    let mut doc = toml::Table::new();
    doc.insert(
        "rule".into(),
        toml::Value::Array(vec![toml::Value::Table(rule)]),
    );
    toml::to_string(&doc).unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    #[serde(default)]
    q: String,
    /// A saved rule's id: NEW / GONE against it.
    #[serde(default)]
    against: String,
    /// `1`: only the results fragment (the script's request).
    #[serde(default)]
    partial: String,
}

pub(super) async fn playground(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Query(p): Query<Params>,
) -> Response {
    let partial = p.partial == "1";
    let result = c
        .with_store(move |s, c| {
            let results = evaluate(s, c, &p)?;
            Ok(if partial {
                results
            } else {
                page("Playground", Nav::Playground, &v, &form(c, &p, &results))
            })
        })
        .await;
    match (partial, result) {
        (true, Ok(fragment)) => Html(fragment).into_response(),
        (_, r) => respond(r),
    }
}

fn form(c: &Console, p: &Params, results: &str) -> String {
    let mut b = String::from(
        "<h1>Playground</h1><form class=\"query\" id=\"playground\" method=\"get\" action=\"/playground\">\
         <label class=\"wide\">Query <textarea name=\"q\" id=\"q\" spellcheck=\"false\" \
         placeholder=\"@healey NEAR/20 @hegseth\">",
    );
    b.push_str(&esc(&p.q));
    b.push_str("</textarea></label><label>Compare with <select name=\"against\" id=\"against\"><option value=\"\">no saved rule</option>");
    for r in c.rules.rules() {
        let sel = if p.against == r.id { " selected" } else { "" };
        let _ = write!(
            b,
            "<option value=\"{}\"{sel}>{}</option>",
            attr(&r.id),
            esc(&r.id)
        );
    }
    let _ = write!(
        b,
        "</select></label><button type=\"submit\">Run</button></form>\
         <p class=\"muted\">Searches the newest {CORPUS_ARTICLES} stored articles (through an index of their words: only those holding the words the query requires are evaluated) for at most {} ms; lists from the configured rule files may be used (<code>@name</code>).</p>\
         <div id=\"results\" aria-live=\"polite\">{results}</div>",
        TIME_BUDGET.as_millis()
    );
    b
}

/// One evaluation's outcome as the results fragment.
fn evaluate(s: &Store, c: &Console, p: &Params) -> Result<String, ConsoleError> {
    let q = p.q.trim();
    if q.is_empty() {
        return Ok("<p class=\"muted\">Type a query.</p>".into());
    }
    if q.len() > MAX_QUERY {
        return Ok(format!(
            "<pre class=\"diag\">the query is {} bytes long; the playground takes at most {MAX_QUERY}</pre>",
            q.len()
        ));
    }
    let sources = vec![
        (
            PathBuf::from("lists (configured rule files)"),
            c.lists.clone(),
        ),
        (
            PathBuf::from("playground"),
            rule_toml(q, "Playground query"),
        ),
    ];
    let set = match RuleSet::from_sources(&sources) {
        Ok(set) => set,
        Err(d) => {
            return Ok(format!(
                "<pre class=\"diag\" role=\"alert\">{}</pre>",
                esc(&d.to_string())
            ));
        }
    };
    let Some(rule) = set.find(RULE_ID) else {
        return Ok("<pre class=\"diag\">the query did not compile into a rule</pre>".into());
    };
    let against = c.rules.find(p.against.trim());
    let snapshot = {
        let mut corpus = c.corpus.lock().unwrap_or_else(PoisonError::into_inner);
        corpus.refresh(s)?;
        let mut wanted = vec![(&set, rule)];
        wanted.extend(against.map(|r| (&*c.rules, r)));
        corpus.snapshot(&wanted)
    };
    let tags: HashMap<&str, &[String]> = c
        .config
        .feeds
        .iter()
        .map(|f| (f.name.as_str(), f.tags.as_slice()))
        .collect();
    let run = search(&set, rule, &c.rules, against, &snapshot, &tags, TIME_BUDGET);
    let mut out = render(&run, &set, rule, &c.rules, against, q);
    if let Some(labels) = &c.labels {
        out.push_str(&super::labels::score(labels, &set, rule, &c.rules, against));
    }
    Ok(out)
}

/// What one evaluation found.
struct Run {
    hits: Vec<(Arc<ArticleView>, RuleMatch)>,
    total_hits: usize,
    new: Vec<Arc<ArticleView>>,
    gone: Vec<Arc<ArticleView>>,
    new_count: usize,
    gone_count: usize,
    searched: usize,
    /// Articles the index left to evaluate (all of them when it could not restrict the query).
    candidates: usize,
    restricted: bool,
    corpus: usize,
    elapsed: Duration,
    stopped: Option<&'static str>,
}

/// Evaluates the query (and the saved rule, when comparing) over the snapshot's candidates:
/// what a scan of every article finds, since the others cannot match either rule.
fn search(
    set: &RuleSet,
    rule: usize,
    saved: &RuleSet,
    against: Option<usize>,
    snapshot: &Snapshot,
    tags: &HashMap<&str, &[String]>,
    budget: Duration,
) -> Run {
    let started = Instant::now();
    let corpus = &snapshot.articles;
    let order = &snapshot.order;
    // One worker per core (at most 8), each taking every n-th candidate: newest first on every
    // worker, so a search cut by the time budget has looked at the newest articles.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let parts: Vec<Part> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    let mut part = Part::default();
                    for &i in order.iter().skip(w).step_by(workers) {
                        let a = &corpus[i];
                        if started.elapsed() > budget {
                            part.stopped = true;
                            break;
                        }
                        let feed = FeedMeta {
                            name: a.feed.clone(),
                            title: a.feed_title.clone(),
                            tags: tags
                                .get(a.feed.as_str())
                                .map(|t| t.to_vec())
                                .unwrap_or_default(),
                        };
                        // The verdict alone for most; the evidence only for the hits that
                        // can be listed (collecting it costs another pass over the tree).
                        let matched = set.matches_ignoring_filters(rule, &a.article, &feed);
                        part.searched += 1;
                        if matched {
                            part.total_hits += 1;
                            if part.hits.len() < MAX_HITS
                                && let Some(m) = set
                                    .match_article_unfiltered(&a.article, &feed)
                                    .into_iter()
                                    .find(|m| m.rule == rule)
                            {
                                part.hits.push((i, m));
                            }
                        }
                        if let Some(r) = against {
                            let before = saved.matches_ignoring_filters(r, &a.article, &feed);
                            if matched && !before {
                                part.new_count += 1;
                                if part.new.len() < MAX_HITS {
                                    part.new.push(i);
                                }
                            } else if before && !matched {
                                part.gone_count += 1;
                                if part.gone.len() < MAX_HITS {
                                    part.gone.push(i);
                                }
                            }
                        }
                    }
                    part
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut run = Run {
        hits: Vec::new(),
        total_hits: 0,
        new: Vec::new(),
        gone: Vec::new(),
        new_count: 0,
        gone_count: 0,
        searched: 0,
        candidates: order.len(),
        restricted: snapshot.restricted,
        corpus: corpus.len(),
        elapsed: Duration::ZERO,
        stopped: None,
    };
    let (mut hits, mut new, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        run.total_hits += p.total_hits;
        run.new_count += p.new_count;
        run.gone_count += p.gone_count;
        run.searched += p.searched;
        if p.stopped {
            run.stopped = Some("time budget");
        }
        hits.extend(p.hits);
        new.extend(p.new);
        gone.extend(p.gone);
    }
    hits.sort_by_key(|(i, _)| *i);
    new.sort_unstable();
    gone.sort_unstable();
    run.hits = hits
        .into_iter()
        .take(MAX_HITS)
        .map(|(i, m)| (Arc::clone(&corpus[i]), m))
        .collect();
    run.new = new
        .into_iter()
        .take(MAX_HITS)
        .map(|i| Arc::clone(&corpus[i]))
        .collect();
    run.gone = gone
        .into_iter()
        .take(MAX_HITS)
        .map(|i| Arc::clone(&corpus[i]))
        .collect();
    run.elapsed = started.elapsed();
    run
}

/// What one worker found: corpus indices, newest first.
#[derive(Default)]
struct Part {
    hits: Vec<(usize, RuleMatch)>,
    total_hits: usize,
    new: Vec<usize>,
    gone: Vec<usize>,
    new_count: usize,
    gone_count: usize,
    searched: usize,
    stopped: bool,
}

fn render(
    run: &Run,
    set: &RuleSet,
    rule: usize,
    saved: &RuleSet,
    against: Option<usize>,
    query: &str,
) -> String {
    let why = if run.restricted {
        format!(
            "the other {} hold none of the words the query requires",
            run.corpus.saturating_sub(run.candidates)
        )
    } else {
        "the query requires no word, so every article is evaluated".to_string()
    };
    let mut b = format!(
        "<p id=\"summary\"><b id=\"hit-count\">{}</b> hits; evaluated <b id=\"evaluated\">{}</b> of {} stored articles ({why}) ({} ms){}</p>",
        run.total_hits,
        run.searched,
        run.corpus,
        run.elapsed.as_millis(),
        run.stopped
            .map(|why| format!(
                " <span class=\"warn\">— stopped early: {why}; the rest was not searched</span>"
            ))
            .unwrap_or_default()
    );
    if let Some(r) = against {
        let id = &saved.rules()[r].id;
        let _ = write!(
            b,
            "<p>Against <a href=\"/rules/{}\">{}</a>: <span class=\"new\">{} NEW</span>, <span class=\"gone\">{} GONE</span>.</p>",
            enc(id),
            esc(id),
            run.new_count,
            run.gone_count
        );
    }
    let _ = write!(
        b,
        "<details class=\"toml\"><summary>Copy as TOML</summary><pre id=\"toml\">{}</pre><button type=\"button\" id=\"copy-toml\">Copy</button></details>",
        esc(&rule_toml(query, "New rule").replace("id = \"playground\"", "id = \"new-rule\""))
    );
    b.push_str("<h2>Hits</h2>");
    if run.hits.is_empty() {
        b.push_str("<p class=\"muted\">No stored article matches.</p>");
    }
    // The explain trees (one re-evaluation of the query per article listed) are the costly part
    // of the page: built on one thread per core, in the order listed.
    let gone: &[Arc<ArticleView>] = if against.is_some() { &run.gone } else { &[] };
    let listed: Vec<&ArticleView> = run
        .hits
        .iter()
        .map(|(a, _)| &**a)
        .chain(gone.iter().map(|a| &**a))
        .collect();
    let mut trees = explain_all(set, rule, &listed).into_iter();
    for (a, m) in &run.hits {
        let mark = match against {
            Some(_) if run.new.iter().any(|n| n.id == a.id) => " <span class=\"new\">NEW</span>",
            _ => "",
        };
        b.push_str(&hit(a, &m_hits(m), mark));
        b.push_str(&trees.next().unwrap_or_default());
        b.push_str("</article>");
    }
    if !gone.is_empty() {
        b.push_str("<h2>GONE: the saved rule matches, the query does not</h2>");
        for a in gone {
            b.push_str(&hit(a, &[], " <span class=\"gone\">GONE</span>"));
            b.push_str(&trees.next().unwrap_or_default());
            b.push_str("</article>");
        }
    }
    b
}

/// `explain_details` of each article, in order, on one thread per core (at most 8).
fn explain_all(set: &RuleSet, rule: usize, listed: &[&ArticleView]) -> Vec<String> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = listed.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = listed
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|a| explain_details(set, rule, a))
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        // A worker that panicked leaves its trees empty; the rest of the page still renders.
        handles
            .into_iter()
            .zip(listed.chunks(chunk))
            .flat_map(|(h, part)| h.join().unwrap_or_else(|_| vec![String::new(); part.len()]))
            .collect()
    })
}

fn m_hits(m: &RuleMatch) -> Vec<StoredHit> {
    m.hits
        .iter()
        .map(|h| StoredHit {
            field: h.field.as_str().to_string(),
            start: h.start,
            end: h.end,
            text: h.text.clone(),
        })
        .collect()
}

/// An article card, left open for the explain tree.
fn hit(a: &ArticleView, hits: &[StoredHit], mark: &str) -> String {
    let row = crate::model::PendingMatch {
        id: 0,
        rule_id: RULE_ID.into(),
        hits: hits.to_vec(),
        article_id: a.id,
        feed: a.feed.clone(),
        feed_title: a.feed_title.clone(),
        title: a.article.title.clone(),
        link: a.article.link.clone(),
        summary: a.article.summary.as_str().into(),
        content: a.article.content.as_str().into(),
        published: a.article.published,
        first_seen: a.first_seen,
        full_text: false,
        lang: a
            .article
            .lang
            .clone()
            .or_else(|| a.article.lang_detected.clone()),
        // A playground verdict, not a stored match.
        rules_hash: None,
    };
    let (headline, snippet) = crate::digest::highlighted(&crate::digest::entry(&row), TITLE_MAX);
    let title = if headline.is_empty() {
        esc(&cut(&a.article.title, TITLE_MAX))
    } else {
        marked(&headline)
    };
    let heading = match a.article.link.as_deref().and_then(super::html::safe_href) {
        Some(href) => format!("<a href=\"{href}\" rel=\"noopener noreferrer\">{title}</a>"),
        None => title,
    };
    let mut terms: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    terms.sort_unstable();
    terms.dedup();
    format!(
        "<article class=\"match hit\"><h3>{heading}{mark}</h3><p class=\"muted\">{} · {}</p><p>{}</p><p class=\"terms\">terms: {}</p>",
        esc(&a.feed),
        super::html::time(Some(a.article.published.unwrap_or(a.first_seen))),
        marked(&snippet),
        esc(&cut(&terms.join(", "), 400))
    )
}

fn explain_details(set: &RuleSet, rule: usize, a: &ArticleView) -> String {
    let e = set.explain(rule, &a.article, &feed_of(a));
    let mut b = String::from(
        "<details class=\"explain\"><summary>Why (explain)</summary><ul class=\"tree\">",
    );
    node(&mut b, &e.root);
    b.push_str("</ul></details>");
    b
}

fn node(b: &mut String, n: &ExplainNode) {
    let (class, word) = if n.value {
        ("ok", "true")
    } else {
        ("bad", "false")
    };
    let _ = write!(
        b,
        "<li><span class=\"{class}\">{word}</span> <code>{}</code>",
        esc(&cut(&n.label, 300))
    );
    let mut terms: Vec<&str> = n.hits.iter().map(|h| h.text.as_str()).collect();
    terms.dedup();
    if !terms.is_empty() {
        let _ = write!(
            b,
            " <span class=\"terms\">{}</span>",
            esc(&cut(&terms.join(", "), 200))
        );
    }
    if !n.children.is_empty() {
        b.push_str("<ul class=\"tree\">");
        for c in &n.children {
            node(b, c);
        }
        b.push_str("</ul>");
    }
    b.push_str("</li>");
}

/// The corpus a console keeps for its playground.
pub(super) fn corpus() -> Arc<Mutex<Corpus>> {
    Arc::new(Mutex::new(Corpus::new(CORPUS_ARTICLES)))
}
