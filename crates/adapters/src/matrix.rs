//! `matrix`: placeholder until its adapter lands (being written now).

use std::sync::Arc;

use clarion_core::{AdapterContext, AdapterFactory, ChannelAdapter, ChannelConfig, ConfigError};

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Err(ConfigError::new(format!("channel `{}`: the matrix adapter is not available yet", config.name)))
    }
}
