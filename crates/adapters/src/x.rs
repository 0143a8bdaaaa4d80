//! `x`: posts through the X API v2 with an OAuth 2.0 user-context token.
//!
//! ```toml
//! [[channels]]
//! name = "x-main"
//! kind = "x"
//! client_id = "rG9n6402A3dbUJKzXTNX4oWHJ"          # from the developer portal (public)
//! client_secret = { env = "X_CLIENT_SECRET" }      # only for confidential clients
//! access_token = { env = "X_ACCESS_TOKEN" }        # initial tokens, obtained once via PKCE
//! refresh_token = { env = "X_REFRESH_TOKEN" }      # needs the `offline.access` scope
//! timeout_secs = 20
//! # api_base = "https://api.x.com"
//! # listen = true                                 # capture mentions (see `listen`)
//! # listen_interval_secs = 60                     # between mention polls
//! ```
//!
//! X rotates the refresh token on every refresh, so the configured tokens
//! only seed the chain: the current pair lives in the adapter store under
//! the channel name and wins over the configured one, until the configured
//! refresh token changes (the operator reconnected). Several processes may
//! share one store (PostgreSQL): before refreshing, the adapter re-reads the
//! stored pair, and uses it if another process already refreshed, instead of
//! spending a refresh token X has already rotated away.
//!
//! `POST /2/tweets` takes no idempotency key, so a 5xx answer to it is
//! `outcome_unknown` (X may have created the post before failing), never
//! retried; a connection that never opened stays `transient`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, Media,
    MediaRule, PostCounts, PublishError, PublishReceipt, PublishRequest, Secret, SecretRef,
    ThreadStyle,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{classify_status, classify_transport, retry_after};

mod listen;

/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

/// X counts up to 4 images per post; 5 MB is the image limit of the
/// one-shot upload (larger files and video need the chunked flow).
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 4,
    max_bytes: 5 * 1024 * 1024,
    mime_types: MediaRule::IMAGES,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_api_base")]
    api_base: String,
    client_id: String,
    client_secret: Option<SecretRef>,
    access_token: SecretRef,
    refresh_token: SecretRef,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Seconds between two polls of the mentions timeline (listening only).
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: f64,
}

fn default_listen_interval() -> f64 {
    60.0
}

fn default_api_base() -> String {
    "https://api.x.com".to_owned()
}

fn default_timeout() -> f64 {
    20.0
}

/// One access/refresh pair. Never printed (both are [`Secret`]s).
#[derive(Debug, Clone)]
struct Tokens {
    access: Secret,
    refresh: Secret,
}

pub struct XAdapter {
    client: reqwest::Client,
    channel: String,
    api_base: String,
    client_id: String,
    client_secret: Option<Secret>,
    timeout: Duration,
    state: Arc<dyn AdapterStore>,
    /// The configured pair: the start of the rotation chain.
    configured: Tokens,
    /// The pair in use; `None` until the store has been consulted, which
    /// needs an async call and so cannot happen in `build`.
    current: tokio::sync::Mutex<Option<Tokens>>,
    /// Between two polls of the mentions timeline (the listener's).
    listen_interval: Duration,
}

impl std::fmt::Debug for XAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XAdapter")
            .field("channel", &self.channel)
            .field("api_base", &self.api_base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "x"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(configure(config, context)?))
    }

    fn build_listener(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        listen::build(config, context)
    }
}

