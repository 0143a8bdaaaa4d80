//! The channel adapter contract: the one trait every platform implements.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ErrorClass, LengthRule, PublishError, ValidationError};

/// Which markup a channel renders. Templates use it to pick a flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Markup {
    Plain,
    Markdown,
    Html,
}

/// Whether a platform deduplicates a resend that carries the same key.
///
/// This decides what the scheduler does when the outcome of an attempt is
/// unknown (timeout, crash mid-request): re-send with the same key when the
/// platform honours it, otherwise park the target as `outcome_unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A resend with the same key returns the first result instead of
    /// posting again, for `window` after the key was first used (Mastodon
    /// keeps keys about an hour, Synapse about 30 minutes, Discord nonces a
    /// few minutes). [`Idempotency::FOREVER`] where the adapter can look the
    /// earlier post up itself (Bluesky record keys, email delivery marks).
    Honoured { window: Duration },
    /// The platform has no idempotency: a resend may post twice.
    None,
}

impl Idempotency {
    /// The window of a key the platform (or the adapter) never forgets.
    pub const FOREVER: Duration = Duration::MAX;

    /// Deduplicated for as long as the key is remembered.
    pub const fn honoured_for(window: Duration) -> Self {
        Self::Honoured { window }
    }

    /// Whether a resend `elapsed` after the key's first use is still
    /// deduplicated. Outside the window a resend is as unsafe as on a
    /// platform without idempotency.
    pub fn dedupes_after(self, elapsed: Duration) -> bool {
        match self {
            Self::Honoured { window } => elapsed < window,
            Self::None => false,
        }
    }
}

/// A cap of `max` sends per `per` on one channel (Mastodon: 300 statuses
/// per 3 hours per account). The scheduler paces to it instead of letting
/// the platform answer 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub max: u32,
    pub per: Duration,
}

/// An image (or other file) attached to a post, read from local disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub path: PathBuf,
    /// Alt text for screen readers; platforms that support it get it.
    pub alt: String,
    /// MIME type, e.g. `image/png`.
    pub mime: String,
    /// Size in bytes, measured when the post was planned.
    pub bytes: u64,
}

/// One message for a platform: a whole post, or one part of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutboundPost {
    /// The text, in the channel's markup.
    pub text: String,
    /// Campaign tag carried for attribution; adapters may forward it.
    pub campaign: Option<String>,
    /// Attachments (only on the first part of a thread).
    #[serde(default)]
    pub media: Vec<Media>,
}

/// What a message answers: the first and the previous message of a thread
/// (or of a conversation, for engagement replies). Ids are the adapter's own
/// opaque strings, as it returned them in [`PublishReceipt::platform_post_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo<'a> {
    pub root: &'a str,
    pub parent: &'a str,
}

/// One publish call. Everything an adapter needs, nothing from the database.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    pub post: &'a OutboundPost,
    /// Stable for every attempt of one message: a retry reuses it. Thread
    /// parts after the first get `<key>.<part>`.
    pub idempotency_key: &'a str,
    /// Set for thread parts after the first, and for replies.
    pub reply_to: Option<ReplyTo<'a>>,
    /// Clarion's ids, for adapters that forward them (webhook bodies).
    pub post_id: i64,
    pub target_id: i64,
    /// When the post was scheduled (epoch ms): the same on every attempt,
    /// for platforms whose ids encode a time (Bluesky record keys).
    pub scheduled_at_ms: i64,
    /// How long this call may take before the scheduler gives up on it.
    /// Adapters that do long work (a newsletter to many recipients, media
    /// processing) stop starting new work well inside it and return
    /// [`crate::ErrorClass::Unfinished`] to be called again at once.
    pub budget: Duration,
}

/// How a platform takes a post of several parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadStyle {
    /// Each part is its own message, replying to the previous one.
    Native,
    /// The parts are joined into one message (email, webhooks).
    Joined,
}

/// What attachments a platform takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaRule {
    pub max_count: usize,
    pub max_bytes: u64,
    pub mime_types: &'static [&'static str],
}

impl MediaRule {
    /// No attachments at all.
    pub const NONE: MediaRule = MediaRule {
        max_count: 0,
        max_bytes: 0,
        mime_types: &[],
    };

    /// Common web images.
    pub const IMAGES: &'static [&'static str] =
        &["image/png", "image/jpeg", "image/gif", "image/webp"];

    pub fn check(&self, media: &[Media]) -> Result<(), ValidationError> {
        if media.len() > self.max_count {
            return Err(ValidationError::new(if self.max_count == 0 {
                let given: Vec<String> = media
                    .iter()
                    .map(|m| format!("{} is {}", m.path.display(), m.mime))
                    .collect();
                format!("this channel takes no attachments ({})", given.join(", "))
            } else {
                format!(
                    "{} attachments; the limit is {}",
                    media.len(),
                    self.max_count
                )
            }));
        }
        for m in media {
            if !self.mime_types.contains(&m.mime.as_str()) {
                return Err(ValidationError::new(format!(
                    "{}: type {} is not accepted (accepted: {})",
                    m.path.display(),
                    m.mime,
                    self.mime_types.join(", ")
                )));
            }
            if m.bytes > self.max_bytes {
                return Err(ValidationError::new(format!(
                    "{}: {} bytes; the limit is {} bytes",
                    m.path.display(),
                    m.bytes,
                    self.max_bytes
                )));
            }
        }
        Ok(())
    }
}

