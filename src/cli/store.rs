//! `newswatch store migrate-to --config NEW.toml`: copies the SQLite state in NEW.toml's
//! `state_dir` into the empty PostgreSQL of its `[store]`, holding the instance lock so no daemon
//! writes the SQLite file meanwhile. The copy itself is the store's (`Store::copy_into`).

use std::path::Path;

use clap::Subcommand;

use super::{Exit, load_config};
use crate::service::lock::InstanceLock;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the SQLite state of the config's state_dir into the empty PostgreSQL of its
    /// [store] table, ids and all: nothing alerts again, nothing owed is lost.
    MigrateTo {
        /// The config naming both: `state_dir` (the SQLite file) and `[store]` (the target).
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
}

pub(super) fn store(action: StoreCommand) -> Exit {
    match action {
        StoreCommand::MigrateTo { config } => migrate_to(&config),
    }
}

fn migrate_to(path: &Path) -> Exit {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(settings) = &config.store else {
        eprintln!(
            "error: {} has no [store] table: add the PostgreSQL to copy into (docs/cluster.md)",
            path.display()
        );
        return Exit::Config;
    };
    let _lock = match InstanceLock::acquire(&config.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e} (stop the daemon before copying its state)");
            return Exit::Failure;
        }
    };
    let copied = Store::open_read_only(&config.state_dir).and_then(|src| {
        let mut dst = Store::open_postgres(settings)?;
        src.copy_into(&mut dst)
    });
    match copied {
        Ok(report) => {
            for (table, rows) in &report.tables {
                println!("{table}: {rows} rows");
            }
            eprintln!(
                "copied {} into {}; the SQLite file is unchanged",
                config.state_dir.display(),
                settings.url
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