/// Checks the settings and builds the adapter (the listener builds on it
/// too, sharing the channel's stored token pair).
fn configure(config: &ChannelConfig, context: &AdapterContext) -> Result<XAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let base = reqwest::Url::parse(&s.api_base)
        .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("api_base"))))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(ConfigError::new(format!(
            "{}: must be http or https",
            what("api_base")
        )));
    }
    if s.client_id.trim().is_empty() {
        return Err(ConfigError::new(format!(
            "{}: must not be empty",
            what("client_id")
        )));
    }
    if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 300 seconds",
            what("timeout_secs")
        )));
    }
    if !(s.listen_interval_secs >= 1.0 && s.listen_interval_secs <= 86_400.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 1 and 86400 seconds",
            what("listen_interval_secs")
        )));
    }
    let configured = Tokens {
        access: s.access_token.resolve(&what("access_token"))?,
        refresh: s.refresh_token.resolve(&what("refresh_token"))?,
    };
    let client_secret = s
        .client_secret
        .map(|r| r.resolve(&what("client_secret")))
        .transpose()?;
    // The factory list hands no client to this kind (see lib.rs), so the
    // adapter builds its own; reqwest clients are cheap and pooled.
    let client = reqwest::Client::builder()
        .user_agent(concat!("clarion/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::new(format!("{}: {e}", what("(x)"))))?;
    Ok(XAdapter {
        client,
        channel: config.name.clone(),
        api_base: s.api_base.trim_end_matches('/').to_owned(),
        client_id: s.client_id.trim().to_owned(),
        client_secret,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        state: context.state.clone(),
        configured,
        current: tokio::sync::Mutex::new(None),
        listen_interval: Duration::from_secs_f64(s.listen_interval_secs),
    })
}

/// A stable, non-reversible tag of the configured refresh token, stored
/// next to the rotated pair so a reconnect (new configured token) is noticed.
fn fingerprint(secret: &Secret) -> String {
    // FNV-1a: stable across processes and Rust versions, unlike DefaultHasher.
    let hash = clarion_core::hash::fnv1a64(secret.expose().as_bytes());
    format!("{hash:016x}")
}

/// An HTTP answer read to the end.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl XAdapter {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    /// The pair to use now: the stored one when it descends from the
    /// configured refresh token, else the configured one.
    async fn tokens(&self) -> Tokens {
        let mut current = self.current.lock().await;
        if let Some(tokens) = current.as_ref() {
            return tokens.clone();
        }
        let tokens = self
            .load_stored()
            .await
            .unwrap_or_else(|| self.configured.clone());
        *current = Some(tokens.clone());
        tokens
    }

    async fn load_stored(&self) -> Option<Tokens> {
        let load = |name: &'static str| async move {
            match self.state.load(&self.channel, name).await {
                Ok(value) => value,
                Err(e) => {
                    // Falling back to the configured pair may still work
                    // (it is valid until its first rotation), so go on.
                    tracing::warn!(channel = %self.channel, "cannot read stored {name}: {e}");
                    None
                }
            }
        };
        let seeded_from = load("seeded_from").await?;
        if seeded_from.expose() != fingerprint(&self.configured.refresh) {
            tracing::info!(channel = %self.channel, "configured X tokens changed; using them instead of the stored ones");
            return None;
        }
        Some(Tokens {
            access: load("access_token").await?,
            refresh: load("refresh_token").await?,
        })
    }

    async fn persist(&self, tokens: &Tokens) {
        let seed = Secret::new(fingerprint(&self.configured.refresh));
        for (name, value) in [
            ("access_token", &tokens.access),
            ("refresh_token", &tokens.refresh),
            ("seeded_from", &seed),
        ] {
            if let Err(e) = self.state.save(&self.channel, name, value).await {
                // The pair still works from memory; only a restart would
                // lose it, so failing the post now would help nobody.
                tracing::error!(channel = %self.channel, "cannot save rotated {name}: {e}; a restart will need a reconnect");
            }
        }
    }

    /// The stored pair, when it is not `tokens` (another process sharing the
    /// store refreshed since this one last looked).
    async fn stored_if_newer(&self, tokens: &Tokens) -> Option<Tokens> {
        self.load_stored()
            .await
            .filter(|stored| stored.access != tokens.access || stored.refresh != tokens.refresh)
    }

    /// Trades the refresh token for a new pair. `stale` is the access token
    /// that was refused: if another call of this process, or another process
    /// sharing the adapter store, already refreshed meanwhile, that pair is
    /// used instead of spending the (rotated) refresh token twice. Returns
    /// the access token to use and whether X just issued it (a token taken
    /// over from elsewhere may have expired too).
    async fn refresh(&self, stale: &Secret) -> Result<(Secret, bool), PublishError> {
        let mut current = self.current.lock().await;
        let mut tokens = current.clone().unwrap_or_else(|| self.configured.clone());
        if tokens.access != *stale {
            return Ok((tokens.access, false));
        }
        if let Some(stored) = self.stored_if_newer(&tokens).await {
            tracing::info!(channel = %self.channel, "another process refreshed the X token; using its pair");
            *current = Some(stored.clone());
            if stored.access != *stale {
                return Ok((stored.access, false));
            }
            // Same access token but a newer refresh token: refresh with that.
            tokens = stored;
        }
        let mut request = self
            .client
            .post(self.url("/2/oauth2/token"))
            .timeout(self.timeout)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh.expose()),
                ("client_id", self.client_id.as_str()),
            ]);
        if let Some(secret) = &self.client_secret {
            // Confidential clients authenticate with Basic auth on this endpoint.
            request = request.basic_auth(&self.client_id, Some(secret.expose()));
        }
        let answer = read(request).await.map_err(|mut e| {
            // The post itself was refused with 401, so nothing went out.
            e.class = ErrorClass::Transient;
            e.message = format!("refreshing the access token: {}", e.message);
            e
        })?;
        if !answer.status.is_success() {
            let e = classify(&answer);
            if matches!(answer.status.as_u16(), 400 | 401 | 403) {
                // Another process may have won a race to the same refresh
                // token (X accepts it once): its pair is in the store.
                if let Some(stored) = self.stored_if_newer(&tokens).await
                    && stored.access != *stale
                {
                    tracing::info!(channel = %self.channel, "another process refreshed the X token first; using its pair");
                    *current = Some(stored.clone());
                    return Ok((stored.access, false));
                }
            }
            return Err(match answer.status.as_u16() {
                400 | 401 | 403 => PublishError::new(
                    ErrorClass::AuthExpired,
                    format!("reconnect: refresh token rejected ({})", e.message),
                )
                .with_status(answer.status.as_u16()),
                _ => PublishError {
                    message: format!("refreshing the access token: {}", e.message),
                    ..e
                },
            });
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            refresh_token: Option<String>,
        }
        let fresh: TokenAnswer = serde_json::from_str(&answer.body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("refreshing the access token: unexpected answer: {e}"),
            )
        })?;
        let tokens = Tokens {
            access: Secret::new(fresh.access_token),
            // X always rotates; keep the old one should it ever not.
            refresh: fresh
                .refresh_token
                .map(Secret::new)
                .unwrap_or(tokens.refresh),
        };
        self.persist(&tokens).await;
        *current = Some(tokens.clone());
        tracing::info!(channel = %self.channel, "refreshed the X access token");
        Ok((tokens.access, true))
    }

    /// Sends a user-context request; on 401 refreshes and sends it again
    /// (a 401 means nothing was done, so the resend is safe). A pair taken
    /// over from another process may itself have expired: then one real
    /// refresh follows.
    async fn call(&self, build: impl Fn(&str) -> RequestBuilder) -> Result<Answer, PublishError> {
        let mut token = self.tokens().await.access;
        let mut answer = read(build(token.expose()).timeout(self.timeout)).await?;
        for _ in 0..2 {
            if answer.status != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
            let (fresh, issued) = self.refresh(&token).await?;
            token = fresh;
            answer = read(build(token.expose()).timeout(self.timeout)).await?;
            if issued {
                break;
            }
        }
        if answer.status == StatusCode::UNAUTHORIZED {
            let e = classify(&answer);
            return Err(PublishError::new(
                ErrorClass::AuthExpired,
                format!(
                    "reconnect: a freshly refreshed token was refused ({})",
                    e.message
                ),
            )
            .with_status(401));
        }
        Ok(answer)
    }

    async fn upload(&self, media: &Media) -> Result<String, PublishError> {
        let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(
                ErrorClass::Permanent,
                format!("cannot read {}: {e}", media.path.display()),
            )
        })?;
        let file_name = media
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "media".to_owned());
        let answer = self
            .call(|token| {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(file_name.clone())
                    .mime_str(&media.mime)
                    // Validation already restricts the type; octet-stream is
                    // what X's docs suggest when a type is unknown.
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(bytes.clone()));
                let form = reqwest::multipart::Form::new()
                    .text("media_category", "tweet_image")
                    .part("media", part);
                self.client
                    .post(self.url("/2/media/upload"))
                    .bearer_auth(token)
                    .multipart(form)
            })
            .await?;
        let value = success_json(&answer, Some("uploading media"))?;
        let id = value
            .pointer("/data/id")
            .or_else(|| value.get("media_id_string"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                PublishError::new(
                    ErrorClass::Transient,
                    "uploading media: the answer has no media id",
                )
            })?;
        if !media.alt.trim().is_empty() {
            let body =
                json!({"id": id, "metadata": {"alt_text": {"text": truncate(&media.alt, 1000)}}});
            let answer = self
                .call(|token| {
                    self.client
                        .post(self.url("/2/media/metadata"))
                        .bearer_auth(token)
                        .json(&body)
                })
                .await?;
            success_json(&answer, Some("setting alt text"))?;
        }
        Ok(id)
    }
}

