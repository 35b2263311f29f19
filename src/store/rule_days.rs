//! The `rule_days` table: matches per rule and UTC day, kept by the schema's triggers on
//! `matches` (no Rust writes it), read for the console's per-rule charts and totals. A read of
//! it costs the rules × days it holds, not the matches.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::console::RuleCounts;
use super::{Sqlite, StoreError, ts};

const DAY: i64 = 86_400;

impl Sqlite {
    /// Stored matches per rule, by rule id: the total, and per UTC day for the `days` days up to
    /// `now`'s (`daily[0]` is today so far, `daily[1]` yesterday, …).
    pub fn rule_counts(
        &self,
        now: DateTime<Utc>,
        days: usize,
    ) -> Result<Vec<RuleCounts>, StoreError> {
        let mut totals = self.conn.prepare_cached(
            "SELECT rule_id, SUM(n) FROM rule_days GROUP BY rule_id ORDER BY rule_id",
        )?;
        let mut out: Vec<RuleCounts> = totals
            .query_map([], |r| {
                Ok(RuleCounts {
                    rule_id: r.get(0)?,
                    total: r.get::<_, i64>(1)?.max(0).cast_unsigned(),
                    daily: vec![0; days],
                })
            })?
            .collect::<Result<_, _>>()?;
        let today = ts(now).div_euclid(DAY);
        let mut daily = self.conn.prepare_cached(
            "SELECT rule_id, ?1 - day, n FROM rule_days WHERE day <= ?1 AND day > ?1 - ?2",
        )?;
        let rows = daily.query_map(
            params![today, i64::try_from(days).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (rule, day, n) = row?;
            let Ok(i) = out.binary_search_by(|c| c.rule_id.as_str().cmp(&rule)) else {
                continue;
            };
            if let Some(slot) = usize::try_from(day)
                .ok()
                .and_then(|d| out[i].daily.get_mut(d))
            {
                *slot = n.max(0).cast_unsigned();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::testing::{DAY as ONE_DAY, art, feed, hit, poll, t};
    use super::super::{ArticleMatches, Store};

    /// Polls new articles `keys` into feed `f` at `now` and matches each with `rules`.
    fn matched(s: &mut Store, keys: &[&str], rules: &[&str], now: chrono::DateTime<chrono::Utc>) {
        let items: Vec<_> = keys.iter().map(|k| art(k, None)).collect();
        poll(s, "f", &items, now, ONE_DAY);
        let results: Vec<ArticleMatches> = s
            .pending_articles()
            .expect("pending")
            .iter()
            .map(|p| ArticleMatches {
                article: p.id,
                matches: rules
                    .iter()
                    .map(|r| ((*r).to_string(), vec![hit("x")]))
                    .collect(),
            })
            .collect();
        s.record_matches(&results, now, &HashMap::new(), "rules-v1")
            .expect("matches");
    }

    use super::super::testing::on_both_backends;

    on_both_backends! {
        /// SQLite's triggers and PostgreSQL's count the same days.
        fn counts_follow_every_insert_by_utc_day(s) {
            feed(s, "f", "https://e.example/f.xml");
            matched(
                s,
                &["a", "b"],
                &["ceasefire"],
                t("2026-03-01T23:00:00Z"),
            );
            matched(
                s,
                &["c"],
                &["ceasefire", "minerals"],
                t("2026-03-03T01:00:00Z"),
            );
            matched(s, &["d"], &["minerals"], t("2026-03-03T09:00:00Z"));
            let now = t("2026-03-03T12:00:00Z");
            let counts = s.rule_counts(now, 3).expect("counts");
            let by: Vec<(&str, u64, &[u64])> = counts
                .iter()
                .map(|c| (c.rule_id.as_str(), c.total, c.daily.as_slice()))
                .collect();
            assert_eq!(
                by,
                [
                    ("ceasefire", 3, &[1, 0, 2][..]),
                    ("minerals", 2, &[2, 0, 0][..])
                ]
            );
            // Past the window: totals stay, the days have moved on.
            let later = s.rule_counts(t("2026-03-10T00:00:00Z"), 3).expect("counts");
            assert_eq!((later[0].total, later[0].daily.clone()), (3, vec![0, 0, 0]));
        }
    }

    /// PostgreSQL's delete trigger: matches forgotten (pruning) leave the counts, whole
    /// statements at a time, and a day counted down to nothing leaves the table.
    #[test]
    fn postgres_counts_follow_deletes() {
        let settings = super::super::testing::postgres::fresh_database("node-days");
        let mut s = Store::open_postgres(&settings).expect("open");
        feed(&mut s, "f", "https://e.example/f.xml");
        matched(
            &mut s,
            &["a", "b"],
            &["ceasefire", "minerals"],
            t("2026-03-01T10:00:00Z"),
        );
        let mut db = postgres::Client::connect(&settings.url, postgres::NoTls).expect("connect");
        db.execute(
            "DELETE FROM matches WHERE rule_id = 'minerals' OR article = (SELECT MIN(article) FROM matches)",
            &[],
        )
        .expect("delete");
        let counts = s.rule_counts(t("2026-03-01T12:00:00Z"), 1).expect("counts");
        let by: Vec<(&str, u64, &[u64])> = counts
            .iter()
            .map(|c| (c.rule_id.as_str(), c.total, c.daily.as_slice()))
            .collect();
        assert_eq!(by, [("ceasefire", 1, &[1][..])]);
        let left: i64 = db
            .query_one("SELECT COUNT(*) FROM rule_days", &[])
            .expect("rows")
            .get(0);
        assert_eq!(left, 1, "minerals' day counted down to nothing is gone");
    }
}
