//! `dingtalk`: posts to a DingTalk (钉钉) group through a custom robot
//! (自定义机器人) webhook,
//! `POST {base}/robot/send?access_token=…[&timestamp=…&sign=…]`.
//!
//! ```toml
//! [[channels]]
//! name = "dingtalk"
//! kind = "dingtalk"
//! access_token = { env = "DINGTALK_ACCESS_TOKEN" }  # the access_token= of the webhook URL, or the whole URL
//! secret = { env = "DINGTALK_SECRET" }              # the SEC… string, only with 加签 (signing) on
//! format = "markdown"                               # markdown | text | link | action_card
//! mention_mobiles = ["13800001111"]                 # phone numbers to @
//! # mention_user_ids = ["manager1234"]              # or user ids
//! # mention_all = true                              # @所有人
//! # title = "Clarion"                               # notification title (default: the first line)
//! # button_title = "阅读全文"                        # the action_card button
//! # base_url = "https://oapi.dingtalk.com"
//! # timeout_secs = 10
//! ```
//!
//! What DingTalk documents (open.dingtalk.com, 自定义机器人发送群消息):
//! - `markdown` has a `title` (shown in the notification and the chat
//!   list) and a `text` in DingTalk's Markdown (headings, bold, italics,
//!   links, quotes, lists); a single newline breaks a line only after two
//!   spaces, which the rendering adds. `text` is plain; `link` and
//!   `actionCard` are cards that open a URL (here: the post's first link; a
//!   post without a link goes out as markdown).
//! - @: `at.atMobiles`, `at.atUserIds`, `at.isAtAll`; the @ shows where the
//!   text says `@13800001111`, so the mentioned numbers and ids are added to
//!   the end of the text.
//! - With 加签 on, the URL carries `timestamp` (milliseconds) and
//!   `sign` = urlencode(base64(HMAC-SHA256(key = secret, message =
//!   timestamp + "\n" + secret))); a timestamp more than an hour off fails.
//! - 20 messages per minute per robot; more is errcode 130101 and blocks the
//!   robot for 10 minutes. The channel is paced below it, to 18 a minute.
//! - Security settings: custom keywords, 加签, an IP allowlist. A message
//!   failing one is errcode 310000; the error names which and what to change.
//!
//! Text longer than 20,000 bytes of UTF-8 is refused by `validate` (the
//! limit DingTalk enforces in practice; it counts bytes, so Chinese text
//! reaches it at a third of the characters). The robot answers no message
//! id and does not deduplicate: a timeout or a 5xx is `outcome_unknown`,
//! never resent. There is no read-only call, so `channels check` only
//! reaches the host and warns that the token is verified by the first
//! message.

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

use crate::group_robot::{self as robot, Dialect, Reply};

#[cfg(test)]
mod tests;

const DEFAULT_BASE: &str = "https://oapi.dingtalk.com";
/// Text and markdown content, in bytes of UTF-8.
const TEXT_LIMIT: usize = 20_000;
/// Titles are cut to this many bytes (never inside a character).
const TITLE_LIMIT: usize = 128;
/// 20 messages per minute per robot, and a 10-minute block beyond that:
/// paced below it.
const WINDOW: RateWindow = RateWindow {
    max: 18,
    per: Duration::from_secs(60),
};
/// How long errcode 130101 pauses the channel: the robot's 10-minute block.
const BLOCKED_FOR: Duration = Duration::from_secs(10 * 60);
/// How long an HTTP 429 without `Retry-After` pauses the channel.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// DingTalk's Markdown: bold, italics, links, quotes, lists; a newline
/// breaks a line after two spaces.
const DIALECT: Dialect = Dialect {
    italic: true,
    strike: false,
    code: false,
    hard_breaks: true,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    #[default]
    Markdown,
    Text,
    /// A link card: title, text, the first link, its picture.
    Link,
    /// A card with the markdown and one button to the first link.
    ActionCard,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Link => "link",
            Format::ActionCard => "action_card",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    access_token: SecretRef,
    secret: Option<SecretRef>,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    mention_mobiles: Vec<String>,
    #[serde(default)]
    mention_user_ids: Vec<String>,
    #[serde(default)]
    mention_all: bool,
    title: Option<String>,
    button_title: Option<String>,
    base_url: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug)]
