//! `post_metrics`: snapshots of a published target's public counts, taken
//! on a decaying schedule after publishing. Unique on (`target_id`, `step`):
//! two processes polling the same target store one snapshot per step.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PostMetrics {
    Table,
    Id,
    TargetId,
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
        let count = |name: PostMetrics| ColumnDef::new(name).big_integer().null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(PostMetrics::Table)
                    .col(
                        ColumnDef::new(PostMetrics::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PostMetrics::TargetId).integer().not_null())
                    .col(ColumnDef::new(PostMetrics::Step).integer().not_null())
                    .col(ColumnDef::new(PostMetrics::AtMs).big_integer().not_null())
                    .col(count(PostMetrics::Likes))
                    .col(count(PostMetrics::Reposts))
                    .col(count(PostMetrics::Replies))
                    .col(count(PostMetrics::Quotes))
                    .col(count(PostMetrics::Views))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_post_metrics_target_step")
                    .table(PostMetrics::Table)
                    .col(PostMetrics::TargetId)
                    .col(PostMetrics::Step)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PostMetrics::Table).to_owned())
            .await
    }
}
