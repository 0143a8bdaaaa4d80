//! Wiring: config -> store, queue, channels, templates, post service.

use std::sync::Arc;

use anyhow::Context;
use clarion_content::ContentLibrary;
use clarion_core::AdapterRegistry;
use clarion_scheduler::{PostService, PublishQueue};
use clarion_store::Store;

use crate::config::Config;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub registry: Arc<AdapterRegistry>,
    pub queue: PublishQueue,
    pub service: PostService,
}

impl App {
    /// Opens everything a command needs. Channels and templates are checked
    /// before the database is touched, so a bad config changes nothing.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let registry = Arc::new(build_registry(&config)?);
        let library = Arc::new(
            ContentLibrary::load(&config.content_dir.join("templates"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let store = Store::connect(&config.database_url, config.max_connections)
            .await
            .context("opening the database")?;
        store.migrate().await.context("migrating the database")?;
        let queue = PublishQueue::open(&store, &config.scheduler)
            .await
            .context("opening the job queue")?;
        store
            .upsert_channels(
                &config
                    .channels
                    .iter()
                    .map(|c| {
                        (
                            c.name.clone(),
                            c.kind.clone(),
                            serde_json::Value::Object(c.settings.clone()).to_string(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
        let service = PostService::new(store.clone(), queue.clone(), registry.clone(), library);
        Ok(Self {
            config,
            store,
            registry,
            queue,
            service,
        })
    }
}

pub fn build_registry(config: &Config) -> anyhow::Result<AdapterRegistry> {
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    AdapterRegistry::build(&factories, &config.channels).map_err(|e| anyhow::anyhow!("config: {e}"))
}

/// Unique per process, readable in logs and attempt records.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "clarion".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &nonce[..6])
}
