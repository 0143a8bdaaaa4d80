//! `click_rollups` and `credit_rollups`: a campaign report's sums, kept as
//! clicks and credits are written, so a report reads hundreds of rows
//! instead of every click and credit of the campaign. "None" is stored as
//! `''` / `0` so the unique keys (and `ON CONFLICT` increments) hold.
//! Existing clicks and credits are summed into them here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClickRollups {
    Table,
    Id,
    Campaign,
    Creator,
    Channel,
    PostId,
    TargetId,
    IsBot,
    N,
}

#[derive(DeriveIden)]
enum CreditRollups {
    Table,
    Id,
    ModelKey,
    Campaign,
    Currency,
    Grp,
    Key,
    RevenueMinor,
    Orders,
}

const BACKFILL_CLICKS: &str = "INSERT INTO click_rollups (campaign, creator, channel, post_id, target_id, is_bot, n) \
     SELECT campaign, COALESCE(creator, ''), COALESCE(channel, ''), COALESCE(post_id, 0), COALESCE(target_id, 0), is_bot, COUNT(*) \
     FROM clicks WHERE campaign IS NOT NULL \
     GROUP BY campaign, COALESCE(creator, ''), COALESCE(channel, ''), COALESCE(post_id, 0), COALESCE(target_id, 0), is_bot";

/// One `INSERT ... SELECT` per group; the keys are spelled as
/// `clarion_store`'s rollup code spells them.
const CREDIT_GROUPS: [(&str, &str); 6] = [
    ("total", "'total'"),
    ("creator", "COALESCE(creator, '')"),
    ("channel", "COALESCE(channel, '')"),
    ("post", "COALESCE(CAST(post_id AS TEXT), '')"),
    ("target", "COALESCE(CAST(target_id AS TEXT), '')"),
    ("day", "CAST(order_at_ms / 86400000 AS TEXT)"),
];

fn id(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn text(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}

fn int(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().to_owned()
}

fn count(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClickRollups::Table)
                    .col(id(ClickRollups::Id))
                    .col(text(ClickRollups::Campaign))
                    .col(text(ClickRollups::Creator))
                    .col(text(ClickRollups::Channel))
                    .col(int(ClickRollups::PostId))
                    .col(int(ClickRollups::TargetId))
                    .col(ColumnDef::new(ClickRollups::IsBot).boolean().not_null())
                    .col(count(ClickRollups::N))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_click_rollups")
                    .table(ClickRollups::Table)
                    .col(ClickRollups::Campaign)
                    .col(ClickRollups::Creator)
                    .col(ClickRollups::Channel)
                    .col(ClickRollups::PostId)
                    .col(ClickRollups::TargetId)
                    .col(ClickRollups::IsBot)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CreditRollups::Table)
                    .col(id(CreditRollups::Id))
                    .col(text(CreditRollups::ModelKey))
                    .col(text(CreditRollups::Campaign))
                    .col(text(CreditRollups::Currency))
                    .col(text(CreditRollups::Grp))
                    .col(text(CreditRollups::Key))
                    .col(count(CreditRollups::RevenueMinor))
                    .col(count(CreditRollups::Orders))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_credit_rollups")
                    .table(CreditRollups::Table)
                    .col(CreditRollups::ModelKey)
                    .col(CreditRollups::Campaign)
                    .col(CreditRollups::Currency)
                    .col(CreditRollups::Grp)
                    .col(CreditRollups::Key)
                    .unique()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(BACKFILL_CLICKS).await?;
        for (grp, key) in CREDIT_GROUPS {
            // PostgreSQL refuses a constant in GROUP BY.
            let by_key = if grp == "total" {
                String::new()
            } else {
                format!(", {key}")
            };
            db.execute_unprepared(&format!(
                "INSERT INTO credit_rollups (model_key, campaign, currency, grp, key, revenue_minor, orders) \
                 SELECT model_key, campaign, currency, '{grp}', {key}, SUM(amount_minor), COUNT(DISTINCT order_row_id) \
                 FROM order_credits WHERE campaign IS NOT NULL \
                 GROUP BY model_key, campaign, currency{by_key}"
            ))
            .await?;
        }
        // Orders credited under each model, attributed or not.
        db.execute_unprepared(
            "INSERT INTO credit_rollups (model_key, campaign, currency, grp, key, revenue_minor, orders) \
             SELECT model_key, '', '', 'credited', '', 0, COUNT(DISTINCT order_row_id) \
             FROM order_credits GROUP BY model_key",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClickRollups::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CreditRollups::Table).to_owned())
            .await
    }
}
