use sea_orm::entity::prelude::*;

/// The credit one touch gets for one order under one model and window.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_credits")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `orders.id`.
    pub order_row_id: i32,
    /// The model and window, e.g. `last-click/7d`.
    pub model_key: String,
    /// `clicks.id` of the credited click; None for a creator's code alone.
    pub click_row_id: Option<i32>,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    /// Net of refunds, in the order's currency.
    pub amount_minor: i64,
    pub currency: String,
    pub share_ppm: i64,
    /// `code:<CODE>`, `touches` or `unattributed`.
    pub decided_by: String,
    pub order_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
