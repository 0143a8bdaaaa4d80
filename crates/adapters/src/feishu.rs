//! `feishu`: posts to a Feishu (飞书) or Lark group through a custom bot
//! (自定义机器人) webhook, `POST {base}/open-apis/bot/v2/hook/{token}`.
//!
//! ```toml
//! [[channels]]
//! name = "feishu"
//! kind = "feishu"
//! token = { env = "FEISHU_BOT_TOKEN" }      # the last part of the webhook URL, or the whole URL
//! secret = { env = "FEISHU_BOT_SECRET" }    # only with signature verification (签名校验) on
//! format = "post"                           # post | text | card
//! mention_users = ["ou_xxx"]                # open_ids (or user_ids) to @
//! # mention_all = true                      # @所有人 (the group must allow it)
//! # title = "Release notes"                 # the post title or card header
//! # base_url = "https://open.larksuite.com" # Lark; default https://open.feishu.cn
//! # timeout_secs = 10
//! ```
//!
//! What Feishu documents (open.feishu.cn, 自定义机器人使用指南):
//! - `post` is rich text: paragraphs of `text` (bold, italic and
//!   strikethrough as `style`), `a` and `at` elements, rendered here from
//!   the Markdown source; `text` is plain text with `<at user_id="…">`
//!   mentions; `card` is an interactive card with one markdown element.
//! - With signature verification on, the body carries `timestamp` (seconds)
//!   and `sign` = base64(HMAC-SHA256(key = timestamp + "\n" + secret, empty
//!   message)); a timestamp more than an hour off fails (code 19021).
//! - 100 messages per minute and 5 per second per bot, request body at most
//!   20 KB; code 11232 when throttled. The channel is paced to both, and
//!   `validate` measures the JSON body in bytes.
//! - Keywords (19024) and an IP allowlist (19022) are the other security
//!   settings: failing them is permanent, and the error says which.
//!
//! The bot answers no message id and does not deduplicate: a timeout or a
//! 5xx is `outcome_unknown`, never resent. There is no read-only call, so
//! `channels check` only reaches the host and warns that the token and
//! secret are verified by the first message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, MediaRule, OutboundPost, PublishError,
    PublishReceipt, PublishRequest, RateWindow, Secret, SecretRef, ValidationError,
};
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

use crate::group_robot::{self as robot, Dialect, Line, Reply};

#[cfg(test)]
mod tests;

const DEFAULT_BASE: &str = "https://open.feishu.cn";
/// The request body limit, "20 KB", counted as 20,000 bytes to stay clear
/// of it whichever way Feishu counts a kilobyte.
const BODY_LIMIT: usize = 20_000;
/// 5 messages per second per bot.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// 100 messages per minute per bot.
const WINDOW: RateWindow = RateWindow {
    max: 100,
    per: Duration::from_secs(60),
};
/// How long code 11232 pauses the channel: the minute the limit counts.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// What a card's markdown element renders (inline code only in newer
/// clients, so it stays plain).
const CARD_DIALECT: Dialect = Dialect {
    italic: true,
    strike: true,
    code: false,
    hard_breaks: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// Rich text (`msg_type = "post"`).
    #[default]
    Post,
    /// Plain text.
    Text,
    /// An interactive card with a markdown element.
    Card,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Post => "post",
            Format::Text => "text",
            Format::Card => "card",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    token: SecretRef,
    secret: Option<SecretRef>,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    mention_users: Vec<String>,
    #[serde(default)]
    mention_all: bool,
    title: Option<String>,
    base_url: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug)]
pub struct FeishuAdapter {
    client: reqwest::Client,
    base: Url,
    token: Secret,
    /// The signature secret, when the bot verifies signatures.
    secret: Option<Secret>,
    format: Format,
    mention_users: Vec<String>,
    mention_all: bool,
    title: Option<String>,
    timeout: Duration,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let (token, origin) = robot::credential(
            s.token.resolve(&what("token"))?,
            &what("token"),
            "token",
            |url| {
                let segments: Vec<&str> = url.path_segments()?.collect();
                let hook = segments.iter().position(|s| *s == "hook")?;
                segments.get(hook + 1).map(|s| (*s).to_owned())
            },
        )?;
        let secret = s.secret.map(|r| r.resolve(&what("secret"))).transpose()?;
        let base = robot::base_url(
            s.base_url.as_deref().or(origin.as_deref()),
            DEFAULT_BASE,
            &what("base_url"),
        )?;
        let timeout = robot::timeout(s.timeout_secs, &what("timeout_secs"))?;
        robot::check_ids(&s.mention_users, &what("mention_users"))?;
        if s.mention_users.iter().any(|u| u == "all") {
            return Err(ConfigError::new(format!(
                "{}: to @ everyone set `mention_all = true`",
                what("mention_users")
            )));
        }
        let title = s
            .title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if title.is_some() && s.format == Format::Text {
            return Err(ConfigError::new(format!(
                "{}: a Feishu text message has no title; use format = \"post\" or \"card\"",
                what("title")
            )));
        }
        Ok(Arc::new(FeishuAdapter {
            client: crate::http_client(),
            base,
            token,
            secret,
            format: s.format,
            mention_users: s.mention_users,
            mention_all: s.mention_all,
            title,
            timeout,
        }))
    }
}

