//! `clarion bench create`: how fast posts are created through the HTTP API.
//!
//! Starts the real server (router, bearer auth, post service, store, queue)
//! in this process on a scratch database, then creates N posts through it
//! over C keep-alive connections: one `POST /api/v1/posts` per post, or
//! `POST /api/v1/posts/bulk` with `--bulk`. The posts are due in an hour so
//! the measurement is creation only. At the end every post is counted in the
//! database: a create answered 201 must be stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clarion_core::{AdapterRegistry, Secret};
use clarion_scheduler::{Metrics, PostService, PublishQueue};
use clarion_server::{AppState, router};
use clarion_store::Store;
use sea_orm::{EntityTrait, PaginatorTrait};

use super::bench::Scratch;
use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// How many posts to create (not counting the warm-up).
    #[arg(long, default_value_t = 20_000)]
    pub posts: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Send `POST /api/v1/posts/bulk` requests of --batch posts instead of one request per post.
    #[arg(long)]
    pub bulk: bool,
    /// Posts per bulk request.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Write each create in its own transaction (as before group commit), to compare.
    #[arg(long)]
    pub no_group_commit: bool,
    /// Database: a PostgreSQL server URL (a scratch database is created on
    /// it and dropped after), or omit for a scratch SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
}

pub async fn run(args: CreateArgs, config: Config) -> anyhow::Result<()> {
    if args.posts == 0 || args.connections == 0 || args.batch == 0 {
        bail!("--posts, --connections and --batch must be at least 1");
    }
    let scratch = Scratch::create(args.database_url.as_deref()).await?;
    let result = create_bench(&args, &scratch.url, config).await;
    scratch.drop_it().await;
    result
}

/// What one measured phase did.
struct Phase {
    posts: usize,
    requests: usize,
    took: Duration,
    /// Latency of each request.
    latencies: Vec<Duration>,
    cpu: Duration,
}

async fn create_bench(args: &CreateArgs, url: &str, config: Config) -> anyhow::Result<()> {
    let store = Store::connect(url, config.max_connections).await?;
    store.migrate().await?;
    // Nothing is delivered: the posts are due in an hour, and no publish
    // worker runs here.
    let (base, token) = serve_api(&store, &config, &["bench"], !args.no_group_commit).await?;

    let at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let client = Client {
        base,
        token,
        at,
        batch: if args.bulk { args.batch } else { 1 },
    };
    // Warm up: connections open, statements prepared, caches filled.
    let warmup = (args.connections * 20).min(args.posts);
    client
        .phase(warmup, args.connections)
        .await
        .context("warm-up")?;
    let phase = client
        .phase(args.posts, args.connections)
        .await
        .context("measured run")?;

    let expected = (warmup + args.posts) as u64;
    let posts = clarion_store::post::Entity::find()
        .count(store.connection())
        .await?;
    let targets = clarion_store::target::Entity::find()
        .count(store.connection())
        .await?;

    let mut latencies = phase.latencies.clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let database = if store.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let mode = match (args.bulk, args.no_group_commit) {
        (true, _) => "bulk",
        (false, false) => "single",
        (false, true) => "single, no group commit",
    };
    println!("database  {database}");
    println!(
        "{:<24} {:>7} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>13}",
        "mode",
        "posts",
        "conns",
        "batch",
        "seconds",
        "posts/s",
        "p50 ms",
        "p99 ms",
        "CPU us/post",
        "stored"
    );
    println!(
        "{:<24} {:>7} {:>5} {:>6} {:>8.2} {:>8.0} {:>8.1} {:>8.1} {:>9.0} {:>13}",
        mode,
        phase.posts,
        args.connections,
        client.batch,
        phase.took.as_secs_f64(),
        phase.posts as f64 / phase.took.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        phase.cpu.as_secs_f64() * 1e6 / phase.posts as f64,
        format!("{posts}/{expected}"),
    );
    println!(
        "({} requests; CPU is the whole process: server, database and the load client; \
         the counts include {warmup} warm-up posts)",
        phase.requests
    );
    if posts != expected || targets != expected {
        bail!(
            "stored {posts} posts and {targets} targets, expected {expected} of each: a created post went missing"
        );
    }
    Ok(())
}

