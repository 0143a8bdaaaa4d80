//! `GET /api/v1/channels`: each configured channel's health (being built).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(State(_state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"channels": []})))
}
