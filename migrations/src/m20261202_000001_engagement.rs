//! Engagement: what listeners capture, the inbox built from it, and the
//! state that makes listening resumable and single-owner.
//!
//! - `listeners`: one row per listening channel: the stored cursor, the
//!   lease (which process runs it, until when) and its health.
//! - `conversations`: one platform thread on one channel, with the inbox
//!   status, assignee and labels, and the published target it answers.
//! - `engagements`: each captured item, unique on (channel, item_id): the
//!   dedupe that makes a re-read batch harmless.
//! - `conversation_notes`: internal notes, never sent out.
//! - `inbox_replies`: a reply someone wrote, and the target (on the durable
//!   publish path) that carries it; `confirmed_at_ms` once the author was told.
//! - `bridge_messages`: every message the bridge posted in chat, so a reply
//!   to it finds its conversation.
//! - `targets.reply_root`/`reply_parent`: a target that answers a platform
//!   message (an inbox reply) carries the ids to thread under.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Targets {
    Table,
    ReplyRoot,
    ReplyParent,
}

#[derive(DeriveIden)]
enum Listeners {
    Table,
    Channel,
    Cursor,
    Holder,
    LeaseUntilMs,
    LastEventAtMs,
    LastBatchAtMs,
    LastError,
    FailingSinceMs,
    EventsTotal,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    Channel,
    ThreadKey,
    Status,
    SnoozedUntilMs,
    Assignee,
    Labels,
    TargetId,
    PostId,
    Campaign,
    LastItemAtMs,
    CreatedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Engagements {
    Table,
    Id,
    ConversationId,
    Channel,
    ItemId,
    Kind,
    AuthorId,
    AuthorHandle,
    AuthorName,
    Text,
    Url,
    ParentId,
    RootId,
    Place,
    CreatedAtMs,
    ReceivedAtMs,
    BridgeState,
}

#[derive(DeriveIden)]
enum ConversationNotes {
    Table,
    Id,
    ConversationId,
    Author,
    Text,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum InboxReplies {
    Table,
    Id,
    ConversationId,
    EngagementId,
    PostId,
    TargetId,
    Author,
    Via,
    BridgeRef,
    ConfirmedAtMs,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum BridgeMessages {
    Table,
    Channel,
    MessageId,
    ConversationId,
    CreatedAtMs,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Targets::ReplyRoot, Targets::ReplyParent] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Targets::Table)
                        .add_column(ColumnDef::new(column).string().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Listeners::Table)
                    .col(
                        ColumnDef::new(Listeners::Channel)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Listeners::Cursor).text().null())
                    .col(ColumnDef::new(Listeners::Holder).string().null())
                    .col(ColumnDef::new(Listeners::LeaseUntilMs).big_integer().null())
                    .col(
                        ColumnDef::new(Listeners::LastEventAtMs)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Listeners::LastBatchAtMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Listeners::LastError).text().null())
                    .col(
                        ColumnDef::new(Listeners::FailingSinceMs)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Listeners::EventsTotal)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Listeners::UpdatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(id_col(Conversations::Id))
                    .col(ColumnDef::new(Conversations::Channel).string().not_null())
                    .col(ColumnDef::new(Conversations::ThreadKey).string().not_null())
                    .col(ColumnDef::new(Conversations::Status).string().not_null())
                    .col(
                        ColumnDef::new(Conversations::SnoozedUntilMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Conversations::Assignee).string().null())
                    .col(
                        ColumnDef::new(Conversations::Labels)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .col(ColumnDef::new(Conversations::TargetId).integer().null())
                    .col(ColumnDef::new(Conversations::PostId).integer().null())
                    .col(ColumnDef::new(Conversations::Campaign).string().null())
                    .col(
                        ColumnDef::new(Conversations::LastItemAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Conversations::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Conversations::UpdatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_conversations_thread")
                    .table(Conversations::Table)
                    .col(Conversations::Channel)
                    .col(Conversations::ThreadKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_status")
                    .table(Conversations::Table)
                    .col(Conversations::Status)
                    .col(Conversations::LastItemAtMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Engagements::Table)
                    .col(id_col(Engagements::Id))
                    .col(
                        ColumnDef::new(Engagements::ConversationId)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Engagements::Channel).string().not_null())
                    .col(ColumnDef::new(Engagements::ItemId).string().not_null())
                    .col(ColumnDef::new(Engagements::Kind).string().not_null())
                    .col(ColumnDef::new(Engagements::AuthorId).string().not_null())
                    .col(
                        ColumnDef::new(Engagements::AuthorHandle)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Engagements::AuthorName).string().not_null())
                    .col(ColumnDef::new(Engagements::Text).text().not_null())
                    .col(ColumnDef::new(Engagements::Url).string().null())
                    .col(ColumnDef::new(Engagements::ParentId).string().null())
                    .col(ColumnDef::new(Engagements::RootId).string().not_null())
                    .col(ColumnDef::new(Engagements::Place).string().null())
                    .col(
                        ColumnDef::new(Engagements::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Engagements::ReceivedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Engagements::BridgeState).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_engagements_item")
                    .table(Engagements::Table)
                    .col(Engagements::Channel)
                    .col(Engagements::ItemId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_engagements_conversation")
                    .table(Engagements::Table)
                    .col(Engagements::ConversationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_engagements_bridge")
                    .table(Engagements::Table)
                    .col(Engagements::BridgeState)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConversationNotes::Table)
                    .col(id_col(ConversationNotes::Id))
                    .col(
                        ColumnDef::new(ConversationNotes::ConversationId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversationNotes::Author)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ConversationNotes::Text).text().not_null())
                    .col(
                        ColumnDef::new(ConversationNotes::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboxReplies::Table)
                    .col(id_col(InboxReplies::Id))
                    .col(
                        ColumnDef::new(InboxReplies::ConversationId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboxReplies::EngagementId)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(InboxReplies::PostId).integer().not_null())
                    .col(ColumnDef::new(InboxReplies::TargetId).integer().not_null())
                    .col(ColumnDef::new(InboxReplies::Author).string().not_null())
                    .col(ColumnDef::new(InboxReplies::Via).string().not_null())
                    .col(ColumnDef::new(InboxReplies::BridgeRef).string().null())
                    .col(
                        ColumnDef::new(InboxReplies::ConfirmedAtMs)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InboxReplies::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BridgeMessages::Table)
                    .col(ColumnDef::new(BridgeMessages::Channel).string().not_null())
                    .col(
                        ColumnDef::new(BridgeMessages::MessageId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BridgeMessages::ConversationId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BridgeMessages::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BridgeMessages::Channel)
                            .col(BridgeMessages::MessageId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BridgeMessages::Table.into_iden(),
            InboxReplies::Table.into_iden(),
            ConversationNotes::Table.into_iden(),
            Engagements::Table.into_iden(),
            Conversations::Table.into_iden(),
            Listeners::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [Targets::ReplyRoot, Targets::ReplyParent] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Targets::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
