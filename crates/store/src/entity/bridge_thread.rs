use sea_orm::entity::prelude::*;

/// The chat thread the bridge opened for a conversation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bridge_threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation_id: i32,
    /// The thread, in the bridge listener's `place` form.
    pub place: String,
    /// The bridge's first message in it: later items answer it, so they
    /// land in the thread.
    pub first_message: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
