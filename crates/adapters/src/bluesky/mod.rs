//! `bluesky`: posts to Bluesky (or any atproto PDS) over XRPC with an app
//! password.
//!
//! ```toml
//! [[channels]]
//! name = "sky"
//! kind = "bluesky"
//! identifier = "alice.bsky.social"                  # handle (or account email)
//! app_password = { env = "BLUESKY_APP_PASSWORD" }   # Settings > Privacy and security > App passwords
//! service = "https://bsky.social"                   # the account's PDS / entryway
//! timeout_secs = 15
//! langs = ["en"]                                    # optional, at most 3
//! listen = true                                     # capture mentions, replies and quotes
//! listen_interval_secs = 30                         # pause between notification polls
//! ```
//!
//! Sessions: `createSession` is limited to 30 per 5 minutes, so the session
//! tokens are persisted in the adapter store (scope = channel name) and
//! reused across restarts; an expired access token is refreshed once inside
//! the call that hit it.
//!
//! Idempotency: every post gets a record key (`rkey`) derived from the
//! idempotency key, so a resend addresses the same record. The PDS refuses
//! to create a record twice under one rkey (today with a 500, see
//! bluesky-social/atproto#3718; an explicit error is proposed in #4728), and
//! on such a refusal we read the record back and report the first post.

mod facets;
mod listen;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, MediaRule,
    OutboundPost, PostCounts, PublishError, PublishReceipt, PublishRequest, Secret, SecretRef,
    ThreadStyle, ValidationError,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::http::{classify_status, classify_transport, retry_after};
use facets::Feature;

const KIND: &str = "bluesky";
const POST_COLLECTION: &str = "app.bsky.feed.post";
/// Bluesky counts 300 graphemes, and separately caps the text at 3000 bytes.
const MAX_GRAPHEMES: usize = 300;
const MAX_TEXT_BYTES: usize = 3000;
/// `app.bsky.embed.images`: four images of at most 1,000,000 bytes each.
const MEDIA_RULE: MediaRule = MediaRule {
    max_count: 4,
    max_bytes: 1_000_000,
    mime_types: MediaRule::IMAGES,
};
/// Longest platform message kept on an attempt (as in `crate::http`).
const MAX_MESSAGE: usize = 500;

/// Names under which the session is persisted in the adapter store.
const STORE_ACCESS: &str = "access_jwt";
const STORE_REFRESH: &str = "refresh_jwt";
const STORE_DID: &str = "did";
const STORE_HANDLE: &str = "handle";
/// `<service> <identifier>` the stored tokens were issued for, so changing
/// the configured account never reuses the previous account's session.
const STORE_OWNER: &str = "session_for";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    identifier: String,
    app_password: SecretRef,
    #[serde(default = "default_service")]
    service: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: u64,
}

fn default_service() -> String {
    "https://bsky.social".to_owned()
}

fn default_timeout() -> f64 {
    15.0
}

fn default_listen_interval() -> u64 {
    30
}

/// An authenticated session. Tokens never print (`Secret`).
#[derive(Debug, Clone)]
struct Session {
    access: Secret,
    refresh: Secret,
    did: String,
    handle: String,
}

#[derive(Debug)]
pub struct BlueskyAdapter {
    client: reqwest::Client,
    /// Channel name: the scope of everything saved in `store`.
    channel: String,
    /// Base URL without a trailing slash.
    service: String,
    identifier: String,
    password: Secret,
    timeout: Duration,
    langs: Vec<String>,
    /// Pause between notification polls when listening.
    listen_interval: Duration,
    store: Arc<dyn AdapterStore>,
    /// The live session; also serialises refreshes so two concurrent
    /// publishes never spend the same refresh token twice.
    session: Mutex<Option<Session>>,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(Self::configure(config, context)?))
    }

    fn build_listener(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        Ok(Some(listen::listener(Self::configure(config, context)?)))
    }
}

