//! The match step for one article: normalise every field into one buffer, finding the literals
//! as it is written (`scan`), then evaluate only the rules whose literals occurred
//! (and the few that can match without one). Pure: no IO, no clock. The per-article buffers are
//! kept by each thread between articles (`Buffers`): cleared before use, never shared.

use std::cell::{Cell, OnceCell};

use regex::Regex;

use super::compile::{Check, Literal, Mask, Node, bit};
use super::scan::{Literals, Scan};
use super::text::{RegexText, TokPos, exact_form_is, tokenize_into, tokenize_with};
use super::{Field, Hit};
use crate::model::{Article, FeedMeta};

/// One searchable text of an article: a field value (each author, category and feed name is its own).
pub(crate) struct Segment<'a> {
    pub field: Field,
    pub text: &'a str,
}

/// Each field is matched on at most its first this many bytes (cut back to a character
/// boundary). 256 KiB is some 40,000 words, ten times a long feature article, so no story we alert
/// on is cut; it bounds the time one article costs the automaton and, with the regex budget in
/// `compile`, every regex (issue 16 item 9). The fetcher's body cap (10 MB by default) is for
/// the whole feed, not one field.
pub const MATCH_FIELD_CAP: usize = 256 << 10;

/// `text` cut to `MATCH_FIELD_CAP` bytes at a character boundary.
pub(crate) fn capped(text: &str) -> &str {
    if text.len() <= MATCH_FIELD_CAP {
        return text;
    }
    let mut end = MATCH_FIELD_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The most hits one atom of a query contributes to a match's evidence: occurrences of one term,
/// pairs of one NEAR, matches of one regex (the first in the text). A snippet shows a few and an
/// email lists each term once, so more only cost: a 256 KiB title repeating two names made
/// 35,000 hits, and composing their email took 43 s in a debug build (issue 22). The verdict
/// never depends on it: evaluation stops at the first occurrence anyway.
pub const MAX_HITS_PER_ATOM: usize = 32;

/// An occurrence of a literal: tokens `[start, end)` of the document, all in segment `seg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occ {
    pub seg: u32,
    pub start: u32,
    pub end: u32,
}

/// An article prepared for matching.
pub(crate) struct Doc<'a> {
    pub segments: Vec<Segment<'a>>,
    /// `" w1 w2 \n w3 \n"`: every segment's tokens, space-separated, segments separated by a newline
    /// (no literal contains one, so nothing matches across fields).
    pub norm: Vec<u8>,
    pub toks: Vec<TokPos>,
    pub tok_seg: Vec<u32>,
    /// (literal, first token), sorted.
    pub hits: Vec<(u32, u32)>,
    /// Empty bit sets for the caller (which literals occurred, which rules it considered).
    pub seen_lits: Vec<u64>,
    pub seen_rules: Vec<u64>,
    pub link: Option<&'a str>,
    pub lang: Option<&'a str>,
    regex_texts: Vec<OnceCell<RegexText<'a>>>,
}

/// A `Doc`'s buffers, kept by each thread between articles so the match step does not allocate
/// them per article (malloc and free were a tenth of it at 10,000 rules, issue 22). A `Doc`
/// takes them empty (`take`) and gives them back when dropped; they belong to one thread and
/// one `Doc` at a time, so nothing of one article is seen by another.
#[derive(Default)]
struct Buffers {
    norm: Vec<u8>,
    toks: Vec<TokPos>,
    tok_seg: Vec<u32>,
    hits: Vec<(u32, u32)>,
    seen_lits: Vec<u64>,
    seen_rules: Vec<u64>,
}

/// How many bytes of normalised text wait for the DFA scan while a field is written.
const SCAN_BATCH: usize = 64;

/// Buffers grown past this many bytes of normalised text (a field near `MATCH_FIELD_CAP`) are
/// freed rather than kept: a thread keeps what ordinary articles need.
const KEEP_BUFFERS_UP_TO: usize = 64 << 10;

