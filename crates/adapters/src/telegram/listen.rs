//! Listening on Telegram: long polling `getUpdates` for the bot's messages.
//!
//! ```toml
//! [[channels]]
//! name = "announcements"
//! kind = "telegram"
//! listen = true          # no other keys: the channel's token and chat are used
//! ```
//!
//! Each call is one `getUpdates {offset, timeout: 25, allowed_updates: ["message"]}`
//! (Telegram holds it up to 25 s when there is nothing new). The cursor is the
//! next offset, the last `update_id` + 1. Telegram forgets updates only when a
//! later call passes that offset, which the runtime does only after it stored
//! the batch: a crash in between sees the same updates again. The first run
//! (no cursor) gets what Telegram still holds, up to 24 hours of updates.
//! A webhook on the bot, or another process polling with the same token,
//! makes Telegram answer 409 Conflict: only one consumer can read updates.
//!
//! Captured from `message` updates:
//! - private chats with the bot: `dm`;
//! - comments in the channel's linked discussion group (a reply to the
//!   automatic forward of a channel post, or to a message the configured
//!   channel sent there): `comment`, with `parent_id` the channel post (so it
//!   matches the receipt of what Clarion published);
//! - replies to the bot's own messages, and every message in a forum topic
//!   the bot opened (the chat bridge's topic per conversation): `reply`;
//! - messages naming the bot (`@username` mention or a text mention): `mention`.
//!
//! Ignored: messages from bots (`from.is_bot`, which also covers anonymous
//! admins and "send as channel", whose senders are Telegram's helper bots),
//! the bot's own and the configured channel's messages (automatic forwards
//! included), service messages, and anything else.
//!
//! With privacy mode on (BotFather's default) a bot in a group only receives
//! commands, mentions of it and replies to it; to see plain comments in a
//! discussion group make the bot an admin there or turn privacy mode off.
//! A bridge forum (`topics = true`) needs the bot as an admin anyway (to open
//! topics), so it hears every message there.
//!
//! `place` is the chat id, or for a message in a forum topic the topic's id
//! in message id form (below): one topic is one bridge conversation.
//!
//! Ids: messages of the configured chat use the plain message id (`"42"`),
//! the form the adapter's receipts take; messages of every other chat use
//! `"<chat id>/<message id>"`, which the adapter's publish understands as
//! "reply in that chat". `root_id` is the first message of the thread: a
//! forum topic's or discussion thread's `message_thread_id` (the topic's
//! first message, or the discussion group's copy of the channel post), else
//! the replied-to message, else the message itself. Telegram tells only the
//! immediate parent, so a reply chain outside topics and discussion threads
//! is grouped by its parent, not its true first message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind, ErrorClass,
    ListenBatch, Listener, PublishError, PushError,
};
use serde::Deserialize;
use serde_json::{Value, json};
use teloxide::types::Recipient;
use tokio::sync::OnceCell;

use super::TelegramAdapter;

/// How long Telegram may hold a `getUpdates` call open (seconds).
const POLL_SECS: u64 = 25;

pub(super) fn build(config: &ChannelConfig) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
    Ok(Some(Arc::new(TelegramListener {
        adapter: super::configure(config)?,
        client: crate::http_client(),
        me: OnceCell::new(),
    })))
}

#[derive(Debug)]
pub(super) struct TelegramListener {
    /// The channel's adapter: its token, API URL and configured chat.
    adapter: TelegramAdapter,
    client: reqwest::Client,
    /// The bot itself (`getMe`), asked once.
    me: OnceCell<Me>,
}

#[derive(Debug, Clone)]
struct Me {
    id: i64,
    username: String,
}

