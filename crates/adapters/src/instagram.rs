//! `instagram`: posts an image with a caption to an Instagram professional
//! account through the Instagram Graph API: a media container
//! (`POST /{ig-user-id}/media` with `image_url`), polled until
//! `status_code` is `FINISHED`, then `POST /{ig-user-id}/media_publish`.
//!
//! ```toml
//! [[channels]]
//! name = "instagram-main"
//! kind = "instagram"
//! ig_user_id = "17841400000000001"
//! access_token = { env = "INSTAGRAM_ACCESS_TOKEN" }
//! public_media_url = "https://cdn.example.com/media"  # where media_dir is served
//! # media_dir = "content/media"
//! # graph_version = "v24.0"
//! ```
//!
//! The container id is saved in the adapter store under the post's
//! idempotency key before polling, so an attempt that runs out of budget
//! while Instagram still processes the image returns `unfinished` and the
//! next attempt resumes polling the same container: a post never gets a
//! second container. `media_publish` takes no idempotency key: a server
//! error on it is `outcome_unknown`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, MediaRule, OutboundPost,
    PublishError, PublishReceipt, PublishRequest, RateWindow, Secret, SecretRef, ValidationError,
};
use serde::Deserialize;
use serde_json::Value;

use crate::facebook::{default_timeout, default_version, graph_base, graph_id};
use crate::meta_graph::{PublicMedia, read, success};

#[cfg(test)]
mod tests;

const MAX_CHARS: usize = 2200;
const MAX_HASHTAGS: usize = 30;

/// One JPEG per post (the only image type `image_url` takes), up to 8 MB.
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 8 * 1024 * 1024,
    mime_types: &["image/jpeg"],
};

const PERMISSION: &str =
    "instagram_basic and instagram_content_publish (and pages_read_engagement for the linked Page)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    ig_user_id: String,
    access_token: SecretRef,
    public_media_url: Option<String>,
    media_dir: Option<PathBuf>,
    #[serde(default = "default_version")]
    graph_version: String,
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Seconds between two container status polls.
    #[serde(default = "default_poll")]
    poll_interval_secs: f64,
}

fn default_api_base() -> String {
    "https://graph.facebook.com".to_owned()
}

fn default_poll() -> f64 {
    3.0
}

pub struct InstagramAdapter {
    client: reqwest::Client,
    channel: String,
    user_id: String,
    base: String,
    timeout: Duration,
    poll: Duration,
    token: Secret,
    media: PublicMedia,
    state: Arc<dyn AdapterStore>,
}

impl std::fmt::Debug for InstagramAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstagramAdapter")
            .field("channel", &self.channel)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "instagram"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(configure(config, context)?))
    }
}

fn configure(
    config: &ChannelConfig,
    context: &AdapterContext,
) -> Result<InstagramAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let base = graph_base(&what, &s.api_base, &s.graph_version, s.timeout_secs)?;
    if !(s.poll_interval_secs > 0.0 && s.poll_interval_secs <= 60.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 60 seconds",
            what("poll_interval_secs")
        )));
    }
    let media = PublicMedia::new(s.public_media_url, s.media_dir)
        .map_err(|e| ConfigError::new(format!("channel `{}` {e}", config.name)))?;
    Ok(InstagramAdapter {
        client: crate::http_client(),
        channel: config.name.clone(),
        user_id: graph_id(&what("ig_user_id"), &s.ig_user_id)?,
        base,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        poll: Duration::from_secs_f64(s.poll_interval_secs),
        token: s.access_token.resolve(&what("access_token"))?,
        media,
        state: context.state.clone(),
    })
}

/// Hashtags as Instagram counts them: `#` starting a word.
fn hashtags(text: &str) -> usize {
    text.split(|c: char| c.is_whitespace())
        .filter(|w| w.starts_with('#') && w.chars().nth(1).is_some_and(|c| c != '#'))
        .count()
}

fn store_error(e: impl std::fmt::Display) -> PublishError {
    PublishError::new(ErrorClass::Transient, format!("adapter store: {e}"))
}

impl InstagramAdapter {
    fn container_key(key: &str) -> String {
        format!("container:{key}")
    }

