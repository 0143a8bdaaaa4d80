//! `clarion`: the binary. Parses the command line, loads config, wires the
//! crates together. `anyhow` lives here and nowhere else.

mod app;
mod commands;
mod config;
mod overdue_watch;
mod time;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Self-hosted social media publishing: schedule posts to many channels,
/// published exactly once, never early, and reported when they fail.
#[derive(Debug, Parser)]
#[command(
    name = "clarion",
    version,
    propagate_version = true,
    after_help = EXAMPLES
)]
struct Cli {
    /// Config file. Every setting can be overridden by CLARION_* variables.
    #[arg(
        long,
        short,
        global = true,
        env = "CLARION_CONFIG",
        default_value = "config/clarion.toml"
    )]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  clarion post create -C masto -C sky --text 'Hello' --at 2027-03-01T09:00:00
  clarion post create -C masto --text 'In a moment' --in 1h30m
  clarion post ls --from 2027-03-01 --to 2027-03-07
  clarion post show 12
  clarion content plan && clarion content sync
  clarion inbox ls --status open
  clarion inbox reply 12 'Thanks, fixed now!'
  clarion run
  clarion completions bash > /etc/bash_completion.d/clarion

Times without an offset are read in the `timezone` setting (default UTC).";

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server, publish workers, listeners and bridge until Ctrl-C or SIGTERM.
    Run(commands::run::Args),
    /// Create or upgrade the database schema (done automatically by other commands too).
    Migrate,
    /// Create, schedule, list, show and cancel posts.
    #[command(subcommand)]
    Post(commands::post::PostCommand),
    /// Posts kept as files under content/posts: validate and sync them.
    #[command(subcommand)]
    Content(commands::content::ContentCommand),
    /// Inspect the publish queue.
    #[command(subcommand)]
    Queue(commands::queue::QueueCommand),
    /// List configured channels and verify their credentials.
    #[command(subcommand)]
    Channels(commands::channels::ChannelsCommand),
    /// The unified inbox: mentions, replies and DMs from every listening channel.
    #[command(subcommand)]
    Inbox(commands::inbox::InboxCommand),
    /// Listener health: per channel state, last event, lag, last error.
    #[command(subcommand)]
    Listeners(commands::listeners::ListenersCommand),
    /// Check the `[[rules]]` of the config file against a sample item.
    #[command(subcommand)]
    Rules(commands::listeners::RulesCommand),
    /// Tracked links (`/r/CODE`): create and list them with their clicks.
    #[command(subcommand)]
    Links(commands::attribution::LinksCommand),
    /// KOL campaigns (files in content/campaigns): list them with their creators.
    #[command(subcommand)]
    Campaigns(commands::attribution::CampaignsCommand),
    /// Orders from shops: import a CSV export.
    #[command(subcommand)]
    Orders(commands::attribution::OrdersCommand),
    /// Reports: a campaign under an attribution model (table, CSV, JSON, SVG chart).
    #[command(subcommand)]
    Report(commands::attribution::ReportCommand),
    /// The team: users, roles, passwords, sign-in links and API tokens.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Measure Clarion on this machine.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Print a shell completion script: `clarion completions bash > /etc/bash_completion.d/clarion`.
    Completions(commands::completions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_run = matches!(cli.command, Command::Run(_));
    if !is_run {
        // `clarion post ls | head -1`: end quietly when the reader goes away,
        // like other Unix tools. (`run` keeps ignoring SIGPIPE: it is a server.)
        reset_sigpipe();
    }
    if let Command::Completions(args) = &cli.command {
        commands::completions::print(args);
        return ExitCode::SUCCESS;
    }
    let explicit = std::env::var_os("CLARION_CONFIG").is_some()
        || std::env::args().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    let config = match Config::load(&cli.config, explicit) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    time::set_zone(config.timezone);
    init_tracing(&config, is_run);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    let result = runtime.block_on(commands::dispatch(cli.command, config));
    // Dropping a runtime waits without limit for every task and blocking
    // thread to end; a pool's background task or a stuck connection thread
    // must not keep a finished command alive (a CLI run was seen hanging
    // after its work was done). Everything that must be written was
    // written and committed before `dispatch` returned.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One clear line (per problem) on stderr, non-zero exit.
fn fail(error: &anyhow::Error) -> ExitCode {
    let message = error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

#[cfg(unix)]
fn reset_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread is started;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn reset_sigpipe() {}

/// Colour only for a person at a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
fn use_colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing(config: &Config, is_run: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLARION_LOG").unwrap_or_else(|_| {
        // The key file's permissions warning matters where the key is used
        // for real, at `run`; other commands would repeat it every time.
        let quiet = if is_run {
            String::new()
        } else {
            format!(",{}=off", clarion_store::KEY_MODE_LOG_TARGET)
        };
        tracing_subscriber::EnvFilter::new(format!(
            "{},sea_orm_migration=warn{quiet}",
            config.log.level
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(use_colour(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Splits a shell line into words: single and double quotes, and a
    /// trailing `# comment` outside quotes. Enough for the README's lines.
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quote, mut in_word) =
            (Vec::new(), String::new(), None, false);
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, '#') if !in_word => break,
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// Every `clarion ...` line in the README's shell blocks parses with the
    /// real command line: a renamed command or flag fails here, so the
    /// README cannot drift from the binary.
    #[test]
    fn the_readmes_command_lines_parse() {
        let readme = include_str!("../../../README.md");
        // (inside a fenced block, and is it a shell block)
        let mut block: Option<bool> = None;
        let mut checked = 0;
        for line in readme.lines() {
            if line.starts_with("```") {
                block = match block {
                    Some(_) => None,
                    None => Some(matches!(line.trim(), "```sh" | "```bash" | "```console")),
                };
                continue;
            }
            let line = line.trim_start_matches("$ ");
            if block != Some(true) || !line.starts_with("clarion ") {
                continue;
            }
            let words = shell_words(line);
            if let Err(e) = Cli::try_parse_from(&words) {
                // `--help`/`--version` lines "fail" by printing: those are fine.
                assert!(
                    matches!(
                        e.kind(),
                        clap::error::ErrorKind::DisplayHelp
                            | clap::error::ErrorKind::DisplayVersion
                    ),
                    "README line does not parse: {line}\n{e}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} README command lines found");
    }

    #[test]
    fn shell_words_keep_quoted_text_and_drop_comments() {
        assert_eq!(
            shell_words("clarion post create --text 'Good morning' --at x   # note"),
            [
                "clarion",
                "post",
                "create",
                "--text",
                "Good morning",
                "--at",
                "x"
            ]
        );
        assert_eq!(shell_words(r#"a "b # c" d"#), ["a", "b # c", "d"]);
    }

    /// `clarion post schedule` -> every argument of every command.
    fn walk(command: &clap::Command, path: &str, visit: &mut impl FnMut(&str, &clap::Command)) {
        let path = format!("{path} {}", command.get_name());
        visit(&path, command);
        for sub in command.get_subcommands() {
            walk(sub, &path, visit);
        }
    }

    #[test]
    fn every_command_option_and_positional_has_a_help_line() {
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut |path, command| {
            if command.get_about().is_none() && path != " clarion" {
                missing.push(format!("{path}: no about"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
        });
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    #[test]
    fn every_in_option_takes_a_negative_value_to_the_one_parser() {
        // `--in -5m` must reach `time::parse_in` (one message with
        // examples), not be taken for an unknown flag by clap.
        let mut found = 0;
        walk(&Cli::command(), "", &mut |path, command| {
            for arg in command.get_arguments() {
                if arg.get_long() == Some("in") {
                    found += 1;
                    assert!(arg.is_allow_hyphen_values_set(), "{path} --in");
                }
            }
        });
        assert!(found >= 2, "{found}");
    }

    #[test]
    fn top_level_help_shows_examples() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("clarion post ls --from"), "{help}");
    }
}
