use sea_orm::entity::prelude::*;

/// A campaign creator's post's public counts at one step after it was posted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "creator_post_metrics")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `engagements.id` of the creator's post.
    pub engagement_id: i32,
    /// Which step of the schedule (0: the first snapshot).
    pub step: i32,
    pub at_ms: i64,
    pub likes: Option<i64>,
    pub reposts: Option<i64>,
    pub replies: Option<i64>,
    pub quotes: Option<i64>,
    pub views: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
