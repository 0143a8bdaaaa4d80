//! `discord`: posts as a bot user to one channel over Discord's REST API.
//!
//! ```toml
//! [[channels]]
//! name = "community"
//! kind = "discord"
//! bot_token = { env = "DISCORD_BOT_TOKEN" }
//! channel_id = "1234567890123456789"   # developer mode > right-click channel > Copy Channel ID
//! guild_id = "987654321098765432"      # optional: only used to build message links
//! embed = false                        # true: send the text as an embed description
//! timeout_secs = 10
//! # api_proxy = "http://127.0.0.1:8080" # tests / a Discord HTTP proxy in front of discord.com
//! listen = true                        # capture mentions, replies and DMs (see `listen`)
//! message_content = false              # listen: also request the privileged MESSAGE_CONTENT intent
//! ```
//!
//! Message ids: a message in the configured channel is named by its plain
//! message id (`"1234"`); a message elsewhere (another channel, a thread, a
//! DM) by `"{channel_id}/{message_id}"`. Receipts and listened engagements
//! use the same form, and a reply parent in either form is answered in the
//! channel it names.
//!
//! serenity supplies the payload builder ([`CreateMessage`], [`MessageReference`],
//! [`Nonce`]), the route table ([`Route`]), the error model
//! ([`DiscordJsonError`]) and the ids/user models. The request itself goes out
//! through reqwest, not through serenity's `Http`, on purpose:
//!
//! - serenity's `Http` decodes an error body into `DiscordJsonError`, whose
//!   `code` field is required. Discord's 429 body has no `code`, so serenity
//!   replaces it with a "could not decode" message and the `retry_after` the
//!   scheduler needs is lost, as are the `Retry-After` / `X-RateLimit-*` headers.
//! - serenity's rate limiter sleeps and re-sends on a 429 inside the call. The
//!   scheduler owns retries (it honours `retry_after` and paces with
//!   [`ChannelAdapter::min_interval`]), so a publish must be exactly one request.
//!   The limiter is therefore not used in production either.
//! - serenity numbers multipart attachments (`files[n]`) only inside
//!   `CreateMessage::execute`; building the form here keeps alt text matched
//!   to the right file.

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, MediaRule, OutboundPost, PostCounts,
    PublishError, PublishReceipt, PublishRequest, Secret, SecretRef, StartedThread, ThreadStyle,
    ValidationError,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serenity::builder::{CreateEmbed, CreateMessage};
use serenity::http::{DiscordJsonError, Route};
use serenity::model::channel::{MessageReference, MessageReferenceKind, Nonce};
use serenity::model::id::{ChannelId, GuildId, MessageId};
use serenity::model::user::CurrentUser;

use crate::http::{classify_transport, retry_after};

mod listen;

/// Where serenity's routes point; `api_proxy` replaces it (as serenity's own
/// `HttpBuilder::proxy` does).
const DISCORD_ORIGIN: &str = "https://discord.com";
/// `content` limit, in Unicode scalar values.
const CONTENT_LIMIT: usize = 2000;
/// Embed `description` limit.
const EMBED_DESCRIPTION_LIMIT: usize = 4096;
/// Attachment `description` (alt text) limit.
const ALT_TEXT_LIMIT: usize = 1024;
/// Discord accepts a nonce of at most 25 characters.
const NONCE_LEN: usize = 25;
/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

/// A snowflake as people paste it: a JSON/TOML integer or a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Snowflake {
    Int(u64),
    Str(String),
}

impl Snowflake {
    fn parse(&self, what: &str) -> Result<NonZeroU64, ConfigError> {
        let id = match self {
            Snowflake::Int(n) => Some(*n),
            Snowflake::Str(s) => s.trim().parse::<u64>().ok(),
        };
        id.and_then(NonZeroU64::new).ok_or_else(|| {
            ConfigError::new(format!(
                "{what}: not a Discord id (a positive integer, e.g. \"1234567890123456789\")"
            ))
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    bot_token: SecretRef,
    channel_id: Snowflake,
    guild_id: Option<Snowflake>,
    api_proxy: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default)]
    embed: bool,
    /// Listening: also ask for the privileged MESSAGE_CONTENT intent.
    #[serde(default)]
    message_content: bool,
}

fn default_timeout() -> f64 {
    10.0
}

pub struct DiscordAdapter {
    client: reqwest::Client,
    /// The full `Authorization` value, `Bot <token>`.
    authorization: Secret,
    /// `https://discord.com`, or the `api_proxy` that stands in for it.
    origin: String,
    channel_id: ChannelId,
    guild_id: Option<GuildId>,
    timeout: Duration,
    embed: bool,
    /// Whether the configured channel is a forum (or media) channel, read
    /// once from `GET /channels/{id}` when a thread is first started.
    forum: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for DiscordAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordAdapter")
            .field("origin", &self.origin)
            .field("channel_id", &self.channel_id.get())
            .field("guild_id", &self.guild_id.map(GuildId::get))
            .field("timeout", &self.timeout)
            .field("embed", &self.embed)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s = Configured::parse(config)?;
        Ok(Arc::new(DiscordAdapter {
            client: crate::http_client(),
            authorization: s.authorization,
            origin: s.origin,
            channel_id: s.channel_id,
            guild_id: s.guild_id,
            timeout: s.timeout,
            embed: s.embed,
            forum: tokio::sync::OnceCell::new(),
        }))
    }

