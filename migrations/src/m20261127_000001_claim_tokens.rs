//! Claim tokens and idempotency windows.
//!
//! - `claim_token`: unique per claim, so the sweeper can tell a live task of
//!   this very process from a dead one (`claimed_by` names only the process),
//!   and a result is written only by the claim that made it.
//! - `first_sent_at_ms`: when the target's idempotency key was first used;
//!   a resend outside the platform's dedupe window is not blind.
//! - `last_outcome`: the class of the last attempt, so a retry that would be
//!   late after an uncertain attempt ends `outcome_unknown`, not `failed`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Targets {
    Table,
    ClaimToken,
    FirstSentAtMs,
    LastOutcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Targets::ClaimToken)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Targets::FirstSentAtMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Targets::LastOutcome)
                .string()
                .null()
                .to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Targets::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_targets_claim_token")
                    .table(Targets::Table)
                    .col(Targets::ClaimToken)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_targets_claim_token")
                    .table(Targets::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Targets::ClaimToken,
            Targets::FirstSentAtMs,
            Targets::LastOutcome,
        ] {
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
