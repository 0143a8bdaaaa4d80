//! Channels by name, built from config by one factory per platform kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{AdapterStore, ChannelAdapter, Listener, MemoryAdapterStore};

/// A configuration problem, with the channel or setting it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// One `[[channels]]` entry of the config file. `settings` holds the
/// platform-specific keys; the adapter's factory decodes and checks them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: String,
    /// Capture mentions, replies and DMs of this account into the inbox
    /// (`clarion run` starts one listener per such channel).
    #[serde(default)]
    pub listen: bool,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ChannelConfig {
    /// Decodes the platform-specific settings, naming the channel on error.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_json::from_value(serde_json::Value::Object(self.settings.clone())).map_err(|e| {
            ConfigError::new(format!("channel `{}` (kind {}): {e}", self.name, self.kind))
        })
    }
}

/// What every factory may hand to the adapters it builds.
#[derive(Debug, Clone)]
pub struct AdapterContext {
    /// Where refreshed tokens and delivery marks persist (encrypted by the store).
    pub state: Arc<dyn AdapterStore>,
}

impl Default for AdapterContext {
    fn default() -> Self {
        Self {
            state: Arc::new(MemoryAdapterStore::default()),
        }
    }
}

/// Builds adapters of one platform kind. Adding a platform means writing one
/// adapter module with one factory and registering it in one list.
pub trait AdapterFactory: Send + Sync {
    fn kind(&self) -> &'static str;
    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError>;

    /// The listener of a channel configured with `listen = true`. `None`:
    /// this platform cannot listen (the registry says so, naming the channel).
    fn build_listener(
        &self,
        _config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        Ok(None)
    }
}

/// The configured channels, by name.
#[derive(Debug, Clone, Default)]
pub struct AdapterRegistry {
    channels: BTreeMap<String, Arc<dyn ChannelAdapter>>,
}

impl AdapterRegistry {
    /// Builds every configured channel, or reports every problem at once.
    pub fn build(
        factories: &[Box<dyn AdapterFactory>],
        configs: &[ChannelConfig],
        context: &AdapterContext,
    ) -> Result<Self, ConfigError> {
        let mut registry = Self::default();
        let mut problems = Vec::new();
        for config in configs {
            if registry.channels.contains_key(&config.name) {
                problems.push(format!("channel `{}` is configured twice", config.name));
                continue;
            }
            let Some(factory) = factories.iter().find(|f| f.kind() == config.kind) else {
                let kinds: Vec<_> = factories.iter().map(|f| f.kind()).collect();
                problems.push(format!(
                    "channel `{}`: unknown kind `{}` (known: {})",
                    config.name,
                    config.kind,
                    kinds.join(", ")
                ));
                continue;
            };
            match factory.build(config, context) {
                Ok(adapter) => {
                    registry.channels.insert(config.name.clone(), adapter);
                }
                Err(e) => problems.push(e.0),
            }
        }
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(ConfigError::new(problems.join("; ")))
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, adapter: Arc<dyn ChannelAdapter>) {
        self.channels.insert(name.into(), adapter);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ChannelAdapter>> {
        self.channels.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn ChannelAdapter>)> {
        self.channels.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// The listeners of channels configured with `listen = true`, by channel name.
#[derive(Debug, Clone, Default)]
pub struct ListenerRegistry {
    listeners: BTreeMap<String, Arc<dyn Listener>>,
}

impl ListenerRegistry {
    /// Builds the listener of every listening channel, or reports every problem at once.
    pub fn build(
        factories: &[Box<dyn AdapterFactory>],
        configs: &[ChannelConfig],
        context: &AdapterContext,
    ) -> Result<Self, ConfigError> {
        let mut registry = Self::default();
        let mut problems = Vec::new();
        for config in configs.iter().filter(|c| c.listen) {
            let Some(factory) = factories.iter().find(|f| f.kind() == config.kind) else {
                continue; // AdapterRegistry::build names unknown kinds.
            };
            match factory.build_listener(config, context) {
                Ok(Some(listener)) => {
                    registry.listeners.insert(config.name.clone(), listener);
                }
                Ok(None) => problems.push(format!(
                    "channel `{}`: kind {} cannot listen (remove `listen = true`)",
                    config.name, config.kind
                )),
                Err(e) => problems.push(e.0),
            }
        }
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(ConfigError::new(problems.join("; ")))
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, listener: Arc<dyn Listener>) {
        self.listeners.insert(name.into(), listener);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Listener>> {
        self.listeners.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Listener>)> {
        self.listeners.iter().map(|(k, v)| (k.as_str(), v))
    }
}
