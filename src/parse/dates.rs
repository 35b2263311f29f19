//! Feed dates for feed-rs's `timestamp_parser`: a date that is valid RFC 3339 or RFC 2822 as
//! written is read by chrono directly; anything else goes to feed-rs's own lenient reader
//! (wrong weekdays, `UTC`, long month names, month and day swapped, offsets without a colon…),
//! which feed-rs keeps private and so is reached through a one-item JSON Feed. Pure.
//!
//! Why (issue 22): the lenient reader rewrites every date with seven regular expressions before
//! parsing it (about 14,000 instructions a date, 3 % of a cold cycle), though nearly every feed
//! writes its dates by the book. A date chrono reads strictly is read the same by the lenient
//! reader (its repairs only touch what strict parsing refuses), so results do not change:
//! `dates_read_as_feed_rs_reads_them` holds the two equal over a table of real-world forms.

use chrono::{DateTime, Utc};

/// A feed's date text as an instant, or `None` when no reader makes sense of it.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_rfc2822(t))
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| lenient(text))
}

/// feed-rs's default (lenient) reading of `text`: the date of a one-item JSON Feed, whose item
/// dates go through the same reader as RSS's and Atom's.
fn lenient(text: &str) -> Option<DateTime<Utc>> {
    let doc = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "",
        "items": [{"id": "d", "date_published": text}],
    });
    feed_rs::parser::parse(doc.to_string().as_bytes())
        .ok()?
        .entries
        .into_iter()
        .next()?
        .published
}

#[cfg(test)]
mod tests {
    use super::*;

    /// feed-rs's own reading of a date, as an RSS item's `pubDate` with its default parser.
    fn feed_rs_reads(text: &str) -> Option<DateTime<Utc>> {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let doc = format!(
            "<rss version=\"2.0\"><channel><title>t</title><item><guid>g</guid>\
             <pubDate>{escaped}</pubDate></item></channel></rss>"
        );
        feed_rs::parser::parse(doc.as_bytes())
            .ok()?
            .entries
            .into_iter()
            .next()?
            .published
    }

    #[test]
    fn dates_read_as_feed_rs_reads_them() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            // by the book: read strictly
            ("Sun, 06 Dec 2026 09:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 09:21:11 +0100", Some("2026-12-06T08:21:11Z")),
            ("06 Dec 2026 09:21:11 -0500", Some("2026-12-06T14:21:11Z")),
            ("  Sun, 06 Dec 2026 09:21:11 UT  ", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 09:21:11 -0000", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 09:21 EST", Some("2026-12-06T14:21:00Z")),
            ("2026-12-06T09:21:11Z", Some("2026-12-06T09:21:11Z")),
            ("2026-12-06T09:21:11.250+02:00", Some("2026-12-06T07:21:11.250Z")),
            ("\n 2026-12-06T09:21:11-05:00\t", Some("2026-12-06T14:21:11Z")),
            // not by the book: feed-rs's repairs
            ("Mon, 06 Dec 2026 09:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sunday, 06 Dec 2026 09:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 09:21:11 UTC", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 December 2026 09:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sun, Dec 06 2026 09:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 9:21:11 GMT", Some("2026-12-06T09:21:11Z")),
            ("Sun, 06 Dec 2026 24:21:11 GMT", Some("2026-12-06T00:21:11Z")),
            ("2026-12-06T09:21:11+0100", Some("2026-12-06T08:21:11Z")),
            ("2026-12-06", Some("2026-12-06T00:00:00Z")),
            ("Tue, 15 Nov 2022 20:15:04 Z", Some("2022-11-15T20:15:04Z")),
            // nothing to read
            ("", None),
            ("yesterday", None),
            ("Sun, 32 Dec 2026 09:21:11 GMT", None),
            ("\"}, {\"x\": \"", None),
        ];
        for &(text, want) in cases {
            let want = want.map(|w| {
                DateTime::parse_from_rfc3339(w)
                    .expect("a valid expectation")
                    .with_timezone(&Utc)
            });
            assert_eq!(feed_rs_reads(text), want, "feed-rs on {text:?}");
            assert_eq!(parse_timestamp(text), want, "{text:?}");
        }
    }
}
