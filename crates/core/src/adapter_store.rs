//! Small state adapters keep between calls: credentials obtained at run
//! time (refreshed access tokens) and delivery marks (which recipients of
//! an email already got it). Adapters never touch the database: they get
//! this trait; the store implements it, encrypted at rest.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adapter store: {0}")]
pub struct AdapterStoreError(pub String);

#[async_trait]
pub trait AdapterStore: Send + Sync + std::fmt::Debug {
    /// The value saved under `scope`/`name` (scope is usually the channel name), if any.
    async fn load(&self, scope: &str, name: &str) -> Result<Option<Secret>, AdapterStoreError>;
    /// Saves (replaces) a value.
    async fn save(&self, scope: &str, name: &str, value: &Secret) -> Result<(), AdapterStoreError>;
}

/// Keeps state in memory only: for commands that never refresh
/// tokens (`content plan`) and for tests.
#[derive(Debug, Default)]
pub struct MemoryAdapterStore {
    values: Mutex<HashMap<(String, String), Secret>>,
}

#[async_trait]
impl AdapterStore for MemoryAdapterStore {
    async fn load(&self, scope: &str, name: &str) -> Result<Option<Secret>, AdapterStoreError> {
        let values = self
            .values
            .lock()
            .map_err(|e| AdapterStoreError(e.to_string()))?;
        Ok(values.get(&(scope.to_owned(), name.to_owned())).cloned())
    }

    async fn save(&self, scope: &str, name: &str, value: &Secret) -> Result<(), AdapterStoreError> {
        let mut values = self
            .values
            .lock()
            .map_err(|e| AdapterStoreError(e.to_string()))?;
        values.insert((scope.to_owned(), name.to_owned()), value.clone());
        Ok(())
    }
}
