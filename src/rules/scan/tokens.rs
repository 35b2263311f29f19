//! The token-keyed index of the literals (issue 22): the normalised text is tokens separated by
//! single spaces and every pattern starts with the space before a token (`" w1 w2 "`, `" stem"`),
//! so a literal can only start at a token. The index is keyed by a literal's first word (or its
//! stem's first bytes), and each candidate is confirmed by comparing its pattern with the text
//! from that token: one or two hash lookups per token instead of one automaton step per byte.
//! It reports what an overlapping Aho-Corasick search reports at token starts (property-tested).

use std::hash::Hasher;

use rustc_hash::FxHasher;

use super::LiteralsError;
use crate::rules::text::TokPos;

/// The index of every literal.
///
/// A pattern `" w …"` whose first word `w` is followed by a space (a term, a phrase, a phrase
/// ending in a prefix) is found through `words`, by the word at the token. A pattern with no
/// second space (`" stem"`, a prefix) is found through `stems`, by the token's first `stem_key`
/// bytes (the shortest stem's length, at most 8). Any other pattern (none comes from the
/// compiler) is tried at every token.
#[derive(Debug)]
pub(crate) struct TokenIndex {
    words: Table,
    stems: Table,
    stem_key: usize,
    anywhere: Vec<Entry>,
    /// Every pattern, back to back; keys point into it.
    bytes: Vec<u8>,
}

/// One literal under a key: its pattern is `bytes[at..at + len]`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    lit: u32,
    at: u32,
    len: u32,
    /// The key alone proves the pattern is there (`" w "` found by `w`, a stem as long as the
    /// key): no comparison.
    proven: bool,
}

/// An open-addressing hash table (linear probing, at most two thirds full) from a key's bytes to
/// its entries. A slot is eight bytes, so a missed lookup usually reads one cache line of a table
/// that fits the L2 cache at 10,000 rules (128 KiB); the 9,300-literal DFA did not.
#[derive(Debug, Default)]
struct Table {
    /// A power of two in length; `key == EMPTY` marks a free slot.
    slots: Vec<Slot>,
    keys: Vec<Key>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    tag: u32,
    key: u32,
}

/// A key's bytes (`bytes[at..at + len]` of `TokenIndex`) and its entries (`entries[first..end]`).
#[derive(Debug, Clone, Copy)]
struct Key {
    at: u32,
    len: u32,
    first: u32,
    end: u32,
}

const EMPTY: u32 = u32::MAX;

fn hash(key: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(key);
    h.finish()
}

impl Table {
    /// A table of `keyed`: (key's place in `bytes`, entry), grouped by key in any order.
    fn build(bytes: &[u8], mut keyed: Vec<((u32, u32), Entry)>) -> Table {
        let key_of = |&(at, len): &(u32, u32)| &bytes[at as usize..(at + len) as usize];
        keyed.sort_by(|a, b| key_of(&a.0).cmp(key_of(&b.0)).then(a.1.lit.cmp(&b.1.lit)));
        let mut t = Table::default();
        for (k, e) in keyed {
            let new = t
                .keys
                .last()
                .is_none_or(|last| key_of(&(last.at, last.len)) != key_of(&k));
            let end = u32::try_from(t.entries.len() + 1).unwrap_or(u32::MAX);
            if new {
                t.keys.push(Key {
                    at: k.0,
                    len: k.1,
                    first: end - 1,
                    end,
                });
            } else if let Some(last) = t.keys.last_mut() {
                last.end = end;
            }
            t.entries.push(e);
        }
        // At most two thirds full: a missed lookup stops within a few slots.
        let size = (t.keys.len() + t.keys.len() / 2 + 1).next_power_of_two();
        t.slots = vec![Slot { tag: 0, key: EMPTY }; size];
        let mask = size - 1;
        for (i, k) in t.keys.iter().enumerate() {
            let h = hash(key_of(&(k.at, k.len)));
            let mut s = h as usize & mask;
            while t.slots[s].key != EMPTY {
                s = (s + 1) & mask;
            }
            t.slots[s] = Slot {
                tag: (h >> 32) as u32,
                key: u32::try_from(i).unwrap_or(EMPTY),
            };
        }
        t
    }

