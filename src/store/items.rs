//! Item identity across polls: an item is known by its key, an alternate key (its canonical link)
//! or a loose key (link without scheme and query noise, headline) even when its guid churns with
//! its link, its headline is edited or it vanishes and returns; new items join the matcher's to-do
//! list (`unmatched`). Runs inside the caller's poll transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::polls::Inserted;
use super::{StoreError, ts};
use crate::model::Article;
use crate::parse::identity::{LOOSE_KEY_WINDOW, alternate_keys, loose_keys};

pub(super) mod key_book;
mod sqlite_rows;

pub(super) use sqlite_rows::SqliteItems;

/// A publication date further than this past the time we first see the item is not believed (a
/// feed's 2099 or 9999, a time zone wrong by days): the item is stored undated, so digests order
/// and show it by when we first saw it instead of pinning it to the top of every digest.
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(1);

pub(crate) struct Items {
    pub inserted: Inserted,
    pub retitled: usize,
    /// Listed items not known by their primary key (a new guid) but known by another one: the
    /// feed republished them under new ids.
    pub churned: usize,
}

/// The rows `store_items` reads and writes, one method per statement: SQLite's transaction here,
/// PostgreSQL's in `pg/items.rs`. The identity rules live once, in `store_items`.
pub(super) trait ItemRows {
    /// A known item by one of its exact keys: id, stored headline and link.
    fn find(
        &mut self,
        feed: &str,
        key: &str,
    ) -> Result<Option<(i64, String, Option<String>)>, StoreError>;
    /// A story last listed at or after `since` by a loose key: id and stored headline.
    fn find_loose(
        &mut self,
        feed: &str,
        key: &str,
        since: i64,
    ) -> Result<Option<(i64, String)>, StoreError>;
    /// Remembers `key` for `article` unless the key is taken.
    fn add_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError>;
    /// Points `key` at `article`, taking it from any other story.
    fn move_key(&mut self, feed: &str, key: &str, article: i64) -> Result<(), StoreError>;
    /// Drops `article`'s other keys of the same kind (prefix up to the first `:`) as `key`.
    fn drop_stale(&mut self, article: i64, key: &str) -> Result<(), StoreError>;
    /// A known item listed again: last seen now, its headline, link and text refreshed.
    fn refresh(&mut self, article: i64, now: i64, a: &Article) -> Result<(), StoreError>;
    /// A new item; `None` when its primary key exists already. An alertable one joins the
    /// matcher's to-do list in the same transaction.
    fn insert(&mut self, feed: &str, new: &NewItem<'_>) -> Result<Option<i64>, StoreError>;

    /// Told, before any other call, every key `store_items` may ask for or write this poll: a
    /// backend reads them in one go here (PostgreSQL) rather than one statement per key.
    fn prefetch(&mut self, _feed: &str, _keys: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The poll's new items, in order: `insert` for each, unless the backend stores them with
    /// one statement. A backend may hold its writes until `finish`; its reads never follow a
    /// write within one call of `store_items`.
    fn insert_all(
        &mut self,
        feed: &str,
        new: &[NewItem<'_>],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        new.iter().map(|n| self.insert(feed, n)).collect()
    }

    /// The end of the poll's items: whatever the backend held is written now.
    fn finish(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What `ItemRows::insert` stores of a new item.
pub(super) struct NewItem<'a> {
    pub article: &'a Article,
    pub authors: String,
    pub categories: String,
    pub published: Option<i64>,
    pub now: i64,
    pub alertable: bool,
    pub seen_ms: i64,
}

/// Stores a poll's items. An item is known when its key or one of its alternate keys (its
/// canonical link, when unique in this poll) is, or else, failing those, when one of its loose
/// keys (`identity::loose_keys`: the link without scheme and query noise, the headline) is unique
/// in this poll and names a story seen within `LOOSE_KEY_WINDOW` that no other item of this poll
/// is already known as. A known item's `last_seen`, headline and text are refreshed and any new key
/// is remembered (a loose key moves to the newest story that has it), so churning guids keep
/// mapping to it.
pub(super) fn store_items(
    rows: &mut dyn ItemRows,
    feed: &str,
    articles: &[Article],
    now: DateTime<Utc>,
    first_poll: bool,
    cutoff: Option<DateTime<Utc>>,
) -> Result<Items, StoreError> {
    // Each item's keys computed once (a loose key is an NFKC pass and a digest).
    let unique_in_poll = |keys_of: &dyn Fn(&Article) -> Vec<String>| {
        let all: Vec<Vec<String>> = articles.iter().map(keys_of).collect();
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for k in all.iter().flatten() {
            *uses.entry(k.as_str()).or_default() += 1;
        }
        let unique: Vec<Vec<bool>> = all
            .iter()
            .map(|keys| {
                keys.iter()
                    .map(|k| uses.get(k.as_str()) == Some(&1))
                    .collect()
            })
            .collect();
        all.into_iter()
            .zip(unique)
            .map(|(keys, unique)| {
                keys.into_iter()
                    .zip(unique)
                    .filter_map(|(k, u)| u.then_some(k))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let alternates = unique_in_poll(&alternate_keys);
    let loose = unique_in_poll(&loose_keys);
    let every_key: Vec<&str> = articles
        .iter()
        .zip(alternates.iter().zip(&loose))
        .flat_map(|(a, (alt, lo))| {
            std::iter::once(a.key.as_str()).chain(alt.iter().chain(lo).map(String::as_str))
        })
        .collect();
    rows.prefetch(feed, &every_key)?;
    // Pass 1: the item's own keys. Pass 2 (loose keys) may not take a story pass 1 found listed.
    let mut known: Vec<Option<(i64, String)>> = Vec::with_capacity(articles.len());
    let mut by_primary = vec![false; articles.len()];
    // Known by its own key with the same headline and link: its loose keys are those it has.
    let mut unchanged = vec![false; articles.len()];
    let mut claimed: HashSet<i64> = HashSet::new();
    for (i, a) in articles.iter().enumerate() {
        let mut found: Option<(i64, String, Option<String>)> = None;
        for k in std::iter::once(&a.key).chain(&alternates[i]) {
            found = rows.find(feed, k)?;
            if found.is_some() {
                by_primary[i] = *k == a.key;
                break;
            }
        }
        if let Some((id, title, link)) = &found {
            claimed.insert(*id);
            unchanged[i] = by_primary[i] && *title == a.title && *link == a.link;
        }
        known.push(found.map(|(id, title, _)| (id, title)));
    }
    let since = ts(now.checked_sub_signed(LOOSE_KEY_WINDOW).unwrap_or(now));
    for (i, slot) in known.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        for k in &loose[i] {
            let found = rows.find_loose(feed, k, since)?;
            if let Some((id, title)) = found.filter(|(id, _)| !claimed.contains(id)) {
                claimed.insert(id);
                *slot = Some((id, title));
                break;
            }
        }
    }

    let mut out = Items {
        inserted: Inserted::default(),
        retitled: 0,
        churned: 0,
    };
    // Pass 3: the new items stored together (in order), then each item refreshed or keyed.
    let mut new_items = Vec::new();
    let mut new_index = Vec::new();
    for (i, a) in articles.iter().enumerate() {
        if known[i].is_some() {
            continue;
        }
        let too_old = first_poll
            && match (a.published, cutoff) {
                (Some(p), Some(c)) => p < c,
                _ => false,
            };
        new_items.push(NewItem {
            article: a,
            authors: serde_json::to_string(&a.authors)?,
            categories: serde_json::to_string(&a.categories)?,
            published: a.published.filter(|p| *p <= now + FUTURE_SLACK).map(ts),
            now: ts(now),
            alertable: !too_old,
            seen_ms: now.timestamp_millis(),
        });
        new_index.push(i);
    }
    let new_ids = rows.insert_all(feed, &new_items)?;
    // Per item: `None` when known, `Some(None)` when new but its primary key existed already.
    let mut inserted: Vec<Option<Option<i64>>> = vec![None; articles.len()];
    for ((i, new), id) in new_index.into_iter().zip(&new_items).zip(new_ids) {
        inserted[i] = Some(id);
        if id.is_some() {
            out.inserted.new += 1;
            if new.alertable {
                out.inserted.alertable += 1;
            }
        }
    }
    for (i, a) in articles.iter().enumerate() {
        let fresh = known[i].is_none();
        let id = match known[i].take() {
            Some((id, before)) => {
                rows.refresh(id, ts(now), a)?;
                if before != a.title {
                    out.retitled += 1;
                }
                if !by_primary[i] {
                    out.churned += 1;
                }
                id
            }
            // The primary key exists without an item_keys row (cannot happen after the
            // migration's backfill); treat it as known.
            None => match inserted[i] {
                Some(Some(id)) => id,
                _ => continue,
            },
        };
        for k in std::iter::once(&a.key).chain(&alternates[i]) {
            rows.add_key(feed, k, id)?;
        }
        // Written when a story is stored or changes: an unchanged listing (most of every poll)
        // costs no write here. (A story stored before loose keys existed gets them when it
        // changes; until then only its own keys know it.)
        if !unchanged[i] {
            for k in &loose[i] {
                // A story stored just now has no keys to drop.
                if !fresh {
                    rows.drop_stale(id, k)?;
                }
                rows.move_key(feed, k, id)?;
            }
        }
    }
    rows.finish()?;
    Ok(out)
}

/// Whether a new item of a feed in full-text `mode` (`MODE_OFF`, `MODE_ALWAYS`, or a word count) waits for its page.
pub(super) fn wants_full_text(mode: i64, a: &Article) -> bool {
    match mode {
        0 => false,
        n if n < 0 => true,
        n => {
            let words = a.summary.split_whitespace().count() + a.content.split_whitespace().count();
            (words as i64) < n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, on_both_backends, poll, t};
    use crate::model::Article;

    /// (hours after the first poll, listed (key, headline), new items)
    type Poll<'a> = (i64, &'a [(&'a str, &'a str)], usize);

    on_both_backends! {
        /// The loose layer's guards, poll by poll.
        fn a_headline_identifies_a_story_only_when_it_cannot_be_two(s) {
            feed(s, "f", "https://example.org/feed");
            let story = |key: &str, title: &str| Article {
                title: title.into(),
                ..art(key, None)
            };
            let long = "Healey meets Hegseth in Washington";
            #[rustfmt::skip]
            let polls: &[Poll<'_>] = &[
                (0, &[("a1", long)], 1),
                // a new guid and link, the same headline, the old one gone: the same story
                (1, &[("a2", long)], 0),
                // the old guid back beside a newcomer with its headline: the headline is not unique
                // in the poll, so the newcomer is a story of its own
                (2, &[("a2", long), ("a3", long)], 1),
                // a short, recurring headline identifies nothing
                (3, &[("b1", "Morning briefing")], 1),
                (4, &[("b2", "Morning briefing")], 1),
                // twelve days after the headline was last listed (past the window): a new story
                (12 * 24, &[("a4", long)], 1),
            ];
            for &(hours, items, want) in polls {
                let now = t("2025-03-10T12:00:00Z") + chrono::Duration::hours(hours);
                let items: Vec<_> = items.iter().map(|(k, h)| story(k, h)).collect();
                let got = poll(s, "f", &items, now, DAY * 365).new;
                assert_eq!(got, want, "poll at hour {hours}");
            }
        }
    }

    on_both_backends! {
        /// What PostgreSQL writes once per poll (issue 17) keeps the rules SQLite applies row
        /// by row: an item listed twice in one poll is one story; an edited headline replaces
        /// the story's old headline key (a key that poll does not list), so a newcomer with the
        /// old headline is a story of its own and one with the new headline is the story.
        fn a_poll_written_at_once_keeps_the_identity_rules(s) {
            feed(s, "f", "https://example.org/feed");
            let story = |key: &str, title: &str| Article {
                title: title.into(),
                ..art(key, None)
            };
            let at = |hours: i64| t("2025-03-10T12:00:00Z") + chrono::Duration::hours(hours);
            let first = "Healey meets Hegseth in Washington";
            let second = "Healey and Hegseth agree on a security backstop";
            assert_eq!(poll(s, "f", &[story("x1", first)], at(0), DAY * 365).new, 1);
            // x1's headline edited, beside a newcomer listed twice
            let edited = [story("x1", second), art("y1", None), art("y1", None)];
            assert_eq!(poll(s, "f", &edited, at(1), DAY * 365).new, 1, "one guid twice");
            let old_headline = poll(s, "f", &[story("x2", first)], at(2), DAY * 365).new;
            assert_eq!(old_headline, 1, "the old headline names no story any more");
            let new_headline = poll(s, "f", &[story("x3", second)], at(3), DAY * 365).new;
            assert_eq!(new_headline, 0, "the new headline names x1");
        }
    }

    on_both_backends! {
        /// A known item listed without its link keeps the stored one; its text is refreshed.
        fn a_listing_without_a_link_keeps_the_stored_link(s) {
            feed(s, "f", "https://example.org/feed");
            let now = t("2025-03-10T12:00:00Z");
            poll(s, "f", &[art("k", None)], now, DAY * 365);
            let bare = Article {
                link: None,
                summary: "edited".into(),
                ..art("k", None)
            };
            poll(s, "f", &[bare], now + chrono::Duration::hours(1), DAY * 365);
            let stored = s.pending_articles().expect("read the stored article");
            assert_eq!(stored.len(), 1);
            let a = &stored[0].article;
            assert_eq!(a.link.as_deref(), Some("https://example.org/k"));
            assert_eq!(a.summary, "edited");
        }
    }

    on_both_backends! {
        fn a_date_far_in_the_future_is_not_believed(s) {
            let now = t("2025-03-10T12:00:00Z");
            feed(s, "f", "https://example.org/feed");
            // (item, its date, the date stored)
            let cases = [
                ("far", "2099-01-01T00:00:00Z", None),
                ("max", "9999-12-31T23:59:59Z", None),
                (
                    "tomorrow",
                    "2025-03-11T06:00:00Z",
                    Some("2025-03-11T06:00:00Z"),
                ),
                ("past", "2025-03-09T06:00:00Z", Some("2025-03-09T06:00:00Z")),
            ];
            let items: Vec<_> = cases.iter().map(|(k, p, _)| art(k, Some(p))).collect();
            // A window of a year, so every item of the first poll is alertable (and pending).
            poll(s, "f", &items, now, DAY * 365);
            let stored = s.pending_articles().expect("read the stored articles");
            for (key, _, want) in cases {
                let a = stored
                    .iter()
                    .find(|p| p.article.key == key)
                    .expect("every item is stored");
                assert_eq!(a.article.published, want.map(t), "{key}");
            }
        }
    }
}
