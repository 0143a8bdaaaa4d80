//! `clarion`: the binary. Parses the command line, loads config, wires the
//! crates together. `anyhow` lives here and nowhere else.

mod app;
mod commands;
mod config;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Self-hosted social media publishing: schedule posts to many channels,
/// published exactly once, never early, and reported when they fail.
#[derive(Debug, Parser)]
#[command(name = "clarion", version, propagate_version = true)]
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

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the publish workers until Ctrl-C or SIGTERM.
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
    /// Measure Clarion on this machine.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit = std::env::var_os("CLARION_CONFIG").is_some()
        || std::env::args().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    let config = match Config::load(&cli.config, explicit) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    match runtime.block_on(commands::dispatch(cli.command, config)) {
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

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLARION_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},sea_orm_migration=warn", config.log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
