//! `matrix`: sends `m.room.message` events to one room through the Matrix
//! client-server API, as a bot user with an access token.
//!
//! ```toml
//! [[channels]]
//! name = "matrix-announce"
//! kind = "matrix"
//! homeserver = "https://matrix.example.org"
//! access_token = { env = "MATRIX_TOKEN" }
//! room_id = "!abcdefghijk:example.org"   # the room id (Room settings > Advanced), not an alias
//! timeout_secs = 30
//! ```
//!
//! Text arrives as Markdown (the channel's markup) and goes out twice:
//! as HTML in `formatted_body` and as plain text in `body` for clients that
//! do not render HTML, both from `clarion_content`'s one Markdown converter
//! (raw HTML escaped, links only to http, https and mailto). An image goes first as its own `m.image` event
//! (transaction id `<key>.img`), then the text; the receipt is the text
//! event, so thread replies and links point at the words, not the picture.
//!
//! Replies: a plain parent (`$event`) is an event of the configured room. A
//! parent `"<room id>/<event id>"` (what the listener reports for events in
//! other rooms) sends the reply into that room, and the receipt id is
//! qualified the same way. See [`listen`] for listening.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, Media, MediaRule,
    OutboundPost, PublishError, PublishReceipt, PublishRequest, Secret, SecretRef, ThreadStyle,
    ValidationError,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::http::{classify_status, classify_transport};

mod listen;

/// Homeservers refuse events over 65536 bytes (the whole federated event,
/// signatures and hashes included). Leave room for that envelope.
const MAX_CONTENT_BYTES: usize = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    homeserver: String,
    access_token: SecretRef,
    room_id: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

fn default_timeout() -> f64 {
    30.0
}

