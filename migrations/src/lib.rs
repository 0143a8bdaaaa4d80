//! Clarion's schema, as sea-orm migrations. The same migrations run on SQLite
//! (the embedded default) and PostgreSQL. Times are epoch milliseconds in
//! BIGINT columns: exact, portable, and comparable in SQL on both databases.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_initial;
mod m20261127_000001_claim_tokens;
mod m20261130_000001_post_source_path;
mod m20261201_000001_post_import_key;
mod m20261202_000001_engagement;
mod m20261203_000001_bridge_threads;
mod m20261204_000001_attribution;
mod m20261205_000001_post_metrics;
mod m20261206_000001_target_variant;
mod m20261207_000001_rollups;
mod m20261208_000001_order_social_handles;
mod m20261209_000001_creator_post_metrics;
mod m20261210_000001_team;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_initial::Migration),
            Box::new(m20261127_000001_claim_tokens::Migration),
            Box::new(m20261130_000001_post_source_path::Migration),
            Box::new(m20261201_000001_post_import_key::Migration),
            Box::new(m20261202_000001_engagement::Migration),
            Box::new(m20261203_000001_bridge_threads::Migration),
            Box::new(m20261204_000001_attribution::Migration),
            Box::new(m20261205_000001_post_metrics::Migration),
            Box::new(m20261206_000001_target_variant::Migration),
            Box::new(m20261207_000001_rollups::Migration),
            Box::new(m20261208_000001_order_social_handles::Migration),
            Box::new(m20261209_000001_creator_post_metrics::Migration),
            Box::new(m20261210_000001_team::Migration),
        ]
    }
}
