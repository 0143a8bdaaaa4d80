use sea_orm::entity::prelude::*;

/// One platform thread on one channel, as the inbox works it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub channel: String,
    /// The thread's root id on the platform (unique per channel).
    pub thread_key: String,
    /// `open`, `pending`, `resolved` or `snoozed`.
    pub status: String,
    pub snoozed_until_ms: Option<i64>,
    pub assignee: Option<String>,
    /// JSON array of strings.
    pub labels: String,
    /// The published target this thread answers, when it answers one.
    pub target_id: Option<i32>,
    pub post_id: Option<i32>,
    pub campaign: Option<String>,
    pub last_item_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Model {
    pub fn labels(&self) -> Vec<String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