thread_local! {
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

impl Buffers {
    /// This thread's buffers, empty (a fresh set when another `Doc` of this thread holds them).
    fn take() -> Buffers {
        BUFFERS.with(Cell::take)
    }

    fn give_back(mut self) {
        if self.norm.capacity() > KEEP_BUFFERS_UP_TO {
            return;
        }
        self.norm.clear();
        self.toks.clear();
        self.tok_seg.clear();
        self.hits.clear();
        self.seen_lits.clear();
        self.seen_rules.clear();
        BUFFERS.with(|b| b.set(self));
    }
}

impl Drop for Doc<'_> {
    fn drop(&mut self) {
        Buffers {
            norm: std::mem::take(&mut self.norm),
            toks: std::mem::take(&mut self.toks),
            tok_seg: std::mem::take(&mut self.tok_seg),
            hits: std::mem::take(&mut self.hits),
            seen_lits: std::mem::take(&mut self.seen_lits),
            seen_rules: std::mem::take(&mut self.seen_rules),
        }
        .give_back();
    }
}

impl<'a> Doc<'a> {
    pub fn new(article: &'a Article, feed: &'a FeedMeta, lits: Option<&Literals>) -> Doc<'a> {
        let mut segments = vec![
            Segment {
                field: Field::Title,
                text: &article.title,
            },
            Segment {
                field: Field::Summary,
                text: &article.summary,
            },
            Segment {
                field: Field::Content,
                text: &article.content,
            },
        ];
        for a in &article.authors {
            segments.push(Segment {
                field: Field::Author,
                text: a,
            });
        }
        for c in &article.categories {
            segments.push(Segment {
                field: Field::Category,
                text: c,
            });
        }
        segments.push(Segment {
            field: Field::Feed,
            text: &feed.name,
        });
        if let Some(t) = &feed.title {
            segments.push(Segment {
                field: Field::Feed,
                text: t,
            });
        }
        // A declared language wins; otherwise the detected one (issue 20).
        let lang = article.lang.as_deref().or(article.lang_detected.as_deref());
        Doc::from_segments(segments, article.link.as_deref(), lang, lits)
    }

    /// Every text is matched on its first `MATCH_FIELD_CAP` bytes at most (see there). With
    /// `lits`, the literals that occur are found as the text is normalised (`hits`).
    pub fn from_segments(
        mut segments: Vec<Segment<'a>>,
        link: Option<&'a str>,
        lang: Option<&'a str>,
        lits: Option<&Literals>,
    ) -> Doc<'a> {
        for s in &mut segments {
            s.text = capped(s.text);
        }
        let (link, lang) = (link.map(capped), lang.map(capped));
        let Buffers {
            mut norm,
            mut toks,
            mut tok_seg,
            mut hits,
            seen_lits,
            seen_rules,
        } = Buffers::take();
        let mut scan = Scan::default();
        let cap: usize = segments.iter().map(|s| s.text.len() + 2).sum();
        norm.reserve(cap);
        for (i, s) in segments.iter().enumerate() {
            let before = toks.len();
            match lits {
                Some(Literals::Dfa(dfa)) => {
                    // Every `SCAN_BATCH` bytes, not every word: a call costs about as much
                    // as a few bytes of scanning.
                    let mut written = |norm: &[u8], toks: &[TokPos]| {
                        if norm.len() >= scan.at() + SCAN_BATCH {
                            scan.advance(dfa, norm, toks, &mut hits);
                        }
                    };
                    tokenize_with(s.text, &mut norm, &mut toks, &mut written);
                }
                _ => tokenize_into(s.text, &mut norm, &mut toks),
            }
            if toks.len() > before {
                norm.extend_from_slice(b" \n");
            }
            match lits {
                Some(Literals::Dfa(dfa)) => scan.advance(dfa, &norm, &toks, &mut hits),
                // The field is written whole: every literal starting at one of its tokens
                // ends before its newline (no pattern holds one).
                Some(Literals::Tokens(index)) => {
                    let first = u32::try_from(before).unwrap_or(u32::MAX);
                    index.find(&norm, &toks[before..], first, &mut hits);
                }
                None => {}
            }
            let seg = u32::try_from(i).unwrap_or(u32::MAX);
            tok_seg.resize(toks.len(), seg);
        }
        hits.sort_unstable();
        hits.dedup();
        let regex_texts = segments.iter().map(|_| OnceCell::new()).collect();
        Doc {
            segments,
            norm,
            toks,
            tok_seg,
            hits,
            seen_lits,
            seen_rules,
            link,
            lang,
            regex_texts,
        }
    }

    /// Distinct literals that occurred.
    pub fn literals(&self) -> impl Iterator<Item = u32> + '_ {
        let mut last = None;
        self.hits.iter().filter_map(move |&(l, _)| {
            if last == Some(l) {
                None
            } else {
                last = Some(l);
                Some(l)
            }
        })
    }

    fn regex_text(&self, seg: usize) -> &RegexText<'a> {
        self.regex_texts[seg].get_or_init(|| RegexText::new(self.segments[seg].text))
    }

    pub fn hit_of_tokens(&self, start: u32, end: u32) -> Hit {
        let seg = &self.segments[self.tok_seg[start as usize] as usize];
        let from = self.toks[start as usize].start as usize;
        let to = self.toks[end as usize - 1].end as usize;
        Hit {
            field: seg.field,
            start: from,
            end: to,
            text: seg.text[from..to].to_string(),
        }
    }
}

