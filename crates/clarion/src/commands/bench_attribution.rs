//! `clarion bench redirect` and `clarion bench attribution`.
//!
//! - redirect: the real `/r/{code}` handler (cache, tagging, click id, the
//!   batched recorder) beside a bare axum handler answering the same 302
//!   without recording (the ceiling), both on loopback, driven by the same
//!   client; every click is checked to be stored at the end.
//! - attribution: generated links, clicks and orders in a scratch database;
//!   a full recompute under each model, then one campaign report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use clarion_analytics::report::campaign_report;
use clarion_analytics::{Analytics, AttributionConfig, Attributor, LinkRequest, ModelKey};
use clarion_attribution::{Campaign, Campaigns};
use clarion_store::{NewClick, NewOrder, Store};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;

use super::bench::Scratch;

#[derive(Debug, Args)]
pub struct RedirectArgs {
    /// Requests per handler.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[derive(Debug, Args)]
pub struct AttributionArgs {
    /// Clicks to generate.
    #[arg(long, default_value_t = 1_000_000)]
    clicks: usize,
    /// Orders to generate (70% name a click, 10% use a creator's code).
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// A PostgreSQL server URL (a scratch database is created and dropped),
    /// or omit for a scratch SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

pub async fn redirect(args: RedirectArgs) -> anyhow::Result<()> {
    let scratch = Scratch::create(None).await?;
    let result = redirect_bench(&args, &scratch.url).await;
    scratch.drop_it().await;
    result
}

async fn redirect_bench(args: &RedirectArgs, url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url, 4).await?;
    store.migrate().await?;
    // No campaign files: a content folder that does not exist.
    let no_content = std::env::temp_dir().join(format!("clarion-bench-{}", std::process::id()));
    let analytics = Analytics::open(
        store.clone(),
        &AttributionConfig::default(),
        "127.0.0.1:0",
        &no_content,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let link = analytics
        .links
        .create(LinkRequest {
            destination: "https://shop.example/products/tee?color=blue".into(),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let real = serve(clarion_server::redirect_router(analytics.clone())).await?;
    let bare = serve(axum::Router::new().route(
        "/r/{code}",
        axum::routing::get(|| async {
            (
                axum::http::StatusCode::FOUND,
                [(
                    axum::http::header::LOCATION,
                    "https://shop.example/products/tee?color=blue&utm_medium=social&clarion_cid=0123456789abcdef",
                )],
            )
        }),
    ))
    .await?;
    println!(
        "{} requests per handler, {} in flight, loopback, one client for both",
        args.requests, args.concurrency
    );
    let ceiling = drive(&format!("{bare}/r/{}", link.code), args).await?;
    report("bare axum 302 (ceiling)", &ceiling);
    let measured = drive(&format!("{real}/r/{}", link.code), args).await?;
    report("clarion /r/{code} + click", &measured);
    println!(
        "ratio: {:.2} of the ceiling's requests/s",
        measured.per_sec / ceiling.per_sec
    );
    analytics.redirector.recorder().flush().await;
    let counts = store.click_counts().await?;
    let stored: i64 = counts.values().map(|(clicks, bots)| clicks + bots).sum();
    println!(
        "clicks stored: {stored} of {} requests (warm-up included)",
        measured.sent
    );
    anyhow::ensure!(stored == measured.sent as i64, "not every click was stored");
    Ok(())
}

async fn serve(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(base)
}

struct Measured {
    /// Requests sent, warm-up included (each one is a click).
    sent: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn drive(url: &str, args: &RedirectArgs) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    // Warm the connections and the link cache.
    for _ in 0..args.concurrency {
        client.get(url).send().await?;
    }
    let per_task = args.requests / args.concurrency.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let at = Instant::now();
                let response = client
                    .get(&url)
                    .header("User-Agent", "Mozilla/5.0 (bench)")
                    .send()
                    .await?;
                anyhow::ensure!(response.status().as_u16() == 302, "{}", response.status());
                latencies.push(at.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::with_capacity(args.requests);
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Ok(Measured {
        sent: all.len() + args.concurrency,
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

fn report(what: &str, m: &Measured) {
    println!(
        "{what:<28} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
        m.per_sec,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3
    );
}

pub async fn attribution(args: AttributionArgs) -> anyhow::Result<()> {
    let scratch = Scratch::create(args.database_url.as_deref()).await?;
    let result = attribution_bench(&args, &scratch.url).await;
    scratch.drop_it().await;
    result
}

async fn attribution_bench(args: &AttributionArgs, url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url, 4).await?;
    store.migrate().await?;
    let creators = 20;
    let mut campaign = String::from(
        "name = \"bench\"\nstarts = \"2026-01-01\"\nends = \"2026-12-31\"\ncurrency = \"USD\"\n",
    );
    for c in 0..creators {
        campaign.push_str(&format!(
            "[[creators]]\nname = \"c{c}\"\nfee = \"100.00\"\ncommission_percent = \"10\"\ncodes = [\"CODE{c}\"]\n"
        ));
    }
    let mut campaigns = Campaigns::default();
    campaigns
        .insert(
            "bench.toml",
            Campaign::parse("bench.toml", "bench", &campaign)?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let campaigns = Arc::new(campaigns);
    let default = ModelKey::parse("last-click", 7).map_err(|e| anyhow::anyhow!("{e}"))?;
    let attributor = Attributor::new(store.clone(), campaigns.clone(), default);

    // 100 links over 5 channels, a fifth of them creators'.
    let links = clarion_analytics::Links::new(store.clone(), "https://go.example");
    let mut made = Vec::new();
    for i in 0..100 {
        made.push(
            links
                .create(LinkRequest {
                    destination: format!("https://shop.example/p/{i}"),
                    campaign: Some("bench".into()),
                    creator: (i % 5 == 0).then(|| format!("c{}", i % creators)),
                    channel: Some(format!("channel{}", i % 5)),
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    let start_ms = 1_767_225_600_000; // 2026-01-01
    let span_ms = 60 * DAY_MS;
    let visitors = (args.clicks / 3).max(1);
    let bar = ProgressBar::new((args.clicks + args.orders) as u64);
    bar.set_style(
        ProgressStyle::with_template("generating {bar:40} {pos}/{len} rows {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rng = rand::thread_rng();
    let mut click_times = Vec::with_capacity(args.clicks);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..args.clicks {
        let link = &made[rng.gen_range(0..made.len())];
        let at_ms = start_ms + rng.gen_range(0..span_ms);
        click_times.push(at_ms);
        batch.push(NewClick {
            click_id: format!("k{i}"),
            link_id: link.id,
            at_ms,
            campaign: link.campaign.clone(),
            creator: link.creator.clone(),
            channel: link.channel.clone(),
            post_id: None,
            target_id: None,
            referrer: None,
            is_bot: rng.gen_bool(0.05),
            visitor_key: format!("v{}", rng.gen_range(0..visitors)),
        });
        if batch.len() == batch.capacity() {
            store.record_clicks(&batch).await?;
            bar.inc(batch.len() as u64);
            batch.clear();
        }
    }
    store.record_clicks(&batch).await?;
    bar.inc(batch.len() as u64);
    let mut orders = Vec::with_capacity(args.orders);
    for i in 0..args.orders {
        let roll: f64 = rng.r#gen();
        let click = rng.gen_range(0..args.clicks.max(1));
        let named = roll < 0.7 && args.clicks > 0;
        let at_ms = if named {
            click_times[click] + rng.gen_range(0..3 * DAY_MS)
        } else {
            start_ms + rng.gen_range(0..span_ms)
        };
        orders.push(NewOrder {
            source: "api".into(),
            order_id: format!("o{i}"),
            amount_minor: rng.gen_range(500..50_000),
            currency: "USD".into(),
            at_ms,
            customer_key: Some(format!("cust{}", rng.gen_range(0..args.orders / 2 + 1))),
            click_id: named.then(|| format!("k{click}")),
            discount_codes: if (0.7..0.8).contains(&roll) {
                vec![format!("code{}", rng.gen_range(0..creators))]
            } else {
                Vec::new()
            },
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_content: None,
            social_handles: Vec::new(),
        });
    }
    for chunk in orders.chunks(10_000) {
        store.load_orders(chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "{} clicks, {} orders, {} links, {} creators ({})",
        args.clicks,
        args.orders,
        made.len(),
        creators,
        if store.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    for model in [
        "last-click",
        "first-click",
        "linear",
        "time-decay",
        "position-based",
    ] {
        let key = ModelKey::parse(model, 7).map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        let stats = attributor
            .recompute(key)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "recompute {:<22} {:>7.2} s  ({} by code, {} by clicks, {} unattributed)",
            key.to_string(),
            started.elapsed().as_secs_f64(),
            stats.by_code,
            stats.by_touches,
            stats.unattributed
        );
    }
    let bench = campaigns.get("bench").context("the bench campaign")?;
    let mut times = Vec::new();
    let no_channels = clarion_core::AdapterRegistry::default();
    let today = chrono::Utc::now().date_naive();
    for _ in 0..5 {
        let started = Instant::now();
        let report = campaign_report(&store, &attributor, bench, default, &no_channels, today)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(started.elapsed());
        anyhow::ensure!(
            report.total.totals.orders > 0,
            "the report credited nothing"
        );
    }
    times.sort();
    println!(
        "campaign report (last-click/7d): median {:.0} ms of 5",
        times[2].as_secs_f64() * 1e3
    );
    Ok(())
}
