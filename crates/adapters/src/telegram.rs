//! `telegram`: posts as a bot to a channel, group or forum topic through the
//! Bot API, with teloxide's client.
//!
//! ```toml
//! [[channels]]
//! name = "announcements"
//! kind = "telegram"
//! bot_token = { env = "TELEGRAM_BOT_TOKEN" }   # from @BotFather
//! chat_id = "@clarion_news"                    # or the numeric id, e.g. -1001234567890
//! # message_thread_id = 42                     # a forum topic
//! # topics = true                              # a forum supergroup used as the chat bridge:
//!                                              # one topic per conversation
//! parse_mode = "html"                          # html | markdownv2 | plain
//! disable_link_preview = false
//! timeout_secs = 20
//! # api_url = "http://127.0.0.1:8081/"         # a local Bot API server (or a test fake)
//! ```
//!
//! The Bot API has no idempotency key, so any answer that does not prove the
//! message was refused is `outcome_unknown` (parked, never resent): a
//! timeout, a reset, and a 5xx too, since Telegram or a proxy in front of it
//! may fail after the message was already sent. Only a connection that was
//! never opened is `transient`.
//!
//! teloxide does not retry, with one exception worth knowing: on an HTTP 5xx
//! it sleeps 10 s before reading the answer. With `timeout_secs` under about
//! 10 that read then times out, which is `outcome_unknown` as well.
//!
//! Replies: a plain parent id (`"42"`) is a message of the configured chat
//! (thread parts, and engagements there). A parent `"<chat id>/<message id>"`
//! (what the listener reports for messages in any other chat: DMs, groups,
//! the channel's discussion group) sends the reply into that chat, and the
//! receipt id is qualified the same way. See [`listen`] for listening.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, Media, MediaRule,
    OutboundPost, PublishError, PublishReceipt, PublishRequest, SecretRef, StartedThread,
    ThreadStyle, ValidationError,
};
use serde::Deserialize;
use teloxide::payloads::{SendMessageSetters, SendPhotoSetters};
use teloxide::requests::Requester;
use teloxide::types::{
    ChatId, InputFile, LinkPreviewOptions, Message, MessageId, ParseMode, Recipient,
    ReplyParameters, ThreadId,
};
use teloxide::{ApiError, Bot, RequestError};

mod listen;

/// `sendMessage` text limit, in UTF-16 code units after entity parsing.
const TEXT_LIMIT: usize = 4096;
/// `sendPhoto` caption limit, same unit.
const CAPTION_LIMIT: usize = 1024;
/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ParseModeSetting {
    /// Clarion renders Markdown to HTML (b, i, a, code; `&<>` escaped): a
    /// subset Telegram's HTML mode takes as is.
    #[default]
    Html,
    /// The text is escaped for MarkdownV2 and shows exactly as written.
    MarkdownV2,
    /// No parse mode: Telegram shows the text as is.
    Plain,
}

/// A chat as people write it: a numeric id (integer or string) or `@username`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChatSetting {
    Id(i64),
    Text(String),
}

impl ChatSetting {
    fn recipient(self, what: &str) -> Result<Recipient, ConfigError> {
        match self {
            ChatSetting::Id(id) => Ok(Recipient::Id(ChatId(id))),
            ChatSetting::Text(text) => {
                let text = text.trim();
                if let Ok(id) = text.parse::<i64>() {
                    return Ok(Recipient::Id(ChatId(id)));
                }
                let name = text.strip_prefix('@').unwrap_or_default();
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    Ok(Recipient::ChannelUsername(text.to_owned()))
                } else {
                    Err(ConfigError::new(format!(
                        "{what}: give a numeric chat id (e.g. -1001234567890) or a public @username"
                    )))
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    bot_token: SecretRef,
    chat_id: ChatSetting,
    message_thread_id: Option<i32>,
    #[serde(default)]
    parse_mode: ParseModeSetting,
    #[serde(default)]
    disable_link_preview: bool,
    api_url: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// The chat is a forum supergroup in which the bot may open topics
    /// (admin with `can_manage_topics`): the chat bridge opens one topic per
    /// conversation there (`start_thread`).
    #[serde(default)]
    topics: bool,
    /// Webhook mode for listening: Telegram pushes updates to
    /// `POST /hooks/<channel>` with this in `X-Telegram-Bot-Api-Secret-Token`
    /// (set it with `setWebhook {url, secret_token}`); getUpdates is not used.
    webhook_secret: Option<SecretRef>,
}

fn default_timeout() -> f64 {
    20.0
}

pub struct TelegramAdapter {
    /// Holds the token; never formatted (teloxide's `Debug` would print it).
    bot: Bot,
    chat: Recipient,
    thread: Option<ThreadId>,
    parse_mode: ParseModeSetting,
    disable_link_preview: bool,
    /// The per-request timeout the client carries (the listener's long poll
    /// adds it to the time Telegram holds the request).
    timeout: Duration,
    /// Set in webhook mode (see `Settings::webhook_secret`); never formatted.
    webhook_secret: Option<clarion_core::Secret>,
    /// See `Settings::topics`.
    topics: bool,
}

impl std::fmt::Debug for TelegramAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramAdapter")
            .field("api_url", &self.bot.api_url().as_str())
            .field("chat", &self.chat.to_string())
            .field("thread", &self.thread.map(|t| t.0.0))
            .field("parse_mode", &self.parse_mode)
            .field("disable_link_preview", &self.disable_link_preview)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "telegram"
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
fn configure(config: &ChannelConfig) -> Result<TelegramAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let token = s.bot_token.resolve(&what("bot_token"))?;
    // A token is `<bot id>:<secret>`; checking the shape here turns a
    // pasted chat id or username into a config error instead of a 404.
    let valid_token = token.expose().split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.chars().all(|c| c.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !valid_token {
        return Err(ConfigError::new(format!(
            "{}: is not a Telegram bot token (expected `123456:ABC-...` from @BotFather)",
            what("bot_token")
        )));
    }
    let chat = s.chat_id.recipient(&what("chat_id"))?;
    let thread = match s.message_thread_id {
        None => None,
        Some(id) if id > 0 => Some(ThreadId(MessageId(id))),
        Some(_) => {
            return Err(ConfigError::new(format!(
                "{}: must be a positive topic id",
                what("message_thread_id")
            )));
        }
    };
    if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 0 and 300 seconds",
            what("timeout_secs")
        )));
    }
    let timeout = Duration::from_secs_f64(s.timeout_secs);
    // teloxide takes no per-request timeout, so the client carries it.
    let client = reqwest::Client::builder()
        .user_agent(concat!("clarion/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build()
        .map_err(|e| {
            ConfigError::new(format!(
                "{}: cannot build an HTTP client: {e}",
                what("(telegram)")
            ))
        })?;
    let mut bot = Bot::with_client(token.expose(), client);
    if let Some(api_url) = s.api_url {
        let url = reqwest::Url::parse(&api_url)
            .map_err(|e| ConfigError::new(format!("{}: not a URL: {e}", what("api_url"))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(format!(
                "{}: must be http or https",
                what("api_url")
            )));
        }
        bot = bot.set_api_url(url);
    }
    let webhook_secret = match &s.webhook_secret {
        None => None,
        Some(secret) => {
            let secret = secret.resolve(&what("webhook_secret"))?;
            // Telegram's rule for `secret_token`: 1-256 of A-Z a-z 0-9 _ -.
            let value = secret.expose();
            if value.is_empty()
                || value.len() > 256
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::new(format!(
                    "{}: must be 1-256 characters of A-Z, a-z, 0-9, _ and -",
                    what("webhook_secret")
                )));
            }
            Some(secret)
        }
    };
    Ok(TelegramAdapter {
        bot,
        chat,
        thread,
        parse_mode: s.parse_mode,
        disable_link_preview: s.disable_link_preview,
        timeout,
        webhook_secret,
        topics: s.topics,
    })
}

