//! `newswatch man`: the man pages. Without `--dir`, `newswatch(1)` on stdout; with it, a page per
//! subcommand (`newswatch-run(1)`, `newswatch-rules-test(1)`, …) from the clap definitions, and
//! `newswatch.toml(5)` from the config reference (`docs/config.md`, built into the binary; its
//! keys are checked against the code by a test).

use std::fmt::Write as _;
use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Exit, write_out_bytes};
use crate::config::keys::documented;

/// The config reference the `newswatch.toml(5)` page is made from.
const REFERENCE: &str = include_str!("../../docs/config.md");

pub(super) fn man(dir: Option<&Path>) -> Exit {
    let Some(dir) = dir else {
        let mut page = Vec::new();
        return match clap_mangen::Man::new(Cli::command()).render(&mut page) {
            Ok(()) => {
                write_out_bytes(&page);
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: cannot render the man page: {e}");
                Exit::Failure
            }
        };
    };
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .and_then(|()| std::fs::write(dir.join("newswatch.toml.5"), config_page()));
    match written {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!(
                "error: cannot write the man pages into {}: {e}",
                dir.display()
            );
            Exit::Failure
        }
    }
}

/// `newswatch.toml(5)` in roff: the reference's introduction, then every key with its type,
/// default, example and meaning.
pub fn config_page() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH NEWSWATCH.TOML 5 \"\" \"newswatch {}\" \"File Formats\"",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(".SH NAME\nnewswatch.toml \\- configuration file of newswatch(1)\n");
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(
        "The daemon's configuration, in TOML. \\fBnewswatch check \\-\\-config\\fR FILE reports \
         every problem with file, line and column. Relative paths resolve against the config \
         file's directory. Durations are strings with units (\"90s\", \"15m\", \"48h\", \"7d\"); \
         sizes are \"10MB\" or a number of bytes. Tables written [[name]] may appear any number \
         of times.\n",
    );
    let mut section = None;
    for row in documented(REFERENCE) {
        let table = row.key.split_once('.').map_or("", |(t, _)| t).to_string();
        if section.as_ref() != Some(&table) {
            let heading = match table.as_str() {
                "" => "TOP LEVEL".to_string(),
                "feed" | "digest" | "alert" => format!("[[{table}]]"),
                t => format!("[{t}]"),
            };
            let _ = writeln!(out, ".SH {}", roff(&heading));
            section = Some(table);
        }
        let _ = writeln!(
            out,
            ".TP\n.B {}\n{}; default: {}; example: {}\n.br\n{}",
            roff(&row.key),
            roff(&row.kind),
            roff(&row.default),
            roff(&row.example),
            roff(&row.meaning)
        );
    }
    out.push_str(
        ".SH FILES\n/etc/newswatch/newswatch.toml\n.SH SEE ALSO\nnewswatch(1), newswatch-check(1), \
         newswatch-run(1)\n",
    );
    out
}

/// Markdown cell text as roff: no backticks or links, backslashes and leading dots escaped.
fn roff(s: &str) -> String {
    let plain = s.replace('`', "").replace('\\', "\\e").replace('-', "\\-");
    if plain.starts_with(['.', '\'']) {
        format!("\\&{plain}")
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_page_has_every_documented_key() {
        let page = config_page();
        assert!(page.starts_with(".TH NEWSWATCH.TOML 5"), "{page}");
        for row in documented(REFERENCE) {
            assert!(
                page.contains(&format!(".B {}\n", roff(&row.key))),
                "{}",
                row.key
            );
        }
        assert!(page.contains(".SH [[digest]]\n"), "{page}");
        assert!(!page.contains('`'), "{page}");
    }
}