impl Factory {
    /// Reads and checks a channel's settings (publishing and listening share them).
    fn configure(
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<BlueskyAdapter, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let identifier = s.identifier.trim().trim_start_matches('@').to_owned();
        if identifier.is_empty() {
            return Err(ConfigError::new(format!(
                "{}: must be your handle (e.g. alice.bsky.social) or account email",
                what("identifier")
            )));
        }
        let service = reqwest::Url::parse(&s.service)
            .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("service"))))?;
        if !matches!(service.scheme(), "http" | "https") {
            return Err(ConfigError::new(format!(
                "{}: must be http or https",
                what("service")
            )));
        }
        if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
            return Err(ConfigError::new(format!(
                "{}: must be between 0 and 300 seconds",
                what("timeout_secs")
            )));
        }
        // The post lexicon allows at most three language tags.
        if s.langs.len() > 3 || s.langs.iter().any(|l| l.trim().is_empty()) {
            return Err(ConfigError::new(format!(
                "{}: give at most 3 non-empty language tags, e.g. [\"en\"]",
                what("langs")
            )));
        }
        // Polls share the 3,000 requests per 5 minutes with publishing.
        if !(5..=3600).contains(&s.listen_interval_secs) {
            return Err(ConfigError::new(format!(
                "{}: must be between 5 and 3600 seconds",
                what("listen_interval_secs")
            )));
        }
        let password = s.app_password.resolve(&what("app_password"))?;
        Ok(BlueskyAdapter {
            client: crate::http_client(),
            channel: config.name.clone(),
            service: service.as_str().trim_end_matches('/').to_owned(),
            identifier,
            password,
            timeout: Duration::from_secs_f64(s.timeout_secs),
            langs: s.langs,
            listen_interval: Duration::from_secs(s.listen_interval_secs),
            store: context.state.clone(),
            session: Mutex::new(None),
        })
    }
}

/// A platform answer, read in full so it can be classified after the fact.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// The XRPC error shape: `{"error": "Name", "message": "..."}`.
    fn xrpc_error(&self) -> Option<(String, String)> {
        let value: Value = serde_json::from_str(&self.body).ok()?;
        let error = value.get("error")?.as_str()?.to_owned();
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Some((error, message))
    }

    fn error_name(&self) -> Option<String> {
        self.xrpc_error().map(|(e, _)| e)
    }

    /// An access (or refresh) token the PDS no longer accepts: 400
    /// `ExpiredToken` is what an expired JWT gets; 401 covers revoked ones.
    fn is_token_rejected(&self) -> bool {
        matches!(self.status.as_u16(), 400 | 401)
            && matches!(
                self.error_name().as_deref(),
                Some("ExpiredToken" | "InvalidToken")
            )
    }

    /// Decodes a success body. A 2xx we cannot read means the call did
    /// happen but we do not know its result.
    fn json<T: DeserializeOwned>(&self, method: &str) -> Result<T, PublishError> {
        serde_json::from_str(&self.body).map_err(|e| {
            PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!("{method}: unexpected answer ({e})"),
            )
            .with_status(self.status.as_u16())
        })
    }
}

/// Classifies a failed XRPC answer, keeping the platform's own words as
/// `<error>: <message>` (e.g. `InvalidRequest: Invalid app.bsky.feed.post record`).
fn classify(reply: &Reply) -> PublishError {
    let status = reply.status.as_u16();
    let mut error = match reply.xrpc_error() {
        Some((name, message)) => {
            let text = if message.is_empty() {
                name
            } else {
                format!("{name}: {message}")
            };
            let class = match status {
                429 => ErrorClass::RateLimited,
                401 | 403 => ErrorClass::AuthExpired,
                408 | 500..=599 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            };
            PublishError::new(class, text.chars().take(MAX_MESSAGE).collect::<String>())
                .with_status(status)
                .with_retry_after(retry_after(&reply.headers))
        }
        None => classify_status(reply.status, &reply.headers, &reply.body),
    };
    if status == 429 {
        // Bluesky says when the window resets (`RateLimit-Reset`, epoch
        // seconds); that is the wait that actually works.
        error.retry_after = rate_limit_reset(&reply.headers).or(error.retry_after);
    }
    error
}

/// Time until `RateLimit-Reset` (epoch seconds), zero when already past.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset: i64 = headers
        .get("ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = reset.saturating_sub(chrono::Utc::now().timestamp());
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

fn with_context(mut error: PublishError, method: &str) -> PublishError {
    error.message = format!("{method}: {}", error.message);
    error
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    access_jwt: String,
    refresh_jwt: String,
    did: String,
    #[serde(default)]
    handle: String,
}

impl From<SessionAnswer> for Session {
    fn from(a: SessionAnswer) -> Self {
        Session {
            access: Secret::new(a.access_jwt),
            refresh: Secret::new(a.refresh_jwt),
            did: a.did,
            handle: a.handle,
        }
    }
}

/// A strong reference to a record: what replies point at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct StrongRef {
    uri: String,
    cid: String,
}