    async fn stored_container(&self, key: &str) -> Result<Option<String>, PublishError> {
        Ok(self
            .state
            .load(&self.channel, &Self::container_key(key))
            .await
            .map_err(store_error)?
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty()))
    }

    async fn save_container(&self, key: &str, id: &str) -> Result<(), PublishError> {
        self.state
            .save(&self.channel, &Self::container_key(key), &Secret::new(id))
            .await
            .map_err(store_error)
    }

    async fn status(&self, container: &str) -> Result<String, PublishError> {
        let answer = read(
            self.client
                .get(format!("{}/{container}", self.base))
                .query(&[("fields", "status_code")])
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await
        .map_err(crate::http::for_check)?;
        let value = success(&answer, false, PERMISSION)?;
        Ok(value
            .get("status_code")
            .and_then(Value::as_str)
            .unwrap_or("IN_PROGRESS")
            .to_owned())
    }
}

#[async_trait]
impl ChannelAdapter for InstagramAdapter {
    fn kind(&self) -> &'static str {
        "instagram"
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

    /// 100 API-published posts per 24 hours per account.
    fn rate_window(&self) -> Option<RateWindow> {
        Some(RateWindow {
            max: 100,
            per: Duration::from_secs(24 * 3600),
        })
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)?;
        let tags = hashtags(&post.text);
        if tags > MAX_HASHTAGS {
            return Err(ValidationError::new(format!(
                "{tags} hashtags; Instagram allows at most {MAX_HASHTAGS}"
            )));
        }
        if post.media.is_empty() {
            return Err(ValidationError::new(
                "Instagram needs an image: attach one (a JPEG)",
            ));
        }
        self.media_rule().check(&post.media)?;
        for m in &post.media {
            self.media.url(m)?;
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let started = Instant::now();
        // Stop polling with room left for the publish call itself.
        let polling_budget = request
            .budget
            .saturating_sub(self.timeout)
            .max(request.budget / 2);
        let post = request.post;
        let key = request.idempotency_key;
        let container = match self.stored_container(key).await? {
            Some(id) => id,
            None => {
                let media = post.media.first().ok_or_else(|| {
                    PublishError::new(ErrorClass::Permanent, "Instagram needs an image")
                })?;
                let url = self
                    .media
                    .url(media)
                    .map_err(|e| PublishError::new(ErrorClass::Permanent, e.to_string()))?;
                let mut form = vec![("image_url", url), ("caption", post.text.clone())];
                if !media.alt.trim().is_empty() {
                    form.push(("alt_text", media.alt.clone()));
                }
                let answer = read(
                    self.client
                        .post(format!("{}/{}/media", self.base, self.user_id))
                        .form(&form)
                        .bearer_auth(self.token.expose())
                        .timeout(self.timeout),
                )
                .await
                .map_err(|mut e| {
                    // A lost container answer posted nothing: it only expires.
                    if e.class == ErrorClass::OutcomeUnknown {
                        e.class = ErrorClass::Transient;
                    }
                    e
                })?;
                let value = success(&answer, false, PERMISSION)?;
                let id = value
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        PublishError::new(
                            ErrorClass::Transient,
                            "creating the container: the answer has no id",
                        )
                    })?
                    .to_owned();
                self.save_container(key, &id).await?;
                id
            }
        };
        loop {
            match self.status(&container).await?.as_str() {
                "FINISHED" => break,
                "PUBLISHED" => {
                    // An earlier attempt published it and lost the answer.
                    return Ok(PublishReceipt::default());
                }
                "EXPIRED" => {
                    // Never published within 24 hours: start over next time.
                    self.save_container(key, "").await?;
                    return Err(PublishError::new(
                        ErrorClass::Transient,
                        format!("container {container} expired before it was published"),
                    ));
                }
                "ERROR" => {
                    return Err(PublishError::new(
                        ErrorClass::Permanent,
                        format!(
                            "Instagram could not process the image (container {container} status ERROR)"
                        ),
                    ));
                }
                _ => {}
            }
            if started.elapsed() + self.poll >= polling_budget {
                return Err(PublishError::new(
                    ErrorClass::Unfinished,
                    format!("container {container} is still being processed; resuming"),
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
        let answer = read(
            self.client
                .post(format!("{}/{}/media_publish", self.base, self.user_id))
                .form(&[("creation_id", container.as_str())])
                .bearer_auth(self.token.expose())
                .timeout(self.timeout),
        )
        .await?;
        let value = success(&answer, true, PERMISSION)?;
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        Ok(PublishReceipt {
            platform_post_id: id,
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
                "no public_media_url: every post will be refused (Instagram needs an image by URL)",
            ),
        })
    }
}
