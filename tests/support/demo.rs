//! The bundled demo (`config/demo.toml`, its feeds, the shipped rules) for tests that run it:
//! read in place or copied into a temporary directory laid out like the repository.

use std::path::{Path, PathBuf};

/// The demo's feed files, as `config/demo.toml` lists them.
pub const DEMO_FEEDS: [&str; 5] = [
    "northgate-chronicle.rss",
    "atlantic-wire.atom",
    "continental-defence.rss",
    "kyiv-ledger.json",
    "meridian-sports-and-business.rss",
];

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn demo_dir() -> PathBuf {
    repo().join("config/demo/feeds")
}

pub fn demo_feed(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).expect("the demo feed is in the repository")
}

/// Every `.toml` file in the repository's `rules/`, sorted.
pub fn shipped_rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules"))
        .expect("rules/ is in the repository")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A copy of the demo in `tmp` (config, every feed file, shipped rules); returns the config
/// path. Its `/metrics` server takes any free port: 9187 may be taken by another test's daemon
/// (or a real one).
pub fn copy_demo(tmp: &Path) -> PathBuf {
    let feeds = tmp.join("config/demo/feeds");
    std::fs::create_dir_all(&feeds).expect("mkdir config/demo/feeds");
    std::fs::create_dir_all(tmp.join("rules")).expect("mkdir rules");
    let demo = std::fs::read_to_string(repo().join("config/demo.toml"))
        .expect("config/demo.toml is in the repository");
    let config = tmp.join("config/demo.toml");
    std::fs::write(
        &config,
        format!("{demo}\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write demo.toml");
    for e in std::fs::read_dir(demo_dir()).expect("config/demo/feeds is in the repository") {
        let from = e.expect("a directory entry").path();
        let name = from.file_name().expect("a file name");
        std::fs::copy(&from, feeds.join(name)).expect("copy a demo feed");
    }
    let shipped = shipped_rule_files();
    assert!(!shipped.is_empty(), "no shipped rules in rules/");
    for r in shipped {
        let name = r.file_name().expect("a file name");
        std::fs::copy(&r, tmp.join("rules").join(name)).expect("copy a shipped rule file");
    }
    config
}