/// Escapes every MarkdownV2 special character (`_*[]()~`>#+-=|{}.!` and `\`),
/// so the text shows exactly as written. Clarion's Markdown is not translated
/// into MarkdownV2 entities: a half-translated `*` or `_` is a 400 "can't
/// parse entities" at send time, while escaped text always goes out. Use
/// `parse_mode = "html"` for bold, italics and links.
fn escape_markdown_v2(text: &str) -> String {
    teloxide::utils::markdown::escape(text)
}

impl TelegramAdapter {
    fn text(&self, text: &str) -> String {
        match self.parse_mode {
            ParseModeSetting::MarkdownV2 => escape_markdown_v2(text),
            ParseModeSetting::Html | ParseModeSetting::Plain => text.to_owned(),
        }
    }

    fn parse_mode(&self) -> Option<ParseMode> {
        match self.parse_mode {
            ParseModeSetting::Html => Some(ParseMode::Html),
            ParseModeSetting::MarkdownV2 => Some(ParseMode::MarkdownV2),
            ParseModeSetting::Plain => None,
        }
    }

    fn token(&self) -> &str {
        self.bot.token()
    }

    /// The configured chat (and topic), or another chat a reply goes into.
    fn destination(&self, other_chat: Option<ChatId>) -> Destination {
        match other_chat {
            Some(chat) if !self.is_chat(chat) => Destination {
                chat: Recipient::Id(chat),
                // The configured topic belongs to the configured chat. In a
                // forum, Telegram puts a reply into the replied-to message's topic.
                thread: None,
                qualify: Some(chat),
            },
            _ => Destination {
                chat: self.chat.clone(),
                thread: self.thread,
                qualify: None,
            },
        }
    }

    /// Whether `chat` is the configured chat, when that is given by id.
    fn is_chat(&self, chat: ChatId) -> bool {
        matches!(&self.chat, Recipient::Id(id) if *id == chat)
    }

    async fn send_text(
        &self,
        to: &Destination,
        text: String,
        reply: Option<ReplyParameters>,
    ) -> Result<PublishReceipt, PublishError> {
        let mut request = self.bot.send_message(to.chat.clone(), text);
        if let Some(mode) = self.parse_mode() {
            request = request.parse_mode(mode);
        }
        if self.disable_link_preview {
            request = request.link_preview_options(LinkPreviewOptions {
                is_disabled: true,
                url: None,
                prefer_small_media: false,
                prefer_large_media: false,
                show_above_text: false,
            });
        }
        if let Some(thread) = to.thread {
            request = request.message_thread_id(thread);
        }
        if let Some(reply) = reply {
            request = request.reply_parameters(reply);
        }
        outcome(request.await, self.token()).map(|r| to.receipt(r))
    }

    async fn send_photo(
        &self,
        to: &Destination,
        media: &Media,
        caption: String,
        reply: Option<ReplyParameters>,
    ) -> Result<PublishReceipt, PublishError> {
        // Read here rather than with `InputFile::file`, so a missing file is
        // a clear permanent error before anything goes out.
        let data = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(
                ErrorClass::Permanent,
                format!("cannot read {}: {e}", media.path.display()),
            )
        })?;
        let name = media
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".to_owned());
        let mut request = self
            .bot
            .send_photo(to.chat.clone(), InputFile::memory(data).file_name(name));
        if !caption.is_empty() {
            request = request.caption(caption);
            if let Some(mode) = self.parse_mode() {
                request = request.parse_mode(mode);
            }
        }
        if let Some(thread) = to.thread {
            request = request.message_thread_id(thread);
        }
        if let Some(reply) = reply {
            request = request.reply_parameters(reply);
        }
        outcome(request.await, self.token()).map(|r| to.receipt(r))
    }
}

