use sea_orm::entity::prelude::*;

/// Clicks of one campaign counted per combination; `''`/`0` mean none.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "click_rollups")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub campaign: String,
    pub creator: String,
    pub channel: String,
    pub post_id: i32,
    pub target_id: i32,
    pub is_bot: bool,
    pub n: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
