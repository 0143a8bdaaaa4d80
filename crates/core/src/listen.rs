//! The listening contract: how a platform module turns the platform's stream
//! or poll into engagement events plus an opaque cursor.
//!
//! A [`Listener`] never touches the database. The listener runtime
//! (`clarion-engage`) calls [`Listener::next_batch`] with the last cursor it
//! stored, stores the events *and* the returned cursor in one transaction,
//! then calls [`Listener::acknowledge`] and asks again. So a crash between
//! the two loses nothing (the stored cursor is older; events come again and
//! are deduplicated on channel + platform item id) and a cursor is never
//! stored ahead of events that were not.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::PublishError;

/// What an engagement is, as the inbox shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngagementKind {
    /// The account was named in a message that does not answer it.
    Mention,
    /// An answer to one of the account's own messages.
    Reply,
    /// A comment under a post (a channel's discussion group).
    Comment,
    /// A quote of one of the account's messages.
    Quote,
    /// A direct message to the account.
    Dm,
}

impl EngagementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mention => "mention",
            Self::Reply => "reply",
            Self::Comment => "comment",
            Self::Quote => "quote",
            Self::Dm => "dm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mention" => Self::Mention,
            "reply" => Self::Reply,
            "comment" => Self::Comment,
            "quote" => Self::Quote,
            "dm" => Self::Dm,
            _ => return None,
        })
    }
}

/// Who wrote an engagement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EngagementAuthor {
    /// The platform's stable id for the account (Mastodon account id, DID,
    /// Telegram user id, Matrix user id).
    pub id: String,
    /// `@handle` as people type it.
    pub handle: String,
    pub display_name: String,
    /// The author's roles where the place has them (Discord role ids in a
    /// guild): the chat bridge can allow a role instead of each person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// One captured comment, reply, mention, quote or DM, normalized.
///
/// Every id is the adapter's own opaque string, in the same form as its
/// [`crate::PublishReceipt::platform_post_id`]: so `reply_root` and `item_id`
/// can be handed back as a [`crate::ReplyTo`] to answer it, and `parent_id`
/// can be matched against the ids of Clarion's own published targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    /// Unique per channel: the dedupe key.
    pub item_id: String,
    pub kind: EngagementKind,
    pub author: EngagementAuthor,
    pub text: String,
    pub url: Option<String>,
    /// The message this one answers, when it answers one.
    pub parent_id: Option<String>,
    /// The first message of the platform thread (itself when it starts one):
    /// one thread is one inbox conversation, and a reply names it as root.
    pub root_id: String,
    /// Where on the platform it was said, when the channel spans several
    /// places (a Telegram chat, a Discord channel, a Matrix room).
    pub place: Option<String>,
    /// When the platform says it was written (epoch ms).
    pub created_at_ms: i64,
}

/// What one [`Listener::next_batch`] call found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenBatch {
    pub events: Vec<Engagement>,
    /// Where to resume after these events; `None` keeps the stored cursor.
    pub cursor: Option<String>,
    /// Items the platform sent that could not be read (malformed payloads):
    /// logged and counted by the runtime, never stored, never fatal.
    pub skipped: Vec<String>,
    /// How long to wait before asking again. Zero for long-polling and
    /// streaming listeners, which already waited inside the call.
    pub wait: Duration,
}

/// A configured account that can listen.
///
/// A listener never yields the account's own messages or other bots'
/// messages: the bridge posts as the bot, and echoing those would loop.
///
/// Failures reuse the publish side's classes so rate limits, `Retry-After`
/// and expired tokens are handled the same way: `RateLimited` waits
/// `retry_after`, `AuthExpired` is shown as needing a reconnect, everything
/// else backs off and tries again.
#[async_trait]
pub trait Listener: Send + Sync + std::fmt::Debug {
    /// The platform kind (`mastodon`, `bluesky`, ...).
    fn kind(&self) -> &'static str;

    /// Waits for (streaming, long polling) or fetches (polling) the events
    /// after `cursor` (None: the first run, which starts from now or from
    /// what the platform still holds, as the module documents).
    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError>;

    /// Called after a batch and its cursor are stored: platforms with a
    /// read marker (Bluesky `updateSeen`) are told here. Failures are
    /// logged only; the stored cursor is what resumes.
    async fn acknowledge(&self, _cursor: &str) -> Result<(), PublishError> {
        Ok(())
    }

    /// Reads events the platform pushed to Clarion's webhook endpoint
    /// (`POST /hooks/<channel>`), checking the request is the platform's
    /// (a shared secret header, a signature). `headers` are lower-case
    /// names with their values. Listeners without a push mode refuse.
    async fn receive_push(
        &self,
        _headers: &[(String, String)],
        _body: &[u8],
    ) -> Result<ListenBatch, PushError> {
        Err(PushError::NotEnabled)
    }
}

/// Why a pushed request was refused. Nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The channel takes no pushes (no webhook secret configured).
    #[error("this channel has no webhook mode")]
    NotEnabled,
    /// The secret or signature is missing or wrong.
    #[error("the request is not signed by the platform")]
    Unauthorized,
    /// The body is not what the platform sends.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The platform could not be asked what the listener needs (who the bot is).
    #[error("{0}")]
    Unavailable(String),
}
