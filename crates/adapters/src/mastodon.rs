//! `mastodon`: posts statuses through the Mastodon client API, with images
//! uploaded first and threads as native reply chains.
//!
//! ```toml
//! [[channels]]
//! name = "fediverse"
//! kind = "mastodon"
//! instance = "https://mastodon.social"
//! access_token = { env = "MASTODON_TOKEN" }   # scopes: write:statuses write:media read:accounts
//! visibility = "public"                       # public | unlisted | private | direct
//! spoiler_text = "release notes"              # optional content warning
//! language = "en"                             # optional ISO 639 code
//! max_characters = 500                        # the instance's configuration.statuses.max_characters
//! timeout_secs = 30
//! media_poll_ms = 1000                        # pause between media processing checks
//! listen = true                               # capture mentions, replies, DMs (needs read:notifications)
//! listen_interval_secs = 30                   # poll interval while streaming is unavailable
//! ```
//!
//! Media processing is polled only within half the publish budget the
//! scheduler gives the call. An upload still processing then fails the
//! attempt as transient; the retry polls the same upload again (this
//! process remembers its id) instead of uploading the file once more.
//!
//! Listening (`listen = true`) lives in the `listen` submodule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, Media, MediaRule,
    PostCounts, PublishError, PublishReceipt, PublishRequest, RateWindow, Secret, SecretRef,
    ThreadStyle,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{classify_status, classify_transport};

mod listen;

/// How long the instance keeps an `Idempotency-Key`: "up to 1 hour"
/// (docs.joinmastodon.org/methods/statuses/#create, header `Idempotency-Key`).
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Statuses per account: 300 per 3 hours. Mastodon's own limiter
/// (app/lib/rate_limiter.rb, family `statuses`: limit 300, period 3.hours)
/// answers 429 beyond it.
const STATUS_WINDOW: RateWindow = RateWindow {
    max: 300,
    per: Duration::from_secs(3 * 60 * 60),
};

/// Who sees a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Visibility {
    #[default]
    Public,
    Unlisted,
    Private,
    Direct,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    instance: String,
    access_token: SecretRef,
    #[serde(default)]
    visibility: Visibility,
    spoiler_text: Option<String>,
    language: Option<String>,
    #[serde(default = "default_max_characters")]
    max_characters: usize,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default = "default_media_poll_ms")]
    media_poll_ms: u64,
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: u64,
}

fn default_max_characters() -> usize {
    500
}

fn default_timeout() -> f64 {
    30.0
}

fn default_media_poll_ms() -> u64 {
    1000
}

fn default_listen_interval() -> u64 {
    30
}

#[derive(Debug)]
pub struct MastodonAdapter {
    client: reqwest::Client,
    /// Instance base URL without a trailing slash.
    base: String,
    /// Host (and port) of the instance, for `check` output.
    host: String,
    token: Secret,
    visibility: Visibility,
    spoiler_text: Option<String>,
    language: Option<String>,
    rule: LengthRule,
    timeout: Duration,
    media_poll: Duration,
    /// Pause between notification polls while streaming is unavailable.
    listen_interval: Duration,
    /// Uploads that were still processing when an attempt gave up, by
    /// `<idempotency key>/<attachment index>`: the retry polls them again
    /// instead of uploading (and spending the 30-per-30-minutes upload
    /// limit) once more. Cleared when the status is posted.
    processing: Mutex<HashMap<String, String>>,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "mastodon"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(Self::configure(config)?))
    }

    fn build_listener(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        Ok(Some(listen::listener(Self::configure(config)?)))
    }
}

