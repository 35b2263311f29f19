//! The schema: every migration since the first release, applied in order at open
//! (`PRAGMA user_version` counts them), and the version check. Append only: a shipped migration is
//! never edited. No queries of the data here.

use super::{Sqlite, StoreError};

/// Each entry migrates the schema from version `i` to `i + 1` (`PRAGMA user_version`).
/// Append only: a shipped migration is never edited.
pub(super) const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE feeds (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    title         TEXT,
    etag          TEXT,
    last_modified TEXT,
    last_success  INTEGER,
    last_error    TEXT,
    error_count   INTEGER NOT NULL DEFAULT 0,
    next_due      INTEGER
) STRICT;
CREATE TABLE articles (
    id         INTEGER PRIMARY KEY,
    feed       TEXT NOT NULL REFERENCES feeds(name),
    key        TEXT NOT NULL,
    link       TEXT,
    title      TEXT NOT NULL,
    summary    TEXT NOT NULL,
    content    TEXT NOT NULL,
    authors    TEXT NOT NULL,
    categories TEXT NOT NULL,
    lang       TEXT,
    published  INTEGER,
    first_seen INTEGER NOT NULL,
    alertable  INTEGER NOT NULL,
    matched_at INTEGER,
    UNIQUE (feed, key)
) STRICT;
CREATE INDEX articles_unmatched ON articles(id) WHERE alertable = 1 AND matched_at IS NULL;
CREATE TABLE digests (
    id      INTEGER PRIMARY KEY,
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE matches (
    id      INTEGER PRIMARY KEY,
    article INTEGER NOT NULL REFERENCES articles(id),
    rule_id TEXT NOT NULL,
    hits    TEXT NOT NULL,
    digest  INTEGER REFERENCES digests(id),
    UNIQUE (article, rule_id)
) STRICT;
CREATE INDEX matches_unassigned ON matches(id) WHERE digest IS NULL;
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    digest       INTEGER REFERENCES digests(id),
    digest_name  TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    raw          BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox(next_attempt) WHERE status = 'queued';
",
    // Issue 5, fetching: effective URL after redirects, health, cadence, item identities.
    r"
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
",
    r"
-- issue 4: per-digest assignment (several digests with their own rules and schedules), the last
-- schedule slot each digest served, and alert batching. `matches.digest` stays: the first digest
-- a match went into.
ALTER TABLE matches ADD COLUMN recorded INTEGER;
ALTER TABLE digests ADD COLUMN name TEXT;
ALTER TABLE digests ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest';
ALTER TABLE digests ADD COLUMN slot INTEGER;
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest';
CREATE TABLE digest_items (
    digest_name TEXT NOT NULL,
    match_id    INTEGER NOT NULL REFERENCES matches(id),
    digest      INTEGER NOT NULL REFERENCES digests(id),
    PRIMARY KEY (digest_name, match_id)
) STRICT;
INSERT OR IGNORE INTO digest_items (digest_name, match_id, digest)
    SELECT o.digest_name, m.id, m.digest FROM matches m JOIN outbox o ON o.digest = m.digest;
CREATE TABLE digest_slots (
    name      TEXT PRIMARY KEY,
    last_slot INTEGER NOT NULL
) STRICT;
CREATE TABLE alert_items (
    alert_set TEXT NOT NULL,
    match_id  INTEGER NOT NULL REFERENCES matches(id),
    queued    INTEGER NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'deferred')),
    outbox    INTEGER REFERENCES outbox(id),
    PRIMARY KEY (alert_set, match_id)
) STRICT;
CREATE INDEX alert_items_pending ON alert_items(alert_set) WHERE status = 'pending';
",
    r"
