//! Tidy checks (a module of the `rules` test binary): ARCHITECTURE.md's invariants, read off the
//! source, so a change that breaks one fails here instead of drifting from the prose.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Longest a source file may grow before it is split (ARCHITECTURE.md: "anything over ~800
/// lines mixes concerns"). No file is exempt today; a homogeneous table that must be longer
/// is named here with the reason.
const MAX_LINES: usize = 800;
const LONG_TABLES: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as (path relative to the root, text).
fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("source folder is readable")
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join(dir), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("source file is UTF-8");
            let rel = p.strip_prefix(root()).expect("under the root");
            (rel.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

/// The code of a line, without a `//` comment (good enough for our sources: no `//` inside the
/// string literals these checks look for).
fn code(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find(" //") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// Lines of `text` (1-based) whose code contains `needle`, outside `#[cfg(test)]` modules when
/// `skip_tests` is set (the test module is the file's tail in this codebase).
fn occurrences(text: &str, needle: &str, skip_tests: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skip_tests && line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if code(line).contains(needle) {
            out.push(i + 1);
        }
    }
    out
}

/// `path` is inside module `module` (its file `src/module.rs` or its folder `src/module/`).
fn in_module(path: &str, module: &str) -> bool {
    path == format!("src/{module}.rs") || path.starts_with(&format!("src/{module}/"))
}

/// Asserts that `needle` occurs only in files `allowed` accepts; reports every offending line.
fn only_in(needle: &str, why: &str, skip_tests: bool, allowed: impl Fn(&str) -> bool) {
    let mut bad = Vec::new();
    for (path, text) in rust_files("src") {
        if allowed(&path) {
            continue;
        }
        for line in occurrences(&text, needle, skip_tests) {
            bad.push(format!("{path}:{line}"));
        }
    }
    assert!(
        bad.is_empty(),
        "`{needle}` outside {why}:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn only_store_speaks_sql() {
    for needle in ["rusqlite", "postgres::", "r2d2"] {
        only_in(needle, "src/store", false, |p| in_module(p, "store"));
    }
}

#[test]
fn only_fetch_speaks_http() {
    only_in("reqwest", "src/fetch", false, |p| in_module(p, "fetch"));
}

#[test]
fn only_deliver_speaks_smtp() {
    for needle in [
        "lettre::transport",
        "SmtpTransport",
        "Tokio1Executor",
        "SendmailTransport",
    ] {
        only_in(needle, "src/deliver", false, |p| in_module(p, "deliver"));
    }
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    for needle in ["Utc::now", "Local::now", "SystemTime::now"] {
        only_in(needle, "src/clock.rs", false, |p| p == "src/clock.rs");
    }
    only_in("thread::sleep", "nowhere (use tokio time)", false, |_| {
        false
    });
}

#[test]
fn only_cli_prints() {
    for needle in ["println!", "print!(", "eprintln!", "eprint!(", "io::stdout"] {
        only_in(needle, "src/cli", true, |p| in_module(p, "cli"));
    }
    // Log lines go to stderr (or the journal); that one writer is logging's, nobody else's.
    only_in("io::stderr", "src/cli and the log writer", true, |p| {
        in_module(p, "cli") || p == "src/service/logging.rs"
    });
}

/// The example config's `rules/` is the shipped `rules/` itself (a symlink), never a copy that
/// could fall out of step.
#[test]
fn config_rules_is_the_shipped_rules() {
    let link = root().join("config/rules");
    let target = fs::read_link(&link).expect("config/rules is a symlink");
    assert_eq!(target, Path::new("../rules"));
    assert_eq!(
        fs::canonicalize(&link).expect("resolves"),
        fs::canonicalize(root().join("rules")).expect("rules/")
    );
}

/// Tracked docs name paths a reader has: never a home or work directory of the machine they were
/// written on.
#[test]
fn docs_name_no_build_machine_path() {
    let mut bad = Vec::new();
    let mut docs: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .iter()
        .map(|f| root().join(f))
        .collect();
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("dir entry").path();
        // Text only: the folder also holds the console's screenshots.
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    for path in docs {
        let text = std::fs::read_to_string(&path).expect("read doc");
        for (i, line) in text.lines().enumerate() {
            if ["/home/", "/root/", "/work/", "/Users/"]
                .iter()
                .any(|p| line.contains(p))
            {
                bad.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "build-machine paths in docs:\n  {}",
        bad.join("\n  ")
    );
}

/// Log fields are written for people: `%` (Display), never `?` (Rust's Debug, `slot=None`).
#[test]
fn log_fields_are_not_debug_formatted() {
    let mut bad = Vec::new();
    for (path, text) in rust_files("src") {
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            // `name = ?value` or a bare `?value` field; SQL's `?1` placeholders have a digit.
            let debug_field = code.match_indices('?').any(|(at, _)| {
                let before = code[..at].trim_end();
                let next = code[at + 1..].chars().next();
                (before.ends_with('=') || before.ends_with(','))
                    && next.is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '&')
            });
            if debug_field {
                bad.push(format!("{path}:{}", i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Debug-formatted log fields:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn every_file_starts_with_a_module_header() {
    let mut bad = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for (path, text) in rust_files(dir) {
            if !text.starts_with("//!") {
                bad.push(path);
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files without a `//!` header:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn folders_not_mod_rs_and_no_file_too_long() {
    let mut bad = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for (path, text) in rust_files(dir) {
            if path.ends_with("/mod.rs") {
                bad.push(format!("{path}: use `name.rs` + `name/` instead of mod.rs"));
            }
            let n = text.lines().count();
            if n > MAX_LINES && !LONG_TABLES.contains(&path.as_str()) {
                bad.push(format!(
                    "{path}: {n} lines (at most {MAX_LINES}): split it by concern"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_ignored_tests() {
    let mut bad = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for (path, text) in rust_files(dir) {
            for line in occurrences(&text, concat!("#[", "ignore"), false) {
                bad.push(format!("{path}:{line}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "ignored tests (fix them or assert today's behaviour):\n  {}",
        bad.join("\n  ")
    );
}

/// The file a `crate::a::b::c` path names: the longest prefix that is a source file.
fn resolve(segments: &[&str], files: &BTreeSet<String>) -> Option<String> {
    (1..=segments.len()).rev().find_map(|n| {
        let f = format!("src/{}.rs", segments[..n].join("/"));
        files.contains(&f).then_some(f)
    })
}

/// File-level import graph of `src`: an edge for every `crate::…` path outside test modules.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = rust_files("src");
    let files: BTreeSet<String> = sources.iter().map(|(p, _)| p.clone()).collect();
    let mut graph = BTreeMap::new();
    for (path, text) in &sources {
        let mut deps = BTreeSet::new();
        // A module's tests in a file of their own (`x/tests.rs`, loaded by `#[cfg(test)] mod
        // tests;`) are test code, like an inline `#[cfg(test)] mod tests`.
        if path.ends_with("/tests.rs") {
            graph.insert(path.clone(), deps);
            continue;
        }
        for line in text.lines() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = code(line);
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                let segs: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
                if let Some(dep) = resolve(&segs, &files) {
                    // `use crate::x::{a, b}`: the braces name items or submodules of x.
                    if rest[end..].starts_with('{') {
                        let inner =
                            &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |j| end + j)];
                        for item in inner.split(',') {
                            let item = item.trim().split("::").next().unwrap_or("").trim();
                            let mut s = segs.clone();
                            s.push(item);
                            if let Some(d) = resolve(&s, &files) {
                                deps.insert(d);
                            }
                        }
                    }
                    deps.insert(dep);
                }
            }
        }
        deps.remove(path);
        graph.insert(path.clone(), deps);
    }
    graph
}

#[test]
fn no_import_cycles() {
    let graph = import_graph();
    // Depth-first search with colours; report the first cycle found, as a path.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in graph.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == d).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(n, &graph, &mut state, &mut stack) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

/// Which top-level modules each layer may import (ARCHITECTURE.md, Invariants).
#[test]
fn layers_import_only_what_they_may() {
    let top = |f: &str| -> String {
        let rest = f.trim_start_matches("src/");
        rest.split(['/', '.']).next().unwrap_or(rest).to_string()
    };
    // (module, modules it must not import, why)
    let rules: &[(&str, &[&str], &str)] = &[
        (
            "rules",
            &[
                "cli", "config", "deliver", "digest", "fetch", "parse", "pipeline", "policy",
                "service", "store", "clock",
            ],
            "the rule language depends on nothing but plain data",
        ),
        (
            "store",
            &[
                "cli", "deliver", "digest", "fetch", "pipeline", "service", "rules", "clock",
            ],
            "the store holds plain data",
        ),
        (
            "digest",
            &[
                "cli", "deliver", "fetch", "pipeline", "service", "store", "clock",
            ],
            "rendering is pure",
        ),
        (
            "console",
            &["cli", "deliver", "fetch", "pipeline", "service"],
            "the console reads the store and renders; it drives no stage",
        ),
        (
            "deliver",
            &[
                "cli", "digest", "fetch", "pipeline", "service", "store", "clock",
            ],
            "delivery sends what it is given",
        ),
        (
            "policy",
            &[
                "cli", "config", "deliver", "digest", "fetch", "parse", "pipeline", "service",
                "store", "rules", "clock",
            ],
            "the when-policies are pure",
        ),
        (
            "parse",
            &[
                "cli", "config", "deliver", "digest", "fetch", "pipeline", "service", "store",
                "rules", "clock",
            ],
            "parsing is pure",
        ),
        (
            "config",
            &[
                "cli", "deliver", "fetch", "pipeline", "service", "store", "clock",
            ],
            "settings are read, not acted on",
        ),
        (
            "model",
            &[
                "cli", "config", "deliver", "digest", "fetch", "parse", "pipeline", "policy",
                "service", "store", "rules", "clock",
            ],
            "plain data",
        ),
    ];
    let graph = import_graph();
    let mut bad = Vec::new();
    for (file, deps) in &graph {
        for (module, banned, why) in rules {
            if top(file) != *module {
                continue;
            }
            for d in deps {
                if banned.contains(&top(d).as_str()) {
                    bad.push(format!("{file} imports {d}: {why}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// ARCHITECTURE.md's code map names every source file (its stem in backticks, alone or in a
/// path), so a new module cannot land without a word on what it owns.
#[test]
fn the_code_map_names_every_source_file() {
    let arch = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let named: BTreeSet<&str> = arch
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| span.split(|c: char| !(c.is_alphanumeric() || c == '_')))
        .filter(|w| !w.is_empty())
        .collect();
    let mut missing = Vec::new();
    for (path, _) in rust_files("src") {
        let stem = Path::new(&path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if ["lib", "main", "tests", "testing"].contains(&stem.as_str()) {
            continue;
        }
        if !named.contains(stem.as_str()) {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "source files the code map in ARCHITECTURE.md does not name:\n  {}",
        missing.join("\n  ")
    );
}
