//! `file`: appends each post as one JSON line to a file. Deduplicates on the
//! idempotency key, so a retry after a crash never writes a post twice.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, PublishError, PublishReceipt,
    PublishRequest,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: PathBuf,
    max_length: Option<usize>,
    markup: Option<Markup>,
}

#[derive(Debug)]
pub struct FileAdapter {
    path: PathBuf,
    rule: LengthRule,
    markup: Markup,
    /// Serialises appends from this process so lines never interleave.
    lock: Mutex<()>,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        Ok(Arc::new(FileAdapter {
            path: s.path,
            rule: s
                .max_length
                .map(|max| LengthRule::new(max, LengthUnit::Chars))
                .unwrap_or_else(LengthRule::unlimited),
            markup: s.markup.unwrap_or(Markup::Markdown),
            lock: Mutex::new(()),
        }))
    }
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> PublishError {
    PublishError::new(ErrorClass::Transient, format!("{}: {e}", path.display()))
}

#[async_trait]
impl ChannelAdapter for FileAdapter {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn length_rule(&self) -> LengthRule {
        self.rule
    }

    fn markup(&self) -> Markup {
        self.markup
    }

    fn idempotency(&self) -> Idempotency {
        // Every publish reads the file and skips a key already written, so
        // a resend is deduplicated for as long as the file is kept.
        Idempotency::honoured_for(Idempotency::FOREVER)
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let _guard = self.lock.lock().await;
        let receipt = PublishReceipt {
            platform_post_id: Some(request.idempotency_key.to_owned()),
            url: None,
        };
        let existing = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error(&self.path, e)),
        };
        let already = existing.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("idempotency_key")
                        .and_then(|k| k.as_str().map(str::to_owned))
                })
                .as_deref()
                == Some(request.idempotency_key)
        });
        if already {
            return Ok(receipt);
        }
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(parent, e))?;
        }
        let mut line = serde_json::json!({
            "idempotency_key": request.idempotency_key,
            "post_id": request.post_id,
            "target_id": request.target_id,
            "text": request.post.text,
            "campaign": request.post.campaign,
            "written_at": chrono::Utc::now().to_rfc3339(),
        })
        .to_string();
        line.push('\n');
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        file.write_all(line.as_bytes())
            .await
            .map_err(|e| io_error(&self.path, e))?;
        file.sync_data()
            .await
            .map_err(|e| io_error(&self.path, e))?;
        Ok(receipt)
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        Ok(ChannelCheck::ok(format!(
            "appends JSON lines to {}",
            self.path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clarion_core::OutboundPost;

    #[tokio::test]
    async fn a_retry_with_the_same_key_writes_one_line() {
        let path = std::env::temp_dir().join(format!("clarion-file-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let config: ChannelConfig = serde_json::from_value(serde_json::json!({
            "name": "dry", "kind": "file", "path": path,
        }))
        .unwrap();
        let adapter = Factory.build(&config, &AdapterContext::default()).unwrap();
        let post = OutboundPost {
            text: "hello".into(),
            ..Default::default()
        };
        for key in ["k1", "k1", "k2"] {
            let request = PublishRequest {
                post: &post,
                idempotency_key: key,
                reply_to: None,
                post_id: 1,
                target_id: 1,
                scheduled_at_ms: 1_764_158_400_000,
                budget: std::time::Duration::from_secs(30),
            };
            adapter.publish(request).await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let keys: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["idempotency_key"].to_string()
            })
            .collect();
        assert_eq!(keys, vec!["\"k1\"", "\"k2\""]);
    }
}
