//! What one poll writes on PostgreSQL, in one transaction with its feed's other changes: the
//! same books as SQLite's `polls.rs` (items through `pg/items.rs`, validators and schedule,
//! errors, redirects, cadence and health with their notices), decided by the same pure code.
//! Commits skip the WAL flush (`synchronous_commit = off`), as SQLite's poll commits skip the
//! fsync: a lost batch is fetched again, and the outbox's commits flush it with theirs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::conn::CachedTx;
use super::items::store_items;
use super::{Postgres, from_ts, ts, unsigned};
use crate::policy::feed_health::{self, Health, HealthInput, NoticeKind, Thresholds};
use crate::store::polls::{REDIRECT_REPEATS, flood_and_churn, secs, ts_up};
use crate::store::{PollRecord, PollResult, PollStored, StoreError};
use chrono::{DateTime, Utc};

impl Postgres {
    pub(crate) fn record_poll(
        &mut self,
        feed: &str,
        poll: &PollRecord<'_>,
    ) -> Result<PollStored, StoreError> {
        let mut stored = self.record_polls(&[(feed, *poll)])?;
        Ok(stored.pop().unwrap_or_default())
    }

    /// As SQLite's: all or nothing, in order.
    pub(crate) fn record_polls(
        &mut self,
        polls: &[(&str, PollRecord<'_>)],
    ) -> Result<Vec<PollStored>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.cached_transaction()?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let mut unchanged = not_modified_all(&mut tx, polls)?;
        let stored = polls
            .iter()
            .enumerate()
            .map(|(i, (feed, poll))| match unchanged.remove(&i) {
                Some(after) => settle(&mut tx, feed, poll, after, PollStored::default()),
                None => record_poll_in(&mut tx, feed, poll),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let history: Vec<(&str, &PollRecord<'_>, usize)> = polls
            .iter()
            .zip(&stored)
            .map(|((feed, poll), s)| (*feed, poll, s.inserted.new))
            .collect();
        super::poll_history::record_all(&mut tx, &history)?;
        tx.commit()?;
        Ok(stored)
    }
}

/// The feed's columns `assess_health` reads, as each poll's `UPDATE` returns them.
macro_rules! health_inputs {
    () => {
        "health, error_count, failing_since, last_new_item, cadence, cadence_samples"
    };
}

/// The batch's plain 304s (no redirect seen) in one `UPDATE`, by their index in `polls`, with
/// what each returned (`None`: a feed not in the table), when there are several and the batch
/// names each feed once (then their order does not matter); none otherwise. An unchanged cycle
/// is mostly these: one statement per batch instead of one per poll.
fn not_modified_all(
    tx: &mut CachedTx<'_>,
    polls: &[(&str, PollRecord<'_>)],
) -> Result<HashMap<usize, Option<postgres::Row>>, StoreError> {
    let plain: Vec<usize> = polls
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| {
            matches!(
                p.result,
                PollResult::NotModified {
                    permanent_redirect: None
                }
            )
        })
        .map(|(i, _)| i)
        .collect();
    let names: HashSet<&str> = polls.iter().map(|(feed, _)| *feed).collect();
    if plain.len() < 2 || names.len() != polls.len() {
        return Ok(HashMap::new());
    }
    let feeds: Vec<&str> = plain.iter().map(|&i| polls[i].0).collect();
    let at: Vec<i64> = plain.iter().map(|&i| ts(polls[i].1.now)).collect();
    let due: Vec<i64> = plain.iter().map(|&i| ts_up(polls[i].1.next_due)).collect();
    // As the one-poll `UPDATE` below with no redirect seen; the feed's name comes last, after
    // the columns `assess_health` reads by position.
    let rows = tx.query(
        concat!(
            "UPDATE feeds AS f SET last_success = u.at, last_error = NULL, error_count = 0,
                     failing_since = NULL, next_due = u.due, polls = f.polls + 1,
                     redirect_target = NULL, redirect_seen = 0
                 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS u(name, at, due)
                 WHERE f.name = u.name RETURNING ",
            health_inputs!(),
            ", f.name"
        ),
        &[&feeds, &at, &due],
    )?;
    let mut after: HashMap<String, postgres::Row> = rows
        .into_iter()
        .map(|r| (r.get::<_, String>(6), r))
        .collect();
    Ok(plain
        .into_iter()
        .map(|i| (i, after.remove(polls[i].0)))
        .collect())
}

fn record_poll_in(
    tx: &mut CachedTx<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
) -> Result<PollStored, StoreError> {
    let now = poll.now;
    let mut stored = PollStored::default();
    // Each kind of poll is one `UPDATE` of the feed (without a redirect seen, its redirect
    // memory is cleared in the same statement), returning what the health assessment reads.
    let after: Option<postgres::Row> = match poll.result {
        PollResult::Failed { error } => tx.query_opt(
            concat!(
                "UPDATE feeds SET last_error = $2, error_count = error_count + 1,
                         failing_since = COALESCE(failing_since, $3), next_due = $4,
                         polls = polls + 1
                     WHERE name = $1 RETURNING ",
                health_inputs!()
            ),
            &[&feed, &error, &ts(now), &ts_up(poll.next_due)],
        )?,
        PollResult::NotModified { permanent_redirect } => {
            let after = tx.query_opt(
                concat!(
                    "UPDATE feeds SET last_success = $2, last_error = NULL, error_count = 0,
                             failing_since = NULL, next_due = $3, polls = polls + 1,
                             redirect_target = CASE WHEN $4 THEN redirect_target END,
                             redirect_seen = CASE WHEN $4 THEN redirect_seen ELSE 0 END
                         WHERE name = $1 RETURNING ",
                    health_inputs!()
                ),
                &[
                    &feed,
                    &ts(now),
                    &ts_up(poll.next_due),
                    &permanent_redirect.is_some(),
                ],
            )?;
            if permanent_redirect.is_some() {
                stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
            }
            after
        }
        PollResult::Fetched {
            title,
            validators,
            articles,
            hint_ttl,
            permanent_redirect,
        } => {
            let (first_poll, last_new, cadence, full_text): (bool, Option<i64>, Option<i64>, i64) =
                tx.query_opt(
                    "SELECT last_success IS NULL OR catching_up = 1, last_new_item, cadence,
                            full_text
                     FROM feeds WHERE name = $1",
                    &[&feed],
                )?
                .map_or((true, None, None, 0), |r| {
                    (r.get(0), r.get(1), r.get(2), r.get(3))
                });
            let window =
                chrono::Duration::from_std(poll.new_feed_window).unwrap_or(chrono::Duration::MAX);
            let cutoff = now.checked_sub_signed(window);
            let items = store_items(tx, feed, articles, now, first_poll, cutoff, full_text)?;
            stored.inserted = items.inserted;
            stored.retitled = items.retitled;
            let warning = flood_and_churn(&mut stored, items.churned, articles.len(), poll);
            let (cadence, samples_add): (Option<i64>, i64) =
                match (items.inserted.new > 0, last_new) {
                    (true, Some(prev)) => {
                        let gap = Duration::from_secs(u64::try_from(ts(now) - prev).unwrap_or(0));
                        let prev_cadence = cadence
                            .and_then(|c| u64::try_from(c).ok())
                            .map(Duration::from_secs);
                        (Some(secs(feed_health::next_cadence(prev_cadence, gap))), 1)
                    }
                    _ => (cadence, 0),
                };
            let new = i64::try_from(items.inserted.new).unwrap_or(i64::MAX);
            let after = tx.query_opt(
                concat!(
                    "UPDATE feeds SET title = $2, etag = $3, last_modified = $4,
                             last_success = $5, last_error = NULL, error_count = 0,
                             failing_since = NULL, next_due = $6, hint_ttl = $7, catching_up = 0,
                             warning = $8, items_seen = items_seen + $9,
                             last_new_item = CASE WHEN $9 > 0 THEN $5 ELSE last_new_item END,
                             cadence = $10, cadence_samples = cadence_samples + $11,
                             polls = polls + 1,
                             redirect_target = CASE WHEN $12 THEN redirect_target END,
                             redirect_seen = CASE WHEN $12 THEN redirect_seen ELSE 0 END
                         WHERE name = $1 RETURNING ",
                    health_inputs!()
                ),
                &[
                    &feed,
                    &title,
                    &validators.etag.as_deref(),
                    &validators.last_modified.as_deref(),
                    &ts(now),
                    &ts_up(poll.next_due),
                    &hint_ttl.map(secs),
                    &warning,
                    &new,
                    &cadence,
                    &samples_add,
                    &permanent_redirect.is_some(),
                ],
            )?;
            if permanent_redirect.is_some() {
                stored.moved_to = note_redirect(tx, feed, permanent_redirect)?;
            }
            after
        }
    };
    settle(tx, feed, poll, after, stored)
}

/// The rest of a poll once its feed's `UPDATE` returned `after`: its health and notice.
fn settle(
    tx: &mut CachedTx<'_>,
    feed: &str,
    poll: &PollRecord<'_>,
    after: Option<postgres::Row>,
    mut stored: PollStored,
) -> Result<PollStored, StoreError> {
    let now = poll.now;
    // A feed not in the table (never the case in a poll) has no health to keep.
    let Some(after) = after else {
        return Ok(stored);
    };
    let (health, notice, errors) = assess_health(&after, now, &poll.thresholds);
    stored.error_count = errors;
    stored.notice = notice;
    if let Some(kind) = notice {
        let detail = crate::store::polls::notice_detail(kind, poll);
        tx.execute(
            "INSERT INTO feed_notices (feed, kind, at, detail) VALUES ($1, $2, $3, $4)",
            &[&feed, &kind.as_str(), &ts(now), &detail],
        )?;
    }
    // Written only when it changes (most polls leave it as it was).
    if after.get::<_, &str>(0) != health.as_str() {
        tx.execute(
            "UPDATE feeds SET health = $2 WHERE name = $1",
            &[&feed, &health.as_str()],
        )?;
    }
    Ok(stored)
}

/// As SQLite's `note_redirect`: the effective URL moves on the second consecutive sighting.
fn note_redirect(
    tx: &mut CachedTx<'_>,
    feed: &str,
    target: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(target) = target else {
        tx.execute(
            "UPDATE feeds SET redirect_target = NULL, redirect_seen = 0 WHERE name = $1",
            &[&feed],
        )?;
        return Ok(None);
    };
    let row = tx.query_one(
        "SELECT redirect_target, redirect_seen FROM feeds WHERE name = $1",
        &[&feed],
    )?;
    let (previous, seen): (Option<String>, i64) = (row.get(0), row.get(1));
    let seen: u32 = if previous.as_deref() == Some(target) {
        unsigned::<u32>(seen) + 1
    } else {
        1
    };
    if seen >= REDIRECT_REPEATS {
        tx.execute(
            "UPDATE feeds SET effective_url = $2, redirect_target = NULL, redirect_seen = 0
             WHERE name = $1",
            &[&feed, &target],
        )?;
        return Ok(Some(target.to_string()));
    }
    tx.execute(
        "UPDATE feeds SET redirect_target = $2, redirect_seen = $3 WHERE name = $1",
        &[&feed, &target, &i64::from(seen)],
    )?;
    Ok(None)
}

/// The health the feed's columns after its poll (`health_inputs!`, in that order) call for.
fn assess_health(
    r: &postgres::Row,
    now: DateTime<Utc>,
    thresholds: &Thresholds,
) -> (Health, Option<NoticeKind>, u32) {
    let input = HealthInput {
        health: Health::parse(r.get(0)),
        error_count: unsigned(r.get(1)),
        failing_since: r.get::<_, Option<i64>>(2).map(from_ts),
        last_new_item: r.get::<_, Option<i64>>(3).map(from_ts),
        cadence: r
            .get::<_, Option<i64>>(4)
            .and_then(|c| u64::try_from(c).ok())
            .map(Duration::from_secs),
        cadence_samples: unsigned(r.get(5)),
        now,
    };
    let errors = input.error_count;
    let (health, notice) = feed_health::assess(&input, thresholds);
    (health, notice, errors)
}