/// What evaluation needs besides the document.
pub(crate) struct Ctx<'e> {
    pub lits: &'e [Literal],
    pub regexes: &'e [Regex],
    /// When regex evaluation for this article must stop (issue 16 item 9): a regex asked after
    /// it answers "no match" and sets `out_of_time`, and the caller drops the rule's verdict.
    pub regex_deadline: Option<std::time::Instant>,
    pub out_of_time: std::cell::Cell<bool>,
}

impl Ctx<'_> {
    /// Occurrences of literal `lit` in fields `mask` that pass `check` (`case:`, `word~`).
    pub fn occurrences<'d>(
        &self,
        doc: &'d Doc<'_>,
        lit: u32,
        mask: Mask,
        check: &'d Check,
    ) -> impl Iterator<Item = Occ> + 'd {
        let from = doc.hits.partition_point(|h| h.0 < lit);
        let to = doc.hits.partition_point(|h| h.0 <= lit);
        let lit = &self.lits[lit as usize];
        let ntoks = lit.ntoks;
        // A prefix pattern is `" stem"`: its length less the space is the stem's in bytes.
        let stem_len = lit.pattern.len() - 1;
        doc.hits[from..to].iter().filter_map(move |&(_, tok)| {
            let seg = doc.tok_seg[tok as usize];
            if mask & bit(doc.segments[seg as usize].field) == 0 {
                return None;
            }
            match check {
                Check::Any => {}
                Check::Exact(exact) => {
                    let text = doc.segments[seg as usize].text;
                    let same = exact.iter().enumerate().all(|(k, want)| {
                        let t = doc.toks[tok as usize + k];
                        exact_form_is(&text[t.start as usize..t.end as usize], want)
                    });
                    if !same {
                        return None;
                    }
                }
                Check::MaxSuffix(max) => {
                    let at = doc.toks[tok as usize].norm_start as usize + stem_len;
                    let rest = doc.norm.get(at..).unwrap_or(&[]);
                    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                    // Characters: the bytes that do not continue one (the text is UTF-8).
                    let chars = rest[..end].iter().filter(|&&b| b & 0xC0 != 0x80).count();
                    if chars > *max as usize {
                        return None;
                    }
                }
            }
            Some(Occ {
                seg,
                start: tok,
                end: tok + ntoks,
            })
        })
    }

    /// Occurrences of a positional node (a literal or an OR of them).
    pub fn positions(&self, doc: &Doc<'_>, node: &Node, out: &mut Vec<Occ>) {
        match node {
            Node::Lit {
                lit, mask, check, ..
            } => out.extend(self.occurrences(doc, *lit, *mask, check)),
            Node::Or(items) => items.iter().for_each(|n| self.positions(doc, n, out)),
            Node::List { inner, .. } | Node::Field { inner, .. } => {
                self.positions(doc, inner, out);
            }
            // The compiler only accepts positional operands.
            _ => {}
        }
    }

    /// Matches of regex `re` in fields `mask`, as (segment, original byte range), at most
    /// `limit` from the article's text (and the link's and language's first).
    pub fn regex_matches(
        &self,
        doc: &Doc<'_>,
        re: u32,
        mask: Mask,
        limit: usize,
    ) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let re = &self.regexes[re as usize];
        // Checked before each field: one call is bounded by the compile-time budget and the
        // field cap; the deadline bounds how many run for one article.
        let late = || {
            let late = self
                .regex_deadline
                .is_some_and(|d| std::time::Instant::now() >= d);
            if late {
                self.out_of_time.set(true);
            }
            late
        };
        for (i, seg) in doc.segments.iter().enumerate() {
            if mask & bit(seg.field) == 0 {
                continue;
            }
            if late() {
                return Vec::new();
            }
            let rt = doc.regex_text(i);
            for m in re.find_iter(&rt.text) {
                let (s, e) = rt.original_range(m.start(), m.end());
                out.push((i, s, e));
                if out.len() >= limit {
                    return out;
                }
            }
        }
        if mask & bit(Field::Url) != 0
            && let Some(link) = doc.link
            && let Some(m) = re.find(link)
        {
            out.push((usize::MAX, m.start(), m.end()));
        }
        if mask & bit(Field::Lang) != 0
            && let Some(lang) = doc.lang
            && let Some(m) = re.find(lang)
        {
            out.push((usize::MAX - 1, m.start(), m.end()));
        }
        out
    }

    pub fn eval(&self, doc: &Doc<'_>, node: &Node) -> bool {
        match node {
            Node::Lit {
                lit, mask, check, ..
            } => self.occurrences(doc, *lit, *mask, check).next().is_some(),
            Node::Regex { re, mask, .. } => !self.regex_matches(doc, *re, *mask, 1).is_empty(),
            Node::Url { host, .. } => url_host_span(doc.link, host).is_some(),
            Node::Lang { tag, .. } => lang_matches(doc.lang, tag),
            Node::And(items) => items.iter().all(|n| self.eval(doc, n)),
            Node::Or(items) => items.iter().any(|n| self.eval(doc, n)),
            Node::Not(inner) => !self.eval(doc, inner),
            Node::List { inner, .. } | Node::Field { inner, .. } => self.eval(doc, inner),
            Node::Near { .. } => !self.near_pairs(doc, node, 1).is_empty(),
        }
    }

    /// Pairs of occurrences that satisfy a NEAR/ONEAR node, at most `limit` of them.
    pub fn near_pairs(&self, doc: &Doc<'_>, node: &Node, limit: usize) -> Vec<(Occ, Occ)> {
        let Node::Near {
            left,
            right,
            distance,
            ordered,
        } = node
        else {
            return Vec::new();
        };
        let (mut ls, mut rs) = (Vec::new(), Vec::new());
        self.positions(doc, left, &mut ls);
        if ls.is_empty() {
            return Vec::new();
        }
        self.positions(doc, right, &mut rs);
        near_pairs_in(&mut ls, &mut rs, *distance, *ordered, limit).0
    }

    /// The hits that make `node` true (it must be true); nothing under NOT.
    pub fn collect_hits(&self, doc: &Doc<'_>, node: &Node, out: &mut Vec<Hit>) {
        match node {
            Node::Lit {
                lit, mask, check, ..
            } => {
                for o in self
                    .occurrences(doc, *lit, *mask, check)
                    .take(MAX_HITS_PER_ATOM)
                {
                    out.push(doc.hit_of_tokens(o.start, o.end));
                }
            }
            Node::Regex { re, mask, .. } => {
                for (seg, s, e) in self.regex_matches(doc, *re, *mask, MAX_HITS_PER_ATOM) {
                    out.push(regex_hit(doc, seg, s, e));
                }
            }
            Node::Url { host, .. } => {
                if let (Some(link), Some((s, e))) = (doc.link, url_host_span(doc.link, host)) {
                    out.push(Hit {
                        field: Field::Url,
                        start: s,
                        end: e,
                        text: link[s..e].to_string(),
                    });
                }
            }
            Node::Lang { .. } => {
                if let Some(lang) = doc.lang {
                    out.push(Hit {
                        field: Field::Lang,
                        start: 0,
                        end: lang.len(),
                        text: lang.to_string(),
                    });
                }
            }
            Node::And(items) | Node::Or(items) => {
                for n in items {
                    if self.eval(doc, n) {
                        self.collect_hits(doc, n, out);
                    }
                }
            }
            Node::Not(_) => {}
            Node::List { inner, .. } | Node::Field { inner, .. } => {
                self.collect_hits(doc, inner, out);
            }
            Node::Near { .. } => {
                for (l, r) in self.near_pairs(doc, node, MAX_HITS_PER_ATOM) {
                    out.push(doc.hit_of_tokens(l.start, l.end));
                    out.push(doc.hit_of_tokens(r.start, r.end));
                }
            }
        }
    }
}

