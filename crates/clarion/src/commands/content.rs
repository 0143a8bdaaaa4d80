//! `clarion content plan|sync`: posts kept as files.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use clarion_content::{ContentError, ContentLibrary, PostFile, load_post_dir_in};
use clarion_scheduler::{ContentPlan, FileAction, ServiceError, TargetChange, plan_content};
use clarion_store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{App, build_registry};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Validate every post file and show what `sync` would do: posts to
    /// create, update (which channels change) and cancel (files deleted),
    /// and those left as they are. Changes nothing.
    Plan {
        /// Posts folder (default: <content_dir>/posts).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Make the posts match the files: create, update, and cancel the
    /// unpublished targets of posts whose file is gone. Writes an `id` into
    /// files without one. Nothing is written if any file is invalid.
    Sync {
        /// Posts folder (default: <content_dir>/posts). It holds every post
        /// kept as a file: a synced post whose file is not in it is cancelled.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(cmd: ContentCommand, config: Config) -> anyhow::Result<()> {
    let (ContentCommand::Plan { dir } | ContentCommand::Sync { dir }) = &cmd;
    let dir = dir
        .clone()
        .unwrap_or_else(|| config.content_dir.join("posts"));
    // A mistyped folder would read as "every file was deleted".
    if !dir.is_dir() {
        bail!(
            "posts folder {} does not exist (it is <content_dir>/posts, or --dir); nothing was changed",
            dir.display()
        );
    }
    // A file that does not parse is refused with the problems of the others:
    // every problem at once, the same for plan and sync.
    let (files, load_errors) = load_post_dir_in(&dir, config.timezone);
    let refuse_all = |mut errors: Vec<ContentError>| {
        errors.extend(load_errors.iter().cloned());
        errors.sort_by(|a, b| a.file.cmp(&b.file));
        refuse(&errors)
    };
    match cmd {
        ContentCommand::Plan { .. } => {
            // The same validation as sync, against the stored posts; the
            // channels are built from the config alone (no secret key needed).
            let registry = build_registry(&config, &clarion_core::AdapterContext::default())?;
            let library = ContentLibrary::load(&config.content_dir.join("templates"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = Store::connect(&config.database_url, 2).await?;
            store.migrate().await?;
            let link_base = clarion_analytics::link_base(&config.attribution, &config.server.bind)
                .map_err(|e| anyhow::anyhow!("config: {e}"))?;
            let plan =
                match plan_content(&store, &library, &registry, Some(&link_base), &files).await {
                    Ok(plan) if load_errors.is_empty() => plan,
                    Ok(_) => return refuse_all(Vec::new()),
                    Err(ServiceError::Invalid(errors)) => return refuse_all(errors),
                    Err(e) => return Err(e.into()),
                };
            print_plan(&plan, &dir, &files, &link_base);
        }
        ContentCommand::Sync { .. } => {
            let app = App::open(config).await?;
            if !load_errors.is_empty() {
                return match app.service.plan_content(&files).await {
                    Ok(_) => refuse_all(Vec::new()),
                    Err(ServiceError::Invalid(errors)) => refuse_all(errors),
                    Err(e) => Err(e.into()),
                };
            }
            let bar = ProgressBar::new(files.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let synced = app.service.sync(&files, |path| {
                bar.set_message(path.to_owned());
                bar.inc(1);
            });
            let synced = match synced.await {
                Ok(r) => r,
                Err(ServiceError::Invalid(errors)) => {
                    bar.abandon();
                    return refuse_all(errors);
                }
                Err(e) => return Err(e.into()),
            };
            bar.finish_and_clear();
            if !synced.ids_written.is_empty() {
                println!(
                    "wrote an id into {} file(s); commit them, the id is how a renamed file finds its post:",
                    synced.ids_written.len()
                );
                for path in &synced.ids_written {
                    println!("  {path}");
                }
            }
            for r in &synced.files {
                if let Some(from) = &r.moved_from {
                    println!("{}: post {} (renamed from {from})", r.path, r.post_id);
                }
                if !r.locked_channels.is_empty() {
                    println!(
                        "{}: left {} unchanged (already publishing or published)",
                        r.path,
                        r.locked_channels.join(", ")
                    );
                }
            }
            for c in &synced.cancelled {
                let gone = dir.join(&c.relative_path);
                if c.channels.is_empty() {
                    println!(
                        "{} is gone: post {} had nothing left to cancel",
                        gone.display(),
                        c.post_id
                    );
                } else {
                    println!(
                        "{} is gone: cancelled post {} on {}",
                        gone.display(),
                        c.post_id,
                        c.channels.join(", ")
                    );
                }
            }
            let count = |a: FileAction| synced.files.iter().filter(|r| r.action == a).count();
            println!(
                "synced {} file(s): {} created, {} updated, {} unchanged; {} target(s) queued",
                synced.files.len(),
                count(FileAction::Create),
                count(FileAction::Update),
                count(FileAction::Unchanged),
                synced.files.iter().map(|r| r.queued).sum::<usize>()
            );
            if !synced.cancelled.is_empty() {
                println!(
                    "cancelled {} post(s) whose file is gone",
                    synced.cancelled.len()
                );
            }
        }
    }
    Ok(())
}

/// The plan, Terraform style: `+` create, `~` update, `-` cancel.
fn print_plan(plan: &ContentPlan, dir: &std::path::Path, files: &[PostFile], link_base: &str) {
    let preview = |text: &str| clarion_core::truncate_graphemes(&text.replace('\n', " "), 60);
    for (file, f) in files.iter().zip(&plan.files) {
        let post = match (f.post_id, &f.id) {
            (Some(id), Some(key)) => format!("post {id} `{key}`, "),
            (Some(id), None) => format!("post {id}, "),
            (None, _) => String::new(),
        };
        let mut notes = Vec::new();
        if let Some(from) = &f.moved_from {
            notes.push(format!("renamed from {from}"));
        }
        if f.id.is_none() {
            notes.push("no id yet: sync writes one into the file".to_owned());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        let (sign, word) = match f.action {
            FileAction::Create => ('+', "create"),
            FileAction::Update => ('~', "update"),
            FileAction::Unchanged => (' ', "unchanged"),
        };
        println!(
            "{sign} {word:<9} {}  {post}at {}{notes}",
            file.path,
            crate::time::show(f.at.timestamp_millis())
        );
        for t in &f.targets {
            let (sign, what) = match &t.change {
                TargetChange::Add => ('+', preview(&t.text)),
                TargetChange::Change(what) => {
                    ('~', format!("{}: {}", what.join(", "), preview(&t.text)))
                }
                TargetChange::Same => ('=', "unchanged".to_owned()),
                TargetChange::Locked(status) => {
                    ('!', format!("{}: left as it is", status.as_str()))
                }
                TargetChange::Remove => ('-', "removed from the file: cancelled".to_owned()),
            };
            println!("    {sign} {:<20} {what}", t.channel);
            for link in &t.new_links {
                println!(
                    "      {:<20} tracks {} as {link_base}/r/{}",
                    "", link.destination, link.code
                );
            }
        }
    }
    for c in &plan.cancels {
        println!(
            "- cancel    {}  post {} `{}`: the file is gone; cancels {} (not yet published)",
            dir.join(&c.relative_path).display(),
            c.post_id,
            c.id,
            c.channels.join(", ")
        );
    }
    println!(
        "Plan: {} to create, {} to update, {} to cancel, {} unchanged.{} Nothing was changed.",
        plan.count(FileAction::Create),
        plan.count(FileAction::Update),
        plan.cancels.len(),
        plan.count(FileAction::Unchanged),
        match plan.files_without_id() {
            0 => String::new(),
            n => format!(" {n} file(s) get an id."),
        }
    );
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