pub struct DingtalkAdapter {
    client: reqwest::Client,
    base: Url,
    access_token: Secret,
    /// The 加签 secret, when the robot verifies signatures.
    secret: Option<Secret>,
    format: Format,
    mention_mobiles: Vec<String>,
    mention_user_ids: Vec<String>,
    mention_all: bool,
    title: Option<String>,
    button_title: String,
    timeout: Duration,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let (access_token, origin) = robot::credential(
            s.access_token.resolve(&what("access_token"))?,
            &what("access_token"),
            "access_token",
            |url| robot::query_value(url, "access_token"),
        )?;
        let secret = s.secret.map(|r| r.resolve(&what("secret"))).transpose()?;
        let base = robot::base_url(
            s.base_url.as_deref().or(origin.as_deref()),
            DEFAULT_BASE,
            &what("base_url"),
        )?;
        let timeout = robot::timeout(s.timeout_secs, &what("timeout_secs"))?;
        robot::check_ids(&s.mention_user_ids, &what("mention_user_ids"))?;
        if let Some(bad) = s.mention_mobiles.iter().find(|m| {
            m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
        }) {
            return Err(ConfigError::new(format!(
                "{}: `{bad}` is not a phone number",
                what("mention_mobiles")
            )));
        }
        let mentions =
            !s.mention_mobiles.is_empty() || !s.mention_user_ids.is_empty() || s.mention_all;
        if mentions && matches!(s.format, Format::Link | Format::ActionCard) {
            return Err(ConfigError::new(format!(
                "{}: DingTalk {} cards cannot @ anyone; remove the mention settings or use \
                 format = \"markdown\" or \"text\"",
                what("format"),
                s.format.name()
            )));
        }
        if s.button_title.is_some() && s.format != Format::ActionCard {
            return Err(ConfigError::new(format!(
                "{}: only applies with format = \"action_card\"",
                what("button_title")
            )));
        }
        Ok(Arc::new(DingtalkAdapter {
            client: crate::http_client(),
            base,
            access_token,
            secret,
            format: s.format,
            mention_mobiles: s.mention_mobiles,
            mention_user_ids: s.mention_user_ids,
            mention_all: s.mention_all,
            title: s
                .title
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
            button_title: s
                .button_title
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "阅读全文".to_owned()),
            timeout,
        }))
    }
}

/// `sign` for `timestamp` (milliseconds), before URL encoding: base64 of
/// HMAC-SHA256 keyed by the secret over `timestamp + "\n" + secret`.
fn sign(secret: &str, timestamp: i64) -> String {
    robot::hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp}\n{secret}").as_bytes(),
    )
}

/// A text message ready to send, and its content counted in bytes.
struct Outgoing {
    body: serde_json::Value,
    /// `(bytes, msgtype)` of the content DingTalk limits.
    limited: Option<(usize, &'static str)>,
}

impl DingtalkAdapter {
    /// The notification title: the configured one, or the first line.
    fn title(&self, plain: &str) -> String {
        let title = match &self.title {
            Some(title) => title.clone(),
            None => robot::title_and_rest(plain).0,
        };
        robot::truncate_bytes(&title, TITLE_LIMIT)
    }

    /// `@13800001111 @manager1234`: where the mentions show.
    fn mention_line(&self) -> Option<String> {
        let names: Vec<String> = self
            .mention_mobiles
            .iter()
            .chain(&self.mention_user_ids)
            .map(|m| format!("@{m}"))
            .collect();
        (!names.is_empty()).then(|| names.join(" "))
    }

    /// `at`, for text and markdown messages with mentions.
    fn at(&self) -> Option<serde_json::Value> {
        let any = !self.mention_mobiles.is_empty()
            || !self.mention_user_ids.is_empty()
            || self.mention_all;
        any.then(|| {
            json!({
                "atMobiles": self.mention_mobiles,
                "atUserIds": self.mention_user_ids,
                "isAtAll": self.mention_all,
            })
        })
    }