    fn build_listener(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Option<Arc<dyn clarion_core::Listener>>, ConfigError> {
        listen::build(config).map(Some)
    }
}

/// The checked settings of one channel, shared by the publisher and the listener.
struct Configured {
    /// The full `Authorization` value, `Bot <token>`.
    authorization: Secret,
    /// `https://discord.com`, or the `api_proxy` that stands in for it.
    origin: String,
    channel_id: ChannelId,
    guild_id: Option<GuildId>,
    timeout: Duration,
    embed: bool,
    message_content: bool,
}

impl Configured {
    fn parse(config: &ChannelConfig) -> Result<Self, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let token = s.bot_token.resolve(&what("bot_token"))?;
        // People paste the token with or without the `Bot ` prefix.
        let bare = token
            .expose()
            .strip_prefix("Bot ")
            .unwrap_or(token.expose())
            .trim();
        if bare.is_empty() || bare.contains(char::is_whitespace) {
            return Err(ConfigError::new(format!(
                "{}: is not a Discord bot token",
                what("bot_token")
            )));
        }
        let authorization = Secret::new(format!("Bot {bare}"));
        let channel_id = ChannelId::from(s.channel_id.parse(&what("channel_id"))?);
        let guild_id = s
            .guild_id
            .map(|g| g.parse(&what("guild_id")).map(GuildId::from))
            .transpose()?;
        let origin = match s.api_proxy {
            None => DISCORD_ORIGIN.to_owned(),
            Some(proxy) => {
                let parsed = reqwest::Url::parse(&proxy).map_err(|e| {
                    ConfigError::new(format!("{}: not a URL: {e}", what("api_proxy")))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::new(format!(
                        "{}: must be http or https",
                        what("api_proxy")
                    )));
                }
                proxy.trim_end_matches('/').to_owned()
            }
        };
        if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
            return Err(ConfigError::new(format!(
                "{}: must be between 0 and 300 seconds",
                what("timeout_secs")
            )));
        }
        Ok(Configured {
            authorization,
            origin,
            channel_id,
            guild_id,
            timeout: Duration::from_secs_f64(s.timeout_secs),
            embed: s.embed,
            message_content: s.message_content,
        })
    }
}

/// A serenity route's URL with `https://discord.com` replaced by `origin`
/// (as serenity's own `HttpBuilder::proxy` does).
fn api_url(origin: &str, route: Route<'_>) -> String {
    let path = route.path();
    match path.strip_prefix(DISCORD_ORIGIN) {
        Some(rest) => format!("{origin}{rest}"),
        None => path.into_owned(),
    }
}

/// The adapter's name for a message: the plain message id in the configured
/// channel, `{channel_id}/{message_id}` anywhere else.
fn message_key(configured: ChannelId, channel: ChannelId, message: MessageId) -> String {
    if channel == configured {
        message.to_string()
    } else {
        format!("{channel}/{message}")
    }
}

/// Reads a [`message_key`] back: the channel (the configured one for a
/// plain id) and the message.
fn parse_message_key(configured: ChannelId, key: &str) -> Option<(ChannelId, MessageId)> {
    let snowflake = |s: &str| s.parse::<u64>().ok().and_then(NonZeroU64::new);
    match key.split_once('/') {
        None => Some((configured, MessageId::from(snowflake(key)?))),
        Some((channel, message)) => Some((
            ChannelId::from(snowflake(channel)?),
            MessageId::from(snowflake(message)?),
        )),
    }
}

/// A Discord-valid nonce derived from the idempotency key: every attempt of
/// one message carries the same nonce, so with `enforce_nonce` Discord
/// returns the first message instead of posting a duplicate (for a few
/// minutes). FNV-1a 128 is used because it is stable across Rust releases
/// (unlike `DefaultHasher`); 25 hex digits keep 100 bits, plenty against
/// accidental collisions between keys.
fn nonce_for(key: &str) -> String {
    let hash = clarion_core::hash::fnv1a128(key.as_bytes());
    let mut hex = format!("{hash:032x}");
    hex.truncate(NONCE_LEN);
    hex
}

/// The only fields of the created message Clarion needs. Decoding the whole
/// serenity `Message` would turn a posted message into a failure whenever
/// Discord adds or changes an unrelated field.
#[derive(Debug, Deserialize)]
struct SentMessage {
    id: MessageId,
    guild_id: Option<GuildId>,
}

/// The threads the bot started from one configured channel, shared by that
/// channel's adapter (which starts them) and listener (which must hear every
/// message in them). The gateway's THREAD_CREATE tells the listener too, but
/// serenity runs each event in its own task, so a message written at once in
/// a new thread could be handled before it; knowing the thread at creation
/// closes that gap. Process-wide because the adapter and the listener are
/// built separately from the same config.
fn bot_threads(channel: ChannelId) -> Arc<listen::BotThreads> {
    static SHARED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<ChannelId, Arc<listen::BotThreads>>>,
    > = std::sync::OnceLock::new();
    let shared = SHARED.get_or_init(Default::default);
    match shared.lock() {
        Ok(mut map) => map.entry(channel).or_default().clone(),
        Err(_) => Arc::default(),
    }
}

/// The fields of a created thread Clarion needs.
#[derive(Debug, Deserialize)]
struct CreatedThread {
    id: ChannelId,
    guild_id: Option<GuildId>,
}

/// The field of `GET /channels/{id}` Clarion needs.
#[derive(Debug, Deserialize)]
struct ChannelKind {
    #[serde(rename = "type")]
    kind: u8,
}

/// One file read from disk, ready for the multipart form.
struct Upload {
    filename: String,
    mime: String,
    alt: String,
    data: Vec<u8>,
}

impl DiscordAdapter {
    fn url(&self, route: Route<'_>) -> String {
        api_url(&self.origin, route)
    }

