//! `webhook`: POSTs a JSON body to a URL with an `Idempotency-Key` header.
//! Covers Slack/Discord-style incoming webhooks and any automation tool.
//!
//! ```toml
//! [[channels]]
//! name = "team-webhook"
//! kind = "webhook"
//! url = "http://127.0.0.1:8787/hook"        # or: url_secret = { env = "SLACK_WEBHOOK_URL" }
//! format = "clarion"                        # clarion | slack | discord
//! idempotent = true                         # opt-in: YOUR receiver deduplicates on Idempotency-Key
//! idempotency_window_secs = 86400           # how long it remembers a key (default 24 h)
//! timeout_secs = 10
//! headers = { "X-Token" = { env = "HOOK_TOKEN" } }   # extra headers; values are secrets
//! ```
//!
//! `idempotent` defaults to false: Clarion cannot know that a receiver
//! deduplicates, and then a resend after an unknown outcome (timeout, crash)
//! could post twice, so such a post is reported `outcome_unknown` instead.
//! Set it only for a receiver you run that keeps each `Idempotency-Key` and
//! answers a repeat without acting again, for at least
//! `idempotency_window_secs`. Slack and Discord incoming webhooks ignore the
//! header, so `idempotent = true` with those formats is refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, PublishError, PublishReceipt,
    PublishRequest, Secret, SecretRef,
};
use serde::Deserialize;
use serde_json::json;

use crate::http::{classify_status, classify_transport};

/// The JSON shape the receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Clarion's own body: ids, text, campaign, idempotency key.
    #[default]
    Clarion,
    /// Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// Discord incoming webhook: `{"content": ...}` (2000 characters).
    Discord,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: Option<String>,
    url_secret: Option<SecretRef>,
    bearer_token: Option<SecretRef>,
    #[serde(default)]
    format: WebhookFormat,
    idempotent: Option<bool>,
    idempotency_window_secs: Option<u64>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    max_length: Option<usize>,
    markup: Option<Markup>,
    /// Extra request headers. Values are secrets (`{ env = "NAME" }` or
    /// `{ file = "path" }`): read at start, never printed, and never in the
    /// `channels` table, which keeps only these references.
    #[serde(default)]
    headers: BTreeMap<String, HeaderSecret>,
}

/// A header value: a [`SecretRef`]. A plain string is refused without
/// repeating it (serde's own message would quote the value).
#[derive(Debug)]
struct HeaderSecret(SecretRef);

impl<'de> Deserialize<'de> for HeaderSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom(
                "header values are secrets: write { env = \"NAME\" } or { file = \"path\" }, not the value",
            ));
        }
        SecretRef::deserialize(value)
            .map(Self)
            .map_err(D::Error::custom)
    }
}

/// How long a receiver that deduplicates is assumed to remember a key,
/// unless `idempotency_window_secs` says otherwise.
const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug)]
pub struct WebhookAdapter {
    client: reqwest::Client,
    url: Secret,
    bearer_token: Option<Secret>,
    format: WebhookFormat,
    idempotency: Idempotency,
    timeout: Duration,
    rule: LengthRule,
    markup: Markup,
    /// Extra headers, checked at start. Debug shows the names only.
    headers: Vec<(reqwest::header::HeaderName, Secret)>,
}

pub(crate) struct Factory {
    client: reqwest::Client,
}

