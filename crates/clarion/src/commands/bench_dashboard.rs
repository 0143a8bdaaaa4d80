//! `clarion bench dashboard`: how heavy and how fast the dashboard's pages
//! are. Serves the real router in this process on a scratch database,
//! fills a month with posts (through the bulk API) and the inbox with
//! conversations (through the listener store path), then fetches each page
//! many times: bytes of the HTML and of everything it loads (uncached), and
//! the time from request to the last byte over loopback (p50/p99/max).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{Datelike, TimeZone};
use clap::Args;
use clarion_store::{Store, now_ms};
use indicatif::{ProgressBar, ProgressStyle};

use super::bench::Scratch;
use super::bench_create::serve_api;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Posts in the measured month (one channel each, spread over the month).
    #[arg(long, default_value_t = 2_000)]
    posts: usize,
    /// Inbox events stored (about half start a conversation).
    #[arg(long, default_value_t = 1_000)]
    events: usize,
    /// Timed requests per page (after 10 warm-up requests).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// A PostgreSQL server URL (a scratch database is created and dropped),
    /// or omit for a scratch SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

const CHANNELS: [&str; 3] = ["masto", "bsky", "news"];
const BULK: usize = 1_000;

pub async fn run(args: DashboardArgs, config: Config) -> anyhow::Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let scratch = Scratch::create(args.database_url.as_deref()).await?;
    let result = bench(&args, &scratch.url, config).await;
    scratch.drop_it().await;
    result
}

async fn bench(args: &DashboardArgs, url: &str, config: Config) -> anyhow::Result<()> {
    let store = Store::connect(url, config.max_connections).await?;
    store.migrate().await?;
    let (base, token) = serve_api(&store, &config, &CHANNELS, true).await?;
    let client = reqwest::Client::new();

    // Next month in the configured zone: every post is in the future.
    let zone = config.timezone;
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let (y, m) = if today.month() == 12 {
        (today.year() + 1, 1)
    } else {
        (today.year(), today.month() + 1)
    };
    let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).context("month start")?;
    let next = if m == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
    .context("month end")?;
    let at = |d: chrono::NaiveDate| {
        zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    let (start_ms, end_ms) = (
        at(first).context("month start")?,
        at(next).context("month end")?,
    );
    let span = (end_ms - start_ms) as usize;

    let bar = ProgressBar::new(args.posts as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} posts created")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for chunk_start in (0..args.posts).step_by(BULK) {
        let posts: Vec<_> = (chunk_start..(chunk_start + BULK).min(args.posts))
            .map(|i| {
                let ms = start_ms + (span * i / args.posts.max(1)) as i64 + 60_000;
                let when = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
                serde_json::json!({
                    "body": format!("Post {i}: spring sale, day {} — see what is new this week", i % 31),
                    "channels": [CHANNELS[i % CHANNELS.len()]],
                    "at": when.to_rfc3339(),
                    "campaign": format!("campaign-{}", i % 7),
                })
            })
            .collect();
        let n = posts.len();
        let r = client
            .post(format!("{base}/api/v1/posts/bulk"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "posts": posts }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("bulk create failed: {} {}", r.status(), r.text().await?);
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let events = super::bench_ingest::generate(args.events);
    store.ingest_pushed("masto", &events, now_ms()).await?;

    let month = first.format("%Y-%m-%d").to_string();
    let week = (first + chrono::Duration::days(14))
        .format("%Y-%m-%d")
        .to_string();
    let pages = [
        ("calendar (month)", format!("/calendar?date={month}")),
        (
            "calendar (week)",
            format!("/calendar?view=week&date={week}"),
        ),
        ("inbox", "/inbox".to_owned()),
        ("compose", "/compose".to_owned()),
        ("queue", "/queue".to_owned()),
    ];
    println!(
        "{} posts in {month:.7} ({zone}), {} inbox events, {} timed requests per page, {}",
        args.posts,
        args.events,
        args.requests,
        if store.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    println!(
        "{:<18} {:>10} {:>12} {:>8} {:>8} {:>8}",
        "page", "HTML kB", "total kB", "p50 ms", "p99 ms", "max ms"
    );
    for (name, path) in pages {
        let url = format!("{base}{path}");
        let get = || client.get(&url).bearer_auth(&token).send();
        let first = get().await?;
        if !first.status().is_success() {
            bail!("{path}: {}", first.status());
        }
        let html = first.text().await?;
        let mut total = html.len();
        for asset in assets(&html) {
            total += client
                .get(format!("{base}{asset}"))
                .send()
                .await?
                .bytes()
                .await?
                .len();
        }
        for _ in 0..10 {
            get().await?.bytes().await?;
        }
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let started = Instant::now();
            get().await?.bytes().await?;
            times.push(started.elapsed());
        }
        times.sort_unstable();
        let pct = |p: f64| ms(times[((times.len() - 1) as f64 * p).round() as usize]);
        println!(
            "{:<18} {:>10.1} {:>12.1} {:>8.2} {:>8.2} {:>8.2}",
            name,
            html.len() as f64 / 1000.0,
            total as f64 / 1000.0,
            pct(0.5),
            pct(0.99),
            ms(times[times.len() - 1]),
        );
    }
    println!(
        "(total = the HTML and every script and stylesheet it loads, uncached; times are request to last byte over loopback, one request at a time)"
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `/assets/...` a page loads (`<script src>`, `<link href>`).
fn assets(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for marker in ["src=\"/assets/", "href=\"/assets/"] {
        for (i, _) in html.match_indices(marker) {
            let rest = &html[i + marker.len() - "/assets/".len()..];
            if let Some(end) = rest.find('"') {
                let path = rest[..end].to_owned();
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}
