//! The `spike_state` table (is each `[[spike]]`'s rule in a surge?) and what spike detection
//! reads: the watched rules' matches with their time and feed (one query per pass), and the
//! surge's newest matches. A spike
//! alert (its email and its channel messages) is written in the composition that records the
//! surge (`ComposeTx::commit_spike`), so a surge is alerted once, whatever is killed when.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::compose::SqliteCompose;
use super::matches::select_matches;
use super::outbox::insert_outbox;
use super::{Sqlite, StoreError, from_ts, ts};
use crate::model::{MatchTimes, NewMessage, PendingMatch};

impl Sqlite {
    /// The matches of `rules` whose article was first seen after `since`, for spike detection:
    /// each rule's (first seen, feed). One query whatever the number of rules, driven by
    /// `articles_first_seen` (an index that covers the article's side) and the matches'
    /// `(article, rule_id)` key, so no article or match row is read.
    pub fn spike_match_times(
        &self,
        rules: &[String],
        since: DateTime<Utc>,
    ) -> Result<MatchTimes, StoreError> {
        let mut out = MatchTimes::default();
        let index: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), i))
            .collect();
        out.rules = vec![Vec::new(); rules.len()];
        let mut feeds: HashMap<String, u32> = HashMap::new();
        // CROSS JOIN keeps the order: the articles of the period first, then their matches.
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.rule_id, a.first_seen, a.feed
             FROM articles a INDEXED BY articles_first_seen CROSS JOIN matches m ON m.article = a.id
             WHERE a.first_seen > ?1",
        )?;
        let mut rows = stmt.query(params![ts(since)])?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?) else {
                continue;
            };
            let feed = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            let f = match feeds.get(feed) {
                Some(&f) => f,
                None => {
                    let f = u32::try_from(out.feeds.len()).unwrap_or(u32::MAX);
                    out.feeds.push(feed.to_string());
                    feeds.insert(feed.to_string(), f);
                    f
                }
            };
            out.rules[i].push((from_ts(r.get(1)?), f));
        }
        Ok(out)
    }

    /// Whether `[[spike]]` `spike` last saw rule `rule` in a surge.
    pub fn spike_surging(&self, spike: &str, rule: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT surging FROM spike_state WHERE spike = ?1 AND rule = ?2",
                params![spike, rule],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Records the rule's state without an alert (a surge that is over).
    pub fn record_spike(
        &mut self,
        spike: &str,
        rule: &str,
        surging: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_state(&self.conn, spike, rule, surging, now)
    }
}

/// The table's one write: the state, and since when it holds.
fn set_state(
    conn: &Connection,
    spike: &str,
    rule: &str,
    surging: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO spike_state (spike, rule, surging, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (spike, rule) DO UPDATE SET
             since = CASE WHEN surging = excluded.surging THEN since ELSE excluded.since END,
             surging = excluded.surging",
        params![spike, rule, surging, ts(now)],
    )?;
    Ok(())
}

/// A surge's alert as `commit_spike` writes it.
#[derive(Debug)]
pub struct SpikeAlert<'a> {
    pub spike: &'a str,
    pub rule: &'a str,
    /// The email (with its digest id, from `next_digest_id`), when the spike has recipients.
    pub email: Option<(i64, &'a NewMessage)>,
    pub channels: &'a [String],
    /// The channel payload (JSON).
    pub payload: &'a str,
}

