//! `clarion bench schedule`: N posts due at the same moment, drained through
//! the webhook channel into a local HTTP sink in this process. Reports drain
//! throughput, lateness, early sends, duplicates and peak RSS.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::HeaderMap;
use clap::Subcommand;
use clarion_core::AdapterRegistry;
use clarion_scheduler::{PostInput, PostService, PublishQueue, Runtime, run_workers};
use clarion_store::{Store, now_ms};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::ConnectionTrait;

use crate::app::worker_id;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Schedule N posts due at one moment and measure how they drain.
    Schedule {
        /// How many posts.
        #[arg(long, default_value_t = 10_000)]
        posts: usize,
        /// Database: a PostgreSQL server URL (a scratch database is created
        /// on it and dropped after), or omit for a scratch SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        /// Seconds between the end of scheduling and the due moment.
        #[arg(long, default_value_t = 3)]
        lead_secs: u64,
        /// Spread the due times evenly over this many seconds instead of
        /// one moment (lateness under a steady load below capacity).
        #[arg(long, default_value_t = 0.0)]
        spread_secs: f64,
    },
    /// Create N posts through the HTTP API (one request per post, or bulk)
    /// and measure posts/s.
    Create(super::bench_create::CreateArgs),
    /// Reliability under stress: kill -9, a 429 storm, several processes, a slow platform.
    Chaos(super::chaos::ChaosArgs),
    /// Ingest N engagement events through the listener runtime into the inbox.
    Ingest(super::bench_ingest::IngestArgs),
    /// Reply latency: a manager's answer in the bridge chat to its status on Mastodon.
    Reply(super::bench_reply::ReplyArgs),
    /// The tracked-link redirect against a bare 302 handler (the ceiling).
    Redirect(super::bench_attribution::RedirectArgs),
    /// Recompute attribution over generated clicks and orders; time a campaign report.
    Attribution(super::bench_attribution::AttributionArgs),
    /// Dashboard pages: bytes (with their scripts and styles) and render time, a month of 2,000 posts.
    Dashboard(super::bench_dashboard::DashboardArgs),
}

type Arrivals = Arc<Mutex<Vec<(String, i64)>>>;

pub async fn run(cmd: BenchCommand, config: Config) -> anyhow::Result<()> {
    let (posts, database_url, lead_secs, spread_secs) = match cmd {
        BenchCommand::Schedule {
            posts,
            database_url,
            lead_secs,
            spread_secs,
        } => (posts, database_url, lead_secs, spread_secs),
        BenchCommand::Create(args) => return super::bench_create::run(args, config).await,
        BenchCommand::Chaos(args) => return super::chaos::run(args).await,
        BenchCommand::Ingest(args) => return super::bench_ingest::run(args).await,
        BenchCommand::Reply(args) => return super::bench_reply::run(args, config).await,
        BenchCommand::Redirect(args) => return super::bench_attribution::redirect(args).await,
        BenchCommand::Attribution(args) => {
            return super::bench_attribution::attribution(args).await;
        }
        BenchCommand::Dashboard(args) => return super::bench_dashboard::run(args, config).await,
    };
    let scratch = Scratch::create(database_url.as_deref()).await?;
    let result = schedule_bench(posts, lead_secs, spread_secs, &scratch.url, config).await;
    scratch.drop_it().await;
    result
}

