//! `GET /api/v1/queue`: targets by status and how many are due soon.

use axum::Json;
use axum::extract::State;
use clarion_store::now_ms;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.service.store();
    let counts: serde_json::Map<String, Value> = store
        .status_counts()
        .await?
        .into_iter()
        .map(|c| (c.status, json!(c.count)))
        .collect();
    let due_next_hour = store.due_count(now_ms(), 3_600_000).await?;
    Ok(Json(
        json!({ "targets": counts, "due_next_hour": due_next_hour }),
    ))
}
