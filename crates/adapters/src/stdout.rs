//! `stdout`: prints each post instead of sending it. For dry runs and demos.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, PublishError, PublishReceipt,
    PublishRequest,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    max_length: Option<usize>,
    markup: Option<Markup>,
}

#[derive(Debug)]
pub struct StdoutAdapter {
    name: String,
    rule: LengthRule,
    markup: Markup,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        Ok(Arc::new(StdoutAdapter {
            name: config.name.clone(),
            rule: s
                .max_length
                .map(|max| LengthRule::new(max, LengthUnit::Chars))
                .unwrap_or_else(LengthRule::unlimited),
            markup: s.markup.unwrap_or(Markup::Plain),
        }))
    }
}

#[async_trait]
impl ChannelAdapter for StdoutAdapter {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn length_rule(&self) -> LengthRule {
        self.rule
    }

    fn markup(&self) -> Markup {
        self.markup
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let line = format!(
            "[{}] target {} ({}):\n{}\n",
            self.name, request.target_id, request.idempotency_key, request.post.text
        );
        std::io::stdout()
            .lock()
            .write_all(line.as_bytes())
            .map_err(|e| PublishError::new(ErrorClass::Transient, format!("stdout: {e}")))?;
        Ok(PublishReceipt {
            platform_post_id: Some(format!("stdout-{}", request.target_id)),
            url: None,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        Ok(ChannelCheck::ok("prints posts to standard output"))
    }
}