    /// Where a message goes: the configured channel, or for a reply the
    /// channel its parent names, with the parent message.
    fn destination(
        &self,
        reply_to: Option<&clarion_core::ReplyTo<'_>>,
    ) -> Result<(ChannelId, Option<MessageId>), PublishError> {
        match reply_to {
            None => Ok((self.channel_id, None)),
            Some(reply) => {
                let (channel, parent) = parse_message_id(self.channel_id, reply.parent)?;
                Ok((channel, Some(parent)))
            }
        }
    }

    fn text_limit(&self) -> usize {
        if self.embed {
            EMBED_DESCRIPTION_LIMIT
        } else {
            CONTENT_LIMIT
        }
    }

    /// The JSON body (the `payload_json` part when files are attached).
    fn payload(
        &self,
        request: &PublishRequest<'_>,
        uploads: &[Upload],
        channel: ChannelId,
        parent: Option<MessageId>,
    ) -> Result<serde_json::Value, PublishError> {
        let text = request.post.text.as_str();
        let mut message = CreateMessage::new()
            .nonce(Nonce::String(nonce_for(request.idempotency_key)))
            .enforce_nonce(true);
        if self.embed {
            message = message.embed(CreateEmbed::new().description(text));
        } else {
            message = message.content(text);
        }
        if let Some(parent) = parent {
            // `fail_if_not_exists: false`: if the previous part was deleted,
            // the rest of the thread still goes out as plain messages rather
            // than failing forever.
            message = message.reference_message(
                MessageReference::new(MessageReferenceKind::Default, channel)
                    .message_id(parent)
                    .fail_if_not_exists(false),
            );
        }
        let mut body = serde_json::to_value(&message).map_err(|e| {
            PublishError::new(
                ErrorClass::Permanent,
                format!("cannot encode the message: {e}"),
            )
        })?;
        // The attachment metadata ties each `files[n]` part to its alt text.
        let attachments: Vec<serde_json::Value> = uploads
            .iter()
            .enumerate()
            .map(|(id, u)| {
                let mut a = serde_json::json!({"id": id, "filename": u.filename});
                if !u.alt.trim().is_empty() {
                    a["description"] = serde_json::Value::from(u.alt.as_str());
                }
                a
            })
            .collect();
        body["attachments"] = serde_json::Value::Array(attachments);
        Ok(body)
    }

    fn receipt(&self, sent: SentMessage, channel: ChannelId) -> PublishReceipt {
        // Message links need the guild. REST answers usually leave `guild_id`
        // out, so the configured one is the normal source; without either we
        // give no URL rather than a link that does not open. Another channel
        // (a reply to an engagement elsewhere) may be a DM or in another
        // guild, so the configured guild is not assumed there.
        let guild = if channel == self.channel_id {
            sent.guild_id.or(self.guild_id)
        } else {
            sent.guild_id
        };
        let url = guild
            .map(|guild| format!("https://discord.com/channels/{guild}/{channel}/{}", sent.id));
        PublishReceipt {
            platform_post_id: Some(message_key(self.channel_id, channel, sent.id)),
            url,
        }
    }
}

/// A reply parent: a plain message id (in the configured channel) or
/// `{channel_id}/{message_id}`.
fn parse_message_id(
    configured: ChannelId,
    id: &str,
) -> Result<(ChannelId, MessageId), PublishError> {
    parse_message_key(configured, id).ok_or_else(|| {
        PublishError::new(
            ErrorClass::Permanent,
            format!("cannot reply to `{id}`: not a Discord message id"),
        )
    })
}

async fn read_upload(media: &clarion_core::Media) -> Result<Upload, PublishError> {
    let data = tokio::fs::read(&media.path).await.map_err(|e| {
        PublishError::new(
            ErrorClass::Permanent,
            format!("cannot read {}: {e}", media.path.display()),
        )
    })?;
    Ok(Upload {
        filename: file_name(&media.path),
        mime: media.mime.clone(),
        alt: media.alt.clone(),
        data,
    })
}

/// Discord shows the file name and uses its extension; keep it to safe
/// characters so a local path never leaks odd bytes into the form.
fn file_name(path: &Path) -> String {
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "image".to_owned()
    } else {
        name
    }
}

