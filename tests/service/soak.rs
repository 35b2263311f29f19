//! The crash harness's parts (issues 8 and 16): the SMTP fault segments its kill rounds run
//! against, where each kill is aimed and which stage it landed in (read from the killed
//! process's own log), and the ledger of what every sink received. The test that drives them is
//! `survive::sigkill_at_random_moments_loses_nothing_and_duplicates_only_by_message_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::http::growing_title;
use crate::support::mail;
use crate::support::smtp::SmtpSink;
use crate::survive::{Rng, smtp};

/// Every fault mode the soak knows, in the order a default run visits them. `none` is a healthy
/// server; the rest are `smtp_sink.py --fault` modes. `550` is left out on purpose: a message
/// refused for good is kept as failed, never delivered, which the ledger would count as lost.
pub const FAULTS: [&str; 8] = [
    "none",
    "slow-final",
    "no-quit",
    "store-hang",
    "drop",
    "451",
    "421-greeting",
    "hang",
];

/// The fault modes to run, from `NEWSWATCH_SOAK_SMTP_FAULTS` (a comma-separated list; every
/// mode in [`FAULTS`] when unset or `all`).
pub fn faults_from_env() -> Vec<&'static str> {
    let Ok(list) = std::env::var("NEWSWATCH_SOAK_SMTP_FAULTS") else {
        return FAULTS.to_vec();
    };
    if list.trim() == "all" {
        return FAULTS.to_vec();
    }
    let picked: Vec<&'static str> = list
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            FAULTS.iter().copied().find(|k| *k == f).unwrap_or_else(|| {
                panic!("NEWSWATCH_SOAK_SMTP_FAULTS: unknown fault {f:?}; known: {FAULTS:?}")
            })
        })
        .collect();
    assert!(
        !picked.is_empty(),
        "NEWSWATCH_SOAK_SMTP_FAULTS names no fault"
    );
    picked
}

/// `smtp_sink.py` arguments for a fault mode.
fn sink_args(fault: &str) -> Vec<&str> {
    match fault {
        "none" => Vec::new(),
        // The 250 comes after the exchange's `timeout` (300 ms) but within the final reply's
        // own time: the "answers the final 250 after delivery.timeout".
        "slow-final" => vec!["--fault", "slow-final", "--fault-delay", "0.5"],
        other => vec!["--fault", other],
    }
}

/// The `[delivery]` body for a sink on `port` running `fault`.
fn delivery(fault: &str, port: u16) -> String {
    match fault {
        "slow-final" => format!(
            "method = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout = \"300ms\"\nfinal_reply_timeout = \"5s\""
        ),
        _ => smtp(port, "5s"),
    }
}

/// One segment of the soak: a sink running one fault mode, and which round each message it
/// stored first showed up after.
pub struct Segment {
    pub fault: &'static str,
    pub sink: SmtpSink,
    /// For each stored message, in the sink's order: the global index of the round it was
    /// first seen after.
    arrived_in: Vec<usize>,
    /// The last round noted.
    last_round: usize,
}

impl Segment {
    pub fn start(dir: &Path, index: usize, fault: &'static str) -> Segment {
        let sink = SmtpSink::start(
            &dir.join(format!("received-{index}-{fault}")),
            &sink_args(fault),
        );
        Segment {
            fault,
            sink,
            arrived_in: Vec::new(),
            last_round: 0,
        }
    }

    pub fn delivery(&self) -> String {
        delivery(self.fault, self.sink.port)
    }

    /// Notes the messages the sink stored since the last call as arrived in `round`.
    pub fn note_arrivals(&mut self, round: usize) {
        self.last_round = round;
        let now = mail::eml_files(&self.sink.dir).len();
        while self.arrived_in.len() < now {
            self.arrived_in.push(round);
        }
    }
}

/// Where a round's kill is aimed. Random moments cover start-up, fetch and idle well; the
/// stage targets wait for the log line that hands work to that stage and kill just after it.
#[derive(Clone, Copy, Debug)]
pub enum Aim {
    /// Within the first 300 ms or 900 ms of the run.
    Random(u64),
    /// This long after the first log line containing the needle.
    After(&'static str, u64),
}

impl Aim {
    pub fn pick(rng: &mut Rng, fault: &str) -> Aim {
        // The slow faults hold a message for 0.5 s (slow-final) or 1 s (no-quit's QUIT) after
        // it was handed over: aim the send kills across that span too.
        let send_span = match fault {
            "slow-final" => 700,
            "no-quit" => 1_200,
            _ => 40,
        };
        match rng.below(6) {
            0..=2 => {
                // Half in the first 300 ms (start-up, poll, match, compose, send), half anywhere
                // in the first 900 ms (including the daemon's idle wait).
                let window = if rng.below(2) == 0 { 300 } else { 900 };
                Aim::Random(rng.below(window))
            }
            3 => Aim::After(": polled ", rng.below(4)),
            4 => Aim::After(": matched ", rng.below(4)),
            _ => Aim::After(": digest composed", rng.below(send_span)),
        }
    }
}

/// The stage a kill landed in: where the newest unit of work was, from the killed process's
/// log (stages run side by side, so another stage may have been busy too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Before the daemon's `daemon started` line.
    StartUp,
    /// A poll (fetch, parse, store) in progress or due: no newer work waiting downstream.
    Fetch,
    /// A poll stored new items that were not yet matched.
    Match,
    /// Matched, not yet composed.
    Compose,
    /// A message composed or due and its SMTP exchange not finished.
    Send,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::StartUp => "start-up",
            Stage::Fetch => "fetch",
            Stage::Match => "match",
            Stage::Compose => "compose",
            Stage::Send => "send",
        })
    }
}