impl Factory {
    /// Reads and checks a channel's settings (publishing and listening share them).
    fn configure(config: &ChannelConfig) -> Result<MastodonAdapter, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let parsed = reqwest::Url::parse(&s.instance)
            .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("instance"))))?;
        let host = match (parsed.scheme(), parsed.host_str()) {
            ("http" | "https", Some(host)) => match parsed.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            _ => {
                return Err(ConfigError::new(format!(
                    "{}: must be an http or https URL with a host",
                    what("instance")
                )));
            }
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ConfigError::new(format!(
                "{}: give the bare instance URL, without query or fragment",
                what("instance")
            )));
        }
        if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
            return Err(ConfigError::new(format!(
                "{}: must be between 0 and 300 seconds",
                what("timeout_secs")
            )));
        }
        if s.max_characters == 0 {
            return Err(ConfigError::new(format!(
                "{}: must be at least 1",
                what("max_characters")
            )));
        }
        if !(1..=60_000).contains(&s.media_poll_ms) {
            return Err(ConfigError::new(format!(
                "{}: must be between 1 and 60000",
                what("media_poll_ms")
            )));
        }
        // Polls share the account's 300 requests per 5 minutes with publishing.
        if !(5..=3600).contains(&s.listen_interval_secs) {
            return Err(ConfigError::new(format!(
                "{}: must be between 5 and 3600 seconds",
                what("listen_interval_secs")
            )));
        }
        if let Some(language) = &s.language
            && (language.is_empty() || language.contains(char::is_whitespace))
        {
            return Err(ConfigError::new(format!(
                "{}: give an ISO 639 code such as `en`",
                what("language")
            )));
        }
        let token = s.access_token.resolve(&what("access_token"))?;
        Ok(MastodonAdapter {
            client: crate::http_client(),
            base: s.instance.trim_end_matches('/').to_owned(),
            host,
            token,
            visibility: s.visibility,
            // An empty content warning is the same as none; do not send it.
            spoiler_text: s.spoiler_text.filter(|t| !t.trim().is_empty()),
            language: s.language,
            rule: LengthRule::new(s.max_characters, LengthUnit::CharsUrl23),
            timeout: Duration::from_secs_f64(s.timeout_secs),
            media_poll: Duration::from_millis(s.media_poll_ms),
            listen_interval: Duration::from_secs(s.listen_interval_secs),
            processing: Mutex::default(),
        })
    }
}

/// The parts of a Status we read.
#[derive(Debug, Deserialize)]
struct Status {
    id: String,
    url: Option<String>,
    uri: Option<String>,
}

/// The parts of a MediaAttachment we read. `url` stays null while the
/// instance is still processing the file.
#[derive(Debug, Deserialize)]
struct Attachment {
    id: String,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Account {
    acct: String,
}

/// Mastodon's 429 carries `X-RateLimit-Reset` (an ISO 8601 time) rather than
/// `Retry-After`, so read both.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> PublishError {
    let error = classify_status(status, headers, body);
    if error.class == ErrorClass::RateLimited && error.retry_after.is_none() {
        let reset = rate_limit_reset(headers);
        return error.with_retry_after(reset);
    }
    error
}

/// Time until `X-RateLimit-Reset`, zero when it already passed.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let reset = chrono::DateTime::parse_from_rfc3339(value).ok()?;
    let wait = reset.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

