//! Command-line interface: argument definitions (clap), dispatch to the commands in `cli/`, and
//! the helpers they share. `cli` is the only module that prints and the only one that picks exit
//! codes: errors become a message on stderr and a typed `Exit`; nothing below this module exits.
//! Commands read the time through the pipeline's one clock.

mod console;
mod digest;
/// `rules eval`; public so the benchmark can parse a labels file as the command does.
pub mod eval;
mod feeds;
mod rules;
mod run;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;
use crate::rules::RuleSet;
use crate::service::logging::LogFormat;
use crate::units::parse_duration;

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
    /// A rule file is invalid or a rule's examples fail (also: a labels file is invalid).
    Rules = 4,
    /// `rules eval --min-f1`: the rules scored below the bar.
    BelowBar = 5,
    /// `run --once`: an email could not be delivered in that run (it stays in the outbox).
    Undelivered = 6,
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
    #[arg(long, global = true, default_value = "text", value_parser = log_format_parser())]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
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
        /// Reload by itself when the config file or a rule file changes (checked every second;
        /// saves by rename are seen too), as if sent SIGHUP.
        #[arg(long, conflicts_with = "once")]
        watch_rules: bool,
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
        /// Fail on warnings too (lower-case operators, rules without examples).
        #[arg(long)]
        strict: bool,
    },
    /// Try rules on text, an article or a feed, without storing or sending anything.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show every feed's fetch state, the outbox and the last digests (reads the database only).
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Preview a digest from stored matches, or compose and send it now.
    Digest {
        #[command(subcommand)]
        action: DigestCommand,
    },
    /// Import feeds from an OPML file, or export the config's feeds as OPML 2.0.
    Feeds {
        #[command(subcommand)]
        action: FeedsCommand,
    },
    /// Serve the web console over the state database (read-only; beside a daemon or alone), or
    /// set a console user's password (`console passwd NAME`).
    #[command(args_conflicts_with_subcommands = true)]
    Console {
        #[command(subcommand)]
        action: Option<ConsoleCommand>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of `[console] listen` (127.0.0.1:9188).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print a shell completion script, e.g. `newswatch completions bash > /etc/bash_completion.d/newswatch`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `newswatch man > /usr/local/share/man/man1/newswatch.1`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Render the digest from stored matches into an HTML file; sends and consumes nothing.
    Preview {
        /// The `[[digest]]` name.
        name: String,
        #[arg(long, short)]
        config: PathBuf,
        /// Show every match of this window (`24h`, `7d`) instead of those not yet sent.
        #[arg(long, value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// Where to write the HTML part; the text part goes next to it as .txt.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compose the digest now, whatever its schedule, and deliver it.
    Send {
        /// The `[[digest]]` name.
        name: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Set a user's console password (read from stdin) in the users file.
    Passwd {
        user: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Print the OPML file's feeds as [[feed]] blocks (folders become tags, repeated URLs are
    /// skipped), or append the ones the config lacks to it.
    Import {
        /// An OPML file, as exported by any feed reader.
        file: PathBuf,
        /// Append to this config file instead of printing.
        #[arg(long, value_name = "CONFIG")]
        append: Option<PathBuf>,
    },
    /// Print the config's feeds as OPML 2.0 (tags become folders).
    Export {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Which rules match, with highlighted snippets.
    Test {
        /// Rule files.
        #[arg(long, num_args = 1.., required = true)]
        rules: Vec<PathBuf>,
        /// Literal text, treated as the article body (HTML is stripped).
        #[arg(long, group = "input")]
        text: Option<String>,
        /// The title of the `--text` article.
        #[arg(long, requires = "text")]
        title: Option<String>,
        /// An article as a JSON object (title, summary, content, link, authors, categories, lang).
        #[arg(long, group = "input")]
        article: Option<PathBuf>,
        /// A feed file or http(s) URL; every item is tested.
        #[arg(long, group = "input")]
        feed: Option<String>,
        /// One JSON object per article: {"article", "id", "link", "matches": [{"rule", "terms"}]}.
        #[arg(long)]
        json: bool,
    },
    /// The query tree of one rule for some text, each node true or false.
    Explain {
        rule_id: String,
        #[arg(long, num_args = 1.., required = true)]
        rules: Vec<PathBuf>,
        /// Literal text, treated as the article body.
        #[arg(long)]
        text: String,
        #[arg(long)]
        title: Option<String>,
    },
    /// Measure rules against labelled articles: precision, recall and F1 per rule and per
    /// language, then every false negative and false positive and why.
    Eval {
        /// Rule files.
        #[arg(long, num_args = 1.., required = true)]
        rules: Vec<PathBuf>,
        /// Labels files (JSON Lines: id, title, summary, content, lang, feed, published, labels);
        /// several are evaluated as one set.
        #[arg(long, num_args = 1.., required = true)]
        labels: Vec<PathBuf>,
        /// Print one JSON document instead of tables.
        #[arg(long)]
        json: bool,
        /// Exit with code 5 when the micro F1 is below this (0 to 1).
        #[arg(long, value_parser = parse_unit_interval)]
        min_f1: Option<f64>,
        /// Which listings follow the tables.
        #[arg(long, value_enum, default_value = "all")]
        show: eval::Show,
        /// Only the items of this language (`en`; `und` for items without one).
        #[arg(long)]
        lang: Option<String>,
    },
    /// Run rules over the articles already stored and list what they would have matched,
    /// marked NEW, same or GONE against the configured rules. Reads the database read-only.
    Backtest {
        #[arg(long, short)]
        config: PathBuf,
        /// Rule files to try (default: the configured rules).
        #[arg(long, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// How far back, by the time each article was first stored: `7d`, `48h`, `2w`.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: std::time::Duration,
    },
}

/// A number from 0 to 1 (`--min-f1`).
fn parse_unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a number from 0 to 1, got `{s}`")),
    }
}

/// `--log-format text|json`; the values are listed in `--help` and the completions.
fn log_format_parser() -> impl TypedValueParser<Value = LogFormat> {
    PossibleValuesParser::new(["text", "json"]).map(|s| match s.as_str() {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    })
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
    crate::service::logging::init(cli.log_format);
    dispatch(cli.command).into()
}

fn dispatch(command: Command) -> Exit {
    match command {
        Command::Run {
            config,
            once,
            watch_rules,
        } => run::run(&config, once, watch_rules),
        Command::Check {
            config,
            rules,
            strict,
        } => match config {
            Some(path) => match load_config(&path) {
                Ok(c) => rules::check_config(&c, strict),
                Err(e) => e,
            },
            None => rules::check(&rules, None, strict),
        },
        Command::Rules { command } => match command {
            RulesCommand::Test {
                rules,
                text,
                title,
                article,
                feed,
                json,
            } => {
                let input = match (text, article, feed) {
                    (Some(body), _, _) => rules::Input::Text { title, body },
                    (None, Some(path), _) => rules::Input::Article(path),
                    (None, None, Some(f)) => rules::Input::Feed(f),
                    (None, None, None) => {
                        eprintln!("error: give one of --text, --article or --feed");
                        return Exit::Usage;
                    }
                };
                rules::test(&rules, input, json)
            }
            RulesCommand::Explain {
                rule_id,
                rules,
                text,
                title,
            } => rules::explain(&rule_id, &rules, title, &text),
            RulesCommand::Eval {
                rules,
                labels,
                json,
                min_f1,
                show,
                lang,
            } => eval::eval(&eval::Options {
                rules,
                labels,
                json,
                min_f1,
                show,
                lang,
            }),
            RulesCommand::Backtest {
                config,
                rules,
                since,
            } => match load_config(&config) {
                Ok(c) => rules::backtest(&c, &rules, since, crate::clock::now()),
                Err(e) => e,
            },
        },
        Command::Status { config, json } => status::status(&config, json),
        Command::Digest { action } => digest::digest(action),
        Command::Feeds { action } => feeds::feeds(action),
        Command::Console {
            action,
            config,
            listen,
        } => match (action, config) {
            (Some(ConsoleCommand::Passwd { user, config }), _) => console::passwd(&config, &user),
            (None, Some(config)) => console::serve(&config, listen),
            (None, None) => {
                eprintln!("error: give --config FILE (or `console passwd NAME --config FILE`)");
                Exit::Usage
            }
        },
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
    }
}

fn completions(shell: clap_complete::Shell) -> Exit {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "newswatch", &mut std::io::stdout());
    Exit::Ok
}

fn man_page() -> Exit {
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            Exit::Failure
        }
    }
}

