//! Campaign sums kept as clicks and credits are written (see the
//! `m20261207_000001_rollups` migration): a campaign report reads these
//! few hundred rows instead of every click and credit of the campaign.
//!
//! Invariant: in every transaction that writes `clicks` or `order_credits`,
//! the matching rollup rows change by exactly what was written, so a rollup
//! always equals the `GROUP BY` over its source table (a test checks it).

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};

use crate::entity::{click_rollup, credit_rollup, order_credit};
use crate::posts::rows_per_insert;
use crate::{NewClick, StoreError};

/// Adds a batch of clicks to the campaign click counts.
pub(crate) async fn add_clicks(
    txn: &DatabaseTransaction,
    clicks: &[NewClick],
) -> Result<(), StoreError> {
    let mut counts: BTreeMap<(String, String, String, i32, i32, bool), i64> = BTreeMap::new();
    for c in clicks {
        let Some(campaign) = &c.campaign else {
            continue;
        };
        *counts
            .entry((
                campaign.clone(),
                c.creator.clone().unwrap_or_default(),
                c.channel.clone().unwrap_or_default(),
                c.post_id.unwrap_or(0),
                c.target_id.unwrap_or(0),
                c.is_bot,
            ))
            .or_default() += 1;
    }
    let rows: Vec<click_rollup::ActiveModel> = counts
        .into_iter()
        .map(
            |((campaign, creator, channel, post_id, target_id, is_bot), n)| {
                click_rollup::ActiveModel {
                    id: NotSet,
                    campaign: Set(campaign),
                    creator: Set(creator),
                    channel: Set(channel),
                    post_id: Set(post_id),
                    target_id: Set(target_id),
                    is_bot: Set(is_bot),
                    n: Set(n),
                }
            },
        )
        .collect();
    use click_rollup::Column as C;
    for chunk in rows.chunks(rows_per_insert::<click_rollup::Entity>()) {
        click_rollup::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    C::Campaign,
                    C::Creator,
                    C::Channel,
                    C::PostId,
                    C::TargetId,
                    C::IsBot,
                ])
                .value(
                    C::N,
                    Expr::col((click_rollup::Entity, C::N)).add(Expr::cust("excluded.n")),
                )
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// What a credit contributes to the rollups.
pub(crate) struct Credited<'a> {
    pub order_row_id: i32,
    pub campaign: Option<&'a str>,
    pub creator: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub order_at_ms: i64,
}

impl<'a> From<&'a order_credit::Model> for Credited<'a> {
    fn from(c: &'a order_credit::Model) -> Self {
        Self {
            order_row_id: c.order_row_id,
            campaign: c.campaign.as_deref(),
            creator: c.creator.as_deref(),
            channel: c.channel.as_deref(),
            post_id: c.post_id,
            target_id: c.target_id,
            amount_minor: c.amount_minor,
            currency: &c.currency,
            order_at_ms: c.order_at_ms,
        }
    }
}

/// (campaign, currency, group, key).
type RollupKey = (String, String, &'static str, String);

/// Every (group, key) a credit falls in; the keys are spelled as the
/// migration's backfill spells them.
fn groups(c: &Credited<'_>) -> [(&'static str, String); 6] {
    let id = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        ("total", "total".to_owned()),
        ("creator", c.creator.unwrap_or_default().to_owned()),
        ("channel", c.channel.unwrap_or_default().to_owned()),
        ("post", id(c.post_id)),
        ("target", id(c.target_id)),
        ("day", (c.order_at_ms / 86_400_000).to_string()),
    ]
}

/// The rollup row (campaign `''`, currency `''`, key `''`) counting every
/// order credited under a model, attributed or not: whether a model's
/// credits are complete is then one row read.
pub(crate) const CREDITED: &str = "credited";

