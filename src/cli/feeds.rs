//! `newswatch feeds import|export`: OPML in as `[[feed]]` blocks (printed, or appended to a
//! config), the config's feeds out as OPML 2.0. The format and the append live in `crate::opml`;
//! this prints the results and what was skipped.

use std::collections::HashSet;

use super::{Exit, FeedsCommand};
use crate::opml::{self, OpmlError};

pub(super) fn feeds(action: FeedsCommand) -> Exit {
    let fail = |e: &OpmlError| {
        eprintln!("error: {e}");
        match e {
            OpmlError::Config { .. } => Exit::Config,
            _ => Exit::Failure,
        }
    };
    match action {
        FeedsCommand::Import { file, append } => {
            let imported = match opml::read(&file) {
                Ok(i) => i,
                Err(e) => return fail(&e),
            };
            for why in &imported.refused {
                eprintln!("skipped: {why}");
            }
            for url in &imported.duplicates {
                eprintln!(
                    "skipped: {url} appears more than once in {}",
                    file.display()
                );
            }
            match append {
                None => {
                    let mut taken = HashSet::new();
                    out!("{}", opml::feed_blocks(&imported.feeds, &mut taken));
                    eprintln!("{} feeds from {}", imported.feeds.len(), file.display());
                    Exit::Ok
                }
                Some(config) => {
                    let source = file.display().to_string();
                    match opml::append(&config, &imported, &source) {
                        Ok(report) => {
                            for url in &report.already_present {
                                eprintln!("skipped: {url} is already in {}", config.display());
                            }
                            eprintln!("added {} feeds to {}", report.added, config.display());
                            Exit::Ok
                        }
                        Err(e) => fail(&e),
                    }
                }
            }
        }
        FeedsCommand::Export { config } => {
            let text = match std::fs::read_to_string(&config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", config.display());
                    return Exit::Config;
                }
            };
            match opml::feeds_from_config(&config, &text) {
                Ok(list) => {
                    out!("{}", opml::export(&list, "newswatch feeds"));
                    Exit::Ok
                }
                Err(e) => fail(&e),
            }
        }
    }
}
