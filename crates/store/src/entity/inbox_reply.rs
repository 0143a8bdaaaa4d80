use sea_orm::entity::prelude::*;

/// A reply written in the inbox (CLI, API or bridge) and the target that
/// carries it through the publish path.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox_replies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub conversation_id: i32,
    /// The engagement it answers.
    pub engagement_id: i32,
    pub post_id: i32,
    pub target_id: i32,
    pub author: String,
    /// `cli`, `api` or `bridge`.
    pub via: String,
    /// The chat message to confirm to (the bridge's own message id form).
    pub bridge_ref: Option<String>,
    pub confirmed_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
