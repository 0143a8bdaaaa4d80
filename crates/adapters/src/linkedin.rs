//! `linkedin`: posts through LinkedIn's Posts API (`POST /rest/posts`) as
//! an organization page or a member, with an OAuth 2.0 access token.
//!
//! ```toml
//! [[channels]]
//! name = "linkedin-company"
//! kind = "linkedin"
//! author = "urn:li:organization:2414183"          # or "urn:li:person:..."
//! access_token = { env = "LINKEDIN_ACCESS_TOKEN" }
//! # refresh_token = { env = "LINKEDIN_REFRESH_TOKEN" } # only where LinkedIn grants one
//! # client_id = "86abc..."                           # needed with refresh_token
//! # client_secret = { env = "LINKEDIN_CLIENT_SECRET" }
//! # linkedin_version = "202510"                       # the `LinkedIn-Version` header
//! # listen = true                                     # capture comments (see `listen`)
//! # listen_interval_secs = 600                        # between polls
//! # listen_days = 7                                   # watch posts of the last N days
//! ```
//!
//! With a refresh token, a 401 refreshes once (`POST /oauth/v2/accessToken`)
//! and the new pair is kept in the adapter store under the channel name,
//! re-read before each refresh so processes sharing a store do not spend a
//! refresh token twice. Without one, a 401 is `auth_expired`.
//!
//! `POST /rest/posts` takes no idempotency key: a 5xx answer or a timeout
//! is `outcome_unknown`. The commentary uses LinkedIn's "little text"
//! format, so its reserved characters are backslash-escaped.
//!
//! Inbox replies: a post with `reply_to` is sent as a comment through the
//! Comments API. Answering the post itself (`parent` is not a comment URN,
//! or is the root) is `POST /rest/socialActions/{root}/comments` with
//! `actor` (the author), `object` (the root) and `message.text`; answering a
//! comment creates a nested comment: `POST /rest/socialActions/{parent
//! comment URN}/comments` with `object` the thread URN inside the comment
//! URN and `parentComment` the comment. The receipt id is the new comment's
//! URN, the form the listener gives comments. Comment text is plain text
//! (not "little text"), at most 1,250 characters, with no picture: anything
//! else is refused as permanent, saying why.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Media, MediaRule,
    OutboundPost, PublishError, PublishReceipt, PublishRequest, ReplyTo, Secret, SecretRef,
};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{classify_status, classify_transport};

mod listen;
#[cfg(test)]
mod tests;

/// Commentary limit of the Posts API.
const MAX_CHARS: usize = 3000;
/// Text limit of a comment (`message.text`).
const MAX_COMMENT_CHARS: usize = 1250;

/// One image per post (`content.media`); LinkedIn's image limit is set by
/// pixels (36 MP), 10 MB keeps well inside it.
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 10 * 1024 * 1024,
    mime_types: &["image/png", "image/jpeg", "image/gif"],
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    author: String,
    access_token: SecretRef,
    refresh_token: Option<SecretRef>,
    client_id: Option<String>,
    client_secret: Option<SecretRef>,
    #[serde(default = "default_version")]
    linkedin_version: String,
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_oauth_base")]
    oauth_base: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Seconds between two polls of the listener (listening only).
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: f64,
    /// The listener watches the comments of posts of the last this many days.
    #[serde(default = "default_listen_days")]
    listen_days: u32,
}

/// A poll is one request for the posts plus one per recent post (and one
/// per commented comment): every ten minutes stays far inside LinkedIn's
/// daily per-member and per-app limits.
fn default_listen_interval() -> f64 {
    600.0
}

fn default_listen_days() -> u32 {
    7
}

fn default_version() -> String {
    "202510".to_owned()
}

fn default_api_base() -> String {
    "https://api.linkedin.com".to_owned()
}

fn default_oauth_base() -> String {
    "https://www.linkedin.com".to_owned()
}

fn default_timeout() -> f64 {
    20.0
}

/// What a refresh needs. Never printed.
struct Refresh {
    token: Secret,
    client_id: String,
    client_secret: Secret,
}