impl StrongRef {
    /// Our `platform_post_id` is `"<at-uri> <cid>"`: replies need both.
    fn parse(id: &str) -> Result<Self, PublishError> {
        match id.split_once(' ') {
            Some((uri, cid)) if uri.starts_with("at://") && !cid.trim().is_empty() => Ok(Self {
                uri: uri.to_owned(),
                cid: cid.trim().to_owned(),
            }),
            _ => Err(PublishError::new(
                ErrorClass::Permanent,
                format!(
                    "cannot reply to `{id}`: expected \"<at-uri> <cid>\" as this adapter returns"
                ),
            )),
        }
    }

    fn to_json(&self) -> Value {
        json!({"uri": self.uri, "cid": self.cid})
    }

    fn receipt(&self, session: &Session) -> PublishReceipt {
        // The rkey is the last path segment of at://<did>/<collection>/<rkey>.
        // The URL uses the DID rather than the handle: handles can change,
        // the DID-based URL keeps working.
        let rkey = self.uri.rsplit('/').next().unwrap_or_default();
        PublishReceipt {
            platform_post_id: Some(format!("{} {}", self.uri, self.cid)),
            url: Some(format!(
                "https://bsky.app/profile/{}/post/{rkey}",
                session.did
            )),
        }
    }
}

impl BlueskyAdapter {
    fn xrpc(&self, method: &str) -> String {
        format!("{}/xrpc/{method}", self.service)
    }

    fn owner(&self) -> String {
        format!("{} {}", self.service, self.identifier)
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Reply, PublishError> {
        let response = builder
            .timeout(self.timeout)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(classify_transport)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// The current session: in memory, else persisted, else a new one.
    async fn session(&self) -> Result<Session, PublishError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = match self.load_session().await {
            Some(session) => session,
            None => {
                let session = self.create_session().await?;
                self.save_session(&session).await;
                session
            }
        };
        *current = Some(session.clone());
        Ok(session)
    }

    /// Replaces a session whose access token was rejected: refresh it, or
    /// when the refresh token is dead too, log in again. Called at most once
    /// per publish, never in a loop.
    async fn renew(&self, stale: &Session) -> Result<Session, PublishError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.access != stale.access
        {
            // Another call already renewed it while we waited for the lock.
            return Ok(session.clone());
        }
        // The listener and the publisher of a channel are two instances
        // sharing the stored session: when the other one renewed it, its
        // refresh token is the current one.
        let stale = match self.load_session().await {
            Some(saved) if saved.access != stale.access => saved,
            _ => stale.clone(),
        };
        let session = match self.refresh_session(&stale.refresh).await? {
            Some(session) => session,
            None => self.create_session().await?,
        };
        self.save_session(&session).await;
        *current = Some(session.clone());
        Ok(session)
    }

    async fn create_session(&self) -> Result<Session, PublishError> {
        const METHOD: &str = "com.atproto.server.createSession";
        let reply = self
            .send(self.client.post(self.xrpc(METHOD)).json(&json!({
                "identifier": self.identifier,
                "password": self.password.expose(),
            })))
            .await?;
        if !reply.status.is_success() {
            // 401 AuthenticationRequired (wrong identifier or app password)
            // classifies as AuthExpired: only a human can fix it.
            return Err(with_context(classify(&reply), METHOD));
        }
        tracing::info!(channel = %self.channel, "bluesky: created a new session");
        Ok(reply.json::<SessionAnswer>(METHOD)?.into())
    }

