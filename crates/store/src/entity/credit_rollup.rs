use sea_orm::entity::prelude::*;

/// A campaign's credits under one model, in one currency, summed per value
/// of one grouping (`grp`: total, creator, channel, post, target, day).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "credit_rollups")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub model_key: String,
    pub campaign: String,
    pub currency: String,
    pub grp: String,
    /// The group's value; `''` for none.
    pub key: String,
    pub revenue_minor: i64,
    /// Distinct orders credited in this group.
    pub orders: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
