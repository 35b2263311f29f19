//! Loading a config file: read it, parse the format, build every section (all problems
//! collected, in file order per section), and the start-up check of secret files' permissions.
//! Environment variables are read through the `env` the caller passes, so tests set none.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::build::{self, Source, resolve};
use super::channels;
use super::format::RawConfig;
use super::{
    Config, ConfigErrors, DEFAULT_NEW_FEED_WINDOW, DeliveryMethod, Secrets, default_user_agent,
    delivery, digests,
};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// The largest config file read: generous for thousands of `[[feed]]` blocks, small enough that a
/// wrong path (a log, a disk image) cannot exhaust memory in the TOML parser.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

impl Config {
    /// Reads and validates `path`. Environment variables named by `password_env` are read here.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with(path, Secrets::Read)
    }

    /// Reads and validates `path` for a command that only reads: the delivery secrets are not
    /// read, so a missing password file or variable is no error.
    pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with(path, Secrets::Skip)
    }

    /// The rule files `path` names, when its TOML parses at all (whatever else is wrong with it):
    /// `check` still checks the rules of a config it refuses. Only a TOML syntax error or a
    /// broken `rules` key leaves them unknown.
    pub fn rule_files_of(path: &Path) -> Option<Vec<PathBuf>> {
        /// Only `rules`: a value of the wrong type elsewhere does not hide it.
        #[derive(serde::Deserialize)]
        struct RulesOnly {
            rules: toml::Spanned<Vec<toml::Spanned<String>>>,
        }
        let text = std::fs::read_to_string(path).ok()?;
        let raw: RulesOnly = toml::from_str(&text).ok()?;
        let mut src = Source::new(path, &text);
        let files = build::rule_files(&mut src, &base_dir(path), &raw.rules);
        (!files.is_empty()).then_some(files)
    }

    fn load_with(path: &Path, secrets: Secrets) -> Result<Config, ConfigErrors> {
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
        Self::from_str_with(path, &text, &|name| std::env::var(name).ok(), secrets)
    }

    /// Validates `text` as if read from `path`; `env` looks up environment variables.
    pub fn from_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        Self::from_str_with(path, text, env, Secrets::Read)
    }

    /// [`Config::from_str`], reading the delivery secrets or not.
    pub fn from_str_with(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: Secrets,
    ) -> Result<Config, ConfigErrors> {
        let mut src = Source::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // Several syntax errors: all of them. Otherwise toml's one message, which also
            // covers types and unknown keys (and words a syntax error better).
            let offset = e.span().map_or(0, |s| s.start);
            let mut syntax = syntax_errors(text);
            if syntax.len() > 1 {
                // toml's error too, where the list lacks it (whatever neither the parser nor the
                // decoding of keys and values caught).
                if !syntax.iter().any(|(at, _)| *at == offset) {
                    syntax.push((offset, e.message().trim_end().to_string()));
                    syntax.sort_by_key(|(at, _)| *at);
                }
                return Diagnostics(
                    syntax
                        .into_iter()
                        .map(|(at, message)| src.diagnostic(at, message))
                        .collect(),
                );
            }
            Diagnostics(vec![
                src.diagnostic(offset, e.message().trim_end().to_string()),
            ])
        })?;
        let base = base_dir(path);

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
        let feeds = build::feeds(
            &mut src,
            &base,
            &raw.feeds,
            fetch.default_interval,
            env,
            secrets,
        );
        let delivery = delivery::build(&mut src, &base, raw.delivery, env, secrets);
        let channels = channels::build_channels(&mut src, &base, &raw.channels, env, secrets);
        let channel_names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
        let digests: Vec<super::DigestConfig> = raw
            .digests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                digests::build_digest(&mut src, &base, d, &raw.digests[..i], &channel_names)
            })
            .collect();
        // An alert set without a `timezone` shows times as the first digest does.
        let zone = digests.first().map(|d| d.timezone);
        let alerts = raw
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| digests::build_alert(&mut src, a, &raw.alerts[..i], zone, &channel_names))
            .collect();
        let http = build::http(&mut src, &raw.http);
        let spikes = super::spikes::build_spikes(&mut src, &raw.spikes, zone, &channel_names);
        let store = super::store::build(&mut src, &base, raw.store.as_ref(), env);
        let console = super::console::build(&mut src, &base, &state_dir, &raw.console);
        let websub = super::websub::build(&mut src, raw.websub.as_ref());

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
            channels,
            spikes,
            store,
            console,
            websub,
        })
    }

    /// Files holding a secret (the SMTP `password_file`, a channel's `*_file`, a feed's password, token or cookie file) that every local user may read (mode
    /// `o+r`): the daemon starts anyway but warns. Group read is allowed on purpose, for
    /// `root:newswatch 0640` setups.
    pub fn world_readable_secrets(&self) -> Vec<PathBuf> {
        let smtp = match &self.delivery.method {
            DeliveryMethod::Smtp(smtp) => smtp.password_file.as_slice(),
            _ => &[],
        };
        let channels = self.channels.iter().flat_map(|c| c.secret_files.iter());
        smtp.iter()
            .chain(channels)
            .chain(
                self.feeds
                    .iter()
                    .flat_map(|f| f.request.secret_files.iter()),
            )
            .filter(|p| world_readable(p))
            .cloned()
            .collect()
    }
}