/// Classifies an unsuccessful Discord answer. Discord bans an IP after 10,000
/// 401/403/429 answers in ten minutes, so none of these is ever transient.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> PublishError {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = platform_message(status, &json, body);
    let class = match status.as_u16() {
        429 => ErrorClass::RateLimited,
        401 => ErrorClass::AuthExpired,
        408 | 500..=599 => ErrorClass::Transient,
        // 403 Missing Access / Missing Permissions, 400 Invalid Form Body,
        // 404 Unknown Channel, 413 too large: retrying cannot help.
        _ => ErrorClass::Permanent,
    };
    let wait = (class == ErrorClass::RateLimited)
        .then(|| {
            // The body's float seconds are the most precise; then the
            // standard header; then the bucket's reset time.
            json.get("retry_after")
                .and_then(serde_json::Value::as_f64)
                .and_then(seconds)
                .or_else(|| retry_after(headers))
                .or_else(|| {
                    headers
                        .get("x-ratelimit-reset-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .and_then(seconds)
                })
        })
        .flatten();
    PublishError::new(class, message)
        .with_status(status.as_u16())
        .with_retry_after(wait)
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Discord's own words: `message (code N)` plus the per-field reasons of an
/// Invalid Form Body, decoded with serenity's error model when the body has
/// its shape.
fn platform_message(status: StatusCode, json: &serde_json::Value, body: &str) -> String {
    let text = if let Ok(error) = serde_json::from_value::<DiscordJsonError>(json.clone()) {
        let mut text = format!("{} (code {})", error.message, error.code);
        let fields: Vec<String> = error
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        if !fields.is_empty() {
            text.push_str(&format!(": {}", fields.join(", ")));
        }
        text
    } else if let Some(message) = json.get("message").and_then(serde_json::Value::as_str) {
        let mut text = message.to_owned();
        if json.get("global").and_then(serde_json::Value::as_bool) == Some(true) {
            text.push_str(" (global limit)");
        }
        text
    } else {
        body.trim().to_owned()
    };
    let mut text: String = text.chars().take(MAX_MESSAGE).collect();
    if text.is_empty() {
        text = status.canonical_reason().unwrap_or("no message").to_owned();
    }
    format!("HTTP {}: {text}", status.as_u16())
}

#[async_trait]
impl ChannelAdapter for DiscordAdapter {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn length_rule(&self) -> LengthRule {
        LengthRule::new(self.text_limit(), LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // `nonce` + `enforce_nonce: true`: a resend with the same nonce
        // returns the first message. Discord keeps nonces only "for a few
        // minutes" (discord.com/developers/docs/resources/message#create-message,
        // `enforce_nonce`); 2 minutes stays inside that.
        Idempotency::honoured_for(Duration::from_secs(120))
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Native
    }

    fn media_rule(&self) -> MediaRule {
        MediaRule {
            max_count: 10,
            // The upload limit for bots without boosts is 10 MiB per request.
            max_bytes: 10 * 1024 * 1024,
            mime_types: MediaRule::IMAGES,
        }
    }

    fn min_interval(&self) -> Option<Duration> {
        // Discord allows about 5 messages per 5 s per channel (bucket headers
        // say so at run time). One second between sends keeps a long schedule
        // inside that bucket, so it is paced instead of answered with 429s
        // (which count towards Discord's invalid-request IP ban).
        Some(Duration::from_secs(1))
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        if post.text.trim().is_empty() && post.media.is_empty() {
            return Err(ValidationError::new(
                "a Discord message needs text or an attachment",
            ));
        }
        self.length_rule().check(&post.text)?;
        self.media_rule().check(&post.media)?;
        for m in &post.media {
            let alt = m.alt.chars().count();
            if alt > ALT_TEXT_LIMIT {
                return Err(ValidationError::new(format!(
                    "{}: alt text is {alt} characters long; Discord's limit is {ALT_TEXT_LIMIT}",
                    m.path.display()
                )));
            }
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let (channel, parent) = self.destination(request.reply_to.as_ref())?;
        self.send(channel, parent, &request).await
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        self.verify().await.map_err(crate::http::for_check)
    }

    fn starts_threads(&self) -> bool {
        true
    }

    /// `GET /channels/{id}/messages/{id}`: the message's reactions, summed
    /// as likes (Discord has no reposts or views; replies are not counted).
    async fn post_counts(&self, id: &str) -> Result<Option<PostCounts>, PublishError> {
        let (channel, message) = parse_message_id(self.channel_id, id)?;
        #[derive(Deserialize)]
        struct Reaction {
            count: i64,
        }
        #[derive(Deserialize)]
        struct Reacted {
            #[serde(default)]
            reactions: Vec<Reaction>,
        }
        let route = Route::ChannelMessage {
            channel_id: channel,
            message_id: message,
        };
        let reacted: Reacted = self
            .get_json(route, "GET /channels/{id}/messages/{id}")
            .await?;
        Ok(Some(PostCounts {
            likes: Some(reacted.reactions.iter().map(|r| r.count).sum()),
            ..PostCounts::default()
        }))
    }

    /// In a text channel: `POST /channels/{id}/threads` (a public thread,
    /// archived after a week without messages), then the message in it. In a
    /// forum channel: one `POST /channels/{id}/threads` with the message as
    /// the post's first message (whose id is the thread's). A failure after
    /// the thread exists leaves an empty thread behind; the caller retries
    /// with a new one.
    async fn start_thread(
        &self,
        title: &str,
        request: PublishRequest<'_>,
    ) -> Result<StartedThread, PublishError> {
        // Discord's thread names are 1 to 100 characters.
        let name: String = match title.trim() {
            "" => "conversation".to_owned(),
            t => t.chars().take(100).collect(),
        };
        let route = Route::ChannelThreads {
            channel_id: self.channel_id,
        };
        if self.is_forum().await? {
            if !request.post.media.is_empty() {
                return Err(PublishError::new(
                    ErrorClass::Permanent,
                    "a forum post started by Clarion takes text only",
                ));
            }
            let message = self.payload(&request, &[], self.channel_id, None)?;
            let body = serde_json::json!({"name": name, "message": message});
            let thread: CreatedThread = self.post_json(route, &body).await?;
            bot_threads(self.channel_id).started(thread.id);
            let first = SentMessage {
                id: MessageId::new(thread.id.get()),
                guild_id: thread.guild_id,
            };
            return Ok(StartedThread {
                receipt: self.receipt(first, thread.id),
                place: thread.id.to_string(),
            });
        }
        // Type 11: a public thread; 10080 minutes: the longest auto-archive.
        let body = serde_json::json!({"name": name, "type": 11, "auto_archive_duration": 10080});
        let thread: CreatedThread = self.post_json(route, &body).await?;
        bot_threads(self.channel_id).started(thread.id);
        let mut receipt = self.send(thread.id, None, &request).await?;
        if receipt.url.is_none()
            && let (Some(guild), Some(id)) =
                (thread.guild_id.or(self.guild_id), &receipt.platform_post_id)
        {
            // The thread is in the configured channel's guild.
            let message = id.rsplit('/').next().unwrap_or(id);
            receipt.url = Some(format!(
                "https://discord.com/channels/{guild}/{}/{message}",
                thread.id
            ));
        }
        Ok(StartedThread {
            receipt,
            place: thread.id.to_string(),
        })
    }
}

impl DiscordAdapter {
    async fn is_forum(&self) -> Result<bool, PublishError> {
        self.forum
            .get_or_try_init(|| async {
                let route = Route::Channel {
                    channel_id: self.channel_id,
                };
                let channel: ChannelKind = self.get_json(route, "GET /channels/{id}").await?;
                // 15: GUILD_FORUM, 16: GUILD_MEDIA.
                Ok(matches!(channel.kind, 15 | 16))
            })
            .await
            .copied()
    }

    /// One JSON `POST` that creates something; an unreadable answer is an
    /// unknown outcome.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        route: Route<'_>,
        body: &serde_json::Value,
    ) -> Result<T, PublishError> {
        let response = self
            .client
            .post(self.url(route))
            .header(AUTHORIZATION, self.authorization.expose())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| {
            let mut error = classify_transport(e);
            error.class = ErrorClass::OutcomeUnknown;
            error
        })?;
        if !status.is_success() {
            return Err(classify(status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!(
                    "Discord answered HTTP {} with an unreadable body: {e}",
                    status.as_u16()
                ),
            )
        })
    }

    /// One message to `channel`, answering `parent` there when set.
    async fn send(
        &self,
        channel: ChannelId,
        parent: Option<MessageId>,
        request: &PublishRequest<'_>,
    ) -> Result<PublishReceipt, PublishError> {
        let mut uploads = Vec::with_capacity(request.post.media.len());
        for media in &request.post.media {
            uploads.push(read_upload(media).await?);
        }
        let body = self.payload(request, &uploads, channel, parent)?;
        let builder = self
            .client
            .post(self.url(Route::ChannelMessages {
                channel_id: channel,
            }))
            .header(AUTHORIZATION, self.authorization.expose())
            .timeout(self.timeout);
        let builder = if uploads.is_empty() {
            builder.json(&body)
        } else {
            let mut form = reqwest::multipart::Form::new().text("payload_json", body.to_string());
            for (n, upload) in uploads.into_iter().enumerate() {
                let part = reqwest::multipart::Part::bytes(upload.data)
                    .file_name(upload.filename)
                    .mime_str(&upload.mime)
                    .map_err(|e| {
                        PublishError::new(
                            ErrorClass::Permanent,
                            format!("attachment {n}: bad type `{}`: {e}", upload.mime),
                        )
                    })?;
                form = form.part(format!("files[{n}]"), part);
            }
            builder.multipart(form)
        };
        let response = builder.send().await.map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        // The message may exist from here on: a failure to read the answer
        // is an unknown outcome, never a transient one.
        let text = response.text().await.map_err(|e| {
            let mut error = classify_transport(e);
            error.class = ErrorClass::OutcomeUnknown;
            error
        })?;
        if !status.is_success() {
            return Err(classify(status, &headers, &text));
        }
        let sent: SentMessage = serde_json::from_str(&text).map_err(|e| {
            PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!(
                    "Discord answered HTTP {} with an unreadable message: {e}",
                    status.as_u16()
                ),
            )
            .with_status(status.as_u16())
        })?;
        Ok(self.receipt(sent, channel))
    }
}

