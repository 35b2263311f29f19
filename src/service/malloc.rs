//! glibc's malloc arena limit, for every run of the binary, not only under the systemd unit.
//!
//! glibc gives a thread that finds the arenas busy an arena of its own (up to 8 per core), and
//! each arena keeps the memory freed into it: the cold cycle's peak resident size was ~7 MB
//! higher with the default than with two arenas (BENCHMARKS.md, issue 22). The limit can only
//! be set before the first allocation: by `mallopt`, which needs `unsafe` (forbidden in this
//! crate), or by the environment glibc reads at start. So when `MALLOC_ARENA_MAX` is unset, the
//! binary replaces itself (`exec`: same process id, arguments, descriptors and environment) with
//! a copy of itself that has it set, before anything else runs. An operator's own value, any
//! value, is kept as it is.

/// The variable glibc reads at its first allocation.
pub const ARENA_VAR: &str = "MALLOC_ARENA_MAX";

/// Two arenas: the main thread and the runtime's threads share them. One arena cost wall time
/// under contention (the cold cycle: 1.1 s with two, 2.5 s with one, in the same sitting).
pub const ARENAS: &str = "2";

/// Re-executes the binary with `MALLOC_ARENA_MAX=2` when the variable is unset (glibc on Linux
/// only). Returns when nothing needed doing, or when the exec failed (the executable is gone, no
/// `/proc`): the run then goes on with glibc's default arenas, as it did before this existed.
/// Call it first thing in `main`, before any thread starts and before logging is set up.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if std::env::var_os(ARENA_VAR).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        // `exec` returns only on failure; the run goes on unchanged then.
        let _failed = cmd.args(args).env(ARENA_VAR, ARENAS).exec();
    }
}
