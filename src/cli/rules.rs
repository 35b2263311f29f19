//! `newswatch check` (rule part), `rules test`, `rules explain` and `rules backtest`: load rules,
//! run them over an article, a feed, literal text or the stored articles, and print what matched
//! and why. Stores and sends nothing. Output goes to stdout, problems to stderr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Exit, count, load_rules};
use crate::config::{Config, FetchSettings, default_user_agent};
use crate::fetch::{FetchOutcome, Fetcher};
use crate::model::Validators;
use crate::model::{Article, FeedMeta};
use crate::parse::html::html_to_text;
use crate::parse::language;
use crate::rules::backtest::{self, StoredItem};
use crate::rules::{Diagnostics, Field, Hit, RuleMatch, RuleSet, example_article};

/// `check --config`: the config with its secrets, then the configured rules, their examples, and
/// their `feeds` against the config. A refused config still has its rules checked (when its TOML
/// parses far enough to name them): every problem in one run. Exit 3 for any config problem.
pub(super) fn check_config(path: &Path, strict: bool, verbose: bool) -> Exit {
    match Config::load(path) {
        Ok(config) => {
            let (names, tags) = config.feed_names_and_tags();
            check(&config.rule_files, Some((&names, &tags)), strict, verbose)
        }
        Err(e) => {
            eprintln!("{e}");
            if e.0.len() > 1 {
                eprintln!("{} in the config file", count(e.0.len(), "problem"));
            }
            if let Some(files) = Config::rule_files_of(path) {
                // Without a valid config, rules' `feeds` entries cannot be checked.
                let _ = check(&files, None, strict, verbose);
            }
            Exit::Config
        }
    }
}

/// Loads rules and runs their examples; with a config, also checks `feeds` against it. Warnings
/// are printed and fail the check only when `strict`. `verbose` adds the pre-filter's view.
pub(super) fn check(
    files: &[PathBuf],
    feeds: Option<(&[String], &[String])>,
    strict: bool,
    verbose: bool,
) -> Exit {
    let set = match RuleSet::load(files) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{} in the rule files", count(d.0.len(), "problem"));
            return Exit::Rules;
        }
    };
    for w in set.warnings() {
        eprintln!("{}", w.as_warning());
    }
    let mut problems = set.check_examples();
    if let Some((names, tags)) = feeds {
        problems.extend(set.check_feeds(names, tags));
    }
    if !problems.is_empty() {
        let n = problems.len();
        eprintln!("{}", Diagnostics(problems));
        eprintln!("{} in the rule files", count(n, "problem"));
        return Exit::Rules;
    }
    let warned = set.warnings().len();
    if strict && warned > 0 {
        eprintln!(
            "{} in the rule files (failing: --strict)",
            count(warned, "warning")
        );
        return Exit::Rules;
    }
    let examples: usize = set.rules().iter().map(|r| r.examples.len()).sum();
    let warnings = match warned {
        0 => String::new(),
        n => format!(", {}", count(n, "warning")),
    };
    outln!(
        "ok: {} rules in {} files, {examples} examples pass{warnings}",
        set.rules().len(),
        files.len()
    );
    if verbose {
        super::prefilter::print(&set);
    }
    Exit::Ok
}

/// Where `rules test` takes its articles from.
#[derive(Debug)]
pub(super) enum Input {
    Text { title: Option<String>, body: String },
    Article(PathBuf),
    Feed(String),
}

/// An article as a JSON file: every field optional; text fields may hold HTML.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ArticleJson {
    title: String,
    summary: String,
    content: String,
    link: Option<String>,
    url: Option<String>,
    authors: Vec<String>,
    categories: Vec<String>,
    lang: Option<String>,
    feed: Option<String>,
}

/// `rules test`: which rules match each article of each input, with highlighted snippets (or
/// JSON lines).
pub(super) fn test(files: &[PathBuf], inputs: Vec<Input>, json: bool) -> Exit {
    let set = match load_rules(files) {
        Ok(s) => s,
        Err(e) => return e,
    };
    for input in inputs {
        let (articles, feed) = match read_input(input) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failure;
            }
        };
        for a in &articles {
            // `rules test` shows what the queries say: feeds and max_age would hide samples.
            let matches = set.match_article_unfiltered(a, &feed);
            if json {
                print_json(&set, a, &matches);
            } else {
                print_text(&set, a, &matches);
            }
        }
    }
    Exit::Ok
}

fn article_name(a: &Article) -> String {
    if a.title.is_empty() {
        let body: String = a.content.chars().take(60).collect();
        body
    } else {
        a.title.clone()
    }
}

