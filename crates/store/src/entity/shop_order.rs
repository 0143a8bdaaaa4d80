use sea_orm::entity::prelude::*;

/// An order from a shop: unique on (`source`, `order_id`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// shopify, woocommerce, api, csv.
    pub source: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub at_ms: i64,
    pub customer_key: Option<String>,
    pub click_id: Option<String>,
    /// JSON array of the discount codes used.
    pub discount_codes: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub refunded_minor: i64,
    pub received_at_ms: i64,
    /// The customer's social accounts, `platform:handle`, space-separated.
    pub social_handles: String,
}

impl Model {
    pub fn codes(&self) -> Vec<String> {
        serde_json::from_str(&self.discount_codes).unwrap_or_default()
    }

    /// The customer's social accounts, `platform:handle`.
    pub fn handles(&self) -> impl Iterator<Item = &str> {
        self.social_handles.split_whitespace()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
