//! Building `[[digest]]` and `[[alert]]` sets: unique names, recipient addresses, rule
//! selections, schedules and time zones, and the operator's own templates (read and
//! syntax-checked here, so a broken template fails the load, not a send).
//! Defaults come from `DigestConfig::default()` and `AlertConfig::default()`.

use std::path::Path;

use toml::Spanned;

use super::build::{Source, at_least_one, resolve};
use super::channels::split_recipients;
use super::delivery::check_mailbox;
use super::format::{RawAlert, RawDigest};
use super::{AlertConfig, DigestConfig, Templates, Unsubscribe};
use crate::digest::alerts::AlertPolicy;
use crate::digest::spec::{RuleSelection, WhenEmpty};
use crate::policy::schedule::{Schedule, parse_tz};

/// Names must be unique among sections of one kind: `name` keys the schedule state and
/// Message-IDs in the database.
fn check_name(src: &mut Source<'_>, kind: &str, name: &Spanned<String>, earlier: &[&str]) {
    if name.get_ref().trim().is_empty() {
        src.error_at(name.span(), format!("{kind} `name` is empty"));
    } else if earlier.contains(&name.get_ref().as_str()) {
        src.error_at(
            name.span(),
            format!("duplicate {kind} name {:?}", name.get_ref()),
        );
    }
}

/// The email addresses and the `channel:NAME` entries of a `to` list.
pub(super) fn check_recipients(
    src: &mut Source<'_>,
    kind: &str,
    to: &Spanned<Vec<Spanned<String>>>,
    channels: &[String],
) -> (Vec<String>, Vec<String>) {
    if to.get_ref().is_empty() {
        src.error_at(
            to.span(),
            format!(
                "{kind} `to` is empty: expected at least one recipient address or `channel:NAME`"
            ),
        );
    }
    let (emails, named) = split_recipients(src, kind, to, channels);
    for addr in &emails {
        if let Err(msg) = check_mailbox(addr.get_ref()) {
            src.error_at(addr.span(), msg);
        }
    }
    (emails.into_iter().map(Spanned::into_inner).collect(), named)
}

fn rule_selection(src: &mut Source<'_>, rules: Option<&Spanned<Vec<String>>>) -> RuleSelection {
    let Some(rules) = rules else {
        return RuleSelection::default();
    };
    RuleSelection::new(rules.get_ref()).unwrap_or_else(|errs| {
        for e in errs {
            src.error_at(rules.span(), e);
        }
        RuleSelection::default()
    })
}

/// `unsubscribe` (an address, a `mailto:` made of it) and `unsubscribe_url` (https only: the
/// one-click POST of RFC 8058 needs it).
pub(super) fn unsubscribe(
    src: &mut Source<'_>,
    mailto: Option<&Spanned<String>>,
    url: Option<&Spanned<String>>,
) -> Unsubscribe {
    let mailto = mailto.and_then(|m| match check_mailbox(m.get_ref()) {
        Ok(()) => Some(m.get_ref().trim().to_string()),
        Err(msg) => {
            src.error_at(m.span(), msg);
            None
        }
    });
    let https = url.and_then(|u| match url::Url::parse(u.get_ref().trim()) {
        Ok(parsed) if parsed.scheme() == "https" && parsed.host_str().is_some() => {
            Some(parsed.to_string())
        }
        _ => {
            src.error_at(
                u.span(),
                format!(
                    "`unsubscribe_url` {:?} is not an https URL: expected one like `https://example.org/unsubscribe`",
                    u.get_ref()
                ),
            );
            None
        }
    });
    Unsubscribe { mailto, https }
}

/// Reads `digest.html` and `digest.txt` from `dir` and checks that they parse.
fn load_templates(src: &mut Source<'_>, base: &Path, dir: &Spanned<String>) -> Option<Templates> {
    let dir_path = resolve(base, dir.get_ref());
    let mut read = |name: &str| {
        let path = dir_path.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| {
                src.error_at(
                    dir.span(),
                    format!("cannot read template {}: {e}", path.display()),
                );
            })
            .ok()?;
        if let Err(e) = minijinja::Environment::new().template_from_str(&text) {
            src.error_at(dir.span(), format!("template {}: {e}", path.display()));
            return None;
        }
        Some(text)
    };
    let html = read("digest.html");
    let text = read("digest.txt");
    Some(Templates {
        html: html?,
        text: text?,
    })
}

