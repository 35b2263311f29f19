//! The proposed `[[digest]]` and `[[alert]]` config sections as serde types, and their pieces:
//! which rules a digest carries (ids or globs, default all), what to do when it has nothing to say.
//! Pure values; checking recipients and rule ids against the loaded rules is the loader's job.

use chrono_tz::Tz;
use serde::Deserialize;

use crate::alerts::AlertPolicy;
use crate::config::HumanDuration;
use crate::schedule::{Schedule, parse_tz};

/// What the sections look like in a config file (also parsed by a test, so it stays true).
pub const EXAMPLE_TOML: &str = r#"
[[digest]]
name = "morning-brief"
to = ["desk@example.org", "analyst@example.org"]
schedule = "weekdays 07:00"          # or "daily 07:00", "weekdays 07:00 and 17:00",
timezone = "Europe/London"           #    "mon,wed,fri 08:30", "every 4h", "30 8 * * 1-5"
rules = ["minerals-*", "healey-hegseth-talks"]   # ids or globs; omitted = all rules
max_items = 40                       # then "and N more"
when_empty = "skip"                  # or "send"

[[digest]]
name = "evening-wrap"
to = ["editor@example.org"]
schedule = "daily 18:00"
timezone = "America/New_York"

[[alert]]
name = "breaking"
to = ["duty-officer@example.org"]
rules = ["*"]                        # among rules with priority = "alert"; omitted = all of them
window = "2m"                        # a burst within the window is one email
max_per_hour = 6                     # beyond: matches go to the next digest
max_items = 20                       # per alert email; the rest go to the next digest
"#;

/// One `[[digest]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSection {
    pub name: String,
    pub to: Vec<String>,
    pub schedule: Schedule,
    /// IANA zone the schedule is read in; UTC when omitted.
    #[serde(default = "utc", deserialize_with = "de_tz")]
    pub timezone: Tz,
    #[serde(default)]
    pub rules: RuleSelection,
    /// Entries (clustered stories) shown; the rest are counted as "and N more".
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    #[serde(default)]
    pub when_empty: WhenEmpty,
    pub subject_prefix: Option<String>,
}

/// One `[[alert]]` set: its recipients, the alert rules it carries, and its batching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    pub name: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub rules: RuleSelection,
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: usize,
    #[serde(default = "default_alert_items")]
    pub max_items: usize,
}

impl AlertSection {
    pub fn policy(&self) -> AlertPolicy {
        AlertPolicy {
            window: self.window.0,
            max_per_hour: self.max_per_hour,
            max_items: self.max_items,
        }
    }
}

fn utc() -> Tz {
    Tz::UTC
}

fn de_tz<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let s = String::deserialize(d)?;
    parse_tz(&s).map_err(serde::de::Error::custom)
}

fn default_max_items() -> usize {
    50
}

fn default_window() -> HumanDuration {
    HumanDuration(AlertPolicy::default().window)
}

fn default_max_per_hour() -> usize {
    AlertPolicy::default().max_per_hour
}

fn default_alert_items() -> usize {
    AlertPolicy::default().max_items
}

/// What a digest with no items does at its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenEmpty {
    /// Send nothing; the slot still counts as served, so no backlog builds up.
    #[default]
    Skip,
    /// Send a short "nothing matched since …" email, so readers know the daemon is alive.
    Send,
}

/// The rules a digest carries: rule ids or globs over ids (`ukraine-*`). Empty means all rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSelection {
    patterns: Vec<glob::Pattern>,
}

impl RuleSelection {
    /// Parses every pattern, reporting all bad ones (`[` without `]`, …) together.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Vec<String>> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            match glob::Pattern::new(p) {
                Ok(g) => good.push(g),
                Err(e) => bad.push(format!(
                    "invalid rule pattern {p:?}: {} (expected a rule id or a glob like `ukraine-*`)",
                    e.msg
                )),
            }
        }
        if bad.is_empty() {
            Ok(RuleSelection { patterns: good })
        } else {
            Err(bad)
        }
    }

    /// Whether the rule with this id goes into the digest.
    pub fn selects(&self, rule_id: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(rule_id))
    }

    /// Patterns that select none of `rule_ids`: almost always a typo worth reporting at load.
    pub fn unused<'a>(&'a self, rule_ids: &[&str]) -> Vec<&'a str> {
        self.patterns
            .iter()
            .filter(|p| !rule_ids.iter().any(|id| p.matches(id)))
            .map(glob::Pattern::as_str)
            .collect()
    }
}

