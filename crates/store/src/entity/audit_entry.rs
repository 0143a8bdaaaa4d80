use sea_orm::entity::prelude::*;

/// Who did what to which post, conversation or user, and when.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub at_ms: i64,
    /// `user@example.com`, `api-token` (the shared token) or `cli`.
    pub actor: String,
    /// `post.create`, `post.approve`, `post.reschedule`, `inbox.reply`, …
    pub action: String,
    /// `post 12`, `conversation 3`, `user a@b.c`.
    pub subject: String,
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
