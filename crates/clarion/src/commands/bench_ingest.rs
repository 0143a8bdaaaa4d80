//! `clarion bench ingest`: N engagement events from a generated platform
//! feed through the real listener runtime into the inbox (deduplicated,
//! threaded into conversations, cursor stored with each batch). Half the
//! events answer an earlier one; each batch repeats the tail of the one
//! before, as a platform re-read after a restart would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ListenBatch, Listener, ListenerRegistry,
    PublishError,
};
use clarion_engage::{ListenConfig, ListenerRuntime};
use clarion_store::{Store, now_ms};
use indicatif::{ProgressBar, ProgressStyle};

use super::bench::Scratch;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// How many distinct events.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per platform page (Mastodon pages hold 80, Bluesky 100).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Events of the previous page repeated at the start of each page.
    #[arg(long, default_value_t = 10)]
    overlap: usize,
    /// A PostgreSQL server URL (a scratch database is created and dropped),
    /// or omit for a scratch SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug)]
struct GeneratedFeed {
    events: Vec<Engagement>,
    batch: usize,
    overlap: usize,
}

#[async_trait]
impl Listener for GeneratedFeed {
    fn kind(&self) -> &'static str {
        "generated"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        if from >= self.events.len() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(ListenBatch::default());
        }
        let start = from.saturating_sub(self.overlap);
        let end = (from + self.batch).min(self.events.len());
        Ok(ListenBatch {
            events: self.events[start..end].to_vec(),
            cursor: Some(end.to_string()),
            skipped: Vec::new(),
            wait: Duration::ZERO,
        })
    }
}

pub(crate) fn generate(n: usize) -> Vec<Engagement> {
    let mut roots: Vec<String> = Vec::with_capacity(n);
    (0..n)
        .map(|i| {
            let id = format!("{}", 110_000_000_000_000_000u64 + i as u64);
            // Every other event answers an earlier one (a deterministic spread).
            let parent = (i % 2 == 1).then(|| (i * 7919) % i);
            let root = match parent {
                Some(p) => roots[p].clone(),
                None => id.clone(),
            };
            roots.push(root.clone());
            Engagement {
                item_id: id.clone(),
                kind: if parent.is_some() {
                    EngagementKind::Reply
                } else {
                    EngagementKind::Mention
                },
                author: EngagementAuthor {
                    id: format!("{}", i % 5000),
                    handle: format!("@fan{}@masto.test", i % 5000),
                    display_name: format!("Fan {}", i % 5000),
                    roles: Vec::new(),
                },
                text: format!("@clarion event {i}: when does the spring sale start?"),
                url: Some(format!("https://masto.test/@fan/{id}")),
                parent_id: parent.map(|p| format!("{}", 110_000_000_000_000_000u64 + p as u64)),
                root_id: root,
                place: None,
                created_at_ms: now_ms(),
            }
        })
        .collect()
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let scratch = Scratch::create(args.database_url.as_deref()).await?;
    let result = ingest(&args, &scratch.url).await;
    scratch.drop_it().await;
    result
}

async fn ingest(args: &IngestArgs, url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url, 8).await?;
    store.migrate().await?;
    let feed = GeneratedFeed {
        events: generate(args.events),
        batch: args.batch.max(1),
        overlap: args.overlap.min(args.batch.saturating_sub(1)),
    };
    let mut listeners = ListenerRegistry::default();
    listeners.insert("bench", Arc::new(feed));
    let runtime = ListenerRuntime::new(
        store.clone(),
        Arc::new(listeners),
        "bench".into(),
        ListenConfig::default(),
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let bar = ProgressBar::new(args.events as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events stored ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let task = tokio::spawn(runtime.run(stop));
    let stored = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = store
            .listeners()
            .await?
            .first()
            .map_or(0, |l| l.events_total as usize);
        bar.set_position(n as u64);
        if n >= args.events || started.elapsed() > Duration::from_secs(600) {
            break n;
        }
    };
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let _ = stop_tx.send(true);
    let _ = task.await;
    let conversations = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        clarion_store::conversation::Entity::find()
            .count(store.connection())
            .await?
    };
    let database = if store.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "ingest ({database}): {stored} events stored once of {} offered ({} repeats) in {:.2}s = {:.0} events/s; {conversations} conversations; peak RSS {:.1} MiB",
        args.events + (args.events / args.batch.max(1)) * args.overlap,
        (args.events / args.batch.max(1)) * args.overlap,
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        super::bench::peak_rss_mb()
    );
    anyhow::ensure!(
        stored == args.events,
        "only {stored} of {} events were stored",
        args.events
    );
    Ok(())
}
