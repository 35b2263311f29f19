//! `newswatch run`: the daemon, or one pass with `--once` (its summary printed; exit 1 when every
//! feed failed, else 6 when an email could not be delivered).
//! Loads config and rules, warns about a world-readable password file, and hands over to the
//! daemon or the pipeline; a failure is printed with a hint about the state directory if one fits.

use std::path::Path;

use super::{Exit, load_config, load_rules, once_runtime, runtime};

pub(super) fn run(config: &Path, once: bool, watch_rules: bool) -> Exit {
    let config = match load_config(config) {
        Ok(c) => c,
        Err(e) => return e,
    };
    for file in config.world_readable_secrets() {
        tracing::warn!(
            file = %file.display(),
            "the SMTP password file is readable by every local user; run `chmod o-r` on it"
        );
    }
    let rules = match load_rules(&config.rule_files) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // A rule limited to a feed or tag the config lacks would silently match nothing: refused
    // here as `check --config` refuses it.
    let (names, tags) = config.feed_names_and_tags();
    let unknown = rules.check_feeds(&names, &tags);
    if !unknown.is_empty() {
        for d in &unknown {
            eprintln!("{d}");
        }
        return Exit::Rules;
    }
    let runtime = match if once {
        once_runtime(config.store.is_none())
    } else {
        runtime()
    } {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let state_dir = config.state_dir.clone();
    let mut undelivered = false;
    let result = runtime.block_on(async {
        if once {
            let summary = crate::pipeline::run_once(&config, &rules).await?;
            outln!("{summary}");
            // For cron: a run in which no feed could be read is a failure, though the outbox
            // was still drained (an outage of the network or of every source shows in the exit).
            if summary.feeds_polled > 0 && summary.feeds_failed == summary.feeds_polled {
                anyhow::bail!(
                    "every feed failed ({} of {})",
                    summary.feeds_failed,
                    summary.feeds_polled
                );
            }
            // For cron too: an email that did not go out in this run (the summary says which).
            undelivered = !summary.undelivered.is_empty();
            Ok(())
        } else {
            crate::service::daemon::run_daemon(
                config,
                rules,
                crate::service::daemon::Options { watch_rules },
            )
            .await
        }
    });
    // A database call abandoned at shutdown runs on the blocking pool; do not wait forever.
    runtime.shutdown_timeout(crate::service::daemon::SHUTDOWN_GRACE);
    match result {
        Ok(()) if undelivered => {
            eprintln!("error: an email could not be delivered (it stays in the outbox)");
            Exit::Undelivered
        }
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = crate::store::storage_hint(e.as_ref()) {
                eprintln!("hint: {hint} ({})", state_dir.display());
            }
            Exit::Failure
        }
    }
}
