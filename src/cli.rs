//! Command-line interface: argument definitions (clap), dispatch to the commands in `cli/`, and
//! the helpers they share. `cli` is the only module that prints and the only one that picks exit
//! codes: errors become a message on stderr and a typed `Exit`; nothing below this module exits.
//! Commands read the time through the pipeline's one clock.

mod channels;
/// `print!` for commands: see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// `println!` for commands: see [`write_out`].
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod console;
mod digest;
/// `rules eval`; public so the benchmark can parse a labels file as the command does.
pub mod eval;
mod feeds;
mod man;
mod prefilter;
mod rules;
mod run;
mod status;
mod store;

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
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Run one full cycle (every feed polled once), print a summary and exit.
        #[arg(long)]
        once: bool,
        /// Reload by itself when the config file or a rule file changes (checked every half
        /// second; saves by rename are seen too), as if sent SIGHUP.
        #[arg(long, conflicts_with = "once")]
        watch_rules: bool,
    },
    /// Validate the config and its rules (or rule files alone) and run every rule's examples.
    Check {
        /// The config file (TOML): checked with its secrets, then its rules.
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
        /// Also list the rules evaluated for every article (the pre-filter cannot skip them:
        /// they need no term), each with the reason.
        #[arg(long)]
        verbose: bool,
    },
    /// Try rules on text, an article or a feed, without storing or sending anything.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show every feed's fetch state, the outbox and the last digests (reads the database only).
    Status {
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message through a [[channel]] now (no outbox, no retry).
    Channels {
        #[command(subcommand)]
        action: ChannelsCommand,
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
    /// Move the state to another store: `store migrate-to` copies SQLite into PostgreSQL.
    Store {
        #[command(subcommand)]
        action: store::StoreCommand,
    },
    /// Serve the web console over the state database (read-only; beside a daemon or alone), or
    /// set a console user's password (`console passwd NAME`).
    #[command(args_conflicts_with_subcommands = true)]
    Console {
        #[command(subcommand)]
        action: Option<ConsoleCommand>,
        /// The config file whose state the console shows.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of `[console] listen` (127.0.0.1:9188).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print a shell completion script, e.g. `newswatch completions bash > /etc/bash_completion.d/newswatch`.
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `newswatch man > /usr/local/share/man/man1/newswatch.1`;
    /// with --dir, write every page: one per subcommand and newswatch.toml(5).
    Man {
        /// Write newswatch.1, newswatch-SUBCOMMAND.1 … and newswatch.toml.5 into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Render the digest from stored matches into an HTML file; sends and consumes nothing.
    Preview {
        /// The `[[digest]]` name.
        name: String,
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
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
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Send one test message through the channel and print what the service answered.
    Test {
        /// The `[[channel]]` name.
        name: String,
        /// The config file that defines the channel.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Set a user's console password (read from stdin) in the users file.
    Passwd {
        /// The user name to set (added if new).
        user: String,
        /// The config file (its `[console] users_file` is the file written).
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
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
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
        /// A feed file or http(s) URL; every item is tested. Repeat for several feeds.
        #[arg(long, group = "input")]
        feed: Vec<String>,
        /// One JSON object per article: {"article", "id", "link", "matches": [{"rule", "terms"}]}.
        #[arg(long)]
        json: bool,
    },
    /// The query tree of one rule for some text, each node true or false.
    Explain {
        /// The id of the rule to explain.
        rule_id: String,
        /// Rule files.
        #[arg(long, num_args = 1.., required = true)]
        rules: Vec<PathBuf>,
        /// Literal text, treated as the article body.
        #[arg(long)]
        text: String,
        /// The title of the `--text` article.
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
        /// The config file (TOML), e.g. /etc/newswatch/newswatch.toml.
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
    crate::service::malloc::limit_arenas();
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
            verbose,
        } => match config {
            Some(path) => rules::check_config(&path, strict, verbose),
            None => rules::check(&rules, None, strict, verbose),
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
                let inputs = match (text, article) {
                    (Some(body), _) => vec![rules::Input::Text { title, body }],
                    (None, Some(path)) => vec![rules::Input::Article(path)],
                    (None, None) => feed.into_iter().map(rules::Input::Feed).collect(),
                };
                if inputs.is_empty() {
                    eprintln!("error: give one of --text, --article or --feed");
                    return Exit::Usage;
                }
                rules::test(&rules, inputs, json)
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
            } => match load_config_read_only(&config) {
                Ok(c) => rules::backtest(&c, &rules, since, crate::clock::now()),
                Err(e) => e,
            },
        },
        Command::Status { config, json } => status::status(&config, json),
        Command::Channels {
            action: ChannelsCommand::Test { name, config },
        } => channels::test(&name, &config),
        Command::Digest { action } => digest::digest(action),
        Command::Feeds { action } => feeds::feeds(action),
        Command::Store { action } => store::store(action),
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
        Command::Man { dir } => man::man(dir.as_deref()),
    }
}

/// Writes command output to stdout. When the reader has gone away (`newswatch … | head`), the
/// process ends at once, quietly and with exit 0, as a filter in a pipe should; any other
/// write error ends it with a message and exit 1. Every command prints through this (the
/// `out!`/`outln!` macros), never through `print!`, which panics on a closed pipe.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        stdout_failed(&e);
    }
}

/// [`write_out`] for bytes.
fn write_out_bytes(bytes: &[u8]) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        stdout_failed(&e);
    }
}

fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(Exit::Ok as i32);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(Exit::Failure as i32);
}

fn completions(shell: clap_complete::Shell) -> Exit {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "newswatch", &mut script);
    write_out_bytes(&script);
    Exit::Ok
}

/// The config at `path`, every problem printed on failure.
fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        Exit::Config
    })
}

/// The config at `path` for a command that only reads (never delivers): its secrets are left
/// unread, so a missing password file is no error here. Every problem printed on failure.
fn load_config_read_only(path: &Path) -> Result<Config, Exit> {
    Config::load_without_secrets(path).map_err(|e| {
        eprintln!("{e}");
        Exit::Config
    })
}

/// `n problem`, `n problems`: counts as a reader says them.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Rules from `files`, every problem printed on failure.
fn load_rules(files: &[PathBuf]) -> Result<RuleSet, Exit> {
    RuleSet::load(files).map_err(|d| {
        eprintln!("{d}");
        Exit::Rules
    })
}

/// Threads for blocking work (parses, database calls): four per core, at least eight. A call to
/// PostgreSQL blocks its thread for up to the pool's connect timeout while the server is away,
/// and a node has several such calls at once (poll writes in flight, host gates, the match,
/// compose and delivery stages): with one thread per core they queued behind each other and a
/// node stopped writing its polls during a restart (`service::cluster_restart`).
///
/// `run --once` on SQLite waits on no network in a blocking thread: its parses are CPU-bound
/// and its database calls take one connection in turn. There one thread per core (at least
/// two) is enough, and each thread fewer is one malloc arena fewer keeping freed memory: on two
/// cores, two threads instead of eight took the cold cycle's peak RSS from 36.6 to 34.9 MB at
/// 200 feeds and from 63.4 to 61.9 MB at 10,000, with 5–6 % less CPU and 8–12 % less wall time
/// (BENCHMARKS.md, issue 22).
fn blocking_threads(once_on_sqlite: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    if once_on_sqlite {
        cores.max(2)
    } else {
        cores.saturating_mul(4).max(8)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    build_runtime(
        tokio::runtime::Builder::new_multi_thread(),
        blocking_threads(false),
    )
}

/// The runtime of `run --once`: its async work (requests, timers, the stages' turns) on the
/// calling thread, the blocking pool (`blocking_threads`) and the match stage's threads as in
/// `runtime`. One cycle has no server to answer meanwhile, and waking worker threads cost more
/// than they ran: the unchanged cycle of 200 feeds took 17 % less CPU, of 2,000 feeds 35 %
/// less, the cold cycles 1–5 % less, wall time within 2 % (BENCHMARKS.md, issue 22). While the
/// match stage runs on this thread (`off_worker`), requests wait: in a cycle they are the
/// stage's own.
fn once_runtime(on_sqlite: bool) -> Result<tokio::runtime::Runtime, Exit> {
    build_runtime(
        tokio::runtime::Builder::new_current_thread(),
        blocking_threads(on_sqlite),
    )
}

fn build_runtime(
    mut builder: tokio::runtime::Builder,
    blocking_threads: usize,
) -> Result<tokio::runtime::Runtime, Exit> {
    // Blocking threads run feed parses and database calls. Parses are CPU-bound, so more threads
    // than cores only hold more parsed feeds in memory at once (the cold cycle of 200 feeds
    // peaked 1 MB lower with two threads than with four on two cores, BENCHMARKS.md, issue 22),
    // but database calls wait on the network and on PostgreSQL's restarts: see
    // `blocking_threads`.
    builder
        .max_blocking_threads(blocking_threads)
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

    /// `run --once` on SQLite: one blocking thread per core, at least two (a parse beside a
    /// database call); elsewhere a database call may wait on the network: at least eight.
    #[test]
    fn blocking_threads_by_what_waits_in_them() {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        assert_eq!(blocking_threads(true), cores.max(2));
        assert_eq!(blocking_threads(false), (cores * 4).max(8));
    }

    /// clap's own consistency checks of every argument (conflicts, groups, defaults parse).
    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` and the man pages say what every argument is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "newswatch", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn rules_test_takes_several_feeds() {
        let cli = Cli::try_parse_from([
            "newswatch",
            "rules",
            "test",
            "--rules",
            "r.toml",
            "--feed",
            "a.xml",
            "--feed",
            "b.xml",
        ])
        .expect("valid arguments");
        let Command::Rules {
            command: RulesCommand::Test { feed, .. },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(feed, ["a.xml", "b.xml"]);
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
