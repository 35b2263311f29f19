//! The store's feed side: fetch state that survives a restart (schedule, errors, validators,
//! effective URL after repeated permanent redirects), item identity across guid churn, headline
//! edits and vanishing items, feed-health notices, pruning, and the read-only status view.
//! SQL only; every decision that is not bookkeeping (when next, healthy or not) comes in as data.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::{DB_FILE, Inserted, MIGRATIONS, Store, StoreError, from_ts, ts};
use crate::article::Article;
use crate::fetch::Validators;
use crate::parse::identity::alternate_keys;
use crate::policy::feed_health::{self, Health, HealthInput, NoticeKind, Thresholds};

/// Schema step added by the fetching work (issue 5); appended to `MIGRATIONS`.
pub(super) const MIGRATION: &str = r"
ALTER TABLE feeds ADD COLUMN effective_url TEXT;
ALTER TABLE feeds ADD COLUMN redirect_target TEXT;
ALTER TABLE feeds ADD COLUMN redirect_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN hint_ttl INTEGER;
ALTER TABLE feeds ADD COLUMN failing_since INTEGER;
ALTER TABLE feeds ADD COLUMN last_new_item INTEGER;
ALTER TABLE feeds ADD COLUMN cadence INTEGER;
ALTER TABLE feeds ADD COLUMN cadence_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN health TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE feeds ADD COLUMN catching_up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN items_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN polls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE articles ADD COLUMN last_seen INTEGER;
ALTER TABLE articles ADD COLUMN text_pruned INTEGER NOT NULL DEFAULT 0;
UPDATE articles SET last_seen = first_seen;
UPDATE feeds SET items_seen = (SELECT COUNT(*) FROM articles a WHERE a.feed = feeds.name);
CREATE INDEX articles_last_seen ON articles(last_seen);
CREATE TABLE item_keys (
    feed    TEXT NOT NULL,
    key     TEXT NOT NULL,
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    PRIMARY KEY (feed, key)
) STRICT;
CREATE INDEX item_keys_article ON item_keys(article);
INSERT INTO item_keys (feed, key, article) SELECT feed, key, id FROM articles;
INSERT OR IGNORE INTO item_keys (feed, key, article)
    SELECT feed, 'link:' || link, id FROM articles
    WHERE link IS NOT NULL AND key NOT LIKE 'link:%' ORDER BY id;
CREATE TABLE feed_notices (
    id     INTEGER PRIMARY KEY,
    feed   TEXT NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('failing', 'silent', 'recovered')),
    at     INTEGER NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX feed_notices_at ON feed_notices(at);
";

/// Everything the store knows about one feed's fetching: what the pipeline schedules from and
/// what `newswatch status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedRecord {
    pub name: String,
    /// The URL as configured.
    pub url: String,
    /// Where the feed is fetched from after repeated permanent redirects; `None` = `url`.
    pub effective_url: Option<String>,
    pub title: Option<String>,
    pub validators: Validators,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub error_count: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    /// The feed's own `ttl` / `sy:updatePeriod` from its last full fetch, reused after a 304.
    pub hint_ttl: Option<Duration>,
    pub last_new_item: Option<DateTime<Utc>>,
    pub health: Health,
    /// Items ever stored for this feed (pruning does not lower it).
    pub items_seen: u64,
    pub polls: u64,
}

/// How one poll ended, as the store records it.
#[derive(Debug, Clone, Copy)]
pub enum PollResult<'a> {
    Fetched {
        title: Option<&'a str>,
        validators: &'a Validators,
        articles: &'a [Article],
        /// The feed's own refresh hint (longest of `ttl` and `sy:updatePeriod`).
        hint_ttl: Option<Duration>,
        /// Where a leading run of 301/308 led this time.
        permanent_redirect: Option<&'a str>,
    },
    NotModified {
        permanent_redirect: Option<&'a str>,
    },
    Failed {
        error: &'a str,
    },
}

