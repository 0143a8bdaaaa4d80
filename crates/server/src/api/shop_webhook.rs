//! `POST /webhooks/shopify` and `POST /webhooks/woocommerce`: orders and
//! refunds from a shop. Not behind the API token: the shop signs the raw
//! body (base64 HMAC-SHA256), checked in constant time before anything is
//! read. A bad signature is 401, a malformed body 400 naming the problem;
//! nothing is stored in either case. Deliveries are deduped by the shop's
//! delivery id, orders by their id.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clarion_analytics::OrderOutcome;
use clarion_attribution::{
    SHOPIFY_SIGNATURE_HEADER, WOOCOMMERCE_SIGNATURE_HEADER, shopify_order, shopify_refund,
    verify_hmac_sha256_base64, woocommerce_order,
};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn shopify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let analytics = &state.analytics;
    verify(
        &analytics.shopify_secret,
        &headers,
        SHOPIFY_SIGNATURE_HEADER,
        &body,
    )?;
    let topic = header(&headers, "x-shopify-topic").unwrap_or_default();
    let delivery =
        header(&headers, "x-shopify-webhook-id").or_else(|| header(&headers, "x-shopify-event-id"));
    let delivery = delivery.as_deref().map(|id| ("shopify", id));
    let outcome = match topic.as_str() {
        "orders/create" | "orders/paid" | "orders/updated" => {
            let order = shopify_order(&body).map_err(malformed)?;
            analytics.orders.take_order(delivery, order).await?
        }
        "refunds/create" => {
            let refund = shopify_refund(&body).map_err(malformed)?;
            analytics.orders.take_refund(delivery, refund).await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "X-Shopify-Topic `{other}` is not taken (orders/create, orders/paid, refunds/create)"
            )));
        }
    };
    Ok(Json(json!({"outcome": outcome.as_str()})))
}

pub async fn woocommerce(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let analytics = &state.analytics;
    // WooCommerce pings a new webhook with `webhook_id=N` (form-encoded,
    // unsigned) when it is saved: acknowledge it, store nothing.
    if header(&headers, WOOCOMMERCE_SIGNATURE_HEADER).is_none() && body.starts_with(b"webhook_id=")
    {
        return Ok(Json(json!({"outcome": "ping"})));
    }
    verify(
        &analytics.woocommerce_secret,
        &headers,
        WOOCOMMERCE_SIGNATURE_HEADER,
        &body,
    )?;
    let delivery = header(&headers, "x-wc-webhook-delivery-id");
    let delivery = delivery.as_deref().map(|id| ("woocommerce", id));
    let order = woocommerce_order(&body).map_err(malformed)?;
    let outcome: OrderOutcome = analytics.orders.take_order(delivery, order).await?;
    Ok(Json(json!({"outcome": outcome.as_str()})))
}

fn verify(
    secret: &Result<clarion_core::Secret, String>,
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let secret = secret
        .as_ref()
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.clone()))?;
    let signature = header(headers, name).unwrap_or_default();
    verify_hmac_sha256_base64(secret.expose().as_bytes(), body, &signature).map_err(|e| {
        tracing::warn!(header = name, "refused a shop webhook: {e}");
        ApiError::new(StatusCode::UNAUTHORIZED, format!("{name}: {e}"))
    })
}

fn malformed(e: clarion_attribution::OrderError) -> ApiError {
    ApiError::bad_request(format!("malformed body: {e}"))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
