use clarion_core::{Media, PublishReceipt, StatusError, TargetStatus};
use sea_orm::entity::prelude::*;

/// One post on one channel, with its own status machine and idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "targets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub post_id: i32,
    pub channel: String,
    pub status: String,
    /// When the author wants it out.
    pub scheduled_at_ms: Option<i64>,
    /// Never publish before this: the scheduled time, or a retry's back-off.
    pub not_before_ms: Option<i64>,
    pub override_body: Option<String>,
    /// The exact text validated at schedule time and sent at publish time.
    pub rendered_text: String,
    /// The messages to send as a JSON array of strings: one, or a thread's parts.
    pub parts: String,
    /// Attachments as a JSON array of `clarion_core::Media`.
    pub media: String,
    /// Receipts of the thread parts already published (JSON array), so a
    /// retry resumes at the first part not yet out.
    pub thread_progress: String,
    /// The post's campaign, copied so the publish path and attribution
    /// reports need no join.
    pub campaign: Option<String>,
    /// Same for every attempt of this target, so a resend can be deduplicated.
    pub idempotency_key: String,
    pub attempts: i32,
    /// While `publishing`: the claim is the worker's until then.
    pub lease_until_ms: Option<i64>,
    /// The process that holds the claim (for people reading the table).
    pub claimed_by: Option<String>,
    /// Unique per claim: only the claim that made a result may write it.
    pub claim_token: Option<String>,
    /// When the idempotency key was first used, for the platform's dedupe window.
    pub first_sent_at_ms: Option<i64>,
    /// The class of the last attempt's outcome (`published`, `transient`, ...).
    pub last_outcome: Option<String>,
    pub platform_post_id: Option<String>,
    pub platform_url: Option<String>,
    pub last_error: Option<String>,
    pub published_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// For a reply (from the inbox): the platform thread's root and the
    /// message answered, in the adapter's own id form.
    pub reply_root: Option<String>,
    pub reply_parent: Option<String>,
    /// The A/B variant this target carries, when its post has variants.
    pub variant: Option<String>,
}

impl Model {
    pub fn status(&self) -> Result<TargetStatus, StatusError> {
        TargetStatus::parse(&self.status)
    }

    pub fn parts(&self) -> Vec<String> {
        serde_json::from_str(&self.parts).unwrap_or_else(|_| vec![self.rendered_text.clone()])
    }

    pub fn media(&self) -> Vec<Media> {
        serde_json::from_str(&self.media).unwrap_or_default()
    }

    pub fn thread_progress(&self) -> Vec<PublishReceipt> {
        serde_json::from_str(&self.thread_progress).unwrap_or_default()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::post::Entity",
        from = "Column::PostId",
        to = "super::post::Column::Id"
    )]
    Post,
}

impl Related<super::post::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Post.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