/// What one kill interrupted.
#[derive(Clone, Copy, Debug)]
pub struct Landing {
    pub stage: Stage,
    /// Mail was owed: a message due at start or composed since had no outcome logged yet (being
    /// sent, or waiting for the delivery stage's turn), whatever the newest work was.
    pub mail_owed: bool,
}

/// Reads a killed process's whole log. `due_at_start` is how many outbox messages were due
/// when it started (the delivery stage sends those first).
pub fn landing(log: &[String], once: bool, due_at_start: usize) -> Landing {
    let mut stage = if once { Stage::Fetch } else { Stage::StartUp };
    let mut owed = due_at_start;
    let mut outcomes = 0;
    for line in log {
        if line.contains(": daemon started") {
            stage = if owed > 0 { Stage::Send } else { Stage::Fetch };
        } else if line.contains(": polled ") {
            stage = Stage::Match;
        } else if line.contains(": matched ") {
            stage = Stage::Compose;
        } else if line.contains(": digest composed") || line.contains(": alert composed") {
            stage = Stage::Send;
            owed += 1;
        } else if line.contains(": email sent") || line.contains(": delivery failed") {
            outcomes += 1;
            if stage == Stage::Send && outcomes >= owed {
                stage = Stage::Fetch;
            }
        } else if line.contains(": delivery deferred") {
            // The pass stops at a deferral; the rest wait for the next wake-up.
            outcomes += 1;
            owed = outcomes;
            if stage == Stage::Send {
                stage = Stage::Fetch;
            }
        }
    }
    // `run --once` sends what was due only after its poll, match and compose.
    if once
        && stage == Stage::Fetch
        && owed > outcomes
        && log.iter().any(|l| l.contains(": matched "))
    {
        stage = Stage::Send;
    }
    Landing {
        stage,
        mail_owed: owed > outcomes,
    }
}

/// Kills per stage and per fault, for the report.
#[derive(Default)]
pub struct Spread {
    by_stage: BTreeMap<Stage, usize>,
    by_fault: BTreeMap<&'static str, BTreeMap<Stage, usize>>,
    mail_owed: BTreeMap<&'static str, usize>,
    kills: BTreeMap<&'static str, usize>,
}

impl Spread {
    pub fn add(&mut self, fault: &'static str, landing: Landing) {
        *self.by_stage.entry(landing.stage).or_default() += 1;
        *self
            .by_fault
            .entry(fault)
            .or_default()
            .entry(landing.stage)
            .or_default() += 1;
        *self.kills.entry(fault).or_default() += 1;
        if landing.mail_owed {
            *self.mail_owed.entry(fault).or_default() += 1;
        }
    }

    pub fn kills_in(&self, stage: Stage) -> usize {
        self.by_stage.get(&stage).copied().unwrap_or(0)
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stages = |m: &BTreeMap<Stage, usize>| {
            m.iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "kills by stage: {}", stages(&self.by_stage))?;
        for (fault, m) in &self.by_fault {
            writeln!(
                f,
                "  {fault}: {} kills ({}); mail owed at {}",
                self.kills.get(fault).copied().unwrap_or(0),
                stages(m),
                self.mail_owed.get(fault).copied().unwrap_or(0)
            )?;
        }
        Ok(())
    }
}

/// One received copy of a message.
struct Received {
    message_id: String,
    text: String,
    fault: &'static str,
    /// The round it was first seen after (`usize::MAX`: the recovery runs).
    round: usize,
}

/// Everything every sink received, checked against what the feed listed.
pub struct Ledger {
    copies: Vec<Received>,
}

