//! The playground's corpus: the newest `CORPUS_ARTICLES` stored articles held in memory, with an
//! inverted index of their words (`rules::index`) so a query evaluates only the articles that
//! could match. Loaded on first use, topped up with the articles stored since on every
//! evaluation (a new poll's articles are searchable at once), the oldest beyond the bound
//! forgotten. Articles are numbered in the order they were added, so the corpus's `i`-th (newest
//! first) is number `next - 1 - i`, and a forgotten one is any number below `next - len`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::FeedMeta;
use crate::rules::RuleSet;
use crate::rules::index::{Bits, WordBatch, WordIndex};
use crate::store::{ArticleView, Store};

use super::super::ConsoleError;
use super::FIELD_CAP;

/// The articles the playground searches and the index of their words.
#[derive(Debug)]
pub struct Corpus {
    /// The most articles held (`CORPUS_ARTICLES`).
    capacity: usize,
    /// Newest first.
    articles: Vec<Arc<ArticleView>>,
    index: WordIndex,
    /// The number the next added article gets.
    next: u32,
    /// The lowest number still searched: `next - articles.len()`.
    floor: u32,
    /// Articles forgotten since the index last dropped them.
    forgotten: usize,
    /// How long indexing the last batch of new articles took, and how many there were.
    pub last_indexed: Option<(Duration, usize)>,
}

/// What one evaluation searches: the articles (newest first) and which of them to evaluate.
pub struct Snapshot {
    pub articles: Vec<Arc<ArticleView>>,
    /// Indices into `articles`, ascending (newest first); every index when the index cannot
    /// restrict the query.
    pub order: Vec<usize>,
    /// Whether the index restricted the evaluation (some required word).
    pub restricted: bool,
}

impl Corpus {
    /// An empty corpus of at most `capacity` articles.
    pub fn new(capacity: usize) -> Corpus {
        Corpus {
            capacity,
            articles: Vec::new(),
            index: WordIndex::default(),
            next: 0,
            floor: 0,
            forgotten: 0,
            last_indexed: None,
        }
    }

    /// Brings the corpus up to date with the store: articles newer than the newest held are
    /// added (and indexed), the oldest beyond the capacity dropped.
    pub fn refresh(&mut self, s: &Store) -> Result<(), ConsoleError> {
        let newest = self.articles.first().map_or(0, |a| a.id);
        let fresh = s.recent_articles(newest, self.capacity)?;
        self.add(fresh);
        Ok(())
    }

    /// Adds articles newer than every one held, newest first.
    pub fn add(&mut self, fresh: Vec<ArticleView>) {
        if fresh.is_empty() {
            return;
        }
        let started = Instant::now();
        let count = fresh.len();
        let mut fresh: Vec<Arc<ArticleView>> = fresh
            .into_iter()
            .map(|mut a| {
                for field in [
                    &mut a.article.title,
                    &mut a.article.summary,
                    &mut a.article.content,
                ] {
                    cap_field(field);
                }
                Arc::new(a)
            })
            .collect();
        fresh.append(&mut self.articles);
        fresh.truncate(self.capacity);
        self.articles = fresh;
        let added = count.min(self.articles.len());
        let fits = u32::try_from(self.articles.len())
            .ok()
            .and_then(|len| self.next.checked_add(len));
        match fits {
            // Renumbering before the numbers run out (after four billion articles): index all.
            None => {
                self.index = WordIndex::default();
                self.next = 0;
                self.floor = 0;
                self.forgotten = 0;
                self.index_newest(self.articles.len());
            }
            Some(_) => self.index_newest(added),
        }
        let floor = self.index_floor();
        self.index.forget_below(floor);
        self.forgotten += floor.saturating_sub(self.floor) as usize;
        self.floor = floor;
        // Forgotten entries are skipped when read; dropping them costs a pass over the index,
        // so it runs once as many articles as half the corpus have been forgotten.
        if self.forgotten > self.capacity / 2 {
            self.index.compact();
            self.forgotten = 0;
        }
        self.last_indexed = Some((started.elapsed(), count));
    }

    /// The lowest number still searched.
    fn index_floor(&self) -> u32 {
        let len = u32::try_from(self.articles.len()).unwrap_or(u32::MAX);
        self.next.saturating_sub(len)
    }

    /// Indexes the newest `n` articles (not indexed yet), on one thread per core (at most 8),
    /// each a run of consecutive numbers, merged in order.
    fn index_newest(&mut self, n: usize) {
        let next = self.next;
        // Oldest first: number `next + k` for the k-th.
        let batch: Vec<&Arc<ArticleView>> = self.articles[..n].iter().rev().collect();
        let workers = std::thread::available_parallelism().map_or(1, |w| w.get().min(8));
        let chunk = batch.len().div_ceil(workers).max(1);
        let batches: Vec<WordBatch> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    scope.spawn(move || {
                        let mut b = WordBatch::default();
                        for (k, a) in part.iter().enumerate() {
                            let number = next + u32::try_from(c * chunk + k).unwrap_or(u32::MAX);
                            b.add_article(number, &a.article, &feed_of(a));
                        }
                        b
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for b in batches {
            self.index.merge(b);
        }
        self.next = next + u32::try_from(n).unwrap_or(u32::MAX);
    }

    /// The articles to search for rule `rule` of `set` and, when comparing, rule `saved` of
    /// `saved_set`: the union of the two rules' candidates (a GONE article is one the saved rule
    /// matches), or every article when either requires no word.
    pub fn snapshot(&self, wanted: &[(&RuleSet, usize)]) -> Snapshot {
        let (base, end) = (self.index_floor(), self.next);
        let mut union: Option<Bits> = Some(Bits::empty(base, end));
        for (set, rule) in wanted {
            match (set.candidates(*rule, &self.index, base, end), &mut union) {
                (Some(c), Some(u)) => u.union(&c),
                _ => union = None,
            }
        }
        let order = match &union {
            Some(bits) => bits
                .descending()
                .map(|n| (end - 1 - n) as usize)
                .filter(|&i| i < self.articles.len())
                .collect(),
            None => (0..self.articles.len()).collect(),
        };
        Snapshot {
            articles: self.articles.clone(),
            order,
            restricted: union.is_some(),
        }
    }

    /// Distinct words and postings entries the index holds.
    #[cfg(test)]
    pub fn index_size(&self) -> (usize, usize) {
        self.index.size()
    }
}

/// What the matcher knows of an article's feed, as the playground evaluates it (tags do not
/// count for text: they select feeds, and the playground ignores rules' feed filters).
pub fn feed_of(a: &ArticleView) -> FeedMeta {
    FeedMeta {
        name: a.feed.clone(),
        title: a.feed_title.clone(),
        tags: Vec::new(),
    }
}

/// `field` cut to `FIELD_CAP` bytes at a character boundary.
fn cap_field(field: &mut String) {
    if field.len() > FIELD_CAP {
        let mut end = FIELD_CAP;
        while !field.is_char_boundary(end) {
            end -= 1;
        }
        field.truncate(end);
    }
}