impl DiscordAdapter {
    /// One authenticated read; `what` names it in errors.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        route: Route<'_>,
        what: &str,
    ) -> Result<T, PublishError> {
        let response = self
            .client
            .get(self.url(route))
            .header(AUTHORIZATION, self.authorization.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(classify_transport)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("Discord answered {what} with an unreadable body: {e}"),
            )
        })
    }

    /// `check`, before a failure is made a failed check (see
    /// [`crate::http::for_check`]).
    async fn verify(&self) -> Result<ChannelCheck, PublishError> {
        let user: CurrentUser = self.get_json(Route::UserMe, "/users/@me").await?;
        // Users migrated to unique names have no discriminator any more.
        let tag = match user.discriminator {
            Some(d) => format!("{}#{d:04}", user.name),
            None => format!("{}#{}", user.name, user.id),
        };
        Ok(ChannelCheck::ok(format!("bot {tag}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{Media, ReplyTo};
    use serde_json::json;

    use super::*;

    /// What the fake Discord received.
    #[derive(Debug, Clone)]
    struct Seen {
        method: Method,
        path: String,
        headers: HeaderMap,
        body: Bytes,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    const TOKEN: &str = "MTIz.fake.discord-token";

    fn user_json() -> serde_json::Value {
        json!({
            "id": "4242", "username": "clarion", "discriminator": "0427",
            "global_name": null, "avatar": null, "bot": true,
            "verified": true, "mfa_enabled": false, "flags": 0
        })
    }

    /// A fake Discord answering by channel id: 100 posts, 401/403/429/500
    /// fail as their ids say.
    async fn fake_discord() -> (String, Log) {
        let log: Log = Arc::default();
        let record = log.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                async move {
                    let path = uri.path().to_owned();
                    record.lock().unwrap().push(Seen {
                        method,
                        path: path.clone(),
                        headers,
                        body,
                    });
                    answer(&path)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, log)
    }

    fn answer(path: &str) -> Response {
        match path {
            "/api/v10/users/@me" => axum::Json(user_json()).into_response(),
            "/api/v10/channels/100/messages" => axum::Json(json!({
                "id": "555000111", "channel_id": "100", "content": "hello",
                "author": user_json(), "timestamp": "2025-01-01T00:00:00+00:00",
                "tts": false, "mention_everyone": false, "mentions": [],
                "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 0
            }))
            .into_response(),
            "/api/v10/channels/429/messages" => (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("Retry-After", "2"),
                    ("X-RateLimit-Limit", "5"),
                    ("X-RateLimit-Remaining", "0"),
                    ("X-RateLimit-Reset-After", "1.5"),
                    ("X-RateLimit-Bucket", "abcd1234"),
                    ("X-RateLimit-Scope", "user"),
                ],
                axum::Json(json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false})),
            )
                .into_response(),
            "/api/v10/channels/401/messages" => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
            )
                .into_response(),
            "/api/v10/channels/403/messages" => (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"message": "Missing Permissions", "code": 50013})),
            )
                .into_response(),
            "/api/v10/channels/400/messages" => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "message": "Invalid Form Body", "code": 50035,
                    "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}
                })),
            )
                .into_response(),
            "/api/v10/channels/500/messages" => StatusCode::BAD_GATEWAY.into_response(),
            // A posted message with two reactions.
            "/api/v10/channels/100/messages/555000111" => axum::Json(json!({
                "id": "555000111", "channel_id": "100", "content": "hello",
                "author": user_json(), "timestamp": "2025-01-01T00:00:00+00:00",
                "tts": false, "mention_everyone": false, "mentions": [],
                "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
                "reactions": [
                    {"count": 3, "count_details": {"burst": 0, "normal": 3}, "me": false, "me_burst": false, "emoji": {"id": null, "name": "🔥"}, "burst_colors": []},
                    {"count": 2, "count_details": {"burst": 0, "normal": 2}, "me": false, "me_burst": false, "emoji": {"id": null, "name": "👍"}, "burst_colors": []}
                ]
            }))
            .into_response(),
            // Channel 100 is a text channel, 150 a forum.
            "/api/v10/channels/100" => {
                axum::Json(json!({"id": "100", "type": 0, "name": "general"})).into_response()
            }
            "/api/v10/channels/150" => {
                axum::Json(json!({"id": "150", "type": 15, "name": "support"})).into_response()
            }
            "/api/v10/channels/100/threads" => (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": "9100", "type": 11, "parent_id": "100", "owner_id": "4242",
                    "guild_id": "77", "name": "t"
                })),
            )
                .into_response(),
            "/api/v10/channels/9100/messages" => axum::Json(json!({
                "id": "9101", "channel_id": "9100", "content": "first",
                "author": user_json(), "timestamp": "2025-01-01T00:00:00+00:00",
                "tts": false, "mention_everyone": false, "mentions": [],
                "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 0
            }))
            .into_response(),
            // A forum post: the thread and its first message share an id.
            "/api/v10/channels/150/threads" => (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": "9150", "type": 11, "parent_id": "150", "owner_id": "4242",
                    "guild_id": "77", "name": "t",
                    "message": {"id": "9150", "channel_id": "9150", "content": "first"}
                })),
            )
                .into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    fn adapter_with(base: &str, extra: serde_json::Value) -> Arc<dyn ChannelAdapter> {
        build(base, extra).unwrap()
    }

    fn build(base: &str, extra: serde_json::Value) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let token = token_file();
        let mut config = json!({
            "name": "community", "kind": "discord",
            "bot_token": {"file": token},
            "channel_id": "100", "guild_id": 77,
            "api_proxy": base, "timeout_secs": 2
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

    /// A token file per call: tests run in parallel, and changing the
    /// environment while other threads read it is not safe.
    fn token_file() -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("clarion-discord-token-{}-{n}", std::process::id()));
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        path
    }

    fn post(text: &str) -> OutboundPost {
        OutboundPost {
            text: text.into(),
            campaign: None,
            media: vec![],
        }
    }

    fn request<'a>(
        post: &'a OutboundPost,
        idempotency_key: &'a str,
        reply_to: Option<ReplyTo<'a>>,
    ) -> PublishRequest<'a> {
        PublishRequest {
            post,
            idempotency_key,
            reply_to,
            post_id: 7,
            target_id: 9,
            scheduled_at_ms: 1_764_158_400_000,
            budget: std::time::Duration::from_secs(30),
        }
    }

    async fn send(
        adapter: &dyn ChannelAdapter,
        post: &OutboundPost,
        reply_to: Option<ReplyTo<'_>>,
    ) -> Result<PublishReceipt, PublishError> {
        adapter.publish(request(post, "key-1", reply_to)).await
    }

    fn json_body(seen: &Seen) -> serde_json::Value {
        serde_json::from_slice(&seen.body).unwrap()
    }

    #[test]
    fn the_nonce_is_a_stable_25_character_hash_of_the_key() {
        // FNV-1a 128 test vectors: "" is the offset basis.
        assert_eq!(nonce_for(""), "6c62272e07bb014262b821756");
        assert_eq!(nonce_for("a"), "d228cb696f1a8caf78912b704");
        assert_eq!(nonce_for("key-1"), nonce_for("key-1"));
        assert_ne!(nonce_for("key-1"), nonce_for("key-1.2"));
        assert_eq!(nonce_for(&"x".repeat(300)).len(), NONCE_LEN);
    }

    #[tokio::test]
    async fn discord_plain_post_sends_content_with_a_nonce_and_reads_the_receipt() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({}));
        let receipt = send(adapter.as_ref(), &post("hello **world**"), None)
            .await
            .unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some("555000111".into()),
                url: Some("https://discord.com/channels/77/100/555000111".into()),
            }
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.path, "/api/v10/channels/100/messages");
        assert_eq!(seen.headers["authorization"], format!("Bot {TOKEN}"));
        assert_eq!(seen.headers["content-type"], "application/json");
        let body = json_body(&seen);
        assert_eq!(body["content"], "hello **world**");
        assert_eq!(body["nonce"], nonce_for("key-1"));
        assert_eq!(body["enforce_nonce"], true);
        assert_eq!(body["embeds"], json!([]));
        assert_eq!(body["attachments"], json!([]));
        assert!(body.get("message_reference").is_none(), "{body}");
    }

    #[tokio::test]
    async fn discord_embed_mode_sends_the_text_as_the_embed_description() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({"embed": true}));
        assert_eq!(
            adapter.length_rule(),
            LengthRule::new(4096, LengthUnit::Chars)
        );
        send(adapter.as_ref(), &post("in an embed"), None)
            .await
            .unwrap();
        let body = json_body(&log.lock().unwrap()[0]);
        assert!(body.get("content").is_none(), "{body}");
        assert_eq!(body["embeds"][0]["description"], "in an embed");
    }

    #[tokio::test]
    async fn discord_reply_part_references_the_parent_message() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({}));
        send(
            adapter.as_ref(),
            &post("part 2"),
            Some(ReplyTo {
                root: "111",
                parent: "222",
            }),
        )
        .await
        .unwrap();
        let body = json_body(&log.lock().unwrap()[0]);
        let reference = &body["message_reference"];
        assert_eq!(reference["message_id"], "222");
        assert_eq!(reference["channel_id"], "100");
        assert_eq!(reference["fail_if_not_exists"], false);

        let bad = send(
            adapter.as_ref(),
            &post("part 2"),
            Some(ReplyTo {
                root: "x",
                parent: "not-an-id",
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(bad.class, ErrorClass::Permanent);
        assert_eq!(
            bad.message,
            "cannot reply to `not-an-id`: not a Discord message id"
        );
        assert_eq!(
            log.lock().unwrap().len(),
            1,
            "nothing sent for a bad parent id"
        );
    }

    #[tokio::test]
    async fn discord_post_with_image_uploads_multipart_files_and_payload_json() {
        let (base, log) = fake_discord().await;
        let dir = std::env::temp_dir().join(format!("clarion-discord-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.png");
        let bytes = b"\x89PNG\r\n\x1a\nfake image bytes".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let adapter = adapter_with(&base, json!({}));
        let mut with_image = post("look");
        with_image.media.push(Media {
            path: path.clone(),
            alt: "a rising chart".into(),
            mime: "image/png".into(),
            bytes: bytes.len() as u64,
        });
        send(adapter.as_ref(), &with_image, None).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let seen = log.lock().unwrap()[0].clone();
        let content_type = seen.headers["content-type"].to_str().unwrap().to_owned();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect(&content_type);
        let parts = multipart_parts(&seen.body, boundary);
        assert_eq!(parts.len(), 2, "{parts:?}");
        let (payload_head, payload) = &parts[0];
        assert!(
            payload_head.contains("name=\"payload_json\""),
            "{payload_head}"
        );
        let payload: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(payload["content"], "look");
        assert_eq!(payload["nonce"], nonce_for("key-1"));
        assert_eq!(payload["enforce_nonce"], true);
        assert_eq!(
            payload["attachments"],
            json!([{"id": 0, "filename": "chart.png", "description": "a rising chart"}])
        );
        let (file_head, file) = &parts[1];
        assert!(
            file_head.contains("name=\"files[0]\"; filename=\"chart.png\""),
            "{file_head}"
        );
        assert!(file_head.contains("content-type: image/png"), "{file_head}");
        assert_eq!(file, &bytes);
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
    async fn discord_429_is_rate_limited_with_the_body_retry_after() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({"channel_id": 429}));
        let error = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_millis(1500)));
        assert_eq!(error.status, Some(429));
        assert_eq!(error.message, "HTTP 429: You are being rate limited.");
        assert_eq!(
            log.lock().unwrap().len(),
            1,
            "exactly one request, no retry inside publish"
        );
    }

    #[test]
    fn discord_429_without_a_body_falls_back_to_the_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        let error = classify(StatusCode::TOO_MANY_REQUESTS, &headers, "");
        assert_eq!(error.retry_after, Some(Duration::from_secs(2)));
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset-after", "0.25".parse().unwrap());
        let error = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            r#"{"message":"You are being rate limited.","global":true}"#,
        );
        assert_eq!(error.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(
            error.message,
            "HTTP 429: You are being rate limited. (global limit)"
        );
    }

    #[tokio::test]
    async fn discord_error_answers_are_classified_with_discords_message() {
        let (base, log) = fake_discord().await;
        let fail = |channel: u64| {
            let adapter = adapter_with(&base, json!({"channel_id": channel}));
            async move { send(adapter.as_ref(), &post("hi"), None).await.unwrap_err() }
        };
        let auth = fail(401).await;
        assert_eq!(
            (auth.class, auth.message.as_str(), auth.status),
            (
                ErrorClass::AuthExpired,
                "HTTP 401: 401: Unauthorized (code 0)",
                Some(401)
            )
        );
        let forbidden = fail(403).await;
        assert_eq!(
            (forbidden.class, forbidden.message.as_str()),
            (
                ErrorClass::Permanent,
                "HTTP 403: Missing Permissions (code 50013)"
            )
        );
        let invalid = fail(400).await;
        assert_eq!(
            (invalid.class, invalid.message.as_str()),
            (
                ErrorClass::Permanent,
                "HTTP 400: Invalid Form Body (code 50035): content: Must be 2000 or fewer in length."
            )
        );
        let down = fail(500).await;
        assert_eq!(
            (down.class, down.message.as_str()),
            (ErrorClass::Transient, "HTTP 502: Bad Gateway")
        );
        assert_eq!(log.lock().unwrap().len(), 4, "one request per publish");
        for error in [auth, forbidden, invalid, down] {
            assert!(!error.to_string().contains(TOKEN), "{error}");
        }
    }

    #[tokio::test]
    async fn discord_transport_failures_are_transient_or_unknown() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let adapter = adapter_with(&format!("http://{closed}"), json!({}));
        let refused = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(refused.class, ErrorClass::Transient, "{refused}");

        // Accepts the connection, never answers: the message may have landed.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let adapter = adapter_with(&format!("http://{addr}"), json!({"timeout_secs": 0.3}));
        let timeout = send(adapter.as_ref(), &post("hi"), None).await.unwrap_err();
        assert_eq!(timeout.class, ErrorClass::OutcomeUnknown, "{timeout}");
    }

    #[tokio::test]
    async fn discord_check_names_the_bot() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({}));
        assert_eq!(adapter.check().await.unwrap().detail, "bot clarion#0427");
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(
            (seen.method, seen.path.as_str()),
            (Method::GET, "/api/v10/users/@me")
        );
        assert_eq!(seen.headers["authorization"], format!("Bot {TOKEN}"));
    }

    #[test]
    fn discord_validate_and_settings() {
        let adapter = build("http://127.0.0.1:9", json!({})).unwrap();
        assert_eq!(
            adapter.length_rule(),
            LengthRule::new(2000, LengthUnit::Chars)
        );
        assert_eq!(
            adapter.idempotency(),
            Idempotency::honoured_for(Duration::from_secs(120))
        );
        assert_eq!(adapter.thread_style(), ThreadStyle::Native);
        assert_eq!(
            adapter
                .validate(&post(&"a".repeat(2001)))
                .unwrap_err()
                .message,
            "text is 2001 characters long; the limit is 2000"
        );
        assert_eq!(
            adapter.validate(&post(" ")).unwrap_err().message,
            "a Discord message needs text or an attachment"
        );
        assert!(adapter.validate(&post(&"é".repeat(2000))).is_ok());
        assert!(!format!("{adapter:?}").contains(TOKEN));

        let zero = build("http://127.0.0.1:9", json!({"channel_id": "0"})).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "channel `community` channel_id: not a Discord id (a positive integer, e.g. \"1234567890123456789\")"
        );
        let typo = build("http://127.0.0.1:9", json!({"channel": 1})).unwrap_err();
        assert!(
            typo.to_string()
                .starts_with("channel `community` (kind discord): unknown field `channel`"),
            "{typo}"
        );
        let proxy = build("ftp://x", json!({})).unwrap_err();
        assert_eq!(
            proxy.to_string(),
            "channel `community` api_proxy: must be http or https"
        );
    }

    #[tokio::test]
    async fn discord_post_counts_sum_the_reactions() {
        let (base, _log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({}));
        let counts = adapter.post_counts("555000111").await.unwrap().unwrap();
        assert_eq!(counts.likes, Some(5));
        assert_eq!((counts.reposts, counts.views), (None, None));
        // A deleted message: Discord answers 404 (Unknown Message).
        let gone = adapter.post_counts("555000112").await.unwrap_err();
        assert_eq!(gone.class, ErrorClass::Permanent, "{gone}");
        let bogus = adapter.post_counts("x/y").await.unwrap_err();
        assert_eq!(bogus.class, ErrorClass::Permanent, "{bogus}");
    }

    #[tokio::test]
    async fn discord_start_thread_in_a_text_channel_then_posts_in_it() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({}));
        assert!(adapter.starts_threads());
        let started = adapter
            .start_thread(
                "#12 A Fan on masto: when does the sale start?",
                request(&post("first"), "k1", None),
            )
            .await
            .unwrap();
        assert_eq!(started.place, "9100");
        assert_eq!(
            started.receipt.platform_post_id.as_deref(),
            Some("9100/9101"),
            "a message outside the configured channel is qualified"
        );
        assert_eq!(
            started.receipt.url.as_deref(),
            Some("https://discord.com/channels/77/9100/9101")
        );
        let seen = log.lock().unwrap().clone();
        let paths: Vec<_> = seen
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect();
        assert_eq!(
            paths,
            [
                "GET /api/v10/channels/100",
                "POST /api/v10/channels/100/threads",
                "POST /api/v10/channels/9100/messages"
            ]
        );
        let created: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
        assert_eq!(created["type"], json!(11));
        assert_eq!(created["auto_archive_duration"], json!(10080));
        assert!(created["name"].as_str().unwrap().starts_with("#12 A Fan"));
        let message: serde_json::Value = serde_json::from_slice(&seen[2].body).unwrap();
        assert_eq!(message["content"], json!("first"));

        // The channel's type is read once.
        adapter
            .start_thread("again", request(&post("second"), "k2", None))
            .await
            .unwrap();
        let gets = log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == Method::GET)
            .count();
        assert_eq!(gets, 1);
    }

    #[tokio::test]
    async fn discord_start_thread_in_a_forum_is_one_post() {
        let (base, log) = fake_discord().await;
        let adapter = adapter_with(&base, json!({"channel_id": "150"}));
        let long_title = "x".repeat(150);
        let started = adapter
            .start_thread(&long_title, request(&post("first"), "k1", None))
            .await
            .unwrap();
        assert_eq!(started.place, "9150");
        assert_eq!(
            started.receipt.platform_post_id.as_deref(),
            Some("9150/9150")
        );
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
        assert_eq!(body["name"].as_str().unwrap().chars().count(), 100);
        assert_eq!(body["message"]["content"], json!("first"));
        assert!(body.get("type").is_none(), "{body}");
    }
}