impl Factory {
    pub(crate) fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let url = match (s.url, s.url_secret) {
            (Some(url), None) => Secret::new(url),
            (None, Some(secret)) => secret.resolve(&what("url_secret"))?,
            _ => {
                return Err(ConfigError::new(format!(
                    "{}: give exactly one of `url` or `url_secret`",
                    what("(webhook)")
                )));
            }
        };
        let mut parsed = reqwest::Url::parse(url.expose())
            .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("url"))))?;
        // Discord answers a webhook with the created message (its id) only
        // when asked with `?wait=true`; without it there is no receipt.
        let url = if s.format == WebhookFormat::Discord
            && !parsed.query_pairs().any(|(k, _)| k == "wait")
        {
            parsed.query_pairs_mut().append_pair("wait", "true");
            Secret::new(parsed.as_str())
        } else {
            url
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::new(format!(
                "{}: must be http or https",
                what("url")
            )));
        }
        if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
            return Err(ConfigError::new(format!(
                "{}: must be between 0 and 300 seconds",
                what("timeout_secs")
            )));
        }
        let idempotency = idempotency(
            &config.name,
            s.format,
            s.idempotent,
            s.idempotency_window_secs,
        )?;
        let default_max = match s.format {
            WebhookFormat::Discord => 2000,
            WebhookFormat::Slack => 40_000,
            WebhookFormat::Clarion => 100_000,
        };
        let bearer_token = s
            .bearer_token
            .map(|r| r.resolve(&what("bearer_token")))
            .transpose()?;
        let headers = s
            .headers
            .iter()
            .map(|(name, value)| {
                let field = what(&format!("headers.{name}"));
                let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ConfigError::new(format!("{field}: not a valid header name")))?;
                let value = value.0.resolve(&field)?;
                // Checked here so a bad value fails at start, not per post
                // (and the error never shows the value).
                reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
                    ConfigError::new(format!("{field}: the value is not a valid header value"))
                })?;
                Ok((header, value))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Arc::new(WebhookAdapter {
            client: self.client.clone(),
            url,
            bearer_token,
            format: s.format,
            idempotency,
            timeout: Duration::from_secs_f64(s.timeout_secs),
            rule: LengthRule::new(s.max_length.unwrap_or(default_max), LengthUnit::Chars),
            markup: s.markup.unwrap_or(Markup::Markdown),
            headers,
        }))
    }
}

/// What a resend is worth on this receiver. Only `format = "clarion"` may
/// claim deduplication, and only when the operator says so: Slack's and
/// Discord's incoming webhooks ignore `Idempotency-Key` (neither documents
/// any deduplication), so a resend there posts twice.
fn idempotency(
    channel: &str,
    format: WebhookFormat,
    idempotent: Option<bool>,
    window_secs: Option<u64>,
) -> Result<Idempotency, ConfigError> {
    let receiver = match format {
        WebhookFormat::Clarion => None,
        WebhookFormat::Slack => Some("Slack"),
        WebhookFormat::Discord => Some("Discord"),
    };
    match (idempotent.unwrap_or(false), receiver, window_secs) {
        (true, Some(receiver), _) => Err(ConfigError::new(format!(
            "channel `{channel}` idempotent: {receiver} incoming webhooks do not deduplicate on \
             Idempotency-Key, so a resend after a timeout or crash would post twice; remove \
             `idempotent = true` (such posts are then reported as outcome_unknown, never resent)"
        ))),
        (true, None, Some(0)) => Err(ConfigError::new(format!(
            "channel `{channel}` idempotency_window_secs: must be at least 1"
        ))),
        (true, None, window) => Ok(Idempotency::honoured_for(
            window.map_or(DEFAULT_IDEMPOTENCY_WINDOW, Duration::from_secs),
        )),
        (false, _, Some(_)) => Err(ConfigError::new(format!(
            "channel `{channel}` idempotency_window_secs: only applies with `idempotent = true`"
        ))),
        (false, _, None) => Ok(Idempotency::None),
    }
}

impl WebhookAdapter {
    fn body(&self, request: &PublishRequest<'_>) -> serde_json::Value {
        match self.format {
            WebhookFormat::Clarion => json!({
                "post_id": request.post_id,
                "target_id": request.target_id,
                "idempotency_key": request.idempotency_key,
                "text": request.post.text,
                "campaign": request.post.campaign,
                "reply_to": request.reply_to.map(|r| r.parent),
            }),
            WebhookFormat::Slack => json!({ "text": request.post.text }),
            WebhookFormat::Discord => json!({ "content": request.post.text }),
        }
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(method, self.url.expose())
            .timeout(self.timeout);
        for (name, value) in &self.headers {
            if let Ok(mut value) = reqwest::header::HeaderValue::from_str(value.expose()) {
                value.set_sensitive(true);
                builder = builder.header(name, value);
            }
        }
        if let Some(token) = &self.bearer_token {
            builder = builder.bearer_auth(token.expose());
        }
        builder
    }
}

#[async_trait]
impl ChannelAdapter for WebhookAdapter {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn length_rule(&self) -> LengthRule {
        self.rule
    }

    fn markup(&self) -> Markup {
        self.markup
    }

