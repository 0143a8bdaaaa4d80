//! `POST /api/v1/channels/{name}/check`: checks a channel's credentials now (being built).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(
    State(_state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"channel": name})))
}