pub(super) fn build_digest(
    src: &mut Source<'_>,
    base: &Path,
    d: &RawDigest,
    earlier: &[RawDigest],
    channels: &[String],
) -> DigestConfig {
    let defaults = DigestConfig::default();
    let names: Vec<&str> = earlier.iter().map(|e| e.name.get_ref().as_str()).collect();
    check_name(src, "digest", &d.name, &names);
    let (to, channels) = check_recipients(src, "digest", &d.to, channels);
    let schedule = d.schedule.as_ref().and_then(|s| {
        s.get_ref()
            .parse::<Schedule>()
            .map_err(|e| src.error_at(s.span(), e.to_string()))
            .ok()
    });
    let timezone = d.timezone.as_ref().map_or(defaults.timezone, |tz| {
        parse_tz(tz.get_ref()).unwrap_or_else(|msg| {
            src.error_at(tz.span(), msg);
            defaults.timezone
        })
    });
    let when_empty = d
        .when_empty
        .as_ref()
        .map_or(defaults.when_empty, |w| *w.get_ref());
    if let Some(w) = &d.when_empty
        && when_empty == WhenEmpty::Send
        && d.schedule.is_none()
    {
        src.error_at(
            w.span(),
            "`when_empty = \"send\"` needs a `schedule` (without one a digest is composed every cycle)",
        );
    }
    DigestConfig {
        name: d.name.get_ref().trim().to_string(),
        to,
        channels,
        subject_prefix: d.subject_prefix.clone().unwrap_or(defaults.subject_prefix),
        title: d.title.clone().filter(|t| !t.trim().is_empty()),
        schedule,
        timezone,
        rules: rule_selection(src, d.rules.as_ref()),
        max_items: at_least_one(src, "max_items", d.max_items.as_ref(), defaults.max_items),
        when_empty,
        templates: d
            .template_dir
            .as_ref()
            .and_then(|dir| load_templates(src, base, dir)),
        unsubscribe: unsubscribe(src, d.unsubscribe.as_ref(), d.unsubscribe_url.as_ref()),
    }
}

/// `zone`: the first digest's time zone, the default of an alert set's `timezone`.
pub(super) fn build_alert(
    src: &mut Source<'_>,
    a: &RawAlert,
    earlier: &[RawAlert],
    zone: Option<chrono_tz::Tz>,
    channels: &[String],
) -> AlertConfig {
    let names: Vec<&str> = earlier.iter().map(|e| e.name.get_ref().as_str()).collect();
    check_name(src, "alert", &a.name, &names);
    let (to, channels) = check_recipients(src, "alert", &a.to, channels);
    let defaults = AlertConfig::default();
    let policy = defaults.policy;
    let default_zone = zone.unwrap_or(defaults.timezone);
    let timezone = a.timezone.as_ref().map_or(default_zone, |tz| {
        parse_tz(tz.get_ref()).unwrap_or_else(|msg| {
            src.error_at(tz.span(), msg);
            default_zone
        })
    });
    AlertConfig {
        name: a.name.get_ref().trim().to_string(),
        title: a.title.clone().filter(|t| !t.trim().is_empty()),
        timezone,
        to,
        channels,
        rules: rule_selection(src, a.rules.as_ref()),
        policy: AlertPolicy {
            window: a.window.map_or(policy.window, |w| w.0),
            max_per_hour: at_least_one(
                src,
                "max_per_hour",
                a.max_per_hour.as_ref(),
                policy.max_per_hour,
            ),
            max_items: at_least_one(src, "max_items", a.max_items.as_ref(), policy.max_items),
        },
        subject_prefix: a.subject_prefix.clone().unwrap_or(defaults.subject_prefix),
        unsubscribe: unsubscribe(src, a.unsubscribe.as_ref(), a.unsubscribe_url.as_ref()),
    }
}
