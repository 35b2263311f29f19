//! Pieces of the `[[digest]]` and `[[alert]]` config sections (parsed by `config`): which rules a
//! digest or alert set carries (ids or globs, default all), and what a digest does when it has
//! nothing to say. Pure values; checking rule ids against the loaded rules is the loader's job.

use serde::Deserialize;

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

    /// The patterns as written (empty: every rule).
    pub fn patterns(&self) -> Vec<&str> {
        self.patterns.iter().map(glob::Pattern::as_str).collect()
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
            let sel = RuleSelection::new(patterns).expect("valid test input");
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
            .expect("valid test input");
        assert_eq!(d.when_empty, WhenEmpty::Send);
        assert!(d.rules.selects("minerals-deal") && !d.rules.selects("weimar-plus"));
        let d: D = toml::from_str("").expect("valid test input");
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
