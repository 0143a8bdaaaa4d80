//! `POST /api/v1/inbox/{id}/labels {"add": [...], "remove": [...]}`

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
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Body = parse_json(&body)?;
    let conversation = state.inbox.label(id, &body.add, &body.remove).await?;
    Ok(Json(inbox_view::conversation(&conversation)))
}