impl<'de> Deserialize<'de> for RuleSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        RuleSelection::new(&raw).map_err(|errs| serde::de::Error::custom(errs.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_sections_parse() {
        #[derive(Deserialize)]
        struct File {
            digest: Vec<DigestSection>,
            alert: Vec<AlertSection>,
        }
        let f: File = toml::from_str(EXAMPLE_TOML).unwrap_or_else(|e| panic!("{e}"));
        let [morning, evening] = &f.digest[..] else {
            panic!("two digests expected");
        };
        assert_eq!(morning.timezone, chrono_tz::Europe::London);
        assert_eq!(morning.schedule.source(), "weekdays 07:00");
        assert!(morning.rules.selects("minerals-deal") && !morning.rules.selects("weimar-plus"));
        assert_eq!(
            (morning.max_items, morning.when_empty),
            (40, WhenEmpty::Skip)
        );
        assert_eq!(evening.timezone, chrono_tz::America::New_York);
        assert!(evening.rules.selects("weimar-plus"));
        assert_eq!(
            (evening.max_items, evening.when_empty),
            (50, WhenEmpty::Skip)
        );
        assert_eq!(f.alert[0].policy(), AlertPolicy::default());
        let e = toml::from_str::<File>(
            "alert = []\n[[digest]]\nname = \"x\"\nto = []\nschedule = \"daily 07:00\"\ntimezone = \"Mars/Olympus\"",
        )
        .err()
        .map(|e| e.to_string());
        assert!(e.as_ref().is_some_and(|e| e.contains("IANA")), "{e:?}");
    }

    #[test]
    fn rule_selection_table() {
        #[rustfmt::skip]
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "anything", true),
            (&["healey-hegseth-talks"], "healey-hegseth-talks", true),
            (&["healey-hegseth-talks"], "healey-hegseth", false),
            (&["minerals-*"], "minerals-deal", true),
            (&["minerals-*"], "us-minerals", false),
            (&["*-truce", "weimar-plus"], "phased-truce", true),
            (&["*-truce", "weimar-plus"], "weimar-plus", true),
            (&["*-truce", "weimar-plus"], "washington-plan", false),
            (&["us-backstop?"], "us-backstop2", true),
        ];
        for (patterns, id, want) in cases {
            let sel = RuleSelection::new(patterns).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(sel.selects(id), *want, "{patterns:?} selects {id}");
        }
    }

    #[test]
    fn bad_patterns_are_all_reported_and_unused_ones_found() {
        let errs = RuleSelection::new(&["ok", "[oops", "also[bad"])
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("\"[oops\""), "{errs:?}");
        let sel = RuleSelection::new(&["minerals-*", "heeley-*"]).unwrap_or_default();
        assert_eq!(
            sel.unused(&["minerals-deal", "healey-hegseth-talks"]),
            vec!["heeley-*"]
        );
    }

    #[test]
    fn deserializes_from_toml() {
        #[derive(Deserialize)]
        struct D {
            #[serde(default)]
            when_empty: WhenEmpty,
            #[serde(default)]
            rules: RuleSelection,
        }
        let d: D = toml::from_str("when_empty = \"send\"\nrules = [\"minerals-*\"]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.when_empty, WhenEmpty::Send);
        assert!(d.rules.selects("minerals-deal") && !d.rules.selects("weimar-plus"));
        let d: D = toml::from_str("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.when_empty, WhenEmpty::Skip);
        assert!(d.rules.selects("anything"));
        let e = toml::from_str::<D>("when_empty = \"always\"")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_some_and(|e| e.contains("`skip`") && e.contains("`send`")),
            "{e:?}"
        );
        let e = toml::from_str::<D>("rules = [\"[x\"]")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("invalid rule pattern")));
    }
}