/// Where one message goes.
struct Destination {
    chat: Recipient,
    thread: Option<ThreadId>,
    /// Another chat than the configured one: receipts name it (`chat/message`).
    qualify: Option<ChatId>,
}

impl Destination {
    fn receipt(&self, mut receipt: PublishReceipt) -> PublishReceipt {
        if let (Some(chat), Some(id)) = (self.qualify, receipt.platform_post_id.as_mut()) {
            *id = format!("{}/{id}", chat.0);
        }
        receipt
    }
}

/// A reply parent: a plain message id of the configured chat, or
/// `"<chat id>/<message id>"` for a message of another chat.
fn parse_parent(parent: &str) -> Option<(Option<ChatId>, MessageId)> {
    let message = |id: &str| id.parse::<i32>().ok().filter(|id| *id > 0).map(MessageId);
    match parent.split_once('/') {
        None => Some((None, message(parent)?)),
        Some((chat, id)) => Some((Some(ChatId(chat.parse::<i64>().ok()?)), message(id)?)),
    }
}

/// The receipt for a sent message: its id, and a link where one exists
/// (public channels and supergroups by username, private ones by `t.me/c/`).
fn receipt(
    message_id: i32,
    chat_id: i64,
    username: Option<&str>,
    channel_like: bool,
) -> PublishReceipt {
    let url = if !channel_like {
        None
    } else if let Some(username) = username {
        Some(format!("https://t.me/{username}/{message_id}"))
    } else {
        chat_id
            .to_string()
            .strip_prefix("-100")
            .map(|internal| format!("https://t.me/c/{internal}/{message_id}"))
    };
    PublishReceipt {
        platform_post_id: Some(message_id.to_string()),
        url,
    }
}

fn receipt_of(message: &Message) -> PublishReceipt {
    let chat = &message.chat;
    receipt(
        message.id.0,
        chat.id.0,
        chat.username(),
        chat.is_channel() || chat.is_supergroup(),
    )
}

/// The result of one send. A message that Telegram accepted but teloxide
/// could not decode (a new field shape) was still posted: its id is read from
/// the raw answer instead of reporting a failure that a retry would turn
/// into a duplicate.
fn outcome(
    result: Result<Message, RequestError>,
    token: &str,
) -> Result<PublishReceipt, PublishError> {
    match result {
        Ok(message) => Ok(receipt_of(&message)),
        Err(RequestError::InvalidJson { raw, source }) => match raw_receipt(&raw) {
            Some(receipt) => {
                tracing::warn!(error = %source, "Telegram accepted the message; its answer only partly decoded");
                Ok(receipt)
            }
            None => Err(classify(RequestError::InvalidJson { raw, source }, token)),
        },
        Err(error) => Err(classify(error, token)),
    }
}

fn raw_receipt(raw: &str) -> Option<PublishReceipt> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    if value.get("ok")?.as_bool()? {
        let result = value.get("result")?;
        let id = i32::try_from(result.get("message_id")?.as_i64()?).ok()?;
        let chat = result.get("chat");
        let chat_id = chat
            .and_then(|c| c.get("id"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let username = chat
            .and_then(|c| c.get("username"))
            .and_then(serde_json::Value::as_str);
        let kind = chat
            .and_then(|c| c.get("type"))
            .and_then(serde_json::Value::as_str);
        Some(receipt(
            id,
            chat_id,
            username,
            matches!(kind, Some("channel" | "supergroup")),
        ))
    } else {
        None
    }
}

/// Maps a teloxide error onto Clarion's classes, keeping Telegram's own
/// description. teloxide drops `error_code`, so classes follow the
/// description (which is what teloxide parses `ApiError` from).
fn classify(error: RequestError, token: &str) -> PublishError {
    let error = match error {
        RequestError::RetryAfter(wait) => PublishError::new(
            ErrorClass::RateLimited,
            format!("Too Many Requests: retry after {}", wait.seconds()),
        )
        .with_status(429)
        .with_retry_after(Some(wait.duration())),
        RequestError::MigrateToChatId(id) => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "the group was upgraded to a supergroup: set chat_id = {}",
                id.0
            ),
        ),
        RequestError::Api(api) => classify_api(api),
        RequestError::Network(e) => classify_network(&e),
        RequestError::InvalidJson { raw, .. } => classify_unreadable(&raw),
        RequestError::Io(e) => PublishError::new(
            ErrorClass::Permanent,
            format!("cannot read the upload: {e}"),
        ),
    };
    redact(error, token)
}

fn classify_api(api: ApiError) -> PublishError {
    match api {
        // Telegram answers "Unauthorized" (401) for a revoked token and
        // "Not Found" (404) for a malformed one; teloxide folds both here.
        ApiError::InvalidToken => PublishError::new(
            ErrorClass::AuthExpired,
            "Unauthorized: the bot token was rejected (revoked or wrong)",
        )
        .with_status(401),
        ApiError::Unknown(description) => {
            let class = if description.starts_with("Too Many Requests") {
                ErrorClass::RateLimited
            } else if is_server_error(&description) {
                // The send may have gone through before the server failed,
                // and a resend cannot be deduplicated.
                ErrorClass::OutcomeUnknown
            } else {
                ErrorClass::Permanent
            };
            PublishError::new(class, truncate(&description))
        }
        // Every other known description (chat not found, bot blocked or
        // kicked, not enough rights, text empty or too long, ...) is about
        // this request or this chat: retrying cannot help. Their `Display` is
        // Telegram's description.
        other => PublishError::new(ErrorClass::Permanent, truncate(&other.to_string())),
    }
}