    fn message(&self, markdown: &str) -> Outgoing {
        let lines = robot::lines(markdown);
        let plain = robot::plain(markdown);
        let link = robot::first_link(&lines);
        let mut out = match (self.format, link) {
            (Format::Link, Some(url)) => {
                let (title, rest) = robot::title_and_rest(&plain);
                let text = if rest.is_empty() { title } else { rest };
                return Outgoing {
                    body: json!({"msgtype": "link", "link": {
                        "title": self.title(&plain),
                        "text": text,
                        "messageUrl": url,
                        "picUrl": robot::first_image_link(&lines).unwrap_or_default(),
                    }}),
                    limited: Some((text.len(), "link")),
                };
            }
            (Format::ActionCard, Some(url)) => {
                let text = robot::render(&lines, DIALECT);
                return Outgoing {
                    limited: Some((text.len(), "actionCard")),
                    body: json!({"msgtype": "actionCard", "actionCard": {
                        "title": self.title(&plain),
                        "text": text,
                        "singleTitle": self.button_title,
                        "singleURL": url,
                    }}),
                };
            }
            (Format::Text, _) => {
                let mut content = plain;
                if let Some(line) = self.mention_line() {
                    content.push('\n');
                    content.push_str(&line);
                }
                Outgoing {
                    limited: Some((content.len(), "text")),
                    body: json!({"msgtype": "text", "text": {"content": content}}),
                }
            }
            // Markdown, and cards for a post without a link.
            _ => {
                let mut text = robot::render(&lines, DIALECT);
                if let Some(line) = self.mention_line() {
                    text.push_str("\n\n");
                    text.push_str(&line);
                }
                Outgoing {
                    limited: Some((text.len(), "markdown")),
                    body: json!({"msgtype": "markdown", "markdown": {
                        "title": self.title(&plain),
                        "text": text,
                    }}),
                }
            }
        };
        if let Some(at) = self.at() {
            out.body["at"] = at;
        }
        out
    }

    /// `{base}/robot/send?access_token=…[&timestamp=…&sign=…]`. Holds the
    /// token: never logged. `append_pair` URL-encodes the base64 signature
    /// (`+`, `/`, `=`), the "urlencode" step of DingTalk's recipe.
    fn url(&self, timestamp: i64) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["robot", "send"]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("access_token", self.access_token.expose());
            if let Some(secret) = &self.secret {
                query.append_pair("timestamp", &timestamp.to_string());
                query.append_pair("sign", &sign(secret.expose(), timestamp));
            }
        }
        url
    }

    fn redacted(&self, mut error: PublishError) -> PublishError {
        let mut secrets = vec![&self.access_token];
        secrets.extend(&self.secret);
        error.message = robot::redact(error.message, &secrets);
        error
    }

    /// DingTalk's answer: `{"errcode": 0, "errmsg": "ok"}`, or an error code.
    fn answer(&self, reply: &Reply) -> Result<(), PublishError> {
        #[derive(Deserialize)]
        struct Answer {
            errcode: i64,
            #[serde(default)]
            errmsg: String,
        }
        let status = reply.status.as_u16();
        match serde_json::from_str::<Answer>(&reply.body) {
            Ok(a) if a.errcode == 0 && reply.status.is_success() => Ok(()),
            Ok(a) if a.errcode != 0 => {
                Err(classify(a.errcode, &a.errmsg, self.secret.is_some()).with_status(status))
            }
            _ if !reply.status.is_success() => {
                Err(robot::http_failure("DingTalk", reply, RATE_LIMIT_WAIT))
            }
            _ => Err(robot::unreadable("DingTalk", reply)),
        }
    }
}

/// What a robot's security settings are, for errors about them.
const SECURITY: &str = "a DingTalk robot checks each message against the security settings chosen \
                        when it was added: custom keywords (the message must contain one), 加签 \
                        (signing: set `secret`), and an IP allowlist (this machine's public IP)";

