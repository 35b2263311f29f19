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
        #[arg(long, value_parser = parse_since)]
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

fn parse_since(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s)
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
        /// One JSON object per article: {"article": ..., "matches": [{"rule": ..., "terms": [...]}]}.
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
    /// Run rules over the articles already stored and list what they would have matched,
    /// marked NEW, same or GONE against the configured rules. Reads the database read-only.
    Backtest {
        #[arg(long, short)]
        config: PathBuf,
        /// Rule files to try (default: the configured rules).
        #[arg(long, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// How far back, by the time each article was first stored: `7d`, `48h`, `2w`.
        #[arg(long, default_value = "7d", value_parser = crate::config::parse_duration)]
        since: std::time::Duration,
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
    crate::service::logging::init(cli.log_format);
    dispatch(cli.command).into()
}

fn dispatch(command: Command) -> Exit {
    match command {
        Command::Run {
            config,
            once,
            watch_rules,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(e) => return e,
            };
            for file in config.world_readable_secrets() {
                tracing::warn!(
                    file = %file.display(),
                    "the SMTP password file is readable by every local user; run `chmod o-r` on it"
                );
            }
            let rules = match load_rules(&config) {
                Ok(r) => r,
                Err(e) => return e,
            };
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(e) => return e,
            };
            let state_dir = config.state_dir.clone();
            let result = runtime.block_on(async move {
                if once {
                    crate::pipeline::run_once(&config, &rules)
                        .await
                        .map(|summary| println!("{summary}"))
                } else {
                    crate::service::daemon::run_daemon(
                        config,
                        rules,
                        crate::service::daemon::Options { watch_rules },
                    )
                    .await
                }
            });
            // A database call abandoned at shutdown runs on the blocking pool; do not wait forever.
            runtime.shutdown_timeout(crate::service::daemon::SHUTDOWN_GRACE);
            match result {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    if let Some(hint) = crate::store::storage_hint(e.as_ref()) {
                        eprintln!("hint: {hint} ({})", state_dir.display());
                    }
                    Exit::Failure
                }
            }
        }
        Command::Check { config, rules } => match config {
            Some(path) => match load_config(&path) {
                Ok(c) => {
                    let names: Vec<String> = c.feeds.iter().map(|f| f.name.clone()).collect();
                    let tags: Vec<String> = c
                        .feeds
                        .iter()
                        .flat_map(|f| f.tags.iter().cloned())
                        .collect();
                    crate::rules::cli::check(&c.rule_files, Some((&names, &tags)))
                }
                Err(e) => e,
            },
            None => crate::rules::cli::check(&rules, None),
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
                    (Some(body), _, _) => crate::rules::cli::Input::Text { title, body },
                    (None, Some(path), _) => crate::rules::cli::Input::Article(path),
                    (None, None, Some(f)) => crate::rules::cli::Input::Feed(f),
                    (None, None, None) => {
                        eprintln!("error: give one of --text, --article or --feed");
                        return Exit::Usage;
                    }
                };
                crate::rules::cli::test(&rules, input, json)
            }
            RulesCommand::Explain {
                rule_id,
                rules,
                text,
                title,
            } => crate::rules::cli::explain(&rule_id, &rules, title, &text),
            RulesCommand::Backtest {
                config,
                rules,
                since,
            } => match load_config(&config) {
                Ok(c) => crate::rules::cli::backtest(&c, &rules, since, chrono::Utc::now()),
                Err(e) => e,
            },
        },
        Command::Status { config, json } => status(&config, json),
        Command::Digest { action } => digest(action),
        Command::Feeds { action } => feeds(action),
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
    }
}

fn digest(action: DigestCommand) -> Exit {
    let config_path = match &action {
        DigestCommand::Preview { config, .. } | DigestCommand::Send { config, .. } => config,
    };
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let rules = match load_rules(&config) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let result = runtime.block_on(async {
        let pipeline = crate::pipeline::Pipeline::open(&config, &rules).await?;
        let now = chrono::Utc::now();
        match action {
            DigestCommand::Preview {
                name, since, out, ..
            } => {
                let r = pipeline.preview_digest(&name, since, now).await?;
                std::fs::write(&out, &r.html)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
                let text_path = out.with_extension("txt");
                std::fs::write(&text_path, &r.text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", text_path.display()))?;
                println!(
                    "subject: {}
{} stories shown, {} more articles; HTML {:.1} KB in {}, text in {}",
                    r.subject,
                    r.shown,
                    r.more,
                    r.html.len() as f64 / 1024.0,
                    out.display(),
                    text_path.display()
                );
                Ok(())
            }
            DigestCommand::Send { name, .. } => {
                let summary = pipeline.send_digest_now(&name, now).await?;
                println!("{summary}");
                Ok::<(), anyhow::Error>(())
            }
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

fn feeds(action: FeedsCommand) -> Exit {
    use crate::opml::{self, OpmlError};
    let fail = |e: &OpmlError| {
        eprintln!("error: {e}");
        match e {
            OpmlError::Config { .. } => Exit::Config,
            _ => Exit::Failure,
        }
    };
    match action {
        FeedsCommand::Import { file, append } => {
            let imported = match opml::read(&file) {
                Ok(i) => i,
                Err(e) => return fail(&e),
            };
            for url in &imported.duplicates {
                eprintln!(
                    "skipped: {url} appears more than once in {}",
                    file.display()
                );
            }
            match append {
                None => {
                    let mut taken = std::collections::HashSet::new();
                    print!("{}", opml::feed_blocks(&imported.feeds, &mut taken));
                    eprintln!("{} feeds from {}", imported.feeds.len(), file.display());
                    Exit::Ok
                }
                Some(config) => {
                    let source = file.display().to_string();
                    match opml::append(&config, &imported, &source) {
                        Ok(report) => {
                            for url in &report.already_present {
                                eprintln!("skipped: {url} is already in {}", config.display());
                            }
                            eprintln!("added {} feeds to {}", report.added, config.display());
                            Exit::Ok
                        }
                        Err(e) => fail(&e),
                    }
                }
            }
        }
        FeedsCommand::Export { config } => {
            let text = match std::fs::read_to_string(&config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", config.display());
                    return Exit::Config;
                }
            };
            match opml::feeds_from_config(&config, &text) {
                Ok(list) => {
                    print!("{}", opml::export(&list, "newswatch feeds"));
                    Exit::Ok
                }
                Err(e) => fail(&e),
            }
        }
    }
}

fn status(path: &std::path::Path, json: bool) -> Exit {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let now = chrono::Utc::now();
    match crate::status::gather(&config) {
        Ok(report) if json => {
            println!("{:#}", crate::status::render_json(&report));
            Exit::Ok
        }
        Ok(report) => {
            print!("{}", crate::status::render_text(&report, now));
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

fn completions(shell: clap_complete::Shell) -> Exit {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "newswatch", &mut std::io::stdout());
    Exit::Ok
}

fn man_page() -> Exit {
    use clap::CommandFactory;
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            Exit::Failure
        }
    }
}

/// The configured rules, every problem printed on failure.
fn load_rules(config: &Config) -> Result<RuleSet, Exit> {
    RuleSet::load(&config.rule_files).map_err(|d| {
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

fn load_config(path: &std::path::Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        Exit::Config
    })
}