fn regex_hit(doc: &Doc<'_>, seg: usize, s: usize, e: usize) -> Hit {
    let (field, text) = match seg {
        usize::MAX => (Field::Url, doc.link.unwrap_or("")),
        x if x == usize::MAX - 1 => (Field::Lang, doc.lang.unwrap_or("")),
        _ => (doc.segments[seg].field, doc.segments[seg].text),
    };
    Hit {
        field,
        start: s,
        end: e,
        text: text.get(s..e).unwrap_or("").to_string(),
    }
}

/// Sorts highlight spans and merges the overlapping ones into their union (`Weimar` inside the
/// regex's `Weimar+` marks `Weimar+`), so a longer hit is never cut short by a shorter one.
pub fn merge_spans(spans: &mut Vec<(usize, usize)>) {
    spans.sort_unstable();
    spans.dedup_by(|next, kept| {
        let overlaps = next.0 < kept.1;
        if overlaps {
            kept.1 = kept.1.max(next.1);
        }
        overlaps
    });
}

/// The pairs of `ls` × `rs` that are `near`, at most `limit`, and how many pairs were compared.
/// Both lists are sorted here; each left occurrence is compared only with the right ones that
/// start within `distance` (plus the longest right literal) of it, found by binary search. So the
/// work is about (L + R) · log R plus the pairs in those windows, not L × R: a title that repeats
/// two names 17,000 times each cost 300 million comparisons before.
pub(crate) fn near_pairs_in(
    ls: &mut [Occ],
    rs: &mut [Occ],
    distance: u32,
    ordered: bool,
    limit: usize,
) -> (Vec<(Occ, Occ)>, usize) {
    let key = |o: &Occ| (o.seg, o.start, o.end);
    ls.sort_unstable_by_key(key);
    rs.sort_unstable_by_key(key);
    let longest = rs.iter().map(|r| r.end - r.start).max().unwrap_or(0);
    let (mut out, mut compared) = (Vec::new(), 0);
    if limit == 0 {
        return (out, compared);
    }
    for l in ls.iter() {
        // A right occurrence before `l` ends at most `distance` tokens before it starts; one after
        // starts at most `distance` tokens after it ends; an overlapping one starts inside it.
        let from = l.start.saturating_sub(distance.saturating_add(longest));
        let to = l.end.saturating_add(distance);
        let first = rs.partition_point(|r| (r.seg, r.start) < (l.seg, from));
        for r in &rs[first..] {
            if (r.seg, r.start) > (l.seg, to) {
                break;
            }
            compared += 1;
            if near(*l, *r, distance, ordered) {
                out.push((*l, *r));
                if out.len() >= limit {
                    return (out, compared);
                }
            }
        }
    }
    (out, compared)
}

