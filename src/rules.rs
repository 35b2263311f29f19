//! The rule language (issue 3, `docs/rules.md`): rule files compiled into one `RuleSet` that says
//! which rules an article matches, why, and where. Parsing (`syntax`), normalisation (`text`),
//! compilation (`compile`), the match step (`matcher`), `explain` and `eval` (rules against
//! labelled articles) live in `rules/`.
//! No IO except reading rule files in `load`; matching is pure and takes `now`.

mod automaton;
pub mod backtest;
mod compile;
pub mod eval;
mod explain;
mod file;
pub mod index;
mod matcher;
mod par;
mod prefilter;
mod scan;
pub mod syntax;
pub mod text;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;

pub use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Article, FeedMeta};
use compile::{Builder, Literal, Node};
pub use explain::{ExplainNode, Explanation};
use file::{Source, StrLoc};
use matcher::{Ctx, Doc};
pub use matcher::{MATCH_FIELD_CAP, MAX_HITS_PER_ATOM, merge_spans};
pub use prefilter::MatchWork;
use prefilter::Prefilter;
pub use scan::{AUTOMATON_UP_TO, LiteralSearch, LiteralsError};
use syntax::Expr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Digest,
    Alert,
}

/// A field of an article that a hit was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Title,
    Summary,
    Content,
    Author,
    Category,
    Feed,
    Url,
    Lang,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Summary => "summary",
            Field::Content => "content",
            Field::Author => "author",
            Field::Category => "category",
            Field::Feed => "feed",
            Field::Url => "url",
            Field::Lang => "lang",
        }
    }
}

/// A rule's `feeds` entry: a configured feed name, or `tag:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSelector {
    Name(String),
    Tag(String),
}

/// One of a rule's `examples`: text that must (or must not) match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub expect_match: bool,
    pub line: usize,
    pub column: usize,
    /// The line of the rule file that holds it (or a window of a long line), for the diagnostic
    /// when it fails; `source_skip` as in `Diagnostic`.
    pub source_line: String,
    pub source_skip: usize,
}

/// What an analyst configured about a rule, besides its compiled query.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub priority: Priority,
    /// The query as written.
    pub query: String,
    /// The rule file, shared by all its rules.
    pub file: std::sync::Arc<std::path::Path>,
    pub line: usize,
    pub feeds: Vec<FeedSelector>,
    pub max_age: Option<Duration>,
    pub examples: Vec<Example>,
}

/// One matched term: where in which field of the original article text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub field: Field,
    /// Byte range in the original (un-normalised) field text.
    pub start: usize,
    pub end: usize,
    /// The original text at that range.
    pub text: String,
}

/// A rule that matched an article, with the hits that made it true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index into `RuleSet::rules()`.
    pub rule: usize,
    pub hits: Vec<Hit>,
}

/// What the match stage gets for one article (`match_article_within`).
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    /// The rules that matched, in rule order.
    pub matches: Vec<RuleMatch>,
    /// Rules with no verdict: a regex they needed was not run, the article's budget spent.
    pub skipped: Vec<usize>,
    /// How many rules were candidates and evaluated (the pre-filter's share).
    pub work: MatchWork,
}

/// A rule the pre-filter can never skip: evaluated for every article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfiltered {
    /// Index into `RuleSet::rules()`.
    pub rule: usize,
    /// The part of the query that needs no literal.
    pub reason: String,
}

/// All rules, compiled once into one matcher; immutable and cheap to share between tasks.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<RuleInfo>,
    nodes: Vec<Node>,
    lits: Vec<Literal>,
    /// The automaton over `lits`: built on the first article matched, unless its build could
    /// fail (then at load, which reports the failure).
    ac: automaton::LazyLiterals,
    /// Which rules an article's literals make candidates (see `prefilter`).
    prefilter: Prefilter,
    /// A bit per rule with `feeds` or `max_age`: the others see every article.
    restricted: Vec<u64>,
    regexes: Vec<Regex>,
    /// Problems that do not stop the load (`check` prints them; `check --strict` fails on them).
    warnings: Vec<Diagnostic>,
    /// `fingerprint`, once asked: only a cycle that records a match or a node's beat needs it,
    /// and hashing every query was 7 % of an unchanged cycle's instructions (issue 22).
    fingerprint: std::sync::OnceLock<String>,
}