async fn read(request: RequestBuilder) -> Result<Answer, PublishError> {
    let response = request.send().await.map_err(classify_transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(classify_transport)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The JSON body of a success, or the classified failure.
/// `doing` prefixes messages of side steps (uploads); the post itself
/// keeps X's words unprefixed.
fn success_json(answer: &Answer, doing: Option<&str>) -> Result<Value, PublishError> {
    let prefix = doing.map(|d| format!("{d}: ")).unwrap_or_default();
    if !answer.status.is_success() {
        let e = classify(answer);
        return Err(PublishError {
            message: format!("{prefix}{}", e.message),
            ..e
        });
    }
    serde_json::from_str(&answer.body).map_err(|e| {
        PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!(
                "{prefix}unexpected answer (HTTP {}): {e}",
                answer.status.as_u16()
            ),
        )
    })
}

/// X's own words: `detail`, then `title`, then the first `errors[].message`;
/// a validation `detail` is generic, so the specific message is appended.
fn x_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let first_error = value
        .pointer("/errors/0/message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let main = field("detail")
        .or_else(|| field("title"))
        .or_else(|| field("error_description"))
        .or_else(|| field("error"));
    match (main, first_error) {
        (Some(main), Some(err)) if main != err => Some(format!("{main} ({err})")),
        (Some(main), _) => Some(main),
        (None, err) => err,
    }
}

/// Classifies a non-success answer the X way.
fn classify(answer: &Answer) -> PublishError {
    let status = answer.status.as_u16();
    let text = x_message(&answer.body).unwrap_or_else(|| answer.body.trim().to_owned());
    let mut text = truncate(&text, MAX_MESSAGE);
    if text.is_empty() {
        text = answer
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned();
    }
    let message = format!("HTTP {status}: {text}");
    let generic = classify_status(answer.status, &answer.headers, &answer.body);
    let class = match status {
        // X answers 403 for content it refuses (duplicates, policy), which
        // no reconnect would fix, unlike the generic reading of 403.
        403 => ErrorClass::Permanent,
        _ => generic.class,
    };
    let wait = if status == 429 {
        rate_limit_reset(&answer.headers).or_else(|| retry_after(&answer.headers))
    } else {
        generic.retry_after
    };
    PublishError::new(class, message)
        .with_status(status)
        .with_retry_after(wait)
}

/// `x-rate-limit-reset` is the epoch second the window reopens.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset: f64 = headers
        .get("x-rate-limit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let wait = reset - now;
    Some(if wait.is_finite() && wait > 0.0 {
        Duration::from_secs_f64(wait)
    } else {
        Duration::ZERO
    })
}

#[async_trait]
impl ChannelAdapter for XAdapter {
    fn kind(&self) -> &'static str {
        "x"
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(280, LengthUnit::XWeighted)
    }

    fn markup(&self) -> Markup {
        Markup::Plain
    }

    fn idempotency(&self) -> Idempotency {
        // POST /2/tweets takes no idempotency key: a resend may post twice.
        Idempotency::None
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        MEDIA_RULE
    }

    fn min_interval(&self) -> Option<Duration> {
        // Post limits are per 15 minutes and per day and depend on the API
        // tier; a second between sends keeps a thread or a backlog from
        // bursting, and 429s (with their reset time) handle the rest.
        Some(Duration::from_secs(1))
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let mut media_ids = Vec::with_capacity(request.post.media.len());
        for media in &request.post.media {
            media_ids.push(self.upload(media).await?);
        }
        let mut body = json!({ "text": request.post.text });
        if let Some(reply) = request.reply_to {
            body["reply"] = json!({ "in_reply_to_tweet_id": reply.parent });
        }
        if !media_ids.is_empty() {
            body["media"] = json!({ "media_ids": media_ids });
        }
        let answer = self
            .call(|token| {
                self.client
                    .post(self.url("/2/tweets"))
                    .bearer_auth(token)
                    .json(&body)
            })
            .await?;
        let value = success_json(&answer, None).map_err(|e| {
            if answer.status.is_server_error() {
                // X may have created the post before failing, and a resend
                // cannot be deduplicated: report it, never retry it.
                PublishError {
                    class: ErrorClass::OutcomeUnknown,
                    ..e
                }
            } else {
                e
            }
        })?;
        let Some(id) = value.pointer("/data/id").and_then(Value::as_str) else {
            // A 2xx without an id: X may or may not have created the post.
            let detail = x_message(&answer.body).unwrap_or_else(|| "no post id".to_owned());
            return Err(PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!("HTTP {}: {detail}", answer.status.as_u16()),
            ));
        };
        Ok(PublishReceipt {
            platform_post_id: Some(id.to_owned()),
            url: Some(format!("https://x.com/i/web/status/{id}")),
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }

    /// `GET /2/tweets/:id?tweet.fields=public_metrics`: likes, reposts,
    /// replies, quotes and impressions (a read: the Basic tier or above).
    async fn post_counts(&self, id: &str) -> Result<Option<PostCounts>, PublishError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("`{id}` is not a post id"),
            ));
        }
        let answer = self
            .call(|token| {
                self.client
                    .request(Method::GET, self.url(&format!("/2/tweets/{id}")))
                    .query(&[("tweet.fields", "public_metrics")])
                    .bearer_auth(token)
            })
            .await?;
        let value = success_json(&answer, Some("reading counts"))?;
        // A deleted post answers 200 with `errors` and no `data`.
        let Some(metrics) = value.pointer("/data/public_metrics") else {
            let detail = value
                .pointer("/errors/0/detail")
                .and_then(Value::as_str)
                .unwrap_or("the post is gone");
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("reading counts: {detail}"),
            ));
        };
        let count = |name: &str| metrics.get(name).and_then(Value::as_i64);
        Ok(Some(PostCounts {
            likes: count("like_count"),
            reposts: count("retweet_count"),
            replies: count("reply_count"),
            quotes: count("quote_count"),
            views: count("impression_count"),
        }))
    }
}

