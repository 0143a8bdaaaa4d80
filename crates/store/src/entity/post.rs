use sea_orm::entity::prelude::*;

/// What an author wrote: body, template, variables. Rendered per channel into targets.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "posts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Stable identity of a post kept as a file: the `id` in its front
    /// matter (survives renames); None for API/CLI posts.
    #[sea_orm(unique)]
    pub source_key: Option<String>,
    /// Where the post's file was at the last `content sync`, relative to the
    /// posts folder (`2026/launch.md`); None once the file is gone.
    pub source_path: Option<String>,
    pub body: String,
    pub template: Option<String>,
    /// Template variables as a JSON object.
    pub vars: String,
    pub campaign: Option<String>,
    pub author: Option<String>,
    pub scheduled_at_ms: Option<i64>,
    /// Hash of everything that renders the post: an unchanged file is not rewritten.
    pub content_hash: String,
    /// Fingerprint of the imported row this post came from (`post import`,
    /// `POST /api/v1/posts:import`): the same row imported again is skipped.
    /// None for posts created any other way.
    #[sea_orm(unique)]
    pub import_key: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `pending_approval`, `approved` or `rejected` for a contributor's
    /// post; None for posts that never needed approval. A pending post's
    /// targets stay `draft`, so nothing of it can be claimed.
    pub approval: Option<String>,
    /// The time the contributor asked for; None = as soon as approved.
    pub requested_at_ms: Option<i64>,
    /// The reviewer's comment on approval or rejection.
    pub review_comment: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::target::Entity")]
    Target,
}

impl Related<super::target::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Target.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
