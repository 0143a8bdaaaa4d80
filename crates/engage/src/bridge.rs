//! The reply bridge: new inbox items are shown in a chat (Discord or
//! Telegram, any channel whose adapter can post and whose listener hears
//! replies), and a community manager answers there.
//!
//! Where the chat can start threads (Discord; a Telegram forum supergroup
//! with `topics = true`), each conversation gets its own thread (a post in a
//! Discord forum channel, a Telegram topic) and every item of it goes there;
//! otherwise one message per item. A manager writes in the
//! conversation's thread, or *replies to* a bridged message (or to any
//! message the bridge posted about that conversation):
//! - plain text: queued as a threaded reply on the origin platform, through
//!   the durable publish path; the bridge confirms with the link, or the error;
//! - `note: ...`: an internal note, never sent out;
//! - `/resolve`, `/reopen`, `/assign NAME|me`, `/unassign`, `/snooze 2h`,
//!   `/label a b`, `/unlabel a` (or with `!` instead of `/`): inbox commands.
//!
//! Only users in `allow_users` (or with a role in `allow_roles`) may act;
//! others get a polite refusal and
//! nothing is sent. Each chat message is handled once, even when the
//! listener reads it again after a restart (`bridge_messages` remembers it).
//! The bridge's own messages never come back (listeners drop the bot's own).
//! Forwarding and confirmations run only in the process that holds the
//! bridge channel's listener lease, so two processes never both post.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clarion_core::{
    ChannelAdapter, ConfigError, Engagement, ErrorClass, ListenerRegistry, Markup, OutboundPost,
    PublishRequest, ReplyTo, TargetStatus,
};
use clarion_store::{Store, engagement, now_ms};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::inbox::parse_duration;
use crate::{BridgeConfig, InboxService, ReplyVia};