impl MastodonAdapter {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(self.timeout)
    }

    /// Sends a request; a non-2xx answer becomes a classified error.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, String), PublishError> {
        let response = builder.send().await.map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(classify_transport)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        Ok((status, body))
    }

    /// The uploads an earlier attempt left processing, by slot.
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.processing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts one file to `/api/v2/media`.
    async fn post_media(&self, media: &Media) -> Result<Attachment, PublishError> {
        let shown = media.path.display();
        let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(ErrorClass::Permanent, format!("cannot read {shown}: {e}"))
        })?;
        let file_name = media
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name)
            .mime_str(&media.mime)
            .map_err(|_| {
                PublishError::new(
                    ErrorClass::Permanent,
                    format!("{shown}: `{}` is not a MIME type", media.mime),
                )
            })?;
        let mut form = reqwest::multipart::Form::new().part("file", part);
        if !media.alt.trim().is_empty() {
            form = form.text("description", media.alt.clone());
        }
        let (_, body) = self
            .send(
                self.request(reqwest::Method::POST, "/api/v2/media")
                    .multipart(form),
            )
            .await?;
        serde_json::from_str(&body).map_err(|e| {
            // Nothing is visible yet: an unattached upload is harmless.
            PublishError::new(
                ErrorClass::Transient,
                format!("media upload answer is not a MediaAttachment: {e}"),
            )
        })
    }

    /// `GET /api/v1/media/:id`: whether the instance has processed it.
    async fn media_status(&self, id: &str) -> Result<Attachment, PublishError> {
        let path = format!("/api/v1/media/{id}");
        let (_, body) = self.send(self.request(reqwest::Method::GET, &path)).await?;
        serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("media status answer is not a MediaAttachment: {e}"),
            )
        })
    }

    /// Uploads one file, or takes up the upload an earlier attempt of this
    /// message left processing (`slot`), and waits until the instance has
    /// processed it, so the status that attaches it is not rejected. Polling
    /// stops before `limit` has passed since `started`: an upload still
    /// processing then is a transient failure, and the retry checks the same
    /// upload again.
    /// Returns the media id.
    async fn upload(
        &self,
        media: &Media,
        slot: &str,
        started: Instant,
        limit: Duration,
    ) -> Result<String, PublishError> {
        let shown = media.path.display();
        let earlier = self.pending().get(slot).cloned();
        let mut attachment = match earlier {
            Some(id) => match self.media_status(&id).await {
                Ok(attachment) => attachment,
                // The instance cleans up unattached uploads: send it again.
                Err(e) if e.status == Some(404) => {
                    self.pending().remove(slot);
                    self.post_media(media).await?
                }
                Err(e) => return Err(e),
            },
            None => self.post_media(media).await?,
        };
        self.pending()
            .insert(slot.to_owned(), attachment.id.clone());
        // 200 means processed; 202 (and 206 while polling) means `url` is
        // still null and the file cannot be attached yet.
        let mut polls = 0;
        while attachment.url.is_none() {
            if started.elapsed() + self.media_poll >= limit {
                return Err(PublishError::new(
                    ErrorClass::Transient,
                    format!(
                        "media {shown} is still being processed by the instance after {polls} \
                         checks; stopped within the publish budget, the retry checks the same \
                         upload again"
                    ),
                ));
            }
            polls += 1;
            tokio::time::sleep(self.media_poll).await;
            attachment = self.media_status(&attachment.id).await?;
        }
        Ok(attachment.id)
    }

    fn status_body(&self, request: &PublishRequest<'_>, media_ids: &[String]) -> serde_json::Value {
        let mut body = json!({
            "status": request.post.text,
            "visibility": self.visibility,
        });
        if let Some(spoiler) = &self.spoiler_text {
            body["spoiler_text"] = json!(spoiler);
        }
        if let Some(language) = &self.language {
            body["language"] = json!(language);
        }
        if let Some(reply) = request.reply_to {
            // Mastodon threads by the direct parent; the root follows from it.
            body["in_reply_to_id"] = json!(reply.parent);
        }
        if !media_ids.is_empty() {
            body["media_ids"] = json!(media_ids);
        }
        body
    }
}