    /// The entries of `key`.
    #[inline]
    fn get(&self, bytes: &[u8], key: &[u8]) -> &[Entry] {
        if self.keys.is_empty() {
            return &[];
        }
        let mask = self.slots.len() - 1;
        let h = hash(key);
        let tag = (h >> 32) as u32;
        let mut s = h as usize & mask;
        loop {
            let slot = self.slots[s];
            if slot.key == EMPTY {
                return &[];
            }
            if slot.tag == tag {
                let k = self.keys[slot.key as usize];
                if bytes.get(k.at as usize..(k.at + k.len) as usize) == Some(key) {
                    return &self.entries[k.first as usize..k.end as usize];
                }
            }
            s = (s + 1) & mask;
        }
    }
}

impl TokenIndex {
    /// `patterns` are the literals' `" w1 w2 "` / `" stem"` patterns, in literal order (a
    /// pattern's id is its literal's index).
    pub fn build<'p>(
        patterns: impl ExactSizeIterator<Item = &'p str> + Clone,
    ) -> Result<TokenIndex, LiteralsError> {
        let total: usize = patterns.clone().map(str::len).sum();
        if u32::try_from(total).is_err() || u32::try_from(patterns.len()).is_err() {
            return Err(LiteralsError::TooLarge);
        }
        let mut bytes = Vec::with_capacity(total);
        let (mut words, mut stems, mut anywhere) = (Vec::new(), Vec::new(), Vec::new());
        // Fits: checked above.
        let at32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        for (lit, p) in patterns.enumerate() {
            let p = p.as_bytes();
            let at = bytes.len();
            bytes.extend_from_slice(p);
            let entry = |proven| Entry {
                lit: at32(lit),
                at: at32(at),
                len: at32(p.len()),
                proven,
            };
            let rest = p.get(1..).unwrap_or(&[]);
            match rest.iter().position(|&b| b == b' ') {
                _ if p.first() != Some(&b' ') => anywhere.push(entry(false)),
                Some(sp) if sp > 0 => {
                    words.push(((at32(at + 1), at32(sp)), entry(sp + 1 == rest.len())));
                }
                None if !rest.is_empty() => stems.push((at32(at + 1), entry(false))),
                _ => anywhere.push(entry(false)),
            }
        }
        let stem_key = stems
            .iter()
            .map(|(_, e)| e.len as usize - 1)
            .min()
            .unwrap_or(1)
            .min(8);
        let stems = stems
            .into_iter()
            .map(|(at, e)| {
                let proven = e.len as usize - 1 == stem_key;
                ((at, at32(stem_key)), Entry { proven, ..e })
            })
            .collect();
        Ok(TokenIndex {
            words: Table::build(&bytes, words),
            stems: Table::build(&bytes, stems),
            stem_key,
            anywhere,
            bytes,
        })
    }

    /// Each literal that occurs at one of `toks` goes to `hits` as (literal, token), the token
    /// numbered from `first`. `norm` holds the whole text of these tokens: the lookup reads
    /// past a token (a phrase runs on into the next words), never past the end of its field.
    pub fn find(&self, norm: &[u8], toks: &[TokPos], first: u32, hits: &mut Vec<(u32, u32)>) {
        for (i, t) in toks.iter().enumerate() {
            let tok = first + u32::try_from(i).unwrap_or(u32::MAX);
            let start = t.norm_start as usize;
            // The pattern starts with the space before the token.
            let Some(from) = start.checked_sub(1).and_then(|s| norm.get(s..)) else {
                continue;
            };
            let text = &from[1..];
            let word_len = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
            let word = &text[..word_len];
            // `" w "` is proven by `w` only when a space follows the word in the text.
            let spaced = word_len < text.len();
            self.confirm(self.words.get(&self.bytes, word), spaced, from, tok, hits);
            if word_len >= self.stem_key {
                let stem = &word[..self.stem_key];
                self.confirm(self.stems.get(&self.bytes, stem), true, from, tok, hits);
            }
            if !self.anywhere.is_empty() {
                self.confirm(&self.anywhere, false, from, tok, hits);
            }
        }
    }

    #[inline]
    fn confirm(
        &self,
        entries: &[Entry],
        proof: bool,
        from: &[u8],
        tok: u32,
        hits: &mut Vec<(u32, u32)>,
    ) {
        for e in entries {
            let pattern = &self.bytes[e.at as usize..(e.at + e.len) as usize];
            if (e.proven && proof) || from.starts_with(pattern) {
                hits.push((e.lit, tok));
            }
        }
    }
}

#[cfg(test)]
mod tests;
