//! `GET /api/v1/listeners`: per listening channel, holder, last event, lag, last error.

use axum::Json;
use axum::extract::State;
use clarion_store::now_ms;
use serde_json::Value;

use crate::{ApiError, AppState, inbox_view};

pub async fn handler(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let rows = state.inbox.store().listeners().await?;
    Ok(Json(Value::Array(
        rows.iter().map(|l| inbox_view::listener(l, now)).collect(),
    )))
}