#[async_trait]
impl ChannelAdapter for MastodonAdapter {
    fn kind(&self) -> &'static str {
        "mastodon"
    }

    fn length_rule(&self) -> LengthRule {
        self.rule
    }

    fn markup(&self) -> Markup {
        // Statuses are plain text; the instance links URLs, mentions and tags.
        Markup::Plain
    }

    fn idempotency(&self) -> Idempotency {
        // The instance keeps `Idempotency-Key` for about an hour and answers
        // a repeat with the first status (docs.joinmastodon.org/methods/statuses,
        // "Idempotency-Key": keys are kept for up to 1 hour).
        Idempotency::honoured_for(IDEMPOTENCY_WINDOW)
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        // Mastodon's defaults: 4 attachments per status, images up to 16 MB.
        MediaRule {
            max_count: 4,
            max_bytes: 16 * 1024 * 1024,
            mime_types: MediaRule::IMAGES,
        }
    }

    fn min_interval(&self) -> Option<Duration> {
        // 300 requests per 5 minutes per account is one a second on average.
        Some(Duration::from_secs(1))
    }

    fn rate_window(&self) -> Option<RateWindow> {
        // 300 statuses per 3 hours per account. Media uploads have their own
        // limit (30 per 30 minutes, docs.joinmastodon.org/api/rate-limits),
        // which counts files rather than sends; a 429 there carries
        // `X-RateLimit-Reset` and pauses the channel like any other.
        Some(STATUS_WINDOW)
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        // Uploads are not idempotent, but an unattached upload is never shown
        // and the instance cleans it up; the status POST below is the step
        // that must not repeat, and the Idempotency-Key guards it.
        //
        // Media processing may only use half the budget: the status POST
        // still has to fit before the scheduler gives up on the call.
        let (started, limit) = (Instant::now(), request.budget / 2);
        let slot = |i: usize| format!("{}/{i}", request.idempotency_key);
        let mut media_ids = Vec::with_capacity(request.post.media.len());
        for (i, media) in request.post.media.iter().enumerate() {
            media_ids.push(self.upload(media, &slot(i), started, limit).await?);
        }
        let body = self.status_body(&request, &media_ids);
        let (_, text) = self
            .send(
                self.request(reqwest::Method::POST, "/api/v1/statuses")
                    .header("Idempotency-Key", request.idempotency_key)
                    .json(&body),
            )
            .await?;
        {
            let mut pending = self.pending();
            for i in 0..media_ids.len() {
                pending.remove(&slot(i));
            }
        }
        let status: Status = serde_json::from_str(&text).map_err(|e| {
            // A 2xx means the status was most likely created; a resend with
            // the same key returns it instead of posting twice.
            PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!("the instance accepted the status but its answer is not a Status: {e}"),
            )
        })?;
        Ok(PublishReceipt {
            platform_post_id: Some(status.id),
            url: status.url.or(status.uri),
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }

    /// `GET /api/v1/statuses/:id`: favourites, reblogs and replies (no views).
    async fn post_counts(&self, id: &str) -> Result<Option<PostCounts>, PublishError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("`{id}` is not a Mastodon status id"),
            ));
        }
        let (_, body) = self
            .send(self.request(reqwest::Method::GET, &format!("/api/v1/statuses/{id}")))
            .await?;
        let counts: StatusCounts = serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("the status answer has no counts: {e}"),
            )
        })?;
        Ok(Some(PostCounts {
            likes: Some(counts.favourites_count),
            reposts: Some(counts.reblogs_count),
            replies: Some(counts.replies_count),
            quotes: None,
            views: None,
        }))
    }
}

/// The counts of a Status.
#[derive(Debug, Deserialize)]
struct StatusCounts {
    favourites_count: i64,
    reblogs_count: i64,
    replies_count: i64,
}