    /// `Ok(None)` when the refresh token itself is expired or revoked.
    async fn refresh_session(&self, refresh: &Secret) -> Result<Option<Session>, PublishError> {
        const METHOD: &str = "com.atproto.server.refreshSession";
        let reply = self
            .send(
                self.client
                    .post(self.xrpc(METHOD))
                    .bearer_auth(refresh.expose()),
            )
            .await?;
        if reply.is_token_rejected() {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), METHOD));
        }
        Ok(Some(reply.json::<SessionAnswer>(METHOD)?.into()))
    }

    async fn load_session(&self) -> Option<Session> {
        let load = |name: &'static str| async move {
            match self.store.load(&self.channel, name).await {
                Ok(value) => value,
                Err(e) => {
                    tracing::warn!(channel = %self.channel, "bluesky: cannot load {name}: {e}");
                    None
                }
            }
        };
        let owner = load(STORE_OWNER).await?;
        if owner.expose() != self.owner() {
            return None;
        }
        Some(Session {
            access: load(STORE_ACCESS).await?,
            refresh: load(STORE_REFRESH).await?,
            did: load(STORE_DID).await?.expose().to_owned(),
            handle: load(STORE_HANDLE)
                .await
                .map(|h| h.expose().to_owned())
                .unwrap_or_default(),
        })
    }

    /// Persists the session. A failure is logged, not fatal: the worst
    /// case is one extra `createSession` after a restart.
    async fn save_session(&self, session: &Session) {
        let values = [
            (STORE_ACCESS, session.access.clone()),
            (STORE_REFRESH, session.refresh.clone()),
            (STORE_DID, Secret::new(session.did.clone())),
            (STORE_HANDLE, Secret::new(session.handle.clone())),
            // Written last: a half-written session never matches the owner.
            (STORE_OWNER, Secret::new(self.owner())),
        ];
        for (name, value) in &values {
            if let Err(e) = self.store.save(&self.channel, name, value).await {
                tracing::warn!(channel = %self.channel, "bluesky: cannot save {name}: {e}");
                return;
            }
        }
    }

    /// An authenticated call. On a rejected access token the session is
    /// renewed and the call repeated exactly once.
    async fn call(
        &self,
        build: impl Fn(&Session) -> reqwest::RequestBuilder,
    ) -> Result<(Reply, Session), PublishError> {
        let session = self.session().await?;
        let reply = self
            .send(build(&session).bearer_auth(session.access.expose()))
            .await?;
        if !reply.is_token_rejected() {
            return Ok((reply, session));
        }
        let session = self.renew(&session).await?;
        let reply = self
            .send(build(&session).bearer_auth(session.access.expose()))
            .await?;
        if reply.is_token_rejected() {
            return Err(with_context(
                PublishError::new(
                    ErrorClass::AuthExpired,
                    "a freshly renewed token was rejected",
                )
                .with_status(reply.status.as_u16()),
                "session",
            ));
        }
        Ok((reply, session))
    }

    /// `Ok(None)` when the handle does not resolve (400): the post goes out
    /// without that mention facet rather than not at all. Other failures
    /// are returned: nothing has been posted yet, so a retry is safe.
    async fn resolve_handle(&self, handle: &str) -> Result<Option<String>, PublishError> {
        const METHOD: &str = "com.atproto.identity.resolveHandle";
        let reply = self
            .send(
                self.client
                    .get(self.xrpc(METHOD))
                    .query(&[("handle", handle)]),
            )
            .await?;
        if reply.status == StatusCode::BAD_REQUEST {
            tracing::info!(channel = %self.channel, handle, "bluesky: mention does not resolve; posting it as plain text");
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), METHOD));
        }
        #[derive(Deserialize)]
        struct Answer {
            did: String,
        }
        Ok(Some(reply.json::<Answer>(METHOD)?.did))
    }

    /// `app.bsky.richtext.facet`s for the text, mentions resolved to DIDs.
    async fn facets(&self, text: &str) -> Result<Vec<Value>, PublishError> {
        let mut resolved: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::new();
        for span in facets::detect(text) {
            let feature = match &span.feature {
                Feature::Link(uri) => json!({"$type": "app.bsky.richtext.facet#link", "uri": uri}),
                Feature::Tag(tag) => json!({"$type": "app.bsky.richtext.facet#tag", "tag": tag}),
                Feature::Mention(handle) => {
                    let did = match resolved.get(handle) {
                        Some(did) => did.clone(),
                        None => {
                            let did = self.resolve_handle(handle).await?;
                            resolved.insert(handle.clone(), did.clone());
                            did
                        }
                    };
                    let Some(did) = did else { continue };
                    json!({"$type": "app.bsky.richtext.facet#mention", "did": did})
                }
            };
            out.push(json!({
                "index": {"byteStart": span.bytes.start, "byteEnd": span.bytes.end},
                "features": [feature],
            }));
        }
        Ok(out)
    }

    /// Uploads the images and returns the `app.bsky.embed.images` embed.
    async fn images_embed(&self, post: &OutboundPost) -> Result<Value, PublishError> {
        const METHOD: &str = "com.atproto.repo.uploadBlob";
        let mut images = Vec::new();
        for media in &post.media {
            let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
                PublishError::new(
                    ErrorClass::Permanent,
                    format!("cannot read {}: {e}", media.path.display()),
                )
            })?;
            let (reply, _) = self
                .call(|_| {
                    self.client
                        .post(self.xrpc(METHOD))
                        .header(CONTENT_TYPE, media.mime.as_str())
                        .body(bytes.clone())
                })
                .await?;
            if !reply.status.is_success() {
                return Err(with_context(classify(&reply), METHOD));
            }
            #[derive(Deserialize)]
            struct Answer {
                blob: Value,
            }
            // The blob object is passed back verbatim, as the PDS issued it.
            let blob = reply.json::<Answer>(METHOD)?.blob;
            images.push(json!({"image": blob, "alt": media.alt}));
        }
        Ok(json!({"$type": "app.bsky.embed.images", "images": images}))
    }

    /// Reads back the record stored under `rkey`, if there is one.
    /// The record stored under `rkey`, with its value, if there is one.
    async fn existing_record(
        &self,
        rkey: &str,
    ) -> Result<Option<(StrongRef, Value)>, PublishError> {
        const METHOD: &str = "com.atproto.repo.getRecord";
        let (reply, _) = self
            .call(|session| {
                self.client.get(self.xrpc(METHOD)).query(&[
                    ("repo", session.did.as_str()),
                    ("collection", POST_COLLECTION),
                    ("rkey", rkey),
                ])
            })
            .await?;
        if reply.status.is_success() {
            #[derive(Deserialize)]
            struct Stored {
                uri: String,
                cid: String,
                #[serde(default)]
                value: Value,
            }
            let stored = reply.json::<Stored>(METHOD)?;
            return Ok(Some((
                StrongRef {
                    uri: stored.uri,
                    cid: stored.cid,
                },
                stored.value,
            )));
        }
        if reply.error_name().as_deref() == Some("RecordNotFound") {
            return Ok(None);
        }
        Err(with_context(classify(&reply), METHOD))
    }
}

