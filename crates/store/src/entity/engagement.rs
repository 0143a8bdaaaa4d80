use sea_orm::entity::prelude::*;

/// One captured mention, reply, comment, quote or DM.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "engagements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub conversation_id: i32,
    pub channel: String,
    /// The platform's id (unique per channel): the dedupe key.
    pub item_id: String,
    pub kind: String,
    pub author_id: String,
    pub author_handle: String,
    pub author_name: String,
    pub text: String,
    pub url: Option<String>,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub place: Option<String>,
    pub created_at_ms: i64,
    pub received_at_ms: i64,
    /// None: not yet shown in the bridge; `sent` once it is; `skip` when
    /// no bridge wants it.
    pub bridge_state: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
