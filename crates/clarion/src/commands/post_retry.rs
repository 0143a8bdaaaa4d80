//! `clarion post retry ID` and `clarion post settle ID`: what a person does
//! with a target left `failed` or `outcome_unknown`.

use anyhow::bail;
use clarion_scheduler::RetryRequest;
use clarion_store::Settlement;

use super::service_error;
use crate::app::App;
use crate::time;

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The post's id (see `post ls --status failed`).
    pub id: i32,
    /// Only this channel's target (default: every failed or outcome_unknown one).
    #[arg(long, short = 'C')]
    pub channel: Option<String>,
    /// Send at this time (RFC 3339, or `now`; default now).
    #[arg(long, conflicts_with = "within")]
    pub at: Option<String>,
    /// Send after this long: 90s, 10m, 2h, 1d.
    #[arg(long = "in", allow_hyphen_values = true)]
    pub within: Option<String>,
    /// Resend a target of unknown outcome although its platform may not
    /// deduplicate it: it may post twice. Check the channel first.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("checked").required(true).args(["published", "not_published"])))]
pub struct SettleArgs {
    /// The post's id.
    pub id: i32,
    /// The channel whose target you checked.
    #[arg(long, short = 'C')]
    pub channel: String,
    /// The post is on the platform, at this URL.
    #[arg(long, value_name = "URL")]
    pub published: Option<String>,
    /// The platform's id of the post, if you know it (with --published).
    #[arg(long, requires = "published")]
    pub platform_id: Option<String>,
    /// The post is not on the platform (the target stays failed; retry it if you like).
    #[arg(long)]
    pub not_published: bool,
}

pub async fn retry(args: RetryArgs, app: &App) -> anyhow::Result<()> {
    let at = time::resolve(args.at.as_deref(), args.within.as_deref())?;
    let report = app
        .service
        .retry(
            args.id,
            RetryRequest {
                channel: args.channel,
                at,
                force: args.force,
            },
        )
        .await
        .map_err(service_error)?;
    for t in report
        .detail
        .targets
        .iter()
        .filter(|t| report.retried.contains(&t.id))
    {
        let when = t
            .not_before_ms
            .and_then(clarion_server::format_time)
            .unwrap_or_default();
        let forced = if report.forced.contains(&t.id) {
            " (forced: may post twice)"
        } else {
            ""
        };
        println!(
            "post {} target {} on {}: scheduled again for {when}, same idempotency key{forced}",
            args.id, t.id, t.channel
        );
    }
    Ok(())
}

pub async fn settle(args: SettleArgs, app: &App) -> anyhow::Result<()> {
    let settlement = match (args.published, args.not_published) {
        (Some(url), false) => Settlement::Published {
            url,
            platform_post_id: args.platform_id,
        },
        (None, true) => Settlement::NotPublished,
        _ => bail!("give --published URL or --not-published"),
    };
    let detail = app
        .service
        .settle(args.id, &args.channel, settlement, "cli")
        .await
        .map_err(service_error)?;
    if let Some(t) = detail.targets.iter().find(|t| t.channel == args.channel) {
        match t.platform_url.as_deref() {
            Some(url) if t.status == "published" => println!(
                "post {} target {} on {}: recorded as published at {url}",
                args.id, t.id, t.channel
            ),
            _ => println!(
                "post {} target {} on {}: recorded as not published ({}); `post retry {} -C {}` sends it again",
                args.id, t.id, t.channel, t.status, args.id, t.channel
            ),
        }
    }
    Ok(())
}