pub struct LinkedInAdapter {
    client: reqwest::Client,
    channel: String,
    author: String,
    version: String,
    api_base: String,
    oauth_base: String,
    timeout: Duration,
    state: Arc<dyn AdapterStore>,
    configured_access: Secret,
    refresh: Option<Refresh>,
    /// The access token in use; `None` until the store was consulted.
    current: tokio::sync::Mutex<Option<Secret>>,
    /// Between two polls (the listener's).
    listen_interval: Duration,
    /// How far back the listener looks for posts to watch.
    listen_days: u32,
}

impl std::fmt::Debug for LinkedInAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedInAdapter")
            .field("channel", &self.channel)
            .field("author", &self.author)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "linkedin"
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
        Ok(Some(listen::listener(configure(config, context)?)))
    }
}

fn configure(
    config: &ChannelConfig,
    context: &AdapterContext,
) -> Result<LinkedInAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    for (field, base) in [("api_base", &s.api_base), ("oauth_base", &s.oauth_base)] {
        let url = reqwest::Url::parse(base)
            .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what(field))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(format!(
                "{}: must be http or https",
                what(field)
            )));
        }
    }
    let author = s.author.trim().to_owned();
    let id = author
        .strip_prefix("urn:li:organization:")
        .or_else(|| author.strip_prefix("urn:li:person:"));
    if id.is_none_or(str::is_empty) {
        return Err(ConfigError::new(format!(
            "{}: must be `urn:li:organization:<id>` or `urn:li:person:<id>`",
            what("author")
        )));
    }
    let version = s.linkedin_version.trim().to_owned();
    if version.len() != 6 || !version.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::new(format!(
            "{}: must be a version month like 202510",
            what("linkedin_version")
        )));
    }
    if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 300 seconds",
            what("timeout_secs")
        )));
    }
    if !(s.listen_interval_secs >= 60.0 && s.listen_interval_secs <= 86_400.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 60 and 86400 seconds",
            what("listen_interval_secs")
        )));
    }
    if !(1..=365).contains(&s.listen_days) {
        return Err(ConfigError::new(format!(
            "{}: must be between 1 and 365 days",
            what("listen_days")
        )));
    }
    let refresh = match (s.refresh_token, s.client_id, s.client_secret) {
        (None, _, _) => None,
        (Some(token), Some(client_id), Some(secret)) if !client_id.trim().is_empty() => {
            Some(Refresh {
                token: token.resolve(&what("refresh_token"))?,
                client_id: client_id.trim().to_owned(),
                client_secret: secret.resolve(&what("client_secret"))?,
            })
        }
        (Some(_), _, _) => {
            return Err(ConfigError::new(format!(
                "{}: needs client_id and client_secret too",
                what("refresh_token")
            )));
        }
    };
    Ok(LinkedInAdapter {
        client: crate::http_client(),
        channel: config.name.clone(),
        author,
        version,
        api_base: s.api_base.trim_end_matches('/').to_owned(),
        oauth_base: s.oauth_base.trim_end_matches('/').to_owned(),
        timeout: Duration::from_secs_f64(s.timeout_secs),
        state: context.state.clone(),
        configured_access: s.access_token.resolve(&what("access_token"))?,
        refresh,
        current: tokio::sync::Mutex::new(None),
        listen_interval: Duration::from_secs_f64(s.listen_interval_secs),
        listen_days: s.listen_days,
    })
}

/// A URN as one path segment: Rest.li wants `:`, `(`, `,` and `)` encoded.
fn encode_urn(urn: &str) -> String {
    url::form_urlencoded::byte_serialize(urn.as_bytes()).collect()
}

/// The thread a comment URN `urn:li:comment:(<thread>,<id>)` belongs to.
fn comment_thread(urn: &str) -> Option<&str> {
    let inner = urn.strip_prefix("urn:li:comment:(")?.strip_suffix(')')?;
    let (thread, id) = inner.rsplit_once(',')?;
    (thread.starts_with("urn:li:") && !id.is_empty()).then_some(thread)
}