async fn schedule_bench(
    posts: usize,
    lead_secs: u64,
    spread_secs: f64,
    url: &str,
    config: Config,
) -> anyhow::Result<()> {
    let arrivals: Arrivals = Arc::default();
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}/hook", sink.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(sink, app).await });

    let channel: clarion_core::ChannelConfig = serde_json::from_value(serde_json::json!({
        "name": "bench-sink", "kind": "webhook", "url": sink_url, "timeout_secs": 30,
    }))?;
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    let registry = Arc::new(
        AdapterRegistry::build(
            &factories,
            &[channel],
            &clarion_core::AdapterContext::default(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let store = Store::connect(url, config.max_connections).await?;
    store.migrate().await?;
    let queue = PublishQueue::open(&store, &config.scheduler).await?;
    let service = PostService::new(
        store.clone(),
        queue.clone(),
        registry.clone(),
        Arc::default(),
    );

    // Schedule everything for one moment that lies just after scheduling ends;
    // the estimate is refined as we go so the lead stays as asked.
    let bar = ProgressBar::new(posts as u64);
    bar.set_style(
        ProgressStyle::with_template("scheduling {bar:40} {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut ids = Vec::with_capacity(posts);
    for n in 0..posts {
        let detail = service
            .create(PostInput {
                body: format!("bench post {n}"),
                channels: vec!["bench-sink".into()],
                at: None,
                draft: true,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ids.push(detail.post.id);
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Drafts first, then one schedule pass: all N share one due moment (or
    // a spread starting there). The pass costs up to about twice what the drafts did, so
    // the due moment is placed after it, plus the asked-for lead.
    let drafts_took = started.elapsed();
    let due = chrono::Utc::now()
        + chrono::Duration::from_std(drafts_took.mul_f64(3.0)).unwrap_or_default()
        + chrono::Duration::seconds(lead_secs as i64);
    let due_ms = due.timestamp_millis();
    let bar = ProgressBar::new(posts as u64);
    bar.set_style(
        ProgressStyle::with_template("queueing   {bar:40} {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let step_ms = spread_secs * 1000.0 / posts.max(1) as f64;
    let mut due_by_key = HashMap::with_capacity(posts);
    for (n, id) in ids.iter().enumerate() {
        let at = due + chrono::Duration::milliseconds((n as f64 * step_ms) as i64);
        let detail = service
            .schedule(*id, at)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for t in detail.targets {
            due_by_key.insert(t.idempotency_key, at.timestamp_millis());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scheduled_in = started.elapsed();
    if now_ms() > due_ms {
        bail!("scheduling took {scheduled_in:?}, past the due moment; raise --lead-secs");
    }

    let runtime = Arc::new(Runtime::new(
        store.clone(),
        queue,
        registry,
        config.scheduler.clone(),
        worker_id(),
    ));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(run_workers(runtime, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let distinct = arrivals
            .lock()
            .map(|a| {
                a.iter()
                    .map(|(k, _)| k.clone())
                    .collect::<HashSet<_>>()
                    .len()
            })
            .unwrap_or(0);
        if distinct >= posts || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give any duplicate a moment to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let _ = workers.await;

    let arrivals = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let report = Report::new(&arrivals, posts, due_ms, &due_by_key);
    println!(
        "database        {}",
        if store.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    println!(
        "posts           {posts} (scheduled + queued in {:.1}s), due over {spread_secs}s",
        scheduled_in.as_secs_f64()
    );
    println!("delivered       {} distinct", report.distinct);
    println!(
        "throughput      {:.0} posts/s (first due moment to last arrival)",
        report.throughput
    );
    println!(
        "lateness        p50 {} ms, p99 {} ms, max {} ms",
        report.p50, report.p99, report.max
    );
    println!("early sends     {}", report.early);
    println!("duplicates      {}", report.duplicates);
    println!(
        "peak RSS        {:.1} MB (bench process: scheduler + sink)",
        peak_rss_mb()
    );
    if report.distinct < posts || report.early > 0 || report.duplicates > 0 {
        bail!(
            "bench failed its promises: {}/{} delivered, {} early, {} duplicates",
            report.distinct,
            posts,
            report.early,
            report.duplicates
        );
    }
    Ok(())
}

async fn record(
    State(arrivals): State<Arrivals>,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    let at = now_ms();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Ok(mut a) = arrivals.lock() {
        a.push((key.clone(), at));
    }
    axum::Json(serde_json::json!({ "id": key }))
}

struct Report {
    distinct: usize,
    duplicates: usize,
    early: usize,
    throughput: f64,
    p50: i64,
    p99: i64,
    max: i64,
}

impl Report {
    /// `due_ms` is the first due moment; lateness is against each post's own time.
    fn new(
        arrivals: &[(String, i64)],
        posts: usize,
        due_ms: i64,
        due_by_key: &HashMap<String, i64>,
    ) -> Self {
        let distinct: HashSet<&str> = arrivals.iter().map(|(k, _)| k.as_str()).collect();
        let mut lateness: Vec<i64> = arrivals
            .iter()
            .map(|(key, at)| at - due_by_key.get(key).copied().unwrap_or(due_ms))
            .collect();
        let last_arrival = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(due_ms);
        lateness.sort_unstable();
        let pct = |p: f64| {
            lateness
                .get(((lateness.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        let drain_ms = (last_arrival - due_ms).max(1);
        Self {
            distinct: distinct.len(),
            duplicates: arrivals.len() - distinct.len(),
            early: lateness.iter().filter(|l| **l < 0).count(),
            throughput: posts.min(distinct.len()) as f64 / (drain_ms as f64 / 1000.0),
            p50: pct(0.5),
            p99: pct(0.99),
            max: lateness.last().copied().unwrap_or(0),
        }
    }
}

pub(super) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A throw-away database for one bench run.
pub(super) struct Scratch {
    pub(super) url: String,
    admin: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl Scratch {
    pub(super) async fn create(server_url: Option<&str>) -> anyhow::Result<Self> {
        let name = format!("clarion_bench_{}", std::process::id());
        match server_url {
            None => {
                let file = std::env::temp_dir().join(format!("{name}.db"));
                Ok(Self {
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    admin: None,
                    file: Some(file),
                })
            }
            Some(url) => {
                let admin = Store::connect(url, 1)
                    .await
                    .context("connecting to the bench PostgreSQL server")?;
                admin
                    .connection()
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                // Keep the options (`?sslmode=disable`, ...) for the scratch database.
                let (path, query) = url
                    .split_once('?')
                    .map_or((url, None), |(p, q)| (p, Some(q)));
                let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
                Ok(Self {
                    url: match query {
                        Some(query) => format!("{base}/{name}?{query}"),
                        None => format!("{base}/{name}"),
                    },
                    admin: Some((url.to_owned(), name)),
                    file: None,
                })
            }
        }
    }

    pub(super) async fn drop_it(self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        if let Some((url, name)) = &self.admin
            && let Ok(admin) = Store::connect(url, 1).await
        {
            let _ = admin
                .connection()
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}
