//! `clarion post create|schedule|ls|show|cancel`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use clarion_core::TargetStatus;
use clarion_scheduler::PostInput;
use clarion_server::PostView;
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
        /// When to publish: 2027-03-01T09:00:00 (in the configured timezone), 2027-03-01T09:00:00Z, or `now`.
        #[arg(long)]
        at: Option<String>,
        /// Publish after this long: 90s, 5m, 1h30m, 2d, 1.5h.
        #[arg(long = "in", allow_hyphen_values = true)]
        within: Option<String>,
        /// Template from content/templates to wrap the body in.
        #[arg(long)]
        template: Option<String>,
        /// Template variable, KEY=VALUE (repeat).
        #[arg(long = "var")]
        vars: Vec<String>,
        /// Campaign name, to group and filter posts (`post ls --campaign`).
        #[arg(long)]
        campaign: Option<String>,
        /// Who wrote the post (kept with it, shown by `post show`).
        #[arg(long)]
        author: Option<String>,
        /// Store as a draft; schedule it later with `post schedule`.
        #[arg(long)]
        draft: bool,
        /// Publish as a thread: the body is split at lines that are exactly `---`.
        #[arg(long)]
        thread: bool,
        /// Keep a campaign post's links as written (they are tracked links by default).
        #[arg(long)]
        no_track_links: bool,
        /// An A/B variant, NAME=TEXT (repeat; channels take them in turn, one each).
        #[arg(long = "variant", value_name = "NAME=TEXT")]
        variants: Vec<String>,
        /// Test the variants over time slots instead: one post per variant on every channel, this far apart (e.g. 1d, 3h).
        #[arg(long, value_name = "DURATION", requires = "variants")]
        variant_every: Option<String>,
        /// Attach a file from the media folder (media_dir, default content/media), by its path from here or within that folder (repeat for several).
        #[arg(long = "media")]
        media: Vec<std::path::PathBuf>,
        /// Alt text for each --media, in the same order.
        #[arg(long = "alt")]
        alts: Vec<String>,
    },
    /// Schedule a draft, or move a scheduled post.
    Schedule {
        /// The post's id (from `post ls`).
        id: i32,
        /// When to publish: 2027-03-01T09:00:00 (in the configured timezone), 2027-03-01T09:00:00Z, or `now`.
        #[arg(long)]
        at: Option<String>,
        /// Publish after this long: 90s, 5m, 1h30m, 2d, 1.5h.
        #[arg(long = "in", allow_hyphen_values = true)]
        within: Option<String>,
    },
    /// List posts, newest first; with --from/--to, the schedule by day.
    Ls {
        /// Only posts with a target in this status (draft, scheduled, publishing, published, failed, outcome_unknown, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only posts of this campaign.
        #[arg(long)]
        campaign: Option<String>,
        /// At most this many posts (default 20; 1000 with --from/--to).
        #[arg(long)]
        limit: Option<u64>,
        /// List posts scheduled from this day (2027-03-01, in the configured timezone) or time on, sorted by time and grouped by day. Default with --to: now.
        #[arg(long)]
        from: Option<String>,
        /// ... up to the end of this day (or up to this time). Default with --from: 7 days later.
        #[arg(long)]
        to: Option<String>,
    },
    /// Show a post, its targets (a thread part by part) and every publish attempt.
    Show {
        /// The post's id (from `post ls`).
        id: i32,
        /// Print JSON instead of text (stable for scripts; times in UTC).
        #[arg(long)]
        json: bool,
    },
    /// Cancel every target that has not been handed to a platform.
    Cancel {
        /// The post's id (from `post ls`).
        id: i32,
    },
    /// Create many posts from a CSV or JSON Lines file: all, or none if any line is refused.
    Import(super::post_import::ImportArgs),
    /// Change a post's text, variables, channels or time (targets not yet out only).
    Edit(super::post_edit::EditArgs),
    /// Send failed or outcome_unknown targets again, with the same idempotency key.
    Retry(super::post_retry::RetryArgs),
    /// Record what you checked on the platform: --published URL or --not-published.
    Settle(super::post_retry::SettleArgs),
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
            no_track_links,
            variants,
            variant_every,
        } => {
            let variants = variants
                .iter()
                .map(|v| match v.split_once('=') {
                    Some((name, text)) => Ok((name.trim().to_owned(), text.to_owned())),
                    None => Err(anyhow::anyhow!("--variant `{v}`: write NAME=TEXT")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = match (text, body_file) {
                (Some(text), _) => text,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("--body-file {}", path.display()))?,
                (None, None) if !variants.is_empty() => String::new(),
                (None, None) => bail!("give the post body with --text, --body-file or --variant"),
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
                reply_to: None,
                untracked: no_track_links,
                variants,
                variant: None,
                known_links: Default::default(),
            };
            if let Some(every) = variant_every {
                let every = time::parse_duration(&every).ok_or_else(|| {
                    anyhow::anyhow!("--variant-every `{every}`: {}", time::IN_EXAMPLES)
                })?;
                let posts = app
                    .service
                    .create_variants_in_slots(input, every)
                    .await
                    .map_err(service_error)?;
                for detail in &posts {
                    print_created(detail);
                }
                return Ok(());
            }
            let detail = app.service.create(input).await.map_err(service_error)?;
            print_created(&detail);
        }
        PostCommand::Schedule { id, at, within } => {
            let Some(at) = time::resolve(at.as_deref(), within.as_deref())? else {
                bail!("give --at or --in");
            };
            let detail = app.service.schedule(id, at).await.map_err(service_error)?;
            println!(
                "post {id} scheduled for {}",
                time::show(at.timestamp_millis())
            );
            print_targets(&detail);
        }
        PostCommand::Ls {
            status,
            campaign,
            limit,
            from,
            to,
        } => {
            let status = status
                .as_deref()
                .map(TargetStatus::parse)
                .transpose()
                .context("--status")?;
            if from.is_some() || to.is_some() {
                let filter = PostFilter {
                    status,
                    campaign,
                    limit: limit.unwrap_or(1000),
                };
                return super::post_ls::by_day(&app, from.as_deref(), to.as_deref(), &filter).await;
            }
            let posts = app
                .store
                .list_posts(&PostFilter {
                    status,
                    campaign,
                    limit: limit.unwrap_or(20),
                })
                .await?;
            if posts.is_empty() {
                println!("no posts");
            }
            for detail in &posts {
                let when = detail
                    .post
                    .scheduled_at_ms
                    .map(time::show)
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
                print!("{}", render_detail(&detail, &attempts));
            }
        }
        PostCommand::Import(args) => super::post_import::run(args, &app).await?,
        PostCommand::Edit(args) => super::post_edit::run(args, &app).await?,
        PostCommand::Retry(args) => super::post_retry::retry(args, &app).await?,
        PostCommand::Settle(args) => super::post_retry::settle(args, &app).await?,
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
            // A path relative to here, else to the media folder; the post
            // service checks it is inside the media folder (`media_dir`).
            let path = match path.is_relative() && path.exists() {
                true => std::path::absolute(path)?,
                false => path.clone(),
            };
            clarion_content::MediaDir::request(&path, alt)
                .map_err(|e| anyhow::anyhow!("--media: {e}"))
        })
        .collect()
}