/// Where LinkedIn shows a comment: its post, scrolled to it.
fn comment_url(post: &str, comment: &str, parent: Option<&str>) -> String {
    match parent {
        Some(parent) => format!(
            "https://www.linkedin.com/feed/update/{post}/?commentUrn={}&replyUrn={}",
            encode_urn(parent),
            encode_urn(comment)
        ),
        None => format!(
            "https://www.linkedin.com/feed/update/{post}/?commentUrn={}",
            encode_urn(comment)
        ),
    }
}

/// Escapes LinkedIn's "little text" reserved characters so text is shown
/// as written (not read as mentions, hashtags templates or markup).
pub(crate) fn escape_little_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '(' | ')' | '{' | '}' | '[' | ']' | '<' | '>' | '@' | '|' | '~' | '_' | '*'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A stable tag of the configured token the stored one descends from.
fn fingerprint(secret: &Secret) -> String {
    format!(
        "{:016x}",
        clarion_core::hash::fnv1a64(secret.expose().as_bytes())
    )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
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

/// Classifies a failed answer. `creates`: the request makes a post, so a
/// 5xx may have posted (outcome unknown).
fn classify(answer: &Answer, creates: bool) -> PublishError {
    let mut e = classify_status(answer.status, &answer.headers, &answer.body);
    e.class = match answer.status.as_u16() {
        429 => ErrorClass::RateLimited,
        401 => ErrorClass::AuthExpired,
        500..=599 if creates => ErrorClass::OutcomeUnknown,
        408 | 500..=599 => ErrorClass::Transient,
        // 403: the token lacks a scope (w_organization_social) or the
        // member is no admin of the page; retrying cannot help.
        _ => ErrorClass::Permanent,
    };
    e
}

impl LinkedInAdapter {
    fn seed(&self) -> &Secret {
        self.refresh
            .as_ref()
            .map(|r| &r.token)
            .unwrap_or(&self.configured_access)
    }

    async fn stored(&self) -> Option<(Secret, Option<Secret>)> {
        let load = |name: &'static str| async move {
            self.state
                .load(&self.channel, name)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(channel = %self.channel, "cannot read stored {name}: {e}");
                    None
                })
        };
        let seeded = load("seeded_from").await?;
        if seeded.expose() != fingerprint(self.seed()) {
            return None;
        }
        Some((load("access_token").await?, load("refresh_token").await))
    }

    async fn token(&self) -> Secret {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            return t.clone();
        }
        let token = self
            .stored()
            .await
            .map(|(a, _)| a)
            .unwrap_or_else(|| self.configured_access.clone());
        *current = Some(token.clone());
        token
    }

    /// A fresh access token for one that was refused. Re-reads the store
    /// first: another process may have refreshed already.
    async fn refresh(&self, stale: &Secret) -> Result<Secret, PublishError> {
        let Some(refresh) = &self.refresh else {
            return Err(PublishError::new(
                ErrorClass::AuthExpired,
                "the access token was refused and no refresh_token is configured; reconnect",
            )
            .with_status(401));
        };
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && t != stale
        {
            return Ok(t.clone());
        }
        let stored = self.stored().await;
        if let Some((access, _)) = &stored
            && access != stale
        {
            *current = Some(access.clone());
            return Ok(access.clone());
        }
        let refresh_token = stored
            .and_then(|(_, r)| r)
            .unwrap_or_else(|| refresh.token.clone());
        let request = self
            .client
            .post(format!("{}/oauth/v2/accessToken", self.oauth_base))
            .timeout(self.timeout)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", refresh.client_id.as_str()),
                ("client_secret", refresh.client_secret.expose()),
            ]);
        let answer = read(request).await.map_err(|mut e| {
            e.class = ErrorClass::Transient;
            e.message = format!("refreshing the access token: {}", e.message);
            e
        })?;
        if !answer.status.is_success() {
            let e = classify(&answer, false);
            let class = if matches!(answer.status.as_u16(), 400 | 401) {
                ErrorClass::AuthExpired
            } else {
                e.class
            };
            return Err(PublishError::new(
                class,
                format!(
                    "reconnect: refreshing the access token failed ({})",
                    e.message
                ),
            )
            .with_status(answer.status.as_u16())
            .with_retry_after(e.retry_after));
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
        let access = Secret::new(fresh.access_token);
        let refresh_token = fresh
            .refresh_token
            .map(Secret::new)
            .unwrap_or(refresh_token);
        let seed = Secret::new(fingerprint(self.seed()));
        for (name, value) in [
            ("access_token", &access),
            ("refresh_token", &refresh_token),
            ("seeded_from", &seed),
        ] {
            if let Err(e) = self.state.save(&self.channel, name, value).await {
                tracing::error!(channel = %self.channel, "cannot save refreshed {name}: {e}");
            }
        }
        *current = Some(access.clone());
        tracing::info!(channel = %self.channel, "refreshed the LinkedIn access token");
        Ok(access)
    }

    /// Sends a request; on 401 refreshes once and sends it again (a 401
    /// means nothing was done).
    async fn call(&self, build: impl Fn(&str) -> RequestBuilder) -> Result<Answer, PublishError> {
        let token = self.token().await;
        let answer = read(build(token.expose()).timeout(self.timeout)).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        if self.refresh.is_none() {
            let e = classify(&answer, false);
            return Err(PublishError::new(
                ErrorClass::AuthExpired,
                format!("reconnect: the access token was refused ({})", e.message),
            )
            .with_status(401));
        }
        let token = self.refresh(&token).await?;
        let answer = read(build(token.expose()).timeout(self.timeout)).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            let e = classify(&answer, false);
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

    fn rest(&self, request: RequestBuilder, token: &str) -> RequestBuilder {
        request
            .bearer_auth(token)
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    /// An inbox reply: a comment on the post `to.root`, nested under the
    /// comment `to.parent` when it is one.
    async fn comment(
        &self,
        post: &OutboundPost,
        to: ReplyTo<'_>,
    ) -> Result<PublishReceipt, PublishError> {
        let refuse = |why: String| Err(PublishError::new(ErrorClass::Permanent, why));
        if !to.root.starts_with("urn:li:") {
            return refuse(format!(
                "cannot reply on LinkedIn under `{}`: not a post URN",
                to.root
            ));
        }
        if !post.media.is_empty() {
            return refuse(
                "a LinkedIn reply is a comment, sent without a picture: remove the attachment"
                    .to_owned(),
            );
        }
        let text = post.text.trim();
        if text.is_empty() {
            return refuse("the reply is empty".to_owned());
        }
        let count = text.chars().count();
        if count > MAX_COMMENT_CHARS {
            return refuse(format!(
                "a LinkedIn comment takes at most {MAX_COMMENT_CHARS} characters; this reply is {count}"
            ));
        }
        let nested = match comment_thread(to.parent) {
            Some(thread) if to.parent != to.root => Some(thread),
            Some(_) => None,
            None if to.parent.starts_with("urn:li:comment:") => {
                return refuse(format!(
                    "cannot reply on LinkedIn to `{}`: not a comment URN LinkedIn gives",
                    to.parent
                ));
            }
            None => None,
        };
        // A nested comment is created under its parent comment, its object
        // the thread inside the parent's URN (Comments API, "Create a
        // Nested Comment"); a top-level one under the post.
        let (target, mut body) = match nested {
            Some(thread) => (
                to.parent,
                json!({"actor": self.author, "object": thread, "parentComment": to.parent}),
            ),
            None => (to.root, json!({"actor": self.author, "object": to.root})),
        };
        body["message"] = json!({"text": text});
        let url = format!(
            "{}/rest/socialActions/{}/comments",
            self.api_base,
            encode_urn(target)
        );
        let answer = self
            .call(|token| self.rest(self.client.post(&url), token).json(&body))
            .await?;
        if !answer.status.is_success() {
            return Err(classify(&answer, true));
        }
        let value: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let header = answer
            .headers
            .get("x-restli-id")
            .and_then(|v| v.to_str().ok());
        let id = ["commentUrn", "$URN"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str))
            .or(header.filter(|h| h.starts_with("urn:li:comment:")))
            .map(str::to_owned)
            .or_else(|| {
                // Only the bare comment id came back: the URN is built the
                // way LinkedIn builds it, from the thread and the id.
                let bare = value.get("id").and_then(Value::as_str).or(header)?;
                let thread = body.get("object").and_then(Value::as_str)?;
                Some(format!("urn:li:comment:({thread},{bare})"))
            });
        let url = id.as_deref().map(|id| {
            let parent = nested.map(|_| to.parent);
            comment_url(to.root, id, parent)
        });
        Ok(PublishReceipt {
            platform_post_id: id,
            url,
        })
    }

    async fn upload(&self, media: &Media) -> Result<String, PublishError> {
        let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(
                ErrorClass::Permanent,
                format!("cannot read {}: {e}", media.path.display()),
            )
        })?;
        let body = json!({"initializeUploadRequest": {"owner": self.author}});
        let answer = self
            .call(|token| {
                self.rest(
                    self.client.post(format!(
                        "{}/rest/images?action=initializeUpload",
                        self.api_base
                    )),
                    token,
                )
                .json(&body)
            })
            .await?;
        if !answer.status.is_success() {
            let e = classify(&answer, false);
            return Err(PublishError {
                message: format!("initializing the image upload: {}", e.message),
                ..e
            });
        }
        let value: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let (Some(upload_url), Some(image)) = (
            value.pointer("/value/uploadUrl").and_then(Value::as_str),
            value.pointer("/value/image").and_then(Value::as_str),
        ) else {
            return Err(PublishError::new(
                ErrorClass::Transient,
                "initializing the image upload: the answer has no uploadUrl/image",
            ));
        };
        let answer = self
            .call(|token| {
                self.client
                    .put(upload_url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, &media.mime)
                    .body(bytes.clone())
            })
            .await?;
        if !answer.status.is_success() {
            let e = classify(&answer, false);
            return Err(PublishError {
                message: format!("uploading the image: {}", e.message),
                ..e
            });
        }
        Ok(image.to_owned())
    }
}