-- issue 6: config/rule reloads of the daemon, for `newswatch status`.
CREATE TABLE reloads (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    applied INTEGER NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
",
    r"
-- issue 7: a digest asks, for every pending match, whether an alert set holds it; the primary
-- key (alert_set, match_id) cannot answer by match alone, so each match scanned alert_items.
CREATE INDEX alert_items_match ON alert_items(match_id, status);
",
    r"
-- issue 7: the matcher's to-do list as its own narrow table. Marking `articles.matched_at`
-- rewrote every article's row (its full text) a second time, into the WAL; now a verdict
-- deletes one small row. `matched_at` is no longer written.
CREATE TABLE unmatched (
    article INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE
) STRICT;
INSERT INTO unmatched (article)
    SELECT id FROM articles WHERE alertable = 1 AND matched_at IS NULL;
DROP INDEX articles_unmatched;
",
    r"
-- issue 7: being in a digest is having a `digest_items` row. Marking `matches.digest` as well
-- rewrote every match row (its hits) once more per digest; it is no longer written, and
-- `digest_items` is asked by match (pruning, `pending_matches`).
CREATE INDEX digest_items_match ON digest_items(match_id);
DROP INDEX matches_unassigned;
",
    r"
-- issue 16: what the last full poll of a feed warned about (a flood of new items, guid churn),
-- for `newswatch status` and the digest's Sources section; NULL when it had nothing to say.
ALTER TABLE feeds ADD COLUMN warning TEXT;
",
    r"
-- issue 13: latency, per article, in milliseconds: first seen (its poll's response), matched, and
-- the alert that carried it accepted by the transport.
ALTER TABLE articles ADD COLUMN seen_ms INTEGER;
ALTER TABLE matches ADD COLUMN matched_ms INTEGER;
ALTER TABLE alert_items ADD COLUMN sent_ms INTEGER;
",
    r"
-- issue 19: messages for [[channel]]s (webhooks, chat, push), written in the transaction that
-- composes their email (or alone, for spikes and `channels test`); the same retry rules as
-- email. `digest` is the composition's digests row (none for a test message).
CREATE TABLE channel_outbox (
    id           INTEGER PRIMARY KEY,
    digest       INTEGER,
    source       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER
) STRICT;
CREATE INDEX channel_outbox_due ON channel_outbox(next_attempt) WHERE status = 'queued';
-- issue 19: whether each [[spike]]'s rule is in a surge (hysteresis: one alert per surge).
CREATE TABLE spike_state (
    spike   TEXT NOT NULL,
    rule    TEXT NOT NULL,
    surging INTEGER NOT NULL,
    since   INTEGER,
    PRIMARY KEY (spike, rule)
) STRICT;
",
    r"
-- issue 20: the language detected from an article's text when its feed declares none
-- (`articles.lang` stays the declared one; `lang:` reads the declared, else the detected).
ALTER TABLE articles ADD COLUMN lang_detected TEXT;
",
    r"
-- issue 20: full text. A feed's mode (0 off, -1 every item, n > 0 items under n words); a new
-- item of such a feed waits in `full_text_queue` instead of `unmatched` until its page is fetched
-- (or failed), then joins `unmatched` with the page's text as its `content`. `full_text_pages`
-- remembers every link fetched, so none is fetched twice.
ALTER TABLE feeds ADD COLUMN full_text INTEGER NOT NULL DEFAULT 0;
ALTER TABLE articles ADD COLUMN full_text INTEGER NOT NULL DEFAULT 0;
CREATE TABLE full_text_queue (
    article INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    link    TEXT NOT NULL
) STRICT;
CREATE TABLE full_text_pages (
    link    TEXT PRIMARY KEY,
    fetched INTEGER NOT NULL,
    outcome TEXT NOT NULL
) STRICT;
",
    r"
-- issue 18: the web console lists matches newest first by rule (`/matches?rule=`, `/rules/{id}`)
-- and counts them per rule and day over the last 14 days (`/`, `/rules`).
CREATE INDEX matches_rule ON matches(rule_id, id);
CREATE INDEX matches_recorded ON matches(recorded);
",
    r"
-- issue 20: WebSub. One row per feed whose document or Link header named a hub: the hub, the
-- topic subscribed to, the callback's random token and the HMAC secret given to the hub, and the
-- subscription's state. `lease_until` is when the hub's grant ends; pushes and forged pushes are
-- counted for `status` and `/metrics`.
CREATE TABLE websub (
    feed           TEXT PRIMARY KEY,
    hub            TEXT NOT NULL,
    topic          TEXT NOT NULL,
    token          TEXT NOT NULL UNIQUE,
    secret         TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'new'
                   CHECK (state IN ('new', 'subscribing', 'active', 'unsubscribing', 'failed')),
    requested_at   INTEGER,
    lease_until    INTEGER,
    next_attempt   INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    last_push      INTEGER,
    pushes         INTEGER NOT NULL DEFAULT 0,
    bad_signatures INTEGER NOT NULL DEFAULT 0
) STRICT;
",
    r"
-- issue 20: a page that failed transiently (5xx, 408, 429, a network error) is fetched again
-- after a back-off, a bounded number of times, before its item is matched on its feed text.
ALTER TABLE full_text_queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE full_text_queue ADD COLUMN next_attempt INTEGER;
",
    r"
-- issue 19: spike detection reads every watched rule's matches of the baseline period in one
-- query, driven by the articles first seen in it: (first_seen, feed) covers the article's side,
-- the matches' (article, rule_id) key the rest, so no wide row is read.
CREATE INDEX articles_first_seen ON articles(first_seen, feed);
",
    r"
-- issue 18: each poll of a feed (the console's feed page), written with the poll, pruned to
-- the last few hundred per feed. `outcome` is fetched, not modified or failed.
CREATE TABLE polls (
    id          INTEGER PRIMARY KEY,
    feed        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    status      INTEGER,
    bytes       INTEGER,
    items       INTEGER,
    new_items   INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    error       TEXT
) STRICT;
CREATE INDEX polls_feed ON polls(feed, id);
",
    r"
-- issue 18: matches per rule and UTC day (`recorded / 86400`), kept by triggers on every insert
-- into and delete from `matches`, so the console's charts and totals read a few hundred rows
-- instead of grouping every match. A match recorded before `recorded` existed counts on day 0.
CREATE TABLE rule_days (
    rule_id TEXT NOT NULL,
    day     INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (rule_id, day)
) STRICT, WITHOUT ROWID;
INSERT INTO rule_days (rule_id, day, n)
    SELECT rule_id, COALESCE(recorded, 0) / 86400, COUNT(*) FROM matches GROUP BY 1, 2;
CREATE TRIGGER rule_days_insert AFTER INSERT ON matches BEGIN
    INSERT INTO rule_days (rule_id, day, n)
        VALUES (NEW.rule_id, COALESCE(NEW.recorded, 0) / 86400, 1)
        ON CONFLICT (rule_id, day) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER rule_days_delete AFTER DELETE ON matches BEGIN
    UPDATE rule_days SET n = n - 1
        WHERE rule_id = OLD.rule_id AND day = COALESCE(OLD.recorded, 0) / 86400;
    DELETE FROM rule_days
        WHERE rule_id = OLD.rule_id AND day = COALESCE(OLD.recorded, 0) / 86400 AND n <= 0;
END;
",
    r"
-- issue 17: the rule set (`RuleSet::fingerprint`) each match was found with, named in the
-- digest; NULL for a match stored before.
ALTER TABLE matches ADD COLUMN rules_hash TEXT;
",
    r"
-- issue 22: item identities are only ever looked up and written by (feed, key). A table keyed
-- by it (WITHOUT ROWID) is one B-tree for the rows and that key, where a rowid table kept two:
-- one write fewer per key stored (about four per new item).
CREATE TABLE item_keys_by_key (
    feed    TEXT NOT NULL,
    key     TEXT NOT NULL,
    article INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    PRIMARY KEY (feed, key)
) STRICT, WITHOUT ROWID;
INSERT INTO item_keys_by_key (feed, key, article) SELECT feed, key, article FROM item_keys;
DROP TABLE item_keys;
ALTER TABLE item_keys_by_key RENAME TO item_keys;
CREATE INDEX item_keys_article ON item_keys(article);
",
];

/// The schema version that has the `websub` table: found by the migration's content, so a
/// renumbering at a merge moves it too.
pub(super) fn websub_version() -> i64 {
    MIGRATIONS
        .iter()
        .position(|m| m.contains("CREATE TABLE websub"))
        .map_or(i64::MAX, |i| i as i64 + 1)
}

/// The schema version that has the channel outbox: found by the migration's content, so a
/// renumbering at a merge moves it too.
pub(super) fn channel_outbox_version() -> i64 {
    MIGRATIONS
        .iter()
        .position(|m| m.contains("CREATE TABLE channel_outbox"))
        .map_or(i64::MAX, |i| i as i64 + 1)
}

/// The schema version that records latencies (`seen_ms`, `matched_ms`, `sent_ms`).
pub(super) const LATENCY_VERSION: i64 = 9;

impl Sqlite {
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::super::testing::fetched;
    use super::super::{DB_FILE, PollResult};
    use super::*;
    use crate::model::{Article, Validators};
    use crate::store::Store;

    fn art(key: &str, title: &str) -> Article {
        Article {
            key: format!("id:{key}"),
            link: Some(format!("https://e.example/{key}")),
            title: title.into(),
            ..Article::default()
        }
    }

    /// The migration to the `unmatched` table carries over exactly the articles the matcher still
    /// owed a verdict: alertable and unmatched; not matched ones, not ones outside the window.
    #[test]
    fn the_matchers_to_do_list_survives_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE unmatched"))
            .expect("the migration");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            for sql in &MIGRATIONS[..before] {
                conn.execute_batch(sql).expect("older schema");
            }
            conn.pragma_update(None, "user_version", before as i64)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO feeds (name, url) VALUES ('f', 'https://e.example/');
                 INSERT INTO articles (id, feed, key, title, summary, content, authors, categories,
                                       first_seen, alertable, matched_at)
                 VALUES (1, 'f', 'a', 'Matched', '', '', '[]', '[]', 1, 1, 5),
                        (2, 'f', 'b', 'Owed', '', '', '[]', '[]', 1, 1, NULL),
                        (3, 'f', 'c', 'Too old', '', '', '[]', '[]', 1, 0, NULL);",
            )
            .expect("rows");
        }
        let store = Store::open(dir.path()).expect("upgrade");
        let owed: Vec<String> = store
            .pending_articles()
            .expect("pending")
            .into_iter()
            .map(|p| p.article.title)
            .collect();
        assert_eq!(owed, ["Owed"]);
    }

    /// The move of `item_keys` into a table keyed by (feed, key) (issue 22) keeps every key and
    /// what it names, and the keys still go with their article.
    #[test]
    fn item_keys_keyed_by_feed_and_key_keep_every_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE item_keys_by_key"))
            .expect("the migration");
        let keys = [
            ("f", "id:a", 1),
            ("f", "url:e.example/a", 1),
            ("g", "id:a", 2),
        ];
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            for sql in &MIGRATIONS[..at] {
                conn.execute_batch(sql).expect("older schema");
            }
            conn.pragma_update(None, "user_version", at as i64)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO feeds (name, url) VALUES ('f', 'https://e.example/'),
                                                      ('g', 'https://g.example/');
                 INSERT INTO articles (id, feed, key, title, summary, content, authors,
                                       categories, first_seen, alertable)
                 VALUES (1, 'f', 'id:a', 'A', '', '', '[]', '[]', 1, 1),
                        (2, 'g', 'id:a', 'B', '', '', '[]', '[]', 1, 1);",
            )
            .expect("rows");
            for (feed, key, article) in keys {
                conn.execute(
                    "INSERT INTO item_keys (feed, key, article) VALUES (?1, ?2, ?3)",
                    rusqlite::params![feed, key, article],
                )
                .expect("key");
            }
        }
        let store = Store::open(dir.path()).expect("upgrade");
        let conn = store.conn();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'item_keys'",
                [],
                |r| r.get(0),
            )
            .expect("table");
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        let read = |conn: &Connection| -> Vec<(String, String, i64)> {
            conn.prepare("SELECT feed, key, article FROM item_keys ORDER BY feed, key")
                .expect("select")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("keys")
        };
        let want: Vec<(String, String, i64)> = keys
            .iter()
            .map(|(f, k, a)| ((*f).to_string(), (*k).to_string(), *a))
            .collect();
        assert_eq!(read(conn), want);
        conn.execute("DELETE FROM articles WHERE id = 1", [])
            .expect("delete");
        assert_eq!(read(conn), want[2..], "the keys go with their article");
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
        let now = chrono::DateTime::from_timestamp(1_772_000_000, 0).expect("valid");
        let mut record = fetched(
            None,
            &v,
            &items,
            now,
            Duration::from_secs(u64::from(u32::MAX)),
        );
        record.result = PollResult::Fetched {
            title: None,
            validators: &v,
            articles: &items,
            hint_ttl: Some(Duration::from_secs(3600)),
            permanent_redirect: None,
        };
        let stored = s.record_poll("f", &record).expect("poll");
        assert_eq!((stored.inserted.new, stored.retitled), (1, 0));
        let rec = s.feed_record("f").ok().flatten().unwrap_or_default();
        assert_eq!(rec.hint_ttl, Some(Duration::from_secs(3600)));
        assert_eq!((rec.items_seen, rec.polls), (2, 1));
    }
}