/// One poll to record, with the decisions the pipeline made about it.
#[derive(Debug, Clone, Copy)]
pub struct PollRecord<'a> {
    pub result: PollResult<'a>,
    pub now: DateTime<Utc>,
    pub next_due: DateTime<Utc>,
    /// When to poll again if this poll brought more new items than `max_new`: soon, so the
    /// backlog drains at the politeness floor rather than waiting a full interval.
    pub catch_up_due: DateTime<Utc>,
    pub new_feed_window: Duration,
    /// New items taken in one poll; the rest wait for the next poll.
    pub max_new: usize,
    pub thresholds: Thresholds,
}

/// What recording one poll changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollStored {
    pub inserted: Inserted,
    /// Known items whose headline changed (updated in place, not re-alerted).
    pub retitled: usize,
    /// New items left for the next poll because of the per-poll cap.
    pub deferred: usize,
    /// Set when this poll made a permanent redirect stick: the new effective URL.
    pub moved_to: Option<String>,
    /// A health notice this poll produced.
    pub notice: Option<NoticeKind>,
    pub error_count: u32,
}

/// An operator notice about a feed, for logs and the digest's "sources" section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedNotice {
    pub id: i64,
    pub feed: String,
    pub kind: NoticeKind,
    pub at: DateTime<Utc>,
    pub detail: String,
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Articles whose summary and content were dropped (identity kept).
    pub texts: usize,
    /// Articles forgotten entirely, identity and all.
    pub identities: usize,
}

/// Row counts, for status and for tests that the database stays bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub articles: u64,
    /// Articles whose text is still stored.
    pub texts: u64,
    pub item_keys: u64,
    pub matches: u64,
    pub notices: u64,
}

/// A digest as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestInfo {
    pub id: i64,
    pub created: DateTime<Utc>,
    pub emails: u64,
    pub sent: u64,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn minus(now: DateTime<Utc>, d: Duration) -> i64 {
    ts(now).saturating_sub(secs(d))
}

const RECORD_COLUMNS: &str = "name, url, effective_url, title, etag, last_modified, last_success,
    last_error, error_count, failing_since, next_due, hint_ttl, last_new_item, health, items_seen,
    polls";

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRecord> {
    Ok(FeedRecord {
        name: r.get(0)?,
        url: r.get(1)?,
        effective_url: r.get(2)?,
        title: r.get(3)?,
        validators: Validators {
            etag: r.get(4)?,
            last_modified: r.get(5)?,
        },
        last_success: r.get::<_, Option<i64>>(6)?.map(from_ts),
        last_error: r.get(7)?,
        error_count: r.get(8)?,
        failing_since: r.get::<_, Option<i64>>(9)?.map(from_ts),
        next_due: r.get::<_, Option<i64>>(10)?.map(from_ts),
        hint_ttl: r
            .get::<_, Option<i64>>(11)?
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        last_new_item: r.get::<_, Option<i64>>(12)?.map(from_ts),
        health: Health::parse(&r.get::<_, String>(13)?),
        items_seen: r.get(14)?,
        polls: r.get(15)?,
    })
}

impl Store {
    /// Opens an existing database for reading only (`newswatch status`): no directory is made,
    /// no migration runs, nothing is written.
    pub fn open_read_only(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        let store = Store { conn };
        let found = store.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found < known {
            return Err(StoreError::TooOld { found, known });
        }
        Ok(store)
    }