/// Descriptions Telegram (or its front end) gives with a 5xx.
fn is_server_error(description: &str) -> bool {
    [
        "Internal Server Error",
        "Bad Gateway",
        "Service Unavailable",
        "Gateway Timeout",
    ]
    .iter()
    .any(|s| description.starts_with(s))
}

fn classify_network(error: &reqwest::Error) -> PublishError {
    // The URL holds the token, so the message is built from the causes only.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let detail = if causes.is_empty() {
        "network error".to_owned()
    } else {
        causes.join(": ")
    };
    if error.is_connect() {
        PublishError::new(
            ErrorClass::Transient,
            format!("could not connect: {detail}"),
        )
    } else if error.is_timeout() {
        PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!("timed out waiting for Telegram: {detail}"),
        )
    } else {
        PublishError::new(ErrorClass::OutcomeUnknown, detail)
    }
}

/// An answer teloxide could not decode. It may have posted (a 5xx may come
/// after the send, a proxy may have forwarded the request), so the outcome
/// is unknown; a JSON error keeps Telegram's description and code.
fn classify_unreadable(raw: &str) -> PublishError {
    let value: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    let code = value.get("error_code").and_then(serde_json::Value::as_u64);
    let description = value.get("description").and_then(serde_json::Value::as_str);
    match (
        value.get("ok").and_then(serde_json::Value::as_bool),
        code,
        description,
    ) {
        (Some(false), Some(code @ 500..=599), description) => PublishError::new(
            ErrorClass::OutcomeUnknown,
            truncate(description.unwrap_or("server error")),
        )
        .with_status(code as u16),
        _ => PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!("unreadable answer from Telegram: {}", truncate(raw.trim())),
        ),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_MESSAGE).collect()
}

/// Belt and braces: no error text leaves with the token in it.
fn redact(mut error: PublishError, token: &str) -> PublishError {
    if !token.is_empty() && error.message.contains(token) {
        error.message = error.message.replace(token, "<token>");
    }
    error
}

#[async_trait]
impl ChannelAdapter for TelegramAdapter {
    fn kind(&self) -> &'static str {
        "telegram"
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(TEXT_LIMIT, LengthUnit::Utf16)
    }

    fn markup(&self) -> Markup {
        match self.parse_mode {
            ParseModeSetting::Html => Markup::Html,
            ParseModeSetting::MarkdownV2 => Markup::Markdown,
            ParseModeSetting::Plain => Markup::Plain,
        }
    }

    fn idempotency(&self) -> Idempotency {
        // The Bot API has no idempotency key or nonce: a resend after an
        // unknown outcome may post twice, so such targets are parked.
        Idempotency::None
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        MediaRule {
            // One photo per message (sendPhoto); albums (sendMediaGroup)
            // are not supported yet.
            max_count: 1,
            // Bot API upload limit for photos.
            max_bytes: 10 * 1024 * 1024,
            mime_types: MediaRule::IMAGES,
        }
    }

    fn min_interval(&self) -> Option<Duration> {
        // Telegram allows about one message per second per chat (and 20 per
        // minute in groups, ~30/s across all chats); a little over a second
        // keeps a channel's schedule out of flood control.
        Some(Duration::from_millis(1050))
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        if post.media.is_empty() {
            if post.text.trim().is_empty() {
                return Err(ValidationError::new(
                    "a Telegram message needs text or a photo",
                ));
            }
            self.length_rule().check(&post.text)?;
        } else {
            // Limits count the text after entity parsing, so HTML tags
            // counted here make this check err on the safe side.
            LengthRule::new(CAPTION_LIMIT, LengthUnit::Utf16)
                .check(&post.text)
                .map_err(|e| {
                    ValidationError::new(format!(
                        "with a photo the text is sent as its caption: {}",
                        e.message
                    ))
                })?;
        }
        self.media_rule().check(&post.media)
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let (to, reply) = match request.reply_to {
            None => (self.destination(None), None),
            Some(reply) => {
                let (chat, parent) = parse_parent(reply.parent).ok_or_else(|| {
                    PublishError::new(
                        ErrorClass::Permanent,
                        format!(
                            "cannot reply to `{}`: not a Telegram message id",
                            reply.parent
                        ),
                    )
                })?;
                let to = self.destination(chat);
                let parameters = ReplyParameters::new(parent);
                let parameters = if to.qualify.is_none() && !self.topics {
                    // If the previous part was deleted, the rest of the
                    // thread still goes out instead of failing forever.
                    parameters.allow_sending_without_reply()
                } else {
                    // An answer in someone else's chat makes no sense
                    // without the message it answers, and in a forum a
                    // reply is kept in its topic only by the message it
                    // answers (without it, it would land in General): fail
                    // instead.
                    parameters
                };
                (to, Some(parameters))
            }
        };
        let text = self.text(&request.post.text);
        match request.post.media.first() {
            Some(media) => self.send_photo(&to, media, text, reply).await,
            None => self.send_text(&to, text, reply).await,
        }
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }

    fn starts_threads(&self) -> bool {
        self.topics
    }

    /// `createForumTopic`, then the message in the new topic. The topic's
    /// `place` is its id in the listener's id form (the topic's id is the id
    /// of its first, service message). A failure after the topic exists
    /// leaves an empty topic behind; the caller retries with a new one.
    async fn start_thread(
        &self,
        title: &str,
        request: PublishRequest<'_>,
    ) -> Result<StartedThread, PublishError> {
        if !self.topics {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                "this Telegram channel does not open topics (set `topics = true` on a forum supergroup)",
            ));
        }
        // Telegram's topic names are 1 to 128 characters.
        let name: String = match title.trim() {
            "" => "conversation".to_owned(),
            t => t.chars().take(128).collect(),
        };
        let topic = self
            .bot
            .create_forum_topic(self.chat.clone(), name)
            .await
            .map_err(|e| classify(e, self.token()))?;
        let to = Destination {
            chat: self.chat.clone(),
            thread: Some(topic.thread_id),
            qualify: None,
        };
        let text = self.text(&request.post.text);
        let receipt = match request.post.media.first() {
            Some(media) => self.send_photo(&to, media, text, None).await?,
            None => self.send_text(&to, text, None).await?,
        };
        Ok(StartedThread {
            receipt,
            place: topic.thread_id.0.0.to_string(),
        })
    }
}

