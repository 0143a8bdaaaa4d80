//! `bridge_threads`: the chat thread the bridge opened for a conversation
//! (a Discord thread or forum post). Later items of the conversation go into
//! it, and a message in it finds its conversation by the thread (`place`)
//! even when it answers no particular message.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BridgeThreads {
    Table,
    Channel,
    ConversationId,
    Place,
    FirstMessage,
    CreatedAtMs,
}

const PLACE_INDEX: &str = "ux_bridge_threads_place";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BridgeThreads::Table)
                    .col(ColumnDef::new(BridgeThreads::Channel).string().not_null())
                    .col(
                        ColumnDef::new(BridgeThreads::ConversationId)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BridgeThreads::Place).string().not_null())
                    .col(
                        ColumnDef::new(BridgeThreads::FirstMessage)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BridgeThreads::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BridgeThreads::Channel)
                            .col(BridgeThreads::ConversationId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(PLACE_INDEX)
                    .table(BridgeThreads::Table)
                    .col(BridgeThreads::Channel)
                    .col(BridgeThreads::Place)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BridgeThreads::Table).to_owned())
            .await
    }
}
