//! The Discord listener: mentions of the bot, replies to its messages and
//! DMs, from the gateway, normalized into [`Engagement`]s.
//!
//! The gateway session is serenity's [`Client`], started on the first
//! [`Listener::next_batch`] after `GET /users/@me` (the bot's id, and a 401
//! for a bad token) and `GET /gateway/bot` (the gateway URL and the session
//! start budget), both through `api_proxy` when it is set. serenity connects
//! with plain `tokio-tungstenite`, so a `ws://` URL works as well as
//! Discord's `wss://` one: no TLS workaround is needed, and the tests point
//! `api_proxy` at a fake Discord whose `/gateway/bot` names a local fake
//! gateway. serenity heartbeats, resumes after a dropped connection and
//! re-identifies when a session cannot be resumed; the listener only turns
//! its `message` events into engagements.
//!
//! The bot needs View Channel where it should listen, and Read Message
//! History in the configured channel for the backfill.
//!
//! # What is captured
//!
//! - **Mention**: a guild message whose `mentions` names the bot, or whose
//!   `mention_roles` names one of the bot's roles in the configured guild
//!   (read with `GET /guilds/{guild_id}/members/{bot}` at each session start;
//!   needs `guild_id`; without it, or when Discord refuses the read, role
//!   mentions are not followed). `@everyone` is not followed.
//! - **Reply**: an answer to one of the bot's own messages (the gateway's
//!   `referenced_message.author`, or a message this process saw the bot send).
//!   It wins over Mention when both apply (a reply with its ping on).
//! - **Dm**: any message in a DM channel (no `guild_id`), replies included.
//! - **Reply** also: any message in a thread the bot started (the chat
//!   bridge's one thread per conversation). Threads are learnt from
//!   `THREAD_CREATE` and, after a restart, from the active threads of
//!   `GUILD_CREATE` and `THREAD_LIST_SYNC` (the `GUILDS` intent); `place` is
//!   the thread's id. Their text needs `message_content = true` unless the
//!   message mentions the bot.
//!
//! Messages by bots (the bot itself included, so the bridge never echoes its
//! own posts), webhooks and system messages (joins, pins, ...) are never
//! yielded.
//!
//! # Intents and message text
//!
//! The session asks for `GUILDS` (1 << 0: thread events), `GUILD_MESSAGES`
//! (1 << 9) and `DIRECT_MESSAGES` (1 << 12) only. Without the privileged `MESSAGE_CONTENT` intent Discord
//! still sends the text of DMs and of messages that mention the bot (a reply
//! with its ping left on is one), and that covers most engagements. A reply
//! to the bot with the ping switched off, and backfilled messages that do not
//! mention the bot, arrive with empty text. For their text, turn on "Message
//! Content Intent" (Developer Portal > Bot > Privileged Gateway Intents) and
//! set `message_content = true`. Without the Portal switch, Discord closes
//! the gateway with 4014 and the listener fails with a permanent error
//! naming the intent.
//!
//! # Ids
//!
//! The same opaque form as the publisher's receipts (see the parent module):
//! a message in the configured channel is its plain message id, a message
//! anywhere else is `"{channel_id}/{message_id}"`. `place` is the channel id.
//! `parent_id` is the message a reply answers. `root_id` is the start of the
//! reply chain when this process knows it: every message the gateway
//! delivers to the listener (the bot's own posts included) and every
//! backfilled message is remembered (the newest 20,000), so a reply to a
//! reply to the bot's post names that post. Otherwise it is the furthest
//! message Discord names (the parent's own parent, which the gateway
//! includes in `referenced_message`), else the parent, and for a message
//! that answers nothing the message itself. So after a process restart a
//! long chain can start a second conversation; the inbox can still join
//! them on `parent_id`.
//! The `url` is `https://discord.com/channels/{guild_id or @me}/{channel}/{message}`.
//! A backfilled message has no `guild_id`, so it gets a URL only when
//! `guild_id` is configured.
//!
//! # Cursor
//!
//! The gateway has no durable cursor. The cursor is the newest message id
//! (a snowflake, so a time) the listener has read. It is only used to
//! **backfill the configured channel**: after each READY (a start or a
//! re-identify, not a resume, which replays the missed events itself) with a
//! stored cursor, the listener pages through `GET /channels/{id}/messages?after=…&limit=100`
//! and yields what qualifies before any gateway event. The first page starts
//! 30 seconds before the cursor, because serenity hands each event to its
//! own task and two messages can be processed out of order. The runtime
//! dedupes on `item_id`, so the overlap costs nothing. DMs and other
//! channels sent while the listener was down are **not** backfilled.
//! Without a stored cursor (the first run) the listener starts from now.
//! An unreadable stored cursor is treated the same way, with a warning.
//!
//! A session nobody has asked for events for 5 minutes (the runtime lost its
//! lease to another process, or stopped) is closed, so its events do not
//! pile up in memory; the next call opens a new one and backfills.
//!
//! # Failures
//!
//! A rejected token (HTTP 401, gateway close 4004) is `AuthExpired`.
//! Refused intents (close 4013, 4014) are `Permanent` and name the intents.
//! When Discord's session start budget (`GET /gateway/bot`) is used up, the
//! listener is `RateLimited` until it resets, because burning through it gets
//! the token reset. serenity reconnects by itself on anything else. A
//! backfill the bot may not read (403: no Read Message History) fails one
//! batch as `Permanent` and is given up; live events go on.
//! serenity drops a dispatch it cannot decode before any handler sees it
//! (with a warning in the log), so `skipped` only lists backfilled messages
//! that could not be read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind, ErrorClass,
    ListenBatch, Listener, PublishError, Secret,
};
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serenity::client::{Client, ClientBuilder, Context, EventHandler};
use serenity::gateway::{GatewayError, ShardManager};
use serenity::http::{HttpBuilder, Route};
use serenity::model::channel::{GuildChannel, Message, MessageReferenceKind, MessageType};
use serenity::model::event::ThreadListSyncEvent;
use serenity::model::gateway::{GatewayIntents, Ready};
use serenity::model::guild::Guild;
use serenity::model::id::{ChannelId, GuildId, MessageId, RoleId, UserId};
use serenity::model::user::{CurrentUser, User};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Configured, DISCORD_ORIGIN, api_url, classify, message_key};
use crate::http::{classify_transport, for_check};

/// How long one `next_batch` waits for gateway events before it returns an
/// empty batch (so the runtime can renew its lease).
const WAIT: Duration = Duration::from_secs(25);
/// A session nobody asked for events this long is closed (the runtime lost
/// its lease to another process, or stopped): its events would pile up in
/// memory. The next call starts a new one and backfills from the cursor.
const IDLE: Duration = Duration::from_secs(300);
/// How far before the stored cursor the backfill starts.
const OVERLAP: Duration = Duration::from_secs(30);
/// Discord's largest page of channel messages.
const PAGE: usize = 100;
/// Most events one batch takes from the gateway queue.
const MAX_BATCH: usize = 500;
/// Messages remembered for reply chains and for "was this the bot's?".
const KNOWN_LIMIT: usize = 20_000;
/// 2015-01-01T00:00:00Z, where Discord snowflakes count from.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

pub(super) fn build(config: &ChannelConfig) -> Result<Arc<dyn Listener>, ConfigError> {
    Ok(Arc::new(DiscordListener::new(Configured::parse(config)?)))
}

pub(super) struct DiscordListener {
    client: reqwest::Client,
    authorization: Secret,
    origin: String,
    channel_id: ChannelId,
    guild_id: Option<GuildId>,
    timeout: Duration,
    intents: GatewayIntents,
    wait: Duration,
    idle: Duration,
    state: tokio::sync::Mutex<State>,
    /// Threads the bot started: every message in them is an answer.
    threads: Arc<BotThreads>,
    /// The bot's roles in the configured guild: mentioning one mentions it.
    roles: Arc<std::sync::RwLock<HashSet<RoleId>>>,
}

/// The ids of threads the bot owns, shared with serenity's event handler
/// and with the adapter that starts them ([`super::bot_threads`]).
#[derive(Default)]
pub(super) struct BotThreads(std::sync::Mutex<HashSet<ChannelId>>);

impl BotThreads {
    fn learn(&self, bot: UserId, threads: &[GuildChannel]) {
        if let Ok(mut ids) = self.0.lock() {
            ids.extend(
                threads
                    .iter()
                    .filter(|t| t.owner_id == Some(bot))
                    .map(|t| t.id),
            );
        }
    }

