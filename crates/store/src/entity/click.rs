use sea_orm::entity::prelude::*;

/// One redirect through a tracked link.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clicks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Handed to the shop as `clarion_cid`; comes back with the order.
    #[sea_orm(unique)]
    pub click_id: String,
    pub link_id: i32,
    pub at_ms: i64,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub referrer: Option<String>,
    /// A link unfurler or crawler: recorded, never counted.
    pub is_bot: bool,
    /// A daily-salted hash of the visitor; no raw IP is stored.
    pub visitor_key: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
