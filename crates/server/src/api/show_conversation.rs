//! `GET /api/v1/inbox/{id}`: items, replies (with publish status) and notes.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use crate::{ApiError, AppState, inbox_view};

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(inbox_view::detail(&state.inbox.show(id).await?)))
}
