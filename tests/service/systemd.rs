//! The daemon under a real systemd: `scripts/systemd-user-run` starts a systemd user manager (in
//! a private mount namespace where PID 1 is not systemd) and drives the shipped unit through it:
//! start on READY=1 with the password as a credential, watchdog pings, `systemctl reload`
//! applied and refused, `systemctl stop`. Where systemd cannot run at all (not root, no systemd
//! package), the script exits 77 and this test says so and passes.

use std::process::Command;

use crate::support::bin::BIN;
use crate::support::demo::repo;

#[test]
fn the_unit_runs_under_a_real_systemd() {
    let out = Command::new(repo().join("scripts/systemd-user-run"))
        .arg(BIN)
        .output()
        .expect("run scripts/systemd-user-run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => assert!(text.contains("ok: stopped cleanly"), "{text}"),
        Some(77) => eprintln!("SKIPPED: systemd cannot run on this machine:\n{text}"),
        code => panic!("scripts/systemd-user-run exited {code:?}:\n{text}"),
    }
}
