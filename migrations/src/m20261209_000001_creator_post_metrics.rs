//! `creator_post_metrics`: snapshots of the public counts of campaign
//! creators' own posts (captured by the listeners as engagements), on the
//! same decaying schedule as our posts'. Unique on (`engagement_id`, `step`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CreatorPostMetrics {
    Table,
    Id,
    EngagementId,
    Step,
    AtMs,
    Likes,
    Reposts,
    Replies,
    Quotes,
    Views,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let count = |name: CreatorPostMetrics| ColumnDef::new(name).big_integer().null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(CreatorPostMetrics::Table)
                    .col(
                        ColumnDef::new(CreatorPostMetrics::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CreatorPostMetrics::EngagementId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CreatorPostMetrics::Step)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CreatorPostMetrics::AtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(count(CreatorPostMetrics::Likes))
                    .col(count(CreatorPostMetrics::Reposts))
                    .col(count(CreatorPostMetrics::Replies))
                    .col(count(CreatorPostMetrics::Quotes))
                    .col(count(CreatorPostMetrics::Views))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_creator_post_metrics_target_step")
                    .table(CreatorPostMetrics::Table)
                    .col(CreatorPostMetrics::EngagementId)
                    .col(CreatorPostMetrics::Step)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CreatorPostMetrics::Table).to_owned())
            .await
    }
}