/// Adds `sign` × the credits' revenue and distinct orders to `deltas`.
/// An order counts once per group however many of its credits fall in it;
/// credits are taken order by order, so "once" is checked among one
/// order's few groups, not across every credit.
fn contribute(deltas: &mut BTreeMap<RollupKey, (i64, i64)>, credits: &[Credited<'_>], sign: i64) {
    let mut by_order: Vec<&Credited<'_>> = credits.iter().collect();
    by_order.sort_by_key(|c| c.order_row_id);
    let mut seen: Vec<RollupKey> = Vec::new();
    let mut order = None;
    for c in by_order {
        if order != Some(c.order_row_id) {
            order = Some(c.order_row_id);
            seen.clear();
        }
        let all = (String::new(), String::new(), CREDITED, String::new());
        if !seen.contains(&all) {
            deltas.entry(all.clone()).or_default().1 += sign;
            seen.push(all);
        }
        let Some(campaign) = c.campaign else {
            continue;
        };
        for (grp, key) in groups(c) {
            let k = (campaign.to_owned(), c.currency.to_owned(), grp, key);
            let first = !seen.contains(&k);
            let delta = match deltas.get_mut(&k) {
                Some(delta) => delta,
                None => deltas.entry(k.clone()).or_default(),
            };
            delta.0 += sign * c.amount_minor;
            if first {
                delta.1 += sign;
                seen.push(k);
            }
        }
    }
}

/// Moves the rollups of `model_key` from the `old` credits of some orders
/// to their `new` ones.
pub(crate) async fn replace_credits(
    txn: &DatabaseTransaction,
    model_key: &str,
    old: &[Credited<'_>],
    new: &[Credited<'_>],
) -> Result<(), StoreError> {
    let rows = {
        let mut deltas = BTreeMap::new();
        contribute(&mut deltas, old, -1);
        contribute(&mut deltas, new, 1);
        deltas
    };
    let rows: Vec<credit_rollup::ActiveModel> = rows
        .into_iter()
        .filter(|(_, (revenue, orders))| *revenue != 0 || *orders != 0)
        .map(
            |((campaign, currency, grp, key), (revenue, orders))| credit_rollup::ActiveModel {
                id: NotSet,
                model_key: Set(model_key.to_owned()),
                campaign: Set(campaign),
                currency: Set(currency),
                grp: Set(grp.to_owned()),
                key: Set(key),
                revenue_minor: Set(revenue),
                orders: Set(orders),
            },
        )
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    use credit_rollup::Column as C;
    let add = |column: C, excluded: &str| {
        Expr::col((credit_rollup::Entity, column)).add(Expr::cust(format!("excluded.{excluded}")))
    };
    for chunk in rows.chunks(rows_per_insert::<credit_rollup::Entity>()) {
        credit_rollup::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([C::ModelKey, C::Campaign, C::Currency, C::Grp, C::Key])
                    .value(C::RevenueMinor, add(C::RevenueMinor, "revenue_minor"))
                    .value(C::Orders, add(C::Orders, "orders"))
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    // A group no order falls in any more is not a row of the report.
    credit_rollup::Entity::delete_many()
        .filter(C::ModelKey.eq(model_key))
        .filter(C::Orders.eq(0))
        .filter(C::RevenueMinor.eq(0))
        .exec(txn)
        .await?;
    Ok(())
}

/// The credits of `orders` under `model_key` as they are now (before
/// they are replaced).
pub(crate) async fn current_credits(
    txn: &DatabaseTransaction,
    model_key: &str,
    orders: &[i32],
) -> Result<Vec<order_credit::Model>, StoreError> {
    let mut all = Vec::new();
    for chunk in orders.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
        all.extend(
            order_credit::Entity::find()
                .filter(order_credit::Column::ModelKey.eq(model_key))
                .filter(order_credit::Column::OrderRowId.is_in(chunk.iter().copied()))
                .filter(order_credit::Column::Campaign.is_not_null())
                .all(txn)
                .await?,
        );
    }
    Ok(all)
}
