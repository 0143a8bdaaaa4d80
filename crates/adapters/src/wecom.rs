//! `wecom`: posts to a WeCom (企业微信) group through a group robot
//! (群机器人) webhook, `POST {base}/cgi-bin/webhook/send?key=KEY`.
//!
//! ```toml
//! [[channels]]
//! name = "wecom"
//! kind = "wecom"
//! key = { env = "WECOM_ROBOT_KEY" }   # the `key=` of the robot's webhook URL, or the whole URL
//! format = "markdown"                 # markdown | text | news
//! mention_users = ["zhangsan"]        # userids to @ (text and markdown)
//! # mention_mobiles = ["13800001111"] # phone numbers to @ (text only)
//! # mention_all = true                # @all (text only)
//! # base_url = "https://qyapi.weixin.qq.com"
//! # timeout_secs = 10
//! ```
//!
//! What WeCom documents (developer.work.weixin.qq.com/document/path/91770):
//! - `text` content is at most 2,048 bytes of UTF-8 and `markdown` content
//!   4,096: bytes, not characters, so Chinese text reaches the limit at a
//!   third of the characters. `validate` counts the bytes of exactly what is
//!   sent (after rendering, mentions included) and says so.
//! - Markdown is a subset: headings, bold, links, inline code, quotes (and
//!   `<font color>`, which a post cannot inject: see [`robot::neutralize`]).
//!   Italics and strikethrough are dropped, their text kept.
//! - @: `text` takes `mentioned_list` (userids, `@all`) and
//!   `mentioned_mobile_list`; `markdown` only `<@userid>` in the content.
//! - `image` carries the file as base64 plus the MD5 of its bytes, JPG or
//!   PNG up to 2 MB; `news` is a link card (title, description, url, picurl).
//! - 20 messages per minute per robot; beyond that errcode 45009. The
//!   channel is paced to it ([`ChannelAdapter::rate_window`]), and a 45009
//!   pauses it for a minute.
//!
//! A post with text and an image is two robot messages: the text, recorded
//! as sent (in the adapter store) before the image goes out, so a retry
//! after the image failed never repeats the text. The robot answers no
//! message id, and nothing deduplicates a resend: a timeout or a 5xx is
//! `outcome_unknown`, never resent. There is no read-only call either, so
//! `channels check` only reaches the host and warns that the key is verified
//! by the first message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, Media, MediaRule,
    OutboundPost, PublishError, PublishReceipt, PublishRequest, RateWindow, Secret, SecretRef,
    ValidationError,
};
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

#[cfg(test)]
mod tests;

use crate::group_robot::{self as robot, Dialect, Reply};

