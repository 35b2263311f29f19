//! `/matches`: stored matches newest first, filtered by rule, feed, language and age, 50 a page
//! (keyset paging by match id); each with the digest's highlighted headline and snippet and the
//! matched terms. Also the list the rule page shows.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::html::{Nav, Viewer, attr, enc, esc, marked, page};
use super::pages::{TITLE_MAX, title_link, when};
use super::{Console, ConsoleError, St, respond};
use crate::store::{MatchFilter, MatchView, Store};

/// Matches a page shows.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    feed: String,
    #[serde(default)]
    lang: String,
    /// `24h`, `7d`: only matches recorded this recently.
    #[serde(default)]
    since: String,
    before: Option<i64>,
}

fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub(super) async fn matches(
    State(c): St,
    Extension(v): Extension<Viewer>,
    Query(f): Query<Filters>,
) -> Response {
    respond(c.with_store(move |s, c| matches_page(s, c, &v, &f)).await)
}

fn matches_page(s: &Store, c: &Console, v: &Viewer, f: &Filters) -> Result<String, ConsoleError> {
    let now = c.now();
    let mut note = String::new();
    let since = match some(&f.since) {
        None => None,
        Some(text) => match crate::units::parse_duration(&text) {
            Ok(d) => chrono::Duration::from_std(d).ok().map(|d| now - d),
            Err(e) => {
                let _ = write!(note, "<p class=\"bad\">since: {}</p>", esc(&e));
                None
            }
        },
    };
    let filter = MatchFilter {
        rule: some(&f.rule),
        feed: some(&f.feed),
        lang: some(&f.lang),
        since,
        before: f.before,
        limit: PAGE,
    };
    let rows = s.console_matches(&filter)?;
    let mut b = String::from("<h1>Matches</h1>");
    b.push_str(&note);
    let _ = write!(
        b,
        "<form class=\"filters\" method=\"get\" action=\"/matches\">"
    );
    b.push_str("<label>Rule <select name=\"rule\"><option value=\"\">any</option>");
    for r in c.rules.rules() {
        let sel = if f.rule.trim() == r.id {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<option value=\"{}\"{sel}>{}</option>",
            attr(&r.id),
            esc(&r.id)
        );
    }
    b.push_str(
        "</select></label><label>Feed <select name=\"feed\"><option value=\"\">any</option>",
    );
    for feed in &c.config.feeds {
        let sel = if f.feed.trim() == feed.name {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<option value=\"{}\"{sel}>{}</option>",
            attr(&feed.name),
            esc(&feed.name)
        );
    }
    let _ = write!(
        b,
        "</select></label><label>Language <input name=\"lang\" size=\"5\" placeholder=\"en\" value=\"{}\"></label>\
         <label>Since <input name=\"since\" size=\"5\" placeholder=\"7d\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button></form>",
        attr(&f.lang),
        attr(&f.since)
    );
    if rows.is_empty() {
        b.push_str("<p class=\"muted\">No matches.</p>");
    }
    b.push_str(&list(&rows, c));
    if rows.len() == PAGE
        && let Some(last) = rows.last()
    {
        let _ = write!(
            b,
            "<p class=\"pager\"><a rel=\"next\" href=\"/matches?rule={}&amp;feed={}&amp;lang={}&amp;since={}&amp;before={}\">Older matches →</a></p>",
            enc(&f.rule),
            enc(&f.feed),
            enc(&f.lang),
            enc(&f.since),
            last.row.id
        );
    }
    Ok(page("Matches", Nav::Matches, v, &b))
}

/// Matches as cards: highlighted headline (linked when http), feed, rule, time, snippet, terms.
pub(super) fn list(rows: &[MatchView], c: &Console) -> String {
    let now = c.now();
    let mut b = String::new();
    for m in rows {
        let entry = crate::digest::entry(&m.row);
        let (headline, snippet) = crate::digest::highlighted(&entry, TITLE_MAX);
        let heading = match m.row.link.as_deref().and_then(super::html::safe_href) {
            Some(href) => format!(
                "<a href=\"{href}\" rel=\"noopener noreferrer\">{}</a>",
                marked(&headline)
            ),
            None if headline.is_empty() => title_link(&m.row.title, None),
            None => marked(&headline),
        };
        let mut terms: Vec<&str> = m.row.hits.iter().map(|h| h.text.as_str()).collect();
        terms.sort_unstable();
        terms.dedup();
        let _ = write!(
            b,
            "<article class=\"match\"><h3>{heading}</h3><p class=\"muted\"><a href=\"/feeds/{}\">{}</a> · <a href=\"/rules/{}\">{}</a> · {}{}</p><p>{}</p><p class=\"terms\">terms: {}</p></article>",
            enc(&m.row.feed),
            esc(&m.row.feed),
            enc(&m.row.rule_id),
            esc(&m.row.rule_id),
            when(m.row.published.unwrap_or(m.row.first_seen), now),
            m.lang
                .as_deref()
                .map(|l| format!(" · {}", esc(l)))
                .unwrap_or_default(),
            marked(&snippet),
            esc(&super::html::cut(&terms.join(", "), 400)),
        );
    }
    b
}