/// The config at `path`, every problem printed on failure.
fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        Exit::Config
    })
}

/// Rules from `files`, every problem printed on failure.
fn load_rules(files: &[PathBuf]) -> Result<RuleSet, Exit> {
    RuleSet::load(files).map_err(|d| {
        eprintln!("{d}");
        Exit::Rules
    })
}

/// Threads for blocking work (parses, database calls); more wait in the pool's queue.
const BLOCKING_THREADS: usize = 4;

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    // Blocking threads run feed parses and database calls. Every extra thread can get its own
    // glibc malloc arena, which keeps its high-water mark resident: a small pool keeps the
    // resident size near the live heap (BENCHMARKS.md, "peak RSS").
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Failure
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks of every argument (conflicts, groups, defaults parse).
    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_format_and_durations_parse_into_their_types() {
        let cli = Cli::try_parse_from([
            "newswatch",
            "--log-format",
            "json",
            "rules",
            "backtest",
            "-c",
            "nw.toml",
        ])
        .expect("valid arguments");
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Rules {
            command: RulesCommand::Backtest { since, .. },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(since, std::time::Duration::from_secs(7 * 86_400));
        let cli = Cli::try_parse_from(["newswatch", "man"]).expect("valid arguments");
        assert_eq!(cli.log_format, LogFormat::Text);
        assert!(Cli::try_parse_from(["newswatch", "--log-format", "xml", "man"]).is_err());
    }
}
