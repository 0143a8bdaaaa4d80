use sea_orm::entity::prelude::*;

/// One value an adapter keeps between calls, encrypted (AES-256-GCM).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "adapter_state")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub scope: String,
    pub name: String,
    /// base64 of the 96-bit nonce.
    pub nonce: String,
    /// base64 of the ciphertext (with tag).
    pub ciphertext: String,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