impl RuleSet {
    /// Loads and compiles every rule in `files`; every problem is returned at once.
    pub fn load(files: &[PathBuf]) -> Result<RuleSet, Diagnostics> {
        let (sources, mut diags) = file::read_sources(files);
        match Self::compile_sources(&sources) {
            Ok(set) if diags.is_empty() => Ok(set),
            Ok(_) => Err(Diagnostics(diags)),
            Err(Diagnostics(more)) => {
                diags.extend(more);
                Err(Diagnostics(diags))
            }
        }
    }

    /// Compiles rule files given as (name, text) pairs: what `load` does after reading them.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet, Diagnostics> {
        let sources: Vec<Source> = sources
            .iter()
            .map(|(p, t)| Source::new(p.clone(), t.clone()))
            .collect();
        Self::compile_sources(&sources)
    }

    fn compile_sources(sources: &[Source]) -> Result<RuleSet, Diagnostics> {
        let parsed = file::parse_sources(sources);
        let mut diags = parsed.diags.clone();
        let (list_diags, cyclic) = file::check_lists(&parsed, sources);
        diags.extend(list_diags);
        let mut lists = std::collections::HashMap::new();
        for (name, list) in &parsed.lists {
            // A cyclic list (already reported) compiles as empty so expanding it terminates.
            let entries = if cyclic.contains(name) {
                Vec::new()
            } else {
                list.entries.iter().map(|e| e.0.clone()).collect()
            };
            lists.insert(name.clone(), entries);
        }
        let mut b = Builder::new(std::sync::Arc::new(lists));
        // List entries on their own, so a bad regex in a list is reported where it is written.
        for name in parsed.list_order.iter().filter(|n| !cyclic.contains(*n)) {
            for (e, loc) in &parsed.lists[name].entries {
                if let Err(mut errs) = b.compile(e) {
                    // Unknown references were reported by `check_lists` already.
                    errs.retain(|e| !e.message.starts_with("unknown list"));
                    report(&mut diags, sources, loc, None, errs);
                }
            }
        }
        // Sized once: grown by doubling, the two vectors were up to 60 % spare capacity for
        // as long as the rule set lives (issue 22).
        let mut rules = Vec::with_capacity(parsed.rules.len());
        let mut nodes = Vec::with_capacity(parsed.rules.len());
        let mut warnings = Vec::new();
        // A rule without a query is an error already.
        fn bare(raw: &file::RawRule) -> Option<&StrLoc> {
            match &raw.query {
                Some((_, loc)) if raw.info.examples.is_empty() => Some(loc),
                _ => None,
            }
        }
        let unexampled = parsed.rules.iter().filter_map(bare).count();
        let mut summarised = unexampled <= NO_EXAMPLES_LISTED;
        for raw in &parsed.rules {
            rule_warnings(sources, raw, &mut warnings);
            let Some(loc) = bare(raw) else {
                continue;
            };
            if unexampled <= NO_EXAMPLES_LISTED {
                let message = "rule has no examples".to_string();
                warnings.push(no_examples(&sources[loc.file], raw, message));
            } else if !summarised {
                summarised = true;
                let message = format!(
                    "rule has no examples, nor do {} other rules (each is listed when at most {NO_EXAMPLES_LISTED} are)",
                    unexampled - 1
                );
                warnings.push(no_examples(&sources[loc.file], raw, message));
            }
        }
        let queries: Vec<&Expr> = parsed
            .rules
            .iter()
            .filter_map(|raw| raw.query.as_ref().map(|(e, _)| e))
            .collect();
        let mut compiled = b.compile_all(&queries).into_iter();
        for raw in parsed.rules {
            let Some((_, loc)) = &raw.query else {
                continue;
            };
            let Some(result) = compiled.next() else {
                break;
            };
            match result {
                Ok(node) => {
                    if !raw.allow_broad && node.true_when_nothing_occurs() {
                        diags.push(sources[loc.file].diagnostic(
                            loc.offset(0),
                            Some(&raw.info.id),
                            "query is broad: it matches articles in which none of its terms occur",
                            Some("add a required term (`a AND NOT b` is fine, `NOT b` alone is not), or set allow_broad = true"),
                        ));
                    }
                    rules.push(raw.info);
                    nodes.push(node);
                }
                Err(errs) => report(&mut diags, sources, loc, Some(&raw.info.id), errs),
            }
        }
        let ac = match automaton::LazyLiterals::new(&b.lits) {
            Ok(ac) => ac,
            Err(e) => {
                diags.push(Diagnostic {
                    hint: Some("split the rules across fewer, larger lists".to_string()),
                    ..Diagnostic::whole_file(
                        &sources.first().map(|s| s.path.clone()).unwrap_or_default(),
                        format!("the rule set is too large to compile: {e}"),
                    )
                });
                automaton::LazyLiterals::default()
            }
        };
        if !diags.is_empty() {
            diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            return Err(Diagnostics(diags));
        }
        let prefilter = Prefilter::build(&nodes, b.lits.len());
        let mut restricted = vec![0u64; rules.len().div_ceil(64)];
        for (r, info) in rules.iter().enumerate() {
            if !info.feeds.is_empty() || info.max_age.is_some() {
                restricted[r / 64] |= 1 << (r % 64);
            }
        }
        Ok(RuleSet {
            rules,
            nodes,
            lits: b.lits,
            ac,
            prefilter,
            restricted,
            regexes: b.regexes,
            warnings,
            fingerprint: std::sync::OnceLock::new(),
        })
    }

    /// Warnings found while loading: lower-case operators between terms, rules without examples.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// A short hash of what the rules say (id, title, priority, query, feeds, age limit of each,
    /// in order): nodes of a cluster compare theirs to find one running other rules (issue 17).
    /// Where a rule was written (file, line) and its examples do not count.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| self.hash_rules())
    }

    fn hash_rules(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for r in &self.rules {
            let fields = [
                r.id.clone(),
                r.title.clone(),
                format!("{:?}", r.priority),
                r.query.clone(),
                format!("{:?}", r.feeds),
                format!("{:?}", r.max_age),
            ];
            for f in fields {
                // Length-prefixed, so no two different rule sets hash the same bytes.
                h.update((f.len() as u64).to_le_bytes());
                h.update(f.as_bytes());
            }
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The index of the rule with this id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            lits: &self.lits,
            regexes: &self.regexes,
            regex_deadline: None,
            out_of_time: std::cell::Cell::new(false),
        }
    }

    fn prepare<'a>(&self, article: &'a Article, feed: &'a FeedMeta) -> Doc<'a> {
        Doc::new(article, feed, self.ac.get(&self.lits))
    }

    /// The rules `article` matches, with their hits, in rule order. Applies each rule's `feeds`
    /// and `max_age`. Pure: no IO, no clock but `now`.
    pub fn match_article(
        &self,
        article: &Article,
        feed: &FeedMeta,
        now: DateTime<Utc>,
    ) -> Vec<RuleMatch> {
        self.match_filtered(article, feed, Some(now), None).matches
    }

    /// As `match_article`, with at most `regex_budget` of regex evaluation for this article (the
    /// match stage: a costly regex set cannot stall it). A rule whose verdict needed a regex
    /// after the budget ran out is neither matched nor unmatched: its index is returned second,
    /// for the caller to report. Literals are never cut short (one automaton pass, linear).
    /// Also counts the rules the pre-filter let through, for `/metrics`.
    pub fn match_article_within(
        &self,
        article: &Article,
        feed: &FeedMeta,
        now: DateTime<Utc>,
        regex_budget: Duration,
    ) -> Verdicts {
        self.match_filtered(article, feed, Some(now), Some(regex_budget))
    }

    /// As `match_article`, ignoring every rule's `feeds` and `max_age` (`rules test`, examples).
    pub fn match_article_unfiltered(&self, article: &Article, feed: &FeedMeta) -> Vec<RuleMatch> {
        self.match_filtered(article, feed, None, None).matches
    }

    fn match_filtered(
        &self,
        article: &Article,
        feed: &FeedMeta,
        now: Option<DateTime<Utc>>,
        regex_budget: Option<Duration>,
    ) -> Verdicts {
        let mut doc = self.prepare(article, feed);
        let mut present = std::mem::take(&mut doc.seen_lits);
        present.resize(self.lits.len().div_ceil(64), 0);
        for l in doc.literals() {
            present[l as usize / 64] |= 1 << (l % 64);
        }
        let mut considered = std::mem::take(&mut doc.seen_rules);
        considered.resize(self.rules.len().div_ceil(64), 0);
        let ctx = Ctx {
            regex_deadline: regex_budget.map(|b| std::time::Instant::now() + b),
            ..self.ctx()
        };
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        let mut work = MatchWork {
            rules: self.rules.len(),
            ..MatchWork::default()
        };
        let mut evaluate = |r: usize| {
            let restricted = self.restricted[r / 64] & (1 << (r % 64)) != 0;
            if let Some(now) = now
                && restricted
                && !self.applies(r, article, feed, now)
            {
                return;
            }
            ctx.out_of_time.set(false);
            work.evaluated += 1;
            let verdict = ctx.eval(&doc, &self.nodes[r]);
            // A regex that was not asked makes the verdict unknown either way (under NOT, "no
            // match" would make the rule true): no verdict, reported instead.
            if ctx.out_of_time.get() {
                skipped.push(r);
                return;
            }
            if verdict {
                out.push(RuleMatch {
                    rule: r,
                    hits: hits_of(&ctx, &doc, &self.nodes[r]),
                });
            }
        };
        let mut counted = MatchWork::default();
        self.prefilter.candidates(
            doc.literals(),
            &present,
            &mut considered,
            &mut counted,
            &mut evaluate,
        );
        work.candidates = counted.candidates;
        out.sort_unstable_by_key(|m| m.rule);
        (doc.seen_lits, doc.seen_rules) = (present, considered);
        Verdicts {
            matches: out,
            skipped,
            work,
        }
    }

    /// The rules evaluated for every article, because they can be true without any of their
    /// literals (a lone NOT, a regex or `url:`/`lang:` without a required term), each with the
    /// reason: what `check --verbose` lists. Every other rule waits for a literal to occur.
    pub fn unfiltered(&self) -> Vec<Unfiltered> {
        self.prefilter
            .always()
            .iter()
            .map(|&r| Unfiltered {
                rule: r as usize,
                reason: prefilter::unfiltered_reason(&self.nodes[r as usize])
                    .unwrap_or_else(|| "it can be true without any of its literals".to_string()),
            })
            .collect()
    }

    /// Distinct literals in the automaton.
    pub fn literal_count(&self) -> usize {
        self.lits.len()
    }

    /// Whether rule `r`'s `feeds` and `max_age` let it see this article.
    fn applies(&self, r: usize, article: &Article, feed: &FeedMeta, now: DateTime<Utc>) -> bool {
        let info = &self.rules[r];
        let feed_ok = info.feeds.is_empty()
            || info.feeds.iter().any(|s| match s {
                FeedSelector::Name(n) => *n == feed.name,
                FeedSelector::Tag(t) => feed.tags.iter().any(|x| x == t),
            });
        // An article without a date is never too old: we cannot tell, and dropping it would be silent.
        let age_ok = match (info.max_age, article.published) {
            (Some(max), Some(published)) => now - published <= file::duration_to_chrono(max),
            _ => true,
        };
        feed_ok && age_ok
    }

    /// Rule `rule`'s query tree for `article`, each node with its truth value and hits.
    /// Ignores the rule's `feeds` and `max_age`.
    pub fn explain(&self, rule: usize, article: &Article, feed: &FeedMeta) -> Explanation {
        let doc = self.prepare(article, feed);
        explain::explain(&self.ctx(), &doc, &self.rules[rule], &self.nodes[rule])
    }

    /// Whether rule `rule` matches `article`, ignoring its `feeds` and `max_age` (as examples do).
    pub fn matches_ignoring_filters(
        &self,
        rule: usize,
        article: &Article,
        feed: &FeedMeta,
    ) -> bool {
        let doc = self.prepare(article, feed);
        self.ctx().eval(&doc, &self.nodes[rule])
    }

    /// Runs every rule's examples (the text is the article's body); one diagnostic per failure,
    /// with the explain tree as its note.
    pub fn check_examples(&self) -> Vec<Diagnostic> {
        let feed = FeedMeta::default();
        let mut out = Vec::new();
        for (r, info) in self.rules.iter().enumerate() {
            for ex in &info.examples {
                let article = example_article(&ex.text);
                if self.matches_ignoring_filters(r, &article, &feed) == ex.expect_match {
                    continue;
                }
                let message = if ex.expect_match {
                    format!("example should match but does not: {:?}", ex.text)
                } else {
                    format!("example should not match but does: {:?}", ex.text)
                };
                out.push(Diagnostic {
                    file: info.file.to_path_buf(),
                    line: ex.line,
                    column: ex.column,
                    subject: Some(format!("rule {}", info.id)),
                    message,
                    source_line: ex.source_line.clone(),
                    source_skip: ex.source_skip,
                    hint: Some("the query tree for this example:".to_string()),
                    note: Some(self.explain(r, &article, &feed).to_string()),
                });
            }
        }
        out
    }

    /// `feeds` entries that name no configured feed or tag (only meaningful with a config).
    pub fn check_feeds(&self, names: &[String], tags: &[String]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for info in &self.rules {
            for sel in &info.feeds {
                let (ok, what) = match sel {
                    FeedSelector::Name(n) => (names.contains(n), format!("feed `{n}`")),
                    FeedSelector::Tag(t) => (tags.contains(t), format!("tag `{t}`")),
                };
                if !ok {
                    out.push(Diagnostic {
                        file: info.file.to_path_buf(),
                        line: info.line,
                        column: 1,
                        subject: Some(format!("rule {}", info.id)),
                        message: format!("`feeds` names {what}, which the config does not define"),
                        source_line: String::new(),
                        source_skip: 0,
                        hint: Some("feeds entries are configured feed names or `tag:NAME` of a configured tag".to_string()),
                        note: None,
                    });
                }
            }
        }
        out
    }

    /// The normalised text the automaton scans for this article (for benchmarks and debugging).
    #[doc(hidden)]
    pub fn normalized_text(article: &Article, feed: &FeedMeta) -> String {
        let norm = std::mem::take(&mut Doc::new(article, feed, None).norm);
        String::from_utf8(norm)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The same rules with their literals searched by `search` instead of the structure chosen
    /// by their number (for benchmarks: where the token index overtakes the DFA).
    #[doc(hidden)]
    pub fn with_literal_search(mut self, search: LiteralSearch) -> Result<RuleSet, LiteralsError> {
        if !self.lits.is_empty() {
            let patterns = self.lits.iter().map(|l| l.pattern.as_str());
            self.ac = automaton::LazyLiterals::built(scan::Literals::build_as(patterns, search)?);
        }
        Ok(self)
    }

    /// Every literal the automaton searches for, as patterns over `normalized_text`.
    #[doc(hidden)]
    pub fn literal_patterns(&self) -> Vec<String> {
        self.lits.iter().map(|l| l.pattern.clone()).collect()
    }
}