/// Decodes every key, value and comment as the parser meets them, so the errors found only
/// there (an unclosed or badly escaped string, a malformed number or date) join the parser's own.
struct DecodeAll<'i> {
    source: toml_parser::Source<'i>,
}

impl DecodeAll<'_> {
    fn raw(
        &self,
        span: toml_parser::Span,
        encoding: Option<toml_parser::decoder::Encoding>,
    ) -> Option<toml_parser::Raw<'_>> {
        let text = self.source.input().get(span.start()..span.end())?;
        Some(toml_parser::Raw::new_unchecked(text, encoding, span))
    }
}

impl toml_parser::parser::EventReceiver for DecodeAll<'_> {
    fn simple_key(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<toml_parser::decoder::Encoding>,
        error: &mut dyn toml_parser::ErrorSink,
    ) {
        if let Some(raw) = self.raw(span, encoding) {
            raw.decode_key(&mut (), error);
        }
    }

    fn scalar(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<toml_parser::decoder::Encoding>,
        error: &mut dyn toml_parser::ErrorSink,
    ) {
        if let Some(raw) = self.raw(span, encoding) {
            let _kind = raw.decode_scalar(&mut (), error);
        }
    }

    fn comment(&mut self, span: toml_parser::Span, error: &mut dyn toml_parser::ErrorSink) {
        if let Some(raw) = self.raw(span, None) {
            raw.decode_comment(error);
        }
    }
}

/// Every TOML syntax error in `text` (offset, message): toml's parser goes on after each, and
/// every key, value and comment is decoded on the way.
fn syntax_errors(text: &str) -> Vec<(usize, String)> {
    let source = toml_parser::Source::new(text);
    let tokens: Vec<_> = source.lex().collect();
    let mut errors: Vec<toml_parser::ParseError> = Vec::new();
    toml_parser::parser::parse_document(&tokens, &mut DecodeAll { source }, &mut errors);
    errors
        .iter()
        .map(|e| {
            let mut message = e.description().to_string();
            let expected: Vec<&str> = e
                .expected()
                .unwrap_or_default()
                .iter()
                .map(|x| match x {
                    toml_parser::Expected::Literal("\n") => "the end of the line",
                    toml_parser::Expected::Literal(s) | toml_parser::Expected::Description(s) => *s,
                    _ => "",
                })
                .filter(|s| !s.is_empty())
                .collect();
            if !expected.is_empty() {
                message.push_str(&format!(", expected {}", expected.join(" or ")));
            }
            (e.unexpected().map_or(0, |s| s.start()), message)
        })
        .collect()
}

/// The directory relative paths in the config at `path` are resolved against.
fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
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
