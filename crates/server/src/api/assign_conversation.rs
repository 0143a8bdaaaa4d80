//! `POST /api/v1/inbox/{id}/assign {"assignee": "alice" | null}`

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;

use super::parse_json;
use crate::{ApiError, AppState, inbox_view};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    assignee: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Body = parse_json(&body)?;
    let conversation = state.inbox.assign(id, body.assignee.as_deref()).await?;
    Ok(Json(inbox_view::conversation(&conversation)))
}