impl MastodonAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        let (_, body) = self
            .send(self.request(reqwest::Method::GET, "/api/v1/accounts/verify_credentials"))
            .await?;
        let account: Account = serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("verify_credentials answer is not an Account: {e}"),
            )
        })?;
        Ok(ChannelCheck::ok(format!(
            "@{} on {}",
            account.acct, self.host
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use clarion_core::{OutboundPost, ReplyTo};

    use super::*;

    const TOKEN: &str = "tok-SECRET-mastodon-1234";

    /// One request the fake received: method + path, headers, body.
    type Seen = (String, HeaderMap, Vec<u8>);

    /// The fake instance: what it received, and how often media was polled.
    #[derive(Clone, Default)]
    struct Fake {
        seen: Arc<Mutex<Vec<Seen>>>,
        polls: Arc<AtomicU32>,
        /// Further checks answered "still processing" after the first.
        slow: Arc<AtomicU32>,
    }

    impl Fake {
        fn record(&self, what: &str, headers: &HeaderMap, body: &[u8]) {
            self.seen
                .lock()
                .unwrap()
                .push((what.to_owned(), headers.clone(), body.to_vec()));
        }

        fn requests(&self, what: &str) -> Vec<(HeaderMap, Vec<u8>)> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(w, _, _)| w == what)
                .map(|(_, h, b)| (h.clone(), b.clone()))
                .collect()
        }

        fn status_json(&self, n: usize) -> serde_json::Value {
            serde_json::from_slice(&self.requests("POST /api/v1/statuses")[n].1).unwrap()
        }
    }

    fn authorised(headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .is_some_and(|v| v == &format!("Bearer {TOKEN}"))
    }

    fn invalid_token() -> Response {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "The access token is invalid"})),
        )
            .into_response()
    }

    async fn statuses(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
        fake.record("POST /api/v1/statuses", &headers, body.as_bytes());
        if !authorised(&headers) {
            return invalid_token();
        }
        let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match request["status"].as_str().unwrap_or_default() {
            "limit me" => {
                let reset = (chrono::Utc::now() + chrono::Duration::seconds(2))
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("X-RateLimit-Limit", "300".to_owned()),
                        ("X-RateLimit-Remaining", "0".to_owned()),
                        ("X-RateLimit-Reset", reset),
                    ],
                    axum::Json(json!({"error": "Too many requests"})),
                )
                    .into_response()
            }
            "limit me with retry-after" => (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", "7")],
                axum::Json(json!({"error": "Too many requests"})),
            )
                .into_response(),
            "too long" => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(
                    json!({"error": "Validation failed: Text character limit of 500 exceeded"}),
                ),
            )
                .into_response(),
            _ => axum::Json(json!({
                "id": "110000000000000042",
                "uri": "https://social.test/users/bot/statuses/110000000000000042",
                "url": "https://social.test/@bot/110000000000000042",
                "content": "<p>hello</p>",
                "in_reply_to_id": request.get("in_reply_to_id"),
                "created_at": "2025-01-01T00:00:00.000Z",
            }))
            .into_response(),
        }
    }

    async fn upload(
        State(fake): State<Fake>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        fake.record("POST /api/v2/media", &headers, &body);
        if !authorised(&headers) {
            return invalid_token();
        }
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": "9001", "type": "image", "url": null, "preview_url": null})),
        )
            .into_response()
    }

    /// Still processing (206) on the first check (and `slow` more), done after.
    async fn media(
        State(fake): State<Fake>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        fake.record(&format!("GET /api/v1/media/{id}"), &headers, b"");
        if fake.polls.fetch_add(1, Ordering::SeqCst) <= fake.slow.load(Ordering::SeqCst) {
            (
                StatusCode::PARTIAL_CONTENT,
                axum::Json(json!({"id": id, "type": "image", "url": null})),
            )
                .into_response()
        } else {
            axum::Json(
                json!({"id": id, "type": "image", "url": "https://files.social.test/9001.png"}),
            )
            .into_response()
        }
    }

    async fn verify(headers: HeaderMap) -> Response {
        if !authorised(&headers) {
            return invalid_token();
        }
        axum::Json(json!({"id": "1", "username": "bot", "acct": "bot", "display_name": "Bot"}))
            .into_response()
    }

    async fn instance() -> (String, Fake) {
        let fake = Fake::default();
        let app = axum::Router::new()
            .route("/api/v1/statuses", post(statuses))
            .route("/api/v2/media", post(upload))
            .route("/api/v1/media/{id}", get(media))
            .route("/api/v1/accounts/verify_credentials", get(verify))
            .route("/api/v1/statuses/{id}", get(status))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    /// Builds an adapter whose token comes from `env` (each test its own
    /// variable, since tests run in parallel).
    fn adapter(
        env: &str,
        token: &str,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        // SAFETY: each test sets its own variable and only reads that one.
        unsafe { std::env::set_var(env, token) };
        let mut config = json!({"name": "fedi", "kind": "mastodon", "access_token": {"env": env}});
        config
            .as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        Factory.build(
            &serde_json::from_value(config).unwrap(),
            &AdapterContext::default(),
        )
    }

    async fn publish(
        adapter: &dyn ChannelAdapter,
        text: &str,
        media: Vec<Media>,
        key: &str,
        reply_to: Option<ReplyTo<'_>>,
    ) -> Result<PublishReceipt, PublishError> {
        publish_within(adapter, text, media, key, reply_to, Duration::from_secs(30)).await
    }

    async fn publish_within(
        adapter: &dyn ChannelAdapter,
        text: &str,
        media: Vec<Media>,
        key: &str,
        reply_to: Option<ReplyTo<'_>>,
        budget: Duration,
    ) -> Result<PublishReceipt, PublishError> {
        let post = OutboundPost {
            text: text.into(),
            campaign: None,
            media,
        };
        adapter
            .publish(PublishRequest {
                post: &post,
                idempotency_key: key,
                reply_to,
                post_id: 1,
                target_id: 2,
                scheduled_at_ms: 1_764_158_400_000,
                budget,
            })
            .await
    }

    #[tokio::test]
    async fn a_plain_post_sends_json_bearer_and_idempotency_key() {
        let (base, fake) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_PLAIN",
            TOKEN,
            json!({"instance": format!("{base}/"), "visibility": "unlisted", "spoiler_text": "cw", "language": "en"}),
        )
        .unwrap();
        let receipt = publish(adapter.as_ref(), "hello", vec![], "key-1", None)
            .await
            .unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some("110000000000000042".into()),
                url: Some("https://social.test/@bot/110000000000000042".into()),
            }
        );
        let (headers, _) = fake.requests("POST /api/v1/statuses")[0].clone();
        assert_eq!(headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(headers["idempotency-key"], "key-1");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            fake.status_json(0),
            json!({"status": "hello", "visibility": "unlisted", "spoiler_text": "cw", "language": "en"})
        );
    }

    #[tokio::test]
    async fn an_image_is_uploaded_polled_until_processed_and_attached() {
        let (base, fake) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_MEDIA",
            TOKEN,
            json!({"instance": base, "media_poll_ms": 5}),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("clarion-mastodon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pixel.png");
        let png: &[u8] =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        std::fs::write(&path, png).unwrap();
        let media = Media {
            path: path.clone(),
            alt: "a single red pixel".into(),
            mime: "image/png".into(),
            bytes: png.len() as u64,
        };
        let receipt = publish(adapter.as_ref(), "look", vec![media], "key-img", None).await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            receipt.unwrap().platform_post_id.as_deref(),
            Some("110000000000000042")
        );

        let uploads = fake.requests("POST /api/v2/media");
        assert_eq!(uploads.len(), 1);
        let (headers, body) = &uploads[0];
        assert_eq!(headers["authorization"], format!("Bearer {TOKEN}"));
        let body = String::from_utf8_lossy(body);
        assert!(
            body.contains("name=\"file\"; filename=\"pixel.png\""),
            "{body}"
        );
        assert!(body.contains("Content-Type: image/png"), "{body}");
        assert!(
            body.contains("name=\"description\"\r\n\r\na single red pixel\r\n"),
            "{body}"
        );
        // 202 on upload, 206 on the first check, 200 with a url on the second.
        assert_eq!(fake.requests("GET /api/v1/media/9001").len(), 2);
        assert_eq!(
            fake.status_json(0),
            json!({"status": "look", "visibility": "public", "media_ids": ["9001"]})
        );
    }

    #[tokio::test]
    async fn slow_media_processing_stops_inside_the_budget_and_the_retry_reuses_the_upload() {
        let (base, fake) = instance().await;
        // Never done until the test says so.
        fake.slow.store(u32::MAX - 1, Ordering::SeqCst);
        let adapter = adapter(
            "CLARION_TEST_MASTODON_SLOW_MEDIA",
            TOKEN,
            json!({"instance": base, "media_poll_ms": 20}),
        )
        .unwrap();
        let dir =
            std::env::temp_dir().join(format!("clarion-mastodon-slow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pixel.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\n").unwrap();
        let media = Media {
            path,
            alt: String::new(),
            mime: "image/png".into(),
            bytes: 8,
        };
        let budget = Duration::from_millis(400);
        let started = std::time::Instant::now();
        let error = publish_within(
            adapter.as_ref(),
            "look",
            vec![media.clone()],
            "key-slow",
            None,
            budget,
        )
        .await
        .unwrap_err();
        let took = started.elapsed();
        assert!(took < budget, "polling ran past the budget: {took:?}");
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        assert!(
            error.message.starts_with("media ")
                && error
                    .message
                    .contains("is still being processed by the instance"),
            "{error}"
        );
        assert!(fake.requests("POST /api/v1/statuses").is_empty());
        assert_eq!(fake.requests("POST /api/v2/media").len(), 1);

        // Processing finishes; the retry checks the same upload instead of
        // uploading the file again.
        fake.slow.store(0, Ordering::SeqCst);
        let receipt = publish_within(
            adapter.as_ref(),
            "look",
            vec![media],
            "key-slow",
            None,
            budget,
        )
        .await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            receipt.unwrap().platform_post_id.as_deref(),
            Some("110000000000000042")
        );
        assert_eq!(
            fake.requests("POST /api/v2/media").len(),
            1,
            "uploaded once"
        );
        assert_eq!(
            fake.status_json(0),
            json!({"status": "look", "visibility": "public", "media_ids": ["9001"]})
        );
    }

    #[tokio::test]
    async fn a_thread_part_replies_to_its_parent() {
        let (base, fake) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_THREAD",
            TOKEN,
            json!({"instance": base}),
        )
        .unwrap();
        let reply = ReplyTo {
            root: "100",
            parent: "101",
        };
        publish(adapter.as_ref(), "part 3", vec![], "key-1.3", Some(reply))
            .await
            .unwrap();
        assert_eq!(
            fake.status_json(0),
            json!({"status": "part 3", "visibility": "public", "in_reply_to_id": "101"})
        );
        assert_eq!(
            fake.requests("POST /api/v1/statuses")[0].0["idempotency-key"],
            "key-1.3"
        );
        assert_eq!(adapter.thread_style(), ThreadStyle::Native);
    }

    #[tokio::test]
    async fn rate_limits_wait_until_the_reset_time_or_retry_after() {
        let (base, _) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_LIMIT",
            TOKEN,
            json!({"instance": base}),
        )
        .unwrap();
        let limited = publish(adapter.as_ref(), "limit me", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(limited.class, ErrorClass::RateLimited);
        assert_eq!(limited.status, Some(429));
        assert_eq!(limited.message, "HTTP 429: Too many requests");
        let wait = limited.retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(1000) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );

        let header = publish(
            adapter.as_ref(),
            "limit me with retry-after",
            vec![],
            "k",
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(header.class, ErrorClass::RateLimited);
        assert_eq!(header.retry_after, Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn refusals_keep_the_instance_message() {
        let (base, _) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_422",
            TOKEN,
            json!({"instance": base}),
        )
        .unwrap();
        let invalid = publish(adapter.as_ref(), "too long", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(
            (invalid.class, invalid.status, invalid.message.as_str()),
            (
                ErrorClass::Permanent,
                Some(422),
                "HTTP 422: Validation failed: Text character limit of 500 exceeded"
            )
        );
    }

    #[tokio::test]
    async fn a_rejected_token_is_auth_expired_and_never_printed() {
        let (base, _) = instance().await;
        let wrong = "tok-SECRET-wrong-5678";
        let rejected = adapter(
            "CLARION_TEST_MASTODON_401",
            wrong,
            json!({"instance": base}),
        )
        .unwrap();
        let error = publish(rejected.as_ref(), "hello", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::AuthExpired,
                "HTTP 401: The access token is invalid"
            )
        );
        let check = rejected.check().await.unwrap_err();
        assert_eq!(check.class, ErrorClass::AuthExpired);

        // Nothing listens on this port: the transport error must not leak it either.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = adapter(
            "CLARION_TEST_MASTODON_CLOSED",
            wrong,
            json!({"instance": format!("http://127.0.0.1:{port}")}),
        )
        .unwrap();
        let refused = publish(closed.as_ref(), "hello", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(refused.class, ErrorClass::Transient, "{refused}");
        for text in [
            error.to_string(),
            check.to_string(),
            refused.to_string(),
            format!("{rejected:?}"),
        ] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[tokio::test]
    async fn post_counts_read_the_status_counts_and_a_deleted_status_is_permanent() {
        let (base, _) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_COUNTS",
            TOKEN,
            json!({"instance": base.clone()}),
        )
        .unwrap();
        let counts = adapter
            .post_counts("110000000000000042")
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
            (Some(7), Some(3), Some(2), None, None)
        );
        let gone = adapter.post_counts("110000000000000043").await.unwrap_err();
        assert_eq!(gone.class, ErrorClass::Permanent, "{gone}");
        let bogus = adapter.post_counts("../accounts").await.unwrap_err();
        assert_eq!(bogus.class, ErrorClass::Permanent, "{bogus}");
    }

    /// `GET /api/v1/statuses/:id`: 42 exists, anything else was deleted.
    async fn status(Path(id): Path<String>) -> Response {
        if id != "110000000000000042" {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "Record not found"})),
            )
                .into_response();
        }
        axum::Json(json!({
            "id": id, "created_at": "2026-11-27T10:00:00.000Z", "content": "<p>hi</p>",
            "visibility": "public", "favourites_count": 7, "reblogs_count": 3, "replies_count": 2,
            "url": "https://social.test/@bot/110000000000000042",
            "account": {"id": "1", "username": "bot", "acct": "bot"}
        }))
        .into_response()
    }

    #[tokio::test]
    async fn check_names_the_account_and_instance() {
        let (base, _) = instance().await;
        let adapter = adapter(
            "CLARION_TEST_MASTODON_CHECK",
            TOKEN,
            json!({"instance": base.clone()}),
        )
        .unwrap();
        let host = base.trim_start_matches("http://");
        assert_eq!(
            adapter.check().await.unwrap().detail,
            format!("@bot on {host}")
        );
    }

    #[test]
    fn limits_follow_the_instance_settings() {
        let default = adapter(
            "CLARION_TEST_MASTODON_RULES",
            TOKEN,
            json!({"instance": "https://mastodon.social"}),
        )
        .unwrap();
        assert_eq!(
            default.length_rule(),
            LengthRule::new(500, LengthUnit::CharsUrl23)
        );
        assert_eq!(
            default.idempotency(),
            Idempotency::honoured_for(Duration::from_secs(3600))
        );
        assert_eq!(default.markup(), Markup::Plain);
        assert_eq!(default.media_rule().max_count, 4);
        assert_eq!(default.min_interval(), Some(Duration::from_secs(1)));
        assert_eq!(
            default.rate_window(),
            Some(RateWindow {
                max: 300,
                per: Duration::from_secs(3 * 60 * 60)
            })
        );
        let big = adapter(
            "CLARION_TEST_MASTODON_RULES2",
            TOKEN,
            json!({"instance": "https://mastodon.social", "max_characters": 5000}),
        )
        .unwrap();
        assert_eq!(big.length_rule().max, 5000);
    }

    #[test]
    fn bad_settings_name_the_channel_and_the_field() {
        let scheme = adapter(
            "CLARION_TEST_MASTODON_BAD",
            TOKEN,
            json!({"instance": "ftp://x"}),
        )
        .unwrap_err();
        assert_eq!(
            scheme.to_string(),
            "channel `fedi` instance: must be an http or https URL with a host"
        );
        let visibility = adapter(
            "CLARION_TEST_MASTODON_BAD",
            TOKEN,
            json!({"instance": "https://x", "visibility": "friends"}),
        )
        .unwrap_err();
        assert!(
            visibility
                .to_string()
                .starts_with("channel `fedi` (kind mastodon): unknown variant `friends`"),
            "{visibility}"
        );
        let typo = adapter(
            "CLARION_TEST_MASTODON_BAD",
            TOKEN,
            json!({"instance": "https://x", "token": "t"}),
        )
        .unwrap_err();
        assert!(
            typo.to_string()
                .starts_with("channel `fedi` (kind mastodon): unknown field `token`"),
            "{typo}"
        );
    }
}
