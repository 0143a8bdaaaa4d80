use sea_orm::entity::prelude::*;

/// A person who signs in to the dashboard or holds API tokens.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Lower-cased; the login name.
    #[sea_orm(unique)]
    pub email: String,
    pub name: String,
    /// `owner`, `editor`, `contributor` or `viewer` (`clarion_core::Role`).
    pub role: String,
    /// Argon2id PHC string; None: signs in by emailed link only.
    pub password_hash: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The stored role; an unknown value (a hand-edited row) reads as viewer,
    /// the role that can do no harm.
    pub fn role(&self) -> clarion_core::Role {
        self.role.parse().unwrap_or(clarion_core::Role::Viewer)
    }
}
