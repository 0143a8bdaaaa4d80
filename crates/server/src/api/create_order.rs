//! `POST /api/v1/orders`: an order from any shop or script, as JSON
//! (`order_id`, `amount_minor`, `currency`, `at`, and optionally
//! `customer_key`, `click_id`, `discount_codes`, `utm_*`). The order id is
//! the idempotency key: the same order twice counts once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use clarion_attribution::generic_order;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let order =
        generic_order(&body).map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))?;
    let order_id = order.order_id.clone();
    let outcome = state.analytics.orders.take_order(None, order).await?;
    Ok(Json(
        json!({"order_id": order_id, "outcome": outcome.as_str()}),
    ))
}
