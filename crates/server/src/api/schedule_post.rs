//! `POST /api/v1/posts/{id}/schedule {"at": "..."}`: schedule a draft or move a post.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{parse_json, parse_time, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Schedule {
    at: String,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<PostView>, ApiError> {
    let request: Schedule = parse_json(&body)?;
    let at = parse_time("at", &request.at, state.timezone)?;
    let detail = state.service.schedule(id, at).await?;
    Ok(Json(post_view(&state, detail).await?))
}
