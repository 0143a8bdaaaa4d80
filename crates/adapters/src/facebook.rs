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
//! # listen = true                # capture comments on the Page's posts (see `listen`)
//! # listen_interval_secs = 300    # between two polls (60..=3600)
//! # listen_days = 7               # posts younger than this are watched (1..=90)
//! ```
//!
//! Graph takes no idempotency key: a server error on a create is
//! `outcome_unknown`. Errors are classified by Graph code (see
//! [`crate::meta_graph`]).
//!
//! Answers from the inbox (`reply_to` set) are comments written as the
//! Page: `POST /{root}/comments` with `message` (and a photo as `source`),
//! where the root is the post or the top-level comment the listener named
//! (Facebook nests replies one level deep, so an answer to a reply goes
//! under the comment it replies to). The receipt id is the new comment's
//! id, in the form the listener reports. Needs `pages_manage_engagement`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, MediaRule, PublishError,
    PublishReceipt, PublishRequest, Secret, SecretRef,
};
use serde::Deserialize;
use serde_json::Value;

use crate::meta_graph::{read, success};

pub(crate) mod listen;
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

const REPLY_PERMISSION: &str =
    "pages_manage_engagement (and pages_read_engagement), granted to a Page access token";

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
    /// Seconds between two polls of the Page's comments (listening only).
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: u64,
    /// Posts younger than this many days are watched for comments.
    #[serde(default = "default_listen_days")]
    listen_days: u64,
}

fn default_listen_interval() -> u64 {
    300
}

fn default_listen_days() -> u64 {
    7
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
    /// Between two polls of the comments (the listener's).
    listen_interval: Duration,
    listen_days: u64,
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

    fn build_listener(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        listen::build(config)
    }
}

/// Checks the listener's poll interval and watched days (shared with Threads).
pub(crate) fn listen_settings(
    what: &dyn Fn(&str) -> String,
    interval_secs: u64,
    days: u64,
) -> Result<(Duration, u64), ConfigError> {
    // Graph's hourly quotas: a poll reads one request per post at least.
    if !(60..=3600).contains(&interval_secs) {
        return Err(ConfigError::new(format!(
            "{}: must be between 60 and 3600 seconds",
            what("listen_interval_secs")
        )));
    }
    if !(1..=90).contains(&days) {
        return Err(ConfigError::new(format!(
            "{}: must be between 1 and 90 days",
            what("listen_days")
        )));
    }
    Ok((Duration::from_secs(interval_secs), days))
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

/// A Graph object id to comment on: digits joined by `_`, so it is safe in
/// a path (it comes from the inbox, not from the operator).
fn reply_target(id: &str) -> Result<&str, PublishError> {
    let ok = !id.is_empty()
        && id
            .split('_')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(id)
    } else {
        Err(PublishError::new(
            ErrorClass::Permanent,
            format!("cannot answer {id:?}: not a Facebook post or comment id"),
        ))
    }
}

fn configure(config: &ChannelConfig) -> Result<FacebookAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let base = graph_base(&what, &s.api_base, &s.graph_version, s.timeout_secs)?;
    let (listen_interval, listen_days) =
        listen_settings(&what, s.listen_interval_secs, s.listen_days)?;
    Ok(FacebookAdapter {
        client: crate::http_client(),
        page_id: graph_id(&what("page_id"), &s.page_id)?,
        base,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        token: s.page_access_token.resolve(&what("page_access_token"))?,
        listen_interval,
        listen_days,
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
        // An answer comments on the thread's root: the post, or the
        // top-level comment (Facebook nests one level).
        let reply_target = match request.reply_to {
            Some(reply) => Some(reply_target(reply.root)?),
            None => None,
        };
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
            match reply_target {
                Some(target) => self
                    .client
                    .post(format!("{}/{target}/comments", self.base))
                    .multipart(
                        reqwest::multipart::Form::new()
                            .text("message", post.text.clone())
                            .part("source", part),
                    ),
                None => self
                    .client
                    .post(format!("{}/{}/photos", self.base, self.page_id))
                    .multipart(
                        reqwest::multipart::Form::new()
                            .text("caption", post.text.clone())
                            .part("source", part),
                    ),
            }
        } else {
            let path = match reply_target {
                Some(target) => format!("{target}/comments"),
                None => format!("{}/feed", self.page_id),
            };
            self.client
                .post(format!("{}/{path}", self.base))
                .form(&[("message", post.text.as_str())])
        };
        let answer = read(
            builder
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await?;
        let value = success(
            &answer,
            true,
            if reply_target.is_some() {
                REPLY_PERMISSION
            } else {
                PERMISSION
            },
        )?;
        if reply_target.is_some() {
            // A comment: `{"id": "<post>_<comment>"}`, as the listener reports it.
            let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
            return Ok(PublishReceipt {
                platform_post_id: id,
                url: None,
            });
        }
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
