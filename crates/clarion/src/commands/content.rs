//! `clarion content plan|sync`: posts kept as files.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use clarion_content::{ContentError, ContentLibrary, load_post_dir, plan_file};
use clarion_store::SyncOutcome;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{App, build_registry};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Validate every post file and print what would be scheduled. Writes nothing.
    Plan {
        /// Posts folder (default: <content_dir>/posts).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Create or update posts from the files (idempotent). Nothing is written if any file is invalid.
    Sync {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(cmd: ContentCommand, config: Config) -> anyhow::Result<()> {
    let (ContentCommand::Plan { dir } | ContentCommand::Sync { dir }) = &cmd;
    let dir = dir
        .clone()
        .unwrap_or_else(|| config.content_dir.join("posts"));
    let (files, load_errors) = load_post_dir(&dir);
    if !load_errors.is_empty() {
        return refuse(&load_errors);
    }
    match cmd {
        ContentCommand::Plan { .. } => {
            // Plan needs no database: it validates against the config alone.
            let registry = build_registry(&config, &clarion_core::AdapterContext::default())?;
            let library = ContentLibrary::load(&config.content_dir.join("templates"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut plans = Vec::new();
            let mut errors = Vec::new();
            for file in &files {
                match plan_file(&library, file, &registry) {
                    Ok(plan) => plans.push(plan),
                    Err(mut e) => errors.append(&mut e),
                }
            }
            if !errors.is_empty() {
                return refuse(&errors);
            }
            for (file, targets) in files.iter().zip(plans) {
                println!("{}  at {}", file.path, file.at.to_rfc3339());
                for t in targets {
                    let preview = clarion_core::truncate_graphemes(&t.text.replace('\n', " "), 70);
                    println!("  -> {:<20} {preview}", t.channel);
                }
            }
            println!("{} post file(s) valid; nothing was written", files.len());
        }
        ContentCommand::Sync { .. } => {
            let app = App::open(config).await?;
            let bar = ProgressBar::new(files.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let reports = app.service.sync(&files, |path| {
                bar.set_message(path.to_owned());
                bar.inc(1);
            });
            let reports = match reports.await {
                Ok(r) => r,
                Err(clarion_scheduler::ServiceError::Invalid(errors)) => {
                    bar.abandon();
                    return refuse(&errors);
                }
                Err(e) => return Err(e.into()),
            };
            bar.finish_and_clear();
            let count = |o: SyncOutcome| reports.iter().filter(|r| r.outcome == o).count();
            for r in &reports {
                if !r.locked_channels.is_empty() {
                    println!(
                        "{}: left {} unchanged (already publishing or published)",
                        r.path,
                        r.locked_channels.join(", ")
                    );
                }
            }
            println!(
                "synced {} file(s): {} created, {} updated, {} unchanged; {} target(s) queued",
                reports.len(),
                count(SyncOutcome::Created),
                count(SyncOutcome::Updated),
                count(SyncOutcome::Unchanged),
                reports.iter().map(|r| r.queued).sum::<usize>()
            );
        }
    }
    Ok(())
}

fn refuse(errors: &[ContentError]) -> anyhow::Result<()> {
    for e in errors {
        eprintln!("error: {e}");
    }
    bail!(
        "{} problem(s) in the content; nothing was queued",
        errors.len()
    )
}
