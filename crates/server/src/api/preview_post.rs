//! `POST /api/v1/posts:preview`: each channel's rendered text and length (being built).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(
    State(_state): State<AppState>,
    _body: Bytes,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"channels": []})))
}
