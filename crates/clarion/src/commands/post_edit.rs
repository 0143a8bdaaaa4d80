//! `clarion post edit ID`: change a post's text, variables, channels or
//! time. Re-rendered and re-validated like a create; targets already
//! publishing or final are left alone, and the output says which and why.

use anyhow::Context;
use clarion_scheduler::{EditReport, PostChanges};

use super::service_error;
use crate::app::App;
use crate::time;

#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// The post's id (see `post ls`).
    pub id: i32,
    /// New body (Markdown, may use {{variables}}).
    #[arg(long, conflicts_with = "body_file")]
    pub text: Option<String>,
    /// Read the new body from a file.
    #[arg(long)]
    pub body_file: Option<std::path::PathBuf>,
    /// Set a template variable, KEY=VALUE (repeat); the others keep their values.
    #[arg(long = "var")]
    pub vars: Vec<String>,
    /// Add a channel from the config (repeat).
    #[arg(long = "add-channel")]
    pub add_channels: Vec<String>,
    /// Remove a channel; its target is cancelled unless it has gone out (repeat).
    #[arg(long = "remove-channel")]
    pub remove_channels: Vec<String>,
    /// Move the post to this time (RFC 3339, or `now`); a draft becomes scheduled.
    #[arg(long, conflicts_with = "within")]
    pub at: Option<String>,
    /// Move the post to this long from now: 90s, 10m, 2h, 1d.
    #[arg(long = "in", allow_hyphen_values = true)]
    pub within: Option<String>,
}

pub async fn run(args: EditArgs, app: &App) -> anyhow::Result<()> {
    let body = match (args.text, args.body_file) {
        (Some(text), _) => Some(text),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("--body-file {}", path.display()))?,
        ),
        (None, None) => None,
    };
    let changes = PostChanges {
        body,
        vars: super::post::parse_vars(&args.vars)?,
        add_channels: args.add_channels,
        remove_channels: args.remove_channels,
        at: time::resolve(args.at.as_deref(), args.within.as_deref())?,
    };
    let report = app
        .service
        .edit(args.id, changes)
        .await
        .map_err(service_error)?;
    print_report(args.id, &report);
    Ok(())
}

fn print_report(id: i32, report: &EditReport) {
    let outcome = &report.outcome;
    let touched = outcome.changed.len() + outcome.added.len() + outcome.cancelled.len();
    if touched == 0 {
        println!("post {id}: nothing changed");
    } else {
        println!("post {id} edited");
    }
    for t in &outcome.detail.targets {
        let what = if outcome.changed.contains(&t.id) {
            "changed"
        } else if outcome.added.contains(&t.id) {
            "added"
        } else if outcome.cancelled.contains(&t.id) {
            "cancelled"
        } else if report.unchanged.contains(&t.id) {
            "unchanged"
        } else {
            continue;
        };
        println!(
            "  {what:<10} target {:<6} {:<20} {}",
            t.id, t.channel, t.status
        );
    }
    for l in &outcome.left_alone {
        println!(
            "  left alone target {:<6} {:<20} {}: {}",
            l.target_id, l.channel, l.status, l.reason
        );
    }
}
