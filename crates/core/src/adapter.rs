//! The channel adapter contract: the one trait every platform implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{LengthRule, PublishError, ValidationError};

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
    /// A resend with the same key returns the first result instead of posting again.
    Honoured,
    /// The platform has no idempotency: a resend may post twice.
    None,
}

/// The rendered content of one target, ready for a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundPost {
    /// Text of the first (or only) part, in the channel's markup.
    pub text: String,
    /// Campaign tag carried for attribution; adapters may forward it.
    pub campaign: Option<String>,
}

/// One publish call. Everything an adapter needs, nothing from the database.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    pub post: &'a OutboundPost,
    /// Stable for every attempt of one target: a retry reuses it.
    pub idempotency_key: &'a str,
    /// Platform id of the message this one answers (engagement replies, threads).
    pub reply_to: Option<&'a str>,
    /// Clarion's ids, for adapters that forward them (webhook bodies).
    pub post_id: i64,
    pub target_id: i64,
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

    /// Checks content against the platform's limits before anything is queued.
    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.length_rule().check(&post.text)
    }

    /// Publishes one post. Must classify every failure (see [`ErrorClass`]).
    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError>;

    /// Verifies the credentials against the platform.
    async fn check(&self) -> Result<ChannelCheck, PublishError>;
}
