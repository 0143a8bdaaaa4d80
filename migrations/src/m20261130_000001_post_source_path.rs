//! Post files are found by the `id` in their front matter (kept in
//! `source_key`), not by their file name: `source_path` is where the file
//! was at the last `content sync`, so a rename is an update of the same
//! post and a file that is gone can be named when its post is cancelled.
//!
//! Posts synced before ids existed have their path as `source_key`; it is
//! copied into `source_path`, and the next sync gives the file an id and the
//! post that id (nothing is duplicated).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Posts {
    Table,
    SourceKey,
    SourcePath,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Posts::Table)
                    .add_column(ColumnDef::new(Posts::SourcePath).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Posts::Table)
                    .value(Posts::SourcePath, Expr::col(Posts::SourceKey))
                    .and_where(Expr::col(Posts::SourceKey).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Posts::Table)
                    .drop_column(Posts::SourcePath)
                    .to_owned(),
            )
            .await
    }
}
