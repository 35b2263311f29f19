//! The daemon under a real systemd, twice:
//! - `scripts/systemd-user-run` starts a systemd user manager (in a private mount namespace where
//!   PID 1 is not systemd) and drives the shipped unit, its system-only sandboxing left out,
//!   through it: start on READY=1 with the password as a credential, watchdog pings,
//!   `systemctl reload` applied and refused, `systemctl stop`.
//! - `scripts/systemd-system-run` runs systemd as PID 1 of new namespaces, a system manager, and
//!   drives the shipped unit with every sandboxing line kept: the same checks, plus the process's
//!   uid, capabilities, no-new-privileges and seccomp as the kernel reports them, the state
//!   directory, and `systemd-analyze security` read from the running manager.
//!
//! Where systemd cannot run at all (not root, no systemd package, no cgroups), a script exits 77
//! and its test says so and passes.

use std::process::Command;

use crate::support::bin::BIN;
use crate::support::demo::repo;

/// Runs one of the scripts and checks it passed (or could not run here, exit 77).
fn run_script(script: &str) {
    let out = Command::new(repo().join("scripts").join(script))
        .arg(BIN)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {
            assert!(text.contains("ok: stopped cleanly"), "{text}");
            assert!(!text.contains("FAILED"), "{text}");
        }
        Some(77) => eprintln!("SKIPPED: systemd cannot run on this machine:\n{text}"),
        code => panic!("scripts/{script} exited {code:?}:\n{text}"),
    }
}

#[test]
fn the_unit_runs_under_a_real_systemd_user_manager() {
    run_script("systemd-user-run");
}

#[test]
fn the_hardened_unit_runs_whole_under_a_real_systemd_system_manager() {
    run_script("systemd-system-run");
}