/// Whether some field of `article` is longer than `MATCH_FIELD_CAP`, so it is matched on its
/// beginning only: for the match stage to count and log (matching itself stays pure).
pub fn text_capped(article: &Article) -> bool {
    [&article.title, &article.summary, &article.content]
        .into_iter()
        .chain(&article.authors)
        .chain(&article.categories)
        .chain(&article.link)
        .any(|t| t.len() > MATCH_FIELD_CAP)
}

/// An article whose body is `text`: what examples, `--text` and explain run on.
pub fn example_article(text: &str) -> Article {
    Article {
        content: text.to_string(),
        ..Article::default()
    }
}

fn hits_of(ctx: &Ctx<'_>, doc: &Doc<'_>, node: &Node) -> Vec<Hit> {
    let mut hits = Vec::new();
    ctx.collect_hits(doc, node, &mut hits);
    hits.sort_by_key(|h| (h.field, h.start, h.end));
    hits.dedup();
    hits
}

/// A rule's warnings: `and`/`or`/`not`/`near` between terms (searched as words), no examples.
fn rule_warnings(sources: &[Source], raw: &file::RawRule, out: &mut Vec<Diagnostic>) {
    let id = Some(raw.info.id.as_str());
    // A rule without a query is an error already.
    let Some((_, loc)) = &raw.query else {
        return;
    };
    let source = &sources[loc.file];
    for w in &raw.warnings {
        out.push(source.diagnostic(
            loc.offset(w.span.start),
            id,
            w.message.clone(),
            w.hint.as_deref(),
        ));
    }
}

