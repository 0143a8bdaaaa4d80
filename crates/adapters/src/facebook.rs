//! `facebook`: posts to a Facebook Page through the Graph API with a
//! long-lived Page access token: `POST /{page-id}/feed` for text,
//! `POST /{page-id}/photos` (multipart `source` + `caption`) with an image.
//!
//! ```toml
//! [[channels]]
//! name = "facebook-page"
//! kind = "facebook"
//! page_id = "112233445566778"
//! page_access_token = { env = "FACEBOOK_PAGE_TOKEN" }
//! # graph_version = "v24.0"
//! ```
//!
//! Graph takes no idempotency key: a server error on a create is
//! `outcome_unknown`. Errors are classified by Graph code (see
//! [`crate::meta_graph`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, MediaRule, PublishError, PublishReceipt,
    PublishRequest, Secret, SecretRef,
};
use serde::Deserialize;
use serde_json::Value;

use crate::meta_graph::{read, success};

#[cfg(test)]
mod tests;

/// Facebook's post text limit.
const MAX_CHARS: usize = 63_206;

/// One photo per post (several need unpublished photos + `attached_media`).
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 10 * 1024 * 1024,
    mime_types: &["image/png", "image/jpeg", "image/gif"],
};

const PERMISSION: &str =
    "pages_manage_posts (and pages_read_engagement), granted to a Page access token of an admin";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    page_id: String,
    page_access_token: SecretRef,
    #[serde(default = "default_version")]
    graph_version: String,
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

pub(crate) fn default_version() -> String {
    "v24.0".to_owned()
}

fn default_api_base() -> String {
    "https://graph.facebook.com".to_owned()
}

pub(crate) fn default_timeout() -> f64 {
    30.0
}

pub struct FacebookAdapter {
    client: reqwest::Client,
    page_id: String,
    base: String,
    timeout: Duration,
    token: Secret,
}

impl std::fmt::Debug for FacebookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacebookAdapter")
            .field("page_id", &self.page_id)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "facebook"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(configure(config)?))
    }
}

/// Checks the shared Graph settings: base URL, `vNN.N` version, timeout.
pub(crate) fn graph_base(
    what: &dyn Fn(&str) -> String,
    api_base: &str,
    version: &str,
    timeout_secs: f64,
) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(api_base)
        .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("api_base"))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(format!(
            "{}: must be http or https",
            what("api_base")
        )));
    }
    let version = version.trim();
    let ok = version
        .strip_prefix('v')
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if !ok {
        return Err(ConfigError::new(format!(
            "{}: must look like v24.0",
            what("graph_version")
        )));
    }
    if !(timeout_secs > 0.0 && timeout_secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 300 seconds",
            what("timeout_secs")
        )));
    }
    Ok(format!("{}/{version}", api_base.trim_end_matches('/')))
}

/// A Graph object id: digits (and `_` in post ids), so it is safe in a path.
pub(crate) fn graph_id(what: &str, id: &str) -> Result<String, ConfigError> {
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::new(format!("{what}: must be a numeric id")));
    }
    Ok(id.to_owned())
}

fn configure(config: &ChannelConfig) -> Result<FacebookAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let base = graph_base(&what, &s.api_base, &s.graph_version, s.timeout_secs)?;
    Ok(FacebookAdapter {
        client: crate::http_client(),
        page_id: graph_id(&what("page_id"), &s.page_id)?,
        base,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        token: s.page_access_token.resolve(&what("page_access_token"))?,
    })
}

#[async_trait]
impl ChannelAdapter for FacebookAdapter {
    fn kind(&self) -> &'static str {
        "facebook"
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(MAX_CHARS, LengthUnit::Chars)
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        MEDIA_RULE
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let post = request.post;
        let builder = if let Some(media) = post.media.first() {
            let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
                PublishError::new(
                    ErrorClass::Permanent,
                    format!("cannot read {}: {e}", media.path.display()),
                )
            })?;
            let name = media
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "photo".to_owned());
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str(&media.mime)
                .map_err(|e| PublishError::new(ErrorClass::Permanent, e.to_string()))?;
            let form = reqwest::multipart::Form::new()
                .text("caption", post.text.clone())
                .part("source", part);
            self.client
                .post(format!("{}/{}/photos", self.base, self.page_id))
                .multipart(form)
        } else {
            self.client
                .post(format!("{}/{}/feed", self.base, self.page_id))
                .form(&[("message", post.text.as_str())])
        };
        let answer = read(
            builder
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await?;
        let value = success(&answer, true, PERMISSION)?;
        // `/photos` answers the photo `id` and the feed story `post_id`.
        let id = value
            .get("post_id")
            .or_else(|| value.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(PublishReceipt {
            url: id
                .as_ref()
                .map(|id| format!("https://www.facebook.com/{id}")),
            platform_post_id: id,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let answer = read(
            self.client
                .get(format!("{}/{}", self.base, self.page_id))
                .query(&[("fields", "name")])
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await
        .map_err(crate::http::for_check)?;
        let value = success(&answer, false, PERMISSION).map_err(crate::http::for_check)?;
        let name = value.get("name").and_then(Value::as_str).unwrap_or("?");
        Ok(ChannelCheck::ok(format!("Page {name} ({})", self.page_id)))
    }
}
