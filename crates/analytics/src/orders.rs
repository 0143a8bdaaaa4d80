//! Orders and refunds in, from any shop.

use clarion_attribution::{Order, Refund};
use clarion_store::{NewOrder, NewRefund, OrderIngest, Store};

use crate::{AnalyticsError, Attributor};

/// What taking one order (or refund) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOutcome {
    /// Stored and credited.
    Stored,
    /// The same webhook delivery again: nothing changed.
    ReplayedDelivery,
    /// The same order (refund) id again: it counts once.
    Duplicate,
}

impl OrderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::ReplayedDelivery => "replayed_delivery",
            Self::Duplicate => "duplicate",
        }
    }
}

/// The one way orders and refunds get in.
#[derive(Debug, Clone)]
pub struct Orders {
    store: Store,
    attributor: Attributor,
}

impl Orders {
    pub fn new(store: Store, attributor: Attributor) -> Self {
        Self { store, attributor }
    }

    pub fn attributor(&self) -> &Attributor {
        &self.attributor
    }

    /// Stores `order` (once per source and order id; once per `delivery`)
    /// and credits it under the default model.
    pub async fn take_order(
        &self,
        delivery: Option<(&str, &str)>,
        order: Order,
    ) -> Result<OrderOutcome, AnalyticsError> {
        let new = NewOrder {
            source: order.source.as_str().to_owned(),
            order_id: order.order_id,
            amount_minor: order.amount_minor,
            currency: order.currency.to_string(),
            at_ms: order.at_ms,
            customer_key: order.customer_key,
            click_id: order.click_id,
            discount_codes: order.discount_codes,
            utm_source: order.utm.source,
            utm_medium: order.utm.medium,
            utm_campaign: order.utm.campaign,
            utm_content: order.utm.content,
            social_handles: order.social_handles,
        };
        self.finish(self.store.ingest_order(delivery, new).await?)
            .await
    }

    /// Stores a refund and re-credits its order net of it.
    pub async fn take_refund(
        &self,
        delivery: Option<(&str, &str)>,
        refund: Refund,
    ) -> Result<OrderOutcome, AnalyticsError> {
        let new = NewRefund {
            source: refund.source.as_str().to_owned(),
            refund_id: refund.refund_id,
            order_id: refund.order_id,
            amount_minor: refund.amount_minor,
            at_ms: refund.at_ms,
        };
        self.finish(self.store.ingest_refund(delivery, new).await?)
            .await
    }

    async fn finish(&self, outcome: OrderIngest) -> Result<OrderOutcome, AnalyticsError> {
        Ok(match outcome {
            OrderIngest::Stored(order) => {
                if let Some(order) = order {
                    self.attributor.credit(&order).await?;
                }
                OrderOutcome::Stored
            }
            OrderIngest::ReplayedDelivery => OrderOutcome::ReplayedDelivery,
            OrderIngest::Duplicate => OrderOutcome::Duplicate,
        })
    }
}
