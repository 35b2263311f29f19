//! Building `[delivery]`: the method and its keys (a key of another method is an error), the
//! sender address, and the SMTP password from the environment or a file (a systemd credential).
//! Reads the password and CA files while loading; the password only ever becomes a `SecretString`.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use toml::Spanned;

use super::build::{HOUR, NONZERO, Source, duration_within, resolve};
use super::format::RawDelivery;
use super::{Delivery, DeliveryMethod, Secrets, Security, SmtpSettings};

pub(super) fn check_mailbox(s: &str) -> Result<(), String> {
    // lettre's own error texts ("Invalid input") do not help; say what is expected instead.
    s.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|_| {
        format!("invalid email address {s:?}: expected `name@example.org` or `Name <name@example.org>`")
    })
}

pub(super) fn build(
    src: &mut Source<'_>,
    base: &Path,
    raw: Spanned<RawDelivery>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Option<Delivery> {
    let span = raw.span();
    let raw = raw.into_inner();
    if let Err(msg) = check_mailbox(raw.from.get_ref()) {
        src.error_at(raw.from.span(), msg);
    }
    let method_name = raw.method.get_ref().as_str();
    // Keys that belong to another method are mistakes worth naming.
    let misplaced = |src: &mut Source<'_>, allowed: &[&str]| {
        let present: [(&str, bool); 12] = [
            ("host", raw.host.is_some()),
            ("port", raw.port.is_some()),
            ("security", raw.security.is_some()),
            ("username", raw.username.is_some()),
            ("password_env", raw.password_env.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("final_reply_timeout", raw.final_reply_timeout.is_some()),
            ("ca_file", raw.ca_file.is_some()),
            ("helo_name", raw.helo_name.is_some()),
            ("command", raw.command.is_some()),
            ("dir", raw.dir.is_some()),
        ];
        for (key, is_set) in present {
            if is_set && !allowed.contains(&key) {
                src.error_at(
                    span.clone(),
                    format!("`{key}` does not apply to delivery method `{method_name}`"),
                );
            }
        }
    };
    let method = match method_name {
        "smtp" => {
            misplaced(
                src,
                &[
                    "host",
                    "port",
                    "security",
                    "username",
                    "password_env",
                    "password_file",
                    "timeout",
                    "final_reply_timeout",
                    "ca_file",
                    "helo_name",
                ],
            );
            let Some(host) = raw.host.clone() else {
                src.error_at(span, "delivery method `smtp` needs `host`");
                return None;
            };
            let security = raw.security.unwrap_or(Security::DEFAULT);
            let port = raw.port.unwrap_or_else(|| security.default_port());
            let mut password_file = None;
            let password = match (&raw.password_env, &raw.password_file) {
                (Some(_), Some(f)) => {
                    src.error_at(f.span(), "set `password_env` or `password_file`, not both");
                    None
                }
                // A read-only command leaves the password where it is (and records where).
                (Some(_), None) if secrets == Secrets::Skip => None,
                (None, Some(file)) if secrets == Secrets::Skip => {
                    password_file = Some(resolve_credential(base, file.get_ref(), env));
                    None
                }
                (Some(var), None) => match env(var.get_ref()) {
                    Some(v) => Some(SecretString::from(v)),
                    None => {
                        src.error_at(var.span(), format!("environment variable {} is not set (it should hold the SMTP password)", var.get_ref()));
                        None
                    }
                },
                (None, Some(file)) => {
                    let path = resolve_credential(base, file.get_ref(), env);
                    password_file = Some(path.clone());
                    match std::fs::read_to_string(&path) {
                        Ok(v) => Some(SecretString::from(
                            v.trim_end_matches(['\r', '\n']).to_string(),
                        )),
                        Err(e) => {
                            src.error_at(
                                file.span(),
                                format!("cannot read password file {}: {e}", path.display()),
                            );
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if raw.username.is_some() && raw.password_env.is_none() && raw.password_file.is_none() {
                src.error_at(
                    span,
                    "`username` is set but no password: add `password_env` or `password_file`",
                );
            }
            let ca_file = raw.ca_file.as_ref().and_then(|f| {
                let path = resolve(base, f.get_ref());
                if security == Security::None {
                    src.error_at(
                        f.span(),
                        "`ca_file` needs `security = \"starttls\"` or `\"tls\"`",
                    );
                    return None;
                }
                match std::fs::read(&path) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        src.error_at(
                            f.span(),
                            format!("cannot read CA file {}: {e}", path.display()),
                        );
                        None
                    }
                }
            });
            DeliveryMethod::Smtp(SmtpSettings {
                host,
                port,
                security,
                username: raw.username.clone(),
                password,
                password_file,
                timeout: duration_within(src, "timeout", raw.timeout.as_ref(), NONZERO..=HOUR)
                    .unwrap_or(SmtpSettings::DEFAULT_TIMEOUT),
                final_reply_timeout: duration_within(
                    src,
                    "final_reply_timeout",
                    raw.final_reply_timeout.as_ref(),
                    NONZERO..=HOUR,
                )
                .unwrap_or(SmtpSettings::DEFAULT_FINAL_REPLY_TIMEOUT),
                ca_file,
                helo_name: raw.helo_name.as_ref().and_then(|h| {
                    match check_helo_name(h.get_ref()) {
                        Ok(()) => Some(h.get_ref().clone()),
                        Err(msg) => {
                            src.error_at(h.span(), msg);
                            None
                        }
                    }
                }),
            })
        }
        "sendmail" => {
            misplaced(src, &["command"]);
            DeliveryMethod::Sendmail {
                command: PathBuf::from(
                    raw.command
                        .as_deref()
                        .unwrap_or(DeliveryMethod::DEFAULT_SENDMAIL),
                ),
            }
        }
        "file" => {
            misplaced(src, &["dir"]);
            let Some(dir) = raw.dir.as_deref() else {
                src.error_at(
                    span,
                    "delivery method `file` needs `dir`, the directory to write .eml files into",
                );
                return None;
            };
            DeliveryMethod::File {
                dir: resolve(base, dir),
            }
        }
        other => {
            src.error_at(
                raw.method.span(),
                format!(
                    "unknown delivery method {other:?}: expected \"smtp\", \"sendmail\" or \"file\""
                ),
            );
            return None;
        }
    };
    Some(Delivery {
        from: raw.from.into_inner(),
        method,
    })
}

/// `password_file` may name a systemd credential: a relative path is looked up in
/// `$CREDENTIALS_DIRECTORY` when that is set, else next to the config file.
pub(super) fn resolve_credential(
    base: &Path,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match env("CREDENTIALS_DIRECTORY") {
        Some(dir) => Path::new(&dir).join(p),
        None => base.join(p),
    }
}

/// A name for EHLO: a domain name (RFC 5321 §4.1.3 asks for the client's fully qualified one).
fn check_helo_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid `helo_name` {name:?}: expected a domain name, like \"mail.example.org\""
        ))
    }
}