/// How often the forwarder looks for work when nothing woke it.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    adapter: Arc<dyn ChannelAdapter>,
    inbox: InboxService,
    store: Store,
    wake: Notify,
    /// Set while this process holds the bridge channel's listener lease.
    active: AtomicBool,
    /// One thread per conversation (else one message per item).
    threads: bool,
    /// No chat message before this: the channel's `min_interval`, or the
    /// wait a rate-limited answer asked for (a Telegram group takes about
    /// 20 messages a minute; a burst of confirmations must not be refused).
    next_send: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Bridge {
    /// Checks the `[bridge]` section against the configured channels.
    pub fn new(
        config: BridgeConfig,
        inbox: InboxService,
        adapter: Option<Arc<dyn ChannelAdapter>>,
        listeners: &ListenerRegistry,
    ) -> Result<Self, ConfigError> {
        let channel = &config.channel;
        let adapter = adapter.ok_or_else(|| {
            ConfigError::new(format!(
                "[bridge] channel `{channel}` is not a configured channel"
            ))
        })?;
        if listeners.get(channel).is_none() {
            return Err(ConfigError::new(format!(
                "[bridge] channel `{channel}` must have `listen = true`, so the bridge hears replies"
            )));
        }
        if config.allow_users.is_empty() && config.allow_roles.is_empty() {
            warn!(
                channel,
                "[bridge] allow_users and allow_roles are empty: nobody can answer from chat"
            );
        }
        let threads = match config.threads {
            Some(true) if !adapter.starts_threads() => {
                return Err(ConfigError::new(format!(
                    "[bridge] threads = true: channel `{channel}` ({}) cannot start threads",
                    adapter.kind()
                )));
            }
            Some(threads) => threads,
            None => adapter.starts_threads(),
        };
        Ok(Self {
            threads,
            store: inbox.store().clone(),
            config,
            adapter,
            inbox,
            wake: Notify::new(),
            active: AtomicBool::new(false),
            next_send: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        })
    }

    pub fn channel(&self) -> &str {
        &self.config.channel
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
        self.wake();
    }

    /// Handles the bridge chat's messages that answer the bridge; returns
    /// the rest (someone mentioning the bot elsewhere) for the inbox.
    pub async fn take_chat_events(&self, events: Vec<Engagement>) -> Vec<Engagement> {
        let mut rest = Vec::with_capacity(events.len());
        for event in events {
            let conversation = self.conversation_of(&event).await;
            match conversation {
                Ok(Some(conversation)) => {
                    if let Err(e) = self.handle(conversation, &event).await {
                        warn!(item = event.item_id, error = %e, "bridge message not handled");
                    }
                }
                Ok(None) => rest.push(event),
                Err(e) => {
                    warn!(error = %e, "bridge lookup failed; the item goes to the inbox");
                    rest.push(event);
                }
            }
        }
        rest
    }

    /// The conversation a chat message is about: by the bridge message it
    /// answers, else by the conversation thread it was written in.
    async fn conversation_of(
        &self,
        event: &Engagement,
    ) -> Result<Option<i32>, clarion_store::StoreError> {
        if let Some(parent) = event.parent_id.as_deref()
            && let Some(conversation) = self
                .store
                .bridge_conversation(self.channel(), parent)
                .await?
        {
            return Ok(Some(conversation));
        }
        match (&event.place, self.threads) {
            (Some(place), true) => {
                self.store
                    .bridge_thread_conversation(self.channel(), place)
                    .await
            }
            _ => Ok(None),
        }
    }

    fn allowed(&self, author: &clarion_core::EngagementAuthor) -> bool {
        self.config.allow_users.contains(&author.id)
            || author
                .roles
                .iter()
                .any(|role| self.config.allow_roles.contains(role))
    }

    async fn handle(&self, conversation: i32, event: &Engagement) -> Result<(), String> {
        let first_time = self
            .store
            .remember_bridge_message(self.channel(), &event.item_id, conversation)
            .await
            .map_err(|e| e.to_string())?;
        if !first_time {
            return Ok(()); // Read again after a restart: already handled.
        }
        let who = if event.author.handle.is_empty() {
            event.author.id.clone()
        } else {
            event.author.handle.clone()
        };
        if !self.allowed(&event.author) {
            info!(
                user = event.author.id,
                "bridge: refused an unauthorized user"
            );
            let text = format!(
                "Sorry {who}, you are not allowed to answer from here: nothing was sent. \
                 (An admin can add user id {} to [bridge] allow_users.)",
                event.author.id
            );
            self.say(&text, &event.item_id, conversation).await;
            return Ok(());
        }
        let text = event.text.trim();
        let answer = if text.is_empty() {
            // Discord sends no text without the MESSAGE_CONTENT intent
            // unless the message mentions the bot.
            "⚠️ I could not read that message, so nothing was sent. Reply to one of my \
             messages with the mention on, or set `message_content = true` on this channel."
                .to_owned()
        } else if let Some(note) = strip_prefix_ci(text, "note:") {
            match self.inbox.note(conversation, &who, note).await {
                Ok(_) => "📝 Note saved (internal, not sent).".to_owned(),
                Err(e) => format!("⚠️ {e}"),
            }
        } else if let Some(command) = text.strip_prefix('/').or_else(|| text.strip_prefix('!')) {
            self.command(conversation, &who, command).await
        } else {
            match self
                .inbox
                .reply(
                    conversation,
                    text,
                    &who,
                    ReplyVia::Bridge,
                    Some(event.item_id.clone()),
                    None,
                )
                .await
            {
                // Confirmed once it is published (see `confirm`).
                Ok(_) => return Ok(()),
                Err(e) => format!("⚠️ Not sent: {e}"),
            }
        };
        self.say(&answer, &event.item_id, conversation).await;
        Ok(())
    }

    async fn command(&self, conversation: i32, who: &str, command: &str) -> String {
        let mut words = command.split_whitespace();
        // Telegram adds the bot's name in groups: `/resolve@clarion_bot`.
        let name = words
            .next()
            .unwrap_or("")
            .split('@')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let args: Vec<String> = words.map(str::to_owned).collect();
        let result = match name.as_str() {
            "resolve" => self
                .inbox
                .resolve(conversation)
                .await
                .map(|_| "✅ Resolved.".to_owned()),
            "reopen" => self
                .inbox
                .reopen(conversation)
                .await
                .map(|_| "🔓 Reopened.".to_owned()),
            "assign" => {
                let to = match args.first().map(String::as_str) {
                    None | Some("me") => who.to_owned(),
                    Some(name) => name.to_owned(),
                };
                self.inbox
                    .assign(conversation, Some(&to))
                    .await
                    .map(|_| format!("👤 Assigned to {to}."))
            }
            "unassign" => self
                .inbox
                .assign(conversation, None)
                .await
                .map(|_| "👤 Unassigned.".to_owned()),
            "snooze" => match parse_duration(args.first().map(String::as_str).unwrap_or("1h")) {
                Ok(length) => self
                    .inbox
                    .snooze(conversation, now_ms() + length.as_millis() as i64)
                    .await
                    .map(|_| {
                        format!(
                            "💤 Snoozed for {}.",
                            args.first().map(String::as_str).unwrap_or("1h")
                        )
                    }),
                Err(e) => Err(e),
            },
            "label" if !args.is_empty() => self
                .inbox
                .label(conversation, &args, &[])
                .await
                .map(|c| format!("🏷️ Labels: {}", c.labels().join(", "))),
            "unlabel" if !args.is_empty() => self
                .inbox
                .label(conversation, &[], &args)
                .await
                .map(|c| format!("🏷️ Labels: {}", c.labels().join(", "))),
            _ => {
                return format!(
                    "Unknown command `{name}`. Commands: /resolve, /reopen, /assign NAME|me, \
                     /unassign, /snooze 2h, /label A B, /unlabel A; `note: ...` for a note; \
                     any other text is sent as the reply."
                );
            }
        };
        result.unwrap_or_else(|e| format!("⚠️ {e}"))
    }

    /// Posts `text` in the bridge chat as a reply to `parent`, and maps the
    /// new message to the conversation. Failures are logged: the chat is
    /// where a person would have read them.
    async fn say(&self, text: &str, parent: &str, conversation: i32) -> Option<String> {
        let place = if parent.is_empty() {
            Placement::Channel
        } else {
            Placement::Reply(parent)
        };
        self.post(text, place, conversation).await
    }

    /// Posts `text` in the bridge chat, paced; records the new message (and
    /// a new thread) against the conversation.
    async fn post(&self, text: &str, place: Placement<'_>, conversation: i32) -> Option<String> {
        let post = OutboundPost {
            text: for_markup(text, self.adapter.markup()),
            campaign: None,
            media: Vec::new(),
        };
        let key = format!("bridge-{}-{}", conversation, now_ms());
        let request = PublishRequest {
            post: &post,
            idempotency_key: &key,
            reply_to: match place {
                Placement::Reply(parent) => Some(ReplyTo {
                    root: parent,
                    parent,
                }),
                Placement::Channel | Placement::NewThread(_) => None,
            },
            post_id: 0,
            target_id: 0,
            scheduled_at_ms: now_ms(),
            budget: Duration::from_secs(30),
        };
        let mut next_send = self.next_send.lock().await;
        tokio::time::sleep_until(*next_send).await;
        let (sent, thread) = match place {
            Placement::NewThread(title) => match self.adapter.start_thread(title, request).await {
                Ok(started) => (Ok(started.receipt), Some(started.place)),
                Err(e) => (Err(e), None),
            },
            Placement::Channel | Placement::Reply(_) => (self.adapter.publish(request).await, None),
        };
        *next_send = tokio::time::Instant::now()
            + match &sent {
                Err(e) if e.class == ErrorClass::RateLimited => {
                    e.retry_after.unwrap_or(Duration::from_secs(5))
                }
                _ => self.adapter.min_interval().unwrap_or_default(),
            };
        drop(next_send);
        match sent {
            Ok(receipt) => {
                let id = receipt.platform_post_id?;
                if let Some(thread) = thread
                    && let Err(e) = self
                        .store
                        .remember_bridge_thread(self.channel(), conversation, &thread, &id)
                        .await
                {
                    warn!(error = %e, "could not record a bridge thread");
                }
                if let Err(e) = self
                    .store
                    .remember_bridge_message(self.channel(), &id, conversation)
                    .await
                {
                    warn!(error = %e, "could not record a bridge message");
                }
                Some(id)
            }
            Err(e) => {
                warn!(error = %e, "bridge: could not post in chat");
                None
            }
        }
    }

    /// Forwards new items and confirms replies while this process holds
    /// the bridge channel's lease, until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if self.active.load(Ordering::SeqCst) {
                self.forward().await;
                self.confirm().await;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = crate::runtime::stopped(&mut stop) => return,
            }
        }
    }

    async fn forward(&self) {
        let items = match self.store.unbridged(50).await {
            Ok(items) => items,
            Err(e) => {
                warn!(error = %e, "bridge: could not read new items");
                return;
            }
        };
        for item in items {
            let text = match self.describe(&item).await {
                Ok(text) => text,
                Err(e) => {
                    warn!(error = %e, "bridge: could not describe an item");
                    return;
                }
            };
            let thread = if self.threads {
                match self
                    .store
                    .bridge_thread(self.channel(), item.conversation_id)
                    .await
                {
                    Ok(thread) => thread,
                    Err(e) => {
                        warn!(error = %e, "bridge: could not read a conversation's thread");
                        return;
                    }
                }
            } else {
                None
            };
            let title = thread_title(&item);
            let place = match (&thread, self.threads) {
                (Some(thread), _) => Placement::Reply(&thread.first_message),
                (None, true) => Placement::NewThread(&title),
                (None, false) => Placement::Channel,
            };
            let Some(message) = self.post(&text, place, item.conversation_id).await else {
                return; // Try again on the next pass.
            };
            if let Err(e) = self
                .store
                .mark_bridged(
                    item.id,
                    self.channel(),
                    Some(&message),
                    item.conversation_id,
                )
                .await
            {
                warn!(error = %e, "bridge: could not record a forwarded item");
            }
        }
    }

    async fn describe(
        &self,
        item: &engagement::Model,
    ) -> Result<String, clarion_store::StoreError> {
        let conversation = self.store.conversation(item.conversation_id).await?;
        let mut text = String::new();
        let labels = conversation.labels();
        if let Some(priority) = labels.iter().find_map(|l| l.strip_prefix("priority:")) {
            text.push_str(&format!("‼️ priority {priority}\n"));
        }
        let who = match (item.author_name.trim(), item.author_handle.trim()) {
            ("", handle) => handle.to_owned(),
            (name, "") => name.to_owned(),
            (name, handle) => format!("{name} ({handle})"),
        };
        text.push_str(&format!(
            "💬 {} on {} · conversation #{}\n{who}: {}\n",
            item.kind, item.channel, conversation.id, item.text
        ));
        if let Some(post) = conversation.post_id {
            match &conversation.campaign {
                Some(campaign) => {
                    text.push_str(&format!("↪ answers post #{post} (campaign {campaign})\n"))
                }
                None => text.push_str(&format!("↪ answers post #{post}\n")),
            }
        }
        if !labels.is_empty() {
            text.push_str(&format!("🏷️ {}\n", labels.join(", ")));
        }
        if let Some(url) = &item.url {
            text.push_str(&format!("🔗 {url}\n"));
        }
        text.push_str(if self.threads {
            "Write here to answer · note: … for a note · !resolve !snooze 2h !assign me !label x"
        } else {
            "Reply to this message to answer · note: … for a note · /resolve /snooze 2h /assign me /label x"
        });
        Ok(text)
    }

    async fn confirm(&self) {
        let replies = match self
            .store
            .unconfirmed_replies(ReplyVia::Bridge.as_str())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "bridge: could not read replies to confirm");
                return;
            }
        };
        for state in replies {
            let Some(target) = &state.target else {
                continue;
            };
            let text = match TargetStatus::parse(&target.status) {
                Ok(TargetStatus::Published) => match &target.platform_url {
                    Some(url) => format!("✅ Sent: {url}"),
                    None => "✅ Sent.".to_owned(),
                },
                Ok(TargetStatus::Failed) => format!(
                    "⚠️ Not sent: {}",
                    target
                        .last_error
                        .as_deref()
                        .unwrap_or("the platform refused it")
                ),
                Ok(TargetStatus::OutcomeUnknown) => format!(
                    "❓ The platform did not say whether the reply went out ({}); check and settle post {} before retrying.",
                    target.last_error.as_deref().unwrap_or("no answer"),
                    target.post_id
                ),
                Ok(TargetStatus::Cancelled) => "🚫 The reply was cancelled.".to_owned(),
                _ => continue, // Still on its way.
            };
            let parent = state.reply.bridge_ref.clone().unwrap_or_default();
            if self
                .say(&text, &parent, state.reply.conversation_id)
                .await
                .is_some()
                && let Err(e) = self.store.confirm_reply(state.reply.id).await
            {
                warn!(error = %e, "bridge: could not record a confirmation");
            }
        }
    }
}