/// What identifies an article in JSON: its title, else its link, else its id, else its text.
fn article_id(a: &Article) -> String {
    if !a.title.is_empty() {
        a.title.clone()
    } else if let Some(link) = &a.link {
        link.clone()
    } else if !a.key.is_empty() {
        a.key.clone()
    } else {
        article_name(a)
    }
}

fn print_json(set: &RuleSet, a: &Article, matches: &[RuleMatch]) {
    let ms: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            // Each term once, in the order first seen (a word in title and body is one term).
            let mut terms: Vec<&str> = Vec::new();
            for h in &m.hits {
                if !terms.contains(&h.text.as_str()) {
                    terms.push(&h.text);
                }
            }
            serde_json::json!({"rule": set.rules()[m.rule].id, "terms": terms})
        })
        .collect();
    let id = (!a.key.is_empty()).then_some(a.key.as_str());
    outln!(
        "{}",
        serde_json::json!({"article": article_id(a), "id": id, "link": a.link, "matches": ms})
    );
}

fn print_text(set: &RuleSet, a: &Article, matches: &[RuleMatch]) {
    outln!("{}", article_name(a));
    if matches.is_empty() {
        outln!("  (no rule matches)");
    }
    for m in matches {
        let info = &set.rules()[m.rule];
        outln!("  ✓ {} — {}", info.id, info.title);
        for (field, snippet) in snippets(a, &m.hits) {
            outln!("      {field}: {snippet}");
        }
    }
}

/// One snippet per field with hits: the text around the hits, hits in `[[…]]`.
fn snippets(a: &Article, hits: &[Hit]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut fields: Vec<_> = hits.iter().map(|h| h.field).collect();
    fields.dedup();
    for field in fields {
        let text = match field {
            Field::Title => a.title.as_str(),
            Field::Summary => a.summary.as_str(),
            Field::Content => a.content.as_str(),
            _ => {
                let terms: Vec<&str> = hits
                    .iter()
                    .filter(|h| h.field == field)
                    .map(|h| h.text.as_str())
                    .collect();
                out.push((field.as_str(), terms.join(", ")));
                continue;
            }
        };
        let mut spans: Vec<(usize, usize)> = hits
            .iter()
            .filter(|h| h.field == field)
            .map(|h| (h.start, h.end))
            .collect();
        crate::rules::merge_spans(&mut spans);
        out.push((field.as_str(), highlight(text, &spans, 60)));
    }
    out
}

/// `text` from `context` bytes before the first span to `context` after the last, spans marked.
fn highlight(text: &str, spans: &[(usize, usize)], context: usize) -> String {
    let (Some(first), Some(last)) = (spans.first(), spans.iter().map(|s| s.1).max()) else {
        return String::new();
    };
    let mut from = first.0.saturating_sub(context);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (last + context).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for &(s, e) in spans {
        if s < at {
            continue;
        }
        out.push_str(&text[at..s]);
        out.push_str("[[");
        out.push_str(&text[s..e]);
        out.push_str("]]");
        at = e;
    }
    out.push_str(&text[at.min(to)..to]);
    if to < text.len() {
        out.push('…');
    }
    out
}

fn read_input(input: Input) -> anyhow::Result<(Vec<Article>, FeedMeta)> {
    use anyhow::Context;
    match input {
        Input::Text { title, body } => {
            let mut a = example_article(&html_to_text(&body));
            a.title = title.map(|t| html_to_text(&t)).unwrap_or_default();
            a.lang_detected =
                language::detect(&a.title, &a.summary, &a.content).map(str::to_string);
            Ok((vec![a], FeedMeta::default()))
        }
        Input::Article(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let j: ArticleJson = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an article JSON object", path.display()))?;
            let mut a = Article {
                key: path.display().to_string(),
                link: j.link.or(j.url),
                title: html_to_text(&j.title),
                summary: html_to_text(&j.summary),
                content: html_to_text(&j.content),
                authors: j.authors,
                categories: j.categories,
                lang: j.lang,
                lang_detected: None,
                published: None,
            };
            if a.lang.is_none() {
                a.lang_detected =
                    language::detect(&a.title, &a.summary, &a.content).map(str::to_string);
            }
            let feed = FeedMeta {
                name: j.feed.unwrap_or_default(),
                ..FeedMeta::default()
            };
            Ok((vec![a], feed))
        }
        Input::Feed(location) => {
            let (bytes, base) = read_feed_bytes(&location)?;
            let parsed = crate::parse::parse_feed(&bytes, &base)?;
            // Without a config the feed's name is its own title.
            let name = parsed.title.clone().unwrap_or_else(|| location.clone());
            let feed = FeedMeta {
                name,
                title: parsed.title,
                tags: Vec::new(),
            };
            Ok((parsed.articles, feed))
        }
    }
}