const DEFAULT_BASE: &str = "https://qyapi.weixin.qq.com";
/// `text.content`, in bytes of UTF-8.
const TEXT_LIMIT: usize = 2048;
/// `markdown.content`, in bytes of UTF-8.
const MARKDOWN_LIMIT: usize = 4096;
/// News card title and description, in bytes (WeCom cuts longer ones
/// itself; Clarion cuts them first, never inside a character).
const NEWS_TITLE_LIMIT: usize = 128;
const NEWS_DESCRIPTION_LIMIT: usize = 512;
/// `image`: JPG or PNG, at most 2 MB before base64.
const IMAGE_LIMIT: u64 = 2 * 1024 * 1024;
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg"];
/// 20 messages per minute per robot.
const WINDOW: RateWindow = RateWindow {
    max: 20,
    per: Duration::from_secs(60),
};
/// How long errcode 45009 pauses the channel: the minute the limit counts.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// What WeCom's markdown renders: bold, links, inline code, quotes.
const DIALECT: Dialect = Dialect {
    italic: false,
    strike: false,
    code: true,
    hard_breaks: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// WeCom's Markdown subset, 4,096 bytes.
    #[default]
    Markdown,
    /// Plain text (Markdown marks removed), 2,048 bytes; all mentions.
    Text,
    /// A link card for posts with a link (title: the first line,
    /// description: the rest, url: the first link, picture: the first link
    /// to an image file); a post without a link goes out as markdown.
    News,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::News => "news",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    key: SecretRef,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    mention_users: Vec<String>,
    #[serde(default)]
    mention_mobiles: Vec<String>,
    #[serde(default)]
    mention_all: bool,
    base_url: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

fn default_timeout() -> f64 {
    10.0
}

/// Sends one robot message. Cloned into the task that sends the text of a
/// text-and-image post and records it.
#[derive(Debug, Clone)]
struct Sender {
    client: reqwest::Client,
    base: Url,
    key: Secret,
    timeout: Duration,
}

#[derive(Debug)]
pub struct WecomAdapter {
    channel: String,
    sender: Sender,
    format: Format,
    mention_users: Vec<String>,
    mention_mobiles: Vec<String>,
    mention_all: bool,
    /// Where "the text of this post went out" is recorded.
    state: Arc<dyn AdapterStore>,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let (key, origin) =
            robot::credential(s.key.resolve(&what("key"))?, &what("key"), "key", |url| {
                robot::query_value(url, "key")
            })?;
        let base = robot::base_url(
            s.base_url.as_deref().or(origin.as_deref()),
            DEFAULT_BASE,
            &what("base_url"),
        )?;
        let timeout = robot::timeout(s.timeout_secs, &what("timeout_secs"))?;
        robot::check_ids(&s.mention_users, &what("mention_users"))?;
        if s.mention_users.iter().any(|u| u == "@all") {
            return Err(ConfigError::new(format!(
                "{}: to @ everyone set `mention_all = true` (format = \"text\")",
                what("mention_users")
            )));
        }
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
            !s.mention_users.is_empty() || !s.mention_mobiles.is_empty() || s.mention_all;
        match s.format {
            Format::Markdown if !s.mention_mobiles.is_empty() || s.mention_all => {
                return Err(ConfigError::new(format!(
                    "{}: WeCom markdown messages can @ people only by userid (`mention_users`); \
                     `mention_mobiles` and `mention_all` need format = \"text\"",
                    what("format")
                )));
            }
            Format::News if mentions => {
                return Err(ConfigError::new(format!(
                    "{}: a WeCom news card cannot @ anyone; remove the mention settings or use \
                     format = \"text\" or \"markdown\"",
                    what("format")
                )));
            }
            _ => {}
        }
        Ok(Arc::new(WecomAdapter {
            channel: config.name.clone(),
            sender: Sender {
                client: crate::http_client(),
                base,
                key,
                timeout,
            },
            format: s.format,
            mention_users: s.mention_users,
            mention_mobiles: s.mention_mobiles,
            mention_all: s.mention_all,
            state: context.state.clone(),
        }))
    }
}

/// A text message ready to send: its JSON, and the content WeCom limits.
struct Outgoing {
    body: serde_json::Value,
    /// `(bytes, limit, msgtype)` of a content counted in bytes.
    limited: Option<(usize, usize, &'static str)>,
}

impl WecomAdapter {
    /// The post's text as the configured message type.
    fn message(&self, markdown: &str) -> Outgoing {
        let lines = robot::lines(markdown);
        if self.format == Format::News
            && let Some(url) = robot::first_link(&lines)
        {
            let (title, description) = robot::title_and_rest(&robot::plain(markdown));
            let mut article = json!({
                "title": robot::truncate_bytes(&title, NEWS_TITLE_LIMIT),
                "url": url,
            });
            if !description.is_empty() {
                article["description"] =
                    json!(robot::truncate_bytes(&description, NEWS_DESCRIPTION_LIMIT));
            }
            if let Some(picture) = robot::first_image_link(&lines) {
                article["picurl"] = json!(picture);
            }
            return Outgoing {
                body: json!({"msgtype": "news", "news": {"articles": [article]}}),
                limited: None,
            };
        }
        if self.format == Format::Text {
            let content = robot::plain(markdown);
            let mut text = json!({ "content": content });
            let mut users = self.mention_users.clone();
            if self.mention_all {
                users.push("@all".to_owned());
            }
            if !users.is_empty() {
                text["mentioned_list"] = json!(users);
            }
            if !self.mention_mobiles.is_empty() {
                text["mentioned_mobile_list"] = json!(self.mention_mobiles);
            }
            return Outgoing {
                limited: Some((content.len(), TEXT_LIMIT, "text")),
                body: json!({"msgtype": "text", "text": text}),
            };
        }
        let mut content = robot::render(&lines, DIALECT);
        if !self.mention_users.is_empty() {
            let tags: Vec<String> = self
                .mention_users
                .iter()
                .map(|u| format!("<@{u}>"))
                .collect();
            content.push('\n');
            content.push_str(&tags.join(" "));
        }
        Outgoing {
            limited: Some((content.len(), MARKDOWN_LIMIT, "markdown")),
            body: json!({"msgtype": "markdown", "markdown": {"content": content}}),
        }
    }