    /// A thread this process just started.
    pub(super) fn started(&self, id: ChannelId) {
        if let Ok(mut ids) = self.0.lock() {
            ids.insert(id);
        }
    }

    fn contains(&self, id: ChannelId) -> bool {
        self.0.lock().is_ok_and(|ids| ids.contains(&id))
    }
}

/// The listener's state between calls.
#[derive(Default)]
struct State {
    session: Option<Session>,
    /// Outlives sessions, so a restart keeps the reply chains.
    known: Known,
}

impl std::fmt::Debug for DiscordListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordListener")
            .field("origin", &self.origin)
            .field("channel_id", &self.channel_id.get())
            .field("guild_id", &self.guild_id.map(GuildId::get))
            .field("intents", &self.intents.bits())
            .finish_non_exhaustive()
    }
}

/// What the gateway task tells `next_batch`.
enum Signal {
    /// A READY: a new session (start or re-identify), so events may have
    /// been missed.
    Ready,
    Message(Box<Message>),
    /// The serenity client stopped, with why.
    Stopped(PublishError),
}

/// A running gateway session.
struct Session {
    bot: UserId,
    signals: mpsc::UnboundedReceiver<Signal>,
    shards: Arc<ShardManager>,
    /// The next backfill page starts after this message.
    backfill_after: Option<MessageId>,
    /// The client stopped while a batch was being drained: reported next call.
    failed: Option<PublishError>,
    /// The client stopped and was reported: the next call starts a new one.
    stopped: bool,
    idle: Arc<Idle>,
}

/// When the session was last asked for events, and whether the idle
/// watchdog closed it.
struct Idle {
    polled: std::sync::Mutex<Instant>,
    closed: std::sync::atomic::AtomicBool,
}

impl Idle {
    fn touch(&self) {
        if let Ok(mut polled) = self.polled.lock() {
            *polled = Instant::now();
        }
    }

    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Closes the session once it has not been asked for events for `limit`;
    /// ends with the session.
    async fn watch(self: Arc<Self>, shards: Arc<ShardManager>, limit: Duration) {
        loop {
            tokio::time::sleep(limit / 4).await;
            // The session holds the other reference.
            if Arc::strong_count(&self) == 1 {
                return;
            }
            let idle = self
                .polled
                .lock()
                .map(|at| at.elapsed())
                .unwrap_or_default();
            if idle >= limit {
                tracing::info!(
                    "discord listener: nobody asked for events; closing the gateway session"
                );
                self.closed
                    .store(true, std::sync::atomic::Ordering::Release);
                shards.shutdown_all().await;
                return;
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the websocket (code 1000) and ends serenity's tasks.
        let shards = self.shards.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { shards.shutdown_all().await });
        }
    }
}

/// Where a message was read: the gateway, or a REST page of the configured
/// channel (which carries no `guild_id`, so no message there looks like a DM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Gateway,
    Backfill,
}

/// Recently seen messages: the root of their reply chain, and whether the
/// bot wrote them. Bounded; the oldest are forgotten first.
#[derive(Default)]
struct Known {
    by_id: HashMap<MessageId, (String, bool)>,
    order: VecDeque<MessageId>,
}

impl Known {
    fn root(&self, id: MessageId) -> Option<&str> {
        self.by_id.get(&id).map(|(root, _)| root.as_str())
    }

    fn by_bot(&self, id: MessageId) -> bool {
        self.by_id.get(&id).is_some_and(|(_, bot)| *bot)
    }

    fn note(&mut self, id: MessageId, root: String, by_bot: bool) {
        if self.by_id.contains_key(&id) {
            return;
        }
        self.by_id.insert(id, (root, by_bot));
        self.order.push_back(id);
        while self.order.len() > KNOWN_LIMIT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// serenity's event handler: forwards the messages that may matter.
struct Handler {
    bot: UserId,
    signals: mpsc::UnboundedSender<Signal>,
    threads: Arc<BotThreads>,
    roles: Arc<std::sync::RwLock<HashSet<RoleId>>>,
}

/// Whether `message` names one of `roles`.
fn mentions_role(message: &Message, roles: &std::sync::RwLock<HashSet<RoleId>>) -> bool {
    roles
        .read()
        .is_ok_and(|roles| message.mention_roles.iter().any(|r| roles.contains(r)))
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _: Context, _: Ready) {
        let _ = self.signals.send(Signal::Ready);
    }

    async fn guild_create(&self, _: Context, guild: Guild, _: Option<bool>) {
        self.threads.learn(self.bot, &guild.threads);
    }

    async fn thread_create(&self, _: Context, thread: GuildChannel) {
        self.threads.learn(self.bot, std::slice::from_ref(&thread));
    }

    async fn thread_list_sync(&self, _: Context, sync: ThreadListSyncEvent) {
        self.threads.learn(self.bot, &sync.threads);
    }

    async fn message(&self, _: Context, message: Message) {
        // Every guild message the bot can see arrives here; only the ones
        // that can be an engagement or a link in a reply chain go on.
        let wanted = message.author.id == self.bot
            || message.guild_id.is_none()
            || message.message_reference.is_some()
            || message.mentions.iter().any(|u| u.id == self.bot)
            || mentions_role(&message, &self.roles)
            || self.threads.contains(message.channel_id);
        if wanted {
            let _ = self.signals.send(Signal::Message(Box::new(message)));
        }
    }
}

/// The part of `GET /guilds/{id}/members/{user}` the listener reads.
#[derive(Debug, Deserialize)]
struct BotMember {
    roles: Vec<RoleId>,
}

/// The part of `GET /gateway/bot` the listener reads.
#[derive(Debug, Deserialize)]
struct BotGateway {
    url: String,
    session_start_limit: Option<SessionStartLimit>,
}

#[derive(Debug, Deserialize)]
struct SessionStartLimit {
    remaining: u64,
    reset_after: u64,
}

/// What one `next_batch` has gathered so far.
#[derive(Default)]
struct Gathered {
    events: Vec<Engagement>,
    skipped: Vec<String>,
    newest: Option<MessageId>,
}

impl DiscordListener {
    fn new(s: Configured) -> Self {
        let mut intents = GatewayIntents::GUILDS
            | GatewayIntents::GUILD_MESSAGES
            | GatewayIntents::DIRECT_MESSAGES;
        if s.message_content {
            intents |= GatewayIntents::MESSAGE_CONTENT;
        }
        Self {
            client: crate::http_client(),
            authorization: s.authorization,
            origin: s.origin,
            channel_id: s.channel_id,
            guild_id: s.guild_id,
            timeout: s.timeout,
            intents,
            wait: WAIT,
            idle: IDLE,
            state: tokio::sync::Mutex::default(),
            threads: super::bot_threads(s.channel_id),
            roles: Arc::default(),
        }
    }