/// What the platform said when a publish succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublishReceipt {
    /// The platform's id for the new post, when it returns one.
    pub platform_post_id: Option<String>,
    /// Public URL of the new post, when known.
    pub url: Option<String>,
}

/// Result of `channels check`: who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCheck {
    pub detail: String,
    /// Set when the platform answered but the check could not verify what
    /// publishing needs (a webhook that answers neither HEAD nor OPTIONS):
    /// `channels check` prints `warn`, not `ok`.
    pub warning: Option<String>,
}

impl ChannelCheck {
    /// Everything publishing needs was verified.
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            warning: None,
        }
    }

    /// Reachable, but not everything could be verified.
    pub fn warn(detail: impl Into<String>, warning: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            warning: Some(warning.into()),
        }
    }
}

/// A configured account on a platform.
///
/// Adapters never touch the database and never know about the queue: they turn
/// one [`PublishRequest`] into one platform call and classify what came back.
/// Listening (mentions, replies) and replying are added as further methods with
/// default implementations, so existing adapters keep compiling.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + std::fmt::Debug {
    /// The platform kind this adapter talks to (`webhook`, `mastodon`, ...).
    fn kind(&self) -> &'static str;

    /// How the platform counts text and where it stops.
    fn length_rule(&self) -> LengthRule;

    /// The markup the channel renders.
    fn markup(&self) -> Markup {
        Markup::Plain
    }

    /// Whether a resend with the same idempotency key is deduplicated.
    fn idempotency(&self) -> Idempotency;

    /// How a thread is published. Native threads publish part by part and
    /// resume at the failed part on retry.
    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Joined
    }

    /// Which attachments the platform takes.
    fn media_rule(&self) -> MediaRule {
        MediaRule::NONE
    }

    /// Least time between two sends on this channel, so a large schedule is
    /// paced to the platform's documented limits instead of rejected.
    fn min_interval(&self) -> Option<Duration> {
        None
    }

    /// A platform cap over a longer window (sends per hours), paced the same way.
    fn rate_window(&self) -> Option<RateWindow> {
        None
    }

    /// Checks one message against the platform's limits before anything is queued.
    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)?;
        self.media_rule().check(&post.media)
    }

    /// Checks an answer to someone (an inbox reply) before it is queued.
    /// Where a platform sends answers another way than posts (a Weibo
    /// comment), its rules differ; elsewhere they are [`Self::validate`]'s.
    fn validate_reply(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.validate(post)
    }

    /// Publishes one post. Must classify every failure (see [`ErrorClass`]).
    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError>;

    /// Verifies against the platform what publishing needs: the
    /// credentials, and the destination where that can be read (a Matrix
    /// room the bot has joined). Read-only: it posts nothing, so a failure
    /// is never `OutcomeUnknown` (an unreadable answer is a failed check).
    async fn check(&self) -> Result<ChannelCheck, PublishError>;

    /// The public counts of one of this channel's published posts (its
    /// receipt id), for post analytics. `Ok(None)`: the platform exposes no
    /// counts to this account (the default).
    async fn post_counts(
        &self,
        _platform_post_id: &str,
    ) -> Result<Option<PostCounts>, PublishError> {
        Ok(None)
    }

    /// Whether [`ChannelAdapter::start_thread`] works on this channel.
    fn starts_threads(&self) -> bool {
        false
    }

    /// Opens a new named thread (a Discord thread, or a post in a forum
    /// channel) whose first message is `request`'s. Messages in it are heard
    /// by the channel's listener with [`crate::Engagement::place`] equal to
    /// the returned `place`, and a reply to the returned message id lands in
    /// the thread. The chat bridge uses it for one thread per conversation.
    async fn start_thread(
        &self,
        _title: &str,
        _request: PublishRequest<'_>,
    ) -> Result<StartedThread, PublishError> {
        Err(PublishError::new(
            ErrorClass::Permanent,
            format!("{} channels cannot start threads", self.kind()),
        ))
    }
}

/// A post's public counts at one moment; `None` where the platform does not
/// say (Mastodon has no view counts, Telegram bots see views only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostCounts {
    pub likes: Option<i64>,
    pub reposts: Option<i64>,
    pub replies: Option<i64>,
    pub quotes: Option<i64>,
    /// Views or impressions.
    pub views: Option<i64>,
}

impl PostCounts {
    /// Likes, reposts, replies and quotes together.
    pub fn engagements(&self) -> i64 {
        [self.likes, self.reposts, self.replies, self.quotes]
            .into_iter()
            .flatten()
            .sum()
    }
}

/// A thread opened by [`ChannelAdapter::start_thread`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedThread {
    /// The first message.
    pub receipt: PublishReceipt,
    /// The thread, in the listener's `place` form.
    pub place: String,
}
