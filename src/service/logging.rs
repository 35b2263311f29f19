//! Where tracing output goes: native journald fields when systemd connected our stderr to the
//! journal, readable text (or JSON with `--log-format json`) on stderr otherwise.
//! `NEWSWATCH_LOG` sets the filter (`info` by default). Secrets must never reach a field: callers
//! log `SecretString`s not at all, and this module adds nothing of its own.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Journal fields are `NEWSWATCH_<FIELD>`: `journalctl -u newswatch NEWSWATCH_FEED="Ukrinform"`.
const JOURNAL_FIELD_PREFIX: &str = "NEWSWATCH";

/// How log lines look on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter =
        || EnvFilter::try_from_env("NEWSWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // An explicit --log-format json wins even under systemd: whoever asked wants JSON lines.
    if format == LogFormat::Text && stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(
                        layer
                            .with_syslog_identifier("newswatch".to_string())
                            .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.to_string())),
                    )
                    .init();
                return;
            }
            Err(e) => {
                init_stderr(format, filter());
                tracing::warn!(error = %e, "cannot connect to journald; logging to stderr");
                return;
            }
        }
    }
    init_stderr(format, filter());
}

fn init_stderr(format: LogFormat, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(Seconds)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// systemd sets `JOURNAL_STREAM=dev:inode` of the stream it gave us; it is inherited by children
/// whose stderr may point elsewhere, so it counts only if stderr still is that stream.
fn stderr_is_journal() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(meta) => matches_journal_stream(&var, meta.dev(), meta.ino()),
        Err(_) => false,
    }
}

fn matches_journal_stream(var: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Log timestamps to the second, in UTC (`2026-03-02T07:00:05Z`): nanoseconds are noise to an
/// operator, and the journal keeps its own precise time.
struct Seconds;

impl tracing_subscriber::fmt::time::FormatTime for Seconds {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", crate::clock::now().format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_table() {
        #[rustfmt::skip]
        let cases: &[(&str, u64, u64, bool)] = &[
            ("8:12345",  8, 12345, true),
            ("8:12345",  8, 12346, false),
            ("9:12345",  8, 12345, false),
            ("",         8, 12345, false),
            ("8",        8, 12345, false),
            ("x:y",      8, 12345, false),
            ("8:12345\n", 8, 12345, true),
        ];
        for &(var, dev, ino, want) in cases {
            assert_eq!(matches_journal_stream(var, dev, ino), want, "{var:?}");
        }
    }
}