/// Where a bridge message goes.
#[derive(Debug, Clone, Copy)]
enum Placement<'a> {
    /// A new message in the bridge chat.
    Channel,
    /// An answer to this chat message (in its thread, if it is in one).
    Reply(&'a str),
    /// The first message of a new thread with this title.
    NewThread(&'a str),
}

/// A conversation thread's name: who and where, so the thread list reads
/// like an inbox.
fn thread_title(item: &engagement::Model) -> String {
    let who = [item.author_name.trim(), item.author_handle.trim()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("someone");
    format!(
        "#{} {} on {}: {}",
        item.conversation_id,
        who,
        item.channel,
        item.text.chars().take(40).collect::<String>()
    )
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text[prefix.len()..].trim())
}

/// Bridge text is plain; an HTML channel needs it escaped.
fn for_markup(text: &str, markup: Markup) -> String {
    match markup {
        Markup::Html => text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
        Markup::Plain | Markup::Markdown => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_recognised_in_any_case_and_html_is_escaped() {
        assert_eq!(strip_prefix_ci("NOTE: vip", "note:"), Some("vip"));
        assert_eq!(strip_prefix_ci("notes", "note:"), None);
        assert_eq!(for_markup("<b>&", Markup::Html), "&lt;b&gt;&amp;");
        assert_eq!(for_markup("<b>", Markup::Markdown), "<b>");
    }
}