impl XAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        let answer = self
            .call(|token| {
                self.client
                    .request(Method::GET, self.url("/2/users/me"))
                    .bearer_auth(token)
            })
            .await?;
        let value = success_json(&answer, None)?;
        let username = value
            .pointer("/data/username")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                PublishError::new(ErrorClass::Transient, "the answer has no username")
            })?;
        Ok(ChannelCheck::ok(format!("@{username}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus, Uri};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{MemoryAdapterStore, OutboundPost, ReplyTo};

    use super::*;

    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        authorization: String,
        body: String,
    }

    /// A forced answer: status, one extra header, JSON body.
    type Forced = (u16, Option<(String, String)>, Value);

    /// A fake X: accepts one access token and one refresh token at a time.
    struct Fake {
        seen: Mutex<Vec<Seen>>,
        access: Mutex<String>,
        refresh: Mutex<String>,
        /// Forced answer for `/2/tweets` (status, extra header, body).
        tweets: Mutex<Option<Forced>>,
    }

    impl Fake {
        fn paths(&self) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.path.clone())
                .collect()
        }

        fn last(&self, path: &str) -> Seen {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|s| s.path == path)
                .cloned()
                .unwrap()
        }
    }

    async fn answer(fake: Arc<Fake>, uri: Uri, headers: AxumHeaders, body: Bytes) -> Response {
        let path = uri.path().to_owned();
        let body = String::from_utf8_lossy(&body).into_owned();
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        fake.seen.lock().unwrap().push(Seen {
            path: path.clone(),
            authorization: authorization.clone(),
            body: body.clone(),
        });
        if path == "/2/oauth2/token" {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let mut refresh = fake.refresh.lock().unwrap();
            if get("grant_type").as_deref() == Some("refresh_token")
                && get("refresh_token").as_deref() == Some(refresh.as_str())
                && get("client_id").as_deref() == Some("client-1")
            {
                // Like X: every refresh rotates the refresh token, and only
                // the newest one is accepted afterwards.
                let n = refresh
                    .strip_prefix("refresh-")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1)
                    + 1;
                *refresh = format!("refresh-{n}");
                *fake.access.lock().unwrap() = format!("access-{n}");
                return axum::Json(json!({"token_type": "bearer", "expires_in": 7200, "access_token": format!("access-{n}"), "refresh_token": format!("refresh-{n}"), "scope": "tweet.read tweet.write users.read offline.access"})).into_response();
            }
            return (
                AxumStatus::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."})),
            )
                .into_response();
        }
        if authorization != format!("Bearer {}", fake.access.lock().unwrap()) {
            return (
                AxumStatus::UNAUTHORIZED,
                axum::Json(json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})),
            )
                .into_response();
        }
        match path.as_str() {
            "/2/tweets" => {
                if let Some((status, header, value)) = fake.tweets.lock().unwrap().clone() {
                    let mut response =
                        (AxumStatus::from_u16(status).unwrap(), axum::Json(value)).into_response();
                    if let Some((name, value)) = header {
                        response.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                            value.parse().unwrap(),
                        );
                    }
                    return response;
                }
                let text = serde_json::from_str::<Value>(&body).unwrap()["text"].clone();
                (
                    AxumStatus::CREATED,
                    axum::Json(json!({"data": {"id": "1790000000000000001", "text": text}})),
                )
                    .into_response()
            }
            "/2/tweets/1790000000000000001" => axum::Json(json!({"data": {
                "id": "1790000000000000001", "text": "hello", "edit_history_tweet_ids": ["1790000000000000001"],
                "public_metrics": {"retweet_count": 2, "reply_count": 1, "like_count": 9, "quote_count": 0, "bookmark_count": 1, "impression_count": 340}
            }}))
            .into_response(),
            p if p.starts_with("/2/tweets/") => axum::Json(json!({"errors": [{
                "value": p.trim_start_matches("/2/tweets/"), "detail": "Could not find tweet with id: [...].",
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                "type": "https://api.twitter.com/2/problems/resource-not-found"
            }]}))
            .into_response(),
            "/2/media/upload" => axum::Json(json!({"data": {"id": "710511363345354753", "media_key": "3_710511363345354753", "size": 4, "expires_after_secs": 86400}})).into_response(),
            "/2/media/metadata" => axum::Json(json!({"data": {"id": "710511363345354753"}})).into_response(),
            "/2/users/me" => axum::Json(json!({"data": {"id": "2244994945", "name": "Clarion", "username": "clarion_test"}})).into_response(),
            _ => AxumStatus::NOT_FOUND.into_response(),
        }
    }

    async fn fake_x(access: &str) -> (String, Arc<Fake>) {
        let fake = Arc::new(Fake {
            seen: Mutex::default(),
            access: Mutex::new(access.to_owned()),
            refresh: Mutex::new("refresh-1".to_owned()),
            tweets: Mutex::default(),
        });
        let state = fake.clone();
        let app =
            axum::Router::new().fallback(move |uri: Uri, headers: AxumHeaders, body: Bytes| {
                answer(state.clone(), uri, headers, body)
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    /// A secret file for this test (env vars would race between tests).
    fn secret_file(test: &str, name: &str, value: &str) -> Value {
        let path =
            std::env::temp_dir().join(format!("clarion-x-{}-{test}-{name}", std::process::id()));
        std::fs::write(&path, value).unwrap();
        json!({ "file": path })
    }

    fn adapter(test: &str, base: &str, store: Arc<MemoryAdapterStore>) -> Arc<dyn ChannelAdapter> {
        let config = json!({
            "name": "x-main",
            "kind": "x",
            "api_base": base,
            "client_id": "client-1",
            "access_token": secret_file(test, "access", "access-1"),
            "refresh_token": secret_file(test, "refresh", "refresh-1"),
            "timeout_secs": 5,
        });
        Factory
            .build(
                &serde_json::from_value(config).unwrap(),
                &AdapterContext { state: store },
            )
            .unwrap()
    }

    async fn publish(
        adapter: &dyn ChannelAdapter,
        post: &OutboundPost,
        reply_to: Option<ReplyTo<'_>>,
    ) -> Result<PublishReceipt, PublishError> {
        adapter
            .publish(PublishRequest {
                post,
                idempotency_key: "key-1",
                reply_to,
                post_id: 7,
                target_id: 9,
                scheduled_at_ms: 1_764_158_400_000,
                budget: std::time::Duration::from_secs(30),
            })
            .await
    }

    fn text(text: &str) -> OutboundPost {
        OutboundPost {
            text: text.into(),
            campaign: None,
            media: vec![],
        }
    }

    #[tokio::test]
    async fn x_post_counts_read_public_metrics_and_a_deleted_post_is_permanent() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("counts", &base, Arc::default());
        let counts = adapter
            .post_counts("1790000000000000001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                counts.likes,
                counts.reposts,
                counts.replies,
                counts.quotes,
                counts.views
            ),
            (Some(9), Some(2), Some(1), Some(0), Some(340))
        );
        assert!(
            fake.paths()
                .contains(&"/2/tweets/1790000000000000001".to_owned())
        );
        let gone = adapter
            .post_counts("1790000000000000002")
            .await
            .unwrap_err();
        assert_eq!(gone.class, ErrorClass::Permanent, "{gone}");
        assert!(gone.message.contains("Could not find tweet"), "{gone}");
        let bogus = adapter.post_counts("12a").await.unwrap_err();
        assert_eq!(bogus.class, ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn x_posts_text_with_the_bearer_token_and_reads_the_receipt() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("plain", &base, Arc::default());
        let receipt = publish(adapter.as_ref(), &text("hello"), None)
            .await
            .unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some("1790000000000000001".into()),
                url: Some("https://x.com/i/web/status/1790000000000000001".into()),
            }
        );
        let seen = fake.last("/2/tweets");
        assert_eq!(seen.authorization, "Bearer access-1");
        assert_eq!(
            serde_json::from_str::<Value>(&seen.body).unwrap(),
            json!({"text": "hello"})
        );
        assert_eq!(fake.paths(), ["/2/tweets"]);
    }

    #[tokio::test]
    async fn x_uploads_an_image_then_attaches_its_id() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("image", &base, Arc::default());
        let path = std::env::temp_dir().join(format!("clarion-x-{}-image.png", std::process::id()));
        std::fs::write(&path, b"PNGDATA").unwrap();
        let post = OutboundPost {
            text: "look".into(),
            campaign: None,
            media: vec![Media {
                path,
                alt: "a chart".into(),
                mime: "image/png".into(),
                bytes: 7,
            }],
        };
        publish(adapter.as_ref(), &post, None).await.unwrap();
        assert_eq!(
            fake.paths(),
            ["/2/media/upload", "/2/media/metadata", "/2/tweets"]
        );
        let upload = fake.last("/2/media/upload");
        assert_eq!(upload.authorization, "Bearer access-1");
        assert!(
            upload
                .body
                .contains("name=\"media_category\"\r\n\r\ntweet_image\r\n"),
            "{}",
            upload.body
        );
        assert!(
            upload
                .body
                .contains("Content-Type: image/png\r\n\r\nPNGDATA\r\n"),
            "{}",
            upload.body
        );
        assert_eq!(
            serde_json::from_str::<Value>(&fake.last("/2/media/metadata").body).unwrap(),
            json!({"id": "710511363345354753", "metadata": {"alt_text": {"text": "a chart"}}})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&fake.last("/2/tweets").body).unwrap(),
            json!({"text": "look", "media": {"media_ids": ["710511363345354753"]}})
        );
    }

    #[tokio::test]
    async fn x_thread_parts_reply_to_the_previous_part() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("thread", &base, Arc::default());
        assert_eq!(adapter.thread_style(), ThreadStyle::Native);
        let reply = ReplyTo {
            root: "100",
            parent: "101",
        };
        publish(adapter.as_ref(), &text("2/2"), Some(reply))
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fake.last("/2/tweets").body).unwrap(),
            json!({"text": "2/2", "reply": {"in_reply_to_tweet_id": "101"}})
        );
    }

    #[tokio::test]
    async fn x_refreshes_an_expired_token_once_and_persists_the_rotated_pair() {
        // The fake only accepts access-2, which only a refresh yields.
        let (base, fake) = fake_x("access-2").await;
        let store = Arc::new(MemoryAdapterStore::default());
        let adapter = adapter("refresh", &base, store.clone());
        let receipt = publish(adapter.as_ref(), &text("hello"), None)
            .await
            .unwrap();
        assert_eq!(
            receipt.platform_post_id.as_deref(),
            Some("1790000000000000001")
        );
        assert_eq!(fake.paths(), ["/2/tweets", "/2/oauth2/token", "/2/tweets"]);
        let seen = fake.seen.lock().unwrap().clone();
        assert_eq!(seen[0].authorization, "Bearer access-1");
        assert_eq!(
            seen[1].body,
            "grant_type=refresh_token&refresh_token=refresh-1&client_id=client-1"
        );
        assert_eq!(
            seen[1].authorization, "",
            "public clients send no Basic auth"
        );
        assert_eq!(seen[2].authorization, "Bearer access-2");
        let stored = |name: &'static str| {
            let store = store.clone();
            async move {
                store
                    .load("x-main", name)
                    .await
                    .unwrap()
                    .map(|s| s.expose().to_owned())
            }
        };
        assert_eq!(stored("access_token").await.as_deref(), Some("access-2"));
        assert_eq!(stored("refresh_token").await.as_deref(), Some("refresh-2"));

        // A new adapter (a restart) starts from the stored pair, not the
        // configured one, whose refresh token X has already rotated away.
        let restarted = self::adapter("refresh", &base, store.clone());
        publish(restarted.as_ref(), &text("again"), None)
            .await
            .unwrap();
        assert_eq!(fake.last("/2/tweets").authorization, "Bearer access-2");
        assert_eq!(
            fake.paths().len(),
            4,
            "no second refresh: {:?}",
            fake.paths()
        );
    }

    /// Two processes share one store (PostgreSQL): after one refreshes, X
    /// accepts only the rotated refresh token, so the other must take the
    /// stored pair instead of refreshing with the one it holds in memory.
    #[tokio::test]
    async fn x_a_pair_another_process_refreshed_is_used_without_a_failed_refresh() {
        let (base, fake) = fake_x("access-1").await;
        let store = Arc::new(MemoryAdapterStore::default());
        let one = adapter("shared", &base, store.clone());
        let two = adapter("shared", &base, store.clone());
        let three = adapter("shared", &base, store.clone());
        for adapter in [&one, &two, &three] {
            publish(adapter.as_ref(), &text("warm"), None)
                .await
                .unwrap();
        }
        let paths_after = |n: usize| fake.paths()[n..].to_vec();

        // access-1 expires; process one refreshes (refresh-1 -> refresh-2).
        *fake.access.lock().unwrap() = "expired".into();
        let seen = fake.paths().len();
        publish(one.as_ref(), &text("one"), None).await.unwrap();
        assert_eq!(
            paths_after(seen),
            ["/2/tweets", "/2/oauth2/token", "/2/tweets"]
        );
        assert_eq!(*fake.refresh.lock().unwrap(), "refresh-2");

        // Process two still holds access-1/refresh-1 in memory.
        let seen = fake.paths().len();
        let receipt = publish(two.as_ref(), &text("two"), None).await.unwrap();
        assert_eq!(
            receipt.platform_post_id.as_deref(),
            Some("1790000000000000001")
        );
        assert_eq!(
            paths_after(seen),
            ["/2/tweets", "/2/tweets"],
            "no refresh with the rotated-away token"
        );
        assert_eq!(fake.last("/2/tweets").authorization, "Bearer access-2");

        // The stored pair's access token has expired too: process three takes
        // it over, and refreshes with the stored refresh token once.
        *fake.access.lock().unwrap() = "expired-2".into();
        let seen = fake.paths().len();
        publish(three.as_ref(), &text("three"), None).await.unwrap();
        assert_eq!(
            paths_after(seen),
            ["/2/tweets", "/2/tweets", "/2/oauth2/token", "/2/tweets"]
        );
        assert_eq!(
            fake.last("/2/oauth2/token").body,
            "grant_type=refresh_token&refresh_token=refresh-2&client_id=client-1"
        );
        assert_eq!(fake.last("/2/tweets").authorization, "Bearer access-3");
        let stored = store.load("x-main", "refresh_token").await.unwrap();
        assert_eq!(stored.as_ref().map(|s| s.expose()), Some("refresh-3"));
    }

    #[tokio::test]
    async fn x_a_rejected_refresh_token_means_reconnect() {
        let (base, fake) = fake_x("access-2").await;
        *fake.refresh.lock().unwrap() = "someone-else".into();
        let adapter = adapter("rejected", &base, Arc::default());
        let error = publish(adapter.as_ref(), &text("hello"), None)
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired);
        assert_eq!(
            error.message,
            "reconnect: refresh token rejected (HTTP 400: Value passed for the token was invalid.)"
        );
        assert_eq!(fake.paths(), ["/2/tweets", "/2/oauth2/token"]);
    }

    #[tokio::test]
    async fn x_rate_limits_wait_until_the_reset_time() {
        let (base, fake) = fake_x("access-1").await;
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3;
        *fake.tweets.lock().unwrap() = Some((
            429,
            Some(("x-rate-limit-reset".into(), reset.to_string())),
            json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}),
        ));
        let adapter = adapter("limited", &base, Arc::default());
        let error = publish(adapter.as_ref(), &text("hello"), None)
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.message, "HTTP 429: Too Many Requests");
        let wait = error.retry_after.unwrap();
        // The reset is a whole epoch second 3 s ahead of a truncated "now".
        assert!(
            wait > Duration::from_millis(1500) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn x_duplicate_content_is_permanent_with_the_detail() {
        let (base, fake) = fake_x("access-1").await;
        *fake.tweets.lock().unwrap() = Some((
            403,
            None,
            json!({"detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank", "title": "Forbidden", "status": 403}),
        ));
        let adapter = adapter("duplicate", &base, Arc::default());
        let error = publish(adapter.as_ref(), &text("hello"), None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str(), error.status),
            (
                ErrorClass::Permanent,
                "HTTP 403: You are not allowed to create a Tweet with duplicate content.",
                Some(403)
            )
        );
    }

    #[tokio::test]
    async fn x_other_failures_are_classified() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("classes", &base, Arc::default());
        *fake.tweets.lock().unwrap() = Some((
            400,
            None,
            json!({"errors": [{"parameters": {"text": ["x"]}, "message": "`text` is too long"}], "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
        ));
        let invalid = publish(adapter.as_ref(), &text("x"), None)
            .await
            .unwrap_err();
        assert_eq!(
            (invalid.class, invalid.message.as_str()),
            (
                ErrorClass::Permanent,
                "HTTP 400: One or more parameters to your request was invalid. (`text` is too long)"
            )
        );
        // A 5xx may come after X created the post; POST /2/tweets has no
        // idempotency key, so it is reported, never retried.
        *fake.tweets.lock().unwrap() = Some((
            503,
            None,
            json!({"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503}),
        ));
        let down = publish(adapter.as_ref(), &text("x"), None)
            .await
            .unwrap_err();
        assert_eq!(
            (down.class, down.message.as_str(), down.status),
            (
                ErrorClass::OutcomeUnknown,
                "HTTP 503: Service Unavailable",
                Some(503)
            )
        );
        let tweets = fake.paths().iter().filter(|p| *p == "/2/tweets").count();
        assert_eq!(tweets, 2, "each publish sent once: {:?}", fake.paths());

        // Nothing listens: nothing was sent, so a retry is safe.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let refused = self::adapter("classes", &format!("http://{closed}"), Arc::default());
        let error = publish(refused.as_ref(), &text("x"), None)
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
    }

    #[tokio::test]
    async fn x_check_names_the_account() {
        let (base, fake) = fake_x("access-1").await;
        let adapter = adapter("check", &base, Arc::default());
        assert_eq!(adapter.check().await.unwrap().detail, "@clarion_test");
        assert_eq!(fake.last("/2/users/me").authorization, "Bearer access-1");
    }

    #[test]
    fn x_limits_and_settings() {
        let store: Arc<MemoryAdapterStore> = Arc::default();
        let adapter = adapter("limits", "http://127.0.0.1:9", store);
        assert_eq!(adapter.idempotency(), Idempotency::None);
        assert_eq!(
            adapter.length_rule(),
            LengthRule::new(280, LengthUnit::XWeighted)
        );
        assert_eq!(adapter.media_rule(), MEDIA_RULE);
        assert_eq!(adapter.min_interval(), Some(Duration::from_secs(1)));
        assert!(!format!("{adapter:?}").contains("access-1"));
        let typo = Factory
            .build(
                &serde_json::from_value(json!({"name": "x-main", "kind": "x", "client_id": "c", "access_token": {"env": "A"}, "refresh_token": {"env": "B"}, "timeout": 3})).unwrap(),
                &AdapterContext::default(),
            )
            .unwrap_err();
        assert!(
            typo.to_string()
                .starts_with("channel `x-main` (kind x): unknown field `timeout`"),
            "{typo}"
        );
    }
}