    fn idempotency(&self) -> Idempotency {
        self.idempotency
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let response = self
            .request(reqwest::Method::POST)
            .header("Idempotency-Key", request.idempotency_key)
            .json(&self.body(&request))
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(classify_transport)?;
        if !status.is_success() {
            return Err(classify_status(status, &headers, &body));
        }
        // Receivers that answer with JSON (Discord's `?wait=true`, automation
        // tools) give us an id and sometimes a URL; plain "ok" is fine too.
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let field = |k: &str| {
            value.get(k).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Ok(PublishReceipt {
            platform_post_id: field("id"),
            url: field("url"),
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }
}

impl WebhookAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    ///
    /// Webhooks have no "who am I" and a check must not post, so it asks
    /// HEAD, and when HEAD is not answered (405, 501, any other refusal)
    /// OPTIONS. What each answer means:
    /// - 2xx/3xx to HEAD, or 2xx to OPTIONS whose `Allow` (if any) lists
    ///   POST: ok;
    /// - 404/410: failed (the hook is gone); 401/403: failed (credentials
    ///   rejected); 5xx to both: failed (transient); OPTIONS whose `Allow`
    ///   lacks POST: failed;
    /// - anything else (405 or 501 to both, a 400 from a receiver that
    ///   only parses POSTs): a warning, not a pass: the URL answers, but
    ///   whether a POST would be accepted is unknown until one is sent.
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        let head = self.probe(reqwest::Method::HEAD).await?;
        if head.0.is_success() || head.0.is_redirection() {
            return Ok(ChannelCheck::ok(format!(
                "reachable (HEAD answered HTTP {})",
                head.0.as_u16()
            )));
        }
        refused(reqwest::Method::HEAD, head.0)?;
        let options = self.probe(reqwest::Method::OPTIONS).await?;
        refused(reqwest::Method::OPTIONS, options.0)?;
        let (h, o) = (head.0.as_u16(), options.0.as_u16());
        if options.0.is_success() {
            return match options.1 {
                Some(allow) if !allow.to_ascii_uppercase().contains("POST") => {
                    Err(PublishError::new(
                        ErrorClass::Permanent,
                        format!("webhook does not accept POST (OPTIONS answered Allow: {allow})"),
                    )
                    .with_status(o))
                }
                _ => Ok(ChannelCheck::ok(format!(
                    "reachable (OPTIONS answered HTTP {o}; HEAD answered HTTP {h})"
                ))),
            };
        }
        if head.0.is_server_error() && options.0.is_server_error() && h != 501 && o != 501 {
            return Err(PublishError::new(
                ErrorClass::Transient,
                format!("webhook answered HTTP {h} to HEAD and HTTP {o} to OPTIONS: the receiver is failing"),
            )
            .with_status(o));
        }
        Ok(ChannelCheck::warn(
            format!("reachable (HEAD answered HTTP {h}, OPTIONS HTTP {o})"),
            "it answers neither HEAD nor OPTIONS, so whether it accepts a POST is not known until a post is sent",
        ))
    }

    /// Status and `Allow` header of one bodiless request.
    async fn probe(
        &self,
        method: reqwest::Method,
    ) -> Result<(reqwest::StatusCode, Option<String>), PublishError> {
        let response = self
            .request(method)
            .send()
            .await
            .map_err(classify_transport)?;
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((response.status(), allow))
    }
}

/// A check answer that settles it: the hook is gone, or rejects us.
fn refused(method: reqwest::Method, status: reqwest::StatusCode) -> Result<(), PublishError> {
    let code = status.as_u16();
    match code {
        404 | 410 => Err(PublishError::new(
            ErrorClass::Permanent,
            format!("webhook answered HTTP {code} to {method}: it no longer exists"),
        )
        .with_status(code)),
        401 | 403 => Err(PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "webhook answered HTTP {code} to {method}: the configured credentials were rejected"
            ),
        )
        .with_status(code)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use clarion_core::OutboundPost;

    use super::*;

    type Seen = Arc<Mutex<Vec<(HeaderMap, serde_json::Value, Option<String>)>>>;

    /// A receiver whose answer is chosen by the request path.
    async fn receiver() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/{case}",
            axum::routing::post(move |axum::extract::Path(case): axum::extract::Path<String>, uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push((
                        headers,
                        serde_json::from_str(&body).unwrap_or_default(),
                        uri.query().map(str::to_owned),
                    ));
                    match case.as_str() {
                        "ok" => axum::Json(json!({"id": 1234, "url": "https://chat.test/m/1234"})).into_response(),
                        "plain" => "ok".into_response(),
                        "limited" => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("Retry-After", "3")],
                            axum::Json(json!({"message": "You are being rate limited.", "retry_after": 3.0, "global": false})),
                        )
                            .into_response(),
                        "invalid" => (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid Form Body", "code": 50035}))).into_response(),
                        "auth" => (StatusCode::UNAUTHORIZED, "invalid_token").into_response(),
                        "down" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        _ => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            "late".into_response()
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn adapter(settings: serde_json::Value) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let mut config = json!({"name": "hook", "kind": "webhook"});
        config
            .as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        Factory::new(reqwest::Client::new()).build(
            &serde_json::from_value(config).unwrap(),
            &AdapterContext::default(),
        )
    }

    async fn publish(adapter: &dyn ChannelAdapter) -> Result<PublishReceipt, PublishError> {
        let post = OutboundPost {
            text: "hello".into(),
            campaign: Some("spring".into()),
            media: vec![],
        };
        adapter
            .publish(PublishRequest {
                post: &post,
                idempotency_key: "key-1",
                reply_to: None,
                post_id: 7,
                target_id: 9,
                scheduled_at_ms: 1_764_158_400_000,
                budget: std::time::Duration::from_secs(30),
            })
            .await
    }

    #[tokio::test]
    async fn posts_json_with_the_idempotency_key_and_reads_the_receipt() {
        let (base, seen) = receiver().await;
        let receipt = publish(
            adapter(json!({"url": format!("{base}/ok")}))
                .unwrap()
                .as_ref(),
        )
        .await
        .unwrap();
        assert_eq!(receipt.platform_post_id.as_deref(), Some("1234"));
        assert_eq!(receipt.url.as_deref(), Some("https://chat.test/m/1234"));
        let (headers, body, _) = seen.lock().unwrap()[0].clone();
        assert_eq!(headers["idempotency-key"], "key-1");
        assert_eq!(
            body,
            json!({"post_id": 7, "target_id": 9, "idempotency_key": "key-1", "text": "hello", "campaign": "spring", "reply_to": null})
        );

        let discord = adapter(json!({"url": format!("{base}/ok"), "format": "discord"})).unwrap();
        assert_eq!(
            publish(discord.as_ref())
                .await
                .unwrap()
                .platform_post_id
                .as_deref(),
            Some("1234")
        );
        assert_eq!(seen.lock().unwrap()[1].1, json!({"content": "hello"}));
        assert_eq!(
            seen.lock().unwrap()[1].2.as_deref(),
            Some("wait=true"),
            "Discord is asked for the message"
        );

        let slack = adapter(json!({"url": format!("{base}/plain"), "format": "slack"})).unwrap();
        assert_eq!(
            publish(slack.as_ref()).await.unwrap(),
            PublishReceipt::default()
        );
        assert_eq!(seen.lock().unwrap()[2].1, json!({"text": "hello"}));
    }

    #[tokio::test]
    async fn error_answers_are_classified_with_the_platform_message() {
        let (base, _) = receiver().await;
        let fail = |case: &str| {
            let adapter =
                adapter(json!({"url": format!("{base}/{case}"), "timeout_secs": 0.3})).unwrap();
            async move { publish(adapter.as_ref()).await.unwrap_err() }
        };
        let limited = fail("limited").await;
        assert_eq!(limited.class, ErrorClass::RateLimited);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(limited.message, "HTTP 429: You are being rate limited.");
        let invalid = fail("invalid").await;
        assert_eq!(
            (invalid.class, invalid.message.as_str()),
            (ErrorClass::Permanent, "HTTP 400: Invalid Form Body")
        );
        assert_eq!(fail("auth").await.class, ErrorClass::AuthExpired);
        assert_eq!(fail("down").await.class, ErrorClass::Transient);
        assert_eq!(fail("slow").await.class, ErrorClass::OutcomeUnknown);
    }

    #[tokio::test]
    async fn a_secret_url_never_appears_in_errors() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // SAFETY: this test alone reads this variable.
        unsafe {
            std::env::set_var(
                "CLARION_TEST_HOOK_URL",
                format!("http://127.0.0.1:{port}/T000/SECRETTOKEN"),
            )
        };
        let adapter = adapter(json!({"url_secret": {"env": "CLARION_TEST_HOOK_URL"}})).unwrap();
        let error = publish(adapter.as_ref()).await.unwrap_err();
        assert_eq!(
            error.class,
            ErrorClass::Transient,
            "nothing was sent: {error}"
        );
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
        assert!(!format!("{adapter:?}").contains("SECRETTOKEN"));
    }