pub(crate) fn parse_vars(
    pairs: &[String],
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
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
    match detail.post.scheduled_at_ms.map(time::show) {
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

/// `post show`: the post, then each target as it is (or was) sent: a
/// thread part by part with each part's platform id and URL, every time in
/// one format in the configured zone.
fn render_detail(
    detail: &PostDetail,
    attempts: &[clarion_store::publish_attempt::Model],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let p = &detail.post;
    let source = p
        .source_key
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    _ = writeln!(out, "post {}{source}", p.id);
    let when = p.scheduled_at_ms.map_or_else(|| "draft".into(), time::show);
    _ = writeln!(out, "  scheduled: {when}");
    if let Some(c) = &p.campaign {
        _ = writeln!(out, "  campaign:  {c}");
    }
    if let Some(a) = &p.author {
        _ = writeln!(out, "  author:    {a}");
    }
    _ = writeln!(out, "  timezone:  {}", time::zone().name());
    for t in &detail.targets {
        _ = writeln!(out, "\n  [{}] target {} — {}", t.channel, t.id, t.status);
        if let Some(at) = t.published_at_ms {
            _ = writeln!(out, "    published: {}", time::show(at));
        } else if let Some(at) = t
            .not_before_ms
            .filter(|at| t.status == "scheduled" && Some(*at) != t.scheduled_at_ms)
        {
            _ = writeln!(out, "    next try:  {}", time::show(at));
        }
        if let Some(e) = &t.last_error {
            _ = writeln!(out, "    last error: {e}");
        }
        let parts = t.parts();
        let progress = t.thread_progress();
        if parts.len() == 1 || progress.is_empty() {
            // One message (or a thread the platform got joined in one).
            if parts.len() > 1 {
                _ = writeln!(
                    out,
                    "    thread of {} parts, sent as one message",
                    parts.len()
                );
            }
            if t.platform_post_id.is_some() || t.platform_url.is_some() {
                _ = writeln!(
                    out,
                    "    platform:  {}",
                    receipt(t.platform_post_id.as_deref(), t.platform_url.as_deref())
                );
            }
            print_text(&mut out, &parts.join("\n\n"));
        } else {
            _ = writeln!(out, "    thread of {} parts", parts.len());
            for (i, part) in parts.iter().enumerate() {
                let sent = progress.get(i).map_or_else(
                    || "not out yet".to_owned(),
                    |r| receipt(r.platform_post_id.as_deref(), r.url.as_deref()),
                );
                _ = writeln!(out, "    part {}/{}  {sent}", i + 1, parts.len());
                print_text(&mut out, part);
            }
        }
        for a in attempts.iter().filter(|a| a.target_id == t.id) {
            _ = writeln!(
                out,
                "    attempt {} by {} at {}: {}{}",
                a.attempt_no,
                a.worker,
                time::show(a.started_at_ms),
                a.outcome,
                a.message
                    .as_deref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// `id 1101  https://…`, or what is known of it.
fn receipt(id: Option<&str>, url: Option<&str>) -> String {
    match (id, url) {
        (Some(id), Some(url)) => format!("id {id}  {url}"),
        (Some(id), None) => format!("id {id}"),
        (None, Some(url)) => url.to_owned(),
        (None, None) => "sent (the platform returned no id)".to_owned(),
    }
}

/// The text as it is sent, line by line, indented.
fn print_text(out: &mut String, text: &str) {
    use std::fmt::Write;
    for line in text.lines() {
        _ = writeln!(out, "      | {line}");
    }
}

fn excerpt(text: &str, max: usize) -> String {
    clarion_core::truncate_graphemes(&text.replace('\n', " "), max)
}

#[cfg(test)]
mod tests {
    use clarion_store::{post, publish_attempt, target};

    use super::*;

    fn thread_detail() -> PostDetail {
        let at = 1_803_891_600_000; // 2027-03-01T09:00:00Z
        let post = post::Model {
            id: 12,
            source_key: None,
            source_path: None,
            body: "one\n---\ntwo\n---\nthree".into(),
            template: None,
            vars: "{}".into(),
            campaign: Some("launch".into()),
            author: None,
            scheduled_at_ms: Some(at),
            content_hash: String::new(),
            import_key: None,
            created_at_ms: at,
            updated_at_ms: at,
            approval: None,
            requested_at_ms: None,
            review_comment: None,
        };
        let target = target::Model {
            id: 31,
            post_id: 12,
            channel: "masto".into(),
            status: "scheduled".into(),
            scheduled_at_ms: Some(at),
            not_before_ms: Some(at + 60_000),
            override_body: None,
            rendered_text: "one\n\ntwo\n\nthree".into(),
            parts: r#"["one","two\nand a second line","three"]"#.into(),
            media: "[]".into(),
            thread_progress: r#"[{"platform_post_id":"1101","url":"https://m.example/@a/1101"},
                {"platform_post_id":"1102","url":null}]"#
                .into(),
            campaign: None,
            idempotency_key: "k".into(),
            attempts: 1,
            lease_until_ms: None,
            claimed_by: None,
            claim_token: None,
            first_sent_at_ms: Some(at),
            last_outcome: Some("transient".into()),
            platform_post_id: None,
            platform_url: None,
            last_error: Some("part 3 of 3: 503".into()),
            published_at_ms: None,
            updated_at_ms: at,
            reply_root: None,
            reply_parent: None,
            variant: None,
        };
        PostDetail {
            post,
            targets: vec![target],
        }
    }

    #[test]
    fn show_prints_a_thread_as_numbered_parts_with_their_ids_and_urls() {
        let attempt = publish_attempt::Model {
            id: 1,
            target_id: 31,
            attempt_no: 1,
            worker: "w1".into(),
            started_at_ms: 1_803_891_600_000,
            finished_at_ms: 1_803_891_601_000,
            outcome: "transient".into(),
            http_status: Some(503),
            retry_after_ms: None,
            platform_post_id: None,
            message: Some("part 3 of 3: 503".into()),
        };
        let text = render_detail(&thread_detail(), &[attempt]);
        let expected = "\
post 12
  scheduled: 2027-03-01 09:00:00 UTC
  campaign:  launch
  timezone:  UTC

  [masto] target 31 — scheduled
    next try:  2027-03-01 09:01:00 UTC
    last error: part 3 of 3: 503
    thread of 3 parts
    part 1/3  id 1101  https://m.example/@a/1101
      | one
    part 2/3  id 1102
      | two
      | and a second line
    part 3/3  not out yet
      | three
    attempt 1 by w1 at 2027-03-01 09:00:00 UTC: transient — part 3 of 3: 503
";
        assert_eq!(text, expected);
    }
}
