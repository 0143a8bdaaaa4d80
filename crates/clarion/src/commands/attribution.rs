//! `clarion links`, `clarion orders` and `clarion report`: tracked links,
//! orders in, and campaign reports. The same services as the HTTP API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use clarion_analytics::report::{CampaignReport, ReportRow, campaign_report};
use clarion_analytics::{ModelKey, OrderOutcome};
use clarion_attribution::{Currency, Money, csv_orders};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::App;

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// Register a tracked link (`/r/CODE`) for a bio, a creator or a newsletter.
    Create(CreateLink),
    /// List tracked links with their clicks (bot and preview fetches apart).
    Ls {
        /// Only this campaign's links.
        #[arg(long)]
        campaign: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateLink {
    /// Where the link goes (http or https); its own query parameters are kept.
    url: String,
    /// The campaign (a file in content/campaigns) the link belongs to.
    #[arg(long)]
    campaign: Option<String>,
    /// The campaign's creator whose link this is (`utm_medium=kol`).
    #[arg(long)]
    creator: Option<String>,
    /// The configured channel it is used on (`utm_source` = its platform).
    #[arg(long)]
    channel: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Import orders from a CSV file: order_id,amount,currency,at,customer_key,click_id,discount_codes,utm_source,utm_medium,utm_campaign,utm_content.
    Import {
        /// The CSV file (header row first).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// List the campaign files: dates, budget, model, creators and their codes.
    Ls {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

pub fn campaigns(cmd: CampaignsCommand, app: &App) -> anyhow::Result<()> {
    let CampaignsCommand::Ls { json } = cmd;
    let all = &app.analytics.campaigns;
    if json {
        for campaign in all.iter() {
            println!("{}", serde_json::to_string(campaign)?);
        }
        return Ok(());
    }
    if all.is_empty() {
        println!("no campaigns: add a file to content/campaigns (see the README)");
        return Ok(());
    }
    for c in all.iter() {
        let budget = c
            .budget_minor
            .map(|b| format!(", budget {}", money(b, c.currency)))
            .unwrap_or_default();
        println!(
            "{}: {} to {}, {}{budget}, {} over {} days",
            c.name, c.starts, c.ends, c.currency, c.model, c.window_days
        );
        for creator in &c.creators {
            println!(
                "  {} · codes {} · {} posts by {} · fee {}",
                creator.name,
                if creator.codes.is_empty() {
                    "-".to_owned()
                } else {
                    creator.codes.join(", ")
                },
                creator.posts_contracted,
                creator
                    .deadline
                    .map_or_else(|| "-".to_owned(), |d| d.to_string()),
                money(creator.fee_minor, c.currency)
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A campaign's report: per creator, channel, post and day.
    Campaign(CampaignArgs),
    /// When your audience responds best: engagements and clicks by weekday and hour.
    BestTimes {
        /// Only this channel's posts.
        #[arg(long)]
        channel: Option<String>,
        /// Output: the best slots as a table, JSON, or an SVG heatmap.
        #[arg(long, value_enum, default_value_t = GridFormat::Table)]
        format: GridFormat,
    },
}

#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The campaign's name (content/campaigns/NAME.toml).
    name: String,
    /// last-click, first-click, linear, time-decay[:7d], position-based (default: the campaign's).
    #[arg(long)]
    model: Option<String>,
    /// Attribution window in days (default: the campaign's, else 7).
    #[arg(long)]
    window: Option<u32>,
    /// Output: a table, CSV, JSON, an SVG chart of revenue and orders by
    /// day (svg), or of revenue by creator (svg-creators).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How `report best-times` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GridFormat {
    Table,
    Json,
    Svg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Svg,
    SvgCreators,
}

pub async fn links(cmd: LinksCommand, app: App) -> anyhow::Result<()> {
    let links = &app.analytics.links;
    match cmd {
        LinksCommand::Create(args) => {
            let request = app
                .analytics
                .link_request(
                    &app.registry,
                    args.url,
                    args.campaign,
                    args.creator,
                    args.channel,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let link = links
                .create(request)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", links.short_url(&link.code));
        }
        LinksCommand::Ls { campaign, json } => {
            let rows = links
                .list(campaign.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                for (link, clicks, bots) in &rows {
                    println!("{}", clarion_server::link_view(links, link, *clicks, *bots));
                }
                return Ok(());
            }
            println!(
                "{:<9} {:>7} {:>5}  {:<14} {:<10} destination",
                "code", "clicks", "bots", "campaign", "creator"
            );
            for (link, clicks, bots) in &rows {
                println!(
                    "{:<9} {:>7} {:>5}  {:<14} {:<10} {}",
                    link.code,
                    clicks,
                    bots,
                    link.campaign.as_deref().unwrap_or("-"),
                    link.creator.as_deref().unwrap_or("-"),
                    link.destination
                );
            }
        }
    }
    Ok(())
}

pub async fn orders(cmd: OrdersCommand, app: App) -> anyhow::Result<()> {
    let OrdersCommand::Import { file } = cmd;
    let name = file.display().to_string();
    let reader = std::fs::File::open(&file).with_context(|| format!("cannot read {name}"))?;
    let rows = csv_orders(reader);
    let bar = ProgressBar::new(rows.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("importing {bar:40} {pos}/{len} orders {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut stored, mut duplicates, mut rejected) = (0, 0, Vec::new());
    for row in rows {
        bar.inc(1);
        match row {
            Ok(order) => match app.analytics.orders.take_order(None, order).await {
                Ok(OrderOutcome::Stored) => stored += 1,
                Ok(_) => duplicates += 1,
                Err(e) => rejected.push(format!("{e}")),
            },
            Err(e) => rejected.push(format!("{name}:{}: {}", e.line, e.reason)),
        }
    }
    bar.finish_and_clear();
    for problem in &rejected {
        eprintln!("{problem}");
    }
    println!(
        "{name}: {stored} orders imported, {duplicates} already known, {} rejected",
        rejected.len()
    );
    if !rejected.is_empty() && stored == 0 && duplicates == 0 {
        bail!("no order in {name} could be imported");
    }
    Ok(())
}

pub async fn report(cmd: ReportCommand, app: App) -> anyhow::Result<()> {
    let args = match cmd {
        ReportCommand::Campaign(args) => args,
        ReportCommand::BestTimes { channel, format } => {
            return best_times(&app, channel, format).await;
        }
    };
    let analytics = &app.analytics;
    let campaign = analytics.campaigns.get(&args.name).with_context(|| {
        let known: Vec<&str> = analytics
            .campaigns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        format!(
            "campaign `{}` not found (campaign files: {})",
            args.name,
            if known.is_empty() {
                "none in content/campaigns".to_owned()
            } else {
                known.join(", ")
            }
        )
    })?;
    let model = args.model.unwrap_or_else(|| campaign.model.to_string());
    let key = ModelKey::parse(&model, args.window.unwrap_or(campaign.window_days))
        .map_err(|e| anyhow::anyhow!("--model/--window: {e}"))?;
    let today = chrono::Utc::now()
        .with_timezone(&app.config.timezone)
        .date_naive();
    let report = campaign_report(
        &app.store,
        analytics.attributor(),
        campaign,
        key,
        &app.registry,
        today,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let currency = campaign.currency;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => print_csv(&report, currency)?,
        Format::Table => print_table(&report, currency),
        Format::Svg => print!("{}", svg(&report, currency)),
        Format::SvgCreators => {
            let rows: Vec<(String, i64)> = report
                .by_creator
                .iter()
                .map(|r| (r.key.clone(), r.totals.revenue_minor))
                .collect();
            print!(
                "{}",
                clarion_attribution::horizontal_bars(
                    &format!(
                        "{} · revenue by creator · {}",
                        report.campaign, report.model
                    ),
                    &rows,
                    &|minor| money(minor, currency),
                )
            );
        }
    }
    Ok(())
}

fn money(minor: i64, currency: Currency) -> String {
    Money { minor, currency }.to_string()
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}x"))
}

fn print_table(report: &CampaignReport, currency: Currency) {
    println!(
        "campaign {} · model {} · {}",
        report.campaign, report.model, report.currency
    );
    let header = || {
        println!(
            "  {:<22} {:>7} {:>5} {:>7} {:>14} {:>12} {:>7} {:>8} {:>8}",
            "", "clicks", "bots", "orders", "revenue", "cost", "conv", "ROI", "ROAS"
        )
    };
    let line = |row: &ReportRow| {
        let t = &row.totals;
        println!(
            "  {:<22} {:>7} {:>5} {:>7} {:>14} {:>12} {:>7} {:>8} {:>8}",
            row.key,
            t.clicks,
            row.bot_fetches,
            t.orders,
            money(t.revenue_minor, currency),
            money(t.cost_minor, currency),
            ratio(row.conversion_rate),
            ratio(row.roi),
            times(row.roas),
        );
    };
    header();
    line(&report.total);
    for (title, rows) in [
        ("by creator", &report.by_creator),
        ("by channel", &report.by_channel),
        ("by post", &report.by_post),
        ("by variant", &report.by_variant),
    ] {
        println!("{title}");
        for row in rows {
            line(row);
        }
    }
    for post in &report.creator_posts {
        let counts = post.counts.map_or_else(
            || "counts not read yet".to_owned(),
            |c| format!("{} engagements", c.engagements()),
        );
        println!(
            "creator post: {} on {} {} ({counts})",
            post.creator,
            post.channel,
            post.url.as_deref().unwrap_or("")
        );
    }
    if !report.overdue_creators.is_empty() {
        println!(
            "overdue (deadline passed, contracted posts missing): {}",
            report.overdue_creators.join(", ")
        );
    }
    if let Some(emv) = report.total.emv_minor {
        println!("earned media value: {}", money(emv, currency));
    }
    if report.other_currency_orders > 0 {
        println!(
            "{} orders in other currencies are not counted (amounts are never converted)",
            report.other_currency_orders
        );
    }
}

fn print_csv(report: &CampaignReport, currency: Currency) -> anyhow::Result<()> {
    clarion_analytics::report_output::write_csv(report, currency, std::io::stdout())?;
    Ok(())
}

/// Revenue (bars) and orders (line) by day.
pub fn svg(report: &CampaignReport, currency: Currency) -> String {
    clarion_analytics::report_output::chart_svg(report, currency)
}

async fn best_times(app: &App, channel: Option<String>, format: GridFormat) -> anyhow::Result<()> {
    use clarion_analytics::best_times::{ENOUGH, WEEKDAYS, best_times};
    if let Some(name) = &channel
        && app.registry.get(name).is_none()
    {
        bail!("--channel: `{name}` is not configured");
    }
    let grid = best_times(&app.store, app.config.timezone, channel.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match format {
        GridFormat::Json => println!("{}", serde_json::to_string_pretty(&grid)?),
        GridFormat::Svg => {
            let rows: Vec<String> = WEEKDAYS.iter().map(|d| (*d).to_owned()).collect();
            let cols: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
            let cells: Vec<Vec<Option<f64>>> = grid
                .slots
                .iter()
                .map(|hours| hours.iter().map(|s| s.score()).collect())
                .collect();
            let low: Vec<Vec<bool>> = grid
                .slots
                .iter()
                .map(|hours| hours.iter().map(|s| s.posts > 0 && !s.enough()).collect())
                .collect();
            let title = format!(
                "Engagements + clicks per post, by weekday and hour ({})",
                grid.timezone
            );
            print!(
                "{}",
                clarion_attribution::heatmap(&title, &rows, &cols, &cells, &low)
            );
        }
        GridFormat::Table => {
            let ranked = grid.ranked();
            if ranked.is_empty() {
                println!("no published posts yet: best times come from your own posts' results");
                return Ok(());
            }
            println!(
                "best times to post ({}{}), by engagements + clicks per post",
                grid.timezone,
                channel
                    .map(|c| format!(", channel {c}"))
                    .unwrap_or_default()
            );
            println!(
                "  {:<9} {:>6} {:>12} {:>7} {:>9}",
                "slot", "posts", "engagements", "clicks", "per post"
            );
            for (day, hour, slot) in ranked.iter().take(10) {
                println!(
                    "  {:<9} {:>6} {:>12} {:>7} {:>9.1}{}",
                    format!("{} {hour:02}h", WEEKDAYS[*day]),
                    slot.posts,
                    slot.engagements,
                    slot.clicks,
                    slot.score().unwrap_or(0.0),
                    if slot.enough() {
                        String::new()
                    } else {
                        format!("  (fewer than {ENOUGH} posts)")
                    }
                );
            }
        }
    }
    Ok(())
}
