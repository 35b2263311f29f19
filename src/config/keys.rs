//! Every key the config file accepts, read off the serde tables themselves (`format::Raw*`), so
//! the reference (`docs/config.md`, `newswatch.toml(5)`) is checked against the code and cannot
//! drift: a new field is a new key here with no list to update. Also reads the reference's
//! tables back (`documented`), for that check and for the man page. Pure: text in, data out.

use super::format::RawConfig;

/// A key nobody writes: the tables' `deny_unknown_fields` errors name every key they expect.
const PROBE: &str = "__newswatch_probe__";

/// The kind of TOML value a key takes, as far as the reference needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A value (string, number, boolean, array of values).
    Value,
    /// A table: `[name]`.
    Table,
    /// An array of tables: `[[name]]`.
    Tables,
}

/// One accepted key: its dotted path (`fetch.timeout`, `feed.url`; an array of tables is
/// named without brackets) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub path: String,
    pub kind: KeyKind,
}

/// Every key of the config file, tables and their keys included, in the order the code
/// declares them.
pub fn keys() -> Vec<Key> {
    let mut out = Vec::new();
    walk(&[], &mut out);
    out
}

/// `headers`: the table headers leading to the table being probed (`[[feed]]`, …).
fn walk(headers: &[(String, KeyKind)], out: &mut Vec<Key>) {
    let Some(names) = expected_fields(&probe_text(headers, None)) else {
        return;
    };
    for name in names {
        let path: Vec<&str> = headers
            .iter()
            .map(|(p, _)| p.rsplit('.').next().unwrap_or(p))
            .chain([name.as_str()])
            .collect();
        let dotted = path.join(".");
        let kind = [KeyKind::Table, KeyKind::Tables]
            .into_iter()
            .find(|&kind| expected_fields(&probe_text(headers, Some((&dotted, kind)))).is_some())
            .unwrap_or(KeyKind::Value);
        out.push(Key {
            path: dotted.clone(),
            kind,
        });
        if kind != KeyKind::Value {
            let mut deeper = headers.to_vec();
            deeper.push((dotted, kind));
            walk(&deeper, out);
        }
    }
}

/// A document that puts the probe key in the innermost table (or in `extra`, one level down).
fn probe_text(headers: &[(String, KeyKind)], extra: Option<(&str, KeyKind)>) -> String {
    let mut text = String::new();
    let extra = extra.map(|(p, k)| (p.to_string(), k));
    for (path, kind) in headers.iter().chain(extra.iter()) {
        match kind {
            KeyKind::Tables => text.push_str(&format!("[[{path}]]\n")),
            _ => text.push_str(&format!("[{path}]\n")),
        }
    }
    text.push_str(&format!("{PROBE} = 1\n"));
    text
}

/// The keys a table expects, from serde's "unknown field `…`, expected one of `a`, `b`" (or
/// "expected `a` or `b`", "expected `a`"); `None` when the probe was not refused as an unknown
/// field of a table (the key holds a value, not a table).
fn expected_fields(text: &str) -> Option<Vec<String>> {
    let Err(e) = toml::from_str::<RawConfig>(text) else {
        return None;
    };
    let message = e.message();
    let rest = message.strip_prefix(&format!("unknown field `{PROBE}`"))?;
    let listed = rest.split_once("expected").map_or("", |(_, l)| l);
    Some(
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// One row of the reference's key tables (`| `key` | type | default | example | meaning |`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    /// The dotted key, as [`Key::path`].
    pub key: String,
    pub kind: String,
    pub default: String,
    pub example: String,
    pub meaning: String,
    /// 1-based line in the markdown.
    pub line: usize,
}

/// The key rows of the reference's tables: a row whose first cell is a `` `key` ``. A row with
/// another number of cells is returned with the missing ones empty, for the check to refuse.
pub fn documented(markdown: &str) -> Vec<Documented> {
    let mut out = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let Some(row) = line.trim().strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = row
            .trim_end_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        let cell = |n: usize| cells.get(n).map_or_else(String::new, |c| (*c).to_string());
        out.push(Documented {
            key: cell(0).trim_end_matches('`').to_string(),
            kind: cell(1),
            default: cell(2),
            example: cell(3),
            meaning: cells
                .get(4..)
                .map_or_else(String::new, |rest| rest.join(" | ")),
            line: i + 1,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_include_tables_and_their_keys() {
        let keys = keys();
        let find = |p: &str| keys.iter().find(|k| k.path == p).map(|k| k.kind);
        assert_eq!(find("state_dir"), Some(KeyKind::Value));
        assert_eq!(find("fetch"), Some(KeyKind::Table));
        assert_eq!(find("fetch.timeout"), Some(KeyKind::Value));
        assert_eq!(find("feed"), Some(KeyKind::Tables));
        assert_eq!(find("feed.allow_private_network"), Some(KeyKind::Value));
        assert_eq!(find("delivery.password_file"), Some(KeyKind::Value));
        assert_eq!(find("alert.max_per_hour"), Some(KeyKind::Value));
        assert_eq!(find("http.listen"), Some(KeyKind::Value));
        // Values that serde reads from a table of their own (an enum) are still values.
        assert_eq!(find("delivery.security"), Some(KeyKind::Value));
        assert_eq!(find("digest.when_empty"), Some(KeyKind::Value));
        assert!(keys.len() > 50, "{keys:?}");
    }
}
