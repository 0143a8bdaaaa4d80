//! Credits orders to touches under a model and window, and stores them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use clarion_attribution::{
    Campaigns, Currency, DecidedBy, Model, OrderFacts, Touch, attribute, scale,
};
use clarion_store::{AttributionClick, EngagementTouch, NewCredit, Store, shop_order};

use crate::AnalyticsError;

const DAY_MS: i64 = 86_400_000;

/// A model and a window: what stored credits are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelKey {
    pub model: Model,
    pub window_days: u32,
}

impl ModelKey {
    /// `model` as the CLI and API take it (`time-decay:3d`), with a window.
    pub fn parse(model: &str, window_days: u32) -> Result<Self, AnalyticsError> {
        let model = Model::parse(model).map_err(|e| AnalyticsError::BadRequest(e.to_string()))?;
        if !(1..=365).contains(&window_days) {
            return Err(AnalyticsError::BadRequest(format!(
                "window: {window_days} days is outside 1..=365"
            )));
        }
        Ok(Self { model, window_days })
    }

    fn window_ms(self) -> i64 {
        i64::from(self.window_days) * DAY_MS
    }
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}d", self.model, self.window_days)
    }
}

/// How many orders a recompute credited, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecomputeStats {
    pub orders: usize,
    pub by_code: usize,
    pub by_touches: usize,
    pub unattributed: usize,
}

/// Computes and stores credits.
#[derive(Debug, Clone)]
pub struct Attributor {
    store: Store,
    campaigns: Arc<Campaigns>,
    default: ModelKey,
}

impl Attributor {
    pub fn new(store: Store, campaigns: Arc<Campaigns>, default: ModelKey) -> Self {
        Self {
            store,
            campaigns,
            default,
        }
    }

    pub fn default_key(&self) -> ModelKey {
        self.default
    }

    pub fn campaigns(&self) -> &Campaigns {
        &self.campaigns
    }

    /// Credits one stored order (new, or refunded) under the default model.
    pub async fn credit(&self, order: &shop_order::Model) -> Result<(), AnalyticsError> {
        let key = self.default;
        let from = order.at_ms - key.window_ms();
        let mut touches: Vec<TouchRow> = self
            .store
            .touches_for(order, from)
            .await?
            .iter()
            .map(TouchRow::from)
            .collect();
        let handles: Vec<String> = order.handles().map(str::to_owned).collect();
        if !handles.is_empty() {
            touches.extend(
                self.store
                    .engagement_touches(Some(&handles), from, order.at_ms)
                    .await?
                    .iter()
                    .map(TouchRow::from),
            );
        }
        let credits = self.credits_for(order, &touches, key);
        self.store
            .replace_credits(&key.to_string(), &[(order.clone(), credits)])
            .await?;
        Ok(())
    }

    /// Makes sure every order has credits under `key` (computing them all
    /// when some are missing); returns whether it recomputed.
    pub async fn ensure(&self, key: ModelKey) -> Result<bool, AnalyticsError> {
        if self.store.credits_complete(&key.to_string()).await? {
            return Ok(false);
        }
        self.recompute(key).await?;
        Ok(true)
    }