    /// The fetch state of one feed.
    pub fn feed_record(&self, name: &str) -> Result<Option<FeedRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds WHERE name = ?1");
        Ok(self.conn.query_row(&sql, [name], read_record).optional()?)
    }

    /// Every feed the database knows, by name.
    pub fn feed_records(&self) -> Result<Vec<FeedRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM feeds ORDER BY name");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records one poll in one transaction: items (new, known, retitled), schedule, errors,
    /// validators, redirect bookkeeping and health.
    pub fn record_poll(
        &mut self,
        feed: &str,
        poll: &PollRecord<'_>,
    ) -> Result<PollStored, StoreError> {
        let mut stored = self.record_polls(&[(feed, *poll)])?;
        Ok(stored.pop().unwrap_or_default())
    }

    /// Records several feeds' polls in one transaction (group commit: one WAL sync for the
    /// lot), in order; what each changed, in the same order. All or nothing: on an error
    /// nothing of the batch is stored, so no feed ever has its new items without its new
    /// validators and state, or the reverse.
    pub fn record_polls(
        &mut self,
        polls: &[(&str, PollRecord<'_>)],
    ) -> Result<Vec<PollStored>, StoreError> {
        // No fsync of its own: a batch lost to a power cut takes its articles and the feeds'
        // new validators with it, so the feeds are fetched again and nothing is missed; nothing
        // leaves the process (an email) before a later FULL commit has made this one durable.
        self.relaxed(|conn| {
            let tx = conn.transaction()?;
            let stored = polls
                .iter()
                .map(|(feed, poll)| record_poll_in(&tx, feed, poll))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(stored)
        })
    }

    /// Notices recorded at or after `since`, oldest first: the digest's "sources" section shows
    /// the ones since its previous digest.
    pub fn feed_notices(&self, since: DateTime<Utc>) -> Result<Vec<FeedNotice>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, feed, kind, at, detail FROM feed_notices WHERE at >= ?1 ORDER BY at, id",
        )?;
        let rows = stmt.query_map([ts(since)], |r| {
            Ok(FeedNotice {
                id: r.get(0)?,
                feed: r.get(1)?,
                kind: NoticeKind::parse(&r.get::<_, String>(2)?),
                at: from_ts(r.get(3)?),
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops article text not seen for `retention`, and whole identities not seen for
    /// `keep_identities`. An article still waiting for the matcher or for a digest is kept.
    ///
    /// Why identities outlive text: an item pruned while still listed in its feed would come back
    /// as "new". `last_seen` moves on every poll that lists the item, so an identity is forgotten
    /// only after its feed stopped listing it `keep_identities` ago.
    pub fn prune(
        &mut self,
        now: DateTime<Utc>,
        retention: Duration,
        keep_identities: Duration,
    ) -> Result<Pruned, StoreError> {
        let tx = self.conn.transaction()?;
        // Settled: matched (or never alertable), in a digest, and not waiting in an alert batch.
        let settled = "NOT EXISTS (SELECT 1 FROM unmatched u WHERE u.article = a.id)
            AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.article = a.id AND m.digest IS NULL
                            AND NOT EXISTS (SELECT 1 FROM digest_items di
                                            WHERE di.match_id = m.id))
            AND NOT EXISTS (SELECT 1 FROM alert_items ai JOIN matches m ON m.id = ai.match_id
                            WHERE m.article = a.id AND ai.status = 'pending')";
        let texts = tx.execute(
            &format!(
                "UPDATE articles AS a SET summary = '', content = '', text_pruned = 1
                 WHERE a.text_pruned = 0 AND a.last_seen < ?1 AND {settled}"
            ),
            [minus(now, retention)],
        )?;
        let cutoff = minus(now, keep_identities);
        // The identities to forget, decided once: deleting their digest bookkeeping below would
        // otherwise make their matches look "in no digest" again half-way through.
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_gone (article INTEGER PRIMARY KEY);
             DELETE FROM temp.prune_gone;",
        )?;
        tx.execute(
            &format!(
                "INSERT INTO temp.prune_gone (article)
                 SELECT a.id FROM articles a WHERE a.last_seen < ?1 AND {settled}"
            ),
            [cutoff],
        )?;
        // The digest and alert bookkeeping of a forgotten match goes with it (foreign keys).
        for table in ["digest_items", "alert_items"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE match_id IN
                       (SELECT m.id FROM matches m WHERE m.article IN
                          (SELECT article FROM temp.prune_gone))"
                ),
                [],
            )?;
        }
        tx.execute(
            "DELETE FROM matches WHERE article IN (SELECT article FROM temp.prune_gone)",
            [],
        )?;
        let identities = tx.execute(
            "DELETE FROM articles WHERE id IN (SELECT article FROM temp.prune_gone)",
            [],
        )?;
        tx.execute("DELETE FROM temp.prune_gone", [])?;
        tx.execute("DELETE FROM feed_notices WHERE at < ?1", [cutoff])?;
        tx.commit()?;
        Ok(Pruned { texts, identities })
    }

    pub fn row_counts(&self) -> Result<RowCounts, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        Ok(RowCounts {
            articles: count("SELECT COUNT(*) FROM articles")?,
            texts: count("SELECT COUNT(*) FROM articles WHERE text_pruned = 0")?,
            item_keys: count("SELECT COUNT(*) FROM item_keys")?,
            matches: count("SELECT COUNT(*) FROM matches")?,
            notices: count("SELECT COUNT(*) FROM feed_notices")?,
        })
    }

    /// The newest `limit` digests with how many of their emails were composed and sent.
    /// When digest `name` was last composed, if ever: its "sources" section shows the feed
    /// notices raised since then, each once.
    pub fn last_digest_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = self.conn.query_row(
            "SELECT MAX(created) FROM digests WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        Ok(at.map(from_ts))
    }

    pub fn recent_digests(&self, limit: usize) -> Result<Vec<DigestInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.created, COUNT(o.id), COUNT(o.sent)
             FROM digests d LEFT JOIN outbox o ON o.digest = d.id
             GROUP BY d.id ORDER BY d.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(DigestInfo {
                id: r.get(0)?,
                created: from_ts(r.get(1)?),
                emails: r.get(2)?,
                sent: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One feed's poll, inside the caller's transaction.
fn record_poll_in(
    tx: &Transaction<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
) -> Result<PollStored, StoreError> {
    let now = poll.now;

    let mut stored = PollStored::default();
    match poll.result {
        PollResult::Failed { error } => {
            tx.prepare_cached(
                "UPDATE feeds SET last_error = ?2, error_count = error_count + 1,
                         failing_since = COALESCE(failing_since, ?3), next_due = ?4,
                         polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![feed, error, ts(now), ts(poll.next_due)])?;
        }
        PollResult::NotModified { permanent_redirect } => {
            tx.prepare_cached(
                "UPDATE feeds SET last_success = ?2, last_error = NULL, error_count = 0,
                         failing_since = NULL, next_due = ?3, polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![feed, ts(now), ts(poll.next_due)])?;
            stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
        }
        PollResult::Fetched {
            title,
            validators,
            articles,
            hint_ttl,
            permanent_redirect,
        } => {
            let (first_poll, last_new, cadence): (bool, Option<i64>, Option<i64>) = tx
                .prepare_cached(
                    "SELECT last_success IS NULL OR catching_up = 1, last_new_item, cadence
                         FROM feeds WHERE name = ?1",
                )?
                .query_row([feed], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .unwrap_or((true, None, None));
            let window =
                chrono::Duration::from_std(poll.new_feed_window).unwrap_or(chrono::Duration::MAX);
            let cutoff = now.checked_sub_signed(window);
            let items = store_items(tx, feed, articles, now, first_poll, cutoff, poll.max_new)?;
            stored.inserted = items.inserted;
            stored.retitled = items.retitled;
            stored.deferred = items.deferred;
            // A capped poll forgets its validators: a 304 next time would hide the backlog.
            let capped = items.deferred > 0;
            let (etag, last_modified) = if capped {
                (None, None)
            } else {
                (
                    validators.etag.as_deref(),
                    validators.last_modified.as_deref(),
                )
            };
            let next_due = if capped {
                poll.catch_up_due
            } else {
                poll.next_due
            };
            let news = items.inserted.new > 0;
            let (cadence, samples_add) = match (news, last_new) {
                (true, Some(prev)) => {
                    let gap = Duration::from_secs(u64::try_from(ts(now) - prev).unwrap_or(0));
                    let prev_cadence = cadence
                        .and_then(|c| u64::try_from(c).ok())
                        .map(Duration::from_secs);
                    (Some(secs(feed_health::next_cadence(prev_cadence, gap))), 1)
                }
                _ => (cadence, 0),
            };
            tx.prepare_cached(
                "UPDATE feeds SET title = ?2, etag = ?3, last_modified = ?4, last_success = ?5,
                         last_error = NULL, error_count = 0, failing_since = NULL, next_due = ?6,
                         hint_ttl = ?7, catching_up = ?8, items_seen = items_seen + ?9,
                         last_new_item = CASE WHEN ?9 > 0 THEN ?5 ELSE last_new_item END,
                         cadence = ?10, cadence_samples = cadence_samples + ?11,
                         polls = polls + 1
                     WHERE name = ?1",
            )?
            .execute(params![
                feed,
                title,
                etag,
                last_modified,
                ts(now),
                ts(next_due),
                hint_ttl.map(secs),
                first_poll && capped,
                items.inserted.new as i64,
                cadence,
                samples_add,
            ])?;
            stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
        }
    }
    let (health, notice, errors) = assess_health(tx, feed, now, &poll.thresholds)?;
    stored.error_count = errors;
    stored.notice = notice;
    if let Some(kind) = notice {
        let detail = match (kind, poll.result) {
            (NoticeKind::Failing, PollResult::Failed { error }) => error.to_string(),
            (NoticeKind::Silent, _) => "nothing new for much longer than usual".to_string(),
            _ => String::new(),
        };
        tx.prepare_cached(
            "INSERT INTO feed_notices (feed, kind, at, detail) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![feed, kind.as_str(), ts(now), detail])?;
    }
    tx.prepare_cached("UPDATE feeds SET health = ?2 WHERE name = ?1")?
        .execute(params![feed, health.as_str()])?;
    Ok(stored)
}

/// A 301/308 target seen this poll: moves the effective URL once the same target was seen on two
/// successful polls in a row. No permanent redirect this time resets the count.
fn note_redirect(
    tx: &Transaction<'_>,
    feed: &str,
    target: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(target) = target else {
        tx.prepare_cached(
            "UPDATE feeds SET redirect_target = NULL, redirect_seen = 0 WHERE name = ?1",
        )?
        .execute([feed])?;
        return Ok(None);
    };
    let (previous, seen): (Option<String>, u32) = tx
        .prepare_cached("SELECT redirect_target, redirect_seen FROM feeds WHERE name = ?1")?
        .query_row([feed], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let seen = if previous.as_deref() == Some(target) {
        seen + 1
    } else {
        1
    };
    if seen >= REDIRECT_REPEATS {
        tx.prepare_cached(
            "UPDATE feeds SET effective_url = ?2, redirect_target = NULL, redirect_seen = 0
             WHERE name = ?1",
        )?
        .execute(params![feed, target])?;
        return Ok(Some(target.to_string()));
    }
    tx.prepare_cached("UPDATE feeds SET redirect_target = ?2, redirect_seen = ?3 WHERE name = ?1")?
        .execute(params![feed, target, seen])?;
    Ok(None)
}

/// Consecutive polls that must see the same permanent redirect before the stored URL moves: one
/// misconfigured response should not relocate a feed for good.
pub const REDIRECT_REPEATS: u32 = 2;

fn assess_health(
    tx: &Transaction<'_>,
    feed: &str,
    now: DateTime<Utc>,
    thresholds: &Thresholds,
) -> Result<(Health, Option<NoticeKind>, u32), StoreError> {
    let input = tx
        .prepare_cached(
            "SELECT health, error_count, failing_since, last_new_item, cadence, cadence_samples
             FROM feeds WHERE name = ?1",
        )?
        .query_row([feed], |r| {
            Ok(HealthInput {
                health: Health::parse(&r.get::<_, String>(0)?),
                error_count: r.get(1)?,
                failing_since: r.get::<_, Option<i64>>(2)?.map(from_ts),
                last_new_item: r.get::<_, Option<i64>>(3)?.map(from_ts),
                cadence: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(|c| u64::try_from(c).ok())
                    .map(Duration::from_secs),
                cadence_samples: r.get(5)?,
                now,
            })
        })
        .optional()?;
    let Some(input) = input else {
        return Ok((Health::Ok, None, 0));
    };
    let errors = input.error_count;
    let (health, notice) = feed_health::assess(&input, thresholds);
    Ok((health, notice, errors))
}

struct Items {
    inserted: Inserted,
    retitled: usize,
    deferred: usize,
}

/// Stores a poll's items. An item is known when its key or one of its alternate keys (its
/// canonical link, when unique in this poll) is: a known item's `last_seen`, headline and text
/// are refreshed and any new key is remembered, so churning guids keep mapping to it.
fn store_items(
    tx: &Transaction<'_>,
    feed: &str,
    articles: &[Article],
    now: DateTime<Utc>,
    first_poll: bool,
    cutoff: Option<DateTime<Utc>>,
    max_new: usize,
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
        deferred: 0,
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
            None if out.inserted.new >= max_new => {
                out.deferred += 1;
                continue;
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
                    a.published.map(ts),
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
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn art(key: &str, title: &str) -> Article {
        Article {
            key: format!("id:{key}"),
            link: Some(format!("https://e.example/{key}")),
            title: title.into(),
            ..Article::default()
        }
    }

    fn poll<'a>(result: PollResult<'a>, h: i64) -> PollRecord<'a> {
        PollRecord {
            result,
            now: t(h),
            next_due: t(h + 1),
            catch_up_due: t(h),
            new_feed_window: Duration::from_secs(u64::from(u32::MAX)),
            max_new: 100,
            thresholds: Thresholds::default(),
        }
    }

    fn not_modified(redirect: Option<&str>, h: i64) -> PollRecord<'_> {
        poll(
            PollResult::NotModified {
                permanent_redirect: redirect,
            },
            h,
        )
    }

    #[test]
    fn redirects_move_the_url_only_on_consecutive_repeats_and_a_config_edit_resets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        s.ensure_feed("f", "https://old.example/feed")
            .expect("feed");
        let (a, b) = (
            Some("https://a.example/feed"),
            Some("https://b.example/feed"),
        );
        // (redirect seen this poll, effective URL afterwards)
        let steps = [
            (a, None),
            (None, None), // the run is broken
            (a, None),
            (b, None), // a different target starts over
            (b, b),
            (None, b), // once moved, it stays
        ];
        for (i, (redirect, want)) in steps.into_iter().enumerate() {
            let moved = s
                .record_poll("f", &not_modified(redirect, i as i64))
                .expect("poll");
            let rec = s.feed_record("f").expect("read").expect("row");
            assert_eq!(rec.effective_url.as_deref(), want, "step {i}");
            assert_eq!(moved.moved_to.is_some(), i == 4, "step {i}");
        }
        s.ensure_feed("f", "https://old.example/feed")
            .expect("same url");
        assert_eq!(
            s.feed_record("f")
                .ok()
                .flatten()
                .and_then(|r| r.effective_url)
                .as_deref(),
            b
        );
        s.ensure_feed("f", "https://new.example/feed")
            .expect("edited url");
        assert_eq!(
            s.feed_record("f")
                .ok()
                .flatten()
                .and_then(|r| r.effective_url),
            None
        );
    }

    #[test]
    fn a_version_1_database_upgrades_without_realerting() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("v1");
            conn.execute_batch(MIGRATIONS[0]).expect("schema v1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO feeds (name, url, last_success) VALUES ('f', 'https://e.example/', 1);
                 INSERT INTO articles (feed, key, link, title, summary, content, authors,
                                       categories, first_seen, alertable, matched_at)
                 VALUES ('f', 'id:a', 'https://e.example/a', 'Old', '', '', '[]', '[]', 1, 1, 1);",
            )
            .expect("v1 rows");
        }
        let mut s = Store::open(dir.path()).expect("migrate");
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        assert_eq!(
            s.feed_record("f").ok().flatten().map(|r| r.items_seen),
            Some(1)
        );
        // The old item with a churned guid, and one new item.
        let churned = Article {
            key: "id:a-churned".into(),
            ..art("a", "Old")
        };
        let items = [churned, art("b", "New")];
        let v = Validators::default();
        let fetched = PollResult::Fetched {
            title: None,
            validators: &v,
            articles: &items,
            hint_ttl: Some(Duration::from_secs(3600)),
            permanent_redirect: None,
        };
        let stored = s.record_poll("f", &poll(fetched, 0)).expect("poll");
        assert_eq!((stored.inserted.new, stored.retitled), (1, 0));
        let rec = s.feed_record("f").ok().flatten().unwrap_or_default();
        assert_eq!(rec.hint_ttl, Some(Duration::from_secs(3600)));
        assert_eq!((rec.items_seen, rec.polls), (2, 1));
    }

    #[test]
    fn a_batch_of_polls_is_stored_whole_or_not_at_all() {
        let feeds = ["a", "b", "c"];
        // (feed whose state update fails, articles and etag stored per feed afterwards)
        let whole = (2, Some("\"v\"".to_string()));
        let none = (0, None);
        let cases = [
            (None, [whole.clone(), whole.clone(), whole]),
            (Some("a"), [none.clone(), none.clone(), none.clone()]),
            (Some("c"), [none.clone(), none.clone(), none]),
        ];
        for (failing, want) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut s = Store::open(dir.path()).expect("open");
            for f in feeds {
                s.ensure_feed(f, &format!("https://{f}.example/"))
                    .expect("feed");
            }
            if let Some(f) = failing {
                s.conn
                    .execute_batch(&format!(
                        "CREATE TRIGGER tear BEFORE UPDATE ON feeds
                         WHEN NEW.name = '{f}' AND NEW.etag IS NOT NULL
                         BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                    ))
                    .expect("trigger");
            }
            let items = [art("x", "One"), art("y", "Two")];
            let v = Validators {
                etag: Some("\"v\"".into()),
                last_modified: None,
            };
            let fetched = PollResult::Fetched {
                title: None,
                validators: &v,
                articles: &items,
                hint_ttl: None,
                permanent_redirect: None,
            };
            let polls: Vec<(&str, PollRecord<'_>)> =
                feeds.iter().map(|f| (*f, poll(fetched, 0))).collect();
            let result = s.record_polls(&polls);
            match failing {
                None => {
                    let news: Vec<usize> = result
                        .expect("batch")
                        .iter()
                        .map(|p| p.inserted.new)
                        .collect();
                    assert_eq!(news, [2, 2, 2]);
                }
                Some(f) => assert!(result.is_err(), "failing {f}: the error was lost"),
            }
            for (f, want) in feeds.iter().zip(want) {
                let stored: usize = s
                    .conn
                    .query_row("SELECT COUNT(*) FROM articles WHERE feed = ?1", [f], |r| {
                        r.get(0)
                    })
                    .expect("count");
                let etag = s
                    .feed_record(f)
                    .ok()
                    .flatten()
                    .and_then(|r| r.validators.etag);
                assert_eq!((stored, etag), want, "failing {failing:?}, feed {f}");
            }
        }
    }

    /// A store in a temp dir holding one fetched, not yet matched article.
    fn one_stored_article() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        s.ensure_feed("f", "https://e.example/").expect("feed");
        let items = [art("a", "Stored")];
        let v = Validators::default();
        let fetched = PollResult::Fetched {
            title: None,
            validators: &v,
            articles: &items,
            hint_ttl: None,
            permanent_redirect: None,
        };
        s.record_poll("f", &poll(fetched, 0)).expect("poll");
        (dir, s)
    }

    #[test]
    fn pruning_spares_articles_still_owed_to_the_matcher() {
        let (_dir, mut s) = one_stored_article();
        let day = Duration::from_secs(86_400);
        let later = t(24 * 400);
        assert_eq!(s.prune(later, day, day).expect("prune"), Pruned::default());
        let pending = s.pending_articles().expect("pending");
        let verdict = [crate::store::ArticleMatches {
            article: pending[0].id,
            matches: Vec::new(),
        }];
        s.record_matches(&verdict, later).expect("match");
        assert_eq!(
            s.prune(later, day, day).expect("prune"),
            Pruned {
                texts: 1,
                identities: 1
            }
        );
        assert_eq!(s.row_counts().expect("counts"), RowCounts::default());
    }

    /// A match keeps its article until a digest has carried it (a `digest_items` row).
    #[test]
    fn pruning_spares_articles_whose_match_no_digest_has_carried() {
        let (_dir, mut s) = one_stored_article();
        let (day, later) = (Duration::from_secs(86_400), t(24 * 400));
        let pending = s.pending_articles().expect("pending");
        let verdict = [crate::store::ArticleMatches {
            article: pending[0].id,
            matches: vec![("r".to_string(), Vec::new())],
        }];
        s.record_matches(&verdict, later).expect("match");
        assert_eq!(s.prune(later, day, day).expect("prune"), Pruned::default());
        s.conn
            .execute_batch(
                "INSERT INTO digests (id, created, name) VALUES (1, 0, 'd');
                 INSERT INTO digest_items (digest_name, match_id, digest)
                     SELECT 'd', id, 1 FROM matches;",
            )
            .expect("carried by a digest");
        assert_eq!(
            s.prune(later, day, day).expect("prune"),
            Pruned {
                texts: 1,
                identities: 1
            }
        );
    }
}
