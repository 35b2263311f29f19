//! The keys one poll reads and writes, held in memory between `store_items`'s reads and its
//! writes, for the backends that read a poll's keys in one statement and write them back in a
//! few (`ItemRows::prefetch` … `finish`): who held each key when read, who holds it after the
//! poll's writes so far, and the stories those keys name. No SQL here: SQLite (`items.rs`) and
//! PostgreSQL (`pg/items.rs`) each turn `changes` into their own statements.

use std::collections::HashMap;

/// A stored story as the identity rules read it.
pub(in crate::store) struct Story {
    pub title: String,
    pub link: Option<String>,
    /// When its feed last listed it (`articles.last_seen`).
    pub last_seen: Option<i64>,
}

/// A key of the poll: who held it when read, and who holds it after the writes so far.
struct KeyOwner {
    read: Option<i64>,
    now: Option<i64>,
}

/// What the poll's key writes come to, once `store_items` is done with the book.
pub(in crate::store) struct KeyChanges<'a> {
    /// Keys read with a holder that none holds now.
    pub gone: Vec<&'a str>,
    /// Keys to point at a story (new, or moved from another).
    pub moved: Vec<(&'a str, i64)>,
    /// `drop_stale` calls (story, key kind): the story's other keys of that kind that the poll
    /// did not name go too.
    pub drops: &'a [(i64, String)],
    /// Every key the poll named (those `drops` must keep).
    pub named: Vec<&'a str>,
}

#[derive(Default)]
pub(in crate::store) struct KeyBook {
    keys: HashMap<String, KeyOwner>,
    stories: HashMap<i64, Story>,
    drops: Vec<(i64, String)>,
}

/// A key's kind: up to and including its first `:` (empty without one), as `drop_stale` reads it.
pub(in crate::store) fn prefix(key: &str) -> &str {
    key.find(':').map_or("", |i| &key[..=i])
}

impl KeyBook {
    /// Every key `prefetch` was told of, none held yet.
    pub fn told<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        for k in keys {
            self.keys.entry(k.to_string()).or_insert(KeyOwner {
                read: None,
                now: None,
            });
        }
    }

    /// A key the store holds for `article`, as the prefetch read it.
    pub fn read(&mut self, key: String, article: i64, story: Story) {
        self.keys.insert(
            key,
            KeyOwner {
                read: Some(article),
                now: Some(article),
            },
        );
        self.stories.insert(article, story);
    }

    /// `ItemRows::find` from the book: `None` for a key the book was not told of (ask the
    /// database), else the story that holds it now, if any.
    pub fn find(&self, key: &str) -> Option<Option<(i64, String, Option<String>)>> {
        let owner = self.keys.get(key)?;
        Some(owner.now.and_then(|id| {
            let s = self.stories.get(&id)?;
            Some((id, s.title.clone(), s.link.clone()))
        }))
    }

    /// `ItemRows::find_loose` from the book (`None`: not told of this key).
    pub fn find_loose(&self, key: &str, since: i64) -> Option<Option<(i64, String)>> {
        let owner = self.keys.get(key)?;
        Some(owner.now.and_then(|id| {
            let s = self.stories.get(&id)?;
            s.last_seen
                .is_some_and(|seen| seen >= since)
                .then(|| (id, s.title.clone()))
        }))
    }

    /// `ItemRows::add_key` in the book; `false` when the book was not told of `key` (the caller
    /// writes it at once).
    pub fn add(&mut self, key: &str, article: i64) -> bool {
        self.keys.get_mut(key).is_some_and(|k| {
            k.now.get_or_insert(article);
            true
        })
    }

    /// `ItemRows::move_key` in the book; `false` when the book was not told of `key`.
    pub fn point(&mut self, key: &str, article: i64) -> bool {
        self.keys.get_mut(key).is_some_and(|k| {
            k.now = Some(article);
            true
        })
    }

    /// `ItemRows::drop_stale`: `article`'s other keys of `key`'s kind that the book knows are
    /// let go now; those it does not know go at `changes`.
    pub fn drop_stale(&mut self, article: i64, key: &str) {
        let kind = prefix(key);
        for (k, owner) in &mut self.keys {
            if owner.now == Some(article) && k != key && prefix(k) == kind {
                owner.now = None;
            }
        }
        self.drops.push((article, kind.to_string()));
    }

    /// What to write: each key to its owner after the poll's writes.
    pub fn changes(&self) -> KeyChanges<'_> {
        let (mut gone, mut moved) = (Vec::new(), Vec::new());
        for (key, owner) in &self.keys {
            match owner.now {
                None if owner.read.is_some() => gone.push(key.as_str()),
                Some(id) if owner.read != Some(id) => moved.push((key.as_str(), id)),
                _ => {}
            }
        }
        // In key order: neighbours in the index, written one after the other.
        gone.sort_unstable();
        moved.sort_unstable();
        KeyChanges {
            gone,
            moved,
            drops: &self.drops,
            named: if self.drops.is_empty() {
                Vec::new()
            } else {
                self.keys.keys().map(String::as_str).collect()
            },
        }
    }
}
