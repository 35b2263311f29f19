//! An inverted index over articles' normalised words, for searching many stored articles with one
//! rule (the console's playground, issue 18): word → the ascending numbers of the articles that
//! contain it. The words are the ones the matcher sees (`Doc::new`: every field, author, category
//! and feed name, the same normalisation), so a literal can only occur in an article that holds
//! all its words. A rule's candidates are read off its compiled tree (the nodes the matcher
//! evaluates): a literal gives the articles holding its words, OR unites, AND and NEAR intersect,
//! NOT, a regex, `url:` and `lang:` restrict nothing (a query made only of those has no
//! restriction). Nested ORs of ANDs stay precise, which the pre-filter's flat groups
//! (`Node::required`, one trigger set per OR) are not: `us-backstop`'s candidates were a third of
//! the corpus with them.
//! The candidates are a superset of the matches: the caller still evaluates each exactly. Positions
//! are not kept, so a phrase's candidates are the articles holding every word of it. Pure.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::RuleSet;
use super::compile::Node;
use super::matcher::Doc;
use super::text::norm_word;
use crate::model::{Article, FeedMeta};

/// Word → ascending article numbers. The caller numbers articles (`add`) in ascending order and
/// may forget every number below a floor (`forget_below`).
#[derive(Debug, Default)]
pub struct WordIndex {
    words: BTreeMap<Box<str>, Vec<u32>>,
    /// Numbers below this are forgotten: skipped when read, dropped by `compact`.
    floor: u32,
    /// Postings entries kept (forgotten ones included until `compact`): the index's size.
    entries: usize,
}

/// The distinct normalised words of an article as the matcher sees it (every field, the feed's
/// name and title), sorted.
pub fn article_words(article: &Article, feed: &FeedMeta) -> Vec<Box<str>> {
    let doc = Doc::new(article, feed, None);
    distinct_words(&doc).into_iter().map(Box::from).collect()
}

fn distinct_words<'d>(doc: &'d Doc<'_>) -> Vec<&'d str> {
    let mut words: Vec<&str> = doc
        .toks
        .iter()
        .filter_map(|t| norm_word(&doc.norm, t))
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// A batch of articles' words, numbered, built apart (on another thread) and then `merge`d.
#[derive(Debug, Default)]
pub struct WordBatch {
    words: HashMap<Box<str>, Vec<u32>>,
    entries: usize,
}

impl WordBatch {
    /// Adds article number `n`'s words; numbers must ascend within a batch.
    pub fn add(&mut self, n: u32, words: &[Box<str>]) {
        for w in words {
            self.add_word(n, w);
        }
    }

    /// Adds article number `n` (as `article_words` sees it, without a copy of each word).
    pub fn add_article(&mut self, n: u32, article: &Article, feed: &FeedMeta) {
        let doc = Doc::new(article, feed, None);
        for w in distinct_words(&doc) {
            self.add_word(n, w);
        }
    }

    fn add_word(&mut self, n: u32, w: &str) {
        match self.words.get_mut(w) {
            Some(list) => list.push(n),
            None => {
                self.words.insert(Box::from(w), vec![n]);
            }
        }
        self.entries += 1;
    }
}

impl WordIndex {
    /// Appends a batch whose numbers are all above every number already held.
    pub fn merge(&mut self, batch: WordBatch) {
        self.entries += batch.entries;
        for (w, list) in batch.words {
            match self.words.get_mut(&w) {
                Some(held) => held.extend(list),
                None => {
                    self.words.insert(w, list);
                }
            }
        }
    }

    /// Forgets every article numbered below `floor`: they are no longer searched.
    pub fn forget_below(&mut self, floor: u32) {
        self.floor = self.floor.max(floor);
    }

    /// Drops forgotten numbers and words no article holds any more; returns the entries dropped.
    pub fn compact(&mut self) -> usize {
        let floor = self.floor;
        let mut dropped = 0;
        self.words.retain(|_, list| {
            let gone = list.partition_point(|&n| n < floor);
            if gone > 0 {
                list.drain(..gone);
                list.shrink_to_fit();
            }
            dropped += gone;
            !list.is_empty()
        });
        self.entries -= dropped;
        dropped
    }

    /// Distinct words held, and postings entries held (forgotten ones included until `compact`).
    pub fn size(&self) -> (usize, usize) {
        (self.words.len(), self.entries)
    }

    fn live<'a>(&self, list: &'a [u32]) -> &'a [u32] {
        &list[list.partition_point(|&n| n < self.floor)..]
    }

    /// Articles holding `word`.
    fn postings(&self, word: &str) -> &[u32] {
        self.words.get(word).map_or(&[], |l| self.live(l))
    }

    /// Sets in `set` the articles that may hold literal `pattern` (`" w1 w2 "` for a term or
    /// phrase: every word; `" stem"` for a prefix: any word starting with it).
    fn literal_into(&self, pattern: &str, set: &mut Bits) {
        let words: Vec<&str> = pattern.split(' ').filter(|w| !w.is_empty()).collect();
        if !pattern.ends_with(' ') {
            let Some(stem) = words.first() else { return };
            let from = (Bound::Included(*stem), Bound::Unbounded);
            for (w, list) in self.words.range::<str, _>(from) {
                if !w.starts_with(stem) {
                    break;
                }
                set.add_all(self.live(list));
            }
            return;
        }
        let mut lists: Vec<&[u32]> = words.iter().map(|w| self.postings(w)).collect();
        lists.sort_by_key(|l| l.len());
        let Some((first, rest)) = lists.split_first() else {
            return;
        };
        'next: for &n in *first {
            for other in rest {
                if other.binary_search(&n).is_err() {
                    continue 'next;
                }
            }
            set.insert(n);
        }
    }
}