    #[tokio::test]
    async fn idempotency_is_opt_in_and_refused_where_the_receiver_cannot_deduplicate() {
        // Discord's incoming webhook (`?wait=true`) answers every POST with a
        // new message whatever the Idempotency-Key: a resend posts twice.
        let (base, seen) = receiver().await;
        let discord = adapter(json!({"url": format!("{base}/ok"), "format": "discord"})).unwrap();
        publish(discord.as_ref()).await.unwrap();
        publish(discord.as_ref()).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2, "the receiver kept both");
        assert_eq!(discord.idempotency(), Idempotency::None);

        let idempotency = |settings: serde_json::Value| {
            let mut all = json!({"url": "http://127.0.0.1:9/hook"});
            all.as_object_mut()
                .unwrap()
                .extend(settings.as_object().unwrap().clone());
            adapter(all).map(|a| a.idempotency())
        };
        // Unknown receivers are not trusted to deduplicate.
        assert_eq!(idempotency(json!({})).unwrap(), Idempotency::None);
        assert_eq!(
            idempotency(json!({"format": "slack"})).unwrap(),
            Idempotency::None
        );
        // Opted in: the operator's own receiver, a day by default.
        assert_eq!(
            idempotency(json!({"format": "clarion", "idempotent": true})).unwrap(),
            Idempotency::honoured_for(Duration::from_secs(86_400))
        );
        assert_eq!(
            idempotency(json!({"idempotent": true, "idempotency_window_secs": 600})).unwrap(),
            Idempotency::honoured_for(Duration::from_secs(600))
        );
        for (format, name) in [("slack", "Slack"), ("discord", "Discord")] {
            let refused = idempotency(json!({"format": format, "idempotent": true})).unwrap_err();
            assert!(
                refused.to_string().starts_with(&format!(
                    "channel `hook` idempotent: {name} incoming webhooks do not deduplicate on Idempotency-Key"
                )),
                "{refused}"
            );
        }
        let stray = idempotency(json!({"idempotency_window_secs": 600})).unwrap_err();
        assert_eq!(
            stray.to_string(),
            "channel `hook` idempotency_window_secs: only applies with `idempotent = true`"
        );
        let zero =
            idempotency(json!({"idempotent": true, "idempotency_window_secs": 0})).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "channel `hook` idempotency_window_secs: must be at least 1"
        );
    }

    #[tokio::test]
    async fn header_values_are_secrets_read_at_start_and_never_printed() {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("CLARION_TEST_WEBHOOK_HEADER", "hdr-s3cret") };
        let (base, seen) = receiver().await;
        let hook = adapter(json!({
            "url": format!("{base}/ok"),
            "headers": {"X-Token": {"env": "CLARION_TEST_WEBHOOK_HEADER"}},
        }))
        .unwrap();
        let debug = format!("{hook:?}");
        assert!(
            debug.contains("x-token") && !debug.contains("hdr-s3cret"),
            "{debug}"
        );
        publish(hook.as_ref()).await.unwrap();
        assert_eq!(seen.lock().unwrap()[0].0["x-token"], "hdr-s3cret");

        // A plain string is refused (it would sit in the config file and in
        // the `channels` table), without being repeated.
        let plain = adapter(json!({"url": "http://a/h", "headers": {"X-Token": "inline-s3cret"}}))
            .unwrap_err()
            .to_string();
        assert!(plain.contains("header values are secrets"), "{plain}");
        assert!(!plain.contains("inline-s3cret"), "{plain}");
        let missing = adapter(json!({
            "url": "http://a/h",
            "headers": {"X-Token": {"env": "CLARION_TEST_SURELY_UNSET_HEADER"}},
        }))
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "channel `hook` headers.X-Token: environment variable CLARION_TEST_SURELY_UNSET_HEADER is not set"
        );
        let bad_name = adapter(json!({
            "url": "http://a/h",
            "headers": {"Bad Name": {"env": "CLARION_TEST_WEBHOOK_HEADER"}},
        }))
        .unwrap_err();
        assert_eq!(
            bad_name.to_string(),
            "channel `hook` headers.Bad Name: not a valid header name"
        );
    }

    #[test]
    fn bad_settings_name_the_channel_and_the_field() {
        let both = adapter(json!({"url": "http://a", "url_secret": {"env": "X"}})).unwrap_err();
        assert_eq!(
            both.to_string(),
            "channel `hook` (webhook): give exactly one of `url` or `url_secret`"
        );
        let typo = adapter(json!({"url": "http://a", "timeout": 3})).unwrap_err();
        assert!(
            typo.to_string()
                .starts_with("channel `hook` (kind webhook): unknown field `timeout`"),
            "{typo}"
        );
        let scheme = adapter(json!({"url": "ftp://a"})).unwrap_err();
        assert_eq!(
            scheme.to_string(),
            "channel `hook` url: must be http or https"
        );
    }

    /// Receivers as they answer a check: per path, what HEAD and OPTIONS get.
    async fn check_receiver() -> String {
        use axum::routing::{any, get, post};
        let ok = || async { axum::Json(json!({"id": 1})) };
        let app = axum::Router::new()
            // A receiver that answers GET (and so HEAD).
            .route("/get", get(ok))
            // Only POST: HEAD and OPTIONS get 405.
            .route("/post-only", post(ok))
            // HEAD not implemented (501); OPTIONS lists POST.
            .route(
                "/options",
                post(ok)
                    .head(|| async { StatusCode::NOT_IMPLEMENTED })
                    .options(|| async { (StatusCode::NO_CONTENT, [("Allow", "POST, OPTIONS")]) }),
            )
            // OPTIONS says POST is not allowed.
            .route(
                "/read-only",
                any(|method: axum::http::Method| async move {
                    match method {
                        axum::http::Method::OPTIONS => {
                            (StatusCode::NO_CONTENT, [("Allow", "GET, OPTIONS")]).into_response()
                        }
                        _ => StatusCode::NOT_IMPLEMENTED.into_response(),
                    }
                }),
            )
            .route("/gone", any(|| async { StatusCode::GONE }))
            .route("/auth", any(|| async { StatusCode::FORBIDDEN }))
            .route("/down", any(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn check(base: &str, path: &str) -> Result<ChannelCheck, PublishError> {
        adapter(json!({"url": format!("{base}{path}")}))
            .unwrap()
            .check()
            .await
    }

    #[tokio::test]
    async fn a_check_passes_only_when_head_or_options_answers() {
        let base = check_receiver().await;
        let get = check(&base, "/get").await.unwrap();
        assert_eq!(get, ChannelCheck::ok("reachable (HEAD answered HTTP 200)"));

        // 501 to HEAD is not "ok": OPTIONS is asked, and it lists POST.
        let options = check(&base, "/options").await.unwrap();
        assert_eq!(
            options,
            ChannelCheck::ok("reachable (OPTIONS answered HTTP 204; HEAD answered HTTP 501)")
        );

        // Neither answered: a warning, not a pass.
        let unknown = check(&base, "/post-only").await.unwrap();
        assert_eq!(
            unknown.detail,
            "reachable (HEAD answered HTTP 405, OPTIONS HTTP 405)"
        );
        assert!(
            unknown
                .warning
                .as_deref()
                .is_some_and(|w| w.contains("not known until a post is sent")),
            "{unknown:?}"
        );

        let read_only = check(&base, "/read-only").await.unwrap_err();
        assert_eq!(read_only.class, ErrorClass::Permanent);
        assert_eq!(
            read_only.message,
            "webhook does not accept POST (OPTIONS answered Allow: GET, OPTIONS)"
        );
        let gone = check(&base, "/gone").await.unwrap_err();
        assert_eq!(
            (gone.class, gone.message.as_str()),
            (
                ErrorClass::Permanent,
                "webhook answered HTTP 410 to HEAD: it no longer exists"
            )
        );
        let auth = check(&base, "/auth").await.unwrap_err();
        assert_eq!(auth.class, ErrorClass::AuthExpired);
        let down = check(&base, "/down").await.unwrap_err();
        assert_eq!(down.class, ErrorClass::Transient);
        // Nothing listening: transient, never "outcome unknown".
        let closed = check("http://127.0.0.1:9", "/hook").await.unwrap_err();
        assert_eq!(closed.class, ErrorClass::Transient);
    }
}