    /// Sends the text of a text-and-image post unless an earlier attempt
    /// did. The send and its record run as one task, so a publish cancelled
    /// by the scheduler's timeout cannot fall between the two.
    async fn send_text_once(
        &self,
        body: serde_json::Value,
        idempotency_key: &str,
    ) -> Result<(), PublishError> {
        let scope = format!("{}/text-sent", self.channel);
        let sent = self
            .state
            .load(&scope, idempotency_key)
            .await
            .map_err(|e| {
                // Without the record a send might repeat the text.
                PublishError::new(ErrorClass::Transient, e.to_string())
            })?;
        if sent.is_some() {
            return Ok(());
        }
        let sender = self.sender.clone();
        let state = self.state.clone();
        let name = idempotency_key.to_owned();
        let task = tokio::spawn(async move {
            sender.send(&body).await?;
            state
                .save(&scope, &name, &Secret::new("sent"))
                .await
                .map_err(|e| {
                    PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        format!("the text went out but could not be recorded ({e}); a retry could send it again"),
                    )
                })
        });
        task.await.unwrap_or_else(|e| {
            Err(PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!("sending the text stopped: {e}"),
            ))
        })
    }
}

/// An `image` message: the file as base64 and the MD5 of its bytes.
async fn image_body(media: &Media) -> Result<serde_json::Value, PublishError> {
    use base64::Engine;
    use md5::Digest;
    let shown = media.path.display();
    let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
        PublishError::new(ErrorClass::Permanent, format!("cannot read {shown}: {e}"))
    })?;
    if bytes.len() as u64 > IMAGE_LIMIT {
        return Err(PublishError::new(
            ErrorClass::Permanent,
            format!(
                "{shown}: {} bytes; WeCom takes images up to {IMAGE_LIMIT} bytes (2 MB)",
                bytes.len()
            ),
        ));
    }
    let md5: String = md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(json!({
        "msgtype": "image",
        "image": {
            "base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "md5": md5,
        },
    }))
}

impl Sender {
    /// `{base}/cgi-bin/webhook/send?key=KEY`. Holds the key: never logged.
    fn url(&self) -> Url {
        let mut url = self.base.clone();
        url.set_path("/cgi-bin/webhook/send");
        url.query_pairs_mut().append_pair("key", self.key.expose());
        url
    }

    async fn send(&self, body: &serde_json::Value) -> Result<(), PublishError> {
        let reply = robot::post_json(&self.client, self.url(), body, self.timeout)
            .await
            .map_err(|e| self.redacted(e))?;
        answer(&reply).map_err(|e| self.redacted(e))
    }

    fn redacted(&self, mut error: PublishError) -> PublishError {
        error.message = robot::redact(error.message, &[&self.key]);
        error
    }
}

/// WeCom's answer: `{"errcode": 0, "errmsg": "ok"}`, or an error code.
fn answer(reply: &Reply) -> Result<(), PublishError> {
    #[derive(Deserialize)]
    struct Answer {
        errcode: i64,
        #[serde(default)]
        errmsg: String,
    }
    let status = reply.status.as_u16();
    match serde_json::from_str::<Answer>(&reply.body) {
        Ok(a) if a.errcode == 0 && reply.status.is_success() => Ok(()),
        Ok(a) if a.errcode != 0 => Err(classify(a.errcode, &a.errmsg).with_status(status)),
        _ if !reply.status.is_success() => {
            Err(robot::http_failure("WeCom", reply, RATE_LIMIT_WAIT))
        }
        _ => Err(robot::unreadable("WeCom", reply)),
    }
}