/// The parts of a Bot API `Message` the listener reads.
#[derive(Debug, Deserialize)]
struct TgMessage {
    message_id: i64,
    date: i64,
    chat: TgChat,
    from: Option<TgUser>,
    sender_chat: Option<TgChat>,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    entities: Vec<TgEntity>,
    #[serde(default)]
    caption_entities: Vec<TgEntity>,
    reply_to_message: Option<Box<TgMessage>>,
    message_thread_id: Option<i64>,
    /// Set on messages in a forum topic (not in General, and not on a
    /// reply thread of an ordinary group, which has a `message_thread_id` too).
    #[serde(default)]
    is_topic_message: bool,
    #[serde(default)]
    is_automatic_forward: bool,
    /// Present on the first message of a forum topic (a service message).
    forum_topic_created: Option<Value>,
    forward_origin: Option<TgOrigin>,
    /// Before Bot API 7.0; still read when `forward_origin` is absent.
    forward_from_chat: Option<TgChat>,
    forward_from_message_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct TgChat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TgUser {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TgEntity {
    #[serde(rename = "type")]
    kind: String,
    offset: usize,
    length: usize,
    user: Option<TgUser>,
}

/// `MessageOrigin`: for a channel post, the channel and the post's id there.
#[derive(Debug, Deserialize)]
struct TgOrigin {
    chat: Option<TgChat>,
    message_id: Option<i64>,
}

/// What a message without text is, for the inbox.
const CONTENT_KINDS: [(&str, &str); 14] = [
    ("photo", "[photo]"),
    ("video", "[video]"),
    ("animation", "[animation]"),
    ("audio", "[audio]"),
    ("document", "[document]"),
    ("sticker", "[sticker]"),
    ("voice", "[voice message]"),
    ("video_note", "[video message]"),
    ("location", "[location]"),
    ("venue", "[venue]"),
    ("contact", "[contact]"),
    ("poll", "[poll]"),
    ("dice", "[dice]"),
    ("story", "[story]"),
];

impl TelegramListener {
    fn token(&self) -> &str {
        self.adapter.token()
    }

    /// Calls one Bot API method with a JSON body; `Ok` is the `result`.
    async fn call(
        &self,
        method: &str,
        body: &Value,
        wait: Duration,
    ) -> Result<Value, PublishError> {
        // The URL teloxide's sends use: `<api_url>/bot<token>/<method>`.
        let mut url = self.adapter.bot.api_url();
        url.path_segments_mut()
            .map_err(|()| PublishError::new(ErrorClass::Permanent, "api_url cannot take a path"))?
            .push(&format!("bot{}", self.token()))
            .push(method);
        let network = |e: reqwest::Error| {
            // Nothing is changed by a read: a timeout is worth another try.
            crate::http::for_check(super::redact(super::classify_network(&e), self.token()))
        };
        let response = self
            .client
            .post(url)
            .json(body)
            .timeout(wait)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        let text = response.text().await.map_err(network)?;
        answer(status, &text).map_err(|e| super::redact(e, self.token()))
    }

    async fn me(&self) -> Result<&Me, PublishError> {
        self.me
            .get_or_try_init(|| async {
                let me = self.call("getMe", &json!({}), self.adapter.timeout).await?;
                let id = me.get("id").and_then(Value::as_i64);
                let username = me.get("username").and_then(Value::as_str);
                match (id, username) {
                    (Some(id), Some(username)) => Ok(Me {
                        id,
                        username: username.to_owned(),
                    }),
                    _ => Err(PublishError::new(
                        ErrorClass::Transient,
                        "getMe answered without the bot's id and username",
                    )),
                }
            })
            .await
    }

    /// Whether `chat` is the configured chat (by id, or by @username).
    fn is_configured(&self, chat: &TgChat) -> bool {
        match &self.adapter.chat {
            Recipient::Id(id) => id.0 == chat.id,
            Recipient::ChannelUsername(name) => chat
                .username
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(name.trim_start_matches('@'))),
        }
    }

    /// A message id in the adapter's form: plain in the configured chat,
    /// `chat/message` elsewhere.
    fn id_of(&self, chat: &TgChat, message_id: i64) -> String {
        if self.is_configured(chat) {
            message_id.to_string()
        } else {
            format!("{}/{message_id}", chat.id)
        }
    }

    /// The engagement in one `message`, `None` when it is not one, `Err`
    /// (a short reason) when it cannot be read.
    fn read(&self, raw: &Value, me: &Me) -> Result<Option<Engagement>, String> {
        let message: TgMessage =
            serde_json::from_value(raw.clone()).map_err(|e| format!("unreadable message: {e}"))?;
        let Some(from) = &message.from else {
            return Err(format!("message {} has no sender", message.message_id));
        };
        let own_chat = |chat: &Option<TgChat>| chat.as_ref().is_some_and(|c| self.is_configured(c));
        if from.is_bot
            || from.id == me.id
            || message.is_automatic_forward
            || own_chat(&message.sender_chat)
        {
            return Ok(None);
        }
        let text = match message.text.as_deref().or(message.caption.as_deref()) {
            Some(text) => text.to_owned(),
            None => match CONTENT_KINDS.iter().find(|(key, _)| raw.get(key).is_some()) {
                Some((_, label)) => (*label).to_owned(),
                // A service message (joins, pins, topic edits, ...).
                None => return Ok(None),
            },
        };
        // In a forum, a message that answers nothing in particular "replies"
        // to the topic's first (service) message: that is no reply.
        let reply = message
            .reply_to_message
            .as_deref()
            .filter(|r| r.forum_topic_created.is_none());
        // A topic the bot opened (the bridge's one topic per conversation):
        // every message in it answers the bot, like a reply.
        let in_bot_topic = message.is_topic_message
            && message.reply_to_message.as_deref().is_some_and(|r| {
                r.forum_topic_created.is_some() && r.from.as_ref().is_some_and(|f| f.id == me.id)
            });
        let comment_on = reply.filter(|r| r.is_automatic_forward || own_chat(&r.sender_chat));
        let entities = if message.text.is_some() {
            &message.entities
        } else {
            &message.caption_entities
        };
        let kind = if message.chat.kind == "private" {
            EngagementKind::Dm
        } else if comment_on.is_some() {
            EngagementKind::Comment
        } else if in_bot_topic
            || reply.is_some_and(|r| r.from.as_ref().is_some_and(|f| f.id == me.id))
        {
            EngagementKind::Reply
        } else if mentions(&text, entities, me) {
            EngagementKind::Mention
        } else {
            return Ok(None);
        };
        let chat = &message.chat;
        let parent_id = match (comment_on, reply) {
            (Some(forwarded), _) => Some(self.channel_post(chat, forwarded)),
            (None, Some(reply)) => Some(self.id_of(chat, reply.message_id)),
            (None, None) => None,
        };
        let item_id = self.id_of(chat, message.message_id);
        let root_id = match (message.message_thread_id, reply) {
            (Some(thread), _) => self.id_of(chat, thread),
            (None, Some(reply)) => self.id_of(chat, reply.message_id),
            (None, None) => item_id.clone(),
        };
        let url = match (&chat.username, chat.kind.as_str()) {
            (Some(username), kind) if kind != "private" => {
                Some(format!("https://t.me/{username}/{}", message.message_id))
            }
            _ => None,
        };
        let display_name = match &from.last_name {
            Some(last) if !last.is_empty() => format!("{} {last}", from.first_name),
            _ => from.first_name.clone(),
        };
        Ok(Some(Engagement {
            item_id,
            kind,
            author: EngagementAuthor {
                id: from.id.to_string(),
                handle: from
                    .username
                    .as_deref()
                    .map(|u| format!("@{u}"))
                    .unwrap_or_default(),
                display_name,
                roles: Vec::new(),
            },
            text,
            url,
            parent_id,
            root_id,
            // A forum topic is its own place (the bridge's conversation
            // threads), named by the topic's id in message id form.
            place: Some(match message.message_thread_id {
                Some(thread) if message.is_topic_message => self.id_of(chat, thread),
                _ => chat.id.to_string(),
            }),
            created_at_ms: message.date.saturating_mul(1000),
        }))
    }

    /// The channel post a discussion-group message is the automatic copy of
    /// (in the adapter's id form), or the copy itself when Telegram does not
    /// say.
    fn channel_post(&self, group: &TgChat, forwarded: &TgMessage) -> String {
        let origin = forwarded
            .forward_origin
            .as_ref()
            .and_then(|o| o.chat.as_ref().zip(o.message_id))
            .or_else(|| {
                forwarded
                    .forward_from_chat
                    .as_ref()
                    .zip(forwarded.forward_from_message_id)
            });
        match origin {
            Some((channel, post)) => self.id_of(channel, post),
            None => self.id_of(group, forwarded.message_id),
        }
    }
}

/// Whether the entities name the bot: an `@username` mention of it (case
/// does not matter) or a text mention of its user. Offsets are UTF-16 units.
fn mentions(text: &str, entities: &[TgEntity], me: &Me) -> bool {
    let units: Vec<u16> = text.encode_utf16().collect();
    entities.iter().any(|entity| match entity.kind.as_str() {
        "mention" => entity
            .offset
            .checked_add(entity.length)
            .and_then(|end| units.get(entity.offset..end))
            .map(String::from_utf16_lossy)
            .is_some_and(|name| {
                name.strip_prefix('@')
                    .is_some_and(|n| n.eq_ignore_ascii_case(&me.username))
            }),
        "text_mention" => entity.user.as_ref().is_some_and(|u| u.id == me.id),
        _ => false,
    })
}

/// Reads a Bot API answer: the `result` of `{"ok": true}`, else the error
/// classified by `error_code` (which teloxide would drop).
fn answer(status: reqwest::StatusCode, text: &str) -> Result<Value, PublishError> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        let class = if status.is_success() || status.is_server_error() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        return Err(PublishError::new(
            class,
            format!(
                "unreadable answer from Telegram (HTTP {}): {}",
                status.as_u16(),
                super::truncate(text.trim())
            ),
        )
        .with_status(status.as_u16()));
    };
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        return value.get("result").cloned().ok_or_else(|| {
            PublishError::new(
                ErrorClass::Transient,
                "Telegram answered ok without a result",
            )
        });
    }
    let code = value
        .get("error_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(status.as_u16());
    let description = value
        .get("description")
        .and_then(Value::as_str)
        .map(super::truncate)
        .unwrap_or_else(|| format!("HTTP {code}"));
    let retry_after = value
        .pointer("/parameters/retry_after")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    let error = match code {
        429 => {
            PublishError::new(ErrorClass::RateLimited, description).with_retry_after(retry_after)
        }
        // A revoked token is 401; a malformed one 404.
        401 | 404 => PublishError::new(
            ErrorClass::AuthExpired,
            "Unauthorized: the bot token was rejected (revoked or wrong)",
        ),
        409 => {
            // A webhook stays until someone deletes it; another poller may
            // be a restart overlapping this process and go away by itself.
            let class = if description.contains("webhook") {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
            PublishError::new(
                class,
                format!(
                    "another consumer of this bot's updates is active (a webhook is set, or \
                     another process polls getUpdates with the same token); only one can read \
                     updates: {description}"
                ),
            )
        }
        500..=599 => PublishError::new(ErrorClass::Transient, description),
        _ => PublishError::new(ErrorClass::Permanent, description),
    };
    Err(error.with_status(code))
}

#[async_trait]
impl Listener for TelegramListener {
    fn kind(&self) -> &'static str {
        "telegram"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        if self.adapter.webhook_secret.is_some() {
            // Webhook mode: updates arrive through `receive_push`; polling
            // getUpdates would only get 409 Conflict.
            tokio::time::sleep(Duration::from_secs(POLL_SECS)).await;
            return Ok(ListenBatch::default());
        }
        let me = self.me().await?.clone();
        let offset = cursor.and_then(|c| match c.trim().parse::<i64>() {
            Ok(offset) => Some(offset),
            Err(_) => {
                tracing::warn!(
                    cursor = c,
                    "stored Telegram cursor is not an offset; starting over"
                );
                None
            }
        });
        let mut body = json!({"timeout": POLL_SECS, "allowed_updates": ["message"]});
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        let wait = Duration::from_secs(POLL_SECS) + self.adapter.timeout;
        let result = self.call("getUpdates", &body, wait).await?;
        let Some(updates) = result.as_array() else {
            return Err(PublishError::new(
                ErrorClass::Transient,
                "getUpdates answered without a list of updates",
            ));
        };
        let mut batch = ListenBatch::default();
        let mut next: Option<i64> = None;
        for update in updates {
            let Some(id) = update.get("update_id").and_then(Value::as_i64) else {
                batch.skipped.push("an update without update_id".to_owned());
                continue;
            };
            next = next.max(id.checked_add(1));
            // `allowed_updates` asks for messages only; anything else that
            // still arrives is passed over.
            let Some(message) = update.get("message") else {
                continue;
            };
            match self.read(message, &me) {
                Ok(Some(engagement)) => batch.events.push(engagement),
                Ok(None) => {}
                Err(reason) => batch.skipped.push(format!("update {id}: {reason}")),
            }
        }
        batch.cursor = next
            .filter(|next| offset.is_none_or(|offset| *next > offset))
            .map(|next| next.to_string());
        Ok(batch)
    }

    /// One update pushed by Telegram to the webhook. The secret header is
    /// compared in constant time before the body is read.
    async fn receive_push(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ListenBatch, PushError> {
        use subtle::ConstantTimeEq;
        let Some(secret) = &self.adapter.webhook_secret else {
            return Err(PushError::NotEnabled);
        };
        let given = headers
            .iter()
            .find(|(name, _)| name == "x-telegram-bot-api-secret-token")
            .map(|(_, value)| value.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(secret.expose().as_bytes())) {
            return Err(PushError::Unauthorized);
        }
        let update: Value = serde_json::from_slice(body)
            .map_err(|e| PushError::Malformed(format!("not a JSON update: {e}")))?;
        if update.get("update_id").and_then(Value::as_i64).is_none() {
            return Err(PushError::Malformed("an update without update_id".into()));
        }
        let me = self
            .me()
            .await
            .map_err(|e| PushError::Unavailable(e.to_string()))?
            .clone();
        let mut batch = ListenBatch::default();
        if let Some(message) = update.get("message") {
            match self.read(message, &me) {
                Ok(Some(engagement)) => batch.events.push(engagement),
                Ok(None) => {}
                Err(reason) => return Err(PushError::Malformed(reason)),
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{
        AdapterContext, AdapterFactory, ChannelAdapter, OutboundPost, PublishRequest, ReplyTo,
    };

    use super::super::Factory;
    use super::*;

    const TOKEN: &str = "123456:LISTEN-token_xyz";
    const CHANNEL: i64 = -1001234567890;
    const GROUP: i64 = -1009999;
    const BOT: i64 = 123456;

    /// One request the fake saw: the method (lower case) and its JSON body.
    type Log = Arc<Mutex<Vec<(String, Value)>>>;

    /// What `getUpdates` answers: status and body, by call.
    type Script = Arc<Mutex<Vec<(StatusCode, Value)>>>;

    fn ok(result: Value) -> (StatusCode, Value) {
        (StatusCode::OK, json!({"ok": true, "result": result}))
    }

    /// A fake Bot API. `getMe` names the bot; `getUpdates` answers the
    /// script in order (then an empty list, like a long poll that timed
    /// out); `sendMessage` echoes a message in the requested chat.
    async fn fake(script: Vec<(StatusCode, Value)>) -> (String, Log) {
        let log: Log = Arc::default();
        let script: Script = Arc::new(Mutex::new(script));
        let record = log.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
            let record = record.clone();
            let script = script.clone();
            async move {
                let Some(method) = uri.path().strip_prefix(&format!("/bot{TOKEN}/")) else {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(
                            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
                        ),
                    )
                        .into_response();
                };
                let method = method.to_ascii_lowercase();
                let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                record.lock().unwrap().push((method.clone(), body.clone()));
                let (status, value) = match method.as_str() {
                    "getme" => ok(json!({
                        "id": BOT, "is_bot": true, "first_name": "Clarion",
                        "username": "Clarion_Bot", "can_join_groups": true,
                        "can_read_all_group_messages": true, "supports_inline_queries": false,
                        "can_connect_to_business": false, "has_main_web_app": false
                    })),
                    "getupdates" => {
                        let mut script = script.lock().unwrap();
                        if script.is_empty() {
                            ok(json!([]))
                        } else {
                            script.remove(0)
                        }
                    }
                    "sendmessage" => {
                        let chat = body["chat_id"].as_i64().unwrap_or_default();
                        ok(json!({
                            "message_id": 77, "date": 1735689600,
                            "chat": {"id": chat, "type": "supergroup", "title": "Somewhere"},
                            "from": {"id": BOT, "is_bot": true, "first_name": "Clarion", "username": "Clarion_Bot"},
                            "text": body["text"]
                        }))
                    }
                    _ => (
                        StatusCode::BAD_REQUEST,
                        json!({"ok": false, "error_code": 400, "description": "Bad Request: method not found"}),
                    ),
                };
                respond(status, value)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, log)
    }

    fn respond(status: StatusCode, value: Value) -> Response {
        (status, axum::Json(value)).into_response()
    }

    fn config(base: &str, test: &str) -> (ChannelConfig, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "clarion-telegram-listen-{}-{test}",
            std::process::id()
        ));
        std::fs::write(&path, TOKEN).unwrap();
        let config = serde_json::from_value(json!({
            "name": "news", "kind": "telegram", "listen": true,
            "bot_token": {"file": path}, "chat_id": CHANNEL,
            "api_url": base, "timeout_secs": 5
        }))
        .unwrap();
        (config, path)
    }

    fn listener(base: &str, test: &str) -> Arc<dyn Listener> {
        let (config, path) = config(base, test);
        let built = Factory.build_listener(&config, &AdapterContext::default());
        std::fs::remove_file(path).unwrap();
        built.unwrap().expect("telegram listens")
    }

    fn adapter(base: &str, test: &str) -> Arc<dyn ChannelAdapter> {
        let (config, path) = config(base, test);
        let built = Factory.build(&config, &AdapterContext::default());
        std::fs::remove_file(path).unwrap();
        built.unwrap()
    }

    fn user(id: i64, name: &str) -> Value {
        json!({"id": id, "is_bot": false, "first_name": name, "last_name": "Doe", "username": name.to_lowercase()})
    }

    fn group() -> Value {
        json!({"id": GROUP, "type": "supergroup", "title": "Clarion chat", "username": "clarion_chat"})
    }

    fn channel() -> Value {
        json!({"id": CHANNEL, "type": "channel", "title": "Clarion News", "username": "clarion_news"})
    }

    fn update(id: i64, message: Value) -> Value {
        json!({"update_id": id, "message": message})
    }

    /// The discussion group's automatic copy of channel post 42.
    fn forwarded_post() -> Value {
        json!({
            "message_id": 500, "date": 1735689000, "chat": group(),
            "from": {"id": 777000, "is_bot": false, "first_name": "Telegram"},
            "sender_chat": channel(), "is_automatic_forward": true,
            "forward_origin": {"type": "channel", "chat": channel(), "message_id": 42, "date": 1735688990},
            "forward_from_chat": channel(), "forward_from_message_id": 42,
            "text": "Release 1.2 is out"
        })
    }

    /// One of each kind, plus what must be ignored, in one batch.
    fn mixed_batch() -> Vec<Value> {
        vec![
            // A mention in a group ("é" is one UTF-16 unit, the emoji two).
            update(
                1000,
                json!({
                    "message_id": 10, "date": 1735689600, "chat": group(), "from": user(11, "Alice"),
                    "text": "🎉 hé @clarion_bot look",
                    "entities": [{"type": "mention", "offset": 6, "length": 12}]
                }),
            ),
            // A reply to one of the bot's messages in that group.
            update(
                1001,
                json!({
                    "message_id": 11, "date": 1735689601, "chat": group(), "from": user(12, "Bob"),
                    "text": "thanks!",
                    "reply_to_message": {
                        "message_id": 9, "date": 1735689500, "chat": group(),
                        "from": {"id": BOT, "is_bot": true, "first_name": "Clarion", "username": "Clarion_Bot"},
                        "text": "hello"
                    }
                }),
            ),
            // A direct message.
            update(
                1002,
                json!({
                    "message_id": 3, "date": 1735689602,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol", "username": "carol"},
                    "from": user(13, "Carol"), "text": "hi bot"
                }),
            ),
            // A comment under channel post 42, in the discussion thread.
            update(
                1003,
                json!({
                    "message_id": 501, "date": 1735689603, "chat": group(), "from": user(14, "Dan"),
                    "message_thread_id": 500,
                    "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}],
                    "reply_to_message": forwarded_post()
                }),
            ),
            // Ignored: another bot mentioning us, the automatic forward
            // itself, the channel speaking in its group, a plain group
            // message, a service message in a DM.
            update(
                1004,
                json!({
                    "message_id": 12, "date": 1735689604, "chat": group(),
                    "from": {"id": 99, "is_bot": true, "first_name": "Other", "username": "other_bot"},
                    "text": "@clarion_bot ping",
                    "entities": [{"type": "mention", "offset": 0, "length": 12}]
                }),
            ),
            update(1005, forwarded_post()),
            update(
                1006,
                json!({
                    "message_id": 502, "date": 1735689605, "chat": group(),
                    "from": {"id": 136817688, "is_bot": false, "first_name": "Channel"},
                    "sender_chat": channel(), "text": "we answer as the channel",
                    "reply_to_message": forwarded_post()
                }),
            ),
            update(
                1007,
                json!({
                    "message_id": 13, "date": 1735689606, "chat": group(), "from": user(15, "Eve"),
                    "text": "@someone_else hello",
                    "entities": [{"type": "mention", "offset": 0, "length": 13}]
                }),
            ),
            update(
                1008,
                json!({
                    "message_id": 4, "date": 1735689607,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol"},
                    "from": user(13, "Carol"), "pinned_message": {"message_id": 3, "date": 1, "chat": {"id": 13, "type": "private"}}
                }),
            ),
        ]
    }

    #[tokio::test]
    async fn mentions_replies_dms_and_comments_become_engagements() {
        let (base, log) = fake(vec![ok(Value::Array(mixed_batch()))]).await;
        let listener = listener(&base, "kinds");
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(batch.skipped, Vec::<String>::new());
        assert_eq!(batch.cursor.as_deref(), Some("1009"));
        assert_eq!(batch.wait, Duration::ZERO);
        let summary: Vec<_> = batch
            .events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.item_id.as_str(),
                    e.parent_id.as_deref(),
                    e.root_id.as_str(),
                    e.text.as_str(),
                )
            })
            .collect();
        let g = |id: i64| format!("{GROUP}/{id}");
        assert_eq!(
            summary,
            [
                (
                    EngagementKind::Mention,
                    g(10).as_str(),
                    None,
                    g(10).as_str(),
                    "🎉 hé @clarion_bot look"
                ),
                (
                    EngagementKind::Reply,
                    g(11).as_str(),
                    Some(g(9).as_str()),
                    g(9).as_str(),
                    "thanks!"
                ),
                (EngagementKind::Dm, "13/3", None, "13/3", "hi bot"),
                // The parent is the channel post, as the adapter's receipt names it.
                (
                    EngagementKind::Comment,
                    g(501).as_str(),
                    Some("42"),
                    g(500).as_str(),
                    "[photo]"
                ),
            ]
        );
        let mention = &batch.events[0];
        assert_eq!(
            mention.author,
            EngagementAuthor {
                id: "11".into(),
                handle: "@alice".into(),
                display_name: "Alice Doe".into(),
                roles: Vec::new(),
            }
        );
        assert_eq!(mention.place.as_deref(), Some(GROUP.to_string().as_str()));
        assert_eq!(mention.url.as_deref(), Some("https://t.me/clarion_chat/10"));
        assert_eq!(mention.created_at_ms, 1_735_689_600_000);
        assert_eq!(batch.events[2].url, None, "no links into private chats");

        let seen = log.lock().unwrap().clone();
        assert_eq!(seen[0].0, "getme");
        assert_eq!(
            seen[1],
            (
                "getupdates".to_owned(),
                json!({"timeout": 25, "allowed_updates": ["message"]})
            )
        );
    }

    #[tokio::test]
    async fn the_cursor_is_the_next_offset_and_confirms_the_batch() {
        let first = vec![
            update(
                41,
                json!({
                    "message_id": 5, "date": 1735689600,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol"},
                    "from": user(13, "Carol"), "text": "one"
                }),
            ),
            update(
                42,
                json!({
                    "message_id": 6, "date": 1735689601,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol"},
                    "from": user(13, "Carol"), "text": "two"
                }),
            ),
        ];
        let (base, log) = fake(vec![ok(Value::Array(first))]).await;
        let listener = listener(&base, "cursor");
        let batch = listener.next_batch(Some("40")).await.unwrap();
        assert_eq!(batch.events.len(), 2);
        let cursor = batch.cursor.unwrap();
        assert_eq!(cursor, "43");
        listener.acknowledge(&cursor).await.unwrap();

        let again = listener.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None, "nothing new keeps the stored cursor");
        let offsets: Vec<_> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(method, _)| method == "getupdates")
            .map(|(_, body)| body["offset"].clone())
            .collect();
        assert_eq!(offsets, [json!(40), json!(43)]);
        let getme = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == "getme")
            .count();
        assert_eq!(getme, 1, "getMe is asked once");
    }

    #[tokio::test]
    async fn a_malformed_update_is_skipped_and_the_rest_kept() {
        let updates = vec![
            // No `chat`: unreadable.
            update(
                7,
                json!({"message_id": 1, "date": 1735689600, "from": user(13, "Carol"), "text": "x"}),
            ),
            json!({"message": {"message_id": 2}}),
            update(
                8,
                json!({
                    "message_id": 2, "date": 1735689601,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol"},
                    "from": user(13, "Carol"), "text": "still here"
                }),
            ),
        ];
        let (base, _) = fake(vec![ok(Value::Array(updates))]).await;
        let batch = listener(&base, "malformed").next_batch(None).await.unwrap();
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].text, "still here");
        assert_eq!(
            batch.skipped,
            [
                "update 7: unreadable message: missing field `chat`",
                "an update without update_id"
            ]
        );
        assert_eq!(batch.cursor.as_deref(), Some("9"));
    }

    #[tokio::test]
    async fn a_forum_topic_is_the_root_and_its_opening_message_no_parent() {
        let topic_opened = json!({
            "message_id": 300, "date": 1735689000, "chat": group(),
            "from": {"id": BOT, "is_bot": true, "first_name": "Clarion", "username": "Clarion_Bot"},
            "forum_topic_created": {"name": "Support", "icon_color": 7322096},
            "message_thread_id": 300, "is_topic_message": true
        });
        let updates = vec![update(
            1,
            json!({
                "message_id": 301, "date": 1735689600, "chat": group(), "from": user(11, "Alice"),
                "message_thread_id": 300, "is_topic_message": true,
                "reply_to_message": topic_opened,
                "text": "@clarion_bot help",
                "entities": [{"type": "mention", "offset": 0, "length": 12}]
            }),
        )];
        let (base, _) = fake(vec![ok(Value::Array(updates))]).await;
        let batch = listener(&base, "topic").next_batch(None).await.unwrap();
        let event = &batch.events[0];
        // The bot opened the topic: every message in it answers the bot, but
        // the topic's service message is no parent.
        assert_eq!(event.kind, EngagementKind::Reply);
        assert_eq!(event.parent_id, None);
        assert_eq!(event.root_id, format!("{GROUP}/300"));
        assert_eq!(
            event.place.as_deref(),
            Some(format!("{GROUP}/300").as_str())
        );
    }

    #[tokio::test]
    async fn in_a_topic_someone_else_opened_only_mentions_and_replies_count() {
        let opened_by = |who: Value| {
            json!({
                "message_id": 400, "date": 1735689000, "chat": group(), "from": who,
                "forum_topic_created": {"name": "Chat", "icon_color": 7322096},
                "message_thread_id": 400, "is_topic_message": true
            })
        };
        let in_topic = |id: i64, text: &str, opened: Value| {
            json!({
                "message_id": id, "date": 1735689600, "chat": group(), "from": user(11, "Alice"),
                "message_thread_id": 400, "is_topic_message": true,
                "reply_to_message": opened, "text": text
            })
        };
        let updates = vec![
            // Chatter in a topic a person opened: not for the bot.
            update(1, in_topic(401, "lunch?", opened_by(user(12, "Bob")))),
            // Telegram's reply threads in an ordinary group carry a
            // message_thread_id but no is_topic_message: the chat is the place.
            update(
                2,
                json!({
                    "message_id": 402, "date": 1735689601, "chat": group(), "from": user(11, "Alice"),
                    "message_thread_id": 390, "text": "hi @clarion_bot",
                    "entities": [{"type": "mention", "offset": 3, "length": 12}]
                }),
            ),
        ];
        let (base, _) = fake(vec![ok(Value::Array(updates))]).await;
        let batch = listener(&base, "topic-other")
            .next_batch(None)
            .await
            .unwrap();
        assert_eq!(batch.events.len(), 1, "{:?}", batch.events);
        let mention = &batch.events[0];
        assert_eq!(mention.item_id, format!("{GROUP}/402"));
        assert_eq!(mention.kind, EngagementKind::Mention);
        assert_eq!(mention.place.as_deref(), Some(GROUP.to_string().as_str()));
    }

    #[tokio::test]
    async fn a_rate_limit_waits_as_told_and_the_retry_asks_from_the_same_offset() {
        let (base, log) = fake(vec![
            (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 34", "parameters": {"retry_after": 34}}),
            ),
            ok(json!([update(
                43,
                json!({
                    "message_id": 8, "date": 1735689600,
                    "chat": {"id": 13, "type": "private", "first_name": "Carol"},
                    "from": user(13, "Carol"), "text": "after the wait"
                })
            )])),
        ])
        .await;
        let listener = listener(&base, "limited");
        let error = listener.next_batch(Some("43")).await.unwrap_err();
        assert_eq!(
            (error.class, error.retry_after, error.message.as_str()),
            (
                ErrorClass::RateLimited,
                Some(Duration::from_secs(34)),
                "Too Many Requests: retry after 34"
            )
        );
        // The failed call returned no cursor; the runtime asks again with
        // the stored one and gets the update it had not confirmed.
        let batch = listener.next_batch(Some("43")).await.unwrap();
        assert_eq!(batch.events[0].text, "after the wait");
        assert_eq!(batch.cursor.as_deref(), Some("44"));
        let offsets: Vec<_> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(method, _)| method == "getupdates")
            .map(|(_, body)| body["offset"].clone())
            .collect();
        assert_eq!(offsets, [json!(43), json!(43)]);
    }

    #[tokio::test]
    async fn a_rejected_token_is_auth_expired_and_never_printed() {
        let (base, _) = fake(vec![]).await;
        let path = std::env::temp_dir().join(format!(
            "clarion-telegram-listen-{}-revoked",
            std::process::id()
        ));
        std::fs::write(&path, "123456:REVOKED-token").unwrap();
        let config: ChannelConfig = serde_json::from_value(json!({
            "name": "news", "kind": "telegram", "listen": true,
            "bot_token": {"file": path}, "chat_id": CHANNEL, "api_url": base
        }))
        .unwrap();
        let listener = Factory
            .build_listener(&config, &AdapterContext::default())
            .unwrap()
            .unwrap();
        std::fs::remove_file(path).unwrap();
        let error = listener.next_batch(None).await.unwrap_err();
        assert_eq!(
            (error.class, error.status),
            (ErrorClass::AuthExpired, Some(401))
        );
        assert!(!error.to_string().contains("REVOKED"), "{error}");
        assert!(!format!("{listener:?}").contains("REVOKED"));
    }

    #[tokio::test]
    async fn a_webhook_or_second_poller_is_named_in_the_conflict() {
        let (base, _) = fake(vec![
            (
                StatusCode::CONFLICT,
                json!({"ok": false, "error_code": 409, "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}),
            ),
            (
                StatusCode::CONFLICT,
                json!({"ok": false, "error_code": 409, "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}),
            ),
        ])
        .await;
        let listener = listener(&base, "conflict");
        let webhook = listener.next_batch(Some("5")).await.unwrap_err();
        assert_eq!(webhook.class, ErrorClass::Permanent);
        assert!(
            webhook
                .message
                .starts_with("another consumer of this bot's updates is active"),
            "{webhook}"
        );
        assert!(webhook.message.contains("deleteWebhook"), "{webhook}");
        let other = listener.next_batch(Some("5")).await.unwrap_err();
        assert_eq!(
            (other.class, other.status),
            (ErrorClass::Transient, Some(409))
        );
    }

    async fn reply(adapter: &dyn ChannelAdapter, parent: &str) -> Result<String, PublishError> {
        let post = OutboundPost {
            text: "thanks".into(),
            campaign: None,
            media: vec![],
        };
        let receipt = adapter
            .publish(PublishRequest {
                post: &post,
                idempotency_key: "k",
                reply_to: Some(ReplyTo {
                    root: parent,
                    parent,
                }),
                post_id: 1,
                target_id: 2,
                scheduled_at_ms: 0,
                budget: Duration::from_secs(10),
            })
            .await?;
        Ok(receipt.platform_post_id.unwrap_or_default())
    }

    #[tokio::test]
    async fn a_reply_to_a_qualified_parent_goes_to_that_chat() {
        let (base, log) = fake(vec![]).await;
        let adapter = adapter(&base, "reply");
        let id = reply(adapter.as_ref(), &format!("{GROUP}/11"))
            .await
            .unwrap();
        assert_eq!(
            id,
            format!("{GROUP}/77"),
            "the receipt names the other chat"
        );
        let plain = reply(adapter.as_ref(), "41").await.unwrap();
        assert_eq!(plain, "77");
        let same = reply(adapter.as_ref(), &format!("{CHANNEL}/40"))
            .await
            .unwrap();
        assert_eq!(same, "77", "the configured chat by id is the plain form");

        let sent: Vec<Value> = log.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(sent[0]["chat_id"], json!(GROUP));
        assert_eq!(sent[0]["reply_parameters"], json!({"message_id": 11}));
        assert_eq!(sent[1]["chat_id"], json!(CHANNEL));
        assert_eq!(
            sent[1]["reply_parameters"],
            json!({"message_id": 41, "allow_sending_without_reply": true})
        );
        assert_eq!(sent[2]["chat_id"], json!(CHANNEL));

        let bad = reply(adapter.as_ref(), "-100/abc").await.unwrap_err();
        assert_eq!(bad.class, ErrorClass::Permanent);
        assert_eq!(
            log.lock().unwrap().len(),
            3,
            "nothing sent for a bad parent"
        );
    }

    #[test]
    fn mentions_compare_utf16_ranges_and_ignore_case() {
        let me = Me {
            id: BOT,
            username: "Clarion_Bot".into(),
        };
        let entity = |kind: &str, offset, length| TgEntity {
            kind: kind.into(),
            offset,
            length,
            user: None,
        };
        assert!(mentions(
            "😀 @CLARION_bot",
            &[entity("mention", 3, 12)],
            &me
        ));
        assert!(!mentions(
            "😀 @clarion_bo",
            &[entity("mention", 3, 11)],
            &me
        ));
        assert!(!mentions("@clarion_bot", &[entity("mention", 5, 40)], &me));
        assert!(!mentions("@clarion_bot", &[entity("hashtag", 0, 12)], &me));
        let text_mention = TgEntity {
            user: Some(TgUser {
                id: BOT,
                is_bot: true,
                first_name: "Clarion".into(),
                last_name: None,
                username: None,
            }),
            ..entity("text_mention", 0, 7)
        };
        assert!(mentions("Clarion, hi", &[text_mention], &me));
    }
}