#[derive(Debug)]
pub struct MatrixAdapter {
    client: reqwest::Client,
    /// Homeserver base URL without a trailing slash.
    base: String,
    token: Secret,
    room_id: String,
    timeout: Duration,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "matrix"
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

/// Checks the settings and builds the adapter (the listener builds on it too).
fn configure(config: &ChannelConfig) -> Result<MatrixAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let parsed = reqwest::Url::parse(&s.homeserver)
        .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("homeserver"))))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::new(format!(
            "{}: must be an http or https URL with a host",
            what("homeserver")
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::new(format!(
            "{}: give the bare homeserver URL, without query or fragment",
            what("homeserver")
        )));
    }
    // Room ids start with `!`; since room version 12 they no longer carry
    // a `:server` part, so that is not required. Aliases (`#room:server`)
    // would need a directory lookup on every send.
    if !s.room_id.starts_with('!') || s.room_id.len() < 2 {
        return Err(ConfigError::new(format!(
            "{}: give the room id (starts with `!`, see Room settings > Advanced), not an alias",
            what("room_id")
        )));
    }
    if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 300 seconds",
            what("timeout_secs")
        )));
    }
    let token = s.access_token.resolve(&what("access_token"))?;
    Ok(MatrixAdapter {
        client: crate::http_client(),
        base: s.homeserver.trim_end_matches('/').to_owned(),
        token,
        room_id: s.room_id,
        timeout: Duration::from_secs_f64(s.timeout_secs),
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so room
/// ids (`!a:b`), event ids (`$x/y+z` in old rooms) and arbitrary keys are
/// safe as one path segment or one matrix.to fragment part.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A reply parent: `"<room id>/<event id>"` names the room, a plain event id
/// is in the configured room. Room ids start with `!` and hold no `/`; event
/// ids of old rooms may (`$abc/def`), so only a `!` prefix means a room.
fn split_parent(parent: &str) -> (Option<&str>, &str) {
    match parent.split_once('/') {
        Some((room, event)) if room.starts_with('!') && !event.is_empty() => (Some(room), event),
        _ => (None, parent),
    }
}

/// The content of the text event for one post.
fn text_content(markdown: &str, reply_to_parent: Option<&str>) -> serde_json::Value {
    let mut content = json!({
        "msgtype": "m.text",
        "body": clarion_content::markdown_to_plain(markdown),
        "format": "org.matrix.custom.html",
        "formatted_body": clarion_content::markdown_to_html_blocks(markdown),
    });
    if let Some(parent) = reply_to_parent {
        content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": parent}});
    }
    content
}

/// A Matrix error body: `{"errcode", "error", "retry_after_ms"?}`.
#[derive(Debug, Deserialize)]
struct MatrixError {
    errcode: String,
    #[serde(default)]
    error: String,
    retry_after_ms: Option<u64>,
}

/// Classifies by Matrix `errcode` first, then by HTTP status.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> PublishError {
    let base = classify_status(status, headers, body);
    let Ok(error) = serde_json::from_str::<MatrixError>(body) else {
        return base;
    };
    let class = match error.errcode.as_str() {
        "M_LIMIT_EXCEEDED" => ErrorClass::RateLimited,
        // The token was revoked, logged out or the account closed: someone
        // must log in again.
        "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN" | "M_USER_DEACTIVATED" => ErrorClass::AuthExpired,
        // Any other 403 (M_FORBIDDEN) is about the room, not the token: the
        // bot is not joined or lacks power to post. Retrying cannot help.
        _ if status == StatusCode::FORBIDDEN => ErrorClass::Permanent,
        _ => base.class,
    };
    let message = if error.error.is_empty() {
        format!("HTTP {}: {}", status.as_u16(), error.errcode)
    } else {
        let words: String = error.error.chars().take(500).collect();
        format!("HTTP {}: {}: {words}", status.as_u16(), error.errcode)
    };
    // Since spec v1.10 `Retry-After` is preferred; `retry_after_ms` remains
    // what most homeservers send.
    let retry_after = base
        .retry_after
        .or(error.retry_after_ms.map(Duration::from_millis));
    PublishError::new(class, message)
        .with_status(status.as_u16())
        .with_retry_after(retry_after)
}

impl MatrixAdapter {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(self.timeout)
    }

    /// Sends a request and decodes a JSON success answer. `garbled` is the
    /// class of a 2xx whose body cannot be read.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        garbled: ErrorClass,
    ) -> Result<T, PublishError> {
        let response = builder.send().await.map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(classify_transport)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                garbled,
                format!(
                    "the homeserver answered HTTP {} with an unexpected body: {e}",
                    status.as_u16()
                ),
            )
        })
    }

    /// Sends one room message. The transaction id makes a resend with the
    /// same id return the first event instead of posting again.
    async fn send_event(
        &self,
        room_id: &str,
        txn_id: &str,
        content: &serde_json::Value,
    ) -> Result<String, PublishError> {
        #[derive(Deserialize)]
        struct Sent {
            event_id: String,
        }
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            encode(room_id),
            encode(txn_id)
        );
        // A 2xx that cannot be read most likely created the event; a resend
        // with the same txnId will return it.
        let sent: Sent = self
            .call(
                self.request(reqwest::Method::PUT, &path).json(content),
                ErrorClass::OutcomeUnknown,
            )
            .await?;
        Ok(sent.event_id)
    }

    /// Uploads the file to the media repository and returns the `m.image`
    /// content that shows it.
    async fn image_content(&self, media: &Media) -> Result<serde_json::Value, PublishError> {
        #[derive(Deserialize)]
        struct Uploaded {
            content_uri: String,
        }
        let shown = media.path.display();
        let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(ErrorClass::Permanent, format!("cannot read {shown}: {e}"))
        })?;
        let size = bytes.len();
        let file_name = media
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("image")
            .to_owned();
        let path = format!("/_matrix/media/v3/upload?filename={}", encode(&file_name));
        // Uploads have no idempotency; a repeat leaves an unused file in the
        // media repository, which nobody sees.
        let uploaded: Uploaded = self
            .call(
                self.request(reqwest::Method::POST, &path)
                    .header(reqwest::header::CONTENT_TYPE, &media.mime)
                    .body(bytes),
                ErrorClass::Transient,
            )
            .await?;
        let body = if media.alt.trim().is_empty() {
            file_name.clone()
        } else {
            media.alt.clone()
        };
        Ok(json!({
            "msgtype": "m.image",
            "body": body,
            "filename": file_name,
            "url": uploaded.content_uri,
            "info": {"mimetype": media.mime, "size": size},
        }))
    }
}