/// An errcode as an error class, with the platform's words.
fn classify(code: i64, errmsg: &str) -> PublishError {
    let msg = robot::short(errmsg);
    match code {
        45009 => PublishError::new(
            ErrorClass::RateLimited,
            format!(
                "WeCom errcode 45009, too many messages (a robot sends at most 20 a minute): {msg}"
            ),
        )
        .with_retry_after(Some(RATE_LIMIT_WAIT)),
        93000 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "WeCom errcode 93000, the robot's webhook key was rejected: check `key` (was the \
                 robot removed from the group?): {msg}"
            ),
        ),
        -1 => PublishError::new(
            ErrorClass::Transient,
            format!("WeCom errcode -1, system busy: {msg}"),
        ),
        _ => PublishError::new(
            ErrorClass::Permanent,
            format!("WeCom errcode {code}: {msg}"),
        ),
    }
}

#[async_trait]
impl ChannelAdapter for WecomAdapter {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    /// WeCom counts bytes of UTF-8, a unit [`LengthRule`] does not have:
    /// this is the limit as characters, which no longer text can meet (a
    /// character is at least one byte), and [`Self::validate`] counts the
    /// bytes of what is sent.
    fn length_rule(&self) -> LengthRule {
        let max = match self.format {
            Format::Text => TEXT_LIMIT,
            Format::Markdown | Format::News => MARKDOWN_LIMIT,
        };
        LengthRule::new(max, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        // Rendered here into WeCom's dialect (or plain text).
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // A robot message has no id and no deduplication.
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        MediaRule {
            max_count: 1,
            max_bytes: IMAGE_LIMIT,
            mime_types: IMAGE_TYPES,
        }
    }

    fn rate_window(&self) -> Option<RateWindow> {
        Some(WINDOW)
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.media_rule().check(&post.media)?;
        if post.text.trim().is_empty() {
            if post.media.is_empty() {
                return Err(ValidationError::new(
                    "a WeCom message needs text or an image",
                ));
            }
            return Ok(());
        }
        if let Some((bytes, limit, msgtype)) = self.message(&post.text).limited
            && bytes > limit
        {
            return Err(ValidationError::new(format!(
                "text is {bytes} bytes long in UTF-8 as a WeCom {msgtype} message; the limit is \
                 {limit} bytes (WeCom counts bytes, not characters: a Chinese character takes 3)"
            )));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let post = request.post;
        // The file is read first: a missing one fails before anything is sent.
        let image = match post.media.first() {
            Some(media) => Some(image_body(media).await?),
            None => None,
        };
        let text = (!post.text.trim().is_empty()).then(|| self.message(&post.text).body);
        match (text, image) {
            (Some(text), None) => self.sender.send(&text).await?,
            (None, Some(image)) => self.sender.send(&image).await?,
            (Some(text), Some(image)) => {
                self.send_text_once(text, request.idempotency_key).await?;
                self.sender.send(&image).await.map_err(|mut e| {
                    e.message = format!(
                        "the text went out (a retry will not send it again) but the image did not: {}",
                        e.message
                    );
                    e
                })?;
            }
            (None, None) => {
                return Err(PublishError::new(
                    ErrorClass::Permanent,
                    "a WeCom message needs text or an image",
                ));
            }
        }
        // The robot answers no message id.
        Ok(PublishReceipt::default())
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let base = &self.sender.base;
        let status = robot::probe(&self.sender.client, base, self.sender.timeout).await?;
        Ok(ChannelCheck::warn(
            format!(
                "{} reachable (HEAD answered HTTP {status}); {} messages",
                robot::host(base),
                self.format.name()
            ),
            "a WeCom group robot has no read-only call, so its key is verified only when a \
             message is sent (a wrong or removed key fails with errcode 93000)",
        ))
    }
}
