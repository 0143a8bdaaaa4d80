//! Team use of one Clarion: `users` (role, argon2 password hash), browser
//! `sessions` (only a hash of the cookie is stored, with the session's
//! CSRF token), per-user `api_tokens` (hashed), one-time `login_links`
//! sent by email, the `audit_log`, and on `posts` the approval state of a
//! contributor's post (`approval`, the time asked for, the reviewer's
//! comment).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    Role,
    PasswordHash,
    CreatedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    Csrf,
    CreatedAtMs,
    ExpiresAtMs,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    CreatedAtMs,
    LastUsedAtMs,
}

#[derive(DeriveIden)]
enum LoginLinks {
    Table,
    Id,
    TokenHash,
    UserId,
    ExpiresAtMs,
    UsedAtMs,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    AtMs,
    Actor,
    Action,
    Subject,
    Detail,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Approval,
    RequestedAtMs,
    ReviewComment,
}

fn id<T: Iden + 'static>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn ms<T: Iden + 'static>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn text<T: Iden + 'static>(col: T) -> ColumnDef {
    ColumnDef::new(col).string().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(text(Users::Email).unique_key().to_owned())
                    .col(text(Users::Name))
                    .col(text(Users::Role))
                    .col(ColumnDef::new(Users::PasswordHash).string().null())
                    .col(ms(Users::CreatedAtMs))
                    .col(ms(Users::UpdatedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(id(Sessions::Id))
                    .col(text(Sessions::TokenHash).unique_key().to_owned())
                    .col(ColumnDef::new(Sessions::UserId).integer().not_null())
                    .col(text(Sessions::Csrf))
                    .col(ms(Sessions::CreatedAtMs))
                    .col(ms(Sessions::ExpiresAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(id(ApiTokens::Id))
                    .col(ColumnDef::new(ApiTokens::UserId).integer().not_null())
                    .col(text(ApiTokens::Name))
                    .col(text(ApiTokens::TokenHash).unique_key().to_owned())
                    .col(ms(ApiTokens::CreatedAtMs))
                    .col(ColumnDef::new(ApiTokens::LastUsedAtMs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginLinks::Table)
                    .col(id(LoginLinks::Id))
                    .col(text(LoginLinks::TokenHash).unique_key().to_owned())
                    .col(ColumnDef::new(LoginLinks::UserId).integer().not_null())
                    .col(ms(LoginLinks::ExpiresAtMs))
                    .col(ColumnDef::new(LoginLinks::UsedAtMs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(id(AuditLog::Id))
                    .col(ms(AuditLog::AtMs))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::Subject))
                    .col(ColumnDef::new(AuditLog::Detail).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_log_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::AtMs)
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for col in [
            ColumnDef::new(Posts::Approval).string().null().to_owned(),
            ColumnDef::new(Posts::RequestedAtMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Posts::ReviewComment)
                .text()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Posts::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Posts::Approval, Posts::RequestedAtMs, Posts::ReviewComment] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Posts::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            AuditLog::Table.into_iden(),
            LoginLinks::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