#[async_trait]
impl ChannelAdapter for MatrixAdapter {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn length_rule(&self) -> LengthRule {
        // Matrix has no text limit of its own, only the 64 KiB event limit,
        // which `validate` checks on the encoded event. This character limit
        // is what thread splitting plans with.
        LengthRule::new(25_000, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        // Rendered here, twice (HTML and plain), from the one Markdown source.
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // The txnId in the send path is the idempotency key: the homeserver
        // returns the first event for a repeated txnId of the same token.
        // The spec leaves how long to the server; Synapse's transaction
        // cache keeps an entry at least 30 and at most 60 minutes
        // (synapse/rest/client/transactions.py, CLEANUP_PERIOD_MS), so 30
        // minutes is the conservative window.
        Idempotency::honoured_for(Duration::from_secs(30 * 60))
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        // One image, sent as its own event before the text. 50 MB is
        // Synapse's default `max_upload_size`; homeservers may set less and
        // then answer 413 M_TOO_LARGE (classified Permanent).
        MediaRule {
            max_count: 1,
            max_bytes: 50 * 1024 * 1024,
            mime_types: MediaRule::IMAGES,
        }
    }

    fn min_interval(&self) -> Option<Duration> {
        // Synapse's default message rate limit allows a burst of 10 and then
        // 0.2/s; pacing at 1/s keeps threads quick, and a 429 carries
        // `retry_after_ms`, which the scheduler honours. Bot accounts are
        // often exempted by the homeserver admin anyway.
        Some(Duration::from_secs(1))
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)?;
        self.media_rule().check(&post.media)?;
        // Both `body` and `formatted_body` count towards the event limit.
        let size = serde_json::to_vec(&text_content(&post.text, None))
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONTENT_BYTES {
            return Err(ValidationError::new(format!(
                "the message event would be {size} bytes; Matrix events are limited to 64 KiB"
            )));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        // Image first, then text: readers see the picture with the words
        // right under it, and the text event (returned below) is what later
        // thread parts reply to. Each has its own txnId, so a retry after the
        // image went out re-sends it as a no-op and posts only the text.
        // A reply to an event of another room goes into that room.
        let (room_id, parent) = match request.reply_to.map(|r| split_parent(r.parent)) {
            Some((Some(room), event)) if room != self.room_id => (room, Some(event)),
            Some((_, event)) => (self.room_id.as_str(), Some(event)),
            None => (self.room_id.as_str(), None),
        };
        for media in &request.post.media {
            let content = self.image_content(media).await?;
            self.send_event(
                room_id,
                &format!("{}.img", request.idempotency_key),
                &content,
            )
            .await?;
        }
        let content = text_content(&request.post.text, parent);
        let event_id = self
            .send_event(room_id, request.idempotency_key, &content)
            .await?;
        let url = format!(
            "https://matrix.to/#/{}/{}",
            encode(room_id),
            encode(&event_id)
        );
        let id = if room_id == self.room_id {
            event_id
        } else {
            format!("{room_id}/{event_id}")
        };
        Ok(PublishReceipt {
            platform_post_id: Some(id),
            url: Some(url),
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }
}

impl MatrixAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        #[derive(Deserialize)]
        struct WhoAmI {
            user_id: String,
        }
        let who: WhoAmI = self
            .call(
                self.request(reqwest::Method::GET, "/_matrix/client/v3/account/whoami"),
                ErrorClass::Transient,
            )
            .await?;
        // Valid credentials are not enough: a send to a room the bot has
        // not joined fails with M_FORBIDDEN (an invite not yet accepted
        // included). `joined_rooms` lists exactly the rooms it can post in.
        #[derive(Deserialize)]
        struct Joined {
            joined_rooms: Vec<String>,
        }
        let joined: Joined = self
            .call(
                self.request(reqwest::Method::GET, "/_matrix/client/v3/joined_rooms"),
                ErrorClass::Transient,
            )
            .await?;
        if !joined.joined_rooms.contains(&self.room_id) {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!(
                    "{} has not joined room {}: invite it, then accept the invite as the bot (until then every send fails with M_FORBIDDEN)",
                    who.user_id, self.room_id
                ),
            ));
        }
        Ok(ChannelCheck::ok(format!(
            "{} in {}",
            who.user_id, self.room_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{OriginalUri, Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post, put};
    use clarion_core::ReplyTo;

    use super::*;

    const TOKEN: &str = "syt_SECRET_matrix_token";

    /// One request the fake received: raw path, headers, body.
    type Seen = (String, HeaderMap, Vec<u8>);

    /// The fake homeserver: requests seen and the event id given to each
    /// txnId, so a repeat returns the same event as a homeserver does.
    #[derive(Clone, Default)]
    struct Fake {
        seen: Arc<Mutex<Vec<Seen>>>,
        events: Arc<Mutex<HashMap<(String, String), String>>>,
        /// `joined_rooms` answers 200 with a body that is not JSON.
        garbled: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Fake {
        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn json(&self, n: usize) -> serde_json::Value {
            serde_json::from_slice(&self.seen()[n].2).unwrap()
        }
    }

    fn matrix_error(status: StatusCode, body: serde_json::Value) -> Response {
        (status, axum::Json(body)).into_response()
    }

    fn unknown_token(headers: &HeaderMap) -> Option<Response> {
        (headers.get("authorization").is_none_or(|v| v != &format!("Bearer {TOKEN}"))).then(|| {
            matrix_error(
                StatusCode::UNAUTHORIZED,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed.", "soft_logout": false}),
            )
        })
    }

    async fn send(
        State(fake): State<Fake>,
        OriginalUri(uri): OriginalUri,
        Path((room, kind, txn)): Path<(String, String, String)>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        fake.seen.lock().unwrap().push((
            uri.path().to_owned(),
            headers.clone(),
            body.clone().into_bytes(),
        ));
        if let Some(denied) = unknown_token(&headers) {
            return denied;
        }
        assert_eq!(kind, "m.room.message");
        match room.as_str() {
            "!busy:example.org" => matrix_error(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}),
            ),
            "!private:example.org" => matrix_error(
                StatusCode::FORBIDDEN,
                json!({"errcode": "M_FORBIDDEN", "error": "User @bot:example.org not in room !private:example.org"}),
            ),
            _ => {
                let mut events = fake.events.lock().unwrap();
                let next = format!("$event{}", events.len() + 1);
                let id = events.entry((room, txn)).or_insert(next).clone();
                axum::Json(json!({"event_id": id})).into_response()
            }
        }
    }

    async fn upload(
        State(fake): State<Fake>,
        OriginalUri(uri): OriginalUri,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        fake.seen
            .lock()
            .unwrap()
            .push((uri.path().to_owned(), headers.clone(), body.to_vec()));
        if let Some(denied) = unknown_token(&headers) {
            return denied;
        }
        assert_eq!(
            query.get("filename").map(String::as_str),
            Some("pixel one.png")
        );
        axum::Json(json!({"content_uri": "mxc://example.org/AQwafuaFswefuhsfAFAgsw"}))
            .into_response()
    }

    async fn whoami(headers: HeaderMap) -> Response {
        if let Some(denied) = unknown_token(&headers) {
            return denied;
        }
        axum::Json(
            json!({"user_id": "@bot:example.org", "device_id": "CLARION", "is_guest": false}),
        )
        .into_response()
    }

    /// `GET /_matrix/client/v3/joined_rooms` (client-server API 1.x):
    /// `!room:example.org` is joined; the bot is only invited to
    /// `!invited:example.org`. `!garbled:example.org` makes the answer unreadable.
    async fn joined_rooms(State(fake): State<Fake>, headers: HeaderMap) -> Response {
        fake.seen.lock().unwrap().push((
            "/_matrix/client/v3/joined_rooms".to_owned(),
            headers.clone(),
            Vec::new(),
        ));
        if let Some(denied) = unknown_token(&headers) {
            return denied;
        }
        if fake.garbled.load(std::sync::atomic::Ordering::Relaxed) {
            return "<html>502 Bad Gateway</html>".into_response();
        }
        axum::Json(json!({"joined_rooms": ["!room:example.org", "!busy:example.org"]}))
            .into_response()
    }

    async fn homeserver() -> (String, Fake) {
        let fake = Fake::default();
        let app = axum::Router::new()
            .route(
                "/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}",
                put(send),
            )
            .route("/_matrix/media/v3/upload", post(upload))
            .route("/_matrix/client/v3/account/whoami", get(whoami))
            .route("/_matrix/client/v3/joined_rooms", get(joined_rooms))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    fn adapter(
        env: &str,
        token: &str,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        // SAFETY: each test sets its own variable and only reads that one.
        unsafe { std::env::set_var(env, token) };
        let mut config = json!({"name": "room", "kind": "matrix", "access_token": {"env": env}, "room_id": "!room:example.org"});
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
                budget: std::time::Duration::from_secs(30),
            })
            .await
    }

    #[tokio::test]
    async fn a_post_puts_html_under_the_key_as_txn_id_and_a_repeat_reuses_it() {
        let (base, fake) = homeserver().await;
        let adapter = adapter(
            "CLARION_TEST_MATRIX_PLAIN",
            TOKEN,
            json!({"homeserver": format!("{base}/")}),
        )
        .unwrap();
        let markdown = "Release **1.2** & notes: [read](https://example.org/r?a=1&b=2)";
        let html = "<p>Release <strong>1.2</strong> &amp; notes: <a href=\"https://example.org/r?a=1&amp;b=2\">read</a></p>";
        let first = publish(adapter.as_ref(), markdown, vec![], "post 7/target:9", None)
            .await
            .unwrap();
        assert_eq!(
            first,
            PublishReceipt {
                platform_post_id: Some("$event1".into()),
                url: Some("https://matrix.to/#/%21room%3Aexample.org/%24event1".into()),
            }
        );
        let again = publish(adapter.as_ref(), markdown, vec![], "post 7/target:9", None)
            .await
            .unwrap();
        assert_eq!(again, first);

        let seen = fake.seen();
        assert_eq!(seen.len(), 2);
        let path = "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/post%207%2Ftarget%3A9";
        assert_eq!(seen[0].0, path);
        assert_eq!(seen[1].0, path);
        assert_eq!(seen[0].1["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(
            fake.json(0),
            json!({
                "msgtype": "m.text",
                "body": "Release 1.2 & notes: read (https://example.org/r?a=1&b=2)",
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            })
        );
    }

    #[tokio::test]
    async fn a_thread_part_replies_to_its_parent_event() {
        let (base, fake) = homeserver().await;
        let adapter = adapter(
            "CLARION_TEST_MATRIX_REPLY",
            TOKEN,
            json!({"homeserver": base}),
        )
        .unwrap();
        let reply = ReplyTo {
            root: "$root",
            parent: "$parent",
        };
        publish(adapter.as_ref(), "part 2", vec![], "key.2", Some(reply))
            .await
            .unwrap();
        assert_eq!(
            fake.json(0),
            json!({
                "msgtype": "m.text",
                "body": "part 2",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p>part 2</p>",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$parent"}},
            })
        );
        assert!(fake.seen()[0].0.ends_with("/send/m.room.message/key.2"));
    }

