//! The built `newswatch` binary, run as a user would: from the repository root, outside any
//! journald stream. Only starts processes; what they print is the tests' to judge.

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_newswatch");

/// A command for the binary, run from the repository root (so `rules/…` paths resolve).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("JOURNAL_STREAM");
    cmd
}

/// Runs the binary to completion.
pub fn newswatch(args: &[&str]) -> Output {
    command(args)
        .output()
        .expect("the built newswatch binary runs")
}
