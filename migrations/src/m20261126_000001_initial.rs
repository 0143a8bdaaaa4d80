use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
    Name,
    Kind,
    Settings,
    CreatedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Id,
    SourceKey,
    Body,
    Template,
    Vars,
    Campaign,
    Author,
    ScheduledAtMs,
    ContentHash,
    CreatedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Targets {
    Table,
    Id,
    PostId,
    Channel,
    Status,
    ScheduledAtMs,
    NotBeforeMs,
    OverrideBody,
    RenderedText,
    Parts,
    Media,
    ThreadProgress,
    Campaign,
    IdempotencyKey,
    Attempts,
    LeaseUntilMs,
    ClaimedBy,
    PlatformPostId,
    PlatformUrl,
    LastError,
    PublishedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum PublishAttempts {
    Table,
    Id,
    TargetId,
    AttemptNo,
    Worker,
    StartedAtMs,
    FinishedAtMs,
    Outcome,
    HttpStatus,
    RetryAfterMs,
    PlatformPostId,
    Message,
}

#[derive(DeriveIden)]
enum AdapterState {
    Table,
    Id,
    Scope,
    Name,
    Nonce,
    Ciphertext,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Channels::Table)
                    .if_not_exists()
                    .col(pk_auto(Channels::Id))
                    .col(string_uniq(Channels::Name))
                    .col(string(Channels::Kind))
                    .col(text(Channels::Settings))
                    .col(big_integer(Channels::CreatedAtMs))
                    .col(big_integer(Channels::UpdatedAtMs))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .if_not_exists()
                    .col(pk_auto(Posts::Id))
                    .col(string_null(Posts::SourceKey).unique_key())
                    .col(text(Posts::Body))
                    .col(string_null(Posts::Template))
                    .col(text(Posts::Vars))
                    .col(string_null(Posts::Campaign))
                    .col(string_null(Posts::Author))
                    .col(big_integer_null(Posts::ScheduledAtMs))
                    .col(string(Posts::ContentHash))
                    .col(big_integer(Posts::CreatedAtMs))
                    .col(big_integer(Posts::UpdatedAtMs))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Targets::Table)
                    .if_not_exists()
                    .col(pk_auto(Targets::Id))
                    .col(integer(Targets::PostId))
                    .col(string(Targets::Channel))
                    .col(string(Targets::Status))
                    .col(big_integer_null(Targets::ScheduledAtMs))
                    .col(big_integer_null(Targets::NotBeforeMs))
                    .col(text_null(Targets::OverrideBody))
                    .col(text(Targets::RenderedText))
                    .col(text(Targets::Parts))
                    .col(text(Targets::Media))
                    .col(text(Targets::ThreadProgress))
                    .col(string_null(Targets::Campaign))
                    .col(string(Targets::IdempotencyKey))
                    .col(integer(Targets::Attempts).default(0))
                    .col(big_integer_null(Targets::LeaseUntilMs))
                    .col(string_null(Targets::ClaimedBy))
                    .col(string_null(Targets::PlatformPostId))
                    .col(text_null(Targets::PlatformUrl))
                    .col(text_null(Targets::LastError))
                    .col(big_integer_null(Targets::PublishedAtMs))
                    .col(big_integer(Targets::UpdatedAtMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Targets::Table, Targets::PostId)
                            .to(Posts::Table, Posts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_targets_post_channel")
                    .table(Targets::Table)
                    .col(Targets::PostId)
                    .col(Targets::Channel)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_targets_status_not_before")
                    .table(Targets::Table)
                    .col(Targets::Status)
                    .col(Targets::NotBeforeMs)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PublishAttempts::Table)
                    .if_not_exists()
                    .col(pk_auto(PublishAttempts::Id))
                    .col(integer(PublishAttempts::TargetId))
                    .col(integer(PublishAttempts::AttemptNo))
                    .col(string(PublishAttempts::Worker))
                    .col(big_integer(PublishAttempts::StartedAtMs))
                    .col(big_integer(PublishAttempts::FinishedAtMs))
                    .col(string(PublishAttempts::Outcome))
                    .col(integer_null(PublishAttempts::HttpStatus))
                    .col(big_integer_null(PublishAttempts::RetryAfterMs))
                    .col(string_null(PublishAttempts::PlatformPostId))
                    .col(text_null(PublishAttempts::Message))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PublishAttempts::Table, PublishAttempts::TargetId)
                            .to(Targets::Table, Targets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Small state adapters keep between calls (refreshed tokens,
        // delivery marks), AES-256-GCM encrypted.
        manager
            .create_table(
                Table::create()
                    .table(AdapterState::Table)
                    .if_not_exists()
                    .col(pk_auto(AdapterState::Id))
                    .col(string(AdapterState::Scope))
                    .col(string(AdapterState::Name))
                    .col(string(AdapterState::Nonce))
                    .col(text(AdapterState::Ciphertext))
                    .col(big_integer(AdapterState::UpdatedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_adapter_state_scope_name")
                    .table(AdapterState::Table)
                    .col(AdapterState::Scope)
                    .col(AdapterState::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_publish_attempts_target")
                    .table(PublishAttempts::Table)
                    .col(PublishAttempts::TargetId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AdapterState::Table.into_iden(),
            PublishAttempts::Table.into_iden(),
            Targets::Table.into_iden(),
            Posts::Table.into_iden(),
            Channels::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