    #[tokio::test]
    async fn an_image_is_uploaded_and_sent_before_the_text() {
        let (base, fake) = homeserver().await;
        let adapter = adapter(
            "CLARION_TEST_MATRIX_IMAGE",
            TOKEN,
            json!({"homeserver": base}),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("clarion-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pixel one.png");
        let png: &[u8] =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        std::fs::write(&path, png).unwrap();
        let media = Media {
            path,
            alt: "one red pixel".into(),
            mime: "image/png".into(),
            bytes: png.len() as u64,
        };
        let receipt = publish(adapter.as_ref(), "look", vec![media], "k1", None).await;
        std::fs::remove_dir_all(&dir).unwrap();
        // The text is the second event; its id is the receipt.
        assert_eq!(
            receipt.unwrap().platform_post_id.as_deref(),
            Some("$event2")
        );

        let seen = fake.seen();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, "/_matrix/media/v3/upload");
        assert_eq!(seen[0].1["content-type"], "image/png");
        assert_eq!(seen[0].1["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(seen[0].2, png);
        assert!(
            seen[1].0.ends_with("/send/m.room.message/k1.img"),
            "{}",
            seen[1].0
        );
        assert_eq!(
            fake.json(1),
            json!({
                "msgtype": "m.image",
                "body": "one red pixel",
                "filename": "pixel one.png",
                "url": "mxc://example.org/AQwafuaFswefuhsfAFAgsw",
                "info": {"mimetype": "image/png", "size": png.len()},
            })
        );
        assert!(
            seen[2].0.ends_with("/send/m.room.message/k1"),
            "{}",
            seen[2].0
        );
        assert_eq!(fake.json(2)["body"], "look");
    }

    #[tokio::test]
    async fn errors_are_classified_by_errcode() {
        let (base, _) = homeserver().await;
        let busy = adapter(
            "CLARION_TEST_MATRIX_BUSY",
            TOKEN,
            json!({"homeserver": base.clone(), "room_id": "!busy:example.org"}),
        )
        .unwrap();
        let limited = publish(busy.as_ref(), "hi", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(
            (limited.class, limited.retry_after, limited.message.as_str()),
            (
                ErrorClass::RateLimited,
                Some(Duration::from_secs(2)),
                "HTTP 429: M_LIMIT_EXCEEDED: Too many requests"
            )
        );

        let private = adapter(
            "CLARION_TEST_MATRIX_PRIVATE",
            TOKEN,
            json!({"homeserver": base.clone(), "room_id": "!private:example.org"}),
        )
        .unwrap();
        let forbidden = publish(private.as_ref(), "hi", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(
            (
                forbidden.class,
                forbidden.status,
                forbidden.message.as_str()
            ),
            (
                ErrorClass::Permanent,
                Some(403),
                "HTTP 403: M_FORBIDDEN: User @bot:example.org not in room !private:example.org"
            )
        );
    }

    #[tokio::test]
    async fn an_unknown_token_is_auth_expired_and_never_printed() {
        let (base, _) = homeserver().await;
        let wrong = "syt_SECRET_revoked";
        let revoked = adapter(
            "CLARION_TEST_MATRIX_REVOKED",
            wrong,
            json!({"homeserver": base}),
        )
        .unwrap();
        let error = publish(revoked.as_ref(), "hi", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::AuthExpired,
                "HTTP 401: M_UNKNOWN_TOKEN: Invalid access token passed."
            )
        );
        let check = revoked.check().await.unwrap_err();
        assert_eq!(check.class, ErrorClass::AuthExpired);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = adapter(
            "CLARION_TEST_MATRIX_CLOSED",
            wrong,
            json!({"homeserver": format!("http://127.0.0.1:{port}")}),
        )
        .unwrap();
        let refused = publish(closed.as_ref(), "hi", vec![], "k", None)
            .await
            .unwrap_err();
        assert_eq!(refused.class, ErrorClass::Transient, "{refused}");
        for text in [
            error.to_string(),
            check.to_string(),
            refused.to_string(),
            format!("{revoked:?}"),
        ] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[tokio::test]
    async fn check_reports_the_user_id() {
        let (base, _) = homeserver().await;
        let adapter = adapter(
            "CLARION_TEST_MATRIX_WHOAMI",
            TOKEN,
            json!({"homeserver": base}),
        )
        .unwrap();
        assert_eq!(
            adapter.check().await.unwrap().detail,
            "@bot:example.org in !room:example.org"
        );
    }

    #[tokio::test]
    async fn check_fails_for_a_room_the_bot_has_not_joined() {
        let (base, fake) = homeserver().await;
        // Invited but not joined: valid credentials, yet a send would be M_FORBIDDEN.
        let invited = adapter(
            "CLARION_TEST_MATRIX_NOT_JOINED",
            TOKEN,
            json!({"homeserver": base, "room_id": "!invited:example.org"}),
        )
        .unwrap();
        let error = invited.check().await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Permanent);
        assert_eq!(
            error.message,
            "@bot:example.org has not joined room !invited:example.org: invite it, then accept \
             the invite as the bot (until then every send fails with M_FORBIDDEN)"
        );
        assert!(
            fake.seen()
                .iter()
                .any(|(path, _, _)| path == "/_matrix/client/v3/joined_rooms")
        );

        // An answer that cannot be read is a failed check, never "outcome unknown".
        fake.garbled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let joined = adapter(
            "CLARION_TEST_MATRIX_GARBLED",
            TOKEN,
            json!({"homeserver": base}),
        )
        .unwrap();
        let error = joined.check().await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        assert!(error.message.contains("unexpected body"), "{error}");

        // Rejected credentials stay what they are.
        let error = adapter(
            "CLARION_TEST_MATRIX_BAD_TOKEN",
            "syt_wrong",
            json!({"homeserver": base}),
        )
        .unwrap()
        .check()
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired);
    }

    #[test]
    fn markdown_becomes_safe_html_and_readable_plain_text() {
        let content = text_content(
            "**Big** news\nsee [docs](https://x.test/d) <b>raw</b> [bad](javascript:alert(1))\n\n- a\n- b",
            None,
        );
        assert_eq!(
            content["body"],
            "Big news\nsee docs (https://x.test/d) <b>raw</b> bad\n\n- a\n- b"
        );
        assert_eq!(
            content["formatted_body"],
            "<p><strong>Big</strong> news<br>\nsee <a href=\"https://x.test/d\">docs</a> \
             &lt;b&gt;raw&lt;/b&gt; bad</p>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>"
        );
    }

    #[test]
    fn validation_counts_the_whole_event() {
        let adapter = adapter(
            "CLARION_TEST_MATRIX_RULES",
            TOKEN,
            json!({"homeserver": "https://matrix.example.org"}),
        )
        .unwrap();
        assert_eq!(adapter.markup(), Markup::Markdown);
        assert_eq!(
            adapter.idempotency(),
            Idempotency::honoured_for(Duration::from_secs(30 * 60))
        );
        assert_eq!(adapter.media_rule().max_count, 1);
        let post = |text: String| OutboundPost {
            text,
            campaign: None,
            media: vec![],
        };
        assert!(adapter.validate(&post("é".repeat(14_000))).is_ok());
        // 20,000 characters pass the length rule but, as 2-byte UTF-8 twice
        // (body and formatted_body), exceed the event limit.
        let error = adapter.validate(&post("é".repeat(20_000))).unwrap_err();
        assert!(
            error.message.starts_with("the message event would be 80"),
            "{error}"
        );
    }

    #[test]
    fn bad_settings_name_the_channel_and_the_field() {
        let alias = adapter(
            "CLARION_TEST_MATRIX_BAD",
            TOKEN,
            json!({"homeserver": "https://m.test", "room_id": "#general:m.test"}),
        )
        .unwrap_err();
        assert_eq!(
            alias.to_string(),
            "channel `room` room_id: give the room id (starts with `!`, see Room settings > Advanced), not an alias"
        );
        let scheme = adapter(
            "CLARION_TEST_MATRIX_BAD",
            TOKEN,
            json!({"homeserver": "matrix.org"}),
        )
        .unwrap_err();
        assert!(
            scheme
                .to_string()
                .starts_with("channel `room` homeserver: not a URL"),
            "{scheme}"
        );
    }
}
