//! Loading a config file: read it, parse the format, build every section (all problems
//! collected, in file order per section), and the start-up check of secret files' permissions.
//! Environment variables are read through the `env` the caller passes, so tests set none.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::build::{self, Source, resolve};
use super::format::RawConfig;
use super::{
    Config, ConfigErrors, DEFAULT_NEW_FEED_WINDOW, DeliveryMethod, default_user_agent, delivery,
    digests,
};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// The largest config file read: generous for thousands of `[[feed]]` blocks, small enough that a
/// wrong path (a log, a disk image) cannot exhaust memory in the TOML parser.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

impl Config {
    /// Reads and validates `path`. Environment variables named by `password_env` are read here.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let whole = |message: String| Diagnostics(vec![Diagnostic::whole_file(path, message)]);
        // Read at most one byte past the cap, so a huge (or endless) file costs no more memory
        // than the cap before it is refused.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| whole(format!("cannot read config file: {e}")))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(whole(format!(
                "config file is larger than {} MiB: expected a TOML config, not this",
                MAX_CONFIG_BYTES >> 20
            )));
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                // Point at the first byte that is not UTF-8, in the text before it.
                let at = e.utf8_error().valid_up_to();
                let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
                let lines = crate::diagnostic::LineIndex::new(&valid);
                return Err(Diagnostics(vec![Diagnostic::at(
                    path,
                    &valid,
                    &lines,
                    at,
                    "invalid UTF-8 here: a config file is UTF-8 text",
                )]));
            }
        };
        Self::from_str(path, &text, &|name| std::env::var(name).ok())
    }

    /// Validates `text` as if read from `path`; `env` looks up environment variables.
    pub fn from_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut src = Source::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Diagnostics(vec![
                src.diagnostic(offset, e.message().trim_end().to_string()),
            ])
        })?;
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };

        let state_dir = resolve(&base, raw.state_dir.get_ref());
        let rule_files = build::rule_files(&mut src, &base, &raw.rules);
        let fetch = build::fetch(&mut src, &raw.fetch);
        let polling = build::polling(&mut src, &raw.fetch);
        let new_feed_window = build::duration_within(
            &mut src,
            "new_feed_window",
            raw.new_feed_window.as_ref(),
            std::time::Duration::ZERO..=build::MAX_KEEP,
        )
        .unwrap_or(DEFAULT_NEW_FEED_WINDOW);
        let feeds = build::feeds(&mut src, &base, &raw.feeds, fetch.default_interval);
        let delivery = delivery::build(&mut src, &base, raw.delivery, env);
        let digests: Vec<super::DigestConfig> = raw
            .digests
            .iter()
            .enumerate()
            .map(|(i, d)| digests::build_digest(&mut src, &base, d, &raw.digests[..i]))
            .collect();
        // An alert set without a `timezone` shows times as the first digest does.
        let zone = digests.first().map(|d| d.timezone);
        let alerts = raw
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| digests::build_alert(&mut src, a, &raw.alerts[..i], zone))
            .collect();
        let http = build::http(&mut src, &raw.http);
        let console = super::console::build(&mut src, &base, &state_dir, &raw.console);

        if !src.errors.is_empty() {
            return Err(Diagnostics(src.errors));
        }
        let Some(delivery) = delivery else {
            // delivery::build returns None only after recording an error.
            return Err(Diagnostics(src.errors));
        };
        Ok(Config {
            path: path.to_path_buf(),
            state_dir,
            rule_files,
            user_agent: raw.user_agent.unwrap_or_else(default_user_agent),
            new_feed_window,
            fetch,
            polling,
            feeds,
            delivery,
            digests,
            http,
            alerts,
            console,
        })
    }

    /// Files holding a secret (the SMTP `password_file`) that every local user may read (mode
    /// `o+r`): the daemon starts anyway but warns. Group read is allowed on purpose, for
    /// `root:newswatch 0640` setups.
    pub fn world_readable_secrets(&self) -> Vec<PathBuf> {
        let DeliveryMethod::Smtp(smtp) = &self.delivery.method else {
            return Vec::new();
        };
        smtp.password_file
            .iter()
            .filter(|p| world_readable(p))
            .cloned()
            .collect()
    }
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> bool {
    false
}
