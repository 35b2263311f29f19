//! Loading a config file: read it, parse the format, build every section (all problems
//! collected, in file order per section), and the start-up check of secret files' permissions.
//! Environment variables are read through the `env` the caller passes, so tests set none.

use std::path::{Path, PathBuf};

use super::build::{self, Source, resolve};
use super::format::RawConfig;
use super::{
    Config, ConfigErrors, DEFAULT_NEW_FEED_WINDOW, DeliveryMethod, default_user_agent, delivery,
    digests,
};
use crate::diagnostic::{Diagnostic, Diagnostics};

impl Config {
    /// Reads and validates `path`. Environment variables named by `password_env` are read here.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::whole_file(
                path,
                format!("cannot read config file: {e}"),
            )])
        })?;
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
        let digests = raw
            .digests
            .iter()
            .enumerate()
            .map(|(i, d)| digests::build_digest(&mut src, &base, d, &raw.digests[..i]))
            .collect();
        let alerts = raw
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| digests::build_alert(&mut src, a, &raw.alerts[..i]))
            .collect();
        let http = build::http(&mut src, &raw.http);

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
