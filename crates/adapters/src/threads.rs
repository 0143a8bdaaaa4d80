//! `threads`: posts to Threads through the Threads API: a media container
//! (`POST /{user-id}/threads`), then `POST /{user-id}/threads_publish`.
//! Thread parts after the first reply to the previous one (`reply_to_id`).
//!
//! ```toml
//! [[channels]]
//! name = "threads-main"
//! kind = "threads"
//! user_id = "17841400000000000"
//! access_token = { env = "THREADS_ACCESS_TOKEN" }   # long-lived (60 days)
//! # public_media_url = "https://cdn.example.com/media"  # where media_dir is served
//! # media_dir = "content/media"
//! # listen = true                # capture replies and mentions (see `listen`)
//! # listen_interval_secs = 300    # between two polls (60..=3600)
//! # listen_days = 7               # posts younger than this are watched (1..=90)
//! ```
//!
//! Answers from the inbox (`reply_to` set) are posts with `reply_to_id` set
//! to the message answered (a reply of anyone's, or a mention); that needs
//! `threads_manage_replies` besides `threads_content_publish`.
//!
//! Threads fetches images from a public URL; it takes no uploads. Without
//! `public_media_url`, posts with images are refused when planned.
//! Publishing takes no idempotency key: a server error on
//! `threads_publish` is `outcome_unknown` (an unpublished container is
//! harmless: it expires).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    Idempotency, LengthRule, LengthUnit, Listener, MediaRule, OutboundPost, PublishError,
    PublishReceipt, PublishRequest, RateWindow, Secret, SecretRef, ThreadStyle, ValidationError,
};
use serde::Deserialize;
use serde_json::Value;

use crate::facebook::{default_timeout, graph_base, graph_id, listen_settings};
use crate::meta_graph::{PublicMedia, read, success};

mod listen;
#[cfg(test)]
mod tests;

const MAX_CHARS: usize = 500;

/// One image per post (carousels take up to 20, not built); JPEG and PNG,
/// up to 8 MB.
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 8 * 1024 * 1024,
    mime_types: &["image/jpeg", "image/png"],
};

const PERMISSION: &str = "threads_basic and threads_content_publish";

const REPLY_PERMISSION: &str = "threads_basic, threads_content_publish and threads_manage_replies";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    user_id: String,
    access_token: SecretRef,
    public_media_url: Option<String>,
    media_dir: Option<PathBuf>,
    #[serde(default = "default_version")]
    api_version: String,
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Seconds between two polls of replies and mentions (listening only).
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: u64,
    /// Posts younger than this many days are watched for replies.
    #[serde(default = "default_listen_days")]
    listen_days: u64,
}

fn default_listen_interval() -> u64 {
    300
}

fn default_listen_days() -> u64 {
    7
}

fn default_version() -> String {
    "v1.0".to_owned()
}

fn default_api_base() -> String {
    "https://graph.threads.net".to_owned()
}

pub struct ThreadsAdapter {
    client: reqwest::Client,
    user_id: String,
    base: String,
    timeout: Duration,
    token: Secret,
    media: PublicMedia,
    /// Between two polls (the listener's).
    listen_interval: Duration,
    listen_days: u64,
}

impl std::fmt::Debug for ThreadsAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadsAdapter")
            .field("user_id", &self.user_id)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "threads"
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

fn configure(config: &ChannelConfig) -> Result<ThreadsAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let base = graph_base(&what, &s.api_base, &s.api_version, s.timeout_secs)?;
    let media = PublicMedia::new(s.public_media_url, s.media_dir)
        .map_err(|e| ConfigError::new(format!("channel `{}` {e}", config.name)))?;
    let (listen_interval, listen_days) =
        listen_settings(&what, s.listen_interval_secs, s.listen_days)?;
    Ok(ThreadsAdapter {
        client: crate::http_client(),
        user_id: graph_id(&what("user_id"), &s.user_id)?,
        base,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        token: s.access_token.resolve(&what("access_token"))?,
        media,
        listen_interval,
        listen_days,
    })
}

impl ThreadsAdapter {
    async fn post_form(
        &self,
        path: &str,
        form: &[(&str, String)],
        creates: bool,
        permission: &str,
    ) -> Result<Value, PublishError> {
        let answer = read(
            self.client
                .post(format!("{}/{}/{path}", self.base, self.user_id))
                .form(form)
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await?;
        success(&answer, creates, permission)
    }
}

fn id_of(
    value: &Value,
    doing: &str,
    class: clarion_core::ErrorClass,
) -> Result<String, PublishError> {
    value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| PublishError::new(class, format!("{doing}: the answer has no id")))
}

#[async_trait]
impl ChannelAdapter for ThreadsAdapter {
    fn kind(&self) -> &'static str {
        "threads"
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(MAX_CHARS, LengthUnit::Chars)
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        MEDIA_RULE
    }

    /// 250 published posts per 24 hours per profile.
    fn rate_window(&self) -> Option<RateWindow> {
        Some(RateWindow {
            max: 250,
            per: Duration::from_secs(24 * 3600),
        })
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)?;
        self.media_rule().check(&post.media)?;
        for m in &post.media {
            self.media.url(m)?;
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let post = request.post;
        let mut form = vec![("text", post.text.clone())];
        match post.media.first() {
            Some(media) => {
                let url = self.media.url(media).map_err(|e| {
                    PublishError::new(clarion_core::ErrorClass::Permanent, e.to_string())
                })?;
                form.push(("media_type", "IMAGE".to_owned()));
                form.push(("image_url", url));
                if !media.alt.trim().is_empty() {
                    form.push(("alt_text", media.alt.chars().take(1000).collect()));
                }
            }
            None => form.push(("media_type", "TEXT".to_owned())),
        }
        // Any reply can be answered: a thread part's previous part, someone
        // else's reply or a mention the listener reported.
        let permission = match request.reply_to {
            Some(reply) => {
                form.push(("reply_to_id", reply.parent.to_owned()));
                REPLY_PERMISSION
            }
            None => PERMISSION,
        };
        // A container is not a post: failing to make one posted nothing.
        let container = self.post_form("threads", &form, false, permission).await?;
        let container = id_of(
            &container,
            "creating the container",
            clarion_core::ErrorClass::Transient,
        )?;
        let published = self
            .post_form(
                "threads_publish",
                &[("creation_id", container)],
                true,
                permission,
            )
            .await?;
        let id = id_of(
            &published,
            "publishing",
            clarion_core::ErrorClass::OutcomeUnknown,
        )?;
        Ok(PublishReceipt {
            platform_post_id: Some(id),
            url: None,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let answer = read(
            self.client
                .get(format!("{}/{}", self.base, self.user_id))
                .query(&[("fields", "username")])
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await
        .map_err(crate::http::for_check)?;
        let value = success(&answer, false, PERMISSION).map_err(crate::http::for_check)?;
        let name = value.get("username").and_then(Value::as_str).unwrap_or("?");
        let detail = format!("@{name} ({})", self.user_id);
        Ok(match &self.media.base {
            Some(_) => ChannelCheck::ok(detail),
            None => ChannelCheck::warn(
                detail,
                "no public_media_url: posts with images will be refused",
            ),
        })
    }
}