/// `sign` for `timestamp` (seconds): base64 of HMAC-SHA256 keyed by
/// `timestamp + "\n" + secret` over an empty message.
fn sign(secret: &str, timestamp: i64) -> String {
    robot::hmac_sha256_base64(format!("{timestamp}\n{secret}").as_bytes(), b"")
}

/// A `post` paragraph element for one run.
fn element(run: &robot::Run) -> serde_json::Value {
    let mut element = match &run.href {
        Some(href) => json!({"tag": "a", "text": run.text, "href": href}),
        None => json!({"tag": "text", "text": run.text}),
    };
    let style: Vec<&str> = [
        (run.marks.bold, "bold"),
        (run.marks.italic, "italic"),
        (run.marks.strike, "lineThrough"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !style.is_empty() {
        element["style"] = json!(style);
    }
    element
}

/// The lines as `post` paragraphs (a quote keeps its `> `; a blank line is
/// an empty text element, which Feishu shows as an empty line).
fn paragraphs(lines: &[Line]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| {
            let mut elements = Vec::new();
            if line.quote > 0 {
                elements.push(json!({"tag": "text", "text": "> ".repeat(line.quote)}));
            }
            elements.extend(line.runs.iter().map(element));
            if elements.is_empty() {
                elements.push(json!({"tag": "text", "text": ""}));
            }
            serde_json::Value::Array(elements)
        })
        .collect()
}

impl FeishuAdapter {
    /// The message body, unsigned.
    fn body(&self, markdown: &str) -> serde_json::Value {
        match self.format {
            Format::Text => {
                let mut text = robot::plain(markdown);
                let mut tags: Vec<String> = self
                    .mention_users
                    .iter()
                    .map(|u| format!("<at user_id=\"{u}\"></at>"))
                    .collect();
                if self.mention_all {
                    tags.push("<at user_id=\"all\">所有人</at>".to_owned());
                }
                if !tags.is_empty() {
                    text.push('\n');
                    text.push_str(&tags.join(" "));
                }
                json!({"msg_type": "text", "content": {"text": text}})
            }
            Format::Post => {
                let mut content = paragraphs(&robot::lines(markdown));
                let mut ats: Vec<serde_json::Value> = self
                    .mention_users
                    .iter()
                    .map(|u| json!({"tag": "at", "user_id": u}))
                    .collect();
                if self.mention_all {
                    ats.push(json!({"tag": "at", "user_id": "all"}));
                }
                if !ats.is_empty() {
                    content.push(serde_json::Value::Array(ats));
                }
                let mut post = json!({ "content": content });
                if let Some(title) = &self.title {
                    post["title"] = json!(title);
                }
                json!({"msg_type": "post", "content": {"post": {"zh_cn": post}}})
            }
            Format::Card => {
                let mut content = robot::render(&robot::lines(markdown), CARD_DIALECT);
                let mut tags: Vec<String> = self
                    .mention_users
                    .iter()
                    .map(|u| format!("<at id={u}></at>"))
                    .collect();
                if self.mention_all {
                    tags.push("<at id=all></at>".to_owned());
                }
                if !tags.is_empty() {
                    content.push('\n');
                    content.push_str(&tags.join(" "));
                }
                let mut card = json!({
                    "config": {"wide_screen_mode": true},
                    "elements": [{"tag": "markdown", "content": content}],
                });
                if let Some(title) = &self.title {
                    card["header"] = json!({"title": {"tag": "plain_text", "content": title}});
                }
                json!({"msg_type": "interactive", "card": card})
            }
        }
    }

    /// Adds `timestamp` and `sign` when the bot verifies signatures.
    fn signed(&self, mut body: serde_json::Value, timestamp: i64) -> serde_json::Value {
        if let Some(secret) = &self.secret {
            body["timestamp"] = json!(timestamp.to_string());
            body["sign"] = json!(sign(secret.expose(), timestamp));
        }
        body
    }

    /// `{base}/open-apis/bot/v2/hook/{token}`. Holds the token: never logged.
    fn url(&self) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["open-apis", "bot", "v2", "hook", self.token.expose()]);
        }
        url
    }

    fn redacted(&self, mut error: PublishError) -> PublishError {
        let mut secrets = vec![&self.token];
        secrets.extend(&self.secret);
        error.message = robot::redact(error.message, &secrets);
        error
    }

    /// Feishu's answer: `{"code": 0, "msg": "success", "data": {}}` (older
    /// bots: `{"StatusCode": 0, ...}`), or an error code.
    fn answer(&self, reply: &Reply) -> Result<(), PublishError> {
        #[derive(Deserialize)]
        struct Answer {
            code: Option<i64>,
            msg: Option<String>,
            #[serde(rename = "StatusCode")]
            status_code: Option<i64>,
            #[serde(rename = "StatusMessage")]
            status_message: Option<String>,
        }
        let status = reply.status.as_u16();
        let parsed = serde_json::from_str::<Answer>(&reply.body)
            .ok()
            .and_then(|a| {
                let code = a.code.or(a.status_code)?;
                Some((code, a.msg.or(a.status_message).unwrap_or_default()))
            });
        match parsed {
            Some((0, _)) if reply.status.is_success() => Ok(()),
            Some((code, msg)) if code != 0 => {
                Err(classify(code, &msg, self.secret.is_some()).with_status(status))
            }
            _ if !reply.status.is_success() => {
                Err(robot::http_failure("Feishu", reply, RATE_LIMIT_WAIT))
            }
            _ => Err(robot::unreadable("Feishu", reply)),
        }
    }
}

