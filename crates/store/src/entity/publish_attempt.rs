use sea_orm::entity::prelude::*;

/// One try at publishing a target, kept whatever its outcome.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "publish_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub target_id: i32,
    pub attempt_no: i32,
    pub worker: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// `published` or an error class (`rate_limited`, `transient`, ...).
    pub outcome: String,
    pub http_status: Option<i32>,
    pub retry_after_ms: Option<i64>,
    pub platform_post_id: Option<String>,
    /// The platform's own message on failure.
    pub message: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
