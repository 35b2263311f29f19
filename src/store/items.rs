//! Item identity across polls: an item is known by its key or by an alternate key (its canonical
//! link) even when its guid churns, its headline is edited or it vanishes and returns; new items
//! join the matcher's to-do list (`unmatched`). Runs inside the caller's poll transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::polls::Inserted;
use super::{StoreError, ts};
use crate::model::Article;
use crate::parse::identity::alternate_keys;

/// A publication date further than this past the time we first see the item is not believed (a
/// feed's 2099 or 9999, a time zone wrong by days): the item is stored undated, so digests order
/// and show it by when we first saw it instead of pinning it to the top of every digest.
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(1);

pub(super) struct Items {
    pub inserted: Inserted,
    pub retitled: usize,
}

/// Stores a poll's items. An item is known when its key or one of its alternate keys (its
/// canonical link, when unique in this poll) is: a known item's `last_seen`, headline and text
/// are refreshed and any new key is remembered, so churning guids keep mapping to it.
pub(super) fn store_items(
    tx: &Transaction<'_>,
    feed: &str,
    articles: &[Article],
    now: DateTime<Utc>,
    first_poll: bool,
    cutoff: Option<DateTime<Utc>>,
) -> Result<Items, StoreError> {
    let mut link_uses: HashMap<String, usize> = HashMap::new();
    for a in articles {
        for k in alternate_keys(a) {
            *link_uses.entry(k).or_default() += 1;
        }
    }
    // A known item's id and stored headline in one lookup.
    let mut find = tx.prepare_cached(
        "SELECT k.article, a.title FROM item_keys k JOIN articles a ON a.id = k.article
         WHERE k.feed = ?1 AND k.key = ?2",
    )?;
    let mut add_key = tx.prepare_cached(
        "INSERT OR IGNORE INTO item_keys (feed, key, article) VALUES (?1, ?2, ?3)",
    )?;
    let mut refresh = tx.prepare_cached(
        "UPDATE articles SET last_seen = ?2, title = ?3, link = COALESCE(?4, link),
             summary = ?5, content = ?6, text_pruned = 0
         WHERE id = ?1",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO articles (feed, key, link, title, summary, content, authors, categories, lang,
                               published, first_seen, last_seen, alertable)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)
         ON CONFLICT (feed, key) DO NOTHING",
    )?;
    let mut out = Items {
        inserted: Inserted::default(),
        retitled: 0,
    };
    for a in articles {
        let mut keys = vec![a.key.clone()];
        keys.extend(
            alternate_keys(a)
                .into_iter()
                .filter(|k| link_uses.get(k) == Some(&1)),
        );
        let mut known = None;
        for k in &keys {
            known = find
                .query_row(params![feed, k], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            if known.is_some() {
                break;
            }
        }
        let id = match known {
            Some((id, before)) => {
                refresh.execute(params![id, ts(now), a.title, a.link, a.summary, a.content])?;
                if before != a.title {
                    out.retitled += 1;
                }
                id
            }
            None => {
                let too_old = first_poll
                    && match (a.published, cutoff) {
                        (Some(p), Some(c)) => p < c,
                        _ => false,
                    };
                let n = insert.execute(params![
                    feed,
                    a.key,
                    a.link,
                    a.title,
                    a.summary,
                    a.content,
                    serde_json::to_string(&a.authors)?,
                    serde_json::to_string(&a.categories)?,
                    a.lang,
                    a.published.filter(|p| *p <= now + FUTURE_SLACK).map(ts),
                    ts(now),
                    !too_old,
                ])?;
                if n == 0 {
                    // The primary key exists without an item_keys row (cannot happen after the
                    // migration's backfill); treat it as known.
                    continue;
                }
                let id = tx.last_insert_rowid();
                out.inserted.new += 1;
                if !too_old {
                    out.inserted.alertable += 1;
                    // In the same transaction as the article: the matcher's to-do list.
                    tx.prepare_cached("INSERT INTO unmatched (article) VALUES (?1)")?
                        .execute([id])?;
                }
                id
            }
        };
        for k in &keys {
            add_key.execute(params![feed, k, id])?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DAY, art, feed, open, poll, t};

    #[test]
    fn a_date_far_in_the_future_is_not_believed() {
        let (_dir, mut s) = open();
        let now = t("2025-03-10T12:00:00Z");
        feed(&mut s, "f", "https://example.org/feed");
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
        poll(&mut s, "f", &items, now, DAY * 365);
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
