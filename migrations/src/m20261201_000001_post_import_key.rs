//! `posts.import_key`: the fingerprint of an imported row (`post import`,
//! `POST /api/v1/posts:import`), so importing the same file again creates
//! nothing new. Unique (NULLs are distinct on both databases: posts created
//! any other way have none), and the import's insert skips a row whose key
//! is stored (`ON CONFLICT (import_key) DO NOTHING`) in the same statement.
//! Not `source_key`: that is the identity of a content-as-code file.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Posts {
    Table,
    ImportKey,
}

const INDEX: &str = "ux_posts_import_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite cannot add a UNIQUE column: the column, then a unique index.
        manager
            .alter_table(
                Table::alter()
                    .table(Posts::Table)
                    .add_column(ColumnDef::new(Posts::ImportKey).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Posts::Table)
                    .col(Posts::ImportKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Posts::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Posts::Table)
                    .drop_column(Posts::ImportKey)
                    .to_owned(),
            )
            .await
    }
}
