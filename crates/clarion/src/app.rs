//! Wiring: config -> store, queue, channels, templates, post service.

use std::sync::Arc;

use anyhow::Context;
use clarion_content::ContentLibrary;
use clarion_core::{AdapterContext, AdapterRegistry};
use clarion_scheduler::{PostService, PublishQueue};
use clarion_store::{DbAdapterStore, SecretKey, Store};

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
        build_registry(&config, &AdapterContext::default())?;
        let library = Arc::new(
            ContentLibrary::load(&config.content_dir.join("templates"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let store = Store::connect(&config.database_url, config.max_connections)
            .await
            .context("opening the database")?;
        store.migrate().await.context("migrating the database")?;
        let registry = Arc::new(build_registry(&config, &adapter_context(&store))?);
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

pub fn build_registry(
    config: &Config,
    context: &AdapterContext,
) -> anyhow::Result<AdapterRegistry> {
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    AdapterRegistry::build(&factories, &config.channels, context)
        .map_err(|e| anyhow::anyhow!("config: {e}"))
}

/// Adapters persist refreshed tokens and delivery marks in the database,
/// encrypted with CLARION_SECRET_KEY; without a key they keep them in memory.
fn adapter_context(store: &Store) -> AdapterContext {
    match std::env::var("CLARION_SECRET_KEY") {
        Ok(key) if !key.trim().is_empty() => AdapterContext {
            state: Arc::new(DbAdapterStore::new(
                store.clone(),
                SecretKey::from_passphrase(key.trim()),
            )),
        },
        _ => {
            tracing::warn!(
                "CLARION_SECRET_KEY is not set: refreshed tokens and delivery marks are kept in memory only"
            );
            AdapterContext::default()
        }
    }
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
