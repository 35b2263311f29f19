//! One poll-match-digest-deliver cycle, and the daemon loop that repeats it.
//! SKELETON: the stages are wired in by the pipeline work (issue 2).

use crate::config::Config;
use crate::rules::RuleSet;

/// What one cycle did, printed by `run --once`.
#[derive(Debug, Default)]
pub struct Summary {
    pub feeds_polled: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "polled {} feeds", self.feeds_polled)
    }
}

pub async fn run_once(_config: &Config, _rules: &RuleSet) -> anyhow::Result<Summary> {
    anyhow::bail!("the pipeline is not wired yet")
}

pub async fn run_daemon(_config: &Config, _rules: &RuleSet) -> anyhow::Result<()> {
    anyhow::bail!("the daemon is not wired yet")
}