/// Whether a failed `createRecord` may mean "that rkey is taken". Today the
/// reference PDS answers a duplicate rkey with 500 InternalServerError
/// (bluesky-social/atproto#3718); a dedicated error is proposed (#4728) and
/// other PDSes answer 409 `RecordAlreadyExists`. We cannot tell a real 500
/// from a duplicate, so we look the record up before deciding.
/// Record keys tried before giving up (collisions need two posts for one
/// account scheduled in the same millisecond with the same clock id).
const RKEY_PROBES: u64 = 8;

fn maybe_duplicate(reply: &Reply) -> bool {
    let named = reply.xrpc_error().is_some_and(|(name, message)| {
        name == "RecordAlreadyExists" || message.to_lowercase().contains("already exist")
    });
    named || matches!(reply.status.as_u16(), 409 | 500)
}

#[async_trait]
impl ChannelAdapter for BlueskyAdapter {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(MAX_GRAPHEMES, LengthUnit::Graphemes)
    }

    fn markup(&self) -> Markup {
        Markup::Plain
    }

    /// Honoured through the record key: a resend of the same key targets
    /// the same rkey, cannot create a second post, and is answered with the
    /// record the first attempt created (see [`maybe_duplicate`]). The
    /// adapter looks that record up itself, so the key never expires.
    fn idempotency(&self) -> Idempotency {
        Idempotency::honoured_for(Idempotency::FOREVER)
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        MEDIA_RULE
    }

    /// 5,000 write points per hour per account, a create costs 3: about
    /// 1,666 posts an hour, one every 2.16 s. 2.2 s keeps a large schedule
    /// just under the limit.
    fn min_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(2200))
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)?;
        let bytes = post.text.len();
        if bytes > MAX_TEXT_BYTES {
            return Err(ValidationError::new(format!(
                "text is {bytes} bytes long in UTF-8; the limit is {MAX_TEXT_BYTES} bytes"
            )));
        }
        self.media_rule().check(&post.media)
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        const METHOD: &str = "com.atproto.repo.createRecord";
        let post = request.post;
        let mut record = json!({
            "$type": POST_COLLECTION,
            "text": post.text,
            "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if !self.langs.is_empty() {
            record["langs"] = json!(self.langs);
        }
        let facets = self.facets(&post.text).await?;
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some(reply_to) = request.reply_to {
            record["reply"] = json!({
                "root": StrongRef::parse(reply_to.root)?.to_json(),
                "parent": StrongRef::parse(reply_to.parent)?.to_json(),
            });
        }
        if !post.media.is_empty() {
            record["embed"] = self.images_embed(post).await?;
        } else if let Some(uri) =
            facets::detect(&post.text)
                .into_iter()
                .find_map(|s| match s.feature {
                    Feature::Link(uri) => Some(uri),
                    _ => None,
                })
        {
            // A minimal link card. We deliberately do not fetch the page for
            // its title, description and thumbnail: publishing must not
            // depend on a third-party site being up or on parsing its HTML.
            let title = url::Url::parse(&uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| uri.clone());
            record["embed"] = json!({
                "$type": "app.bsky.embed.external",
                "external": {"uri": uri, "title": title, "description": ""},
            });
        }

        for probe in 0..RKEY_PROBES {
            let rkey = facets::record_key(request.idempotency_key, request.scheduled_at_ms, probe);
            let (reply, session) = self
                .call(|session| {
                    self.client.post(self.xrpc(METHOD)).json(&json!({
                        "repo": session.did,
                        "collection": POST_COLLECTION,
                        "rkey": rkey,
                        "record": record,
                    }))
                })
                .await?;
            if reply.status.is_success() {
                return Ok(reply.json::<StrongRef>(METHOD)?.receipt(&session));
            }
            let error = with_context(classify(&reply), METHOD);
            if !maybe_duplicate(&reply) {
                return Err(error);
            }
            match self.existing_record(&rkey).await? {
                // Same text and reply: the record an earlier attempt of this message created.
                Some((existing, value))
                    if value.get("text") == record.get("text")
                        && value.get("reply") == record.get("reply") =>
                {
                    tracing::info!(channel = %self.channel, uri = %existing.uri, "bluesky: already posted by an earlier attempt");
                    return Ok(existing.receipt(&session));
                }
                // Another post scheduled for the same moment holds this key: try the next.
                Some(_) => continue,
                None => return Err(error),
            }
        }
        Err(PublishError::new(
            ErrorClass::Permanent,
            format!("{METHOD}: no free record key after {RKEY_PROBES} tries"),
        ))
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }

    /// `app.bsky.feed.getPosts`: like, repost, reply and quote counts.
    async fn post_counts(&self, id: &str) -> Result<Option<PostCounts>, PublishError> {
        const METHOD: &str = "app.bsky.feed.getPosts";
        // Our ids are "<at-uri> <cid>".
        let uri = id.split_whitespace().next().unwrap_or_default();
        if !uri.starts_with("at://") {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("`{id}` is not a Bluesky post id"),
            ));
        }
        let (reply, _) = self
            .call(|_| self.client.get(self.xrpc(METHOD)).query(&[("uris", uri)]))
            .await?;
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), METHOD));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct View {
            like_count: Option<i64>,
            repost_count: Option<i64>,
            reply_count: Option<i64>,
            quote_count: Option<i64>,
        }
        #[derive(Deserialize)]
        struct Answer {
            posts: Vec<View>,
        }
        let answer = reply.json::<Answer>(METHOD)?;
        // A deleted post is simply absent from the answer.
        let Some(view) = answer.posts.into_iter().next() else {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("{METHOD}: the post is gone"),
            ));
        };
        Ok(Some(PostCounts {
            likes: view.like_count,
            reposts: view.repost_count,
            replies: view.reply_count,
            quotes: view.quote_count,
            views: None,
        }))
    }
}

impl BlueskyAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        const METHOD: &str = "com.atproto.server.getSession";
        let (reply, _) = self.call(|_| self.client.get(self.xrpc(METHOD))).await?;
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), METHOD));
        }
        #[derive(Deserialize)]
        struct Answer {
            handle: String,
            did: String,
        }
        let me = reply.json::<Answer>(METHOD)?;
        Ok(ChannelCheck::ok(format!("@{} ({})", me.handle, me.did)))
    }
}