/// Up to this many rules without examples get a warning each; beyond, one warning at the first
/// counts them all (100,000 generated rules spent 4 % of their load rendering one each, issue 22).
pub const NO_EXAMPLES_LISTED: usize = 100;

/// `rule has no examples` (or `message`), at the rule's header.
fn no_examples(source: &Source, raw: &file::RawRule, message: String) -> Diagnostic {
    source.diagnostic(
        source.line_start(raw.info.line),
        Some(&raw.info.id),
        message,
        Some("add examples.match and examples.no_match: `check` runs them, and they document the rule"),
    )
}

fn report(
    diags: &mut Vec<Diagnostic>,
    sources: &[Source],
    loc: &StrLoc,
    rule: Option<&str>,
    errs: Vec<compile::CompileError>,
) {
    for e in errs {
        diags.push(sources[loc.file].diagnostic(
            loc.offset(e.span.start),
            rule,
            e.message,
            e.hint.as_deref(),
        ));
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::RuleSet;

    /// The rule set of `text`, written to `name` in a fresh temp dir.
    fn set(name: &str, text: &str) -> RuleSet {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write rules");
        RuleSet::load(&[path]).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn the_fingerprint_follows_what_the_rules_say_not_where_they_are_written() {
        let one = "[[rule]]\nid = \"a\"\nquery = \"Healey\"\n";
        let base = set("a.toml", one).fingerprint().to_string();
        assert_eq!(base.len(), 16);
        assert_eq!(set("b.toml", one).fingerprint(), base, "another file name");
        assert_eq!(
            set("a.toml", &format!("\n\n{one}")).fingerprint(),
            base,
            "another line"
        );
        let changed = set("a.toml", "[[rule]]\nid = \"a\"\nquery = \"Hegseth\"\n");
        assert_ne!(changed.fingerprint(), base, "another query");
        let renamed = set("a.toml", "[[rule]]\nid = \"b\"\nquery = \"Healey\"\n");
        assert_ne!(renamed.fingerprint(), base, "another id");
    }
}
