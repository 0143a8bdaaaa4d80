//! Attribution rows: tracked links, clicks (written in batches by the click
//! recorder), orders and refunds from shops (deduped on the shop's ids), and
//! the stored credits of each order under a model.
//!
//! A webhook delivery id and the order it carries are stored in one
//! transaction: a replay is a no-op, and a failed write leaves nothing, so
//! the shop's retry stores it.

use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entity::{click_rollup, credit_rollup};
use crate::posts::rows_per_insert;
use crate::{
    Store, StoreError, click, link, now_ms, order_credit, refund, shop_order, webhook_delivery,
};

/// A link to register.
#[derive(Debug, Clone, Default)]
pub struct NewLink {
    pub code: String,
    pub destination: String,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub source: Option<String>,
    pub medium: String,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
}

/// A click to record (the link's tracking copied in, so reports need no join).
#[derive(Debug, Clone)]
pub struct NewClick {
    pub click_id: String,
    pub link_id: i32,
    pub at_ms: i64,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub referrer: Option<String>,
    pub is_bot: bool,
    pub visitor_key: String,
}

/// An order to store.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub source: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub at_ms: i64,
    pub customer_key: Option<String>,
    pub click_id: Option<String>,
    pub discount_codes: Vec<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    /// Normalised `platform:handle` (see `clarion_attribution::social_handle`).
    pub social_handles: Vec<String>,
}

/// A refund to store.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub source: String,
    pub refund_id: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub at_ms: i64,
}

/// What storing an order (or a refund) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderIngest {
    /// New: the stored order (for a refund: the order it reduced, if known).
    Stored(Option<Box<shop_order::Model>>),
    /// This webhook delivery was taken before.
    ReplayedDelivery,
    /// The order (or refund) id is already stored: it counts once.
    Duplicate,
}

/// A credit to store.
#[derive(Debug, Clone)]
pub struct NewCredit {
    pub click_row_id: Option<i32>,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub amount_minor: i64,
    pub share_ppm: i64,
    pub decided_by: String,
}

/// Clicks of one combination, counted by the database.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct ClickCount {
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub is_bot: bool,
    pub n: i64,
}

/// How [`Store::campaign_credit_sums`] groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditGroup {
    Total,
    Creator,
    Channel,
    Post,
    Target,
    /// Days since the epoch (UTC) of the order.
    Day,
}

/// Revenue and distinct orders of one group.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct CreditSum {
    pub key: Option<String>,
    pub revenue_minor: Option<i64>,
    pub orders: i64,
}

/// A customer's engagement with a campaign post, as a touch.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct EngagementTouch {
    pub id: i32,
    pub at_ms: i64,
    pub channel: String,
    pub author_handle: String,
    /// The channel's kind (`mastodon`, `bluesky`, ...).
    pub platform: String,
    pub campaign: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
}

impl EngagementTouch {
    /// `platform:handle` as an order's social handles spell it.
    pub fn handle_key(&self) -> String {
        format!(
            "{}:{}",
            self.platform,
            self.author_handle.trim_start_matches('@').to_lowercase()
        )
    }
}

/// What [`AttributionClick`] reads.
const ATTRIBUTION_COLUMNS: [click::Column; 9] = [
    click::Column::Id,
    click::Column::ClickId,
    click::Column::AtMs,
    click::Column::VisitorKey,
    click::Column::Campaign,
    click::Column::Creator,
    click::Column::Channel,
    click::Column::PostId,
    click::Column::TargetId,
];

/// The columns of a counted click that attribution reads.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct AttributionClick {
    pub id: i32,
    pub click_id: String,
    pub at_ms: i64,
    pub visitor_key: String,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    pub channel: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
}