impl SqliteCompose<'_> {
    /// Rule `rule`'s newest `limit` matches whose article was first seen after `since`, with
    /// what an email shows of them (the surge's headlines), newest first.
    pub(crate) fn gather_surge(
        &mut self,
        rule: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingMatch>, StoreError> {
        let mut rows = select_matches(
            &self.tx,
            "m.id IN (SELECT m2.id FROM matches m2 JOIN articles a2 ON a2.id = m2.article
                      WHERE m2.rule_id = ?1 AND a2.first_seen > ?2
                      ORDER BY a2.first_seen DESC, a2.id DESC LIMIT ?3)",
            params![rule, ts(since), i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        rows.sort_by_key(|m| std::cmp::Reverse((m.first_seen, m.article_id)));
        Ok(rows)
    }

    /// Commits a surge that begins: the rule's state, the email (its digest row of kind
    /// `spike` and its outbox row) and a channel message per channel, in one transaction.
    /// Returns the email's outbox id.
    pub(crate) fn commit_spike(
        self,
        alert: &SpikeAlert<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let tx = self.tx;
        set_state(&tx, alert.spike, alert.rule, true, now)?;
        let mut outbox = None;
        let digest = match alert.email {
            Some((id, message)) => {
                tx.execute(
                    "INSERT INTO digests (id, created, name, kind) VALUES (?1, ?2, ?3, 'spike')",
                    params![id, ts(now), alert.spike],
                )?;
                outbox = Some(insert_outbox(&tx, id, "spike", alert.spike, message, now)?);
                Some(id)
            }
            None => None,
        };
        for channel in alert.channels {
            super::channels::insert(&tx, digest, alert.spike, channel, alert.payload, now)?;
        }
        tx.commit()?;
        Ok(outbox)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ArticleMatches;
    use super::super::testing::{DAY, art, feed, hit, msg, open, poll, store_with_matches, t};
    use super::*;
    use crate::model::OutboxStatus;

    /// A surge's alert is one transaction: dropped before its commit it leaves nothing (no
    /// state, no message); committed, the state, the email (digest row and outbox row of kind
    /// `spike`) and a message per channel, which refers to the email's digest row.
    #[test]
    fn a_spike_alert_commits_whole_or_not_at_all() {
        let (_dir, mut s, now) = store_with_matches();
        let hour_ago = now - chrono::Duration::hours(1);
        {
            let mut tx = s.begin_compose().unwrap();
            let found = tx.gather_surge("minerals", hour_ago, 10).unwrap();
            assert_eq!(found.len(), 1, "the one match of the hour");
            assert_eq!(found[0].rule_id, "minerals");
            // Rendering failed: the handle is dropped.
        }
        assert!(!s.spike_surging("surges", "minerals").unwrap());
        assert!(s.due_channel_messages(now).unwrap().is_empty());

        let tx = s.begin_compose().unwrap();
        let id = tx.next_digest_id().unwrap();
        let message = msg("<spike-1.surges@example.org>");
        let channels = ["hook".to_string(), "room".to_string()];
        let outbox = tx
            .commit_spike(
                &SpikeAlert {
                    spike: "surges",
                    rule: "minerals",
                    email: Some((id, &message)),
                    channels: &channels,
                    payload: "{}",
                },
                now,
            )
            .unwrap()
            .expect("an email");
        assert!(s.spike_surging("surges", "minerals").unwrap());
        let m = s.message(outbox).unwrap();
        assert_eq!(
            (m.message_id.as_str(), m.status),
            ("<spike-1.surges@example.org>", OutboxStatus::Queued)
        );
        let recent = s.recent_digests(5).unwrap();
        assert_eq!(
            (recent[0].kind.as_str(), recent[0].name.as_deref()),
            ("spike", Some("surges"))
        );
        let queued = s.due_channel_messages(now).unwrap();
        assert_eq!(
            queued
                .iter()
                .map(|m| m.channel.as_str())
                .collect::<Vec<_>>(),
            ["hook", "room"]
        );
        assert!(queued.iter().all(|m| m.source == "surges"));
    }

    /// Matches of the asked rules only, of articles first seen after `since`, each with its
    /// feed; a rule without any has an empty list, in the order asked.
    #[test]
    fn spike_match_times_reads_the_asked_rules_of_the_period() {
        let (_dir, mut s) = open();
        let t0 = t("2025-03-10T12:00:00Z");
        let t1 = t0 + chrono::Duration::hours(3);
        feed(&mut s, "a", "https://a.example/feed");
        feed(&mut s, "b", "https://b.example/feed");
        poll(&mut s, "a", &[art("old", None)], t0, DAY);
        poll(&mut s, "a", &[art("a1", None)], t1, DAY);
        poll(&mut s, "b", &[art("b1", None)], t1, DAY);
        let verdicts: Vec<ArticleMatches> = s
            .pending_articles()
            .unwrap()
            .iter()
            .map(|p| ArticleMatches {
                article: p.id,
                matches: vec![
                    ("minerals".to_string(), vec![hit("x")]),
                    ("other".to_string(), vec![hit("x")]),
                ],
            })
            .collect();
        s.record_matches(&verdicts, t1, &HashMap::new(), "rules-v1")
            .unwrap();
        let rules = ["quiet".to_string(), "minerals".to_string()];
        let got = s.spike_match_times(&rules, t0).unwrap();
        assert!(got.rules[0].is_empty(), "no match of `quiet`");
        let mut minerals: Vec<(DateTime<Utc>, &str)> = got.rules[1]
            .iter()
            .map(|&(at, f)| (at, got.feeds[f as usize].as_str()))
            .collect();
        minerals.sort();
        assert_eq!(minerals, [(t1, "a"), (t1, "b")], "not the one seen at t0");
        assert_eq!(got.rules.len(), 2, "`other` was not asked");
    }
}

#[cfg(test)]
mod both_backends {
    use super::super::testing::{msg, on_both_backends, t, with_matches};
    use super::SpikeAlert;

    on_both_backends! {
        /// A rule's match times since a time, its surge's headlines, and a surge that begins
        /// committed with its state, its email and a message per channel; then it calms down.
        fn a_surge_is_recorded_once_with_its_alert(s) {
            let now = with_matches(s);
            let before = now - chrono::Duration::hours(1);
            let rules = ["minerals".to_string()];
            let times = s.spike_match_times(&rules, before).expect("times");
            assert_eq!(times.feeds, ["f"]);
            assert_eq!(times.rules, [vec![(now, 0)]]);
            let none = s.spike_match_times(&rules, now).expect("times");
            assert!(none.rules[0].is_empty());
            assert!(!s.spike_surging("surge", "minerals").expect("state"));
            let mut tx = s.begin_compose().expect("begin");
            let heads = tx.gather_surge("minerals", before, 5).expect("headlines");
            assert_eq!(
                heads.iter().map(|h| h.title.as_str()).collect::<Vec<_>>(),
                ["Title a"]
            );
            let id = tx.next_digest_id().expect("id");
            let message = msg("<spike-1.surge@example.org>");
            let channels = ["ops".to_string(), "chat".to_string()];
            let outbox = tx
                .commit_spike(
                    &SpikeAlert {
                        spike: "surge",
                        rule: "minerals",
                        email: Some((id, &message)),
                        channels: &channels,
                        payload: "{}",
                    },
                    now,
                )
                .expect("commit");
            assert!(outbox.is_some());
            assert!(s.spike_surging("surge", "minerals").expect("state"));
            let queued = s.due_channel_messages(now).expect("due");
            assert_eq!(
                queued.iter().map(|m| (m.channel.as_str(), m.source.as_str())).collect::<Vec<_>>(),
                [("ops", "surge"), ("chat", "surge")]
            );
            let later = t("2025-03-10T13:00:00Z");
            s.record_spike("surge", "minerals", false, later).expect("record");
            assert!(!s.spike_surging("surge", "minerals").expect("state"));
            assert_eq!(s.due_channel_messages(later).expect("due").len(), 2);
        }
    }
}
