//! `clarion post create|schedule|ls|show|cancel`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use clarion_core::TargetStatus;
use clarion_scheduler::PostInput;
use clarion_server::{PostView, format_time};
use clarion_store::{PostDetail, PostFilter};

use super::service_error;
use crate::app::App;
use crate::time;

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PostCommand {
    /// Create a post for one or more channels; scheduled unless --draft.
    Create {
        /// Channel name from the config (repeat for several).
        #[arg(long = "channel", short = 'C', required = true)]
        channels: Vec<String>,
        /// Post body (Markdown, may use {{variables}}).
        #[arg(long, conflicts_with = "body_file")]
        text: Option<String>,
        /// Read the body from a file.
        #[arg(long)]
        body_file: Option<std::path::PathBuf>,
        /// When to publish (RFC 3339, or `now`).
        #[arg(long)]
        at: Option<String>,
        /// Publish after this long: 90s, 10m, 2h, 1d.
        #[arg(long = "in")]
        within: Option<String>,
        /// Template from content/templates to wrap the body in.
        #[arg(long)]
        template: Option<String>,
        /// Template variable, KEY=VALUE (repeat).
        #[arg(long = "var")]
        vars: Vec<String>,
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long)]
        author: Option<String>,
        /// Store as a draft; schedule it later with `post schedule`.
        #[arg(long)]
        draft: bool,
        /// Publish as a thread: the body is split at lines that are exactly `---`.
        #[arg(long)]
        thread: bool,
        /// Attach a local image (repeat for several).
        #[arg(long = "media")]
        media: Vec<std::path::PathBuf>,
        /// Alt text for each --media, in the same order.
        #[arg(long = "alt")]
        alts: Vec<String>,
    },
    /// Schedule a draft, or move a scheduled post.
    Schedule {
        id: i32,
        #[arg(long)]
        at: Option<String>,
        #[arg(long = "in")]
        within: Option<String>,
    },
    /// List posts, newest first.
    Ls {
        /// Only posts with a target in this status.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Show a post, its targets and every publish attempt.
    Show {
        id: i32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel every target that has not been handed to a platform.
    Cancel { id: i32 },
    /// Create many posts from a CSV or JSON Lines file: all, or none if any line is refused.
    Import(super::post_import::ImportArgs),
}

pub async fn run(cmd: PostCommand, app: App) -> anyhow::Result<()> {
    match cmd {
        PostCommand::Create {
            channels,
            text,
            body_file,
            at,
            within,
            template,
            vars,
            campaign,
            author,
            draft,
            thread,
            media,
            alts,
        } => {
            let body = match (text, body_file) {
                (Some(text), _) => text,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("--body-file {}", path.display()))?,
                (None, None) => bail!("give the post body with --text or --body-file"),
            };
            let input = PostInput {
                body,
                template,
                vars: parse_vars(&vars)?,
                campaign,
                author,
                channels,
                overrides: BTreeMap::new(),
                at: time::resolve(at.as_deref(), within.as_deref())?,
                draft,
                thread,
                media: describe_media(&media, &alts)?,
            };
            let detail = app.service.create(input).await.map_err(service_error)?;
            print_created(&detail);
        }
        PostCommand::Schedule { id, at, within } => {
            let Some(at) = time::resolve(at.as_deref(), within.as_deref())? else {
                bail!("give --at or --in");
            };
            let detail = app.service.schedule(id, at).await.map_err(service_error)?;
            println!("post {id} scheduled for {}", at.to_rfc3339());
            print_targets(&detail);
        }
        PostCommand::Ls {
            status,
            campaign,
            limit,
        } => {
            let status = status.as_deref().map(TargetStatus::parse).transpose()?;
            let posts = app
                .store
                .list_posts(&PostFilter {
                    status,
                    campaign,
                    limit,
                })
                .await?;
            if posts.is_empty() {
                println!("no posts");
            }
            for detail in &posts {
                let when = detail
                    .post
                    .scheduled_at_ms
                    .and_then(format_time)
                    .unwrap_or_else(|| "draft".into());
                let statuses: Vec<String> = detail
                    .targets
                    .iter()
                    .map(|t| format!("{}:{}", t.channel, t.status))
                    .collect();
                println!(
                    "{:>6}  {when:<24}  {:<40}  {}",
                    detail.post.id,
                    excerpt(&detail.post.body, 40),
                    statuses.join(" ")
                );
            }
        }
        PostCommand::Show { id, json } => {
            let detail = app.store.post_detail(id).await?;
            let attempts = app
                .store
                .attempts(detail.targets.iter().map(|t| t.id).collect())
                .await?;
            let view = PostView::new(&detail, &attempts);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_view(&view);
            }
        }
        PostCommand::Import(args) => super::post_import::run(args, &app).await?,
        PostCommand::Cancel { id } => {
            let detail = app.service.cancel(id).await.map_err(service_error)?;
            println!("post {id} cancelled where it had not gone out");
            print_targets(&detail);
        }
    }
    Ok(())
}

fn describe_media(
    paths: &[std::path::PathBuf],
    alts: &[String],
) -> anyhow::Result<Vec<clarion_core::Media>> {
    if alts.len() > paths.len() {
        bail!(
            "--alt given {} times for {} --media",
            alts.len(),
            paths.len()
        );
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let alt = alts.get(i).cloned().unwrap_or_default();
            clarion_content::describe_media(path, alt).map_err(|e| anyhow::anyhow!("--media: {e}"))
        })
        .collect()
}

fn parse_vars(pairs: &[String]) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                Ok((k.to_owned(), serde_json::Value::String(v.to_owned())))
            }
            _ => bail!("--var `{pair}`: expected KEY=VALUE"),
        })
        .collect()
}

fn print_created(detail: &PostDetail) {
    match detail.post.scheduled_at_ms.and_then(format_time) {
        Some(at) => println!("post {} scheduled for {at}", detail.post.id),
        None => println!("post {} saved as a draft", detail.post.id),
    }
    print_targets(detail);
}

fn print_targets(detail: &PostDetail) {
    for t in &detail.targets {
        println!("  target {:<6} {:<20} {}", t.id, t.channel, t.status);
    }
}

fn print_view(view: &PostView) {
    println!(
        "post {}{}",
        view.id,
        view.source
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    println!(
        "  scheduled: {}",
        view.scheduled_at.as_deref().unwrap_or("draft")
    );
    if let Some(c) = &view.campaign {
        println!("  campaign:  {c}");
    }
    for t in &view.targets {
        println!("\n  [{}] target {} — {}", t.channel, t.id, t.status);
        if let Some(url) = t.platform_url.as_ref().or(t.platform_post_id.as_ref()) {
            println!(
                "    published as {url} at {}",
                t.published_at.as_deref().unwrap_or("?")
            );
        }
        if let Some(e) = &t.last_error {
            println!("    last error: {e}");
        }
        for a in &t.history {
            println!(
                "    attempt {} by {} at {}: {}{}",
                a.attempt,
                a.worker,
                a.started_at.as_deref().unwrap_or("?"),
                a.outcome,
                a.message
                    .as_deref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default()
            );
        }
        println!("    text: {}", excerpt(&t.text, 200));
    }
}

fn excerpt(text: &str, max: usize) -> String {
    clarion_core::truncate_graphemes(&text.replace('\n', " "), max)
}