    /// One authenticated REST read.
    async fn get<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        query: &[(&str, String)],
    ) -> Result<T, PublishError> {
        let url = api_url(&self.origin, route);
        let response = self
            .client
            .get(&url)
            .query(query)
            .header(AUTHORIZATION, self.authorization.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| for_check(classify_transport(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| for_check(classify_transport(e)))?;
        if !status.is_success() {
            return Err(classify(status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            let path = url.strip_prefix(&self.origin).unwrap_or(&url);
            PublishError::new(
                ErrorClass::Transient,
                format!("Discord answered {path} with an unreadable body: {e}"),
            )
        })
    }

    /// Reads the bot's roles in the configured guild. A refusal (no
    /// `guild_id`, not a member, no access) leaves role mentions unfollowed.
    async fn learn_roles(&self, bot: UserId) {
        let Some(guild_id) = self.guild_id else {
            return;
        };
        let route = Route::GuildMember {
            guild_id,
            user_id: bot,
        };
        match self.get::<BotMember>(route, &[]).await {
            Ok(member) => {
                if let Ok(mut roles) = self.roles.write() {
                    *roles = member.roles.into_iter().collect();
                }
            }
            Err(e) => tracing::warn!(
                guild = guild_id.get(),
                "discord listener: cannot read the bot's roles, role mentions are not followed: {e}"
            ),
        }
    }

    /// Checks the token, reads the gateway URL and starts serenity's client.
    async fn start(&self) -> Result<Session, PublishError> {
        let me: CurrentUser = self.get(Route::UserMe, &[]).await?;
        self.learn_roles(me.id).await;
        let gateway: BotGateway = self.get(Route::GatewayBot, &[]).await?;
        if let Some(limit) = gateway.session_start_limit.filter(|l| l.remaining == 0) {
            return Err(PublishError::new(
                ErrorClass::RateLimited,
                "Discord's gateway session start limit is used up",
            )
            .with_retry_after(Some(Duration::from_millis(limit.reset_after))));
        }

        let mut http = HttpBuilder::new(self.authorization.expose())
            .client(self.client.clone())
            // serenity's rate limiter would send its requests past the
            // proxy; the listener makes one request through it anyway.
            .ratelimiter_disabled(true);
        if self.origin != DISCORD_ORIGIN {
            http = http.proxy(self.origin.as_str());
        }
        let (tx, signals) = mpsc::unbounded_channel();
        let handler = Handler {
            bot: me.id,
            signals: tx.clone(),
            threads: self.threads.clone(),
            roles: self.roles.clone(),
        };
        let mut client: Client = ClientBuilder::new_with_http(http.build(), self.intents)
            .event_handler(handler)
            .await
            .map_err(|e| gateway_failure(&e, self.intents))?;
        // serenity asked `GET /gateway` for the URL and falls back to
        // Discord's own when that fails; the URL read above wins.
        *client.ws_url.lock().await = gateway.url;
        let shards = client.shard_manager.clone();
        let intents = self.intents;
        tokio::spawn(async move {
            let error = match client.start().await {
                Err(e) => gateway_failure(&e, intents),
                Ok(()) => {
                    PublishError::new(ErrorClass::Transient, "the Discord gateway session ended")
                }
            };
            let _ = tx.send(Signal::Stopped(error));
        });
        let idle = Arc::new(Idle {
            polled: std::sync::Mutex::new(Instant::now()),
            closed: false.into(),
        });
        tokio::spawn(idle.clone().watch(shards.clone(), self.idle));
        Ok(Session {
            bot: me.id,
            signals,
            shards,
            backfill_after: None,
            failed: None,
            stopped: false,
            idle,
        })
    }

    async fn batch(
        &self,
        session: &mut Session,
        known: &mut Known,
        cursor: Option<MessageId>,
    ) -> Result<ListenBatch, PublishError> {
        if let Some(error) = session.failed.take() {
            session.stopped = true;
            return Err(error);
        }
        let deadline = Instant::now() + self.wait;
        let mut got = Gathered::default();
        loop {
            if let Some(after) = session.backfill_after {
                if let Err(error) = self.backfill(session, known, after, &mut got).await {
                    // A channel whose history the bot may not read (403) or
                    // that is gone (404) fails the backfill once; live events
                    // go on. Anything else is retried by the next call.
                    if matches!(error.class, ErrorClass::Permanent) {
                        session.backfill_after = None;
                    }
                    return Err(error);
                }
                return Ok(finish(got, cursor));
            }
            let signal = match tokio::time::timeout_at(deadline, session.signals.recv()).await {
                Err(_) => return Ok(finish(got, cursor)),
                Ok(None) => {
                    session.stopped = true;
                    return Err(PublishError::new(
                        ErrorClass::Transient,
                        "the Discord gateway task ended",
                    ));
                }
                Ok(Some(signal)) => signal,
            };
            match signal {
                Signal::Ready => session.backfill_after = cursor.map(rewind),
                Signal::Stopped(error) => {
                    session.stopped = true;
                    return Err(error);
                }
                Signal::Message(message) => {
                    self.take(session.bot, known, &message, Source::Gateway, &mut got);
                    if !got.events.is_empty() {
                        self.drain(session, known, cursor, &mut got);
                        return Ok(finish(got, cursor));
                    }
                }
            }
        }
    }

    /// Takes what is already queued, without waiting.
    fn drain(
        &self,
        session: &mut Session,
        known: &mut Known,
        cursor: Option<MessageId>,
        got: &mut Gathered,
    ) {
        while got.events.len() < MAX_BATCH {
            match session.signals.try_recv() {
                Ok(Signal::Message(message)) => {
                    self.take(session.bot, known, &message, Source::Gateway, got)
                }
                Ok(Signal::Ready) => session.backfill_after = cursor.map(rewind),
                Ok(Signal::Stopped(error)) => {
                    session.failed = Some(error);
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// One page of the configured channel after `after`, oldest first.
    async fn backfill(
        &self,
        session: &mut Session,
        known: &mut Known,
        after: MessageId,
        got: &mut Gathered,
    ) -> Result<(), PublishError> {
        let page: Vec<serde_json::Value> = self
            .get(
                Route::ChannelMessages {
                    channel_id: self.channel_id,
                },
                &[("after", after.to_string()), ("limit", PAGE.to_string())],
            )
            .await?;
        let mut newest = after;
        let mut messages = Vec::with_capacity(page.len());
        for value in &page {
            let id = value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .and_then(parse_snowflake);
            if let Some(id) = id {
                newest = newest.max(MessageId::from(id));
            }
            match serde_json::from_value::<Message>(value.clone()) {
                Ok(message) => messages.push(message),
                Err(e) => got.skipped.push(format!(
                    "message {}: {e}",
                    id.map_or_else(|| "without an id".to_owned(), |id| id.to_string())
                )),
            }
        }
        messages.sort_by_key(|m| m.id);
        for message in &messages {
            self.take(session.bot, known, message, Source::Backfill, got);
        }
        got.newest = got.newest.max(Some(newest));
        session.backfill_after = (page.len() >= PAGE && newest > after).then_some(newest);
        Ok(())
    }

    fn take(
        &self,
        bot: UserId,
        known: &mut Known,
        message: &Message,
        source: Source,
        got: &mut Gathered,
    ) {
        got.newest = got.newest.max(Some(message.id));
        if let Some(event) = self.normalize(known, bot, message, source) {
            got.events.push(event);
        }
    }

    /// The engagement a message is, if it is one. Remembers it either way.
    fn normalize(
        &self,
        known: &mut Known,
        bot: UserId,
        message: &Message,
        source: Source,
    ) -> Option<Engagement> {
        let key = |channel: ChannelId, id: MessageId| message_key(self.channel_id, channel, id);
        let referenced = message.referenced_message.as_deref();
        let parent = message
            .message_reference
            .as_ref()
            .filter(|r| r.kind == MessageReferenceKind::Default)
            .and_then(|r| r.message_id.map(|id| (r.channel_id, id)))
            .or_else(|| referenced.map(|p| (p.channel_id, p.id)));
        if let Some(p) = referenced {
            // The gateway names the parent's own parent, one step further
            // up the chain than the parent.
            let grandparent = p
                .message_reference
                .as_ref()
                .and_then(|r| r.message_id.map(|id| (r.channel_id, id)));
            let root = match grandparent {
                Some((channel, id)) => known
                    .root(id)
                    .map_or_else(|| key(channel, id), str::to_owned),
                None => key(p.channel_id, p.id),
            };
            known.note(p.id, root, p.author.id == bot);
        }
        let parent_id = parent.map(|(channel, id)| key(channel, id));
        let item_id = key(message.channel_id, message.id);
        let root_id = parent
            .and_then(|(_, id)| known.root(id).map(str::to_owned))
            .or_else(|| parent_id.clone())
            .unwrap_or_else(|| item_id.clone());
        known.note(message.id, root_id.clone(), message.author.id == bot);

        let author = &message.author;
        if author.bot || author.id == bot || message.webhook_id.is_some() {
            return None;
        }
        if !matches!(
            message.kind,
            MessageType::Regular | MessageType::InlineReply
        ) {
            return None;
        }
        let dm = source == Source::Gateway && message.guild_id.is_none();
        let answers_bot = referenced.is_some_and(|p| p.author.id == bot)
            || parent.is_some_and(|(_, id)| known.by_bot(id));
        let mentions_bot =
            message.mentions.iter().any(|u| u.id == bot) || mentions_role(message, &self.roles);
        let kind = if dm {
            EngagementKind::Dm
        } else if answers_bot || self.threads.contains(message.channel_id) {
            EngagementKind::Reply
        } else if mentions_bot {
            EngagementKind::Mention
        } else {
            return None;
        };
        let guild = match source {
            Source::Gateway => Some(
                message
                    .guild_id
                    .map_or_else(|| "@me".to_owned(), |g| g.to_string()),
            ),
            Source::Backfill => message.guild_id.or(self.guild_id).map(|g| g.to_string()),
        };
        let url = guild.map(|guild| {
            format!(
                "https://discord.com/channels/{guild}/{}/{}",
                message.channel_id, message.id
            )
        });
        let display_name = message
            .member
            .as_ref()
            .and_then(|m| m.nick.clone())
            .or_else(|| author.global_name.clone())
            .unwrap_or_else(|| author.name.clone());
        Some(Engagement {
            item_id,
            kind,
            author: EngagementAuthor {
                id: author.id.to_string(),
                handle: format!("@{}", author.name),
                display_name,
                roles: message
                    .member
                    .as_ref()
                    .map(|m| m.roles.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            },
            text: readable(&message.content, &message.mentions),
            url,
            parent_id,
            root_id,
            place: Some(message.channel_id.to_string()),
            created_at_ms: created_at_ms(message.id),
        })
    }
}

#[async_trait]
impl Listener for DiscordListener {
    fn kind(&self) -> &'static str {
        "discord"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let cursor = cursor.and_then(|c| {
            let parsed = parse_snowflake(c).map(MessageId::from);
            if parsed.is_none() {
                tracing::warn!(
                    channel_id = %self.channel_id,
                    "discord listener: stored cursor `{c}` is not a message id; starting from now"
                );
            }
            parsed
        });
        let mut guard = self.state.lock().await;
        let State {
            session: slot,
            known,
        } = &mut *guard;
        // A session the idle watchdog closed is replaced quietly: its READY
        // backfills what the configured channel got meanwhile.
        let session = match slot.take().filter(|s| !s.idle.closed()) {
            Some(session) => session,
            None => self.start().await?,
        };
        let session = slot.insert(session);
        session.idle.touch();
        let result = self.batch(session, known, cursor).await;
        session.idle.touch();
        if session.stopped {
            *slot = None;
        }
        result
    }
}

/// The batch, with the newest message read as the cursor when it moved.
fn finish(got: Gathered, cursor: Option<MessageId>) -> ListenBatch {
    ListenBatch {
        events: got.events,
        cursor: got
            .newest
            .filter(|newest| Some(*newest) > cursor)
            .map(|id| id.to_string()),
        skipped: got.skipped,
        wait: Duration::ZERO,
    }
}

/// Where the first backfill page starts: [`OVERLAP`] before the cursor.
fn rewind(cursor: MessageId) -> MessageId {
    let back = (OVERLAP.as_millis() as u64) << 22;
    MessageId::from(NonZeroU64::new(cursor.get().saturating_sub(back)).unwrap_or(NonZeroU64::MIN))
}

fn parse_snowflake(s: &str) -> Option<NonZeroU64> {
    s.trim().parse::<u64>().ok().and_then(NonZeroU64::new)
}

fn created_at_ms(id: MessageId) -> i64 {
    DISCORD_EPOCH_MS + (id.get() >> 22) as i64
}

/// `<@4242> hi` as people read it: `@clarion hi`.
fn readable(content: &str, mentions: &[User]) -> String {
    let mut text = content.to_owned();
    for user in mentions {
        let name = format!("@{}", user.name);
        text = text
            .replace(&format!("<@{}>", user.id), &name)
            .replace(&format!("<@!{}>", user.id), &name);
    }
    text
}

/// Why serenity's client stopped, as an error class. Never includes the token:
/// serenity's gateway errors carry close codes and URLs only.
fn gateway_failure(error: &serenity::Error, intents: GatewayIntents) -> PublishError {
    let names = || {
        intents
            .iter_names()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => PublishError::new(
            ErrorClass::AuthExpired,
            "Discord rejected the bot token (gateway close 4004)",
        ),
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => {
            let message = if intents.contains(GatewayIntents::MESSAGE_CONTENT) {
                "Discord refused the privileged MESSAGE_CONTENT intent (gateway close 4014): \
                 turn on \"Message Content Intent\" under Bot > Privileged Gateway Intents in \
                 the Developer Portal, or set message_content = false"
                    .to_owned()
            } else {
                format!(
                    "Discord refused the gateway intents {} (gateway close 4014: disallowed intents)",
                    names()
                )
            };
            PublishError::new(ErrorClass::Permanent, message)
        }
        serenity::Error::Gateway(GatewayError::InvalidGatewayIntents) => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "Discord called the gateway intents {} invalid (gateway close 4013)",
                names()
            ),
        ),
        other => PublishError::new(
            ErrorClass::Transient,
            format!("the Discord gateway stopped: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{AdapterContext, AdapterFactory, OutboundPost, PublishRequest, ReplyTo};
    use futures::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message as Frame;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;

    const TOKEN: &str = "MTIz.fake.discord-listen-token";
    const BOT: u64 = 4242;
    const CHANNEL: u64 = 100;
    const GUILD: u64 = 77;
    /// Short, so every test sees heartbeats.
    const HEARTBEAT_MS: u64 = 150;
    /// GUILD_MESSAGES | DIRECT_MESSAGES.
    const INTENTS: u64 = 1 | (1 << 9) | (1 << 12);

    /// A message id `ms` milliseconds after a fixed moment in 2024.
    fn id_at(ms: u64) -> u64 {
        (300_000_000_000 + ms) << 22
    }

    /// What the fake Discord (REST and gateway) saw and is set up to do.
    #[derive(Default)]
    struct Fake {
        /// REST requests: method, path, query, headers, body.
        http: Vec<(Method, String, String, HeaderMap, Bytes)>,
        /// Every gateway frame the client sent, with its connection number.
        frames: Vec<(usize, Value)>,
        /// The query strings gateway connections were opened with.
        ws_queries: Vec<String>,
        connections: usize,
        /// Connections that have ended.
        ended: usize,
        seq: u64,
        /// Answer IDENTIFY with this close code instead of READY.
        close_on_identify: Option<u16>,
        unauthorized: bool,
        history_forbidden: bool,
        starts_remaining: Option<u64>,
        /// The configured channel's history, for `GET /channels/100/messages`.
        history: Vec<Value>,
    }

    impl Fake {
        fn ops(&self, op: u64) -> Vec<(usize, Value)> {
            self.frames
                .iter()
                .filter(|(_, f)| f["op"] == op)
                .cloned()
                .collect()
        }
    }

    enum Command {
        Dispatch(&'static str, Value),
        Close(u16),
    }

    struct FakeDiscord {
        base: String,
        state: Arc<Mutex<Fake>>,
        commands: mpsc::UnboundedSender<Command>,
    }

    impl FakeDiscord {
        /// Queues a MESSAGE_CREATE; it goes out once a session is ready.
        fn send(&self, message: Value) {
            let _ = self
                .commands
                .send(Command::Dispatch("MESSAGE_CREATE", message));
        }

        /// Queues any dispatch (THREAD_CREATE, ...).
        fn dispatch(&self, event: &'static str, data: Value) {
            let _ = self.commands.send(Command::Dispatch(event, data));
        }

        fn close(&self, code: u16) {
            let _ = self.commands.send(Command::Close(code));
        }

        fn state(&self) -> std::sync::MutexGuard<'_, Fake> {
            self.state.lock().unwrap()
        }
    }

    async fn fake_discord() -> FakeDiscord {
        let state: Arc<Mutex<Fake>> = Arc::default();
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = format!("ws://{}", gateway.local_addr().unwrap());
        let (commands, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        {
            let state = state.clone();
            let ws = ws.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = gateway.accept().await {
                    let (state, queue, ws) = (state.clone(), queue.clone(), ws.clone());
                    tokio::spawn(async move {
                        let _ = gateway_connection(tcp, state.clone(), queue, ws).await;
                        state.lock().unwrap().ended += 1;
                    });
                }
            });
        }
        let record = state.clone();
        let gateway_url = ws.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                let gateway_url = gateway_url.clone();
                async move {
                    let mut state = record.lock().unwrap();
                    let query = uri.query().unwrap_or_default().to_owned();
                    state.http.push((
                        method.clone(),
                        uri.path().to_owned(),
                        query.clone(),
                        headers,
                        body.clone(),
                    ));
                    answer(&state, &method, uri.path(), &query, &body, &gateway_url)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeDiscord {
            base,
            state,
            commands,
        }
    }

    fn answer(
        state: &Fake,
        method: &Method,
        path: &str,
        query: &str,
        body: &Bytes,
        gateway_url: &str,
    ) -> Response {
        if state.unauthorized {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
            )
                .into_response();
        }
        match (method.as_str(), path) {
            ("GET", "/api/v10/users/@me") => axum::Json(user(BOT, "clarion", true)).into_response(),
            ("GET", "/api/v10/gateway") => axum::Json(json!({"url": gateway_url})).into_response(),
            // The bot's member record: role 4343 is its managed role.
            ("GET", "/api/v10/guilds/77/members/4242") => axum::Json(json!({
                "user": user(BOT, "clarion", true), "roles": ["4343"],
                "joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0
            }))
            .into_response(),
            ("GET", "/api/v10/gateway/bot") => axum::Json(json!({
                "url": gateway_url, "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": state.starts_remaining.unwrap_or(999),
                    "reset_after": 5000, "max_concurrency": 1
                }
            }))
            .into_response(),
            ("GET", "/api/v10/channels/100/messages") if state.history_forbidden => (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"message": "Missing Access", "code": 50001})),
            )
                .into_response(),
            ("GET", "/api/v10/channels/100/messages") => {
                let after: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("after="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                // Discord: the 100 messages right after `after`, newest first.
                let mut page: Vec<Value> = state
                    .history
                    .iter()
                    .filter(|m| id_of(m) > after)
                    .cloned()
                    .collect();
                page.sort_by_key(id_of);
                page.truncate(100);
                page.reverse();
                axum::Json(page).into_response()
            }
            ("POST", p) if p.starts_with("/api/v10/channels/") && p.ends_with("/messages") => {
                let channel = p
                    .trim_start_matches("/api/v10/channels/")
                    .trim_end_matches("/messages");
                let sent: Value = serde_json::from_slice(body).unwrap_or_default();
                let mut created = message(555_000_222, 1, user(BOT, "clarion", true), "");
                created["channel_id"] = json!(channel);
                created["content"] = sent["content"].clone();
                axum::Json(created).into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    fn id_of(message: &Value) -> u64 {
        message["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0)
    }

    /// One gateway connection, as Discord runs it: HELLO; IDENTIFY -> READY
    /// or RESUME -> RESUMED; HEARTBEAT -> ACK; then the queued dispatches.
    // tungstenite's handshake callback returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    async fn gateway_connection(
        tcp: tokio::net::TcpStream,
        state: Arc<Mutex<Fake>>,
        queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Command>>>,
        ws_url: String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let record = state.clone();
        let mut ws = tokio_tungstenite::accept_hdr_async(
            tcp,
            move |request: &Request, response: WsResponse| {
                let query = request.uri().query().unwrap_or_default().to_owned();
                record.lock().unwrap().ws_queries.push(query);
                Ok(response)
            },
        )
        .await?;
        let connection = {
            let mut s = state.lock().unwrap();
            s.connections += 1;
            s.connections
        };
        let dispatch = |t: &str, d: Value| {
            let mut s = state.lock().unwrap();
            s.seq += 1;
            Frame::Text(json!({"op": 0, "t": t, "s": s.seq, "d": d}).to_string())
        };
        let heartbeat_ack = || Frame::Text(json!({"op": 11}).to_string());
        let received = |frame: Frame| -> Option<Value> {
            let Frame::Text(text) = frame else {
                return None;
            };
            let value: Value = serde_json::from_str(&text).ok()?;
            state
                .lock()
                .unwrap()
                .frames
                .push((connection, value.clone()));
            Some(value)
        };

        ws.send(Frame::Text(
            json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}}).to_string(),
        ))
        .await?;
        loop {
            let Some(frame) = ws.next().await else {
                return Ok(());
            };
            let Some(value) = received(frame?) else {
                continue;
            };
            match value["op"].as_u64() {
                Some(1) => ws.send(heartbeat_ack()).await?,
                Some(2) => {
                    let close = state.lock().unwrap().close_on_identify;
                    if let Some(code) = close {
                        ws.send(Frame::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: "fake close".into(),
                        })))
                        .await?;
                        return Ok(());
                    }
                    let ready = json!({
                        "v": 10,
                        "user": user(BOT, "clarion", true),
                        "guilds": [{"id": GUILD.to_string(), "unavailable": true}],
                        "session_id": "fake-session",
                        "resume_gateway_url": ws_url,
                        "application": {"id": BOT.to_string(), "flags": 0}
                    });
                    ws.send(dispatch("READY", ready)).await?;
                    break;
                }
                Some(6) => {
                    ws.send(dispatch("RESUMED", json!({}))).await?;
                    break;
                }
                _ => {}
            }
        }
        let mut queue = queue.lock().await;
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(frame)) => {
                        if received(frame).is_some_and(|v| v["op"] == 1) {
                            ws.send(heartbeat_ack()).await?;
                        }
                    }
                    _ => return Ok(()),
                },
                command = queue.recv() => match command {
                    Some(Command::Dispatch(t, d)) => ws.send(dispatch(t, d)).await?,
                    Some(Command::Close(code)) => {
                        ws.send(Frame::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: "fake drop".into(),
                        })))
                        .await?;
                        return Ok(());
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    fn user(id: u64, name: &str, bot: bool) -> Value {
        json!({
            "id": id.to_string(), "username": name, "discriminator": "0",
            "global_name": null, "avatar": null, "bot": bot
        })
    }

    fn ann() -> Value {
        let mut ann = user(501, "ann", false);
        ann["global_name"] = json!("Ann A.");
        ann
    }

    /// A message in Discord's documented shape, as REST returns it (no
    /// `guild_id`); [`in_guild`] adds what the gateway adds.
    fn message(id: u64, channel: u64, author: Value, content: &str) -> Value {
        json!({
            "id": id.to_string(), "channel_id": channel.to_string(),
            "author": author, "content": content,
            "timestamp": "2024-09-01T10:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "type": 0
        })
    }

    fn in_guild(mut message: Value, guild: u64, nick: Option<&str>) -> Value {
        message["guild_id"] = json!(guild.to_string());
        message["member"] = json!({
            "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "nick": nick, "flags": 0
        });
        message
    }

    fn mentioning_bot(mut message: Value) -> Value {
        message["mentions"] = json!([user(BOT, "clarion", true)]);
        message
    }

    fn replying_to(mut message: Value, parent: &Value) -> Value {
        message["type"] = json!(19);
        message["message_reference"] = json!({
            "type": 0, "message_id": parent["id"], "channel_id": parent["channel_id"],
            "guild_id": parent["guild_id"]
        });
        message["referenced_message"] = parent.clone();
        message
    }

    /// A token file per call: tests run in parallel, and changing the
    /// environment while other threads read it is not safe.
    fn token_file() -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "clarion-discord-listen-token-{}-{n}",
            std::process::id()
        ));
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        path
    }

    fn configured(base: &str, token: &std::path::Path, extra: Value) -> ChannelConfig {
        let mut config = json!({
            "name": "community", "kind": "discord", "listen": true,
            "bot_token": {"file": token},
            "channel_id": CHANNEL.to_string(), "guild_id": GUILD,
            "api_proxy": base, "timeout_secs": 5
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        serde_json::from_value(config).unwrap()
    }

    /// The listener of a channel configured against the fake, as the
    /// factory builds it, with a shorter wait when a test wants one.
    fn listener_for(fake: &FakeDiscord, extra: Value, wait: Duration) -> DiscordListener {
        let token = token_file();
        let config = configured(&fake.base, &token, extra);
        let settings = Configured::parse(&config);
        std::fs::remove_file(token).unwrap();
        let mut listener = DiscordListener::new(settings.unwrap());
        listener.wait = wait;
        listener
    }

    async fn next(
        listener: &DiscordListener,
        cursor: Option<&str>,
    ) -> Result<ListenBatch, PublishError> {
        tokio::time::timeout(Duration::from_secs(20), listener.next_batch(cursor))
            .await
            .expect("next_batch did not return within 20 s")
    }

    /// Batches until `n` events arrived; returns them and the last cursor.
    async fn collect(listener: &DiscordListener, n: usize) -> (Vec<Engagement>, Option<String>) {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        while events.len() < n {
            let batch = next(listener, cursor.as_deref()).await.unwrap();
            assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
            events.extend(batch.events);
            cursor = batch.cursor.or(cursor);
        }
        (events, cursor)
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What ann's message `id` should become; it answers nothing, so its
    /// root is itself.
    fn engagement(
        id: u64,
        item_id: String,
        kind: EngagementKind,
        text: &str,
        url: String,
        place: u64,
    ) -> Engagement {
        Engagement {
            root_id: item_id.clone(),
            item_id,
            kind,
            author: EngagementAuthor {
                id: "501".into(),
                handle: "@ann".into(),
                display_name: "Ann A.".into(),
                roles: Vec::new(),
            },
            text: text.into(),
            url: Some(url),
            parent_id: None,
            place: Some(place.to_string()),
            created_at_ms: DISCORD_EPOCH_MS + (id >> 22) as i64,
        }
    }

    #[tokio::test]
    async fn discord_listen_turns_mentions_replies_and_dms_into_engagements() {
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), WAIT);
        let own = in_guild(
            message(id_at(1), CHANNEL, user(BOT, "clarion", true), "our post"),
            GUILD,
            None,
        );
        fake.send(own.clone());
        // Another bot mentioning ours, and a message that names nobody.
        fake.send(mentioning_bot(in_guild(
            message(
                id_at(2),
                CHANNEL,
                user(900, "otherbot", true),
                "<@4242> beep",
            ),
            GUILD,
            None,
        )));
        fake.send(in_guild(
            message(id_at(3), CHANNEL, ann(), "just chatting"),
            GUILD,
            None,
        ));
        // A MESSAGE_CREATE without an author: serenity drops it, the session goes on.
        let mut broken = in_guild(message(id_at(4), CHANNEL, ann(), "x"), GUILD, None);
        broken.as_object_mut().unwrap().remove("author");
        fake.send(broken);
        let mention = mentioning_bot(in_guild(
            message(id_at(5), CHANNEL, ann(), "<@4242> hello there"),
            GUILD,
            Some("annie"),
        ));
        fake.send(mention.clone());
        // A reply to our post with its ping off: no mention, still a reply.
        fake.send(replying_to(
            in_guild(message(id_at(6), CHANNEL, ann(), "thanks!"), GUILD, None),
            &own,
        ));
        // A reply between two users is not ours.
        fake.send(replying_to(
            in_guild(
                message(id_at(7), CHANNEL, user(502, "bob", false), "agreed"),
                GUILD,
                None,
            ),
            &mention,
        ));
        fake.send(message(id_at(8), 300, ann(), "hi in private"));
        fake.send(mentioning_bot(in_guild(
            message(id_at(9), 200, ann(), "<@!4242> over here"),
            GUILD,
            None,
        )));

        let (events, cursor) = collect(&listener, 4).await;
        let mut expected = vec![
            engagement(
                id_at(5),
                id_at(5).to_string(),
                EngagementKind::Mention,
                "@clarion hello there",
                format!("https://discord.com/channels/77/100/{}", id_at(5)),
                CHANNEL,
            ),
            Engagement {
                parent_id: Some(id_at(1).to_string()),
                root_id: id_at(1).to_string(),
                ..engagement(
                    id_at(6),
                    id_at(6).to_string(),
                    EngagementKind::Reply,
                    "thanks!",
                    format!("https://discord.com/channels/77/100/{}", id_at(6)),
                    CHANNEL,
                )
            },
            engagement(
                id_at(8),
                format!("300/{}", id_at(8)),
                EngagementKind::Dm,
                "hi in private",
                format!("https://discord.com/channels/@me/300/{}", id_at(8)),
                300,
            ),
            engagement(
                id_at(9),
                format!("200/{}", id_at(9)),
                EngagementKind::Mention,
                "@clarion over here",
                format!("https://discord.com/channels/77/200/{}", id_at(9)),
                200,
            ),
        ];
        // The member nickname wins over the global name.
        expected[0].author.display_name = "annie".into();
        assert_eq!(events, expected);
        assert_eq!(cursor, Some(id_at(9).to_string()));

        // The session: token and intents in IDENTIFY, version in the URL,
        // heartbeats acknowledged (an unanswered one makes serenity reconnect).
        until("two heartbeats", || fake.state().ops(1).len() >= 2).await;
        let state = fake.state();
        let identify = state.ops(2);
        assert_eq!(identify.len(), 1, "{identify:?}");
        assert_eq!(identify[0].1["d"]["token"], format!("Bot {TOKEN}"));
        assert_eq!(identify[0].1["d"]["intents"], INTENTS);
        assert_eq!(state.connections, 1);
        assert_eq!(state.ws_queries, vec!["v=10".to_owned()]);
        let asked: Vec<(String, String)> = state
            .http
            .iter()
            .map(|(m, p, _, _, _)| (m.to_string(), p.clone()))
            .collect();
        assert!(
            asked.contains(&("GET".into(), "/api/v10/users/@me".into())),
            "{asked:?}"
        );
        assert!(
            asked.contains(&("GET".into(), "/api/v10/gateway/bot".into())),
            "{asked:?}"
        );
        assert!(
            !asked.iter().any(|(_, p)| p.contains("/channels/")),
            "no cursor, no backfill: {asked:?}"
        );
        for (_, _, _, headers, _) in &state.http {
            if headers.contains_key("authorization") {
                assert_eq!(headers["authorization"], format!("Bot {TOKEN}"));
            }
        }
    }

    #[tokio::test]
    async fn discord_listen_hears_every_message_in_threads_the_bot_started() {
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), WAIT);
        let thread = |id: u64, owner: u64| {
            json!({
                "id": id.to_string(), "type": 11, "guild_id": GUILD.to_string(),
                "parent_id": CHANNEL.to_string(), "owner_id": owner.to_string(), "name": "t"
            })
        };
        fake.dispatch("THREAD_CREATE", thread(600, BOT));
        fake.dispatch("THREAD_CREATE", thread(601, 502));
        // A mention, so the first batch returns once the threads are in.
        fake.send(mentioning_bot(in_guild(
            message(id_at(1), CHANNEL, ann(), "<@4242> hi"),
            GUILD,
            None,
        )));
        let (first, cursor) = collect(&listener, 1).await;
        assert_eq!(first.len(), 1, "{first:?}");
        until("the bot's thread is known", || {
            listener.threads.contains(ChannelId::new(600))
        })
        .await;

        // A mention of the bot's role is a mention; of another role, not.
        let mut by_role = in_guild(
            message(id_at(4), CHANNEL, ann(), "<@&4343> help"),
            GUILD,
            None,
        );
        by_role["mention_roles"] = json!(["4343"]);
        let mut other_role = in_guild(message(id_at(5), CHANNEL, ann(), "<@&999> hi"), GUILD, None);
        other_role["mention_roles"] = json!(["999"]);
        fake.send(other_role);
        fake.send(by_role);
        let roles = next(&listener, cursor.as_deref()).await.unwrap();
        assert_eq!(roles.events.len(), 1, "{:?}", roles.events);
        assert_eq!(roles.events[0].kind, EngagementKind::Mention);
        assert_eq!(roles.events[0].item_id, id_at(4).to_string());
        let cursor = roles.cursor.or(cursor);

        // Someone else's thread is not ours; in ours, a plain message (no
        // mention, no reply) is an answer, with the author's roles.
        fake.send(in_guild(
            message(id_at(2), 601, ann(), "not for the bot"),
            GUILD,
            None,
        ));
        let mut plain = in_guild(message(id_at(3), 600, ann(), "in our thread"), GUILD, None);
        plain["member"]["roles"] = json!(["888", "889"]);
        fake.send(plain);
        let batch = next(&listener, cursor.as_deref()).await.unwrap();
        assert_eq!(batch.events.len(), 1, "{:?}", batch.events);
        let event = &batch.events[0];
        assert_eq!(event.kind, EngagementKind::Reply);
        assert_eq!(event.item_id, format!("600/{}", id_at(3)));
        assert_eq!(event.place.as_deref(), Some("600"));
        assert_eq!(event.parent_id, None);
        assert_eq!(event.text, "in our thread");
        assert_eq!(event.author.roles, ["888", "889"]);
        assert!(!listener.threads.contains(ChannelId::new(601)));
    }

    #[tokio::test]
    async fn discord_listen_resumes_after_the_gateway_drops_the_connection() {
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), WAIT);
        let first = mentioning_bot(in_guild(
            message(id_at(10), CHANNEL, ann(), "<@4242> one"),
            GUILD,
            None,
        ));
        fake.send(first);
        let (events, _) = collect(&listener, 1).await;
        assert_eq!(events[0].item_id, id_at(10).to_string());
        let seq_before_drop = fake.state().seq;

        fake.close(1001); // "going away": not a 4xxx, so resumable
        fake.send(mentioning_bot(in_guild(
            message(id_at(11), CHANNEL, ann(), "<@4242> two"),
            GUILD,
            None,
        )));
        let (events, _) = collect(&listener, 1).await;
        assert_eq!(events[0].item_id, id_at(11).to_string());
        assert_eq!(events[0].text, "@clarion two");

        let state = fake.state();
        assert_eq!(state.connections, 2);
        assert_eq!(state.ops(2).len(), 1, "identified once, then resumed");
        let resume = state.ops(6);
        assert_eq!(resume.len(), 1, "{resume:?}");
        assert_eq!(resume[0].0, 2, "RESUME on the second connection");
        assert_eq!(resume[0].1["d"]["session_id"], "fake-session");
        assert_eq!(resume[0].1["d"]["seq"], seq_before_drop);
        assert_eq!(resume[0].1["d"]["token"], format!("Bot {TOKEN}"));
    }

    #[tokio::test]
    async fn discord_listen_backfills_the_configured_channel_after_the_cursor() {
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), WAIT);
        let cursor = id_at(100_000);
        {
            let mut state = fake.state();
            // Page one: 100 messages sent "while down", three of them ours.
            for n in 1..=100u64 {
                let id = id_at(100_000 + n * 10);
                let author = if n == 20 {
                    user(BOT, "clarion", true)
                } else {
                    ann()
                };
                let mut m = message(id, CHANNEL, author, "chatter");
                if n == 10 {
                    m = mentioning_bot(message(id, CHANNEL, ann(), "<@4242> while you slept"));
                }
                if n == 30 {
                    let ours = state.history[19].clone();
                    m = replying_to(message(id, CHANNEL, ann(), ""), &ours);
                }
                state.history.push(m);
            }
            // Page two: an unreadable message and one more mention.
            let mut broken = message(id_at(102_000), CHANNEL, ann(), "x");
            broken.as_object_mut().unwrap().remove("author");
            state.history.push(broken);
            state.history.push(mentioning_bot(message(
                id_at(102_010),
                CHANNEL,
                ann(),
                "<@4242> last one",
            )));
            // Older than the cursor but inside the overlap: yielded again,
            // the runtime dedupes it.
            state.history.push(mentioning_bot(message(
                id_at(99_000),
                CHANNEL,
                ann(),
                "<@4242> seen",
            )));
        }
        // A live event: it must come after the backfill.
        fake.send(mentioning_bot(in_guild(
            message(id_at(200_000), CHANNEL, ann(), "<@4242> live"),
            GUILD,
            None,
        )));

        let first = next(&listener, Some(&cursor.to_string())).await.unwrap();
        let ids: Vec<&str> = first.events.iter().map(|e| e.item_id.as_str()).collect();
        let (m99, m10, m30) = (
            id_at(99_000).to_string(),
            id_at(100_100).to_string(),
            id_at(100_300).to_string(),
        );
        assert_eq!(ids, vec![m99.as_str(), m10.as_str(), m30.as_str()]);
        assert_eq!(first.events[1].kind, EngagementKind::Mention);
        assert_eq!(first.events[1].text, "@clarion while you slept");
        assert_eq!(
            first.events[1].url.as_deref(),
            Some(format!("https://discord.com/channels/77/100/{m10}").as_str())
        );
        assert_eq!(first.events[2].kind, EngagementKind::Reply);
        assert_eq!(first.events[2].parent_id, Some(id_at(100_200).to_string()));
        assert!(first.skipped.is_empty());
        // The newest message of the page, though it was only chatter.
        let page_one_end = id_at(100_990).to_string();
        assert_eq!(first.cursor.as_deref(), Some(page_one_end.as_str()));

        let second = next(&listener, first.cursor.as_deref()).await.unwrap();
        let ids: Vec<&str> = second.events.iter().map(|e| e.item_id.as_str()).collect();
        let last = id_at(102_010).to_string();
        assert_eq!(ids, vec![last.as_str()]);
        assert_eq!(second.skipped.len(), 1);
        assert!(
            second.skipped[0].starts_with(&format!(
                "message {}: missing field `author`",
                id_at(102_000)
            )),
            "{:?}",
            second.skipped
        );
        assert_eq!(second.cursor.as_deref(), Some(last.as_str()));

        let third = next(&listener, second.cursor.as_deref()).await.unwrap();
        let ids: Vec<&str> = third.events.iter().map(|e| e.item_id.as_str()).collect();
        let live = id_at(200_000).to_string();
        assert_eq!(ids, vec![live.as_str()]);

        let state = fake.state();
        let pages: Vec<&str> = state
            .http
            .iter()
            .filter(|(_, p, _, _, _)| p == "/api/v10/channels/100/messages")
            .map(|(_, _, q, _, _)| q.as_str())
            .collect();
        let overlap = cursor - (30_000 << 22);
        assert_eq!(
            pages,
            vec![
                format!("after={overlap}&limit=100"),
                format!("after={page_one_end}&limit=100"),
            ]
        );
    }

    /// Everything traced on this thread (the tests' runtime is
    /// single-threaded, so serenity's tasks trace here too), as text.
    struct Capture(Arc<Mutex<String>>);

    struct Fields<'a>(&'a mut String);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }

        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::TRACE)
        }

        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            let mut log = self.0.lock().unwrap();
            log.push_str(span.metadata().name());
            span.record(&mut Fields(&mut log));
            log.push('\n');
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
            let mut log = self.0.lock().unwrap();
            values.record(&mut Fields(&mut log));
            log.push('\n');
        }

        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

        fn event(&self, event: &tracing::Event<'_>) {
            let mut log = self.0.lock().unwrap();
            log.push_str(event.metadata().target());
            event.record(&mut Fields(&mut log));
            log.push('\n');
        }

        fn enter(&self, _: &tracing::span::Id) {}

        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn discord_listen_never_logs_the_token() {
        let log = Arc::new(Mutex::new(String::new()));
        let _guard = tracing::subscriber::set_default(Capture(log.clone()));
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), Duration::from_millis(500));
        fake.send(mentioning_bot(in_guild(
            message(id_at(1), CHANNEL, ann(), "<@4242> one"),
            GUILD,
            None,
        )));
        collect(&listener, 1).await;
        fake.close(1001);
        fake.send(mentioning_bot(in_guild(
            message(id_at(2), CHANNEL, ann(), "<@4242> two"),
            GUILD,
            None,
        )));
        collect(&listener, 1).await;
        next(&listener, Some("not-a-snowflake"))
            .await
            .map(|_| ())
            .unwrap_or_default();
        assert_eq!(fake.state().ops(6).len(), 1, "identified, then resumed");
        let log = log.lock().unwrap();
        // serenity traced its session: identify, resume, the dispatches.
        assert!(log.contains("Resumed"), "{log}");
        assert!(log.contains("not-a-snowflake"), "{log}");
        assert!(!log.contains(TOKEN), "{log}");
    }

    #[tokio::test]
    async fn discord_listen_gives_up_a_forbidden_backfill_and_goes_on_live() {
        let fake = fake_discord().await;
        fake.state().history_forbidden = true;
        let listener = listener_for(&fake, json!({}), WAIT);
        fake.send(mentioning_bot(in_guild(
            message(id_at(5), CHANNEL, ann(), "<@4242> live"),
            GUILD,
            None,
        )));
        let cursor = id_at(1).to_string();
        let error = next(&listener, Some(&cursor)).await.unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::Permanent,
                "HTTP 403: Missing Access (code 50001)"
            )
        );
        let batch = next(&listener, Some(&cursor)).await.unwrap();
        let ids: Vec<&str> = batch.events.iter().map(|e| e.item_id.as_str()).collect();
        let live = id_at(5).to_string();
        assert_eq!(ids, vec![live.as_str()]);
        let state = fake.state();
        assert_eq!(
            state.connections, 1,
            "the session survived the failed backfill"
        );
        let asked = state
            .http
            .iter()
            .filter(|(_, p, _, _, _)| p.contains("/channels/"))
            .count();
        assert_eq!(asked, 1, "the forbidden backfill is not retried");
    }

    #[tokio::test]
    async fn discord_listen_closes_a_session_nobody_asks_and_backfills_on_return() {
        let fake = fake_discord().await;
        let mut listener = listener_for(&fake, json!({}), Duration::from_millis(200));
        listener.idle = Duration::from_millis(500);
        assert_eq!(next(&listener, None).await.unwrap(), ListenBatch::default());
        until("the idle session to close", || fake.state().ended == 1).await;
        // Said while no session was open.
        fake.state().history.push(mentioning_bot(message(
            id_at(50),
            CHANNEL,
            ann(),
            "<@4242> anyone?",
        )));
        let batch = next(&listener, Some(&id_at(40).to_string())).await.unwrap();
        let ids: Vec<&str> = batch.events.iter().map(|e| e.item_id.as_str()).collect();
        let missed = id_at(50).to_string();
        assert_eq!(ids, vec![missed.as_str()]);
        let state = fake.state();
        assert_eq!(state.connections, 2);
        assert_eq!(state.ops(2).len(), 2, "a new session, not a resume");
    }

    #[tokio::test]
    async fn discord_listen_rejected_token_is_auth_expired() {
        let fake = fake_discord().await;
        fake.state().unauthorized = true;
        let listener = listener_for(&fake, json!({}), WAIT);
        let http = next(&listener, None).await.unwrap_err();
        assert_eq!(http.class, ErrorClass::AuthExpired, "{http}");
        assert_eq!(http.status, Some(401));
        assert_eq!(fake.state().connections, 0);

        let fake = fake_discord().await;
        fake.state().close_on_identify = Some(4004);
        let listener = listener_for(&fake, json!({}), WAIT);
        let gateway = next(&listener, None).await.unwrap_err();
        assert_eq!(
            (gateway.class, gateway.message.as_str()),
            (
                ErrorClass::AuthExpired,
                "Discord rejected the bot token (gateway close 4004)"
            )
        );
        // The failed session is gone: the next call starts a new one.
        let again = next(&listener, None).await.unwrap_err();
        assert_eq!(again.class, ErrorClass::AuthExpired);
        assert_eq!(fake.state().connections, 2);
        for error in [http, gateway, again] {
            assert!(!error.to_string().contains(TOKEN), "{error}");
        }
        assert!(!format!("{listener:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn discord_listen_refused_message_content_intent_is_permanent_and_named() {
        let fake = fake_discord().await;
        fake.state().close_on_identify = Some(4014);
        let listener = listener_for(&fake, json!({"message_content": true}), WAIT);
        let error = next(&listener, None).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Permanent, "{error}");
        assert!(
            error.message.contains("MESSAGE_CONTENT")
                && error.message.contains("4014")
                && error.message.contains("message_content = false"),
            "{error}"
        );
        let identify = fake.state().ops(2);
        assert_eq!(identify[0].1["d"]["intents"], INTENTS | (1 << 15));
    }

    #[tokio::test]
    async fn discord_listen_waits_for_a_new_session_when_the_start_budget_is_used_up() {
        let fake = fake_discord().await;
        fake.state().starts_remaining = Some(0);
        let listener = listener_for(&fake, json!({}), WAIT);
        let error = next(&listener, None).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited, "{error}");
        assert_eq!(error.retry_after, Some(Duration::from_secs(5)));
        assert_eq!(fake.state().connections, 0, "no IDENTIFY spent");
    }

    #[tokio::test]
    async fn discord_listen_returns_an_empty_batch_when_nothing_happens() {
        let fake = fake_discord().await;
        let listener = listener_for(&fake, json!({}), Duration::from_millis(400));
        let batch = next(&listener, None).await.unwrap();
        assert_eq!(batch, ListenBatch::default());
        // An unreadable stored cursor starts from now rather than failing.
        let batch = next(&listener, Some("not-a-snowflake")).await.unwrap();
        assert_eq!(batch, ListenBatch::default());
        let state = fake.state();
        assert_eq!(state.connections, 1, "one session across calls");
        assert!(
            !state
                .http
                .iter()
                .any(|(_, p, _, _, _)| p.contains("/channels/")),
            "no backfill without a cursor"
        );
    }

    #[test]
    fn discord_listen_reply_chains_name_their_first_message() {
        let settings = Configured {
            authorization: Secret::new(format!("Bot {TOKEN}")),
            origin: "http://127.0.0.1:9".into(),
            channel_id: ChannelId::new(CHANNEL),
            guild_id: Some(GuildId::new(GUILD)),
            timeout: Duration::from_secs(5),
            embed: false,
            message_content: false,
        };
        let listener = DiscordListener::new(settings);
        let bot = UserId::new(BOT);
        let read = |v: Value| -> Message { serde_json::from_value(v).unwrap() };
        let g = |m: Value| in_guild(m, GUILD, None);
        let post = g(message(
            id_at(1),
            CHANNEL,
            user(BOT, "clarion", true),
            "post",
        ));
        let answer = g(replying_to(message(id_at(2), CHANNEL, ann(), "q?"), &post));
        let ours = g(replying_to(
            message(id_at(3), CHANNEL, user(BOT, "clarion", true), "a."),
            &answer,
        ));
        // The gateway nests one level: the referenced message carries its
        // own message_reference but no referenced_message.
        let mut ours_as_referenced = ours.clone();
        ours_as_referenced
            .as_object_mut()
            .unwrap()
            .remove("referenced_message");
        let again = g(replying_to(
            message(id_at(4), CHANNEL, ann(), "more?"),
            &ours_as_referenced,
        ));

        let mut known = Known::default();
        let run = |known: &mut Known, m: &Value| {
            listener.normalize(known, bot, &read(m.clone()), Source::Gateway)
        };
        assert_eq!(run(&mut known, &post), None, "our own post");
        let b = run(&mut known, &answer).unwrap();
        assert_eq!(
            (b.kind, b.root_id.as_str()),
            (EngagementKind::Reply, id_at(1).to_string().as_str())
        );
        assert_eq!(run(&mut known, &ours), None, "our own reply");
        let d = run(&mut known, &again).unwrap();
        assert_eq!(d.kind, EngagementKind::Reply);
        assert_eq!(d.parent_id, Some(id_at(3).to_string()));
        assert_eq!(d.root_id, id_at(1).to_string(), "the chain's first message");

        // A fresh process only knows what the gateway names: the grandparent.
        let mut fresh = Known::default();
        let d = run(&mut fresh, &again).unwrap();
        assert_eq!(d.kind, EngagementKind::Reply);
        assert_eq!(d.root_id, id_at(2).to_string());

        // A backfilled message has no guild_id and is never a DM.
        let mut rest = message(id_at(5), CHANNEL, ann(), "<@4242> hi");
        rest = mentioning_bot(rest);
        let e = listener
            .normalize(&mut fresh, bot, &read(rest), Source::Backfill)
            .unwrap();
        assert_eq!(e.kind, EngagementKind::Mention);
        assert_eq!(
            e.url,
            Some(format!("https://discord.com/channels/77/100/{}", id_at(5)))
        );
    }

    #[tokio::test]
    async fn discord_reply_with_a_qualified_parent_goes_to_that_channel() {
        let fake = fake_discord().await;
        let token = token_file();
        let config = configured(&fake.base, &token, json!({}));
        let adapter = super::super::Factory
            .build(&config, &AdapterContext::default())
            .unwrap();
        // The registry's way in: `listen = true` builds this module's listener.
        let listening = super::super::Factory
            .build_listener(&config, &AdapterContext::default())
            .unwrap()
            .expect("discord can listen");
        std::fs::remove_file(token).unwrap();
        assert_eq!(listening.kind(), "discord");
        assert!(!format!("{listening:?}").contains(TOKEN));
        let post = OutboundPost {
            text: "answer".into(),
            campaign: None,
            media: vec![],
        };
        let reply = |parent: &'static str| PublishRequest {
            post: &post,
            idempotency_key: "key-1",
            reply_to: Some(ReplyTo {
                root: parent,
                parent,
            }),
            post_id: 7,
            target_id: 9,
            scheduled_at_ms: 1_764_158_400_000,
            budget: Duration::from_secs(30),
        };
        let elsewhere = adapter.publish(reply("300/999")).await.unwrap();
        assert_eq!(elsewhere.platform_post_id.as_deref(), Some("300/555000222"));
        assert_eq!(elsewhere.url, None, "the guild of channel 300 is unknown");
        let here = adapter.publish(reply("222")).await.unwrap();
        assert_eq!(here.platform_post_id.as_deref(), Some("555000222"));
        assert_eq!(
            here.url.as_deref(),
            Some("https://discord.com/channels/77/100/555000222")
        );
        let bad = adapter.publish(reply("300/x")).await.unwrap_err();
        assert_eq!(bad.class, ErrorClass::Permanent);

        let state = fake.state();
        let posts: Vec<(String, Value)> = state
            .http
            .iter()
            .filter(|(m, _, _, _, _)| m == Method::POST)
            .map(|(_, p, _, _, b)| (p.clone(), serde_json::from_slice(b).unwrap()))
            .collect();
        assert_eq!(posts.len(), 2, "nothing sent for a bad parent");
        assert_eq!(posts[0].0, "/api/v10/channels/300/messages");
        assert_eq!(posts[0].1["message_reference"]["message_id"], "999");
        assert_eq!(posts[0].1["message_reference"]["channel_id"], "300");
        assert_eq!(posts[1].0, "/api/v10/channels/100/messages");
        assert_eq!(posts[1].1["message_reference"]["message_id"], "222");
        assert_eq!(posts[1].1["message_reference"]["channel_id"], "100");
    }
}