impl Store {
    /// Registers a link. `Ok(None)` when the code is taken.
    pub async fn create_link(&self, new: NewLink) -> Result<Option<link::Model>, StoreError> {
        let _turn = self.write_turn().await;
        let row = link::ActiveModel {
            id: NotSet,
            code: Set(new.code.clone()),
            destination: Set(new.destination),
            campaign: Set(new.campaign),
            creator: Set(new.creator),
            channel: Set(new.channel),
            source: Set(new.source),
            medium: Set(new.medium),
            post_id: Set(new.post_id),
            target_id: Set(new.target_id),
            created_at_ms: Set(now_ms()),
        };
        let inserted = link::Entity::insert(row)
            .on_conflict(
                OnConflict::column(link::Column::Code)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        self.link_by_code(&new.code).await
    }

    pub async fn link_by_code(&self, code: &str) -> Result<Option<link::Model>, StoreError> {
        Ok(link::Entity::find()
            .filter(link::Column::Code.eq(code))
            .one(&self.db)
            .await?)
    }

    /// Links, newest first, optionally of one campaign.
    pub async fn list_links(&self, campaign: Option<&str>) -> Result<Vec<link::Model>, StoreError> {
        let mut query = link::Entity::find().order_by_desc(link::Column::Id);
        if let Some(campaign) = campaign {
            query = query.filter(link::Column::Campaign.eq(campaign));
        }
        Ok(query.all(&self.db).await?)
    }

    /// Per link id: (counted clicks, bot fetches).
    pub async fn click_counts(
        &self,
    ) -> Result<std::collections::HashMap<i32, (i64, i64)>, StoreError> {
        let rows: Vec<(i32, bool, i64)> = click::Entity::find()
            .select_only()
            .column(click::Column::LinkId)
            .column(click::Column::IsBot)
            .column_as(Expr::col(click::Column::Id).count(), "n")
            .group_by(click::Column::LinkId)
            .group_by(click::Column::IsBot)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut counts = std::collections::HashMap::new();
        for (link, bot, n) in rows {
            let (clicks, bots) = counts.entry(link).or_insert((0, 0));
            if bot {
                *bots += n;
            } else {
                *clicks += n;
            }
        }
        Ok(counts)
    }

    /// Records a batch of clicks in one transaction.
    pub async fn record_clicks(&self, clicks: &[NewClick]) -> Result<(), StoreError> {
        if clicks.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        for chunk in clicks.chunks(rows_per_insert::<click::Entity>()) {
            click::Entity::insert_many(chunk.iter().map(|c| click::ActiveModel {
                id: NotSet,
                click_id: Set(c.click_id.clone()),
                link_id: Set(c.link_id),
                at_ms: Set(c.at_ms),
                campaign: Set(c.campaign.clone()),
                creator: Set(c.creator.clone()),
                channel: Set(c.channel.clone()),
                post_id: Set(c.post_id),
                target_id: Set(c.target_id),
                referrer: Set(c.referrer.clone()),
                is_bot: Set(c.is_bot),
                visitor_key: Set(c.visitor_key.clone()),
            }))
            .on_conflict(
                OnConflict::column(click::Column::ClickId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        crate::rollups::add_clicks(&txn, clicks).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Stores an order, and the webhook delivery that carried it, at once.
    pub async fn ingest_order(
        &self,
        delivery: Option<(&str, &str)>,
        order: NewOrder,
    ) -> Result<OrderIngest, StoreError> {
        let row = active_order(&order)?;
        self.once_per_delivery(delivery, async |txn| {
            let inserted = shop_order::Entity::insert(row)
                .on_conflict(order_conflict())
                .exec_without_returning(txn)
                .await?;
            if inserted == 0 {
                return Ok(None);
            }
            Ok(Some(find_order(txn, &order.source, &order.order_id).await?))
        })
        .await
    }

    /// Stores many orders at once without crediting them (a bulk load:
    /// `Attributor::recompute` credits them after). Known ids are skipped.
    pub async fn load_orders(&self, orders: &[NewOrder]) -> Result<(), StoreError> {
        let rows = orders
            .iter()
            .map(active_order)
            .collect::<Result<Vec<_>, _>>()?;
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let mut rows = rows.into_iter().peekable();
        let per_insert = rows_per_insert::<shop_order::Entity>();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(per_insert).collect();
            shop_order::Entity::insert_many(chunk)
                .on_conflict(order_conflict())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Stores a refund and reduces its order's net amount, at once.
    pub async fn ingest_refund(
        &self,
        delivery: Option<(&str, &str)>,
        new: NewRefund,
    ) -> Result<OrderIngest, StoreError> {
        self.once_per_delivery(delivery, async |txn| {
            let inserted = refund::Entity::insert(refund::ActiveModel {
                id: NotSet,
                source: Set(new.source.clone()),
                refund_id: Set(new.refund_id.clone()),
                order_id: Set(new.order_id.clone()),
                amount_minor: Set(new.amount_minor),
                at_ms: Set(new.at_ms),
            })
            .on_conflict(
                OnConflict::columns([refund::Column::Source, refund::Column::RefundId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
            if inserted == 0 {
                return Ok(None);
            }
            shop_order::Entity::update_many()
                .col_expr(
                    shop_order::Column::RefundedMinor,
                    Expr::col(shop_order::Column::RefundedMinor).add(new.amount_minor),
                )
                .filter(shop_order::Column::Source.eq(&new.source))
                .filter(shop_order::Column::OrderId.eq(&new.order_id))
                .exec(txn)
                .await?;
            Ok(Some(find_order(txn, &new.source, &new.order_id).await?))
        })
        .await
    }

    /// In one transaction: takes the webhook delivery (taken before: a
    /// replay, nothing else is done), then runs `insert`, which answers
    /// `None` when its row (order or refund id) was already stored. The
    /// delivery is remembered either way; a failure stores neither.
    async fn once_per_delivery(
        &self,
        delivery: Option<(&str, &str)>,
        insert: impl AsyncFnOnce(
            &sea_orm::DatabaseTransaction,
        ) -> Result<Option<Option<shop_order::Model>>, StoreError>,
    ) -> Result<OrderIngest, StoreError> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        if let Some((source, id)) = delivery
            && !take_delivery(&txn, source, id).await?
        {
            return Ok(OrderIngest::ReplayedDelivery);
        }
        let outcome = match insert(&txn).await? {
            None => OrderIngest::Duplicate,
            Some(order) => OrderIngest::Stored(order.map(Box::new)),
        };
        txn.commit().await?;
        Ok(outcome)
    }

    pub async fn orders(&self) -> Result<Vec<shop_order::Model>, StoreError> {
        Ok(shop_order::Entity::find()
            .order_by_asc(shop_order::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn order_count(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(shop_order::Entity::find().count(&self.db).await?)
    }

    /// The counted (not bot) clicks a full recompute can use, oldest
    /// first: those of visitors who made a click some order names. (A
    /// click touches an order only through the click the order names, or
    /// through that click's visitor; the others are never read.)
    ///
    /// SQLite plans this as one list of the named visitors, then a search
    /// of `ix_clicks_visitor` per visitor. The rows are sorted here: an
    /// `ORDER BY id` made SQLite sort them in a temporary b-tree first.
    pub async fn attribution_clicks(&self) -> Result<Vec<AttributionClick>, StoreError> {
        use sea_orm::sea_query::Query;
        let named_visitors = Query::select()
            .distinct()
            .column((click::Entity, click::Column::VisitorKey))
            .from(shop_order::Entity)
            .inner_join(
                click::Entity,
                Expr::col((click::Entity, click::Column::ClickId))
                    .equals((shop_order::Entity, shop_order::Column::ClickId)),
            )
            .to_owned();
        let mut clicks = click::Entity::find()
            .select_only()
            .columns(ATTRIBUTION_COLUMNS)
            .filter(click::Column::IsBot.eq(false))
            .filter(click::Column::VisitorKey.in_subquery(named_visitors))
            .into_model::<AttributionClick>()
            .all(&self.db)
            .await?;
        clicks.sort_unstable_by_key(|c| c.id);
        Ok(clicks)
    }

    /// The counted clicks one order can be credited to: the one it names,
    /// the same visitor's, and those named by the customer's earlier orders,
    /// inside `[from_ms, to_ms]`.
    pub async fn touches_for(
        &self,
        order: &shop_order::Model,
        from_ms: i64,
    ) -> Result<Vec<AttributionClick>, StoreError> {
        let mut click_ids: Vec<String> = order.click_id.iter().cloned().collect();
        if let Some(customer) = &order.customer_key {
            let earlier: Vec<Option<String>> = shop_order::Entity::find()
                .select_only()
                .column(shop_order::Column::ClickId)
                .filter(shop_order::Column::Source.eq(&order.source))
                .filter(shop_order::Column::CustomerKey.eq(customer))
                .filter(shop_order::Column::ClickId.is_not_null())
                .into_tuple()
                .all(&self.db)
                .await?;
            click_ids.extend(earlier.into_iter().flatten());
        }
        if click_ids.is_empty() {
            return Ok(Vec::new());
        }
        let named: Vec<AttributionClick> = click::Entity::find()
            .select_only()
            .columns(ATTRIBUTION_COLUMNS)
            .filter(click::Column::ClickId.is_in(click_ids))
            .filter(click::Column::IsBot.eq(false))
            .into_model()
            .all(&self.db)
            .await?;
        let visitors: Vec<String> = named.iter().map(|c| c.visitor_key.clone()).collect();
        let mut touches: Vec<AttributionClick> = click::Entity::find()
            .select_only()
            .columns(ATTRIBUTION_COLUMNS)
            .filter(click::Column::VisitorKey.is_in(visitors))
            .filter(click::Column::IsBot.eq(false))
            .filter(click::Column::AtMs.between(from_ms, order.at_ms))
            .into_model()
            .all(&self.db)
            .await?;
        for click in named {
            if !touches.iter().any(|t| t.id == click.id) {
                touches.push(click);
            }
        }
        Ok(touches)
    }

    /// Engagements with campaign posts (their conversation answers a
    /// campaign target) written between `from_ms` and `to_ms`, by any of
    /// `handles` (`platform:handle`, as `clarion_attribution::social_handle`
    /// spells them); all authors when `handles` is None (a full recompute).
    pub async fn engagement_touches(
        &self,
        handles: Option<&[String]>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EngagementTouch>, StoreError> {
        use crate::entity::{channel, conversation, engagement};
        use sea_orm::JoinType;
        if handles.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let mut query = engagement::Entity::find()
            .select_only()
            .column_as(engagement::Column::Id, "id")
            .column_as(engagement::Column::CreatedAtMs, "at_ms")
            .column_as(engagement::Column::Channel, "channel")
            .column_as(engagement::Column::AuthorHandle, "author_handle")
            .column_as(channel::Column::Kind, "platform")
            .column_as(conversation::Column::Campaign, "campaign")
            .column_as(conversation::Column::PostId, "post_id")
            .column_as(conversation::Column::TargetId, "target_id")
            .join(
                JoinType::InnerJoin,
                engagement::Entity::belongs_to(conversation::Entity)
                    .from(engagement::Column::ConversationId)
                    .to(conversation::Column::Id)
                    .into(),
            )
            .join(
                JoinType::InnerJoin,
                engagement::Entity::belongs_to(channel::Entity)
                    .from(engagement::Column::Channel)
                    .to(channel::Column::Name)
                    .into(),
            )
            .filter(conversation::Column::Campaign.is_not_null())
            .filter(engagement::Column::CreatedAtMs.between(from_ms, to_ms));
        if let Some(handles) = handles {
            // Authors as captured, with and without `@`, any case; the
            // platform is checked below.
            let names: Vec<String> = handles
                .iter()
                .filter_map(|h| h.split_once(':').map(|(_, name)| name.to_owned()))
                .flat_map(|name| [format!("@{name}"), name])
                .collect();
            query = query.filter(
                Expr::expr(Func::lower(Expr::col((
                    engagement::Entity,
                    engagement::Column::AuthorHandle,
                ))))
                .is_in(names),
            );
        }
        let rows: Vec<EngagementTouch> = query.into_model().all(&self.db).await?;
        Ok(match handles {
            Some(handles) => rows
                .into_iter()
                .filter(|t| handles.iter().any(|h| *h == t.handle_key()))
                .collect(),
            None => rows,
        })
    }

    /// Replaces the credits of `orders` under `model_key` in one transaction.
    pub async fn replace_credits(
        &self,
        model_key: &str,
        orders: &[(shop_order::Model, Vec<NewCredit>)],
    ) -> Result<(), StoreError> {
        self.write_credits(model_key, orders, false).await
    }

    /// Replaces every credit under `model_key` with these (a full
    /// recompute: every order is in `orders`), in one transaction.
    pub async fn replace_all_credits(
        &self,
        model_key: &str,
        orders: &[(shop_order::Model, Vec<NewCredit>)],
    ) -> Result<(), StoreError> {
        self.write_credits(model_key, orders, true).await
    }

    async fn write_credits(
        &self,
        model_key: &str,
        orders: &[(shop_order::Model, Vec<NewCredit>)],
        all: bool,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let old = if all {
            // Nothing old is read: the model's rows go, and are built again.
            order_credit::Entity::delete_many()
                .filter(order_credit::Column::ModelKey.eq(model_key))
                .exec(&txn)
                .await?;
            credit_rollup::Entity::delete_many()
                .filter(credit_rollup::Column::ModelKey.eq(model_key))
                .exec(&txn)
                .await?;
            Vec::new()
        } else {
            let ids: Vec<i32> = orders.iter().map(|(o, _)| o.id).collect();
            crate::rollups::current_credits(&txn, model_key, &ids).await?
        };
        let old: Vec<crate::rollups::Credited<'_>> = old.iter().map(Into::into).collect();
        let mut new = Vec::new();
        for (order, credits) in orders {
            for c in credits {
                new.push(crate::rollups::Credited {
                    order_row_id: order.id,
                    campaign: c.campaign.as_deref(),
                    creator: c.creator.as_deref(),
                    channel: c.channel.as_deref(),
                    post_id: c.post_id,
                    target_id: c.target_id,
                    amount_minor: c.amount_minor,
                    currency: &order.currency,
                    order_at_ms: order.at_ms,
                });
            }
        }
        crate::rollups::replace_credits(&txn, model_key, &old, &new).await?;
        for chunk in orders
            .chunks(crate::posts::MAX_KEYS_PER_QUERY)
            .filter(|_| !all)
        {
            order_credit::Entity::delete_many()
                .filter(order_credit::Column::ModelKey.eq(model_key))
                .filter(order_credit::Column::OrderRowId.is_in(chunk.iter().map(|(o, _)| o.id)))
                .exec(&txn)
                .await?;
        }
        let rows: Vec<order_credit::ActiveModel> = orders
            .iter()
            .flat_map(|(order, credits)| {
                credits.iter().map(move |c| order_credit::ActiveModel {
                    id: NotSet,
                    order_row_id: Set(order.id),
                    model_key: Set(model_key.to_owned()),
                    click_row_id: Set(c.click_row_id),
                    campaign: Set(c.campaign.clone()),
                    creator: Set(c.creator.clone()),
                    channel: Set(c.channel.clone()),
                    post_id: Set(c.post_id),
                    target_id: Set(c.target_id),
                    amount_minor: Set(c.amount_minor),
                    currency: Set(order.currency.clone()),
                    share_ppm: Set(c.share_ppm),
                    decided_by: Set(c.decided_by.clone()),
                    order_at_ms: Set(order.at_ms),
                })
            })
            .collect();
        let mut rows = rows.into_iter().peekable();
        let per_insert = rows_per_insert::<order_credit::Entity>();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(per_insert).collect();
            order_credit::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Whether every order has credits under `model_key`: the rollups
    /// count the orders credited under each model, so this is two small
    /// reads, not a scan of the credits.
    pub async fn credits_complete(&self, model_key: &str) -> Result<bool, StoreError> {
        let credited = credit_rollup::Entity::find()
            .filter(credit_rollup::Column::ModelKey.eq(model_key))
            .filter(credit_rollup::Column::Grp.eq(crate::rollups::CREDITED))
            .one(&self.db)
            .await?
            .map_or(0, |r| r.orders);
        Ok(u64::try_from(credited).unwrap_or(0) >= self.order_count().await?)
    }

    /// Credits under `model_key`, of one campaign or all.
    pub async fn credits(
        &self,
        model_key: &str,
        campaign: Option<&str>,
    ) -> Result<Vec<order_credit::Model>, StoreError> {
        let mut query = order_credit::Entity::find()
            .filter(order_credit::Column::ModelKey.eq(model_key))
            .order_by_asc(order_credit::Column::OrderAtMs);
        if let Some(campaign) = campaign {
            query = query.filter(order_credit::Column::Campaign.eq(campaign));
        }
        Ok(query.all(&self.db).await?)
    }

    /// The tracked links registered with these posts' targets.
    pub async fn post_links(&self, post_ids: &[i32]) -> Result<Vec<link::Model>, StoreError> {
        let mut all = Vec::new();
        for chunk in post_ids.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            all.extend(
                link::Entity::find()
                    .filter(link::Column::PostId.is_in(chunk.iter().copied()))
                    .filter(link::Column::TargetId.is_not_null())
                    .order_by_asc(link::Column::Id)
                    .all(&self.db)
                    .await?,
            );
        }
        Ok(all)
    }

    /// A campaign's clicks per distinct (creator, channel, post, target,
    /// bot) combination, from the rollup kept as clicks are written.
    pub async fn campaign_click_counts(
        &self,
        campaign: &str,
    ) -> Result<Vec<ClickCount>, StoreError> {
        let none_if_empty = |s: String| (!s.is_empty()).then_some(s);
        let none_if_zero = |id: i32| (id != 0).then_some(id);
        Ok(click_rollup::Entity::find()
            .filter(click_rollup::Column::Campaign.eq(campaign))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| ClickCount {
                creator: none_if_empty(r.creator),
                channel: none_if_empty(r.channel),
                post_id: none_if_zero(r.post_id),
                target_id: none_if_zero(r.target_id),
                is_bot: r.is_bot,
                n: r.n,
            })
            .collect())
    }

    /// A campaign's credits under `model_key` in `currency`, per value of
    /// `by`: revenue, and distinct orders (an order shared by several
    /// touches counts once), from the rollup kept as credits are written.
    pub async fn campaign_credit_sums(
        &self,
        model_key: &str,
        campaign: &str,
        currency: &str,
        by: CreditGroup,
    ) -> Result<Vec<CreditSum>, StoreError> {
        let grp = match by {
            CreditGroup::Total => "total",
            CreditGroup::Creator => "creator",
            CreditGroup::Channel => "channel",
            CreditGroup::Post => "post",
            CreditGroup::Target => "target",
            CreditGroup::Day => "day",
        };
        Ok(credit_rollup::Entity::find()
            .filter(credit_rollup::Column::ModelKey.eq(model_key))
            .filter(credit_rollup::Column::Campaign.eq(campaign))
            .filter(credit_rollup::Column::Currency.eq(currency))
            .filter(credit_rollup::Column::Grp.eq(grp))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| CreditSum {
                key: (!r.key.is_empty()).then_some(r.key),
                revenue_minor: Some(r.revenue_minor),
                orders: r.orders,
            })
            .collect())
    }

    /// Distinct orders of a campaign credited in another currency.
    pub async fn campaign_other_currency_orders(
        &self,
        model_key: &str,
        campaign: &str,
        currency: &str,
    ) -> Result<i64, StoreError> {
        // An order has one currency: per-currency totals add up.
        Ok(credit_rollup::Entity::find()
            .filter(credit_rollup::Column::ModelKey.eq(model_key))
            .filter(credit_rollup::Column::Campaign.eq(campaign))
            .filter(credit_rollup::Column::Currency.ne(currency))
            .filter(credit_rollup::Column::Grp.eq("total"))
            .all(&self.db)
            .await?
            .iter()
            .map(|r| r.orders)
            .sum())
    }
}

impl Store {
    /// Engagements written by any of `handles` (compared without case and
    /// without a leading `@`) between `from_ms` and `to_ms`: a campaign's
    /// creators' posts, as the listeners captured them.
    pub async fn engagements_by_handles(
        &self,
        handles: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<crate::engagement::Model>, StoreError> {
        use sea_orm::sea_query::Func;
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let variants: Vec<String> = handles
            .iter()
            .flat_map(|h| {
                let bare = h.trim_start_matches('@').to_lowercase();
                [format!("@{bare}"), bare]
            })
            .collect();
        Ok(crate::engagement::Entity::find()
            .filter(
                Expr::expr(Func::lower(Expr::col(
                    crate::engagement::Column::AuthorHandle,
                )))
                .is_in(variants),
            )
            .filter(crate::engagement::Column::CreatedAtMs.between(from_ms, to_ms))
            .order_by_asc(crate::engagement::Column::CreatedAtMs)
            .all(&self.db)
            .await?)
    }
}

/// An order id already stored for its source: skipped (it counts once).
fn order_conflict() -> OnConflict {
    OnConflict::columns([shop_order::Column::Source, shop_order::Column::OrderId])
        .do_nothing()
        .to_owned()
}

/// The row for a new order.
fn active_order(order: &NewOrder) -> Result<shop_order::ActiveModel, StoreError> {
    let codes = serde_json::to_string(&order.discount_codes)
        .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
    Ok(shop_order::ActiveModel {
        id: NotSet,
        source: Set(order.source.clone()),
        order_id: Set(order.order_id.clone()),
        amount_minor: Set(order.amount_minor),
        currency: Set(order.currency.clone()),
        at_ms: Set(order.at_ms),
        customer_key: Set(order.customer_key.clone()),
        click_id: Set(order.click_id.clone()),
        discount_codes: Set(codes),
        utm_source: Set(order.utm_source.clone()),
        utm_medium: Set(order.utm_medium.clone()),
        utm_campaign: Set(order.utm_campaign.clone()),
        utm_content: Set(order.utm_content.clone()),
        refunded_minor: Set(0),
        received_at_ms: Set(now_ms()),
        social_handles: Set(order.social_handles.join(" ")),
    })
}

async fn take_delivery(
    txn: &sea_orm::DatabaseTransaction,
    source: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let inserted = webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
        source: Set(source.to_owned()),
        delivery_id: Set(id.to_owned()),
        received_at_ms: Set(now_ms()),
    })
    .on_conflict(
        OnConflict::columns([
            webhook_delivery::Column::Source,
            webhook_delivery::Column::DeliveryId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(inserted == 1)
}

async fn find_order(
    txn: &sea_orm::DatabaseTransaction,
    source: &str,
    order_id: &str,
) -> Result<Option<shop_order::Model>, StoreError> {
    Ok(shop_order::Entity::find()
        .filter(shop_order::Column::Source.eq(source))
        .filter(shop_order::Column::OrderId.eq(order_id))
        .one(txn)
        .await?)
}
