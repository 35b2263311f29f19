//! The config reference (`docs/config.md`) against the code: every key the config accepts is
//! documented once, with a type, a default, an example that is valid TOML for that key and what
//! it does; no documented key is one the config refuses. The keys come from the serde tables
//! (`config::keys`), so adding a key to the code means adding its row to the page, nothing more.

use std::collections::BTreeMap;

use newswatch::config::keys::{KeyKind, documented, keys};

fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md");
    std::fs::read_to_string(path).expect("read docs/config.md")
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let text = reference();
    let rows = documented(&text);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for r in &rows {
        if let Some(first) = seen.insert(&r.key, r.line) {
            problems.push(format!(
                "docs/config.md:{}: `{}` again (first on line {first})",
                r.line, r.key
            ));
        }
        for (what, cell) in [
            ("type", &r.kind),
            ("default", &r.default),
            ("example", &r.example),
            ("meaning", &r.meaning),
        ] {
            if cell.is_empty() {
                problems.push(format!(
                    "docs/config.md:{}: `{}` has no {what}",
                    r.line, r.key
                ));
            }
        }
        // The example is TOML setting this very key, as it would be written in its table.
        let example = r.example.trim_matches('`');
        let name = r.key.rsplit('.').next().unwrap_or(&r.key);
        match example.parse::<toml::Table>() {
            Ok(t) if t.len() == 1 && t.contains_key(name) => {}
            Ok(_) => problems.push(format!(
                "docs/config.md:{}: the example of `{}` does not set `{name}`",
                r.line, r.key
            )),
            Err(e) => problems.push(format!(
                "docs/config.md:{}: the example of `{}` is not TOML: {e}",
                r.line, r.key
            )),
        }
    }
    let values: Vec<String> = keys()
        .into_iter()
        .filter(|k| k.kind == KeyKind::Value)
        .map(|k| k.path)
        .collect();
    for key in &values {
        if !seen.contains_key(key.as_str()) {
            problems.push(format!(
                "`{key}` is a config key but docs/config.md has no row for it"
            ));
        }
    }
    for r in &rows {
        if !values.contains(&r.key) {
            problems.push(format!(
                "docs/config.md:{}: `{}` is not a key the config accepts",
                r.line, r.key
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_check_catches_a_missing_and_an_unknown_key() {
    // The check above is only as good as its parsing: a row removed or misspelt must show.
    let text = reference().replace("| `fetch.timeout` |", "| `fetch.timeuot` |");
    let rows = documented(&text);
    assert!(rows.iter().all(|r| r.key != "fetch.timeout"));
    assert!(
        rows.iter()
            .any(|r| r.key == "fetch.timeuot" && !r.meaning.is_empty())
    );
    assert!(keys().iter().any(|k| k.path == "fetch.timeout"));
    assert!(!keys().iter().any(|k| k.path == "fetch.timeuot"));
}