#[async_trait]
impl ChannelAdapter for LinkedInAdapter {
    fn kind(&self) -> &'static str {
        "linkedin"
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
        if let Some(to) = request.reply_to {
            return self.comment(request.post, to).await;
        }
        let post = request.post;
        let mut body = json!({
            "author": self.author,
            "commentary": escape_little_text(&post.text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": []
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false
        });
        if let Some(media) = post.media.first() {
            let image = self.upload(media).await?;
            let mut m = json!({"id": image});
            if !media.alt.trim().is_empty() {
                m["altText"] = json!(media.alt.chars().take(4086).collect::<String>());
            }
            body["content"] = json!({"media": m});
        }
        let answer = self
            .call(|token| {
                self.rest(
                    self.client.post(format!("{}/rest/posts", self.api_base)),
                    token,
                )
                .json(&body)
            })
            .await?;
        if !answer.status.is_success() {
            return Err(classify(&answer, true));
        }
        let id = answer
            .headers
            .get("x-restli-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let url = id
            .as_ref()
            .map(|id| format!("https://www.linkedin.com/feed/update/{id}/"));
        Ok(PublishReceipt {
            platform_post_id: id,
            url,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let (url, field) = match self.author.strip_prefix("urn:li:organization:") {
            Some(id) => (
                format!("{}/rest/organizations/{id}", self.api_base),
                "localizedName",
            ),
            None => (format!("{}/v2/userinfo", self.api_base), "name"),
        };
        let answer = self
            .call(|token| self.rest(self.client.get(&url), token))
            .await
            .map_err(crate::http::for_check)?;
        if !answer.status.is_success() {
            return Err(crate::http::for_check(classify(&answer, false)));
        }
        let value: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let name = value.get(field).and_then(Value::as_str).unwrap_or("?");
        Ok(ChannelCheck::ok(format!("{name} ({})", self.author)))
    }
}
