//! Command-line interface: argument parsing (clap) and dispatch to the stages.
//! Errors become a message on stderr and a typed exit code; nothing below this module exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::rules::RuleSet;

/// Exit codes, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A run failed at runtime (IO, database, delivery).
    Failure = 1,
    /// Command-line usage error (clap's own code).
    Usage = 2,
    /// The config file is invalid.
    Config = 3,
    /// A rule file is invalid or a rule's examples fail.
    Rules = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "newswatch",
    version,
    about = "News-monitoring alert daemon: feeds in, matched articles out by email"
)]
pub struct Cli {
    /// Log output format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll feeds, match rules and send digests; as a daemon, or one cycle with --once.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Run one full cycle (every feed polled once), print a summary and exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate the config and its rules (or rule files alone) and run every rule's examples.
    Check {
        #[arg(
            long,
            short,
            required_unless_present = "rules",
            conflicts_with = "rules"
        )]
        config: Option<PathBuf>,
        /// Rule files to check without a config.
        #[arg(long, num_args = 1..)]
        rules: Vec<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    init_logging(cli.log_format);
    dispatch(cli.command).into()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NEWSWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn dispatch(command: Command) -> Exit {
    match command {
        Command::Run { config, once } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(e) => return e,
            };
            let rules = match RuleSet::load(&config.rule_files) {
                Ok(r) => r,
                Err(d) => {
                    eprintln!("{d}");
                    return Exit::Rules;
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return Exit::Failure;
                }
            };
            let result = runtime.block_on(async {
                if once {
                    crate::pipeline::run_once(&config, &rules)
                        .await
                        .map(|summary| println!("{summary}"))
                } else {
                    crate::pipeline::run_daemon(&config, &rules).await
                }
            });
            match result {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    Exit::Failure
                }
            }
        }
        Command::Check { config, rules } => {
            let files = match config {
                Some(path) => match load_config(&path) {
                    Ok(c) => c.rule_files,
                    Err(e) => return e,
                },
                None => rules,
            };
            match RuleSet::load(&files) {
                Ok(set) => {
                    println!("ok: {} rules in {} files", set.rules().len(), files.len());
                    Exit::Ok
                }
                Err(d) => {
                    eprintln!("{d}");
                    Exit::Rules
                }
            }
        }
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        Exit::Config
    })
}