/// An errcode as an error class, with the platform's words.
fn classify(code: i64, errmsg: &str, signed: bool) -> PublishError {
    let msg = robot::short(errmsg);
    let lower = msg.to_ascii_lowercase();
    match code {
        130101 => PublishError::new(
            ErrorClass::RateLimited,
            format!(
                "DingTalk errcode 130101, too many messages: a robot may send 20 a minute, and \
                 DingTalk blocks it for 10 minutes after more: {msg}"
            ),
        )
        .with_retry_after(Some(BLOCKED_FOR)),
        310000 if lower.contains("keyword") => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "DingTalk errcode 310000, the message contains none of the robot's custom \
                 keywords: put one in the post or its template, or change the robot's security \
                 settings: {msg}"
            ),
        ),
        310000 if lower.contains("whitelist") || lower.starts_with("ip ") => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "DingTalk errcode 310000, this machine's IP address is not on the robot's IP \
                 allowlist: add its public IP (or range) in the robot's security settings: {msg}"
            ),
        ),
        310000 if (lower.contains("sign") || lower.contains("timestamp")) && signed => {
            PublishError::new(
                ErrorClass::AuthExpired,
                format!(
                    "DingTalk errcode 310000, the signature was rejected: check `secret` (the \
                     SEC… string under 加签) and this machine's clock (the timestamp must be \
                     within an hour): {msg}"
                ),
            )
        }
        310000 if lower.contains("sign") || lower.contains("timestamp") => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "DingTalk errcode 310000, the robot has 加签 (signing) turned on: set `secret` to \
                 its SEC… string: {msg}"
            ),
        ),
        310000 => PublishError::new(
            ErrorClass::Permanent,
            format!("DingTalk errcode 310000, a security check failed ({SECURITY}): {msg}"),
        ),
        300001 | 300005 | 400013 | 400101 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "DingTalk errcode {code}, the robot's access token was rejected: check \
                 `access_token` (was the robot removed, or the group dissolved?): {msg}"
            ),
        ),
        -1 => PublishError::new(
            ErrorClass::Transient,
            format!("DingTalk errcode -1, system busy: {msg}"),
        ),
        _ => PublishError::new(
            ErrorClass::Permanent,
            format!("DingTalk errcode {code}: {msg}"),
        ),
    }
}

#[async_trait]
impl ChannelAdapter for DingtalkAdapter {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    /// DingTalk counts bytes of UTF-8, a unit [`LengthRule`] does not have:
    /// this is the limit as characters, which no longer text can meet, and
    /// [`Self::validate`] counts the bytes of what is sent.
    fn length_rule(&self) -> LengthRule {
        LengthRule::new(TEXT_LIMIT, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        // Rendered here into DingTalk's dialect (or plain text).
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // A robot message has no id and no deduplication.
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        // Custom robots cannot upload files; an image is a link in the text.
        MediaRule::NONE
    }

    fn rate_window(&self) -> Option<RateWindow> {
        Some(WINDOW)
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.media_rule().check(&post.media)?;
        if post.text.trim().is_empty() {
            return Err(ValidationError::new("a DingTalk message needs text"));
        }
        if let Some((bytes, msgtype)) = self.message(&post.text).limited
            && bytes > TEXT_LIMIT
        {
            return Err(ValidationError::new(format!(
                "text is {bytes} bytes long in UTF-8 as a DingTalk {msgtype} message; the limit is \
                 {TEXT_LIMIT} bytes (DingTalk counts bytes, not characters: a Chinese character \
                 takes 3)"
            )));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        if request.post.text.trim().is_empty() {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                "a DingTalk message needs text",
            ));
        }
        let body = self.message(&request.post.text).body;
        let url = self.url(chrono::Utc::now().timestamp_millis());
        let reply = robot::post_json(&self.client, url, &body, self.timeout)
            .await
            .map_err(|e| self.redacted(e))?;
        self.answer(&reply).map_err(|e| self.redacted(e))?;
        // The robot answers no message id.
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
            "a DingTalk custom robot has no read-only call, so its access token (and 加签 secret) \
             are verified only when a message is sent (errcode 300001 or 310000 if wrong)",
        ))
    }
}
