//! `webhook`: POSTs a JSON body to a URL with an `Idempotency-Key` header.
//! Covers Slack/Discord-style incoming webhooks and any automation tool.
//!
//! ```toml
//! [[channels]]
//! name = "team-webhook"
//! kind = "webhook"
//! url = "http://127.0.0.1:8787/hook"        # or: url_secret = { env = "SLACK_WEBHOOK_URL" }
//! format = "clarion"                        # clarion | slack | discord
//! idempotent = true                         # the receiver deduplicates on Idempotency-Key
//! timeout_secs = 10
//! ```

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
    #[serde(default = "default_true")]
    idempotent: bool,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    max_length: Option<usize>,
    markup: Option<Markup>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug)]
pub struct WebhookAdapter {
    client: reqwest::Client,
    url: Secret,
    bearer_token: Option<Secret>,
    format: WebhookFormat,
    idempotent: bool,
    timeout: Duration,
    rule: LengthRule,
    markup: Markup,
    headers: BTreeMap<String, String>,
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
        let default_max = match s.format {
            WebhookFormat::Discord => 2000,
            WebhookFormat::Slack => 40_000,
            WebhookFormat::Clarion => 100_000,
        };
        let bearer_token = s
            .bearer_token
            .map(|r| r.resolve(&what("bearer_token")))
            .transpose()?;
        Ok(Arc::new(WebhookAdapter {
            client: self.client.clone(),
            url,
            bearer_token,
            format: s.format,
            idempotent: s.idempotent,
            timeout: Duration::from_secs_f64(s.timeout_secs),
            rule: LengthRule::new(s.max_length.unwrap_or(default_max), LengthUnit::Chars),
            markup: s.markup.unwrap_or(Markup::Markdown),
            headers: s.headers,
        }))
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
            builder = builder.header(name, value);
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
        if self.idempotent {
            Idempotency::Honoured
        } else {
            Idempotency::None
        }
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
        // Webhooks have no "who am I": any HTTP answer proves the URL is
        // reachable without posting anything.
        let response = self
            .request(reqwest::Method::HEAD)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!(
                    "webhook answered HTTP {}: it no longer exists",
                    status.as_u16()
                ),
            ));
        }
        Ok(ChannelCheck {
            detail: format!("reachable (HEAD answered HTTP {})", status.as_u16()),
        })
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
}
