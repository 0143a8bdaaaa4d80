//! Attribution: tracked links, their clicks, orders from shops, refunds, the
//! webhook deliveries already taken, and the credit each order gives each
//! touch under a model.
//!
//! - `links`: a short code (unique) and where it goes, with what it tracks
//!   (campaign, creator, channel, the post target it was rewritten for).
//! - `clicks`: one per redirect: time, link, what the link tracks, referrer,
//!   a bot/preview flag, a visitor key (a daily-salted hash, never the IP)
//!   and the click id handed to the shop (unique).
//! - `orders`: unique on (`source`, `order_id`): the same order delivered
//!   twice counts once. Amounts in minor units with a currency.
//! - `refunds`: unique on (`source`, `refund_id`).
//! - `webhook_deliveries`: (`source`, `delivery_id`) of every delivery taken,
//!   so a replayed delivery is a no-op.
//! - `order_credits`: per order and `model_key` (model + window), the credit
//!   of each touch (a click, or a creator's code), net of refunds.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Links {
    Table,
    Id,
    Code,
    Destination,
    Campaign,
    Creator,
    Channel,
    Source,
    Medium,
    PostId,
    TargetId,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Clicks {
    Table,
    Id,
    ClickId,
    LinkId,
    AtMs,
    Campaign,
    Creator,
    Channel,
    PostId,
    TargetId,
    Referrer,
    IsBot,
    VisitorKey,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    Source,
    OrderId,
    AmountMinor,
    Currency,
    AtMs,
    CustomerKey,
    ClickId,
    DiscountCodes,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmContent,
    RefundedMinor,
    ReceivedAtMs,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    Source,
    RefundId,
    OrderId,
    AmountMinor,
    AtMs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Source,
    DeliveryId,
    ReceivedAtMs,
}

#[derive(DeriveIden)]
enum OrderCredits {
    Table,
    Id,
    OrderRowId,
    ModelKey,
    ClickRowId,
    Campaign,
    Creator,
    Channel,
    PostId,
    TargetId,
    AmountMinor,
    Currency,
    SharePpm,
    DecidedBy,
    OrderAtMs,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}

fn text_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}

fn int_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).integer().null().to_owned()
}

fn big<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create().name(name).table(table).to_owned();
    for col in cols {
        index.col(col);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Links::Table)
                    .col(id_col(Links::Id))
                    .col(text(Links::Code))
                    .col(text(Links::Destination))
                    .col(text_null(Links::Campaign))
                    .col(text_null(Links::Creator))
                    .col(text_null(Links::Channel))
                    .col(text_null(Links::Source))
                    .col(text(Links::Medium))
                    .col(int_null(Links::PostId))
                    .col(int_null(Links::TargetId))
                    .col(big(Links::CreatedAtMs))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ux_links_code",
            Links::Table,
            vec![Links::Code.into_iden()],
            true,
        )
        .await?;
        index(
            manager,
            "ix_links_target",
            Links::Table,
            vec![Links::TargetId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Clicks::Table)
                    .col(id_col(Clicks::Id))
                    .col(text(Clicks::ClickId))
                    .col(ColumnDef::new(Clicks::LinkId).integer().not_null())
                    .col(big(Clicks::AtMs))
                    .col(text_null(Clicks::Campaign))
                    .col(text_null(Clicks::Creator))
                    .col(text_null(Clicks::Channel))
                    .col(int_null(Clicks::PostId))
                    .col(int_null(Clicks::TargetId))
                    .col(text_null(Clicks::Referrer))
                    .col(ColumnDef::new(Clicks::IsBot).boolean().not_null())
                    .col(text(Clicks::VisitorKey))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ux_clicks_click_id",
            Clicks::Table,
            vec![Clicks::ClickId.into_iden()],
            true,
        )
        .await?;
        index(
            manager,
            "ix_clicks_link_at",
            Clicks::Table,
            vec![Clicks::LinkId.into_iden(), Clicks::AtMs.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "ix_clicks_campaign",
            Clicks::Table,
            vec![
                Clicks::Campaign.into_iden(),
                Clicks::Creator.into_iden(),
                Clicks::Channel.into_iden(),
                Clicks::PostId.into_iden(),
                Clicks::TargetId.into_iden(),
                Clicks::IsBot.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            manager,
            "ix_clicks_visitor",
            Clicks::Table,
            vec![Clicks::VisitorKey.into_iden(), Clicks::AtMs.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(id_col(Orders::Id))
                    .col(text(Orders::Source))
                    .col(text(Orders::OrderId))
                    .col(big(Orders::AmountMinor))
                    .col(text(Orders::Currency))
                    .col(big(Orders::AtMs))
                    .col(text_null(Orders::CustomerKey))
                    .col(text_null(Orders::ClickId))
                    .col(text(Orders::DiscountCodes))
                    .col(text_null(Orders::UtmSource))
                    .col(text_null(Orders::UtmMedium))
                    .col(text_null(Orders::UtmCampaign))
                    .col(text_null(Orders::UtmContent))
                    .col(big(Orders::RefundedMinor).default(0))
                    .col(big(Orders::ReceivedAtMs))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ux_orders_source_order",
            Orders::Table,
            vec![Orders::Source.into_iden(), Orders::OrderId.into_iden()],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .col(id_col(Refunds::Id))
                    .col(text(Refunds::Source))
                    .col(text(Refunds::RefundId))
                    .col(text(Refunds::OrderId))
                    .col(big(Refunds::AmountMinor))
                    .col(big(Refunds::AtMs))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ux_refunds_source_refund",
            Refunds::Table,
            vec![Refunds::Source.into_iden(), Refunds::RefundId.into_iden()],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(text(WebhookDeliveries::Source))
                    .col(text(WebhookDeliveries::DeliveryId))
                    .col(big(WebhookDeliveries::ReceivedAtMs))
                    .primary_key(
                        Index::create()
                            .col(WebhookDeliveries::Source)
                            .col(WebhookDeliveries::DeliveryId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderCredits::Table)
                    .col(id_col(OrderCredits::Id))
                    .col(
                        ColumnDef::new(OrderCredits::OrderRowId)
                            .integer()
                            .not_null(),
                    )
                    .col(text(OrderCredits::ModelKey))
                    .col(int_null(OrderCredits::ClickRowId))
                    .col(text_null(OrderCredits::Campaign))
                    .col(text_null(OrderCredits::Creator))
                    .col(text_null(OrderCredits::Channel))
                    .col(int_null(OrderCredits::PostId))
                    .col(int_null(OrderCredits::TargetId))
                    .col(big(OrderCredits::AmountMinor))
                    .col(text(OrderCredits::Currency))
                    .col(big(OrderCredits::SharePpm))
                    .col(text(OrderCredits::DecidedBy))
                    .col(big(OrderCredits::OrderAtMs))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_order_credits_model_campaign",
            OrderCredits::Table,
            vec![
                OrderCredits::ModelKey.into_iden(),
                OrderCredits::Campaign.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            manager,
            "ix_order_credits_order",
            OrderCredits::Table,
            vec![
                OrderCredits::OrderRowId.into_iden(),
                OrderCredits::ModelKey.into_iden(),
            ],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderCredits::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            Refunds::Table.into_iden(),
            Orders::Table.into_iden(),
            Clicks::Table.into_iden(),
            Links::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