/// Serves the real router (auth, services, store, queue) on a loopback
/// port in this process, with webhook channels named `channels` that
/// deliver nowhere. Returns the base URL and the API token.
pub(crate) async fn serve_api(
    store: &Store,
    config: &Config,
    channels: &[&str],
    group_commit: bool,
) -> anyhow::Result<(String, String)> {
    let queue = PublishQueue::open(store, &config.scheduler).await?;
    let channels = channels
        .iter()
        .map(|name| {
            serde_json::from_value::<clarion_core::ChannelConfig>(serde_json::json!({
                "name": name, "kind": "webhook", "url": "http://127.0.0.1:9/hook",
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    let registry = Arc::new(
        AdapterRegistry::build(
            &factories,
            &channels,
            &clarion_core::AdapterContext::default(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let service = PostService::new(store.clone(), queue, registry.clone(), Arc::default())
        .with_group_commit(group_commit);
    let inbox = clarion_engage::InboxService::new(service.clone(), registry);
    let token = uuid::Uuid::new_v4().simple().to_string();
    let state = AppState {
        service,
        metrics: Arc::new(Metrics::default()),
        health: None,
        scheduler: config.scheduler.clone(),
        api_token: Some(Secret::new(token.clone())),
        timezone: config.timezone,
        inbox,
        listen: config.listen.clone(),
        listening: None,
        analytics: clarion_analytics::Analytics::open(
            store.clone(),
            &config.attribution,
            "127.0.0.1:0",
            &config.content_dir,
        )
        .map_err(|e| anyhow::anyhow!("config: {e}"))?,
        team: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Ok((base, token))
}

struct Client {
    base: String,
    token: String,
    at: String,
    /// Posts per request: 1 is `POST /api/v1/posts`, more is the bulk endpoint.
    batch: usize,
}

impl Client {
    /// Creates `posts` posts over `connections` connections, each task
    /// taking the next request's posts until none are left.
    async fn phase(&self, posts: usize, connections: usize) -> anyhow::Result<Phase> {
        // Request bodies are made before the clock starts: the load
        // client's own JSON work should not count against the server.
        let bodies: Arc<Vec<axum::body::Bytes>> = Arc::new(
            (0..posts)
                .step_by(self.batch)
                .map(|first| {
                    let last = (first + self.batch).min(posts);
                    let body = if self.batch > 1 {
                        let items: Vec<_> = (first..last).map(|n| post_json(n, &self.at)).collect();
                        serde_json::json!({ "posts": items })
                    } else {
                        post_json(first, &self.at)
                    };
                    axum::body::Bytes::from(body.to_string())
                })
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let cpu_before = process_cpu();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(120))
                .build()?;
            let (next, bodies) = (next.clone(), bodies.clone());
            let url = if self.batch > 1 {
                format!("{}/api/v1/posts/bulk", self.base)
            } else {
                format!("{}/api/v1/posts", self.base)
            };
            let auth = format!("Bearer {}", self.token);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return Ok::<_, anyhow::Error>(latencies);
                    };
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header(reqwest::header::AUTHORIZATION, &auth)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = response.status();
                    let text = response.text().await?;
                    latencies.push(sent.elapsed());
                    if status != reqwest::StatusCode::CREATED {
                        bail!("{url} answered {status}: {text}");
                    }
                }
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        Ok(Phase {
            posts,
            requests: latencies.len(),
            took: started.elapsed(),
            latencies,
            cpu: process_cpu().saturating_sub(cpu_before),
        })
    }
}

fn post_json(n: usize, at: &str) -> serde_json::Value {
    serde_json::json!({ "body": format!("bench post {n}"), "channels": ["bench"], "at": at })
}

/// CPU time (user + system) this process has used so far.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every common platform.
    Duration::from_millis(ticks * 10)
}