/// A set of article numbers as bits from a base number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bits {
    base: u32,
    words: Vec<u64>,
}

impl Bits {
    /// The empty set of numbers in `[base, end)`.
    pub fn empty(base: u32, end: u32) -> Bits {
        let len = end.saturating_sub(base) as usize;
        Bits {
            base,
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn insert(&mut self, n: u32) {
        let Some(i) = n.checked_sub(self.base) else {
            return;
        };
        let i = i as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn add_all(&mut self, ns: &[u32]) {
        for &n in ns {
            self.insert(n);
        }
    }

    fn intersect(&mut self, other: &Bits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
    }

    /// Adds every member of `other` (same base and range).
    pub fn union(&mut self, other: &Bits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The members, highest first.
    pub fn descending(&self) -> impl Iterator<Item = u32> + '_ {
        self.words
            .iter()
            .enumerate()
            .rev()
            .flat_map(move |(i, &w)| {
                let base = self.base as usize + i * 64;
                (0..64u32)
                    .rev()
                    .filter(move |b| w & (1 << b) != 0)
                    .map(move |b| u32::try_from(base + b as usize).unwrap_or(u32::MAX))
            })
    }
}

impl RuleSet {
    /// The articles of `index` numbered in `[base, end)` that rule `rule` can match, read off its
    /// compiled tree the way the matcher evaluates it: a literal's articles, union for OR,
    /// intersection for AND and NEAR (over the operands that restrict), no restriction from NOT,
    /// a regex, `url:` or `lang:`. `None` when nothing restricts it (every article is a
    /// candidate). A superset of the articles it matches, whatever their feed.
    pub fn candidates(&self, rule: usize, index: &WordIndex, base: u32, end: u32) -> Option<Bits> {
        let within = Within { index, base, end };
        self.node_candidates(self.nodes.get(rule)?, &within)
    }

    fn node_candidates(&self, node: &Node, w: &Within<'_>) -> Option<Bits> {
        match node {
            Node::Lit { lit, .. } => {
                let mut set = Bits::empty(w.base, w.end);
                // Every literal of a compiled node is interned: a missing one restricts nothing.
                let l = self.lits.get(*lit as usize)?;
                w.index.literal_into(&l.pattern, &mut set);
                Some(set)
            }
            Node::Regex { .. } | Node::Url { .. } | Node::Lang { .. } | Node::Not(_) => None,
            Node::Or(items) => {
                let mut set = Bits::empty(w.base, w.end);
                for n in items {
                    match n {
                        // The common case, a list of terms: straight into the union.
                        Node::Lit { lit, .. } => {
                            let l = self.lits.get(*lit as usize)?;
                            w.index.literal_into(&l.pattern, &mut set);
                        }
                        _ => set.union(&self.node_candidates(n, w)?),
                    }
                }
                Some(set)
            }
            Node::And(items) => items
                .iter()
                .filter_map(|n| self.node_candidates(n, w))
                .reduce(|mut all, one| {
                    all.intersect(&one);
                    all
                }),
            Node::Near { left, right, .. } => [left, right]
                .into_iter()
                .filter_map(|n| self.node_candidates(n, w))
                .reduce(|mut all, one| {
                    all.intersect(&one);
                    all
                }),
            Node::List { inner, .. } | Node::Field { inner, .. } => self.node_candidates(inner, w),
        }
    }
}

/// The index and the numbers a candidate set covers.
struct Within<'a> {
    index: &'a WordIndex,
    base: u32,
    end: u32,
}