/// A Feishu code as an error class, with the platform's words.
fn classify(code: i64, msg: &str, signed: bool) -> PublishError {
    let msg = robot::short(msg);
    let throttled = |what: &str| {
        PublishError::new(
            ErrorClass::RateLimited,
            format!(
                "Feishu code {code}, {what} (a custom bot sends at most 100 messages a minute and \
                 5 a second; Feishu also throttles around the hour and half hour): {msg}"
            ),
        )
        .with_retry_after(Some(RATE_LIMIT_WAIT))
    };
    match code {
        11232 => throttled("throttled"),
        9499 if msg.to_ascii_lowercase().contains("too many") => throttled("too many requests"),
        19021 if signed => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "Feishu code 19021, the signature was rejected: check `secret` (the bot's \
                 signature verification secret) and this machine's clock (the timestamp must be \
                 within an hour): {msg}"
            ),
        ),
        19021 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "Feishu code 19021, the bot has signature verification turned on: set `secret` to \
                 its secret: {msg}"
            ),
        ),
        19001 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "Feishu code 19001, the webhook token was rejected: check `token` (was the bot \
                 removed from the group?): {msg}"
            ),
        ),
        19022 => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "Feishu code 19022, this machine's IP address is not on the bot's IP allowlist \
                 (security settings, IP 白名单): add it there or remove the allowlist: {msg}"
            ),
        ),
        19024 => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "Feishu code 19024, the message contains none of the bot's custom keywords \
                 (security settings, 自定义关键词): put one in the post or its template, or remove \
                 the keyword setting: {msg}"
            ),
        ),
        9499 => PublishError::new(
            ErrorClass::Permanent,
            format!("Feishu code 9499, the request was refused as malformed: {msg}"),
        ),
        _ => PublishError::new(ErrorClass::Permanent, format!("Feishu code {code}: {msg}")),
    }
}

#[async_trait]
impl ChannelAdapter for FeishuAdapter {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    /// Feishu limits the request body to 20 KB, a unit [`LengthRule`] does
    /// not have: this is the limit as characters, which no longer text can
    /// meet, and [`Self::validate`] measures the JSON body in bytes.
    fn length_rule(&self) -> LengthRule {
        LengthRule::new(BODY_LIMIT, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        // Rendered here into rich text, a card's markdown, or plain text.
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // A bot message has no id and no deduplication.
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        // Images need an `image_key` from the app upload API, which a custom
        // bot cannot call.
        MediaRule::NONE
    }

    fn min_interval(&self) -> Option<Duration> {
        Some(MIN_INTERVAL)
    }

    fn rate_window(&self) -> Option<RateWindow> {
        Some(WINDOW)
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.media_rule().check(&post.media)?;
        if post.text.trim().is_empty() {
            return Err(ValidationError::new("a Feishu message needs text"));
        }
        // Signed as it will be (a timestamp has 10 digits until 2286).
        let body = self.signed(self.body(&post.text), 1_000_000_000);
        let bytes = body.to_string().len();
        if bytes > BODY_LIMIT {
            return Err(ValidationError::new(format!(
                "the message is {bytes} bytes of JSON as a Feishu {} message; the limit is \
                 {BODY_LIMIT} bytes (Feishu counts the request body in bytes: a Chinese character \
                 takes 3, and rich text adds markup)",
                self.format.name()
            )));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        if request.post.text.trim().is_empty() {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                "a Feishu message needs text",
            ));
        }
        let body = self.signed(
            self.body(&request.post.text),
            chrono::Utc::now().timestamp(),
        );
        let reply = robot::post_json(&self.client, self.url(), &body, self.timeout)
            .await
            .map_err(|e| self.redacted(e))?;
        self.answer(&reply).map_err(|e| self.redacted(e))?;
        // The bot answers no message id.
        Ok(PublishReceipt::default())
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let status = robot::probe(&self.client, &self.base, self.timeout).await?;
        Ok(ChannelCheck::warn(
            format!(
                "{} reachable (HEAD answered HTTP {status}); {} messages, {}",
                robot::host(&self.base),
                self.format.name(),
                if self.secret.is_some() {
                    "signed"
                } else {
                    "unsigned"
                }
            ),
            "a Feishu custom bot has no read-only call, so its token (and signature secret) are \
             verified only when a message is sent (code 19001 or 19021 if wrong)",
        ))
    }
}