/// The verdict on a ledger: what must be empty, and what is reported.
pub struct Verdict {
    pub items: usize,
    pub mails: usize,
    pub lost: Vec<usize>,
    /// Items that arrived under more than one Message-ID.
    pub split: Vec<(usize, BTreeSet<String>)>,
    /// Message-IDs received again although no earlier copy came in or just after a killed
    /// round (a resend the crash window does not explain).
    pub unexplained: Vec<String>,
    /// Items received more than once (always under one Message-ID, or `split` says so).
    pub items_resent: usize,
    /// Messages (Message-IDs) stored more than once.
    pub messages_resent: usize,
    /// The copies after a message's first, by the fault of the segment they came in.
    pub copies_by_fault: BTreeMap<&'static str, usize>,
    /// Messages stored again after a killed process had logged them sent (it had the 250; the
    /// kill came before the mark's commit). The rest were killed before the 250 reached them:
    /// the server had stored the message and not yet answered.
    pub after_250: usize,
}

impl Ledger {
    pub fn read(segments: &[Segment], recovery: &Path) -> Ledger {
        let mut copies = Vec::new();
        for seg in segments {
            for (i, m) in mail::messages(&seg.sink.dir).into_iter().enumerate() {
                copies.push(Received {
                    message_id: m.message_id,
                    text: m.text,
                    fault: seg.fault,
                    // Stored after the last note: while the segment's last round was reaped.
                    round: seg.arrived_in.get(i).copied().unwrap_or(seg.last_round + 1),
                });
            }
        }
        for m in mail::messages(recovery) {
            copies.push(Received {
                message_id: m.message_id,
                text: m.text,
                fault: "recovery",
                round: usize::MAX,
            });
        }
        Ledger { copies }
    }

    /// `killed[r]`: round `r` ended in a SIGKILL; `acknowledged`: for a Message-ID, the killed
    /// rounds whose process logged it sent.
    pub fn verdict(
        &self,
        items: usize,
        killed: &[bool],
        acknowledged: &BTreeMap<String, Vec<usize>>,
    ) -> Verdict {
        let mut seen_in: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let mut items_resent = 0;
        for i in 1..=items {
            let title = growing_title(i);
            let mut copies = 0;
            for c in self.copies.iter().filter(|c| c.text.contains(&title)) {
                seen_in.entry(i).or_default().insert(c.message_id.clone());
                copies += 1;
            }
            if copies > 1 {
                items_resent += 1;
            }
        }
        // A Message-ID stored twice: the earlier copy must have arrived in a killed round or
        // the round after one (the sink may finish storing a message after the kill was reaped).
        let crash_window = |round: usize| {
            killed.get(round) == Some(&true)
                || round.checked_sub(1).and_then(|r| killed.get(r)) == Some(&true)
        };
        let mut by_id: BTreeMap<&str, Vec<(usize, &'static str)>> = BTreeMap::new();
        for c in &self.copies {
            by_id
                .entry(&c.message_id)
                .or_default()
                .push((c.round, c.fault));
        }
        let mut copies_by_fault: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut messages_resent = 0;
        let mut after_250 = 0;
        let mut unexplained = Vec::new();
        for (id, mut copies) in by_id {
            if copies.len() < 2 {
                continue;
            }
            messages_resent += 1;
            // Stored again after a round that had the 250 and was killed.
            let acks = acknowledged
                .get(id.trim_matches(['<', '>']))
                .map_or(&[][..], Vec::as_slice);
            if copies.iter().any(|&(r, _)| acks.iter().any(|&a| r > a)) {
                after_250 += 1;
            }
            copies.sort_unstable();
            for &(_, fault) in &copies[1..] {
                *copies_by_fault.entry(fault).or_default() += 1;
            }
            if !copies[..copies.len() - 1]
                .iter()
                .all(|&(r, _)| crash_window(r))
            {
                unexplained.push(format!("{id} (copies in rounds, faults {copies:?})"));
            }
        }
        Verdict {
            items,
            mails: self.copies.len(),
            lost: (1..=items).filter(|i| !seen_in.contains_key(i)).collect(),
            split: seen_in
                .into_iter()
                .filter(|(_, ids)| ids.len() > 1)
                .collect(),
            unexplained,
            items_resent,
            messages_resent,
            copies_by_fault,
            after_250,
        }
    }
}

/// The Message-IDs a log says were sent (`email sent message_id=<…>`), without brackets.
pub fn logged_sent(log: &[String]) -> impl Iterator<Item = String> + '_ {
    log.iter()
        .filter(|l| l.contains(": email sent"))
        .filter_map(|l| l.split("message_id=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|id| id.trim_matches(['<', '>']).to_string())
}

/// The recovery sink's directory.
pub fn recovery_dir(dir: &Path) -> PathBuf {
    dir.join("received-recovery")
}

/// How long to wait for an aimed kill's log line before killing anyway.
pub const AIM_LIMIT: Duration = Duration::from_secs(3);