    /// Recomputes every order under `key`: all clicks and orders are read
    /// once and matched in memory.
    pub async fn recompute(&self, key: ModelKey) -> Result<RecomputeStats, AnalyticsError> {
        let started = std::time::Instant::now();
        let clicks = self.store.attribution_clicks().await?;
        let clicks_read = started.elapsed();
        let orders = self.store.orders().await?;
        let orders_read = started.elapsed();
        let mut by_click_id: HashMap<&str, usize> = HashMap::with_capacity(clicks.len());
        let mut by_visitor: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, click) in clicks.iter().enumerate() {
            by_click_id.insert(click.click_id.as_str(), i);
            by_visitor
                .entry(click.visitor_key.as_str())
                .or_default()
                .push(i);
        }
        let mut customer_clicks: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for order in &orders {
            if let (Some(customer), Some(click)) = (&order.customer_key, &order.click_id) {
                customer_clicks
                    .entry((order.source.as_str(), customer.as_str()))
                    .or_default()
                    .push(click.as_str());
            }
        }
        // Engagements with campaign posts, by their author's handle.
        let engagements = self.store.engagement_touches(None, 0, i64::MAX).await?;
        let engagements_read = started.elapsed();
        let mut by_handle: HashMap<String, Vec<&EngagementTouch>> = HashMap::new();
        for e in &engagements {
            by_handle.entry(e.handle_key()).or_default().push(e);
        }
        let mut stats = RecomputeStats::default();
        let mut results = Vec::with_capacity(orders.len());
        let mut touches: Vec<&AttributionClick> = Vec::new();
        for order in &orders {
            touches.clear();
            let mut named: Vec<&str> = order.click_id.iter().map(String::as_str).collect();
            if let Some(customer) = &order.customer_key
                && let Some(more) = customer_clicks.get(&(order.source.as_str(), customer.as_str()))
            {
                named.extend(more);
            }
            let from = order.at_ms - key.window_ms();
            for cid in named {
                let Some(&i) = by_click_id.get(cid) else {
                    continue;
                };
                for &j in by_visitor
                    .get(clicks[i].visitor_key.as_str())
                    .into_iter()
                    .flatten()
                {
                    let c = &clicks[j];
                    if c.at_ms >= from
                        && c.at_ms <= order.at_ms
                        && !touches.iter().any(|t| t.id == c.id)
                    {
                        touches.push(c);
                    }
                }
                if !touches.iter().any(|t| t.id == clicks[i].id) {
                    touches.push(&clicks[i]);
                }
            }
            let mut rows: Vec<TouchRow> = touches.iter().map(|c| TouchRow::from(*c)).collect();
            for handle in order.handles() {
                rows.extend(
                    by_handle
                        .get(handle)
                        .into_iter()
                        .flatten()
                        .filter(|e| e.at_ms >= from && e.at_ms <= order.at_ms)
                        .map(|e| TouchRow::from(*e)),
                );
            }
            let credits = self.credits_for(order, &rows, key);
            match credits.first().map(|c| c.decided_by.as_str()) {
                Some(d) if d.starts_with("code:") => stats.by_code += 1,
                Some("touches") => stats.by_touches += 1,
                _ => stats.unattributed += 1,
            }
            results.push((order.clone(), credits));
        }
        stats.orders = orders.len();
        let matched = started.elapsed();
        self.store
            .replace_all_credits(&key.to_string(), &results)
            .await?;
        // Where a recompute's time goes (BENCHMARKS.md quotes these).
        tracing::debug!(
            model = %key,
            clicks = clicks.len(),
            orders = orders.len(),
            clicks_read_ms = clicks_read.as_millis() as u64,
            orders_read_ms = (orders_read - clicks_read).as_millis() as u64,
            engagements_read_ms = (engagements_read - orders_read).as_millis() as u64,
            matched_ms = (matched - engagements_read).as_millis() as u64,
            written_ms = (started.elapsed() - matched).as_millis() as u64,
            "recompute"
        );
        Ok(stats)
    }

    /// The credits of one order, net of its refunds. An unattributed order
    /// gets one row without a touch, so "every order has credits" holds.
    fn credits_for(
        &self,
        order: &shop_order::Model,
        touches: &[TouchRow],
        key: ModelKey,
    ) -> Vec<NewCredit> {
        let currency = Currency::new(&order.currency).ok();
        let net = (order.amount_minor - order.refunded_minor).max(0);
        let Some(currency) = currency else {
            return vec![unattributed(net)];
        };
        let facts = OrderFacts {
            at_ms: order.at_ms,
            amount_minor: order.amount_minor,
            currency,
            discount_codes: order.codes(),
        };
        let as_touches: Vec<Touch> = touches
            .iter()
            .map(|c| Touch {
                at_ms: c.at_ms,
                id: c.id,
                creator: c.creator.clone(),
            })
            .collect();
        let attribution = attribute(&facts, &as_touches, key.window_ms(), key.model, |code| {
            self.campaigns
                .creator_for_code(None, code)
                .map(|(_, creator)| creator.name.clone())
        });
        let decided_by = match &attribution.decided_by {
            DecidedBy::DiscountCode(code) => format!("code:{code}"),
            DecidedBy::Touches => "touches".to_owned(),
            DecidedBy::Unattributed => return vec![unattributed(net)],
        };
        let code_campaign = match &attribution.decided_by {
            DecidedBy::DiscountCode(code) => self
                .campaigns
                .creator_for_code(None, code)
                .map(|(campaign, _)| campaign.name.clone()),
            _ => None,
        };
        let credits = scale(&attribution.credits, net);
        credits
            .into_iter()
            .map(|credit| {
                let click = credit
                    .touch_id
                    .and_then(|id| touches.iter().find(|c| c.id == id));
                NewCredit {
                    click_row_id: click.and_then(|c| c.click_row_id),
                    campaign: code_campaign
                        .clone()
                        .or_else(|| click.and_then(|c| c.campaign.clone())),
                    creator: credit
                        .creator
                        .or_else(|| click.and_then(|c| c.creator.clone())),
                    channel: click.and_then(|c| c.channel.clone()),
                    post_id: click.and_then(|c| c.post_id),
                    target_id: click.and_then(|c| c.target_id),
                    amount_minor: credit.amount_minor,
                    share_ppm: credit.share_ppm,
                    decided_by: decided_by.clone(),
                }
            })
            .collect()
    }
}

fn unattributed(net: i64) -> NewCredit {
    NewCredit {
        click_row_id: None,
        campaign: None,
        creator: None,
        channel: None,
        post_id: None,
        target_id: None,
        amount_minor: net,
        share_ppm: 1_000_000,
        decided_by: "unattributed".into(),
    }
}

/// A touch an order can be credited to: a counted click, or an engagement
/// of the customer's with a campaign post (their handle is on the order).
#[derive(Debug, Clone)]
struct TouchRow {
    /// The click's row id; an engagement's as a negative number, so the
    /// two never collide in one order's touches.
    id: i64,
    at_ms: i64,
    click_row_id: Option<i32>,
    campaign: Option<String>,
    creator: Option<String>,
    channel: Option<String>,
    post_id: Option<i32>,
    target_id: Option<i32>,
}

impl From<&AttributionClick> for TouchRow {
    fn from(c: &AttributionClick) -> Self {
        Self {
            id: i64::from(c.id),
            at_ms: c.at_ms,
            click_row_id: Some(c.id),
            campaign: c.campaign.clone(),
            creator: c.creator.clone(),
            channel: c.channel.clone(),
            post_id: c.post_id,
            target_id: c.target_id,
        }
    }
}

impl From<&EngagementTouch> for TouchRow {
    fn from(e: &EngagementTouch) -> Self {
        Self {
            id: -i64::from(e.id),
            at_ms: e.at_ms,
            click_row_id: None,
            campaign: e.campaign.clone(),
            creator: None,
            channel: Some(e.channel.clone()),
            post_id: e.post_id,
            target_id: e.target_id,
        }
    }
}