/// Two occurrences are near when they do not overlap, lie in one segment, and at most `n` tokens
/// separate them (in order, for ONEAR).
pub(crate) fn near(l: Occ, r: Occ, n: u32, ordered: bool) -> bool {
    if l.seg != r.seg {
        return false;
    }
    if l.end <= r.start {
        r.start - l.end <= n
    } else if r.end <= l.start {
        !ordered && l.start - r.end <= n
    } else {
        false
    }
}

/// The byte range of the link's host when it is `host` or one of its subdomains.
pub(crate) fn url_host_span(link: Option<&str>, host: &str) -> Option<(usize, usize)> {
    let link = link?;
    let parsed = url::Url::parse(link).ok()?;
    let h = parsed.host_str()?.trim_end_matches('.');
    let ok = h == host || h.strip_suffix(host).is_some_and(|rest| rest.ends_with('.'));
    if !ok {
        return None;
    }
    let lower = link.to_ascii_lowercase();
    let after_scheme = lower.find("://").map_or(0, |i| i + 3);
    if let Some(at) = lower[after_scheme..].find(h) {
        let at = at + after_scheme;
        return Some((at, at + h.len()));
    }
    // An internationalised host is punycode once parsed (`xn--bcher-kva.de`) but may be written
    // in Unicode in the link (`bücher.de`): the span is the authority's host as written.
    let authority_len = link[after_scheme..]
        .find(['/', '?', '#'])
        .unwrap_or(link.len() - after_scheme);
    let authority = &link[after_scheme..after_scheme + authority_len];
    let host_from = authority.rfind('@').map_or(0, |i| i + 1);
    let host = &authority[host_from..];
    let host_len = host
        .rfind(':')
        .filter(|_| !host.ends_with(']'))
        .unwrap_or(host.len());
    let at = after_scheme + host_from;
    Some((at, at + host_len))
}

