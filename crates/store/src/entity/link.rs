use sea_orm::entity::prelude::*;

/// A tracked short link: `/r/{code}` redirects to `destination`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "links")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub code: String,
    /// Where it goes, as registered (UTM tags are added at the redirect).
    pub destination: String,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    /// The configured channel the link was made for.
    pub channel: Option<String>,
    /// `utm_source`: the platform kind.
    pub source: Option<String>,
    /// `utm_medium`: social, kol, email.
    pub medium: String,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
