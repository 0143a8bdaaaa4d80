//! Wiring: config -> store, queue, channels, templates, post service.

use std::sync::Arc;

use anyhow::Context;
use clarion_content::ContentLibrary;
use clarion_core::{AdapterContext, AdapterRegistry, ListenerRegistry};
use clarion_engage::InboxService;
use clarion_scheduler::{PostService, PublishQueue};
use clarion_store::{DbAdapterStore, KEY_FILE_NAME, SecretKey, Store};

use crate::config::Config;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub registry: Arc<AdapterRegistry>,
    pub queue: PublishQueue,
    pub service: PostService,
    /// Listeners of the channels with `listen = true`.
    pub listeners: Arc<ListenerRegistry>,
    pub inbox: InboxService,
    /// Tracked links, orders, attribution and reports.
    pub analytics: clarion_analytics::Analytics,
}

impl App {
    /// Opens everything a command needs. Channels and templates are checked
    /// before the database is touched, so a bad config changes nothing.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let channels = build_registry(&config, &AdapterContext::default())?;
        build_listeners(&config, &AdapterContext::default())?;
        clarion_engage::rules::Rules::new(&config.rules, &channels.names().collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        config
            .alerts
            .validate(&channels)
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let library = Arc::new(
            ContentLibrary::load(&config.content_dir.join("templates"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let store = Store::connect(&config.database_url, config.max_connections)
            .await
            .context("opening the database")?;
        store.migrate().await.context("migrating the database")?;
        let passphrase = std::env::var("CLARION_SECRET_KEY").ok();
        let context = adapter_context(&config, &store, passphrase.as_deref()).await?;
        let registry = Arc::new(build_registry(&config, &context)?);
        let listeners = Arc::new(build_listeners(&config, &context)?);
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
        let analytics = clarion_analytics::Analytics::open(
            store.clone(),
            &config.attribution,
            &config.server.bind,
            &config.content_dir,
        )
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let service = PostService::new(store.clone(), queue.clone(), registry.clone(), library)
            .with_media_dir(clarion_content::MediaDir::new(config.media_dir()))
            .with_link_tracking(analytics.links.base_url());
        let inbox = InboxService::new(service.clone(), registry.clone());
        Ok(Self {
            analytics,
            config,
            store,
            registry,
            queue,
            service,
            listeners,
            inbox,
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

pub fn build_listeners(
    config: &Config,
    context: &AdapterContext,
) -> anyhow::Result<ListenerRegistry> {
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    ListenerRegistry::build(&factories, &config.channels, context)
        .map_err(|e| anyhow::anyhow!("config: {e}"))
}

/// Adapters persist refreshed tokens and delivery marks in the database,
/// encrypted under the installation's key (see [`secret_key`]).
async fn adapter_context(
    config: &Config,
    store: &Store,
    passphrase: Option<&str>,
) -> anyhow::Result<AdapterContext> {
    let Some(key) = secret_key(config, store, passphrase).await? else {
        tracing::info!("in-memory database: adapter state is kept in memory too");
        return Ok(AdapterContext::default());
    };
    Ok(AdapterContext {
        state: Arc::new(DbAdapterStore::new(store.clone(), key)),
    })
}

/// The key adapter state is encrypted with, first match wins:
/// 1. `CLARION_SECRET_KEY` (a passphrase; Argon2id with a salt kept in the database);
/// 2. `secret_key_file` / `CLARION_SECRET_KEY_FILE` (must exist);
/// 3. SQLite: `clarion.key` beside the database file, created on first start;
///    PostgreSQL: `clarion.key` in the working directory (where relative
///    paths such as `content_dir` resolve), created on first start.
///
/// With PostgreSQL every process sharing the database must use the same
/// key: a process that made up its own cannot read what the others stored
/// (it gets a clear decryption error naming the value, never garbage), so
/// the log says to copy the file or set `secret_key_file`. An in-memory
/// SQLite database keeps adapter state in memory (`None`).
async fn secret_key(
    config: &Config,
    store: &Store,
    passphrase: Option<&str>,
) -> anyhow::Result<Option<SecretKey>> {
    let passphrase = passphrase.map(str::trim).filter(|p| !p.is_empty());
    match (passphrase, &config.secret_key_file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "both CLARION_SECRET_KEY and secret_key_file (CLARION_SECRET_KEY_FILE) are set: keep one"
        ),
        (Some(passphrase), None) => Ok(Some(
            SecretKey::from_passphrase(store, passphrase)
                .await
                .context("deriving the key from CLARION_SECRET_KEY")?,
        )),
        (None, Some(path)) => Ok(Some(SecretKey::read_key_file(path)?)),
        (None, None) => {
            let path = if store.is_postgres() {
                std::path::PathBuf::from(KEY_FILE_NAME)
            } else {
                let Some(db) = store.sqlite_file() else {
                    return Ok(None);
                };
                db.parent()
                    .unwrap_or(std::path::Path::new(""))
                    .join(KEY_FILE_NAME)
            };
            if store.is_postgres() && !path.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "no secret key configured for PostgreSQL: creating one here; every Clarion \
                     process sharing this database needs this same key (copy the file and set \
                     secret_key_file, or set CLARION_SECRET_KEY)"
                );
            }
            let (key, _created) = SecretKey::load_or_create_key_file(&path)?;
            Ok(Some(key))
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

#[cfg(test)]
mod tests {
    use clarion_core::Secret;

    use super::*;

    fn config(dir: &std::path::Path, extra: &str) -> Config {
        toml::from_str(&format!(
            "database_url = \"sqlite://{}?mode=rwc\"\n{extra}",
            dir.join("data/clarion.db").display()
        ))
        .unwrap()
    }

    async fn store(config: &Config) -> Store {
        let store = Store::connect(&config.database_url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn without_a_key_the_first_start_makes_a_private_key_file_the_next_reads() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "");
        {
            let store = store(&config).await;
            let context = adapter_context(&config, &store, None).await.unwrap();
            context
                .state
                .save("x-main", "refresh_token", &Secret::new("rt-1"))
                .await
                .unwrap();
        }
        let key_file = dir.path().join("data").join(KEY_FILE_NAME);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        // A second start (new process, new connection) reads it back.
        let store = store(&config).await;
        let context = adapter_context(&config, &store, Some("  ")).await.unwrap();
        let value = context.state.load("x-main", "refresh_token").await.unwrap();
        assert_eq!(value.unwrap().expose(), "rt-1");
    }

    #[tokio::test]
    async fn the_channels_table_keeps_secret_references_not_values() {
        use sea_orm::EntityTrait;
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("CLARION_TEST_APP_HOOK_HEADER", "hdr-v4lue") };
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            dir.path(),
            &format!(
                "content_dir = \"{}\"\n\
                 [[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\n\
                 headers = {{ \"X-Token\" = {{ env = \"CLARION_TEST_APP_HOOK_HEADER\" }} }}\n",
                dir.path().join("content").display()
            ),
        );
        let app = App::open(config).await.unwrap();
        let rows = clarion_store::channel::Entity::find()
            .all(app.store.connection())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].settings.contains("CLARION_TEST_APP_HOOK_HEADER"),
            "{}",
            rows[0].settings
        );
        assert!(
            !rows[0].settings.contains("hdr-v4lue"),
            "{}",
            rows[0].settings
        );
    }

    #[tokio::test]
    async fn a_configured_key_file_must_exist_and_excludes_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elsewhere.key");
        let config = config(
            dir.path(),
            &format!("secret_key_file = \"{}\"", path.display()),
        );
        let store = store(&config).await;
        let err = adapter_context(&config, &store, None).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read key file"),
            "{err:#}"
        );
        assert!(!dir.path().join("data").join(KEY_FILE_NAME).exists());
        let err = adapter_context(&config, &store, Some("passphrase"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("keep one"), "{err}");

        std::fs::write(&path, [5u8; 32]).unwrap();
        let context = adapter_context(&config, &store, None).await.unwrap();
        context
            .state
            .save("s", "n", &Secret::new("v"))
            .await
            .unwrap();
        assert_eq!(
            context
                .state
                .load("s", "n")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            "v"
        );
    }
}