/// `lang:en` matches `en`, `en-GB`; `lang:en-gb` matches only `en-GB` (any case, `_` as `-`).
pub(crate) fn lang_matches(lang: Option<&str>, tag: &str) -> bool {
    let Some(lang) = lang else { return false };
    let lang = lang.trim().replace('_', "-").to_ascii_lowercase();
    if tag.contains('-') {
        lang == tag
    } else {
        lang.split('-').next() == Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::{Occ, merge_spans, near, near_pairs_in};

    type Spans = &'static [(usize, usize)];

    #[test]
    fn overlapping_spans_merge_into_their_union() {
        #[rustfmt::skip]
        let cases: &[(Spans, Spans)] = &[
            (&[], &[]),
            (&[(0, 6), (0, 7)], &[(0, 7)]),          // `Weimar` inside `Weimar+`
            (&[(4, 9), (0, 6)], &[(0, 9)]),          // unsorted, overlapping
            (&[(0, 3), (3, 6)], &[(0, 3), (3, 6)]),  // touching is not overlapping
            (&[(0, 10), (2, 4), (5, 7)], &[(0, 10)]),
        ];
        for (given, want) in cases {
            let mut spans = given.to_vec();
            merge_spans(&mut spans);
            assert_eq!(&spans[..], *want, "{given:?}");
        }
    }

    fn occ(seg: u32, start: u32, len: u32) -> Occ {
        Occ {
            seg,
            start,
            end: start + len,
        }
    }

    /// Every pair `near` accepts, the old way: all of L × R.
    fn brute(ls: &[Occ], rs: &[Occ], n: u32, ordered: bool) -> Vec<(Occ, Occ)> {
        let mut out: Vec<(Occ, Occ)> = ls
            .iter()
            .flat_map(|l| rs.iter().map(move |r| (*l, *r)))
            .filter(|(l, r)| near(*l, *r, n, ordered))
            .collect();
        out.sort_unstable_by_key(|(l, r)| (l.seg, l.start, l.end, r.seg, r.start, r.end));
        out
    }

    #[test]
    fn near_pairs_are_the_pairs_near_accepts() {
        // Left and right literals of 1–3 tokens in two segments, overlapping and not, in both
        // orders, at every distance up to past the farthest pair.
        let mut x = 17u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for case in 0..200 {
            let mut draw = |k: usize| -> Vec<Occ> {
                (0..k)
                    .map(|_| occ(next() % 2, next() % 40, 1 + next() % 3))
                    .collect()
            };
            let (mut ls, mut rs) = (draw(case % 7), draw(case % 11));
            for n in [0, 1, 3, 10, 50] {
                for ordered in [false, true] {
                    let want = brute(&ls, &rs, n, ordered);
                    let (mut got, _) = near_pairs_in(&mut ls, &mut rs, n, ordered, usize::MAX);
                    got.sort_unstable_by_key(|(l, r)| {
                        (l.seg, l.start, l.end, r.seg, r.start, r.end)
                    });
                    assert_eq!(got, want, "case {case}, NEAR/{n}, ordered {ordered}");
                    let (first, _) = near_pairs_in(&mut ls, &mut rs, n, ordered, 1);
                    assert_eq!(first.len(), want.len().min(1), "case {case}: the verdict");
                }
            }
        }
    }

    /// Issue 22: `Healey Hegseth ` repeated over a 256 KiB title is 17,476 occurrences of each
    /// name. Comparing every pair was 305 million `near` calls for one NEAR/3; the windowed search
    /// compares each left occurrence with the few right ones within reach.
    #[test]
    fn near_pairs_compare_only_within_reach() {
        let reps = 17_476u32;
        let mut ls: Vec<Occ> = (0..reps).map(|i| occ(0, 2 * i, 1)).collect();
        let mut rs: Vec<Occ> = (0..reps).map(|i| occ(0, 2 * i + 1, 1)).collect();
        let (pairs, compared) = near_pairs_in(&mut ls, &mut rs, 3, false, usize::MAX);
        // Each Healey has Hegseths at -3, -1, +1 and +3 tokens (fewer at the ends).
        assert_eq!(pairs.len(), 4 * reps as usize - 4);
        assert!(
            compared <= 5 * reps as usize,
            "{compared} comparisons for {reps} × {reps} occurrences"
        );
        // The verdict (at most one pair) stops at the first.
        let (first, compared) = near_pairs_in(&mut rs, &mut ls, 0, true, 1);
        assert_eq!(first.len(), 1, "Hegseth is followed by Healey");
        assert!(compared <= 2, "{compared}");
        let mut far: Vec<Occ> = (0..reps).map(|i| occ(1, 2 * i + 1, 1)).collect();
        let (none, compared) = near_pairs_in(&mut ls, &mut far, 3, false, 1);
        assert!(none.is_empty(), "another field is never near");
        assert_eq!(compared, 0);
    }
}