fn read_feed_bytes(location: &str) -> anyhow::Result<(Vec<u8>, url::Url)> {
    use anyhow::Context;
    if location.starts_with("http://") || location.starts_with("https://") {
        let url = url::Url::parse(location).context("bad feed URL")?;
        let settings = FetchSettings {
            concurrency: 1,
            ..FetchSettings::default()
        };
        let fetcher = Fetcher::new(&settings, &default_user_agent())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let outcome = rt.block_on(fetcher.fetch(&url, &Validators::default()))?;
        return match outcome {
            FetchOutcome::Fetched { body, .. } => Ok((body, url)),
            FetchOutcome::NotModified => {
                anyhow::bail!("the server answered 304 Not Modified to an unconditional request")
            }
        };
    }
    let path = Path::new(location);
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {location}"))?;
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let base = url::Url::from_file_path(&abs)
        .map_err(|()| anyhow::anyhow!("cannot make a file URL of {}", abs.display()))?;
    Ok((bytes, base))
}

/// `rules explain`: the query tree of one rule for literal text.
pub(super) fn explain(rule_id: &str, files: &[PathBuf], title: Option<String>, text: &str) -> Exit {
    let set = match load_rules(files) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(r) = set.find(rule_id) else {
        let ids = set.rules().iter().map(|r| r.id.as_str());
        match crate::rules::syntax::suggest(rule_id, ids) {
            Some(s) => eprintln!("error: no rule `{rule_id}` — did you mean `{s}`?"),
            None => eprintln!("error: no rule `{rule_id}`"),
        }
        return Exit::Rules;
    };
    let mut a = example_article(&html_to_text(text));
    a.title = title.map(|t| html_to_text(&t)).unwrap_or_default();
    out!("{}", set.explain(r, &a, &FeedMeta::default()));
    Exit::Ok
}

/// Articles above which `rules backtest` shows a progress bar (on a terminal only).
const PROGRESS_MIN_ARTICLES: usize = 500;

/// `rules backtest`: `files` (default: the configured rules) over the articles stored in the last
/// `since`, each line marked NEW / same / GONE against the configured rules. Opens the state
/// database read-only, so it is safe beside a running daemon.
pub(super) fn backtest(
    config: &Config,
    files: &[PathBuf],
    since: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Exit {
    use std::io::IsTerminal;

    let current = match load_rules(&config.rule_files) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let candidate_files = if files.is_empty() {
        &config.rule_files
    } else {
        files
    };
    let candidate = match load_rules(candidate_files) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let cutoff = now - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX);
    let stored = match crate::store::Store::open_read_only(&config.state_dir)
        .and_then(|s| s.articles_since(cutoff))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let items: Vec<StoredItem> = stored
        .into_iter()
        .map(|s| {
            // Tags come from the config as it is now; a feed since removed keeps none.
            let tags = config
                .feeds
                .iter()
                .find(|f| f.name == s.feed)
                .map(|f| f.tags.clone())
                .unwrap_or_default();
            StoredItem {
                feed: FeedMeta {
                    name: s.feed,
                    title: s.feed_title,
                    tags,
                },
                article: s.article,
                first_seen: s.first_seen,
            }
        })
        .collect();
    let bar = if items.len() >= PROGRESS_MIN_ARTICLES && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(items.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = backtest::run(&current, &candidate, &items, || bar.inc(1));
    bar.finish_and_clear();

    for line in &report.lines {
        let s = &items[line.item];
        let date = s.article.published.unwrap_or(s.first_seen);
        outln!(
            "{:<4}  {}  {}  {}  {}",
            line.change.marker(),
            line.rule,
            s.feed.name,
            date.format("%Y-%m-%d"),
            article_name(&s.article)
        );
    }
    if !report.lines.is_empty() {
        outln!();
    }
    outln!(
        "{} articles first seen since {} ({} rules backtested against {} in force)",
        items.len(),
        cutoff.format("%Y-%m-%d %H:%M UTC"),
        candidate.rules().len(),
        current.rules().len()
    );
    for (id, t) in &report.tallies {
        outln!(
            "  {id}: would match {}, of which {} new; {} no longer matched",
            t.matched,
            t.new,
            t.gone
        );
    }
    Exit::Ok
}
