use sea_orm::entity::prelude::*;

/// One listening channel: its stored cursor, who runs it (the lease), and health.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "listeners")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    /// Opaque: only the channel's listener reads it.
    pub cursor: Option<String>,
    /// The process that holds the lease.
    pub holder: Option<String>,
    pub lease_until_ms: Option<i64>,
    /// When the last new engagement was stored.
    pub last_event_at_ms: Option<i64>,
    /// When the platform last answered (with or without events).
    pub last_batch_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Set while failing: since when, for `/readyz`.
    pub failing_since_ms: Option<i64>,
    pub events_total: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