impl TelegramAdapter {
    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        let me = self
            .bot
            .get_me()
            .await
            .map_err(|e| classify(e, self.token()))?;
        Ok(ChannelCheck::ok(format!("@{}", me.username())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use clarion_core::ReplyTo;
    use serde_json::json;

    use super::*;

    const TOKEN: &str = "123456:TEST-token_abc";

    /// What the fake Bot API received.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        headers: HeaderMap,
        body: Bytes,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    fn channel() -> serde_json::Value {
        json!({"id": -1001234567890_i64, "type": "channel", "title": "Clarion News", "username": "clarion_news"})
    }

    fn sent(result: serde_json::Value) -> Response {
        axum::Json(json!({"ok": true, "result": result})).into_response()
    }

    fn failed(status: StatusCode, body: serde_json::Value) -> Response {
        (status, axum::Json(body)).into_response()
    }

    /// A fake Bot API: `POST /bot<token>/<Method>`, answering by chat id.
    async fn fake_telegram() -> (String, Log) {
        let log: Log = Arc::default();
        let record = log.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                let path = uri.path().to_owned();
                record.lock().unwrap().push(Seen {
                    path: path.clone(),
                    headers,
                    body: body.clone(),
                });
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                answer(&path, &json)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, log)
    }

    fn answer(path: &str, body: &serde_json::Value) -> Response {
        let Some(method) = path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return failed(
                StatusCode::NOT_FOUND,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            );
        };
        // teloxide names methods `SendMessage`; Telegram ignores the case.
        match (
            method.to_ascii_lowercase().as_str(),
            body["chat_id"].as_str(),
            body["chat_id"].as_i64(),
        ) {
            ("getme", _, _) => sent(json!({
                "id": 123456, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot",
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false
            })),
            ("createforumtopic", _, Some(-1009876)) => sent(json!({
                "message_thread_id": 77, "name": body["name"], "icon_color": 7322096
            })),
            ("createforumtopic", _, _) => failed(
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: the chat is not a forum"}),
            ),
            ("sendphoto", _, _) => sent(json!({
                "message_id": 43, "date": 1735689600, "chat": channel(), "sender_chat": channel(),
                "photo": [{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90, "height": 90, "file_size": 1000}],
                "caption": "look"
            })),
            ("sendmessage", _, Some(-1001234567890)) => sent(json!({
                "message_id": 42, "date": 1735689600, "chat": channel(), "sender_chat": channel(),
                "text": body["text"]
            })),
            ("sendmessage", _, Some(-1009876)) => sent(json!({
                "message_id": 7, "date": 1735689600,
                "chat": {"id": -1009876, "type": "supergroup", "title": "Team"},
                "from": {"id": 123456, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                "text": body["text"]
            })),
            // Accepted, but shaped so teloxide cannot decode it (no `date`).
            ("sendmessage", Some("@odd"), _) => sent(json!({
                "message_id": 9, "chat": {"id": -100555, "type": "channel", "title": "Odd"}
            })),
            ("sendmessage", Some("@limited"), _) => failed(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
            ),
            ("sendmessage", Some("@unauthorized"), _) => failed(
                StatusCode::UNAUTHORIZED,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            ),
            // The documented error shape, answered after the message went out.
            ("sendmessage", Some("@flaky"), _) => failed(
                StatusCode::BAD_GATEWAY,
                json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            ),
            ("sendmessage", Some("@blocked"), _) => failed(
                StatusCode::FORBIDDEN,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot is not a member of the channel chat"}),
            ),
            _ => failed(
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            ),
        }
    }

    /// A token file per call: tests run in parallel, and changing the
    /// environment while other threads read it is not safe.
    fn token_file() -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("clarion-telegram-token-{}-{n}", std::process::id()));
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        path
    }

    fn build(base: &str, extra: serde_json::Value) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let token = token_file();
        let mut config = json!({
            "name": "news", "kind": "telegram",
            "bot_token": {"file": token},
            "chat_id": -1001234567890_i64,
            "api_url": base, "timeout_secs": 2
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let built = Factory.build(
            &serde_json::from_value(config).unwrap(),
            &AdapterContext::default(),
        );
        std::fs::remove_file(token).unwrap();
        built
    }

    fn adapter_with(base: &str, extra: serde_json::Value) -> Arc<dyn ChannelAdapter> {
        build(base, extra).unwrap()
    }

    fn post(text: &str) -> OutboundPost {
        OutboundPost {
            text: text.into(),
            campaign: None,
            media: vec![],
        }
    }

    async fn send(
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

    fn json_body(seen: &Seen) -> serde_json::Value {
        serde_json::from_slice(&seen.body).unwrap()
    }

    #[tokio::test]
    async fn telegram_plain_post_sends_html_text_and_reads_the_receipt() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({"disable_link_preview": true}));
        let receipt = send(adapter.as_ref(), &post("<b>hello</b> &amp; bye"), None)
            .await
            .unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some("42".into()),
                url: Some("https://t.me/clarion_news/42".into()),
            }
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.path, format!("/bot{TOKEN}/SendMessage"));
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(
            json_body(&seen),
            json!({
                "chat_id": -1001234567890_i64,
                "text": "<b>hello</b> &amp; bye",
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": true}
            })
        );
    }

    #[tokio::test]
    async fn telegram_plain_mode_sends_no_parse_mode_and_topic_posts_carry_the_thread() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(
            &base,
            json!({"chat_id": "-1009876", "parse_mode": "plain", "message_thread_id": 5}),
        );
        assert_eq!(adapter.markup(), Markup::Plain);
        let receipt = send(adapter.as_ref(), &post("a < b"), None).await.unwrap();
        assert_eq!(receipt.url.as_deref(), Some("https://t.me/c/9876/7"));
        assert_eq!(
            json_body(&log.lock().unwrap()[0]),
            json!({"chat_id": -1009876, "text": "a < b", "message_thread_id": 5})
        );
    }

    #[tokio::test]
    async fn telegram_start_thread_opens_a_forum_topic_and_posts_in_it() {
        let (base, log) = fake_telegram().await;
        let plain = adapter_with(&base, json!({"chat_id": "-1009876"}));
        assert!(!plain.starts_threads(), "topics are opt-in");
        let adapter = adapter_with(&base, json!({"chat_id": "-1009876", "topics": true}));
        assert!(adapter.starts_threads());
        let long_title = "é".repeat(200);
        let started = adapter
            .start_thread(
                &long_title,
                PublishRequest {
                    post: &post("first item"),
                    idempotency_key: "k1",
                    reply_to: None,
                    post_id: 7,
                    target_id: 9,
                    scheduled_at_ms: 0,
                    budget: std::time::Duration::from_secs(30),
                },
            )
            .await
            .unwrap();
        assert_eq!(started.place, "77", "the topic, in message id form");
        assert_eq!(started.receipt.platform_post_id.as_deref(), Some("7"));
        let seen = log.lock().unwrap().clone();
        let (create, message) = (&seen[0], &seen[1]);
        assert!(
            create.path.ends_with("/CreateForumTopic"),
            "{}",
            create.path
        );
        let asked = json_body(create);
        assert_eq!(asked["chat_id"], json!(-1009876));
        assert_eq!(
            asked["name"].as_str().unwrap().chars().count(),
            128,
            "Telegram's longest topic name"
        );
        assert_eq!(json_body(message)["message_thread_id"], json!(77));
        assert_eq!(json_body(message)["text"], json!("first item"));

        // In topics mode a reply never goes without the message it answers:
        // it would land in the General topic.
        send(
            adapter.as_ref(),
            &post("answer"),
            Some(ReplyTo {
                root: "7",
                parent: "7",
            }),
        )
        .await
        .unwrap();
        let reply = json_body(&log.lock().unwrap()[2]);
        assert_eq!(reply["reply_parameters"], json!({"message_id": 7}));

        // A chat that is not a forum: Telegram's own words come back.
        let not_forum = adapter_with(&base, json!({"topics": true}));
        let error = not_forum
            .start_thread(
                "t",
                PublishRequest {
                    post: &post("x"),
                    idempotency_key: "k2",
                    reply_to: None,
                    post_id: 7,
                    target_id: 9,
                    scheduled_at_ms: 0,
                    budget: std::time::Duration::from_secs(30),
                },
            )
            .await
            .unwrap_err();
        assert!(error.message.contains("not a forum"), "{error:?}");
    }

    #[tokio::test]
    async fn telegram_thread_part_replies_to_the_parent() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({}));
        send(
            adapter.as_ref(),
            &post("part 2"),
            Some(ReplyTo {
                root: "40",
                parent: "41",
            }),
        )
        .await
        .unwrap();
        let body = json_body(&log.lock().unwrap()[0]);
        assert_eq!(
            body["reply_parameters"],
            json!({"message_id": 41, "allow_sending_without_reply": true})
        );

        let bad = send(
            adapter.as_ref(),
            &post("part 2"),
            Some(ReplyTo {
                root: "40",
                parent: "abc",
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (bad.class, bad.message.as_str()),
            (
                ErrorClass::Permanent,
                "cannot reply to `abc`: not a Telegram message id"
            )
        );
        assert_eq!(
            log.lock().unwrap().len(),
            1,
            "nothing sent for a bad parent id"
        );
    }

    #[tokio::test]
    async fn telegram_photo_is_sent_as_multipart_with_the_caption() {
        let (base, log) = fake_telegram().await;
        let dir = std::env::temp_dir().join(format!("clarion-telegram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.png");
        let bytes = b"\x89PNG\r\n\x1a\nfake image bytes".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let adapter = adapter_with(&base, json!({}));
        let mut with_photo = post("look <i>here</i>");
        with_photo.media.push(Media {
            path: path.clone(),
            alt: "a chart".into(),
            mime: "image/png".into(),
            bytes: bytes.len() as u64,
        });
        let receipt = send(adapter.as_ref(), &with_photo, None).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(receipt.platform_post_id.as_deref(), Some("43"));

        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.path, format!("/bot{TOKEN}/SendPhoto"));
        let content_type = seen.headers["content-type"].to_str().unwrap().to_owned();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect(&content_type);
        let parts = multipart_parts(&seen.body, boundary);
        let field = |name: &str| {
            parts
                .iter()
                .find(|(head, _)| head.contains(&format!("name=\"{name}\"")))
                .map(|(head, body)| (head.clone(), body.clone()))
        };
        assert_eq!(field("chat_id").unwrap().1, b"-1001234567890");
        assert_eq!(field("caption").unwrap().1, b"look <i>here</i>");
        assert_eq!(field("parse_mode").unwrap().1, b"HTML");
        // teloxide uploads the file as its own part and points at it.
        let photo = String::from_utf8(field("photo").unwrap().1).unwrap();
        let attachment = photo.strip_prefix("attach://").expect(&photo);
        let (file_head, file) = field(attachment).expect("the attached file part");
        assert!(file_head.contains("filename=\"chart.png\""), "{file_head}");
        assert_eq!(file, bytes);
        assert_eq!(parts.len(), 5, "{parts:?}");
    }

    /// Splits a multipart body into (headers, content) pairs.
    fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
        let delimiter = format!("--{boundary}");
        let mut parts = Vec::new();
        let mut rest = body;
        while let Some(start) = find(rest, delimiter.as_bytes()) {
            rest = &rest[start + delimiter.len()..];
            if rest.starts_with(b"--") {
                break;
            }
            let Some(end) = find(rest, delimiter.as_bytes()) else {
                break;
            };
            let part = &rest[2..end - 2]; // drop the CRLFs around the part
            let split = find(part, b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&part[..split]).to_lowercase();
            parts.push((head, part[split + 4..].to_vec()));
            rest = &rest[end..];
        }
        parts
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[tokio::test]
    async fn telegram_errors_are_classified_with_telegrams_description() {
        let (base, log) = fake_telegram().await;
        let fail = |chat: &str| {
            let adapter = adapter_with(&base, json!({"chat_id": chat}));
            async move { send(adapter.as_ref(), &post("hi"), None).await.unwrap_err() }
        };
        let limited = fail("@limited").await;
        assert_eq!(limited.class, ErrorClass::RateLimited);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(limited.message, "Too Many Requests: retry after 3");

        let auth = fail("@unauthorized").await;
        assert_eq!(auth.class, ErrorClass::AuthExpired);
        assert_eq!(
            auth.message,
            "Unauthorized: the bot token was rejected (revoked or wrong)"
        );

        let missing = fail("@missing").await;
        assert_eq!(
            (missing.class, missing.message.as_str()),
            (ErrorClass::Permanent, "Bad Request: chat not found")
        );
        let blocked = fail("@blocked").await;
        assert_eq!(
            (blocked.class, blocked.message.as_str()),
            (
                ErrorClass::Permanent,
                "Forbidden: bot is not a member of the channel chat"
            )
        );
        assert_eq!(log.lock().unwrap().len(), 4, "one request per publish");
        for error in [limited, auth, missing, blocked] {
            assert!(!error.to_string().contains(TOKEN), "{error}");
        }
    }

    /// A 5xx on a send is never retried: the Bot API cannot deduplicate and
    /// the message may already be in the chat. Slow: teloxide waits 10 s
    /// before reading a 5xx answer, so the timeout must be longer.
    #[tokio::test]
    async fn telegram_a_server_error_on_a_send_is_outcome_unknown() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({"chat_id": "@flaky", "timeout_secs": 15}));
        let error = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (ErrorClass::OutcomeUnknown, "Bad Gateway"),
            "{error}"
        );
        assert_eq!(log.lock().unwrap().len(), 1, "sent once, not retried");
        assert!(!error.to_string().contains(TOKEN), "{error}");
    }

    #[tokio::test]
    async fn telegram_an_accepted_message_teloxide_cannot_decode_still_gets_a_receipt() {
        let (base, _) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({"chat_id": "@odd"}));
        let receipt = send(adapter.as_ref(), &post("hi"), None).await.unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some("9".into()),
                url: Some("https://t.me/c/555/9".into()),
            }
        );
    }

    #[test]
    fn telegram_server_errors_and_unreadable_answers() {
        let unknown =
            |text: &str| classify(RequestError::Api(ApiError::Unknown(text.into())), TOKEN);
        assert_eq!(
            unknown("Internal Server Error").class,
            ErrorClass::OutcomeUnknown
        );
        assert_eq!(unknown("Bad Gateway").class, ErrorClass::OutcomeUnknown);
        let other = unknown("Bad Request: something new");
        assert_eq!(
            (other.class, other.message.as_str()),
            (ErrorClass::Permanent, "Bad Request: something new")
        );
        let invalid = |raw: &str| {
            classify(
                RequestError::InvalidJson {
                    source: Arc::new(serde_json::from_str::<()>("x").unwrap_err()),
                    raw: raw.into(),
                },
                TOKEN,
            )
        };
        let server = invalid(r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#);
        assert_eq!(
            (server.class, server.message.as_str(), server.status),
            (ErrorClass::OutcomeUnknown, "Bad Gateway", Some(502))
        );
        let html = invalid("<html>502 Bad Gateway</html>");
        assert_eq!(html.class, ErrorClass::OutcomeUnknown);
        assert_eq!(
            html.message,
            "unreadable answer from Telegram: <html>502 Bad Gateway</html>"
        );
        let leaked = invalid(&format!("oops bot{TOKEN}/sendMessage"));
        assert_eq!(
            leaked.message,
            "unreadable answer from Telegram: oops bot<token>/sendMessage"
        );
    }

    #[tokio::test]
    async fn telegram_transport_failures_never_show_the_token() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let adapter = adapter_with(&format!("http://{closed}/"), json!({}));
        let refused = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(refused.class, ErrorClass::Transient, "{refused}");
        assert!(!refused.to_string().contains(TOKEN), "{refused}");

        // Accepts the connection, never answers: the message may have landed.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let adapter = adapter_with(&format!("http://{addr}/"), json!({"timeout_secs": 0.3}));
        let timeout = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(timeout.class, ErrorClass::OutcomeUnknown, "{timeout}");
        assert!(!timeout.to_string().contains(TOKEN), "{timeout}");
    }

    #[test]
    fn telegram_markdown_v2_escapes_every_special_character() {
        assert_eq!(
            escape_markdown_v2(
                r"Sale: 50% off_now *today* [link](x) ~a~ `c` > #1 + 2 - 3 = 0 | {x}. Wow! \o/"
            ),
            r"Sale: 50% off\_now \*today\* \[link\]\(x\) \~a\~ \`c\` \> \#1 \+ 2 \- 3 \= 0 \| \{x\}\. Wow\! \\o/"
        );
        assert_eq!(
            escape_markdown_v2("plain words, émoji 🎉"),
            "plain words, émoji 🎉"
        );
    }

    #[tokio::test]
    async fn telegram_markdown_v2_mode_sends_escaped_text() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({"parse_mode": "markdownv2"}));
        assert_eq!(adapter.markup(), Markup::Markdown);
        send(adapter.as_ref(), &post("v1.2 is out!"), None)
            .await
            .unwrap();
        let body = json_body(&log.lock().unwrap()[0]);
        assert_eq!(body["text"], r"v1\.2 is out\!");
        assert_eq!(body["parse_mode"], "MarkdownV2");
    }

    #[test]
    fn telegram_validate_counts_utf16_and_the_caption_limit() {
        let adapter = build("http://127.0.0.1:9/", json!({})).unwrap();
        assert_eq!(
            adapter.length_rule(),
            LengthRule::new(4096, LengthUnit::Utf16)
        );
        assert_eq!(adapter.idempotency(), Idempotency::None);
        // An emoji is two UTF-16 units: 2048 fit, 2049 do not.
        assert!(adapter.validate(&post(&"🎉".repeat(2048))).is_ok());
        assert_eq!(
            adapter
                .validate(&post(&"🎉".repeat(2049)))
                .unwrap_err()
                .message,
            "text is 4098 UTF-16 code units long; the limit is 4096"
        );
        let mut with_photo = post(&"a".repeat(1025));
        with_photo.media.push(Media {
            path: "chart.png".into(),
            alt: String::new(),
            mime: "image/png".into(),
            bytes: 1000,
        });
        assert_eq!(
            adapter.validate(&with_photo).unwrap_err().message,
            "with a photo the text is sent as its caption: text is 1025 UTF-16 code units long; the limit is 1024"
        );
        with_photo.text = "a".repeat(1024);
        assert!(adapter.validate(&with_photo).is_ok());
        with_photo.media.push(with_photo.media[0].clone());
        assert_eq!(
            adapter.validate(&with_photo).unwrap_err().message,
            "2 attachments; the limit is 1"
        );
        assert_eq!(
            adapter.validate(&post("  ")).unwrap_err().message,
            "a Telegram message needs text or a photo"
        );
    }

    #[tokio::test]
    async fn telegram_check_names_the_bot() {
        let (base, log) = fake_telegram().await;
        let adapter = adapter_with(&base, json!({}));
        assert_eq!(adapter.check().await.unwrap().detail, "@clarion_bot");
        assert_eq!(log.lock().unwrap()[0].path, format!("/bot{TOKEN}/GetMe"));
    }

    #[test]
    fn telegram_settings_are_checked_and_the_token_never_prints() {
        let adapter = build("http://127.0.0.1:9/", json!({"chat_id": "@clarion_news"})).unwrap();
        let debug = format!("{adapter:?}");
        assert!(
            !debug.contains(TOKEN) && !debug.contains("TEST-token"),
            "{debug}"
        );
        assert!(debug.contains("@clarion_news"), "{debug}");

        let chat = build("http://127.0.0.1:9/", json!({"chat_id": "clarion news"})).unwrap_err();
        assert_eq!(
            chat.to_string(),
            "channel `news` chat_id: give a numeric chat id (e.g. -1001234567890) or a public @username"
        );
        let mode = build("http://127.0.0.1:9/", json!({"parse_mode": "markdown"})).unwrap_err();
        assert!(
            mode.to_string()
                .starts_with("channel `news` (kind telegram): unknown variant `markdown`"),
            "{mode}"
        );
        let typo = build("http://127.0.0.1:9/", json!({"thread_id": 3})).unwrap_err();
        assert!(
            typo.to_string()
                .starts_with("channel `news` (kind telegram): unknown field `thread_id`"),
            "{typo}"
        );
    }

    #[test]
    fn telegram_a_malformed_token_is_a_config_error() {
        let path =
            std::env::temp_dir().join(format!("clarion-telegram-badtoken-{}", std::process::id()));
        std::fs::write(&path, "@clarion_news").unwrap();
        let config = json!({
            "name": "news", "kind": "telegram",
            "bot_token": {"file": path}, "chat_id": 1
        });
        let error = Factory
            .build(
                &serde_json::from_value(config).unwrap(),
                &AdapterContext::default(),
            )
            .unwrap_err();
        std::fs::remove_file(path).unwrap();
        assert_eq!(
            error.to_string(),
            "channel `news` bot_token: is not a Telegram bot token (expected `123456:ABC-...` from @BotFather)"
        );
    }
}
